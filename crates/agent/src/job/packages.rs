//! What the executor asks of a package system, the same for apt and dnf: read the installed
//! versions, plan and run a transaction of exact versions, keep old package files, roll back.
//!
//! Nothing here decides anything about the job: the executor decides, these functions report.
//! Errors are plain text because each one ends up, as it is, in a report's step detail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use patchwarden_protocol::PackagePin;
use patchwarden_versions::Format;

use super::journal::{Change, KeptFile};
use super::transient::TransientCommand;
use crate::inventory::{InstalledPackage, PackageManager, RebootReason};

/// The hard limit of one command of a transaction (an install, a rollback, a recovery): longer
/// than the drivers' limit for queries, because a large upgrade takes a while.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A transaction that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The package manager cannot do it (an unknown version): the install step fails.
    Failed(String),
    /// It would do more than the job says (remove packages): the job is refused.
    Refused { check: String, detail: String },
}

/// One package system's side of a job.
pub trait PackageOps {
    fn manager(&self) -> PackageManager;

    /// The installed packages, as the inventory reads them.
    fn installed(&self) -> Result<Vec<InstalledPackage>, String>;

    /// The lock files the package manager takes, probed before a transaction.
    fn lock_files(&self) -> Result<Vec<PathBuf>, String>;

    /// What shows that an earlier run was interrupted, if anything does.
    fn interrupted(&self) -> Result<Option<String>, String>;

    /// The command that finishes an interrupted run (`dpkg --configure -a`), if there is one.
    fn recover_command(&self, keep_local_config: bool) -> Result<Option<TransientCommand>, String>;

    /// Every package the transaction installing `pins` would change, with its version before.
    fn plan(
        &self,
        pins: &[PackagePin],
        installed: &[InstalledPackage],
    ) -> Result<Vec<Change>, PlanError>;

    /// Puts the package file of `name` at `version` into `dir`.
    fn keep(&self, name: &str, version: &str, dir: &Path) -> Result<KeptFile, String>;

    /// Whether a file kept earlier is still there and is still that package and version.
    fn kept_file_matches(&self, file: &KeptFile) -> bool;

    /// Installs exactly `pins`, waiting at most `lock_wait` for a lock taken meanwhile.
    fn install_command(
        &self,
        pins: &[PackagePin],
        keep_local_config: bool,
        lock_wait: Duration,
    ) -> Result<TransientCommand, String>;

    /// Puts the kept files back and removes the packages that were not installed before.
    fn rollback_command(
        &self,
        kept: &[KeptFile],
        remove: &[String],
        keep_local_config: bool,
    ) -> Result<TransientCommand, String>;

    /// Holds each of `names` again that is not held now.
    fn restore_holds(&self, names: &[String]) -> Result<Vec<String>, String>;

    /// Configuration files the package manager left beside the local ones, for `names`.
    fn config_files_left(&self, names: &[String]) -> Result<Vec<String>, String>;

    /// Reasons for a reboot only the package manager knows (dnf's needs-restarting).
    fn reboot_reasons(&self) -> Result<Vec<RebootReason>, String>;
}

/// Checks every pin before any of them reaches a command line: a name is a package name (so it
/// can never be read as an option), a version is valid by the manager's rules, and there is at
/// least one pin.
pub fn validate_pins(manager: PackageManager, pins: &[PackagePin]) -> Result<(), String> {
    if pins.is_empty() {
        return Err("the job names no package".into());
    }
    for pin in pins {
        let (bare, arch) = match pin.name.split_once(':') {
            Some((bare, arch)) if manager == PackageManager::Dpkg => (bare, Some(arch)),
            _ => (pin.name.as_str(), None),
        };
        let name_chars = |c: char| c.is_ascii_alphanumeric() || "+-._".contains(c);
        let name_ok = bare.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bare.chars().all(name_chars)
            && arch.is_none_or(|arch| {
                !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name_ok {
            return Err(format!("'{}' is not a package name", pin.name));
        }
        format(manager)
            .validate(&pin.version)
            .map_err(|error| format!("{} '{}': {error}", pin.name, pin.version))?;
    }
    Ok(())
}

/// The version format of a package manager.
pub fn format(manager: PackageManager) -> Format {
    match manager {
        PackageManager::Dpkg => Format::Deb,
        PackageManager::Rpm => Format::Rpm,
    }
}

/// Whether two versions are the same version by the manager's rules (`0:1.0` is `1.0`).
pub fn same_version(manager: PackageManager, a: &str, b: &str) -> bool {
    match patchwarden_versions::compare(format(manager), a, b) {
        Ok(order) => order.is_eq(),
        Err(_) => a == b,
    }
}

/// The installed version of `name`; of several (architectures, kernels) the highest.
pub fn version_of(
    manager: PackageManager,
    installed: &[InstalledPackage],
    name: &str,
) -> Option<String> {
    let bare = name.split_once(':').map_or(name, |(bare, _)| bare);
    let arch = name.split_once(':').map(|(_, arch)| arch);
    installed
        .iter()
        .filter(|p| p.name == bare && arch.is_none_or(|arch| p.architecture == arch))
        .map(|p| p.version.clone())
        .max_by(|a, b| {
            patchwarden_versions::compare(format(manager), a, b).unwrap_or_else(|_| a.cmp(b))
        })
}

/// `name version` pins of `names` as installed now; names not installed are left out.
pub fn pins_of(
    manager: PackageManager,
    installed: &[InstalledPackage],
    names: &[String],
) -> Vec<PackagePin> {
    names
        .iter()
        .filter_map(|name| {
            version_of(manager, installed, name)
                .map(|version| PackagePin { name: name.clone(), version })
        })
        .collect()
}

/// The single file with `extension` in `dir`, after a download or a repack wrote it there.
pub fn single_file(dir: &Path, extension: &str) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("no .{extension} file in {}", dir.display())),
        n => Err(format!("{n} .{extension} files in {}", dir.display())),
    }
}

/// Empties `dir` (creating it), so a download leaves exactly one file in it.
pub fn fresh_dir(dir: &Path) -> Result<(), String> {
    let shown = |error: std::io::Error| format!("{}: {error}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(shown)?;
    }
    std::fs::create_dir_all(dir).map_err(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::PackageState;

    fn package(name: &str, arch: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            architecture: arch.into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            state: PackageState::Installed,
            held: false,
        }
    }

    #[test]
    fn pins_that_could_be_options_or_are_not_versions_are_refused() {
        let pin =
            |name: &str, version: &str| PackagePin { name: name.into(), version: version.into() };
        let deb = PackageManager::Dpkg;
        assert_eq!(
            validate_pins(deb, &[pin("pw-demo", "1:1.1-1"), pin("libc6:i386", "2.36-9")]),
            Ok(())
        );
        assert_eq!(validate_pins(PackageManager::Rpm, &[pin("python3.11_x", "1.0-1.el9")]), Ok(()));
        assert!(validate_pins(deb, &[]).unwrap_err().contains("no package"));
        for name in ["-oDPkg::Pre-Invoke::=touch /x", "--reinstall", "", "a b", "pw/x", "x:", ":x"]
        {
            let error = validate_pins(deb, &[pin(name, "1.0")]).unwrap_err();
            assert!(error.contains("is not a package name"), "{name}: {error}");
        }
        assert!(validate_pins(deb, &[pin("pw-demo", "-o")]).is_err());
        assert!(validate_pins(PackageManager::Rpm, &[pin("libc6:i386", "1.0")]).is_err());
    }

    #[test]
    fn versions_compare_by_the_managers_rules() {
        assert!(same_version(PackageManager::Dpkg, "0:1.0-1", "1.0-1"));
        assert!(!same_version(PackageManager::Dpkg, "1.0-1", "1.0-2"));
        assert!(same_version(PackageManager::Rpm, "0:1.1-1", "1.1-1"));
        let installed = [
            package("kernel-core", "x86_64", "5.14.0-70.el9"),
            package("kernel-core", "x86_64", "5.14.0-362.el9"),
            package("libc6", "i386", "2.36-9"),
            package("libc6", "amd64", "2.36-9+deb12u4"),
        ];
        assert_eq!(
            version_of(PackageManager::Rpm, &installed, "kernel-core").as_deref(),
            Some("5.14.0-362.el9")
        );
        assert_eq!(
            version_of(PackageManager::Dpkg, &installed, "libc6:i386").as_deref(),
            Some("2.36-9")
        );
        assert_eq!(version_of(PackageManager::Dpkg, &installed, "absent"), None);
    }
}
