//! The apt driver: installed packages from dpkg's database, pending updates from apt.
//!
//! The driver is given an apt configuration file (passed as `APT_CONFIG`, so apt reads nothing
//! of the machine's own configuration when a sandbox is meant) and a dpkg admin directory, which
//! every apt call is also told through `Dir::State::status`; the same code drives a real machine
//! and a sandbox root in tests.
//!
//! Pending updates come from `apt-get -s upgrade`, not `dist-upgrade`: an upgrade never installs
//! a new package nor removes one, so each `Inst` line is an update the agent can later apply by
//! installing exact versions. What `upgrade` leaves alone is still reported: the "kept back"
//! packages, with their candidate and the reason (`held` when dpkg holds them, `dependencies`
//! when upgrading them would install or remove other packages).
//!
//! The origin, label and codename of each candidate come from `apt-cache policy`: once without
//! arguments, for every index with its `release` line (`o=`, `l=`, `n=`, `a=`), and once with the
//! packages, for which indexes hold the candidate version. apt has then already read and
//! checked the Release and InRelease files, resolved its list directory through the same
//! configuration, and says which index each version comes from; reading the lists directory
//! ourselves would repeat apt's file naming, signature and pinning rules, and could not tell
//! apart two indexes with the same origin and suite. Security updates are those from a
//! repository whose label or codename marks it (see [`Repository::is_security`]), never
//! recognised by the suite `stable`, which moves to `oldstable` with the next release.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::dpkg::{self, DpkgError};
use crate::inventory::{InstalledPackage, KeptBackReason, PendingUpdate, Repository};
use crate::process::{self, Invocation, ProcessError};

/// Reading apt's view of the machine failed.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
    #[error("unexpected output from {program}, line {line}: {problem}")]
    Output { program: &'static str, line: usize, problem: String },
}

/// apt and dpkg on one root: the machine's, or a sandbox's.
#[derive(Debug, Clone)]
pub struct AptDriver {
    /// Given to apt as `APT_CONFIG`; `None` leaves apt to its default `/etc/apt/apt.conf`.
    pub apt_config: Option<PathBuf>,
    /// dpkg's admin directory, with `status` and `updates/` in it.
    pub dpkg_admindir: PathBuf,
    /// `PATH` for apt-get, apt-cache and apt-config.
    pub path: String,
    pub timeout: Duration,
}

impl AptDriver {
    /// The machine's own apt and dpkg.
    pub fn system() -> Self {
        AptDriver::new(None, "/var/lib/dpkg")
    }

    /// apt with the given configuration file, on the given dpkg database.
    pub fn new(apt_config: Option<PathBuf>, dpkg_admindir: impl Into<PathBuf>) -> Self {
        AptDriver {
            apt_config,
            dpkg_admindir: dpkg_admindir.into(),
            path: process::DEFAULT_PATH.to_owned(),
            timeout: process::DEFAULT_TIMEOUT,
        }
    }

    /// An apt program with the driver's environment, its status file, and no lock taken.
    pub fn invocation(&self, program: &str) -> Invocation {
        let mut invocation = Invocation::new(program)
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .timeout(self.timeout);
        if let Some(config) = &self.apt_config {
            invocation = invocation.env("APT_CONFIG", config);
        }
        let status = self.dpkg_admindir.join("status");
        invocation.arg("-o").arg(format!("Dir::State::status={}", status.display()))
    }

    /// The installed packages, read from dpkg's database directly.
    pub fn installed_packages(&self) -> Result<Vec<InstalledPackage>, AptError> {
        Ok(dpkg::read_database(&self.dpkg_admindir)?)
    }

    /// `apt-get update`: fetches the package lists the pending updates are computed from.
    pub fn update_lists(&self) -> Result<(), AptError> {
        self.invocation("apt-get").args(["-q", "update"]).run()?;
        Ok(())
    }

    /// The updates apt would install now, and those it keeps back with the reason.
    pub fn pending_updates(&self) -> Result<Vec<PendingUpdate>, AptError> {
        self.pending_updates_for(&self.installed_packages()?)
    }

    /// [`Self::pending_updates`] with the installed packages already read (for their holds).
    pub fn pending_updates_for(
        &self,
        installed: &[InstalledPackage],
    ) -> Result<Vec<PendingUpdate>, AptError> {
        // What a plain upgrade would install and what it would keep back.
        let simulation =
            self.invocation("apt-get").args(["-s", "-o", "Debug::NoLocking=1", "upgrade"]).run()?;
        let simulation = parse_simulation(&simulation.stdout)?;
        if simulation.installs.is_empty() && simulation.kept_back.is_empty() {
            return Ok(Vec::new());
        }

        // Where each candidate comes from, as apt itself resolved it.
        let indexes =
            parse_policy_indexes(&self.invocation("apt-cache").arg("policy").run()?.stdout)?;
        let names = simulation
            .installs
            .iter()
            .map(|install| install.name.clone())
            .chain(simulation.kept_back.iter().cloned());
        let policy = self.invocation("apt-cache").arg("policy").args(names).run()?;
        let policies = parse_package_policies(&policy.stdout)?;
        let native = self.native_architecture()?;
        Ok(combine(&simulation, &policies, &indexes, installed, &native))
    }

    /// apt's native architecture (`APT::Architecture`), which apt leaves off package names.
    pub fn native_architecture(&self) -> Result<String, AptError> {
        let output =
            self.invocation("apt-config").args(["shell", "ARCH", "APT::Architecture"]).run()?;
        let value =
            output.stdout.trim().strip_prefix("ARCH=").map(|value| value.trim_matches('\''));
        value.filter(|arch| !arch.is_empty()).map(str::to_owned).ok_or_else(|| AptError::Output {
            program: "apt-config",
            line: 1,
            problem: format!("expected ARCH='...', found '{}'", output.stdout.trim()),
        })
    }
}

/// One `Inst` line of `apt-get -s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedInstall {
    /// As apt prints it: `name`, or `name:arch` for another architecture than the native one.
    pub name: String,
    pub installed_version: Option<String>,
    pub candidate_version: String,
    pub architecture: String,
    /// apt's `Label:Version/Suite` of each source of the new version, for messages only.
    pub releases: Vec<String>,
}

/// What `apt-get -s upgrade` says it would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Simulation {
    pub installs: Vec<SimulatedInstall>,
    /// Names as apt prints them in its "kept back" list.
    pub kept_back: Vec<String>,
}

/// One package's `apt-cache policy` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackagePolicy {
    pub installed: Option<String>,
    pub candidate: Option<String>,
    /// Each version in the version table with the indexes (apt's descriptions) that carry it.
    pub versions: Vec<(String, Vec<String>)>,
}

fn output_error(program: &'static str, line: usize, problem: impl Into<String>) -> AptError {
    AptError::Output { program, line, problem: problem.into() }
}

/// Parses `apt-get -s upgrade`: the `Inst` lines and the "kept back" list.
pub fn parse_simulation(text: &str) -> Result<Simulation, AptError> {
    let mut simulation = Simulation::default();
    let mut in_kept_back = false;
    for (index, line) in text.lines().enumerate() {
        if in_kept_back && line.starts_with(' ') {
            simulation.kept_back.extend(line.split_whitespace().map(str::to_owned));
            continue;
        }
        in_kept_back = line == "The following packages have been kept back:";
        if let Some(rest) = line.strip_prefix("Inst ") {
            let install =
                parse_inst(rest).map_err(|problem| output_error("apt-get", index + 1, problem))?;
            simulation.installs.push(install);
        }
    }
    Ok(simulation)
}

/// `NAME [OLD] (NEW LABEL:VERSION/SUITE[, ...] [ARCH]) [BROKEN]`, after `Inst `.
fn parse_inst(rest: &str) -> Result<SimulatedInstall, String> {
    let bad = || format!("'Inst {rest}' is not 'Inst NAME [OLD] (NEW ORIGIN [ARCH])'");
    let (name, rest) = rest.split_once(' ').ok_or_else(bad)?;
    let (installed_version, rest) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (old, rest) = bracketed.split_once("] ").ok_or_else(bad)?;
            (Some(old.to_owned()), rest)
        }
        None => (None, rest),
    };
    let inner = rest
        .strip_prefix('(')
        .and_then(|inner| inner.split_once(')'))
        .map(|(inner, _)| inner)
        .ok_or_else(bad)?;
    let (candidate_version, inner) = inner.split_once(' ').ok_or_else(bad)?;
    let (releases, architecture) = inner.rsplit_once(" [").ok_or_else(bad)?;
    let architecture = architecture.strip_suffix(']').ok_or_else(bad)?;
    if name.is_empty() || candidate_version.is_empty() || architecture.is_empty() {
        return Err(bad());
    }
    Ok(SimulatedInstall {
        name: name.to_owned(),
        installed_version,
        candidate_version: candidate_version.to_owned(),
        architecture: architecture.to_owned(),
        releases: releases
            .split(", ")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Parses `apt-cache policy` without arguments: every index with its release fields.
pub fn parse_policy_indexes(text: &str) -> Result<BTreeMap<String, Repository>, AptError> {
    let mut indexes = BTreeMap::new();
    let mut current: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        if line == "Pinned packages:" {
            break;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 1 {
            // ` 500 http://deb.debian.org/debian bookworm/main amd64 Packages`
            let (_, description) = trimmed.split_once(' ').ok_or_else(|| {
                output_error("apt-cache", index + 1, format!("'{line}' is not 'PRIORITY INDEX'"))
            })?;
            let description = description.trim().to_owned();
            indexes.insert(
                description.clone(),
                Repository { index: without_credentials(&description), ..Repository::default() },
            );
            current = Some(description);
        } else if let Some(fields) = trimmed.strip_prefix("release ") {
            let Some(repository) = current.as_ref().and_then(|key| indexes.get_mut(key)) else {
                return Err(output_error("apt-cache", index + 1, "release line before any index"));
            };
            for (key, value) in release_fields(fields) {
                let slot = match key {
                    'o' => &mut repository.origin,
                    'l' => &mut repository.label,
                    'n' => &mut repository.codename,
                    'a' => &mut repository.suite,
                    _ => continue,
                };
                *slot = Some(value).filter(|value| !value.is_empty());
            }
        }
    }
    Ok(indexes)
}

/// `v=12,o=Debian,a=stable,n=bookworm,l=Debian,c=main,b=amd64`; a value may contain commas,
/// so a piece without `k=` continues the previous value.
fn release_fields(fields: &str) -> Vec<(char, String)> {
    let mut parsed: Vec<(char, String)> = Vec::new();
    for piece in fields.split(',') {
        let mut chars = piece.chars();
        match (chars.next(), chars.next()) {
            (Some(key), Some('=')) if key.is_ascii_lowercase() => {
                parsed.push((key, piece[2..].to_owned()))
            }
            _ => {
                if let Some((_, value)) = parsed.last_mut() {
                    value.push(',');
                    value.push_str(piece);
                }
            }
        }
    }
    parsed
}

/// An index description without any `user:password@` in its URI.
fn without_credentials(description: &str) -> String {
    let Some((scheme, rest)) = description.split_once("://") else {
        return description.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => description.to_owned(),
    }
}

/// Parses `apt-cache policy NAME...`: each package's installed and candidate version and its
/// version table, keyed by the name as apt prints it.
pub fn parse_package_policies(text: &str) -> Result<BTreeMap<String, PackagePolicy>, AptError> {
    let mut policies: BTreeMap<String, PackagePolicy> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let error = |problem: String| output_error("apt-cache", index + 1, problem);
        if line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            let name = line
                .strip_suffix(':')
                .ok_or_else(|| error(format!("'{line}' is not 'PACKAGE:'")))?;
            policies.entry(name.to_owned()).or_default();
            current = Some(name.to_owned());
            continue;
        }
        let Some(policy) = current.as_ref().and_then(|name| policies.get_mut(name)) else {
            return Err(error(format!("'{line}' comes before any package")));
        };
        let none_is_absent = |value: &str| Some(value.trim().to_owned()).filter(|v| v != "(none)");
        if let Some(value) = trimmed.strip_prefix("Installed:") {
            policy.installed = none_is_absent(value);
        } else if let Some(value) = trimmed.strip_prefix("Candidate:") {
            policy.candidate = none_is_absent(value);
        } else if trimmed == "Version table:" {
            // The versions follow, one per line, each with its indexes below it.
        } else if let Some(version_line) =
            line.strip_prefix(" *** ").or_else(|| (indent == 5).then_some(trimmed))
        {
            let version = version_line
                .split_whitespace()
                .next()
                .ok_or_else(|| error(format!("'{line}' has no version")))?;
            policy.versions.push((version.to_owned(), Vec::new()));
        } else if indent >= 7 {
            let (_, description) = trimmed
                .split_once(' ')
                .ok_or_else(|| error(format!("'{line}' is not 'PRIORITY INDEX'")))?;
            let (_, indexes) = policy
                .versions
                .last_mut()
                .ok_or_else(|| error(format!("index line '{line}' before any version")))?;
            indexes.push(description.trim().to_owned());
        } else {
            return Err(error(format!("unexpected line '{line}'")));
        }
    }
    Ok(policies)
}

/// Joins the simulation with apt's policy and dpkg's holds into the pending updates.
pub fn combine(
    simulation: &Simulation,
    policies: &BTreeMap<String, PackagePolicy>,
    indexes: &BTreeMap<String, Repository>,
    installed: &[InstalledPackage],
    native_architecture: &str,
) -> Vec<PendingUpdate> {
    let repositories_of = |name: &str, version: &str| -> Vec<Repository> {
        let Some(policy) = policies.get(name) else { return Vec::new() };
        let carried_by =
            policy.versions.iter().filter(|(v, _)| v == version).flat_map(|(_, indexes)| indexes);
        let mut found: Vec<Repository> = carried_by
            .filter_map(|description| indexes.get(description))
            .filter(|r| r.suite.as_deref() != Some("now"))
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let bare_name =
        |name: &str| name.split_once(':').map_or(name.to_owned(), |(bare, _)| bare.to_owned());

    let mut pending = Vec::new();
    for install in &simulation.installs {
        let repositories = repositories_of(&install.name, &install.candidate_version);
        pending.push(PendingUpdate {
            name: bare_name(&install.name),
            architecture: install.architecture.clone(),
            installed_version: install.installed_version.clone(),
            candidate_version: install.candidate_version.clone(),
            security: repositories.iter().any(Repository::is_security),
            repositories,
            kept_back: None,
        });
    }

    // Kept-back packages: the candidate from the policy, the reason from dpkg's hold flag.
    for printed in &simulation.kept_back {
        let (name, architecture) = match printed.split_once(':') {
            Some((name, arch)) => (name, Some(arch)),
            None => (printed.as_str(), None),
        };
        let package = installed.iter().find(|p| {
            p.name == name
                && match architecture {
                    Some(arch) => p.architecture == arch,
                    None => p.architecture == native_architecture || p.architecture == "all",
                }
        });
        let policy = policies.get(printed);
        let Some(candidate) = policy.and_then(|p| p.candidate.clone()) else { continue };
        let repositories = repositories_of(printed, &candidate);
        let held = package.is_some_and(|p| p.held);
        pending.push(PendingUpdate {
            name: name.to_owned(),
            architecture: package.map_or_else(
                || architecture.unwrap_or(native_architecture).to_owned(),
                |p| p.architecture.clone(),
            ),
            installed_version: package
                .map(|p| p.version.clone())
                .or_else(|| policy.and_then(|p| p.installed.clone())),
            candidate_version: candidate,
            security: repositories.iter().any(Repository::is_security),
            repositories,
            kept_back: Some(if held { KeptBackReason::Held } else { KeptBackReason::Dependencies }),
        });
    }
    pending.sort();
    pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::PackageState;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/apt/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    #[test]
    fn inst_lines_are_read_part_by_part() {
        // (after `Inst `, expected name, old version, new version, architecture, releases)
        type Expected<'a> = Option<(&'a str, Option<&'a str>, &'a str, &'a str, &'a [&'a str])>;
        let cases: [(&str, Expected); 8] = [
            (
                "demo [1.0-1] (1.1-1 Debian-Security:stable-security [all])",
                Some(("demo", Some("1.0-1"), "1.1-1", "all", &["Debian-Security:stable-security"])),
            ),
            (
                "libgcrypt20-dev [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []",
                Some((
                    "libgcrypt20-dev",
                    Some("1.10.1-3"),
                    "1.10.1-3+deb12u1",
                    "amd64",
                    &["Debian:12.15/oldstable", "Debian-Security:12/oldstable-security"],
                )),
            ),
            (
                "newdep (1.0-1 Patchwarden Test:stable [all])",
                Some(("newdep", None, "1.0-1", "all", &["Patchwarden Test:stable"])),
            ),
            (
                "libc6:i386 [2.36-9] (2.36-9+deb12u4 Debian:12.5/stable [i386])",
                Some((
                    "libc6:i386",
                    Some("2.36-9"),
                    "2.36-9+deb12u4",
                    "i386",
                    &["Debian:12.5/stable"],
                )),
            ),
            ("demo [1.0-1] (1.1-1 [all])", None),
            ("demo [1.0-1]", None),
            ("demo [1.0-1 (1.1-1 x [all])", None),
            ("demo (1.1-1 x [all)", None),
        ];
        for (rest, expected) in cases {
            let parsed = parse_inst(rest);
            match expected {
                Some((name, old, new, arch, releases)) => {
                    let install = parsed.unwrap();
                    assert_eq!(
                        (
                            install.name.as_str(),
                            install.installed_version.as_deref(),
                            install.candidate_version.as_str(),
                            install.architecture.as_str()
                        ),
                        (name, old, new, arch),
                        "{rest}"
                    );
                    assert_eq!(install.releases, releases, "{rest}");
                }
                None => assert!(parsed.is_err(), "{rest}: {parsed:?}"),
            }
        }
        // `(1.1-1 [all])` has no release string at all: apt always prints one, so it is refused.
    }

    #[test]
    fn a_sandbox_simulation_parses() {
        let simulation = parse_simulation(&fixture("upgrade-sandbox.out")).unwrap();
        assert_eq!(simulation.kept_back, ["pw-held", "pw-needy"]);
        assert_eq!(simulation.installs.len(), 1);
        assert_eq!(simulation.installs[0].name, "pw-demo");
        assert_eq!(simulation.installs[0].releases, ["Debian-Security:stable-security"]);
    }

    #[test]
    fn a_simulation_on_debian_12_parses() {
        let simulation = parse_simulation(&fixture("upgrade-debian12.out")).unwrap();
        assert_eq!(simulation.installs.len(), 128);
        assert!(simulation.kept_back.is_empty());
        let xz = simulation.installs.iter().find(|i| i.name == "liblzma5").unwrap();
        assert_eq!(
            (xz.installed_version.as_deref(), xz.candidate_version.as_str()),
            (Some("5.4.1-1"), "5.4.1-1+deb12u2")
        );
    }

    #[test]
    fn policy_indexes_carry_origin_label_codename_and_suite() {
        let indexes = parse_policy_indexes(&fixture("policy-debian12.out")).unwrap();
        let security =
            &indexes["http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"];
        assert_eq!(
            (
                security.origin.as_deref(),
                security.label.as_deref(),
                security.codename.as_deref(),
                security.suite.as_deref()
            ),
            (
                Some("Debian"),
                Some("Debian-Security"),
                Some("bookworm-security"),
                Some("oldstable-security")
            )
        );
        assert!(security.is_security());
        let main = &indexes["http://deb.debian.org/debian bookworm/main amd64 Packages"];
        assert_eq!(
            (main.codename.as_deref(), main.suite.as_deref()),
            (Some("bookworm"), Some("oldstable"))
        );
        assert!(!main.is_security());
        assert!(
            !indexes["http://deb.debian.org/debian bookworm-updates/main amd64 Packages"]
                .is_security()
        );
        assert_eq!(indexes["/var/lib/dpkg/status"].suite.as_deref(), Some("now"));
        assert_eq!(indexes.len(), 4);

        let sandbox = parse_policy_indexes(&fixture("policy-sandbox.out")).unwrap();
        let fixtures = &sandbox["file:/tmp/fixture/main ./ Packages"];
        assert_eq!(fixtures.origin.as_deref(), Some("Patchwarden Fixtures"));
        assert_eq!(fixtures.label.as_deref(), Some("Patchwarden Fixtures"));
    }

    #[test]
    fn release_fields_keep_commas_inside_values() {
        assert_eq!(
            release_fields("o=Acme, Inc.,a=stable,n=bookworm,l=Acme,c="),
            [
                ('o', "Acme, Inc.".to_owned()),
                ('a', "stable".into()),
                ('n', "bookworm".into()),
                ('l', "Acme".into()),
                ('c', String::new())
            ]
        );
    }

    #[test]
    fn credentials_are_left_out_of_index_names() {
        assert_eq!(
            without_credentials(
                "https://user:secret@repo.example.org/debian bookworm/main amd64 Packages"
            ),
            "https://repo.example.org/debian bookworm/main amd64 Packages"
        );
        assert_eq!(without_credentials("file:/srv/repo ./ Packages"), "file:/srv/repo ./ Packages");
        assert_eq!(
            without_credentials("http://deb.debian.org/debian bookworm/main amd64 Packages"),
            "http://deb.debian.org/debian bookworm/main amd64 Packages"
        );
    }

    #[test]
    fn package_policies_list_each_versions_indexes() {
        let policies = parse_package_policies(&fixture("policy-packages-debian12.out")).unwrap();
        assert_eq!(policies.len(), 128);
        let gcrypt = &policies["libgcrypt20"];
        assert_eq!(
            (gcrypt.installed.as_deref(), gcrypt.candidate.as_deref()),
            (Some("1.10.1-3"), Some("1.10.1-3+deb12u1"))
        );
        assert_eq!(
            gcrypt.versions[0],
            (
                "1.10.1-3+deb12u1".to_owned(),
                vec![
                    "http://deb.debian.org/debian bookworm/main amd64 Packages".to_owned(),
                    "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
                        .to_owned()
                ]
            )
        );
        assert_eq!(
            gcrypt.versions[1],
            ("1.10.1-3".to_owned(), vec!["/var/lib/dpkg/status".to_owned()])
        );
        assert!(parse_package_policies("  Installed: 1\n").is_err());
        assert!(parse_package_policies("demo:\n        500 file:/x ./ Packages\n").is_err());
    }

    #[test]
    fn debian_12_updates_are_marked_security_by_repository() {
        let simulation = parse_simulation(&fixture("upgrade-debian12.out")).unwrap();
        let policies = parse_package_policies(&fixture("policy-packages-debian12.out")).unwrap();
        let indexes = parse_policy_indexes(&fixture("policy-debian12.out")).unwrap();
        let pending = combine(&simulation, &policies, &indexes, &[], "amd64");
        assert_eq!(pending.len(), 128);

        let by_name = |name: &str| pending.iter().find(|p| p.name == name).unwrap();
        let xz = by_name("liblzma5");
        assert!(xz.security);
        assert_eq!(xz.repositories.len(), 1);
        assert_eq!(xz.repositories[0].codename.as_deref(), Some("bookworm-security"));
        // In both the point release and the security archive: security, with both repositories.
        let gcrypt = by_name("libgcrypt20");
        assert!(gcrypt.security);
        assert_eq!(gcrypt.repositories.len(), 2);
        // Only in the point release.
        let base = by_name("base-files");
        assert!(!base.security);
        assert_eq!(base.repositories[0].codename.as_deref(), Some("bookworm"));

        // Every update is security exactly when apt's own Inst line names Debian-Security.
        for install in &simulation.installs {
            let from_label = install.releases.iter().any(|r| r.starts_with("Debian-Security:"));
            assert_eq!(by_name(&install.name).security, from_label, "{}", install.name);
        }
    }

    #[test]
    fn kept_back_packages_carry_their_reason_and_candidate() {
        let simulation = parse_simulation(&fixture("upgrade-sandbox.out")).unwrap();
        let policies = parse_package_policies(&fixture("policy-packages-sandbox.out")).unwrap();
        let indexes = parse_policy_indexes(&fixture("policy-sandbox.out")).unwrap();
        let installed: Vec<InstalledPackage> = ["pw-demo", "pw-held", "pw-needy"]
            .iter()
            .map(|name| InstalledPackage {
                name: (*name).into(),
                architecture: "all".into(),
                version: "1.0-1".into(),
                source_name: (*name).into(),
                source_version: "1.0-1".into(),
                state: PackageState::Installed,
                held: *name == "pw-held",
            })
            .collect();
        let pending = combine(&simulation, &policies, &indexes, &installed, "amd64");
        let summary: Vec<(&str, &str, &str, bool, Option<KeptBackReason>)> = pending
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.installed_version.as_deref().unwrap_or("-"),
                    p.candidate_version.as_str(),
                    p.security,
                    p.kept_back,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("pw-demo", "1.0-1", "1.1-1", true, None),
                ("pw-held", "1.0-1", "1.1-1", false, Some(KeptBackReason::Held)),
                ("pw-needy", "1.0-1", "1.1-1", false, Some(KeptBackReason::Dependencies)),
            ]
        );
        assert_eq!(pending[0].repositories[0].label.as_deref(), Some("Debian-Security"));
        assert_eq!(pending[0].repositories[0].codename.as_deref(), Some("bookworm-security"));
    }
}
