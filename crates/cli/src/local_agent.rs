//! The agent `patchwarden up` runs for this machine, in-process: enrolled once
//! into the local system's test environment (its state beside the server's
//! data), then checking in every minute in scan-only mode unless told to run
//! jobs, so a newcomer sees this machine's real packages and pending updates.
//!
//! It runs on its own thread with the agent library's blocking loop; `stop`
//! ends the loop's wait and joins the thread.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use patchwarden_agent::PackageSystem;
use patchwarden_agent::apt::AptDriver;
use patchwarden_agent::dnf::DnfDriver;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::run::{self, Agent, EnrolOptions, MachineInventory, NoExecutor, RunOptions};
use patchwarden_agent::state::StateDir;

/// The running agent thread.
#[derive(Debug)]
pub struct LocalAgent {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl LocalAgent {
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// This machine's package system, when it has one the agent reads.
fn package_system() -> Option<PackageSystem> {
    if Path::new("/usr/bin/dpkg").exists() && Path::new("/var/lib/dpkg/status").exists() {
        return Some(PackageSystem::Apt(AptDriver::system()));
    }
    Path::new("/usr/bin/rpm").exists().then(|| PackageSystem::Dnf(DnfDriver::system()))
}

/// The agent's state folder in `data_dir`.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent")
}

/// Whether the agent in `data_dir` is enrolled already.
pub fn enrolled(data_dir: &Path) -> bool {
    state_dir(data_dir).join("enrolment.json").exists()
}

/// Enrols the agent with `token` (blocking).
pub fn enrol(server: &str, token: String, data_dir: &Path) -> anyhow::Result<()> {
    let options = EnrolOptions {
        server: server.to_owned(),
        token,
        state_dir: StateDir::new(state_dir(data_dir)),
        force: false,
        hostname: run::hostname(),
        machine_id: run::machine_id(),
    };
    run::enrol(&options, run::system_clock()).context("cannot enrol this machine's agent")?;
    Ok(())
}

/// Starts the agent's loop on its own thread; `None` when this machine has
/// neither dpkg nor rpm.
pub fn start(data_dir: &Path) -> anyhow::Result<Option<LocalAgent>> {
    let Some(system) = package_system() else { return Ok(None) };
    let state = StateDir::new(state_dir(data_dir));
    let (stop, stopped) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("local-agent".to_owned())
        .spawn(move || {
            let mut inventory = MachineInventory {
                system,
                facts: FactSources::machine(),
                refresh_every: Some(Duration::from_secs(6 * 3600)),
                refreshed_at: None,
            };
            // Scan-only: jobs are refused before they reach the runner.
            let mut runner = NoExecutor { clock: run::system_clock };
            let options = RunOptions { scan_only: true, interval: Some(Duration::from_secs(60)) };
            let agent = Agent::new(state, &mut inventory, &mut runner, run::system_clock, options);
            let result = agent.and_then(|mut agent| agent.run(&stopped));
            if let Err(err) = result {
                tracing::warn!(error = %err, "this machine's agent stopped");
            }
        })
        .context("cannot start this machine's agent")?;
    Ok(Some(LocalAgent { stop, thread }))
}
