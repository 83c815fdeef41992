//! A job's transaction on apt and dpkg: the same apt configuration file and dpkg admin folder as
//! the inventory's [`AptDriver`], so a sandbox root in tests and the machine in production run
//! the same code.
//!
//! Where dpkg is run directly (`dpkg --configure -a`, `dpkg-deb`, `dpkg-query`, `dpkg-repack`) it
//! gets the options apt would give it (`DPkg::Options` from the apt configuration, which carries
//! a sandbox's `--root` and `--log`) and the driver's admin folder, so nothing reaches another
//! root. No prompt can stop a transaction: `DEBIAN_FRONTEND=noninteractive`, conffile questions
//! answered by `--force-confdef` and `--force-confold` (or `--force-confnew` alone when the job
//! does not keep local files), `UCF_FORCE_CONFFOLD` (or `CONFFNEW`) for ucf, needrestart in list mode,
//! apt-listchanges off, stdin closed, a hard timeout.
//!
//! Old package files are kept with `apt-get download NAME=VERSION`; when no repository carries
//! the version any more, `dpkg-repack` rebuilds it from the installed files (it needs the admin
//! folder at `ROOT/var/lib/dpkg`, which it derives from `--root`). A rollback installs the kept
//! files through `apt-get install`, so dependencies are checked as for any install.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use patchwarden_protocol::PackagePin;

use super::ROLLBACK_LOCK_WAIT;
use super::journal::{Change, KeptFile};
use super::packages::{
    PackageOps, PlanError, TRANSACTION_TIMEOUT, fresh_dir, same_version, single_file,
};
use super::transient::TransientCommand;
use crate::apt::{self as apt_driver, AptDriver};
use crate::dpkg;
use crate::inventory::{InstalledPackage, PackageManager, PackageState, RebootReason};
use crate::process::Invocation;

/// apt's view of where things are, read once from `apt-config`.
#[derive(Debug, Clone)]
struct AptPaths {
    /// dpkg's `--root`, `/` when apt passes none.
    root: PathBuf,
    dpkg: String,
    dpkg_options: Vec<String>,
    archives: PathBuf,
    lists: PathBuf,
}

/// apt and dpkg for a job.
#[derive(Debug)]
pub struct AptOps<'a> {
    driver: &'a AptDriver,
    paths: OnceLock<Result<AptPaths, String>>,
}

impl<'a> AptOps<'a> {
    pub fn new(driver: &'a AptDriver) -> Self {
        AptOps { driver, paths: OnceLock::new() }
    }

    fn paths(&self) -> Result<&AptPaths, String> {
        self.paths.get_or_init(|| read_paths(self.driver)).as_ref().map_err(Clone::clone)
    }

    /// A tool that is not apt, with the driver's `PATH`.
    fn tool(&self, program: &str) -> Invocation {
        Invocation::new(program)
            .env("PATH", &self.driver.path)
            .env("LANG", "C.UTF-8")
            .timeout(self.driver.timeout)
    }

    /// The environment of a transaction: nothing can ask a question.
    fn transaction_env(&self, keep_local_config: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_owned(), self.driver.path.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
            ("NEEDRESTART_MODE".into(), "l".into()),
            ("APT_LISTCHANGES_FRONTEND".into(), "none".into()),
        ];
        let ucf = if keep_local_config { "UCF_FORCE_CONFFOLD" } else { "UCF_FORCE_CONFFNEW" };
        env.push((ucf.into(), "1".into()));
        if let Some(config) = &self.driver.apt_config {
            env.push(("APT_CONFIG".into(), config.display().to_string()));
        }
        env
    }

    /// `apt-get` with the driver's status file and the answers to every question.
    fn apt_get(&self, keep_local_config: bool) -> Vec<String> {
        let status = self.driver.dpkg_admindir.join("status");
        let mut argv: Vec<String> = vec![
            "apt-get".into(),
            "-o".into(),
            format!("Dir::State::status={}", status.display()),
            "-q".into(),
            "-y".into(),
            "-o".into(),
            "Dpkg::Use-Pty=0".into(),
            "--allow-downgrades".into(),
            "--allow-change-held-packages".into(),
        ];
        for option in conffile_options(keep_local_config) {
            argv.push("-o".into());
            argv.push(format!("Dpkg::Options::={option}"));
        }
        argv
    }

    /// `dpkg` with apt's options for it and the driver's admin folder.
    fn dpkg_argv(&self) -> Result<Vec<String>, String> {
        let paths = self.paths()?;
        let mut argv = vec![paths.dpkg.clone()];
        argv.extend(paths.dpkg_options.iter().cloned());
        argv.push(format!("--admindir={}", self.driver.dpkg_admindir.display()));
        Ok(argv)
    }

    /// `Package` and `Version` of a `.deb`, checked against what it should be.
    fn check_deb(&self, file: &Path, name: &str, version: &str) -> Result<(), String> {
        let output = self
            .tool("dpkg-deb")
            .arg("-f")
            .arg(file)
            .args(["Package", "Version"])
            .run()
            .map_err(|error| error.to_string())?;
        let field = |key: &str| {
            output.stdout.lines().find_map(|line| line.strip_prefix(key)).map(str::trim)
        };
        let bare = name.split_once(':').map_or(name, |(bare, _)| bare);
        let (found_name, found_version) = (field("Package:"), field("Version:"));
        let matches = found_name == Some(bare)
            && found_version.is_some_and(|v| same_version(PackageManager::Dpkg, v, version));
        if matches {
            Ok(())
        } else {
            Err(format!(
                "{} is {} {}, not {bare} {version}",
                file.display(),
                found_name.unwrap_or("?"),
                found_version.unwrap_or("?")
            ))
        }
    }

    fn download(&self, name: &str, version: &str, dir: &Path) -> Result<PathBuf, String> {
        fresh_dir(dir)?;
        self.driver
            .invocation("apt-get")
            .args(["-q", "download"])
            .arg(format!("{name}={version}"))
            .current_dir(dir)
            .run()
            .map_err(|error| error.to_string())?;
        single_file(dir, "deb")
    }

    fn repack(&self, name: &str, dir: &Path) -> Result<PathBuf, String> {
        let root = &self.paths()?.root;
        let expected_admindir = root.join("var/lib/dpkg");
        if self.driver.dpkg_admindir != expected_admindir {
            return Err(format!(
                "dpkg-repack reads {}, not the admin folder {}",
                expected_admindir.display(),
                self.driver.dpkg_admindir.display()
            ));
        }
        fresh_dir(dir)?;
        self.tool("dpkg-repack")
            .arg(format!("--root={}", root.display()))
            .arg(name)
            .current_dir(dir)
            .run()
            .map_err(|error| error.to_string())?;
        single_file(dir, "deb")
    }
}

/// dpkg's conffile answers. Keeping: `--force-confdef` (dpkg's default where it has one) and
/// `--force-confold`. Replacing: `--force-confnew` alone, because with `--force-confdef` dpkg
/// takes its default, and its default for a file changed locally is to keep it.
fn conffile_options(keep_local_config: bool) -> &'static [&'static str] {
    if keep_local_config { &["--force-confdef", "--force-confold"] } else { &["--force-confnew"] }
}

fn read_paths(driver: &AptDriver) -> Result<AptPaths, String> {
    let shell = driver
        .invocation("apt-config")
        .args([
            "shell",
            "ARCHIVES",
            "Dir::Cache::archives/d",
            "LISTS",
            "Dir::State::lists/d",
            "DPKG",
            "Dir::Bin::dpkg/f",
        ])
        .run()
        .map_err(|error| error.to_string())?;
    let values = parse_shell(&shell.stdout);
    let value = |key: &str| values.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let dump = driver
        .invocation("apt-config")
        .args(["dump", "--format", "%v%n", "DPkg::Options"])
        .run()
        .map_err(|error| error.to_string())?;
    let dpkg_options: Vec<String> =
        dump.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let root = dpkg_options
        .iter()
        .rev()
        .find_map(|option| option.strip_prefix("--root="))
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    Ok(AptPaths {
        archives: value("ARCHIVES")
            .map(PathBuf::from)
            .ok_or("apt-config names no Dir::Cache::archives")?,
        lists: value("LISTS").map(PathBuf::from).ok_or("apt-config names no Dir::State::lists")?,
        dpkg: value("DPKG").filter(|v| !v.is_empty()).unwrap_or_else(|| "dpkg".into()),
        dpkg_options,
        root,
    })
}

/// `KEY='value'` lines of `apt-config shell` (a `'` inside is written `'"'"'`, or `'\''`).
fn parse_shell(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, quoted) = line.split_once('=')?;
            let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
            let value = inner.replace(r#"'"'"'"#, "'").replace(r"'\''", "'");
            Some((key.to_owned(), value))
        })
        .collect()
}

impl PackageOps for AptOps<'_> {
    fn manager(&self) -> PackageManager {
        PackageManager::Dpkg
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>, String> {
        self.driver.installed_packages().map_err(|error| error.to_string())
    }

    fn lock_files(&self) -> Result<Vec<PathBuf>, String> {
        let paths = self.paths()?;
        let admindir = &self.driver.dpkg_admindir;
        Ok(vec![
            admindir.join("lock-frontend"),
            admindir.join("lock"),
            paths.archives.join("lock"),
            paths.lists.join("lock"),
        ])
    }

    fn interrupted(&self) -> Result<Option<String>, String> {
        let mut problems = Vec::new();

        // dpkg's journal: entries it had no time to fold into the status file.
        let updates = self.driver.dpkg_admindir.join("updates");
        let entries = match std::fs::read_dir(&updates) {
            Ok(entries) => entries.filter_map(Result::ok).collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(format!("{}: {error}", updates.display())),
        };
        let journal = entries
            .iter()
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
            })
            .count();
        if journal > 0 {
            problems.push(format!("{journal} journal entries in {}", updates.display()));
        }

        // Packages dpkg left halfway.
        let packages =
            dpkg::read_database(&self.driver.dpkg_admindir).map_err(|error| error.to_string())?;
        for package in packages.iter().filter(|p| p.state != PackageState::Installed) {
            problems.push(format!(
                "{}:{} {} is {}",
                package.name,
                package.architecture,
                package.version,
                package.state.as_str()
            ));
        }
        Ok((!problems.is_empty()).then(|| format!("dpkg was interrupted: {}", problems.join("; "))))
    }

    fn recover_command(&self, keep_local_config: bool) -> Result<Option<TransientCommand>, String> {
        let mut argv = self.dpkg_argv()?;
        argv.extend(conffile_options(keep_local_config).iter().map(|o| (*o).to_owned()));
        argv.extend(["--configure".to_owned(), "-a".to_owned()]);
        let command =
            TransientCommand::new(self.transaction_env(keep_local_config), TRANSACTION_TIMEOUT)
                .then(argv);
        Ok(Some(command))
    }

    fn plan(
        &self,
        pins: &[PackagePin],
        _installed: &[InstalledPackage],
    ) -> Result<Vec<Change>, PlanError> {
        let simulation = self
            .driver
            .invocation("apt-get")
            .args(["-s", "-o", "Debug::NoLocking=1"])
            .args(["--allow-downgrades", "--allow-change-held-packages", "install"])
            .args(pins.iter().map(|pin| format!("{}={}", pin.name, pin.version)))
            .run()
            .map_err(|error| PlanError::Failed(error.to_string()))?;
        let removals: Vec<&str> = simulation
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix("Remv "))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        if !removals.is_empty() {
            return Err(PlanError::Refused {
                check: "transaction removes no packages".into(),
                detail: format!(
                    "installing the pinned versions would remove {}",
                    removals.join(", ")
                ),
            });
        }
        let parsed = apt_driver::parse_simulation(&simulation.stdout)
            .map_err(|e| PlanError::Failed(e.to_string()))?;
        Ok(parsed
            .installs
            .into_iter()
            .map(|install| Change {
                name: install.name,
                before: install.installed_version,
                after: install.candidate_version,
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
            self.check_deb(&path, name, version)?;
            Ok(path)
        });
        let download_error = match downloaded {
            Ok(path) => return Ok(kept(path, "downloaded")),
            Err(error) => error,
        };
        let repacked = self.repack(name, dir).and_then(|path| {
            self.check_deb(&path, name, version)?;
            Ok(path)
        });
        match repacked {
            Ok(path) => Ok(kept(path, "repacked with dpkg-repack")),
            Err(repack_error) => {
                Err(format!("apt-get download: {download_error}; dpkg-repack: {repack_error}"))
            }
        }
    }

    fn kept_file_matches(&self, file: &KeptFile) -> bool {
        file.path.is_file() && self.check_deb(&file.path, &file.name, &file.version).is_ok()
    }

    fn install_command(
        &self,
        pins: &[PackagePin],
        keep_local_config: bool,
        lock_wait: Duration,
    ) -> Result<TransientCommand, String> {
        let mut argv = self.apt_get(keep_local_config);
        argv.push("-o".into());
        argv.push(format!("DPkg::Lock::Timeout={}", lock_wait.as_secs().max(1)));
        argv.push("install".into());
        argv.extend(pins.iter().map(|pin| format!("{}={}", pin.name, pin.version)));
        Ok(TransientCommand::new(self.transaction_env(keep_local_config), TRANSACTION_TIMEOUT)
            .then(argv))
    }

    fn rollback_command(
        &self,
        kept: &[KeptFile],
        remove: &[String],
        keep_local_config: bool,
    ) -> Result<TransientCommand, String> {
        let mut command =
            TransientCommand::new(self.transaction_env(keep_local_config), TRANSACTION_TIMEOUT);

        // A transaction killed halfway leaves dpkg interrupted, and apt refuses to work on it.
        if self.interrupted()?.is_some()
            && let Some(recover) = self.recover_command(keep_local_config)?
        {
            command = recover;
        }
        if kept.is_empty() && remove.is_empty() {
            return Ok(command);
        }
        let mut argv = self.apt_get(keep_local_config);
        // Another program may take the lock between the executor's probe and this
        // transaction: apt waits for it rather than failing the rollback at once.
        argv.push("-o".into());
        argv.push(format!("DPkg::Lock::Timeout={}", ROLLBACK_LOCK_WAIT.as_secs()));
        argv.push("install".into());
        argv.extend(kept.iter().map(|file| file.path.display().to_string()));
        argv.extend(remove.iter().map(|name| format!("{name}-")));
        Ok(command.then(argv))
    }

    fn restore_holds(&self, names: &[String]) -> Result<Vec<String>, String> {
        let installed = self.installed()?;
        let released: Vec<String> = names
            .iter()
            .filter(|name| installed.iter().any(|p| &p.name == *name && !p.held))
            .cloned()
            .collect();
        if released.is_empty() {
            return Ok(released);
        }
        self.driver
            .invocation("apt-mark")
            .arg("hold")
            .args(&released)
            .run()
            .map_err(|error| error.to_string())?;
        Ok(released)
    }

    fn config_files_left(&self, names: &[String]) -> Result<Vec<String>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let root = self.paths()?.root.clone();
        let output = self
            .tool("dpkg-query")
            .arg(format!("--admindir={}", self.driver.dpkg_admindir.display()))
            .args(["-W", "-f", "${Conffiles}\\n"])
            .args(names)
            .accept_exit_code(1)
            .run()
            .map_err(|error| error.to_string())?;
        let mut left = Vec::new();
        let conffiles = output.stdout.lines().filter_map(|line| line.split_whitespace().next());
        for conffile in conffiles.filter(|path| path.starts_with('/')) {
            for suffix in [".dpkg-dist", ".dpkg-old"] {
                let on_disk = root.join(format!("{}{suffix}", conffile.trim_start_matches('/')));
                if on_disk.exists() {
                    left.push(format!("{conffile}{suffix}"));
                }
            }
        }
        left.sort();
        left.dedup();
        Ok(left)
    }

    fn reboot_reasons(&self) -> Result<Vec<RebootReason>, String> {
        // Debian says so in /run/reboot-required, which the facts read.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_config_shell_values_are_unquoted() {
        let parsed = parse_shell(
            "ARCHIVES='/var/cache/apt/archives/'\nDPKG='/usr/bin/dpkg'\nX='it'\"'\"'s'\n",
        );
        assert_eq!(
            parsed,
            [
                ("ARCHIVES".to_owned(), "/var/cache/apt/archives/".to_owned()),
                ("DPKG".into(), "/usr/bin/dpkg".into()),
                ("X".into(), "it's".into())
            ]
        );
    }

    #[test]
    fn conffile_answers_follow_the_job() {
        assert_eq!(conffile_options(true), ["--force-confdef", "--force-confold"]);
        assert_eq!(conffile_options(false), ["--force-confnew"]);
    }
}
