//! The end-to-end harness: the real server in this process and the real agent binary as a
//! process, each agent on a sandbox root of its own.
//!
//! [`Patchwarden`] starts `patchwarden_server::start` on a tokio runtime it owns, plain HTTP on
//! 127.0.0.1 (port 0), SQLite in a temporary folder, a bootstrap admin token, and a
//! `ManualClock` set once to the real time: the agents judge a job's window by the real clock,
//! so the server's clock starts there and only ever moves forward. It creates the people (an
//! officer, an owner, an operator) and the system over the HTTP API, as a person would, and
//! walks requests through their verbs.
//!
//! [`Agent`] is one enrolled `patchwarden-agent` with its own state folder and its own
//! [`Packages`] (an apt/dpkg sandbox or a dnf/rpm install root from `common`). Each
//! [`Agent::run_once`] is one `run --once` process. Stand-ins, because this machine has no
//! systemd: `systemctl` is a script that answers `is-active` from a list of units, the boot id
//! is a file, and transactions run as detached children (`--no-systemd-run`).
//! [`Agent::run_killed_at`] runs one cycle with the executor's test hook
//! (`PATCHWARDEN_AGENT_TEST_HALT_AFTER`) and kills the process with SIGKILL where it halted.
//!
//! Helpers panic with what they saw: the HTTP body, the agent's stderr.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchwarden_agent::dpkg;
use patchwarden_agent::process::{DEFAULT_PATH, Invocation};
use patchwarden_server::secrets::Secret;
use patchwarden_server::{Clock, Config, ManualClock, Running};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::{DebRepository, DebSandbox, DebSpec, Release, RpmSandbox, RpmSpec, run};

pub const BOOTSTRAP_TOKEN: &str = "pwt_e2e-bootstrap-token-for-tests-only-0123456789";
/// The system every test works on.
pub const SYSTEM: &str = "shop";
/// The test package.
pub const PACKAGE: &str = "pw-demo";
/// The unit the stand-in `systemctl` answers as active.
pub const UNIT: &str = "pw-demo.service";
/// The executor's test hook: the point at which the agent halts.
const HALT_AFTER: &str = patchwarden_agent::job::HALT_AFTER_VARIABLE;

/// The real time, read once per server to start its manual clock.
#[allow(clippy::disallowed_methods)]
fn real_time() -> Timestamp {
    Timestamp::now()
}

/// A short wait that needs no sleep: a channel nobody sends on.
pub fn short_wait() {
    let (_sender, receiver) = mpsc::channel::<()>();
    let _ = receiver.recv_timeout(Duration::from_millis(50));
}

/// The running server, its clock and the people of one small organisation.
pub struct Patchwarden {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    pub url: String,
    clock: Arc<ManualClock>,
    client: reqwest::Client,
    pub officer: String,
    pub owner: String,
    pub operator: String,
    _data: TempDir,
}

impl Drop for Patchwarden {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
    }
}

impl Patchwarden {
    /// A server with the organisation: olivia (security officer), oscar (owner of the system
    /// `shop`) and pat (operator).
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: format!("sqlite:{}", data.path().join("patchwarden.db").display()),
            data_dir: data.path().to_owned(),
            insecure_http: true,
            ..Config::default()
        };
        let clock = Arc::new(ManualClock::new(real_time()));
        let token = Some(Secret::from(BOOTSTRAP_TOKEN.to_owned()));
        let running = runtime.block_on(patchwarden_server::start(&config, clock.clone(), token));
        let running = running.unwrap();
        let mut server = Patchwarden {
            runtime,
            url: running.url.clone(),
            running: Some(running),
            clock,
            client: reqwest::Client::new(),
            officer: String::new(),
            owner: String::new(),
            operator: String::new(),
            _data: data,
        };
        server.officer = server.person("olivia", "security-officer");
        server.owner = server.person("oscar", "owner");
        server.operator = server.person("pat", "operator");
        let body =
            json!({ "name": SYSTEM, "owner": "oscar", "notify": ["shop-users@example.org"] });
        server.post("/api/v1/systems", &server.officer, body);
        server
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    /// One HTTP call; the status and the JSON body (or the text as a JSON string).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.runtime.block_on(async {
            let mut request = self.client.request(method, format!("{}{path}", self.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }

    fn expect_ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path}");
        let (status, answer) = self.call(method, path, Some(token), body);
        assert_eq!(status, 200, "{shown}: {answer}");
        answer
    }

    pub fn get(&self, path: &str, token: &str) -> Value {
        self.expect_ok(Method::GET, path, token, None)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Value {
        self.expect_ok(Method::POST, path, token, Some(body))
    }

    /// An account made by the admin, its invitation redeemed: the person's own token.
    fn person(&self, name: &str, role: &str) -> String {
        let body = json!({
            "name": name,
            "roles": [role],
            "email": format!("{name}@example.org"),
            "position": "staff",
        });
        let created = self.post("/api/v1/accounts", BOOTSTRAP_TOKEN, body);
        let code = created["invitation"]["code"].as_str().unwrap().to_owned();
        let body = json!({ "code": code, "password": "a long enough password" });
        let (status, redeemed) =
            self.call(Method::POST, "/api/v1/invitations/redeem", None, Some(body));
        assert_eq!(status, 200, "{redeemed}");
        redeemed["token"].as_str().unwrap().to_owned()
    }

    /// How `env` (`test` or `prod`) is worked on: its health checks, rollback and reboot.
    pub fn set_environment(&self, env: &str, settings: Value) {
        let path = format!("/api/v1/systems/{SYSTEM}/environments/{env}");
        self.expect_ok(Method::PUT, &path, &self.officer, Some(settings));
    }

    pub fn enrolment_token(&self, env: &str) -> String {
        let body = json!({ "system": SYSTEM, "environment": env });
        let answer = self.post("/api/v1/endpoints/enrolment-tokens", &self.officer, body);
        answer["token"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/requests/{id}/{verb}` as the holder of `token`.
    pub fn verb(&self, token: &str, id: i64, verb: &str, body: Value) -> Value {
        self.post(&format!("/api/v1/requests/{id}/{verb}"), token, body)
    }

    /// A request for `PACKAGE=version` with every field, submitted and approved; its id.
    pub fn approved_request(&self, version: &str) -> i64 {
        let now = self.now();
        let body = json!({
            "system": SYSTEM,
            "operator": "pat",
            "test_date": now.to_string(),
            "prod_date": (now + SignedDuration::from_hours(48)).to_string(),
            "packages": [format!("{PACKAGE}={version}")],
            "purpose": format!("bring {PACKAGE} to {version}"),
            "downtime": "none expected",
            "description": format!("install {PACKAGE} {version} and check the service"),
        });
        let created = self.post("/api/v1/requests", &self.officer, body);
        let id = created["request"]["id"].as_i64().unwrap();
        self.verb(&self.officer, id, "submit", json!({}));
        self.verb(&self.owner, id, "approve", json!({ "comment": "go ahead" }));
        id
    }

    /// From a passed test to production work: acknowledgement, a plan 25 h ahead, its
    /// acceptance and approval (the announcement), presence, the notice period passed on the
    /// manual clock, and the start.
    pub fn take_to_production(&self, id: i64) {
        self.verb(&self.owner, id, "acknowledge-test", json!({}));
        let start = (self.now() + SignedDuration::from_hours(25)).to_string();
        let plan = json!({ "start": start, "duration_minutes": 120 });
        self.verb(&self.operator, id, "propose-plan", plan);
        self.verb(&self.officer, id, "accept-plan", json!({}));
        self.verb(&self.owner, id, "accept-plan", json!({}));
        self.verb(&self.operator, id, "approve-plan", json!({}));
        self.verb(&self.owner, id, "confirm-presence", json!({}));
        self.advance(SignedDuration::from_hours(25));
        self.verb(&self.operator, id, "start-production", json!({}));
    }

    /// The request as the API shows it.
    pub fn request(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/requests/{id}"), &self.officer)["request"].clone()
    }

    pub fn state(&self, id: i64) -> String {
        self.request(id)["state"].as_str().unwrap().to_owned()
    }

    /// The request's jobs with their reports, in the order they were issued.
    pub fn jobs(&self, id: i64) -> Vec<Value> {
        let listed = self.get(&format!("/api/v1/requests/{id}/jobs"), &self.officer);
        listed["jobs"].as_array().unwrap().clone()
    }

    /// The request's log entries.
    pub fn log(&self, id: i64) -> Vec<Value> {
        let log = self.get(&format!("/api/v1/log?request={id}"), &self.officer);
        log["entries"].as_array().unwrap().clone()
    }

    /// How many `job-report` entries the log holds for `job`.
    pub fn reports_logged(&self, request: i64, job: i64) -> usize {
        self.log(request)
            .iter()
            .filter(|entry| entry["action"] == "job-report" && entry["details"]["job"] == job)
            .count()
    }

    pub fn assert_log_intact(&self) {
        let verified = self.get("/api/v1/log/verify", &self.officer);
        assert_eq!(verified["intact"], true, "{verified}");
    }

    /// What the server holds of endpoint `id`: the endpoint and its inventory's summary.
    pub fn endpoint(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/endpoints/{id}"), &self.officer)
    }
}

/// A health check as the environment settings take it, with a short timeout.
pub fn check(kind: Value) -> Value {
    json!({ "check": kind, "timeout_seconds": 5, "retries": 0, "retry_delay_seconds": 0 })
}

/// A command check; the program by absolute path.
pub fn command_check(argv: &[&str]) -> Value {
    check(json!({ "kind": "command", "argv": argv }))
}

/// Settings with these checks, rollback on a failed one, no reboot.
pub fn settings(checks: Vec<Value>) -> Value {
    json!({ "health_checks": checks, "rollback_on_failure": true, "reboot": "never" })
}

/// The package system an agent works on: an apt/dpkg sandbox or a dnf/rpm install root.
pub enum Packages {
    /// `gate`: while this file is missing, every apt transaction in the sandbox waits before it
    /// calls dpkg (an apt `DPkg::Pre-Invoke` hook in the sandbox's configuration), so a test
    /// can hold a transaction in progress for as long as it needs.
    Deb {
        sandbox: DebSandbox,
        repository: DebRepository,
        gate: PathBuf,
    },
    Rpm {
        sandbox: RpmSandbox,
    },
}

impl Packages {
    /// An empty dpkg root with one local repository, its transaction gate open.
    pub fn deb() -> Self {
        let mut sandbox = DebSandbox::new();
        let repository = sandbox.add_repository("main", Release::local("Patchwarden Test"));
        let gate = sandbox.root().with_file_name("transaction-gate");
        fs::write(&gate, "").unwrap();
        // Once the sandbox is gone (a test that failed), a waiting transaction gives up.
        sandbox.add_apt_config(&format!(
            "DPkg::Pre-Invoke {{ \"while [ ! -e '{gate}' ]; do [ -d '{root}' ] || exit 1; \
             sleep 0.05; done\"; }};\n",
            gate = gate.display(),
            root = sandbox.root().display(),
        ));
        Packages::Deb { sandbox, repository, gate }
    }

    /// From now on apt transactions wait before calling dpkg.
    pub fn close_gate(&self) {
        let Packages::Deb { gate, .. } = self else { panic!("not a dpkg sandbox") };
        fs::remove_file(gate).unwrap();
    }

    /// Transactions waiting at the gate go on.
    pub fn open_gate(&self) {
        let Packages::Deb { gate, .. } = self else { panic!("not a dpkg sandbox") };
        fs::write(gate, "").unwrap();
    }

    /// An empty rpm install root whose own repository configuration names the local one.
    pub fn rpm() -> Self {
        let sandbox = RpmSandbox::new();
        sandbox.configure_root_repository();
        Packages::Rpm { sandbox }
    }

    /// Builds `PACKAGE` at each version (`VERSION-RELEASE` for rpm) and publishes it.
    pub fn publish(&self, versions: &[&str]) {
        match self {
            Packages::Deb { sandbox, repository, .. } => {
                let specs: Vec<DebSpec> =
                    versions.iter().map(|v| DebSpec::new(PACKAGE, v)).collect();
                sandbox.publish(repository, &specs);
                sandbox.update();
            }
            Packages::Rpm { sandbox } => {
                let specs: Vec<RpmSpec> = versions
                    .iter()
                    .map(|v| {
                        let (version, release) = v.split_once('-').unwrap();
                        RpmSpec::new(PACKAGE, version, release)
                    })
                    .collect();
                sandbox.publish(&specs);
            }
        }
    }

    /// Installs `PACKAGE` at `version` with the package manager itself.
    pub fn install(&self, version: &str) {
        match self {
            Packages::Deb { sandbox, .. } => sandbox.install(&[&format!("{PACKAGE}={version}")]),
            Packages::Rpm { sandbox } => sandbox.install(&[&format!("{PACKAGE}-{version}")]),
        }
    }

    /// The installed version of `PACKAGE`: dpkg's status file, or rpm's database.
    pub fn version(&self) -> Option<String> {
        let installed = match self {
            Packages::Deb { sandbox, .. } => dpkg::read_database(&sandbox.admindir()).unwrap(),
            Packages::Rpm { sandbox } => sandbox.driver().installed_packages().unwrap(),
        };
        let found: Vec<String> =
            installed.into_iter().filter(|p| p.name == PACKAGE).map(|p| p.version).collect();
        assert!(found.len() <= 1, "{found:?}");
        found.into_iter().next()
    }

    /// The file the package ships, whose text says which version it came with.
    pub fn payload_file(&self) -> PathBuf {
        let root = match self {
            Packages::Deb { sandbox, .. } => sandbox.root(),
            Packages::Rpm { sandbox } => sandbox.root(),
        };
        root.join(format!("usr/share/doc/{PACKAGE}/VERSION"))
    }

    /// What the payload file holds for `version`: the Debian version whole, rpm's without the
    /// release.
    pub fn payload(&self, version: &str) -> String {
        match self {
            Packages::Deb { .. } => version.to_owned(),
            Packages::Rpm { .. } => version.split_once('-').unwrap().0.to_owned(),
        }
    }

    /// A check that passes exactly when the installed payload is `version`'s.
    pub fn payload_is(&self, version: &str) -> Value {
        let file = self.payload_file().display().to_string();
        command_check(&["/usr/bin/grep", "-qx", &self.payload(version), &file])
    }

    /// A check that fails exactly when the installed payload is `version`'s: what that
    /// version breaks, as a health check would see it.
    pub fn payload_is_not(&self, version: &str) -> Value {
        let file = self.payload_file().display().to_string();
        command_check(&["/usr/bin/grep", "-qvx", &self.payload(version), &file])
    }

    /// The flags that point `patchwarden-agent run` at this package system.
    fn run_flags(&self) -> Vec<OsString> {
        match self {
            Packages::Deb { sandbox, .. } => vec![
                "--apt-config".into(),
                sandbox.apt_config().into(),
                "--dpkg-admindir".into(),
                sandbox.admindir().into(),
            ],
            Packages::Rpm { sandbox } => vec!["--dnf-installroot".into(), sandbox.root().into()],
        }
    }

    /// The package database is consistent and no lock on it is held.
    pub fn assert_consistent(&self) {
        match self {
            Packages::Deb { .. } => self.assert_dpkg_consistent(),
            Packages::Rpm { sandbox } => {
                // `rpm -Va`: every installed file as the database says; then rpm's lock.
                let rpm = || {
                    Invocation::new("rpm")
                        .env("PATH", DEFAULT_PATH)
                        .env("LANG", "C.UTF-8")
                        .arg("--root")
                        .arg(sandbox.root())
                };
                let verified = run(rpm().arg("-Va"));
                assert_eq!(verified.stdout, "", "rpm -Va: {}", verified.stderr);
                let dbpath = run(rpm().args(["--eval", "%{_dbpath}"])).stdout;
                let lock = sandbox.root().join(dbpath.trim().trim_start_matches('/'));
                assert_lock_free(&lock.join(".rpm.lock"));
            }
        }
    }

    /// `dpkg --admindir=… --audit` prints nothing and neither dpkg lock is held.
    pub fn assert_dpkg_consistent(&self) {
        let Packages::Deb { sandbox, .. } = self else { panic!("not a dpkg sandbox") };
        let admindir = sandbox.admindir();
        let audit = run(Invocation::new("dpkg")
            .env("PATH", DEFAULT_PATH)
            .env("LANG", "C.UTF-8")
            .arg(format!("--admindir={}", admindir.display()))
            .arg("--audit")
            .accept_exit_code(1));
        assert_eq!(audit.stdout, "", "dpkg --audit: {}", audit.stderr);
        for lock in ["lock-frontend", "lock"] {
            assert_lock_free(&admindir.join(lock));
        }
    }
}

/// Nobody holds an fcntl lock on `path`: a helper takes it, non-blocking, and lets go.
fn assert_lock_free(path: &std::path::Path) {
    let taken = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import fcntl,sys; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(taken.success(), "{} is still locked", path.display());
}

/// One enrolled agent: its state folder, its stand-in machine parts, its package system.
pub struct Agent {
    pub packages: Packages,
    pub endpoint_id: i64,
    folder: TempDir,
}

impl Agent {
    /// Enrols the real binary into `env` with a token made by the officer.
    pub fn enrol(server: &Patchwarden, env: &str, packages: Packages) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let token = server.enrolment_token(env);
        let output = Command::new(env!("CARGO_BIN_EXE_patchwarden-agent"))
            .args(["enroll", "--server", &server.url, "--token", &token, "--state-dir"])
            .arg(folder.path().join("state"))
            .env_remove(HALT_AFTER)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "enroll: {}", text(&output));
        let enrolment = fs::read_to_string(folder.path().join("state/enrolment.json")).unwrap();
        let enrolment: Value = serde_json::from_str(&enrolment).unwrap();
        assert_eq!(enrolment["environment"], env);

        // The stand-in machine parts.
        fs::write(folder.path().join("boot_id"), "4f3c1e9a-0000-4000-8000-00000000e2e0\n").unwrap();
        fs::write(folder.path().join("active-units"), format!("{UNIT}\n")).unwrap();
        let systemctl = folder.path().join("systemctl");
        let script = format!(
            "#!/bin/sh\n\
             # Stand-in for systemctl: this machine has no systemd.\n\
             case \"$1\" in\n\
             is-active) grep -qx \"$4\" '{}' && exit 0; exit 3 ;;\n\
             esac\n\
             exit 1\n",
            folder.path().join("active-units").display()
        );
        fs::write(&systemctl, script).unwrap();
        fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();

        let endpoint_id = enrolment["endpoint_id"].as_i64().unwrap();
        Agent { packages, endpoint_id, folder }
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.folder.path().join("state/jobs")
    }

    /// `patchwarden-agent run --once` on this agent's state and package system.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_patchwarden-agent"));
        command
            .args(["run", "--once", "--state-dir"])
            .arg(self.folder.path().join("state"))
            .args(self.packages.run_flags())
            .arg("--systemctl")
            .arg(self.folder.path().join("systemctl"))
            .arg("--no-systemd-run")
            .arg("--boot-id-file")
            .arg(self.folder.path().join("boot_id"))
            .env("PATCHWARDEN_LOG", "info")
            .env_remove(HALT_AFTER)
            .stdin(Stdio::null());
        command
    }

    /// One cycle that must succeed; returns what the agent logged.
    pub fn run_once(&self) -> String {
        let output = self.command().output().unwrap();
        assert!(output.status.success(), "run --once: {}", text(&output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// One cycle with the test hook set to `point`, killed with SIGKILL once it halts there
    /// while running `job`. Panics when it never halts or exits first.
    pub fn run_killed_at(&self, point: &str, job: i64) {
        let log_path = self.folder.path().join(format!("halted-{job}-{point}.log"));
        let log = File::create(&log_path).unwrap();
        let mut child: Child = self
            .command()
            .env(HALT_AFTER, point)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let marker = self.journal_dir().join(format!("{job}.halted"));
        let mut waits = 0;
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                panic!("the agent exited ({status}) before halting at {point}:\n{log}");
            }
            waits += 1;
            if waits > 1200 {
                child.kill().unwrap();
                child.wait().unwrap();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                panic!("the agent did not halt at {point} within a minute:\n{log}");
            }
            short_wait();
        }
        assert_eq!(fs::read_to_string(&marker).unwrap(), point);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
        fs::remove_file(&marker).unwrap();
    }

    /// The transient run `purpose` (`install`, `rollback`) of `job` is still running: its
    /// wrapper wrote its pid, has not written its exit code, and is alive.
    pub fn run_in_progress(&self, job: i64, purpose: &str) -> bool {
        let folder = self.journal_dir().join(format!("{job}.runs/{purpose}"));
        let Ok(pid) = fs::read_to_string(folder.join("pid")) else { return false };
        let alive = PathBuf::from(format!("/proc/{}", pid.trim())).exists();
        alive && !folder.join("exit-code").exists()
    }

    /// The last job sequence the agent recorded as seen.
    pub fn last_sequence(&self) -> u64 {
        let text = fs::read_to_string(self.folder.path().join("state/last-sequence")).unwrap();
        text.trim().parse().unwrap()
    }

    /// The phase the journal of `job` is in.
    pub fn journal_phase(&self, job: i64) -> String {
        let path = self.journal_dir().join(format!("{job}.json"));
        let Ok(bytes) = fs::read(&path) else { return "(no journal)".to_owned() };
        let journal: Value = serde_json::from_slice(&bytes).unwrap();
        journal["phase"].as_str().unwrap().to_owned()
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
