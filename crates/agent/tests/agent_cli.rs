//! The agent's enrolment, trust and loop, against a stand-in for the server's agent API.
//!
//! Most tests run the real `patchwarden-agent` binary against the fake server in
//! `agent_cli/fake_server.rs` (plain HTTP on 127.0.0.1, or HTTPS with a test CA); the inventory
//! comes from an apt and dpkg sandbox root built by `common`. Where a test needs a job to reach
//! a runner, it drives `run::Agent` as a library with a stand-in runner and inventory.

mod common;
#[path = "agent_cli/fake_server.rs"]
mod fake_server;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::DebSandbox;
use fake_server::{Fake, FakeServer, TestCa};
use jiff::{SignedDuration, Timestamp};
use patchwarden_agent::CollectError;
use patchwarden_agent::inventory::{
    Facts, InstalledPackage, Inventory, OperatingSystem, PackageManager, PackageState, RebootStatus,
};
use patchwarden_agent::run::{
    Agent, Ended, Executed, InventorySource, JobRunner, RunOptions, system_clock,
};
use patchwarden_agent::state::StateDir;
use patchwarden_protocol::{
    Environment, Job, JobKey, JobOutcome, JobReport, PROTOCOL_VERSION, RebootPolicy, SignedJob,
};
use tempfile::TempDir;

const TOKEN: &str = "pwe_abcdefghijklmnopqrstuvwx";
const CREDENTIAL: &str = "pwa_endpoint-three-credential";
const ENDPOINT: i64 = 3;

fn agent_binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_patchwarden-agent"));
    command.env("PATCHWARDEN_LOG", "info").stdin(Stdio::null());
    command
}

fn server_key() -> JobKey {
    JobKey::from_bytes(&[7; 32])
}

fn fake() -> Fake {
    Fake {
        tokens: [(TOKEN.to_owned(), false)].into(),
        endpoint_id: ENDPOINT,
        credential: CREDENTIAL.to_owned(),
        signing_key: server_key().public().to_hex(),
        system: "billing".to_owned(),
        interval_seconds: 60,
        ..Fake::default()
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// `patchwarden-agent enroll` into `state`.
fn enroll(server: &str, token: &str, state: &Path) -> Output {
    agent_binary()
        .args(["enroll", "--server", server, "--token", token, "--state-dir"])
        .arg(state)
        .output()
        .unwrap()
}

/// A temporary folder with an enrolled state directory and an apt sandbox for the inventory.
struct Endpoint {
    dir: TempDir,
    sandbox: DebSandbox,
}

impl Endpoint {
    fn enrolled(server: &FakeServer) -> Self {
        let endpoint = Endpoint { dir: tempfile::tempdir().unwrap(), sandbox: DebSandbox::new() };
        let output = enroll(&server.url, TOKEN, &endpoint.state());
        assert!(output.status.success(), "{}", text(&output));
        endpoint
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `patchwarden-agent run --once` on the sandbox, with extra arguments.
    fn run_once(&self, extra: &[&str]) -> Output {
        agent_binary()
            .args(["run", "--once", "--state-dir"])
            .arg(self.state())
            .arg("--apt-config")
            .arg(self.sandbox.apt_config())
            .arg("--dpkg-admindir")
            .arg(self.sandbox.admindir())
            .args(extra)
            .output()
            .unwrap()
    }

    fn last_sequence(&self) -> String {
        fs::read_to_string(self.state().join("last-sequence")).unwrap().trim().to_owned()
    }
}

/// A job for endpoint 3, valid for an hour from now.
fn job(id: i64, sequence: u64) -> Job {
    let now = system_clock();
    Job {
        format: 1,
        id,
        endpoint_id: ENDPOINT,
        sequence,
        issued_at: now,
        expires_at: now + SignedDuration::from_hours(1),
        window_end: now + SignedDuration::from_hours(2),
        request_id: 1,
        environment: Environment::Test,
        install: vec![patchwarden_protocol::PackagePin {
            name: "pw-demo".into(),
            version: "1.1-1".into(),
        }],
        health_checks: Vec::new(),
        rollback_on_failure: true,
        reboot: RebootPolicy::Never,
        recover_interrupted: false,
        keep_local_config: true,
    }
}

fn signed(job: &Job) -> SignedJob {
    server_key().sign(job).unwrap()
}

/// The check each report of the fake names, by job id, in the order they arrived.
fn refusals(server: &FakeServer) -> Vec<(i64, String)> {
    server
        .state()
        .reports
        .iter()
        .map(|report| match &report.outcome {
            JobOutcome::Refused { check, .. } => (report.job_id, check.clone()),
            other => (report.job_id, other.as_str().to_owned()),
        })
        .collect()
}

// --- enrolment over plain HTTP -----------------------------------------------------------------

#[test]
fn enrolment_over_loopback_http_writes_private_state_files() {
    let server = FakeServer::http(fake());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent/state");

    let output = enroll(&server.url, TOKEN, &state);
    assert!(output.status.success(), "{}", text(&output));
    assert!(stderr(&output).contains("enrolled as endpoint 3 of system billing (test)"));

    // The directory is 0700 and every file 0600; there is no CA over plain HTTP.
    assert_eq!(mode(&state), 0o700);
    for name in ["enrolment.json", "credential", "last-sequence"] {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
    assert!(!state.join("ca.pem").exists());
    let mut names: Vec<String> = fs::read_dir(&state)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["credential", "enrolment.json", "last-sequence"]);

    // What the files say.
    assert_eq!(fs::read_to_string(state.join("credential")).unwrap(), format!("{CREDENTIAL}\n"));
    assert_eq!(fs::read_to_string(state.join("last-sequence")).unwrap(), "0\n");
    let enrolment: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(state.join("enrolment.json")).unwrap()).unwrap();
    assert_eq!(enrolment["endpoint_id"], 3);
    assert_eq!(enrolment["server"], server.url.as_str());
    assert_eq!(enrolment["system"], "billing");
    assert_eq!(enrolment["environment"], "test");
    assert_eq!(enrolment["signing_key"], server_key().public().to_hex());
    assert_eq!(enrolment["ca_fingerprint"], serde_json::Value::Null);

    // What the server was sent: the token's secret, the host name, the protocol header.
    let fake = server.state();
    assert_eq!(fake.enrolments.len(), 1);
    assert_eq!(fake.enrolments[0].token, TOKEN);
    assert_eq!(fake.enrolments[0].protocol, PROTOCOL_VERSION);
    assert!(!fake.enrolments[0].hostname.is_empty());
    assert_eq!(fake.missing_version, 0);
}

#[test]
fn a_used_or_unknown_token_fails_with_the_servers_message() {
    let server = FakeServer::http(fake());
    let dir = tempfile::tempdir().unwrap();
    let first = enroll(&server.url, TOKEN, &dir.path().join("one"));
    assert!(first.status.success(), "{}", text(&first));

    let again = enroll(&server.url, TOKEN, &dir.path().join("two"));
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    let message = stderr(&again);
    assert!(message.contains("this enrolment token was used already"), "{message}");
    assert!(message.contains("409"), "{message}");
    assert!(message.contains(&format!("{}/api/v1/agent/enrol", server.url)), "{message}");
    assert!(!dir.path().join("two/enrolment.json").exists());

    let unknown = enroll(&server.url, "pwe_zzzzzzzzzzzzzzzzzzzzzz", &dir.path().join("three"));
    assert_eq!(unknown.status.code(), Some(3), "{}", text(&unknown));
    assert!(stderr(&unknown).contains("unknown enrolment token"), "{}", text(&unknown));
}

#[test]
fn enrolling_an_enrolled_directory_again_needs_force_and_spends_no_token() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);
    server.state().tokens.insert("pwe_second-token-for-three".into(), false);

    let again = enroll(&server.url, "pwe_second-token-for-three", &endpoint.state());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(stderr(&again).contains("already enrolled as endpoint 3"), "{}", text(&again));
    assert_eq!(server.state().enrolments.len(), 1, "the second token was not sent");

    let forced = agent_binary()
        .args(["enroll", "--force", "--server", &server.url])
        .args(["--token", "pwe_second-token-for-three", "--state-dir"])
        .arg(endpoint.state())
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(server.state().enrolments.len(), 2);
}

// --- what is refused before any connection -------------------------------------------------

#[test]
fn plain_http_to_a_non_loopback_name_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll("http://patchwarden.invalid:8080", TOKEN, &state);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = stderr(&output);
    // The agent's own refusal, not a failed name lookup or connection: nothing was tried.
    assert!(
        message.contains("refusing plain HTTP to http://patchwarden.invalid:8080"),
        "{message}"
    );
    assert!(!message.contains("lookup") && !message.contains("onnect"), "{message}");
    assert!(!state.exists(), "the state directory is made only after the checks");

    let fingerprint = "ab".repeat(32);
    let cases = [
        ("https://patchwarden.invalid", TOKEN.to_owned(), "carries no CA fingerprint"),
        ("http://127.0.0.1:9", format!("{TOKEN}.{fingerprint}"), "use an https:// URL"),
        ("http://127.0.0.1:9", "pwe_short".to_owned(), "token is not usable"),
        ("ftp://127.0.0.1:9", TOKEN.to_owned(), "must start with https:// or http://"),
    ];
    for (server, token, part) in cases {
        let output = enroll(server, &token, &state);
        assert_eq!(output.status.code(), Some(2), "{server}: {}", text(&output));
        assert!(stderr(&output).contains(part), "{server}: {}", text(&output));
    }
}

// --- HTTPS and the pinned CA ---------------------------------------------------------------

#[test]
fn https_enrolment_pins_the_tokens_ca_and_trusts_only_it() {
    let ca = TestCa::new("Patchwarden CA");
    let server = FakeServer::https(fake(), &ca, &ca);
    let endpoint = Endpoint { dir: tempfile::tempdir().unwrap(), sandbox: DebSandbox::new() };
    let token = format!("{TOKEN}.{}", ca.fingerprint);

    let output = enroll(&server.url, &token, &endpoint.state());
    assert!(output.status.success(), "{}", text(&output));
    let pinned = endpoint.state().join("ca.pem");
    assert_eq!(fs::read_to_string(&pinned).unwrap(), ca.pem);
    assert_eq!(mode(&pinned), 0o600);
    let enrolment = fs::read_to_string(endpoint.state().join("enrolment.json")).unwrap();
    assert!(enrolment.contains(&ca.fingerprint), "{enrolment}");

    // Later calls go over HTTPS with the pinned CA.
    let output = endpoint.run_once(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(server.state().check_ins.len(), 1);

    // A server whose certificate comes from another CA is not trusted, even at the same
    // address family and with a valid chain of its own.
    let other_ca = TestCa::new("Another CA");
    let impostor = FakeServer::https(fake(), &other_ca, &other_ca);
    let moved = enrolment.replace(&server.url, &impostor.url);
    fs::write(endpoint.state().join("enrolment.json"), moved).unwrap();
    let output = endpoint.run_once(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("{}/api/v1/agent/check-in", impostor.url)), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(impostor.state().check_ins.is_empty());
}

#[test]
fn a_ca_whose_fingerprint_is_not_the_tokens_is_refused_naming_both() {
    let ca = TestCa::new("Patchwarden CA");
    let other = TestCa::new("Another CA");
    let server = FakeServer::https(fake(), &ca, &ca);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let output = enroll(&server.url, &format!("{TOKEN}.{}", other.fingerprint), &state);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = stderr(&output);
    assert!(message.contains(&ca.fingerprint), "names the served CA: {message}");
    assert!(message.contains(&other.fingerprint), "names the token's: {message}");
    assert!(message.contains(&format!("{}/api/v1/agent/ca.pem", server.url)), "{message}");
    assert!(server.state().enrolments.is_empty(), "the token was not sent");
    assert!(!state.join("enrolment.json").exists());
}

#[test]
fn the_enrol_call_itself_trusts_only_the_fetched_ca() {
    // The CA file matches the token, but the TLS certificate comes from another CA: an
    // interceptor that copied the real CA file. The token must not reach it.
    let ca = TestCa::new("Patchwarden CA");
    let interceptor = TestCa::new("Interceptor");
    let server = FakeServer::https(fake(), &interceptor, &ca);
    let dir = tempfile::tempdir().unwrap();

    let output = enroll(&server.url, &format!("{TOKEN}.{}", ca.fingerprint), &dir.path().join("s"));
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(stderr(&output).contains("/api/v1/agent/enrol"), "{}", text(&output));
    assert!(server.state().enrolments.is_empty(), "the token never reached the interceptor");
}

// --- run --once ----------------------------------------------------------------------------

#[test]
fn run_once_sends_the_inventory_only_when_its_hash_changed() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);

    let first = endpoint.run_once(&[]);
    assert!(first.status.success(), "{}", text(&first));
    {
        let fake = server.state();
        assert_eq!(fake.check_ins.len(), 1);
        assert_eq!(fake.inventories.len(), 1);
        let (hash, inventory) = &fake.inventories[0];
        assert_eq!(&fake.check_ins[0].inventory_hash, hash);
        assert_eq!(&inventory.hash(), hash);
        assert_eq!(fake.check_ins[0].last_job_sequence, 0);
        let drift = system_clock().duration_since(fake.check_ins[0].agent_time).abs();
        assert!(drift < SignedDuration::from_secs(60), "agent_time is the agent's clock");
    }

    // Nothing changed: a check-in without an upload.
    let second = endpoint.run_once(&[]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(server.state().check_ins.len(), 2);
    assert_eq!(server.state().inventories.len(), 1);

    // A package appears in dpkg's database: the new inventory goes up.
    let status = endpoint.sandbox.admindir().join("status");
    fs::write(
        &status,
        "Package: pw-demo\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0-1\n\
         Maintainer: Patchwarden tests <tests@example.org>\nDescription: test package\n\n",
    )
    .unwrap();
    let third = endpoint.run_once(&[]);
    assert!(third.status.success(), "{}", text(&third));
    let fake = server.state();
    assert_eq!(fake.check_ins.len(), 3);
    assert_eq!(fake.inventories.len(), 2);
    assert_ne!(fake.inventories[0].0, fake.inventories[1].0);
    let names: Vec<&str> =
        fake.inventories[1].1.packages.iter().map(|package| package.name.as_str()).collect();
    assert_eq!(names, ["pw-demo"]);
    assert_eq!(fake.missing_version, 0);
}

#[test]
fn run_once_refuses_bad_jobs_and_reports_each_refusal_with_its_check() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);
    fs::write(endpoint.state().join("last-sequence"), "10\n").unwrap();

    let now = system_clock();
    let other_key = JobKey::from_bytes(&[8; 32]);
    let elsewhere = Job { endpoint_id: 4, ..job(2, 12) };
    let expired = Job {
        issued_at: now - SignedDuration::from_hours(3),
        expires_at: now - SignedDuration::from_hours(1),
        window_end: now - SignedDuration::from_mins(30),
        ..job(3, 13)
    };
    server.state().jobs = vec![
        other_key.sign(&job(1, 11)).unwrap(),
        signed(&elsewhere),
        signed(&expired),
        signed(&job(4, 9)),
        // A good job: it passes every check and reaches the executor, which fails it at
        // the install step because the sandbox's repository has no pw-demo 1.1-1.
        signed(&job(5, 14)),
    ];

    let output = endpoint.run_once(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        refusals(&server),
        [
            (1, "bad-signature".to_owned()),
            (2, "wrong-endpoint".to_owned()),
            (3, "expired".to_owned()),
            (4, "replayed".to_owned()),
            (5, "failed".to_owned()),
        ]
    );
    let fake = server.state();
    let replayed = fake.reports.iter().find(|report| report.job_id == 4).unwrap();
    assert_eq!(replayed.sequence, 9);
    match &replayed.outcome {
        JobOutcome::Refused { detail, .. } => {
            assert!(detail.contains("job sequence 9 was seen already"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    drop(fake);
    // Only the good job moved the sequence, and it did so on disk.
    assert_eq!(endpoint.last_sequence(), "14");

    // Reported jobs are not offered again; a new job reusing sequence 14 is a replay.
    server.state().jobs.push(signed(&job(6, 14)));
    let output = endpoint.run_once(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(refusals(&server).last().unwrap(), &(6, "replayed".to_owned()));
    assert_eq!(server.state().reports.len(), 6);
    assert_eq!(server.state().check_ins.last().unwrap().last_job_sequence, 14);
}

#[test]
fn scan_only_reports_the_inventory_and_refuses_jobs() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);
    server.state().jobs = vec![signed(&job(7, 1))];

    let output = endpoint.run_once(&["--scan-only"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(server.state().inventories.len(), 1);
    assert_eq!(refusals(&server), [(7, "scan-only".to_owned())]);
    // A refused job can never run later: its sequence is spent.
    assert_eq!(endpoint.last_sequence(), "1");
}

#[test]
fn run_refuses_a_missing_or_exposed_state_and_says_how_to_fix_it() {
    let server = FakeServer::http(fake());
    let fresh = Endpoint { dir: tempfile::tempdir().unwrap(), sandbox: DebSandbox::new() };
    let output = fresh.run_once(&[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(stderr(&output).contains("not enrolled:"), "{}", text(&output));
    assert!(stderr(&output).contains("patchwarden-agent enroll"), "{}", text(&output));

    let endpoint = Endpoint::enrolled(&server);
    let credential = endpoint.state().join("credential");
    fs::set_permissions(&credential, fs::Permissions::from_mode(0o644)).unwrap();
    let output = endpoint.run_once(&[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("{} has mode 0644", credential.display())), "{message}");
    assert!(message.contains(&format!("chmod 600 {}", credential.display())), "{message}");
    assert!(server.state().check_ins.is_empty(), "nothing was sent");
}

#[test]
fn a_revoked_credential_and_a_refused_inventory_fail_run_once() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);

    server.state().refuse_inventory = Some(axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    let output = endpoint.run_once(&[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(stderr(&output).contains("the fake refuses inventories"), "{}", text(&output));
    assert!(stderr(&output).contains("413"), "{}", text(&output));

    server.state().credential = "pwa_someone-else".into();
    let output = endpoint.run_once(&[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(stderr(&output).contains("unknown endpoint credential"), "{}", text(&output));
}

#[test]
fn an_unreachable_server_fails_run_once_with_the_url() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);
    let url = server.url.clone();
    drop(server);
    let output = endpoint.run_once(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(
        stderr(&output).contains(&format!("POST {url}/api/v1/agent/check-in")),
        "{}",
        text(&output)
    );
}

#[test]
fn sigterm_ends_the_wait_between_check_ins() {
    let server = FakeServer::http(fake());
    let endpoint = Endpoint::enrolled(&server);
    let mut child = agent_binary()
        .args(["run", "--interval", "3600", "--state-dir"])
        .arg(endpoint.state())
        .arg("--apt-config")
        .arg(endpoint.sandbox.apt_config())
        .arg("--dpkg-admindir")
        .arg(endpoint.sandbox.admindir())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || !server.state().check_ins.is_empty()));

    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || child.try_wait().unwrap().is_some()));
    assert!(started.elapsed() < Duration::from_secs(10));
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(stderr(&output).contains("stopped"), "{}", text(&output));
    assert_eq!(server.state().check_ins.len(), 1);
}

/// Polls `done` until it holds or `limit` passes; waits on a channel, as the agent does.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let (_keep, never) = mpsc::channel::<()>();
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        let _ = never.recv_timeout(Duration::from_millis(50));
    }
    done()
}

// --- the loop as a library, with a stand-in runner -----------------------------------------

/// A runner that records what it is given; `rebooting` makes it answer that the machine reboots.
#[derive(Default)]
struct RecordingRunner {
    state: PathBuf,
    resumed: Vec<JobReport>,
    rebooting: bool,
    /// The sequence on disk when each job started.
    sequence_on_disk: Vec<String>,
    executed: Vec<i64>,
    acknowledged: Vec<i64>,
}

impl JobRunner for RecordingRunner {
    fn resume(&mut self) -> Vec<JobReport> {
        std::mem::take(&mut self.resumed)
    }

    fn execute(&mut self, job: &Job) -> Executed {
        let on_disk = fs::read_to_string(self.state.join("last-sequence")).unwrap();
        self.sequence_on_disk.push(on_disk.trim().to_owned());
        self.executed.push(job.id);
        if self.rebooting {
            return Executed::Rebooting;
        }
        Executed::Finished(Box::new(succeeded(job.id, job.sequence)))
    }

    fn acknowledge(&mut self, job_id: i64) {
        self.acknowledged.push(job_id);
    }
}

fn succeeded(job_id: i64, sequence: u64) -> JobReport {
    JobReport {
        protocol: PROTOCOL_VERSION,
        job_id,
        sequence,
        outcome: JobOutcome::Succeeded,
        steps: Vec::new(),
        versions_before: Vec::new(),
        versions_after: Vec::new(),
        health: Vec::new(),
        config_files_left: Vec::new(),
        recovered_interrupted: false,
        reboot: None,
        finished_at: system_clock(),
    }
}

/// A fixed inventory, so library tests need no package manager.
struct FixedInventory(Inventory);

impl InventorySource for FixedInventory {
    fn collect(&mut self) -> Result<Inventory, CollectError> {
        Ok(self.0.clone())
    }
}

fn fixed_inventory() -> FixedInventory {
    let facts = Facts {
        os: OperatingSystem {
            id: "debian".into(),
            id_like: Vec::new(),
            name: "Debian GNU/Linux".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            release: "12".into(),
        },
        architecture: "x86_64".into(),
        running_kernel: "6.1.0-18-amd64".into(),
        newest_installed_kernel: None,
        boot_id: "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11".into(),
        reboot: RebootStatus::from_reasons(Vec::new()),
        competing_updaters: Vec::new(),
    };
    let package = InstalledPackage {
        name: "pw-demo".into(),
        architecture: "all".into(),
        version: "1.0-1".into(),
        source_name: "pw-demo".into(),
        source_version: "1.0-1".into(),
        state: PackageState::Installed,
        held: false,
    };
    FixedInventory(Inventory::new(PackageManager::Dpkg, vec![package], facts, Vec::new()))
}

/// An enrolled state directory, without the binary's sandbox.
fn enrolled_state(server: &FakeServer) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let output = enroll(&server.url, TOKEN, &dir.path().join("state"));
    assert!(output.status.success(), "{}", text(&output));
    dir
}

#[test]
fn a_good_job_reaches_the_runner_after_its_sequence_is_on_disk() {
    let server = FakeServer::http(fake());
    let dir = enrolled_state(&server);
    let state = dir.path().join("state");
    server.state().jobs = vec![signed(&job(21, 1)), signed(&job(22, 2))];
    let mut runner = RecordingRunner { state: state.clone(), ..RecordingRunner::default() };
    let mut inventory = fixed_inventory();

    let mut agent = Agent::new(
        StateDir::new(&state),
        &mut inventory,
        &mut runner,
        system_clock,
        RunOptions::default(),
    )
    .unwrap();
    let summary = agent.cycle().unwrap();
    assert_eq!(summary.executed, [21, 22]);
    assert!(summary.refused.is_empty());
    assert!(summary.inventory_sent);
    assert_eq!(summary.reports_confirmed, 2);
    drop(agent);

    assert_eq!(runner.sequence_on_disk, ["1", "2"], "persisted before each job ran");
    assert_eq!(runner.acknowledged, [21, 22], "acknowledged once the server had the report");
    let outcomes: Vec<_> = server
        .state()
        .reports
        .iter()
        .map(|report| (report.job_id, report.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [(21, "succeeded"), (22, "succeeded")]);
}

#[test]
fn reports_are_resent_until_the_server_answers_and_resumed_ones_go_first() {
    let server = FakeServer::http(fake());
    let dir = enrolled_state(&server);
    let state = dir.path().join("state");
    server.state().jobs = vec![signed(&job(31, 1))];
    server.state().fail_reports = true;
    let mut runner = RecordingRunner {
        state: state.clone(),
        // A job an earlier run finished before it was killed.
        resumed: vec![succeeded(30, 0)],
        ..RecordingRunner::default()
    };
    let mut inventory = fixed_inventory();
    let mut agent = Agent::new(
        StateDir::new(&state),
        &mut inventory,
        &mut runner,
        system_clock,
        RunOptions::default(),
    )
    .unwrap();

    // The server fails: the cycle fails before the check-in, as a failure worth retrying.
    let err = agent.cycle().unwrap_err();
    assert!(!err.is_fatal(), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("/api/v1/agent/jobs/30/report"), "{err}");
    assert!(server.state().check_ins.is_empty());

    // It recovers: the resumed report goes first, then the check-in, the job and its report.
    server.state().fail_reports = false;
    let summary = agent.cycle().unwrap();
    assert_eq!(summary.executed, [31]);
    assert_eq!(summary.reports_confirmed, 2);
    drop(agent);
    let ids: Vec<i64> = server.state().reports.iter().map(|report| report.job_id).collect();
    assert_eq!(ids, [30, 31]);
    assert_eq!(runner.acknowledged, [30, 31]);
}

#[test]
fn a_rebooting_job_ends_the_loop_and_its_report_comes_from_resume() {
    let server = FakeServer::http(fake());
    let dir = enrolled_state(&server);
    let state = dir.path().join("state");
    server.state().jobs = vec![signed(&job(41, 1))];
    let (stop_sender, stop) = mpsc::channel();

    let mut runner =
        RecordingRunner { state: state.clone(), rebooting: true, ..RecordingRunner::default() };
    let mut inventory = fixed_inventory();
    let mut agent = Agent::new(
        StateDir::new(&state),
        &mut inventory,
        &mut runner,
        system_clock,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(agent.run(&stop).unwrap(), Ended::Rebooting);
    drop(agent);
    assert!(server.state().reports.is_empty());

    // After the boot: the runner resumes with the report; the job is not run again.
    let mut runner = RecordingRunner {
        state: state.clone(),
        resumed: vec![succeeded(41, 1)],
        ..RecordingRunner::default()
    };
    let mut agent = Agent::new(
        StateDir::new(&state),
        &mut inventory,
        &mut runner,
        system_clock,
        RunOptions::default(),
    )
    .unwrap();
    stop_sender.send(()).unwrap();
    assert_eq!(agent.run(&stop).unwrap(), Ended::Stopped);
    drop(agent);
    assert!(runner.executed.is_empty());
    assert_eq!(runner.acknowledged, [41]);
    assert_eq!(server.state().reports.len(), 1);
    assert_eq!(server.state().check_ins.len(), 2);
}

#[test]
fn the_loop_checks_in_on_its_interval_until_stopped() {
    let server = FakeServer::http(fake());
    let dir = enrolled_state(&server);
    let state = dir.path().join("state");
    let mut runner = RecordingRunner { state: state.clone(), ..RecordingRunner::default() };
    let mut inventory = fixed_inventory();
    let options = RunOptions { interval: Some(Duration::from_secs(1)), ..RunOptions::default() };
    let (stop_sender, stop) = mpsc::channel();

    let shared_server = &server;
    let started = Instant::now();
    let ended = std::thread::scope(|scope| {
        scope.spawn(move || {
            assert!(
                wait_for(Duration::from_secs(20), || shared_server.state().check_ins.len() >= 3)
            );
            stop_sender.send(()).unwrap();
        });
        let mut agent =
            Agent::new(StateDir::new(&state), &mut inventory, &mut runner, system_clock, options)
                .unwrap();
        assert_eq!(agent.interval(), Duration::from_secs(1));
        agent.run(&stop).unwrap()
    });
    assert_eq!(ended, Ended::Stopped);
    // Three check-ins a second apart with ±20% jitter: at least 1.6 s, and no busy loop.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1600), "{elapsed:?}");
    let fake = server.state();
    assert!((3..=4).contains(&fake.check_ins.len()), "{}", fake.check_ins.len());
    assert_eq!(fake.inventories.len(), 1, "the hash did not change");
}

#[test]
fn the_library_refuses_plain_http_elsewhere_before_touching_the_directory() {
    // The library refuses a plain-HTTP non-loopback URL before it touches the directory.
    let dir = tempfile::tempdir().unwrap();
    let options = patchwarden_agent::run::EnrolOptions {
        server: "http://patchwarden.invalid".into(),
        token: TOKEN.into(),
        state_dir: StateDir::new(dir.path().join("state")),
        force: false,
        hostname: "test".into(),
        machine_id: None,
    };
    let err =
        patchwarden_agent::run::enrol(&options, Timestamp::from_second(0).unwrap()).unwrap_err();
    assert!(err.to_string().contains("refusing plain HTTP"), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(!dir.path().join("state").exists());
}
