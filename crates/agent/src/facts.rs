//! Facts about the machine: distribution, kernels, boot id, pending reboot, competing updaters.
//!
//! Everything is read from files under an injectable root ([`FactSources`]), so tests build a
//! machine in a temporary folder; on a real endpoint the root is `/`. Only the running kernel has
//! a fallback that is not a file (`uname -r`, through [`crate::process`]). The clock offset is
//! measured per check-in and kept out of the inventory (see [`clock_offset`]).
//!
//! A reboot is required when any of these holds: Debian's `/run/reboot-required` exists; dnf's
//! `needs-restarting -r` says so (the dnf driver asks, and passes its answer in); or a kernel
//! newer than the running one is installed, which is checked on every distribution.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use patchwarden_versions::{DebVersion, RpmVersion};

use crate::inventory::{
    CompetingUpdater, Facts, InstalledKernel, InstalledPackage, OperatingSystem, PackageManager,
    PackageState, RebootReason, RebootStatus, UpdaterKind,
};
use crate::process::{self, Invocation, ProcessError};

/// Reading a fact failed.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
    #[error("cannot tell the running kernel: {0}")]
    Uname(#[from] ProcessError),
}

/// Where the facts are read from.
#[derive(Debug, Clone)]
pub struct FactSources {
    /// The machine's root: `/etc/os-release`, `/run/reboot-required`, `/proc` are found under it.
    pub root: PathBuf,
    /// The boot id file; a stand-in in tests, since the real one changes only with a reboot.
    pub boot_id: PathBuf,
    /// `PATH` for `uname`, used when `/proc/sys/kernel/osrelease` cannot be read.
    pub path: String,
}

impl FactSources {
    /// The machine the agent runs on.
    pub fn machine() -> Self {
        FactSources::under("/")
    }

    /// A machine laid out under `root`, boot id included.
    pub fn under(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        FactSources {
            boot_id: root.join("proc/sys/kernel/random/boot_id"),
            root,
            path: process::DEFAULT_PATH.to_owned(),
        }
    }

    fn file(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }
}

/// Reads every fact; `extra_reboot_reasons` come from the package manager (dnf needs-restarting).
pub fn gather(
    sources: &FactSources,
    manager: PackageManager,
    packages: &[InstalledPackage],
    extra_reboot_reasons: Vec<RebootReason>,
) -> Result<Facts, FactsError> {
    let os = read_os_release(sources)?;
    let running_kernel = running_kernel(sources)?;
    let newest_installed_kernel = newest_installed_kernel(manager, packages);

    // Every reason for a reboot, from files, from the package manager and from the kernels.
    let mut reasons = extra_reboot_reasons;
    reasons.extend(reboot_required_file(sources)?);
    reasons.extend(newer_kernel_reason(
        manager,
        packages,
        &running_kernel,
        newest_installed_kernel.as_ref(),
    ));

    Ok(Facts {
        os,
        architecture: std::env::consts::ARCH.to_owned(),
        running_kernel,
        newest_installed_kernel,
        boot_id: boot_id(&sources.boot_id)?,
        reboot: RebootStatus::from_reasons(reasons),
        competing_updaters: competing_updaters(sources)?,
    })
}

/// How far the server's clock is ahead of ours (negative: behind), from one exchange: we sent
/// at `sent`, the server stamped `server`, we received at `received`; the server's stamp is
/// taken to be from the middle of the round trip.
pub fn clock_offset(sent: Timestamp, server: Timestamp, received: Timestamp) -> SignedDuration {
    let round_trip = received.duration_since(sent);
    let midpoint = sent + round_trip / 2;
    server.duration_since(midpoint)
}

// --- os-release -------------------------------------------------------------------------------

/// `/etc/os-release` (or `/usr/lib/os-release`), with `/etc/debian_version` as the last fallback.
pub fn read_os_release(sources: &FactSources) -> Result<OperatingSystem, FactsError> {
    let etc = sources.file("/etc/os-release");
    let (path, text) = match read_optional(&etc)? {
        Some(text) => (etc, text),
        None => {
            let lib = sources.file("/usr/lib/os-release");
            let text = read_optional(&lib)?.ok_or_else(|| FactsError::Read {
                path: etc.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "neither /etc/os-release nor /usr/lib/os-release exists",
                ),
            })?;
            (lib, text)
        }
    };
    let debian_version = read_optional(&sources.file("/etc/debian_version"))?;
    parse_os_release(&text, debian_version.as_deref())
        .map_err(|problem| FactsError::Malformed { path, problem })
}

/// Parses os-release's `KEY=value` lines (values may be quoted) and resolves the release.
pub fn parse_os_release(
    text: &str,
    debian_version: Option<&str>,
) -> Result<OperatingSystem, String> {
    let mut fields = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value, found '{line}'", index + 1));
        };
        let value = unquote(raw)
            .ok_or_else(|| format!("line {}: unbalanced quotes in '{line}'", index + 1))?;
        fields.insert(key.to_owned(), value);
    }
    let field = |key: &str| fields.get(key).filter(|value| !value.is_empty()).cloned();

    // Testing and unstable have no VERSION_ID; sid may lack the codename too.
    let debian_version = debian_version.map(str::trim).filter(|text| !text.is_empty());
    let debian_codename = debian_version
        .filter(|text| !text.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|text| text.split('/').next())
        .map(str::to_owned);
    let version_id = field("VERSION_ID");
    let codename = field("VERSION_CODENAME").or(debian_codename);
    let release = version_id
        .clone()
        .or_else(|| codename.clone())
        .or_else(|| debian_version.map(str::to_owned))
        .ok_or("no VERSION_ID, no VERSION_CODENAME and no /etc/debian_version")?;

    let id = field("ID").unwrap_or_else(|| "linux".to_owned());
    let name = field("NAME").unwrap_or_else(|| "Linux".to_owned());
    Ok(OperatingSystem {
        pretty_name: field("PRETTY_NAME").unwrap_or_else(|| name.clone()),
        id_like: field("ID_LIKE")
            .map(|like| like.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        id,
        name,
        version_id,
        codename,
        release,
    })
}

/// A shell-style value: bare, `"double"` (with backslash escapes) or `'single'`.
fn unquote(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_owned);
    }
    let Some(inner) = raw.strip_prefix('"') else {
        return Some(raw.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            value.push(chars.next()?);
        } else {
            value.push(c);
        }
    }
    Some(value)
}

// --- kernels and boot ---------------------------------------------------------------------------

/// `uname -r` of the running kernel: `/proc/sys/kernel/osrelease`, else `uname -r`.
pub fn running_kernel(sources: &FactSources) -> Result<String, FactsError> {
    if let Some(release) = read_optional(&sources.file("/proc/sys/kernel/osrelease"))? {
        let release = release.trim();
        if !release.is_empty() {
            return Ok(release.to_owned());
        }
    }
    let output = Invocation::new("uname")
        .arg("-r")
        .env("PATH", &sources.path)
        .env("LANG", "C.UTF-8")
        .run()?;
    Ok(output.stdout.trim().to_owned())
}

/// The boot id, which changes on every boot.
pub fn boot_id(path: &Path) -> Result<String, FactsError> {
    let text = fs::read_to_string(path)
        .map_err(|source| FactsError::Read { path: path.to_owned(), source })?;
    let id = text.trim();
    if id.is_empty() || id.contains(char::is_whitespace) {
        return Err(FactsError::Malformed {
            path: path.to_owned(),
            problem: format!("'{id}' is not a boot id"),
        });
    }
    Ok(id.to_owned())
}

/// The installed kernel package with the highest version, if any.
///
/// Debian and Ubuntu: `linux-image-RELEASE` (and `-unsigned` builds), not the metapackages such
/// as `linux-image-amd64` nor `-dbg` symbols. rpm: `kernel-core`, or `kernel` where there is no
/// `kernel-core` (before RHEL 8).
pub fn newest_installed_kernel(
    manager: PackageManager,
    packages: &[InstalledPackage],
) -> Option<InstalledKernel> {
    let kernels = packages
        .iter()
        .filter(|p| p.state == PackageState::Installed)
        .filter_map(|p| kernel_of(manager, packages, p));
    kernels.max_by(|a, b| {
        compare_versions(manager, &a.version, &b.version).then_with(|| a.release.cmp(&b.release))
    })
}

fn kernel_of(
    manager: PackageManager,
    packages: &[InstalledPackage],
    package: &InstalledPackage,
) -> Option<InstalledKernel> {
    let release = match manager {
        PackageManager::Dpkg => debian_kernel_release(&package.name)?,
        PackageManager::Rpm => {
            let has_core = packages.iter().any(|p| p.name == "kernel-core");
            let is_kernel =
                package.name == "kernel-core" || (package.name == "kernel" && !has_core);
            if !is_kernel {
                return None;
            }
            let without_epoch =
                package.version.split_once(':').map_or(package.version.as_str(), |(_, rest)| rest);
            format!("{without_epoch}.{}", package.architecture)
        }
    };
    Some(InstalledKernel {
        package: package.name.clone(),
        version: package.version.clone(),
        release,
    })
}

/// `linux-image-6.1.0-18-amd64` to `6.1.0-18-amd64`; metapackages and symbols are not kernels.
fn debian_kernel_release(name: &str) -> Option<String> {
    let rest = name.strip_prefix("linux-image-")?;
    let rest = rest.strip_prefix("unsigned-").unwrap_or(rest);
    let rest = rest.strip_suffix("-unsigned").unwrap_or(rest);
    let is_release = rest.starts_with(|c: char| c.is_ascii_digit()) && !rest.ends_with("-dbg");
    is_release.then(|| rest.to_owned())
}

/// The reboot reason when a kernel newer than the running one is installed.
fn newer_kernel_reason(
    manager: PackageManager,
    packages: &[InstalledPackage],
    running: &str,
    newest: Option<&InstalledKernel>,
) -> Option<RebootReason> {
    let newest = newest?;
    if newest.release == running {
        return None;
    }

    // Compare package versions where the running kernel's package is known, else the releases.
    let running_package = packages
        .iter()
        .find_map(|p| kernel_of(manager, packages, p).filter(|k| k.release == running));
    let newer = match (&running_package, manager) {
        (Some(running_package), _) => {
            compare_versions(manager, &newest.version, &running_package.version).is_gt()
        }
        (None, PackageManager::Dpkg) => compare_versions(manager, &newest.release, running).is_gt(),
        (None, PackageManager::Rpm) => {
            let strip_arch = |release: &str| {
                release.rsplit_once('.').map_or(release.to_owned(), |(rest, _)| rest.to_owned())
            };
            compare_versions(manager, &strip_arch(&newest.release), &strip_arch(running)).is_gt()
        }
    };
    newer.then(|| RebootReason::NewerKernelInstalled {
        running: running.to_owned(),
        newest: newest.release.clone(),
    })
}

/// Orders two versions by the package manager's rules; text that does not parse sorts first.
fn compare_versions(manager: PackageManager, a: &str, b: &str) -> Ordering {
    match manager {
        PackageManager::Dpkg => DebVersion::parse(a).ok().cmp(&DebVersion::parse(b).ok()),
        PackageManager::Rpm => RpmVersion::parse(a).ok().cmp(&RpmVersion::parse(b).ok()),
    }
}

/// Debian's `/run/reboot-required`, with the packages that asked from `.pkgs`.
pub fn reboot_required_file(sources: &FactSources) -> Result<Option<RebootReason>, FactsError> {
    let flag = sources.file("/run/reboot-required");
    if !exists(&flag)? {
        return Ok(None);
    }
    let listed = read_optional(&sources.file("/run/reboot-required.pkgs"))?.unwrap_or_default();
    let mut packages: Vec<String> =
        listed.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    packages.sort_unstable();
    packages.dedup();
    Ok(Some(RebootReason::RebootRequiredFile { packages }))
}

// --- competing updaters ----------------------------------------------------------------------

const TIMER_WANTS: &str = "/etc/systemd/system/timers.target.wants";

/// Other automatic updaters enabled on the machine.
pub fn competing_updaters(sources: &FactSources) -> Result<Vec<CompetingUpdater>, FactsError> {
    let mut found = Vec::new();
    if let Some(evidence) = unattended_upgrades(sources)? {
        found.push(CompetingUpdater { kind: UpdaterKind::UnattendedUpgrades, evidence });
    }

    // Timers enabled through timers.target and not masked.
    for (timer, kind) in [
        ("apt-daily.timer", UpdaterKind::AptDailyTimer),
        ("apt-daily-upgrade.timer", UpdaterKind::AptDailyUpgradeTimer),
    ] {
        if let Some(evidence) = enabled_timer(sources, timer)? {
            found.push(CompetingUpdater { kind, evidence });
        }
    }
    for timer in timers_named(sources, &["dnf-automatic", "dnf5-automatic"])? {
        if let Some(evidence) = enabled_timer(sources, &timer)? {
            found.push(CompetingUpdater { kind: UpdaterKind::DnfAutomatic, evidence });
        }
    }

    // PackageKit's offline update: a /system-update link makes the next boot install updates.
    if exists(&sources.file("/system-update"))? {
        found.push(CompetingUpdater {
            kind: UpdaterKind::PackageKitOfflineUpdate,
            evidence: "/system-update".to_owned(),
        });
    }
    found.sort();
    Ok(found)
}

fn enabled_timer(sources: &FactSources, timer: &str) -> Result<Option<String>, FactsError> {
    let wanted = format!("{TIMER_WANTS}/{timer}");
    if !exists(&sources.file(&wanted))? {
        return Ok(None);
    }
    let unit = sources.file(&format!("/etc/systemd/system/{timer}"));
    let masked = fs::read_link(&unit).is_ok_and(|target| target == Path::new("/dev/null"));
    Ok((!masked).then_some(wanted))
}

fn timers_named(sources: &FactSources, prefixes: &[&str]) -> Result<Vec<String>, FactsError> {
    let dir = sources.file(TIMER_WANTS);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(FactsError::Read { path: dir, source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| FactsError::Read { path: dir.clone(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".timer") && prefixes.iter().any(|prefix| name.starts_with(prefix)) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The apt configuration file that turns on `APT::Periodic::Unattended-Upgrade`, if one does.
///
/// apt reads `apt.conf.d` in name order and then `apt.conf`; the last setting wins. Files apt
/// ignores (`.dpkg-old`, `.disabled`, names with other characters) are skipped the same way.
fn unattended_upgrades(sources: &FactSources) -> Result<Option<String>, FactsError> {
    const KEY: &str = "apt::periodic::unattended-upgrade";
    let mut files = Vec::new();
    let parts = sources.file("/etc/apt/apt.conf.d");
    match fs::read_dir(&parts) {
        Ok(entries) => {
            for entry in entries {
                let entry =
                    entry.map_err(|source| FactsError::Read { path: parts.clone(), source })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if apt_reads_part(&name) {
                    files.push(format!("/etc/apt/apt.conf.d/{name}"));
                }
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(FactsError::Read { path: parts, source }),
    }
    files.sort();
    files.push("/etc/apt/apt.conf".to_owned());

    let mut last: Option<(String, String)> = None;
    for file in files {
        let Some(text) = read_optional(&sources.file(&file))? else { continue };
        if let Some(value) = apt_config_values(&text).remove(KEY) {
            last = Some((file, value));
        }
    }
    let enabled =
        |value: &str| value == "always" || value.parse::<u64>().is_ok_and(|days| days > 0);
    Ok(last.filter(|(_, value)| enabled(value)).map(|(file, _)| file))
}

fn apt_reads_part(name: &str) -> bool {
    const IGNORED_SUFFIXES: [&str; 6] =
        [".disabled", ".bak", ".save", ".orig", ".distUpgrade", "~"];
    let valid =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    let ignored = IGNORED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        || name.contains(".dpkg-")
        || name.contains(".ucf-");
    valid && !ignored
}

/// The settings of one apt configuration file, keys lowercased with their scopes joined by
/// `::`. Handles both `A::B "v";` and `A { B "v"; };`, comments (`//`, `/* */`, `#`) and
/// unquoted values; list items and `#include` are skipped.
fn apt_config_values(text: &str) -> BTreeMap<String, String> {
    let tokens = apt_config_tokens(text);
    let mut values = BTreeMap::new();
    let mut scopes: Vec<String> = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        let prefix: String = scopes.iter().map(|scope| format!("{scope}::")).collect();
        match (&tokens[index], tokens.get(index + 1), tokens.get(index + 2)) {
            (Token::Close, _, _) => {
                scopes.pop();
                index += 1;
            }
            (Token::Word(name), Some(Token::Open), _) => {
                scopes.push(name.to_ascii_lowercase());
                index += 2;
            }
            (
                Token::Word(name),
                Some(Token::Word(value) | Token::Quoted(value)),
                Some(Token::End),
            ) => {
                values.insert(format!("{prefix}{}", name.to_ascii_lowercase()), value.clone());
                index += 3;
            }
            (Token::Word(name), Some(Token::End), _) => {
                values.insert(format!("{prefix}{}", name.to_ascii_lowercase()), String::new());
                index += 2;
            }
            // List items, directives and anything else: skip to the end of the statement.
            _ => {
                while index < tokens.len() && !matches!(tokens[index], Token::End | Token::Close) {
                    index += 1;
                }
                if matches!(tokens.get(index), Some(Token::End)) {
                    index += 1;
                }
            }
        }
    }
    values
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    End,
}

fn apt_config_tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line_start = true;
                continue;
            }
            c if c.is_whitespace() => continue,
            '#' if line_start => {
                // `#include` and `#clear` directives and `#` comments: the rest of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                tokens.push(Token::End);
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '{' => tokens.push(Token::Open),
            '}' => tokens.push(Token::Close),
            ';' => tokens.push(Token::End),
            '"' => tokens.push(Token::Quoted(chars.by_ref().take_while(|&c| c != '"').collect())),
            first => {
                let mut word = String::from(first);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "{};\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
        line_start = false;
    }
    tokens
}

// --- files ---------------------------------------------------------------------------------------

fn read_optional(path: &Path) -> Result<Option<String>, FactsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FactsError::Read { path: path.to_owned(), source }),
    }
}

/// Whether a file or link exists (a dangling link counts: `/system-update` may point anywhere).
fn exists(path: &Path) -> Result<bool, FactsError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(FactsError::Read { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::inventory::{InstalledPackage, PackageState};

    fn package(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            architecture: "amd64".into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            state: PackageState::Installed,
            held: false,
        }
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn link(root: &Path, path: &str, target: &str) {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    #[test]
    fn os_release_files_resolve_their_release() {
        let fixture = |name: &str| {
            fs::read_to_string(format!(
                "{}/tests/fixtures/os-release/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        // (os-release file, /etc/debian_version, id, version_id, codename, release)
        type Case<'a> =
            (&'a str, Option<&'a str>, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: [Case; 6] = [
            ("debian-12", Some("12.12\n"), "debian", Some("12"), Some("bookworm"), "12"),
            ("debian-trixie-sid", Some("trixie/sid\n"), "debian", None, Some("trixie"), "trixie"),
            (
                "debian-sid-no-codename",
                Some("trixie/sid\n"),
                "debian",
                None,
                Some("trixie"),
                "trixie",
            ),
            ("debian-sid-no-codename", None, "debian", None, None, "error"),
            ("ubuntu-22.04", None, "ubuntu", Some("22.04"), Some("jammy"), "22.04"),
            ("rocky-9", None, "rocky", Some("9.3"), None, "9.3"),
        ];
        for (file, debian_version, id, version_id, codename, release) in cases {
            let parsed = parse_os_release(&fixture(file), debian_version);
            let Ok(os) = parsed else {
                assert_eq!(release, "error", "{file}: {parsed:?}");
                continue;
            };
            assert_eq!(
                (
                    os.id.as_str(),
                    os.version_id.as_deref(),
                    os.codename.as_deref(),
                    os.release.as_str()
                ),
                (id, version_id, codename, release),
                "{file} with {debian_version:?}"
            );
        }
    }

    #[test]
    fn os_release_values_are_unquoted_and_lines_checked() {
        let os = parse_os_release(
            "# comment\nNAME='Single Quoted'\nPRETTY_NAME=\"Say \\\"hi\\\"\"\nID=plain\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=1\n",
            None,
        )
        .unwrap();
        assert_eq!(
            (os.name.as_str(), os.pretty_name.as_str(), os.id.as_str()),
            ("Single Quoted", "Say \"hi\"", "plain")
        );
        assert_eq!(os.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(
            parse_os_release("ID=x\nnot a line\n", None).unwrap_err(),
            "line 2: expected KEY=value, found 'not a line'"
        );
        assert_eq!(
            parse_os_release("ID=\"open\n", None).unwrap_err(),
            "line 1: unbalanced quotes in 'ID=\"open'"
        );
    }

    #[test]
    fn os_release_falls_back_to_usr_lib() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "/usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        let os = read_os_release(&FactSources::under(root.path())).unwrap();
        assert_eq!(os.release, "12");
    }

    #[test]
    fn the_running_kernel_comes_from_proc_or_uname() {
        let root = tempfile::tempdir().unwrap();
        let sources = FactSources::under(root.path());
        let uname = std::process::Command::new("uname").arg("-r").output().unwrap();
        assert_eq!(
            running_kernel(&sources).unwrap(),
            String::from_utf8(uname.stdout).unwrap().trim()
        );
        write(root.path(), "/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        assert_eq!(running_kernel(&sources).unwrap(), "6.1.0-18-amd64");
    }

    #[test]
    fn the_boot_id_is_read_from_its_file() {
        let root = tempfile::tempdir().unwrap();
        let sources = FactSources::under(root.path());
        assert!(matches!(boot_id(&sources.boot_id), Err(FactsError::Read { .. })));
        write(
            root.path(),
            "/proc/sys/kernel/random/boot_id",
            "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11\n",
        );
        assert_eq!(boot_id(&sources.boot_id).unwrap(), "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11");
        write(root.path(), "/proc/sys/kernel/random/boot_id", "\n");
        assert!(matches!(boot_id(&sources.boot_id), Err(FactsError::Malformed { .. })));
    }

    #[test]
    fn the_newest_installed_kernel_is_found_by_package_version() {
        let deb = [
            package("linux-image-6.1.0-17-amd64", "6.1.69-1"),
            package("linux-image-6.1.0-18-amd64", "6.1.76-1"),
            package("linux-image-6.1.0-18-amd64-dbg", "6.1.99-1"),
            package("linux-image-amd64", "6.1.99-1"),
            package("linux-image-cloud-amd64", "6.1.99-1"),
            package("bash", "5.2.15-2+b2"),
        ];
        let newest = newest_installed_kernel(PackageManager::Dpkg, &deb).unwrap();
        assert_eq!(
            (newest.package.as_str(), newest.release.as_str()),
            ("linux-image-6.1.0-18-amd64", "6.1.0-18-amd64")
        );

        let ubuntu = [
            package("linux-image-unsigned-6.5.0-14-generic", "6.5.0-14.14~22.04.1"),
            package("linux-image-5.15.0-91-generic", "5.15.0-91.101"),
        ];
        assert_eq!(
            newest_installed_kernel(PackageManager::Dpkg, &ubuntu).unwrap().release,
            "6.5.0-14-generic"
        );

        let x86 = |name: &str, version: &str| InstalledPackage {
            architecture: "x86_64".into(),
            ..package(name, version)
        };
        let rpm = [
            x86("kernel", "5.14.0-362.13.1.el9_3"),
            x86("kernel-core", "5.14.0-362.8.1.el9_3"),
            x86("kernel-core", "5.14.0-362.13.1.el9_3"),
            x86("kernel-core", "5.14.0-70.13.1.el9_0"),
            x86("kernel-tools", "5.14.0-999.el9"),
        ];
        let newest = newest_installed_kernel(PackageManager::Rpm, &rpm).unwrap();
        assert_eq!(
            (newest.package.as_str(), newest.release.as_str()),
            ("kernel-core", "5.14.0-362.13.1.el9_3.x86_64")
        );
        let el7 = [x86("kernel", "3.10.0-1160.el7"), x86("kernel", "3.10.0-1160.105.1.el7")];
        assert_eq!(
            newest_installed_kernel(PackageManager::Rpm, &el7).unwrap().release,
            "3.10.0-1160.105.1.el7.x86_64"
        );
        assert_eq!(newest_installed_kernel(PackageManager::Dpkg, &[package("bash", "5")]), None);
    }

    #[test]
    fn a_newer_installed_kernel_requires_a_reboot() {
        let deb = [
            package("linux-image-6.1.0-17-amd64", "6.1.69-1"),
            package("linux-image-6.1.0-18-amd64", "6.1.76-1"),
        ];
        let x86 = |name: &str, version: &str| InstalledPackage {
            architecture: "x86_64".into(),
            ..package(name, version)
        };
        let rpm = [
            x86("kernel-core", "5.14.0-362.8.1.el9_3"),
            x86("kernel-core", "5.14.0-362.13.1.el9_3"),
        ];
        // (manager, packages, running kernel, reboot required)
        let cases: [(PackageManager, &[InstalledPackage], &str, bool); 7] = [
            (PackageManager::Dpkg, &deb, "6.1.0-17-amd64", true),
            (PackageManager::Dpkg, &deb, "6.1.0-18-amd64", false),
            (PackageManager::Dpkg, &deb, "6.1.0-16-amd64", true),
            (PackageManager::Dpkg, &deb, "6.7.0-1-amd64", false),
            (PackageManager::Rpm, &rpm, "5.14.0-362.8.1.el9_3.x86_64", true),
            (PackageManager::Rpm, &rpm, "5.14.0-362.13.1.el9_3.x86_64", false),
            (PackageManager::Dpkg, &[], "6.18.44-fc-v1272", false),
        ];
        for (manager, packages, running, required) in cases {
            let newest = newest_installed_kernel(manager, packages);
            let reason = newer_kernel_reason(manager, packages, running, newest.as_ref());
            assert_eq!(reason.is_some(), required, "{running}: {reason:?}");
        }
    }

    #[test]
    fn gathering_reports_every_reboot_reason() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "/etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        );
        write(root.path(), "/proc/sys/kernel/osrelease", "6.1.0-17-amd64\n");
        write(
            root.path(),
            "/proc/sys/kernel/random/boot_id",
            "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11\n",
        );
        let sources = FactSources::under(root.path());
        let packages = [package("linux-image-6.1.0-17-amd64", "6.1.69-1")];

        let facts = gather(&sources, PackageManager::Dpkg, &packages, vec![]).unwrap();
        assert_eq!(facts.reboot, RebootStatus { required: false, reasons: vec![] });
        assert_eq!(facts.os.codename.as_deref(), Some("bookworm"));
        assert_eq!(facts.running_kernel, "6.1.0-17-amd64");

        write(root.path(), "/run/reboot-required", "*** System restart required ***\n");
        write(
            root.path(),
            "/run/reboot-required.pkgs",
            "linux-image-6.1.0-18-amd64\nlibc6\nlibc6\n",
        );
        let newer = [
            package("linux-image-6.1.0-17-amd64", "6.1.69-1"),
            package("linux-image-6.1.0-18-amd64", "6.1.76-1"),
        ];
        let facts =
            gather(&sources, PackageManager::Dpkg, &newer, vec![RebootReason::NeedsRestarting])
                .unwrap();
        assert!(facts.reboot.required);
        assert_eq!(
            facts.reboot.reasons,
            [
                RebootReason::RebootRequiredFile {
                    packages: vec!["libc6".into(), "linux-image-6.1.0-18-amd64".into()]
                },
                RebootReason::NeedsRestarting,
                RebootReason::NewerKernelInstalled {
                    running: "6.1.0-17-amd64".into(),
                    newest: "6.1.0-18-amd64".into()
                },
            ]
        );
    }

    #[test]
    fn competing_updaters_are_found_by_their_files() {
        let root = tempfile::tempdir().unwrap();
        let sources = FactSources::under(root.path());
        assert_eq!(competing_updaters(&sources).unwrap(), []);

        // Debian's own 20auto-upgrades, as dpkg-reconfigure unattended-upgrades writes it.
        write(
            root.path(),
            "/etc/apt/apt.conf.d/20auto-upgrades",
            include_str!("../tests/fixtures/apt/20auto-upgrades"),
        );
        link(
            root.path(),
            "/etc/systemd/system/timers.target.wants/apt-daily.timer",
            "/lib/systemd/system/apt-daily.timer",
        );
        link(
            root.path(),
            "/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer",
            "/lib/systemd/system/apt-daily-upgrade.timer",
        );
        link(
            root.path(),
            "/etc/systemd/system/timers.target.wants/dnf-automatic-install.timer",
            "/usr/lib/systemd/system/dnf-automatic-install.timer",
        );
        link(root.path(), "/system-update", "/var/lib/PackageKit/prepared-update");
        let kinds: Vec<(UpdaterKind, String)> = competing_updaters(&sources)
            .unwrap()
            .into_iter()
            .map(|u| (u.kind, u.evidence))
            .collect();
        assert_eq!(
            kinds,
            [
                (UpdaterKind::UnattendedUpgrades, "/etc/apt/apt.conf.d/20auto-upgrades".into()),
                (
                    UpdaterKind::AptDailyTimer,
                    "/etc/systemd/system/timers.target.wants/apt-daily.timer".into()
                ),
                (
                    UpdaterKind::AptDailyUpgradeTimer,
                    "/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer".into()
                ),
                (
                    UpdaterKind::DnfAutomatic,
                    "/etc/systemd/system/timers.target.wants/dnf-automatic-install.timer".into()
                ),
                (UpdaterKind::PackageKitOfflineUpdate, "/system-update".into()),
            ]
        );

        // A later file turning it off wins; a masked timer is not enabled.
        write(
            root.path(),
            "/etc/apt/apt.conf.d/99local",
            "APT { Periodic { Unattended-Upgrade \"0\"; }; };\n",
        );
        link(root.path(), "/etc/systemd/system/apt-daily.timer", "/dev/null");
        let kinds: Vec<UpdaterKind> =
            competing_updaters(&sources).unwrap().into_iter().map(|u| u.kind).collect();
        assert_eq!(
            kinds,
            [
                UpdaterKind::AptDailyUpgradeTimer,
                UpdaterKind::DnfAutomatic,
                UpdaterKind::PackageKitOfflineUpdate
            ]
        );
    }

    #[test]
    fn apt_configuration_syntax_is_understood() {
        let cases = [
            ("APT::Periodic::Unattended-Upgrade \"1\";", Some("1")),
            ("apt::periodic::unattended-upgrade 7;", Some("7")),
            ("APT { Periodic { Unattended-Upgrade \"1\"; }; };", Some("1")),
            ("APT::Periodic { Update-Package-Lists \"1\"; Unattended-Upgrade \"2\"; };", Some("2")),
            ("// APT::Periodic::Unattended-Upgrade \"1\";", None),
            ("/* APT::Periodic::Unattended-Upgrade \"1\"; */", None),
            ("# APT::Periodic::Unattended-Upgrade \"1\";", None),
            ("#clear APT::Periodic;\nAPT::Periodic::Unattended-Upgrade \"1\"; // on", Some("1")),
            (
                "DPkg::Options { \"--force-confold\"; };\nAPT::Periodic::Unattended-Upgrade \"3\";",
                Some("3"),
            ),
        ];
        for (text, expected) in cases {
            let values = apt_config_values(text);
            assert_eq!(
                values.get("apt::periodic::unattended-upgrade").map(String::as_str),
                expected,
                "{text}"
            );
        }
        assert!(apt_reads_part("20auto-upgrades"));
        assert!(!apt_reads_part("20auto-upgrades.dpkg-old"));
        assert!(!apt_reads_part("20auto-upgrades.disabled"));
        assert!(!apt_reads_part("20auto upgrades"));
    }

    #[test]
    fn the_clock_offset_is_taken_at_the_round_trips_midpoint() {
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        let sent = at("2026-03-02T09:00:00Z");
        let received = at("2026-03-02T09:00:02Z");
        assert_eq!(clock_offset(sent, at("2026-03-02T09:00:01Z"), received), SignedDuration::ZERO);
        assert_eq!(
            clock_offset(sent, at("2026-03-02T09:00:31Z"), received),
            SignedDuration::from_secs(30)
        );
        assert_eq!(
            clock_offset(sent, at("2026-03-02T08:59:01Z"), received),
            SignedDuration::from_secs(-60)
        );
    }
}
