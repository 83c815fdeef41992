//! Measures the agent's idle resident memory: `patchwarden-agent run` against the stand-in
//! server of the agent's tests, after a few cycles, waiting out a long interval.
//!
//! The agent is enrolled over plain HTTP on 127.0.0.1 and reads its inventory from a sandbox
//! root holding a copy of this machine's dpkg status file (apt runs on the sandbox, so nothing
//! of the machine's is touched). The fake asks for a check-in every second and hands out one
//! job signed with the wrong key, which the agent refuses and reports; after three check-ins
//! it names an interval of an hour. A second later the agent is idle, and `VmRSS` and `VmHWM`
//! are read from `/proc/PID/status`. The program exits 1 when the idle figure is over the
//! budget of 20 MiB.
//!
//! Run with `cargo bench -p patchwarden-agent --bench idle_memory` (the release build).

#[path = "../tests/agent_cli/fake_server.rs"]
mod fake_server;

use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fake_server::{Fake, FakeServer};
use jiff::SignedDuration;
use patchwarden_agent::run::system_clock;
use patchwarden_protocol::{Environment, Job, JobKey, RebootPolicy};

const BUDGET_KIB: u64 = 20 * 1024;
const TOKEN: &str = "pwe_abcdefghijklmnopqrstuvwx";

fn main() -> ExitCode {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (apt_config, admindir) = sandbox(dir.path());
    let key = JobKey::from_bytes(&[7; 32]);
    let server = FakeServer::http(Fake {
        tokens: [(TOKEN.to_owned(), false)].into(),
        endpoint_id: 3,
        credential: "pwa_endpoint-three-credential".into(),
        signing_key: key.public().to_hex(),
        system: "billing".into(),
        interval_seconds: 1,
        jobs: vec![JobKey::from_bytes(&[8; 32]).sign(&job()).expect("sign")],
        ..Fake::default()
    });

    // Enrol, then run with the server's interval.
    let state = dir.path().join("state");
    let agent = env!("CARGO_BIN_EXE_patchwarden-agent");
    let enrolled = Command::new(agent)
        .args(["enroll", "--server", &server.url, "--token", TOKEN, "--state-dir"])
        .arg(&state)
        .output()
        .expect("run the agent");
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
    let mut child = Command::new(agent)
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg("--apt-config")
        .arg(&apt_config)
        .arg("--dpkg-admindir")
        .arg(&admindir)
        .env("PATCHWARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the agent");

    // A few cycles, then an hour's interval and a second of idling.
    let cycles = 3;
    let seen = wait_for(Duration::from_secs(60), || server.state().check_ins.len() >= cycles);
    server.state().interval_seconds = 3600;
    let calmed = wait_for(Duration::from_secs(10), || server.state().check_ins.len() > cycles);
    pause(Duration::from_secs(1));
    let status = fs::read_to_string(format!("/proc/{}/status", child.id())).expect("proc status");
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = child.wait();

    let rss = field_kib(&status, "VmRSS:");
    let peak = field_kib(&status, "VmHWM:");
    let fake = server.state();
    println!(
        "patchwarden-agent run (release), {} packages in the inventory, after {} check-ins, {} \
         inventory upload(s), {} report(s): idle VmRSS {:.1} MiB, peak VmHWM {:.1} MiB \
         (budget {} MiB)",
        fake.inventories.first().map_or(0, |(_, inventory)| inventory.packages.len()),
        fake.check_ins.len(),
        fake.inventories.len(),
        fake.reports.len(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        BUDGET_KIB / 1024,
    );
    if !(seen && calmed) || fake.reports.is_empty() {
        eprintln!("the agent did not go through its cycles");
        return ExitCode::FAILURE;
    }
    if rss > BUDGET_KIB {
        eprintln!("over budget");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A sandbox root with a copy of this machine's dpkg status, and an apt configuration for it.
fn sandbox(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = dir.join("root");
    for folder in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg/updates",
    ] {
        fs::create_dir_all(root.join(folder)).expect("sandbox folder");
    }
    let admindir = root.join("var/lib/dpkg");
    let status = fs::read("/var/lib/dpkg/status").unwrap_or_default();
    fs::write(admindir.join("status"), status).expect("status");
    fs::write(root.join("etc/apt/sources.list"), "").expect("sources.list");
    let root_text = root.display();
    let config = format!(
        "Dir \"{root_text}/\";\nDir::State::status \"{root_text}/var/lib/dpkg/status\";\n\
         Dir::Etc::Parts \"{root_text}/etc/apt/apt.conf.d/\";\n\
         Dir::Bin::Methods \"/usr/lib/apt/methods/\";\nAPT::Architecture \"amd64\";\n\
         APT::Sandbox::User \"root\";\n"
    );
    let apt_config = dir.join("apt.conf");
    fs::write(&apt_config, config).expect("apt.conf");
    (apt_config, admindir)
}

fn job() -> Job {
    let now = system_clock();
    Job {
        format: 1,
        id: 1,
        endpoint_id: 3,
        sequence: 1,
        issued_at: now,
        expires_at: now + SignedDuration::from_hours(1),
        window_end: now + SignedDuration::from_hours(2),
        request_id: 1,
        environment: Environment::Test,
        install: Vec::new(),
        health_checks: Vec::new(),
        rollback_on_failure: false,
        reboot: RebootPolicy::Never,
        recover_interrupted: false,
        keep_local_config: true,
    }
}

fn field_kib(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        pause(Duration::from_millis(50));
    }
    done()
}

/// Waits on a channel nobody sends on (the thread sleep is kept out of the code base).
fn pause(duration: Duration) {
    let (_sender, receiver) = mpsc::channel::<()>();
    let _ = receiver.recv_timeout(duration);
}
