//! A job's transaction on dnf and rpm, on the inventory's [`DnfDriver`]: its install root, release
//! version, `--setopt` options and rpm database.
//!
//! The transaction is `dnf install NAME-VERSION...`, which upgrades or downgrades to exactly
//! that version. Old package files are kept with dnf's `download` plugin (turned on for that one
//! call, as the driver does for needs-restarting), else taken from dnf's package cache when it
//! holds them; rpm cannot rebuild a package from its installed files, so when neither has the
//! version the job is refused. A rollback is `rpm -U --oldpackage --replacepkgs` of the kept
//! files, then `rpm -e` of the packages the job installed new.
//!
//! rpm has no interrupted state in the dpkg sense and no holds of its own, and the lock probed
//! is rpm's `.rpm.lock` in its database folder (dnf's own lock is a pid file, which dnf itself
//! waits on). Configuration files left are rpm's `.rpmnew` and `.rpmsave`; whether the local
//! file is kept is the package's own `%config(noreplace)` choice, which a job cannot change.
//!
//! FIXME: only the pinned packages are recorded and rolled back; dependencies dnf upgrades with
//! them are not. Reading `dnf install --assumeno`'s transaction summary would fix it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use patchwarden_protocol::PackagePin;

use super::journal::{Change, KeptFile};
use super::packages::{
    PackageOps, PlanError, TRANSACTION_TIMEOUT, fresh_dir, same_version, single_file, version_of,
};
use super::transient::TransientCommand;
use crate::dnf::DnfDriver;
use crate::inventory::{InstalledPackage, PackageManager, RebootReason};
use crate::process::Invocation;

/// dnf and rpm for a job.
#[derive(Debug)]
pub struct DnfOps<'a> {
    driver: &'a DnfDriver,
    dbpath: OnceLock<Result<PathBuf, String>>,
}

impl<'a> DnfOps<'a> {
    pub fn new(driver: &'a DnfDriver) -> Self {
        DnfOps { driver, dbpath: OnceLock::new() }
    }

    fn root(&self) -> PathBuf {
        self.driver.install_root.clone().unwrap_or_else(|| PathBuf::from("/"))
    }

    fn tool(&self, program: &str) -> Invocation {
        Invocation::new(program)
            .env("PATH", &self.driver.path)
            .env("LANG", "C.UTF-8")
            .timeout(self.driver.timeout)
    }

    /// `rpm` with the driver's root and database.
    fn rpm_argv(&self) -> Vec<String> {
        let mut argv = vec!["rpm".to_owned()];
        if let Some(root) = &self.driver.install_root {
            argv.extend(["--root".to_owned(), root.display().to_string()]);
        }
        if let Some(dbpath) = &self.driver.rpm_dbpath {
            argv.extend(["--dbpath".to_owned(), dbpath.display().to_string()]);
        }
        argv
    }

    fn rpm(&self) -> Invocation {
        let argv = self.rpm_argv();
        self.tool("rpm").args(&argv[1..])
    }

    /// `dnf` as the driver runs it, with `-y`.
    fn dnf_argv(&self) -> Vec<String> {
        let mut argv: Vec<String> =
            vec!["dnf".into(), "-q".into(), "-y".into(), "--disableplugin=*".into()];
        if let Some(root) = &self.driver.install_root {
            argv.push(format!("--installroot={}", root.display()));
        }
        if let Some(release) = &self.driver.release_version {
            argv.push(format!("--releasever={release}"));
        }
        argv.extend(self.driver.setopts.iter().map(|option| format!("--setopt={option}")));
        argv
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("PATH".into(), self.driver.path.clone()), ("LANG".into(), "C.UTF-8".into())]
    }

    /// rpm's database folder inside the root.
    fn dbpath(&self) -> Result<&PathBuf, String> {
        self.dbpath
            .get_or_init(|| match &self.driver.rpm_dbpath {
                Some(dbpath) => Ok(dbpath.clone()),
                None => self
                    .tool("rpm")
                    .args(["--eval", "%{_dbpath}"])
                    .run()
                    .map(|output| PathBuf::from(output.stdout.trim()))
                    .map_err(|error| error.to_string()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Name and `epoch:version-release` of an rpm file, checked against what it should be.
    fn check_rpm(&self, file: &Path, name: &str, version: &str) -> Result<(), String> {
        let output = self
            .tool("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}"])
            .arg(file)
            .run()
            .map_err(|error| error.to_string())?;
        let (found_name, found_version) =
            output.stdout.trim().split_once('\t').unwrap_or(("?", "?"));
        if found_name == name && same_version(PackageManager::Rpm, found_version, version) {
            Ok(())
        } else {
            Err(format!("{} is {found_name} {found_version}, not {name} {version}", file.display()))
        }
    }

    fn download(&self, name: &str, version: &str, dir: &Path) -> Result<PathBuf, String> {
        fresh_dir(dir)?;
        let argv = self.dnf_argv();
        self.tool("dnf")
            .args(&argv[1..])
            .args(["--enableplugin=download", "download"])
            .arg(format!("--destdir={}", dir.display()))
            .arg(format!("{name}-{version}"))
            .run()
            .map_err(|error| error.to_string())?;
        single_file(dir, "rpm")
    }

    /// A copy from dnf's package cache, found by its file name `NAME-VERSION-RELEASE.ARCH.rpm`.
    fn copy_from_cache(&self, name: &str, version: &str, dir: &Path) -> Result<PathBuf, String> {
        let cachedir = self
            .driver
            .setopts
            .iter()
            .find_map(|option| option.strip_prefix("cachedir="))
            .map_or_else(|| self.root().join("var/cache/dnf"), PathBuf::from);
        let without_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
        let prefix = format!("{name}-{without_epoch}.");
        let found = find_file(&cachedir, &|file_name: &str| {
            file_name.starts_with(&prefix) && file_name.ends_with(".rpm")
        })
        .ok_or_else(|| format!("no {prefix}*.rpm in {}", cachedir.display()))?;
        fresh_dir(dir)?;
        let file_name = found.file_name().ok_or("a cached file without a name")?;
        let target = dir.join(file_name);
        std::fs::copy(&found, &target).map_err(|error| format!("{}: {error}", found.display()))?;
        Ok(target)
    }
}

/// The first file under `dir` (depth-first, at most six levels) whose name `wanted` accepts.
fn find_file(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    fn walk(dir: &Path, wanted: &dyn Fn(&str) -> bool, depth: usize) -> Option<PathBuf> {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(dir).ok()?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if path.is_file() && name.as_deref().is_some_and(wanted) {
                return Some(path);
            }
            if path.is_dir()
                && depth > 0
                && let Some(found) = walk(&path, wanted, depth - 1)
            {
                return Some(found);
            }
        }
        None
    }
    walk(dir, wanted, 6)
}

impl PackageOps for DnfOps<'_> {
    fn manager(&self) -> PackageManager {
        PackageManager::Rpm
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>, String> {
        self.driver.installed_packages().map_err(|error| error.to_string())
    }

    fn lock_files(&self) -> Result<Vec<PathBuf>, String> {
        let dbpath = self.dbpath()?;
        let inside = dbpath.strip_prefix("/").unwrap_or(dbpath);
        Ok(vec![self.root().join(inside).join(".rpm.lock")])
    }

    fn interrupted(&self) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn recover_command(
        &self,
        _keep_local_config: bool,
    ) -> Result<Option<TransientCommand>, String> {
        Ok(None)
    }

    fn plan(
        &self,
        pins: &[PackagePin],
        installed: &[InstalledPackage],
    ) -> Result<Vec<Change>, PlanError> {
        Ok(pins
            .iter()
            .filter_map(|pin| {
                let before = version_of(PackageManager::Rpm, installed, &pin.name);
                let unchanged = before
                    .as_deref()
                    .is_some_and(|v| same_version(PackageManager::Rpm, v, &pin.version));
                (!unchanged).then(|| Change {
                    name: pin.name.clone(),
                    before,
                    after: pin.version.clone(),
                })
            })
            .collect())
    }

    fn keep(&self, name: &str, version: &str, dir: &Path) -> Result<KeptFile, String> {
        let kept = |path: PathBuf, how: &str| KeptFile {
            name: name.to_owned(),
            version: version.to_owned(),
            path,
            how: how.to_owned(),
        };
        let downloaded = self.download(name, version, dir).and_then(|path| {
            self.check_rpm(&path, name, version)?;
            Ok(path)
        });
        let download_error = match downloaded {
            Ok(path) => return Ok(kept(path, "downloaded")),
            Err(error) => error,
        };
        let cached = self.copy_from_cache(name, version, dir).and_then(|path| {
            self.check_rpm(&path, name, version)?;
            Ok(path)
        });
        match cached {
            Ok(path) => Ok(kept(path, "copied from the dnf cache")),
            Err(cache_error) => Err(format!(
                "dnf download: {download_error}; dnf cache: {cache_error}; rpm cannot rebuild a \
                 package from its installed files"
            )),
        }
    }

    fn kept_file_matches(&self, file: &KeptFile) -> bool {
        file.path.is_file() && self.check_rpm(&file.path, &file.name, &file.version).is_ok()
    }

    fn install_command(
        &self,
        pins: &[PackagePin],
        _keep_local_config: bool,
        _lock_wait: Duration,
    ) -> Result<TransientCommand, String> {
        let mut argv = self.dnf_argv();
        argv.push("install".into());
        argv.extend(pins.iter().map(|pin| format!("{}-{}", pin.name, pin.version)));
        Ok(TransientCommand::new(self.env(), TRANSACTION_TIMEOUT).then(argv))
    }

    fn rollback_command(
        &self,
        kept: &[KeptFile],
        remove: &[String],
        _keep_local_config: bool,
    ) -> Result<TransientCommand, String> {
        let mut command = TransientCommand::new(self.env(), TRANSACTION_TIMEOUT);
        if !kept.is_empty() {
            let mut argv = self.rpm_argv();
            argv.extend(["-U", "--oldpackage", "--replacepkgs"].map(str::to_owned));
            argv.extend(kept.iter().map(|file| file.path.display().to_string()));
            command = command.then(argv);
        }
        if !remove.is_empty() {
            let mut argv = self.rpm_argv();
            argv.push("-e".into());
            argv.extend(remove.iter().cloned());
            command = command.then(argv);
        }
        Ok(command)
    }

    fn restore_holds(&self, _names: &[String]) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn config_files_left(&self, names: &[String]) -> Result<Vec<String>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let output = self
            .rpm()
            .arg("-qc")
            .args(names)
            .accept_exit_code(1)
            .run()
            .map_err(|error| error.to_string())?;
        let root = self.root();
        let mut left = Vec::new();
        for config in output.stdout.lines().map(str::trim).filter(|line| line.starts_with('/')) {
            for suffix in [".rpmnew", ".rpmsave"] {
                if root.join(format!("{}{suffix}", config.trim_start_matches('/'))).exists() {
                    left.push(format!("{config}{suffix}"));
                }
            }
        }
        left.sort();
        left.dedup();
        Ok(left)
    }

    fn reboot_reasons(&self) -> Result<Vec<RebootReason>, String> {
        let required = self.driver.needs_reboot().map_err(|error| error.to_string())?;
        Ok(if required { vec![RebootReason::NeedsRestarting] } else { Vec::new() })
    }
}
