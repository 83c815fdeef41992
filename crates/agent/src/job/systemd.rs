//! What the executor needs from systemd, behind one small interface: a unit's state, a
//! transient run that outlives the agent, and the reboot.
//!
//! [`SystemctlSystemd`] calls the real programs (`systemctl`, `systemd-run`) through
//! [`crate::process`]; tests point it at a stand-in `systemctl` script they write. Where a machine
//! has no systemd (containers, the test machines), `systemd_run: None` starts the transient run
//! as a detached child in its own process group instead: it survives the agent's exit or crash,
//! not a kill of every process on the machine, which a transient unit would.

use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::transient::WrappedCommand;
use crate::process::{self, Invocation, ProcessError};

/// systemd refused, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot start the detached run {name}: {source}")]
    Spawn { name: String, source: io::Error },
    #[error("'{0}' is not a unit name")]
    BadUnitName(String),
}

/// Unit checks, transient runs and the reboot.
pub trait Systemd: Send + Sync + fmt::Debug {
    /// Whether `unit` is active.
    fn unit_active(&self, unit: &str) -> Result<bool, SystemdError>;

    /// Starts `command` as the transient unit `name`, so that it keeps running when the agent
    /// dies or is restarted; returns once it was started, without waiting for it.
    fn run_transient(&self, name: &str, command: &WrappedCommand) -> Result<(), SystemdError>;

    /// Asks for a reboot; returns once it was asked for.
    fn reboot(&self) -> Result<(), SystemdError>;
}

/// systemd through its programs.
#[derive(Debug, Clone)]
pub struct SystemctlSystemd {
    pub systemctl: PathBuf,
    /// `None` on a machine without systemd: transient runs are detached children instead.
    pub systemd_run: Option<PathBuf>,
    /// `PATH` for the programs.
    pub path: String,
    pub timeout: Duration,
}

impl SystemctlSystemd {
    /// The machine's own `systemctl` and `systemd-run`.
    pub fn machine() -> Self {
        SystemctlSystemd {
            systemctl: "systemctl".into(),
            systemd_run: Some("systemd-run".into()),
            path: process::DEFAULT_PATH.to_owned(),
            timeout: Duration::from_secs(90),
        }
    }

    fn program(&self, program: &PathBuf) -> Invocation {
        Invocation::new(program)
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .timeout(self.timeout)
    }
}

/// A unit name as systemd writes them: no leading `-`, no white space, no `/`.
fn checked_unit(unit: &str) -> Result<&str, SystemdError> {
    let plain = !unit.is_empty()
        && !unit.starts_with('-')
        && unit.chars().all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if plain { Ok(unit) } else { Err(SystemdError::BadUnitName(unit.to_owned())) }
}

impl Systemd for SystemctlSystemd {
    fn unit_active(&self, unit: &str) -> Result<bool, SystemdError> {
        // `is-active` exits 0 when active and 1 to 4 for the inactive, failed and unknown.
        let output = self
            .program(&self.systemctl)
            .args(["is-active", "--quiet", "--"])
            .arg(checked_unit(unit)?)
            .accept_exit_code(1)
            .accept_exit_code(2)
            .accept_exit_code(3)
            .accept_exit_code(4)
            .run()?;
        Ok(output.code == 0)
    }

    fn run_transient(&self, name: &str, command: &WrappedCommand) -> Result<(), SystemdError> {
        let name = checked_unit(name)?;
        match &self.systemd_run {
            Some(systemd_run) => {
                let limit = command.timeout.as_secs().saturating_mul(4).max(60);
                let invocation = self
                    .program(systemd_run)
                    .arg(format!("--unit={name}"))
                    .args(["--collect", "--quiet", "--property=KillMode=control-group"])
                    .arg(format!("--property=RuntimeMaxSec={limit}"))
                    .args(command.env.iter().map(|(key, value)| format!("--setenv={key}={value}")))
                    .arg("--")
                    .args(&command.argv);
                invocation.run()?;
                Ok(())
            }
            None => detach(name, command),
        }
    }

    fn reboot(&self) -> Result<(), SystemdError> {
        self.program(&self.systemctl).arg("reboot").run()?;
        Ok(())
    }
}

/// Starts the wrapper in its own process group with nothing inherited, and reaps it on a thread
/// of its own when it exits while this process still runs.
fn detach(name: &str, command: &WrappedCommand) -> Result<(), SystemdError> {
    let spawn_error = |source| SystemdError::Spawn { name: name.to_owned(), source };
    let (program, args) =
        command.argv.split_first().ok_or_else(|| spawn_error(io::Error::other("empty command")))?;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_that_could_be_options_are_refused() {
        assert!(checked_unit("nginx.service").is_ok());
        assert!(checked_unit("getty@tty1.service").is_ok());
        for bad in ["", "--now", "a b", "../x", "x;y"] {
            assert!(matches!(checked_unit(bad), Err(SystemdError::BadUnitName(_))), "{bad}");
        }
    }
}
