//! `patchwarden-agent`: parses the command line, sets up logging to stderr and the stop signal,
//! picks the package system, and calls the library.
//!
//! Exit codes: 0 done, 2 could not run (state, token, trust, arguments), 3 the server refused,
//! 4 the server failed or could not be reached.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use patchwarden_agent::PackageSystem;
use patchwarden_agent::apt::AptDriver;
use patchwarden_agent::dnf::DnfDriver;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::job::{Executor, ExecutorSettings, SystemctlSystemd};
use patchwarden_agent::run::{
    self, Agent, AgentError, Ended, EnrolOptions, ExecutorRunner, MachineInventory, RunOptions,
};
use patchwarden_agent::state::{DEFAULT_STATE_DIR, StateDir};
use tracing_subscriber::EnvFilter;

/// Patchwarden's endpoint agent.
#[derive(Debug, Parser)]
#[command(name = "patchwarden-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exchange a single-use enrolment token for this endpoint's own credential.
    Enroll(EnrollArgs),
    /// Check in on an interval, send the inventory when it changed, run and report jobs.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// The server's URL, e.g. https://patchwarden.example.org:8443.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The token from `patchwarden endpoint enroll-token`.
    #[arg(long, value_name = "TOKEN")]
    token: String,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Replace an existing enrolment in the state directory.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// One cycle (check-in, inventory, jobs, reports), then exit.
    #[arg(long)]
    once: bool,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// apt's configuration file (given to apt as APT_CONFIG).
    #[arg(long, value_name = "FILE", conflicts_with = "dnf_installroot")]
    apt_config: Option<PathBuf>,
    /// dpkg's admin directory.
    #[arg(long, value_name = "DIR", conflicts_with = "dnf_installroot")]
    dpkg_admindir: Option<PathBuf>,
    /// dnf's install root: use dnf and rpm on it.
    #[arg(long, value_name = "ROOT")]
    dnf_installroot: Option<PathBuf>,
    /// Report the inventory and refuse every job.
    #[arg(long)]
    scan_only: bool,
    /// Seconds between check-ins, instead of the server's interval.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    interval: Option<u64>,
    /// Fetch apt's package lists (`apt-get update`) every this many hours before a
    /// collection, the first time at start; 0 never.
    #[arg(long, value_name = "HOURS", default_value_t = 6)]
    refresh_lists_hours: u64,
    /// The `systemctl` for unit checks and the reboot (a stand-in in tests).
    #[arg(long, value_name = "PROGRAM", default_value = "systemctl")]
    systemctl: PathBuf,
    /// Run package transactions as detached children instead of transient systemd units
    /// (the default where systemd is not running).
    #[arg(long)]
    no_systemd_run: bool,
    /// The boot id file (a stand-in in tests; by default the kernel's).
    #[arg(long, value_name = "FILE")]
    boot_id_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("PATCHWARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let result = match cli.command {
        Command::Enroll(args) => enroll(args),
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = err.downcast_ref::<AgentError>().map_or(2, AgentError::exit_code);
            eprintln!("patchwarden-agent: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let options = EnrolOptions {
        server: args.server,
        token: args.token,
        state_dir: StateDir::new(args.state_dir),
        force: args.force,
        hostname: run::hostname(),
        machine_id: run::machine_id(),
    };
    let enrolment = run::enrol(&options, run::system_clock())?;
    eprintln!(
        "enrolled as endpoint {} of system {} ({}) with {}; state in {}",
        enrolment.endpoint_id,
        enrolment.system,
        enrolment.environment,
        enrolment.server,
        options.state_dir.path().display()
    );
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut inventory = MachineInventory {
        system: package_system(&args)?,
        facts: fact_sources(&args),
        refresh_every: (args.refresh_lists_hours > 0)
            .then(|| Duration::from_secs(args.refresh_lists_hours * 3600)),
        refreshed_at: None,
    };
    let options =
        RunOptions { scan_only: args.scan_only, interval: args.interval.map(Duration::from_secs) };

    let mut runner = ExecutorRunner(executor(&args, inventory.system.clone())?);
    let mut agent = Agent::new(
        StateDir::new(&args.state_dir),
        &mut inventory,
        &mut runner,
        run::system_clock,
        options,
    )?;

    if args.once {
        let summary = agent.cycle()?;
        tracing::info!(
            inventory_sent = summary.inventory_sent,
            executed = summary.executed.len(),
            refused = summary.refused.len(),
            reports_confirmed = summary.reports_confirmed,
            rebooting = summary.rebooting,
            "cycle done"
        );
        if !summary.problems.is_empty() {
            return Err(AgentError::Problems(summary.problems.join("; ")).into());
        }
        return Ok(());
    }

    let stop = stop_on_signals()?;
    match agent.run(&stop)? {
        Ended::Stopped => tracing::info!("stopped"),
        Ended::Rebooting => tracing::info!("the machine is rebooting"),
    }
    Ok(())
}

/// The machine's facts, with the boot id file the flags name.
fn fact_sources(args: &RunArgs) -> FactSources {
    let mut facts = FactSources::machine();
    if let Some(boot_id) = &args.boot_id_file {
        facts.boot_id = boot_id.clone();
    }
    facts
}

/// The job executor, keeping its journals and old package files in the state directory.
fn executor(args: &RunArgs, system: PackageSystem) -> anyhow::Result<Executor> {
    let systemd_running = Path::new("/run/systemd/system").is_dir();
    let systemd = SystemctlSystemd {
        systemctl: args.systemctl.clone(),
        systemd_run: (systemd_running && !args.no_systemd_run).then(|| "systemd-run".into()),
        ..SystemctlSystemd::machine()
    };
    Ok(Executor::new(ExecutorSettings {
        package_system: system,
        journal_dir: args.state_dir.join("jobs"),
        keep_dir: args.state_dir.join("kept"),
        systemd: Box::new(systemd),
        facts: fact_sources(args),
        clock: Box::new(run::system_clock),
    }))
}

/// apt when the flags name its files or dpkg is installed; dnf when the flags name an install
/// root or rpm is installed.
fn package_system(args: &RunArgs) -> anyhow::Result<PackageSystem> {
    if let Some(root) = &args.dnf_installroot {
        return Ok(PackageSystem::Dnf(DnfDriver {
            install_root: Some(root.clone()),
            ..DnfDriver::system()
        }));
    }
    if args.apt_config.is_some() || args.dpkg_admindir.is_some() {
        let admindir = args.dpkg_admindir.clone().unwrap_or_else(|| PathBuf::from("/var/lib/dpkg"));
        return Ok(PackageSystem::Apt(AptDriver::new(args.apt_config.clone(), admindir)));
    }
    if Path::new("/usr/bin/dpkg").exists() && Path::new("/var/lib/dpkg/status").exists() {
        return Ok(PackageSystem::Apt(AptDriver::system()));
    }
    if Path::new("/usr/bin/rpm").exists() {
        return Ok(PackageSystem::Dnf(DnfDriver::system()));
    }
    bail!(
        "cannot tell this machine's package system: neither dpkg (/usr/bin/dpkg with \
         /var/lib/dpkg) nor rpm (/usr/bin/rpm) is here; pass --dpkg-admindir or --dnf-installroot"
    )
}

/// A channel that receives once for each SIGTERM or SIGINT; the loop's wait listens to it.
fn stop_on_signals() -> anyhow::Result<mpsc::Receiver<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};

    let (sender, receiver) = mpsc::channel();
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("cannot handle signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for signal in signals.forever() {
                tracing::info!(signal, "stop asked for; finishing the current step");
                if sender.send(()).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(receiver)
}
