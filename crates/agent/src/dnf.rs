//! The dnf driver: installed packages from rpm, pending updates from `dnf check-update`.
//!
//! The driver is given an install root (`/` on a real machine, a sandbox in tests), dnf's
//! release version and any `--setopt` options (a sandbox's `reposdir` and `cachedir`). dnf runs
//! with its plugins off (`--disableplugin=*`), so a plugin that writes outside the install root
//! or changes the answer runs nowhere; only `needs-restarting`, itself a plugin, is turned back on
//! for the one call that needs it.
//!
//! `check-update` exits 100 when updates exist, 0 when none; any other exit is an error. Its
//! lines are `NAME.ARCH VERSION REPOSITORY`; a name too long for its column is printed alone and
//! the rest follows on the next line. The "Obsoleting Packages" section that may follow repeats
//! packages already listed, so it is not read. Security updates are those that
//! `check-update --security` also lists (the repositories' updateinfo says so).
//!
//! FIXME: packages locked with the versionlock plugin are not reported as held, because plugins
//! are off; reading `/etc/dnf/plugins/versionlock.list` in the install root would fix it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use patchwarden_versions::RpmVersion;

use crate::inventory::{InstalledPackage, PendingUpdate, Repository};
use crate::process::{self, Invocation, ProcessError};
use crate::rpm::{RpmDatabase, RpmError};

/// `dnf check-update`'s exit code when updates are available.
pub const UPDATES_AVAILABLE: i32 = 100;

/// Asking dnf or rpm failed.
#[derive(Debug, thiserror::Error)]
pub enum DnfError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Rpm(#[from] RpmError),
    #[error("unexpected output from dnf check-update, line {line}: {problem}")]
    Output { line: usize, problem: String },
}

/// dnf and rpm on one install root.
#[derive(Debug, Clone)]
pub struct DnfDriver {
    /// `--installroot`; `None` for the machine itself.
    pub install_root: Option<PathBuf>,
    /// `--releasever`, needed when the install root has no release package to tell it.
    pub release_version: Option<String>,
    /// `--setopt=KEY=VALUE` options, such as `reposdir=...` and `cachedir=...`.
    pub setopts: Vec<String>,
    /// rpm's `--dbpath` inside the install root, when not rpm's default.
    pub rpm_dbpath: Option<PathBuf>,
    /// `PATH` for dnf and rpm.
    pub path: String,
    pub timeout: Duration,
}

/// One line of `dnf check-update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailableUpdate {
    pub name: String,
    pub architecture: String,
    /// `[epoch:]version-release`, as rpm versions are written in the inventory.
    pub version: String,
    pub repository: String,
}

impl DnfDriver {
    /// The machine's own dnf and rpm.
    pub fn system() -> Self {
        DnfDriver {
            install_root: None,
            release_version: None,
            setopts: Vec::new(),
            rpm_dbpath: None,
            path: process::DEFAULT_PATH.to_owned(),
            timeout: process::DEFAULT_TIMEOUT,
        }
    }

    /// A dnf command with the driver's root, options and environment, all plugins off.
    pub fn invocation(&self) -> Invocation {
        let mut invocation = Invocation::new("dnf")
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .timeout(self.timeout)
            .args(["-q", "--disableplugin=*"]);
        if let Some(root) = &self.install_root {
            invocation = invocation.arg(format!("--installroot={}", root.display()));
        }
        if let Some(release) = &self.release_version {
            invocation = invocation.arg(format!("--releasever={release}"));
        }
        invocation.args(self.setopts.iter().map(|option| format!("--setopt={option}")))
    }

    /// The rpm database under the same install root.
    pub fn rpm_database(&self) -> RpmDatabase {
        RpmDatabase {
            root: self.install_root.clone(),
            dbpath: self.rpm_dbpath.clone(),
            path: self.path.clone(),
            timeout: self.timeout,
        }
    }

    /// The installed packages, through rpm's query interface.
    pub fn installed_packages(&self) -> Result<Vec<InstalledPackage>, DnfError> {
        Ok(self.rpm_database().installed_packages()?)
    }

    /// `dnf check-update [--security]`: the available updates.
    pub fn available_updates(&self, security_only: bool) -> Result<Vec<AvailableUpdate>, DnfError> {
        let mut invocation =
            self.invocation().arg("check-update").accept_exit_code(UPDATES_AVAILABLE);
        if security_only {
            invocation = invocation.arg("--security");
        }
        let output = invocation.run()?;
        let updates = parse_check_update(&output.stdout)?;
        if output.code == 0 && !updates.is_empty() {
            let problem = format!("exit code 0 (no updates) but {} updates listed", updates.len());
            return Err(DnfError::Output { line: 1, problem });
        }
        Ok(updates)
    }

    /// The pending updates, with their installed versions and security marks.
    pub fn pending_updates(&self) -> Result<Vec<PendingUpdate>, DnfError> {
        let available = self.available_updates(false)?;
        if available.is_empty() {
            return Ok(Vec::new());
        }
        let security = self.available_updates(true)?;
        let installed = self.installed_packages()?;
        Ok(combine(&available, &security, &installed))
    }

    /// `dnf needs-restarting -r`: exit 1 means a reboot is required, 0 that none is.
    pub fn needs_reboot(&self) -> Result<bool, DnfError> {
        let output = self
            .invocation()
            .args(["--enableplugin=needs_restarting", "needs-restarting", "-r"])
            .accept_exit_code(1)
            .run()?;
        Ok(output.code == 1)
    }
}

/// Joins `check-update` with the security list and the installed versions.
pub fn combine(
    available: &[AvailableUpdate],
    security: &[AvailableUpdate],
    installed: &[InstalledPackage],
) -> Vec<PendingUpdate> {
    let security: BTreeSet<(&str, &str, &str)> = security
        .iter()
        .map(|update| (update.name.as_str(), update.architecture.as_str(), update.version.as_str()))
        .collect();
    let mut pending: Vec<PendingUpdate> = available
        .iter()
        .map(|update| {
            // Several versions may be installed (kernels): the newest is the one upgraded from.
            let installed_version = installed
                .iter()
                .filter(|p| p.name == update.name && p.architecture == update.architecture)
                .max_by(|a, b| {
                    RpmVersion::parse(&a.version).ok().cmp(&RpmVersion::parse(&b.version).ok())
                })
                .map(|p| p.version.clone());
            let key = (update.name.as_str(), update.architecture.as_str(), update.version.as_str());
            PendingUpdate {
                name: update.name.clone(),
                architecture: update.architecture.clone(),
                installed_version,
                candidate_version: update.version.clone(),
                repositories: vec![Repository {
                    index: update.repository.clone(),
                    ..Repository::default()
                }],
                security: security.contains(&key),
                kept_back: None,
            }
        })
        .collect();
    pending.sort();
    pending
}

/// Parses `dnf -q check-update`'s standard output.
pub fn parse_check_update(text: &str) -> Result<Vec<AvailableUpdate>, DnfError> {
    let mut updates = Vec::new();
    let mut wrapped_name: Option<(usize, &str)> = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let error = |problem: String| DnfError::Output { line: line_number, problem };
        if line.trim().is_empty()
            || line.starts_with("Last metadata expiration check")
            || line.starts_with("Security:")
        {
            continue;
        }
        if line.trim() == "Obsoleting Packages" {
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name_arch, version, repository) = match (wrapped_name.take(), &words[..]) {
            (None, &[name_arch, version, repository]) => (name_arch, version, repository),
            (None, &[name_arch]) => {
                wrapped_name = Some((line_number, name_arch));
                continue;
            }
            (Some((_, name_arch)), &[version, repository]) => (name_arch, version, repository),
            _ => return Err(error(format!("'{line}' is not 'NAME.ARCH VERSION REPOSITORY'"))),
        };
        let (name, architecture) = name_arch
            .rsplit_once('.')
            .filter(|(name, arch)| !name.is_empty() && !arch.is_empty())
            .ok_or_else(|| error(format!("'{name_arch}' is not NAME.ARCH")))?;
        updates.push(AvailableUpdate {
            name: name.to_owned(),
            architecture: architecture.to_owned(),
            version: version.to_owned(),
            repository: repository.to_owned(),
        });
    }
    if let Some((line, name_arch)) = wrapped_name {
        return Err(DnfError::Output {
            line,
            problem: format!("'{name_arch}' has no version and repository"),
        });
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::PackageState;

    fn summary(updates: &[AvailableUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|u| format!("{} {} {} {}", u.name, u.architecture, u.version, u.repository))
            .collect()
    }

    #[test]
    fn check_update_from_an_install_root_parses() {
        let long = "pw-a-package-with-a-name-long-enough-to-push-the-columns-of-dnf-output-apart";
        let updates =
            parse_check_update(include_str!("../tests/fixtures/dnf/check-update.out")).unwrap();
        assert_eq!(
            summary(&updates),
            [
                format!("{long} noarch 1.1-1 pwfixtures"),
                "pw-demo noarch 1.1-1 pwfixtures".into(),
                "pw-epoch noarch 2:2.1-1 pwfixtures".into(),
            ]
        );
        assert_eq!(
            parse_check_update(include_str!("../tests/fixtures/dnf/check-update-none.out"))
                .unwrap(),
            []
        );
    }

    #[test]
    fn check_update_lines_are_read_word_by_word() {
        let cases: [(&str, Result<&[&str], usize>); 7] = [
            (
                "\nkernel-core.x86_64    5.14.0-362.13.1.el9_3    baseos\n",
                Ok(&["kernel-core x86_64 5.14.0-362.13.1.el9_3 baseos"]),
            ),
            (
                "Last metadata expiration check: 0:00:07 ago on Fri Dec  4 15:51:20 2026.\n\nbash.x86_64 5.1.8-9.el9 baseos\n",
                Ok(&["bash x86_64 5.1.8-9.el9 baseos"]),
            ),
            (
                "python3-a-very-long-package-name-that-wraps.noarch\n          1.2-3.el9           appstream\n",
                Ok(&["python3-a-very-long-package-name-that-wraps noarch 1.2-3.el9 appstream"]),
            ),
            (
                "bash.x86_64 5.1.8-9.el9 baseos\nObsoleting Packages\ngrub2-tools.x86_64 1:2.06-70.el9 baseos\n    grub2-tools.x86_64 1:2.06-61.el9 @baseos\n",
                Ok(&["bash x86_64 5.1.8-9.el9 baseos"]),
            ),
            ("bash.x86_64 5.1.8-9.el9\n", Err(1)),
            ("\nbash 5.1.8-9.el9 baseos\n", Err(2)),
            ("bash.x86_64\n", Err(1)),
        ];
        for (text, expected) in cases {
            match (parse_check_update(text), expected) {
                (Ok(updates), Ok(expected)) => assert_eq!(summary(&updates), expected, "{text}"),
                (Err(DnfError::Output { line, .. }), Err(expected)) => {
                    assert_eq!(line, expected, "{text}")
                }
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn pending_updates_carry_the_newest_installed_version_and_the_security_mark() {
        let installed = |name: &str, version: &str| InstalledPackage {
            name: name.into(),
            architecture: "x86_64".into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            state: PackageState::Installed,
            held: false,
        };
        let update = |name: &str, version: &str| AvailableUpdate {
            name: name.into(),
            architecture: "x86_64".into(),
            version: version.into(),
            repository: "baseos".into(),
        };
        let available =
            [update("kernel-core", "5.14.0-362.13.1.el9_3"), update("bash", "5.1.8-9.el9")];
        let security = [update("kernel-core", "5.14.0-362.13.1.el9_3")];
        let packages = [
            installed("kernel-core", "5.14.0-362.8.1.el9_3"),
            installed("kernel-core", "5.14.0-70.13.1.el9_0"),
            installed("bash", "5.1.8-6.el9"),
        ];
        let pending = combine(&available, &security, &packages);
        let got: Vec<(&str, Option<&str>, bool)> = pending
            .iter()
            .map(|p| (p.name.as_str(), p.installed_version.as_deref(), p.security))
            .collect();
        assert_eq!(
            got,
            [
                ("bash", Some("5.1.8-6.el9"), false),
                ("kernel-core", Some("5.14.0-362.8.1.el9_3"), true)
            ]
        );
        assert_eq!(pending[0].repositories[0].index, "baseos");
    }
}
