//! The job executor against real apt and dpkg, on sandbox roots and repositories the tests
//! build; the machine's own packages are never touched (its dpkg status is hashed around the
//! main test).
//!
//! Stand-ins, because this machine has no systemd: `systemctl` is a shell script each test
//! writes (it records its calls, answers `is-active` from a list, and on `reboot` writes a new
//! boot id), the boot id is a file in the test's folder, and transient runs are detached
//! children (`SystemctlSystemd { systemd_run: None }`). A lock is held by a Python helper with
//! fcntl, as dpkg and apt hold theirs.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{DebRepository, DebSandbox, DebSpec, Release, run};
use jiff::{SignedDuration, Timestamp};
use patchwarden_agent::PackageSystem;
use patchwarden_agent::dpkg;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::job::{Execution, Executor, ExecutorSettings, Phase, SystemctlSystemd};
use patchwarden_agent::process::Invocation;
use patchwarden_protocol::job::JOB_FORMAT;
use patchwarden_protocol::{
    CheckKind, Environment, HealthCheck, Job, JobOutcome, JobReport, MissedReason, PackagePin,
    RebootPolicy, RebootRecord,
};
use tempfile::TempDir;

/// The tests' clock: the executor's waits (locks, windows) are real, so its clock is too.
#[allow(clippy::disallowed_methods)]
fn now() -> Timestamp {
    Timestamp::now()
}

/// The boot id the stand-in machine starts with, and the one its stand-in reboot gives it.
const BOOT_BEFORE: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const BOOT_AFTER: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const RUNNING_KERNEL: &str = "6.1.0-18-amd64";

/// A dpkg sandbox with one repository, plus the agent's state folder and a stand-in machine.
struct Machine {
    sandbox: DebSandbox,
    repository: DebRepository,
    state: TempDir,
}

impl Machine {
    fn new() -> Self {
        let mut sandbox = DebSandbox::new();
        let repository = sandbox.add_repository("main", Release::local("Patchwarden Test"));
        let state = tempfile::tempdir().unwrap();
        let machine = Machine { sandbox, repository, state };

        // The stand-in machine's files: os-release, the running kernel, the boot id.
        let write = |path: &str, text: &str| {
            let path = machine.facts_root().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n");
        write("proc/sys/kernel/osrelease", &format!("{RUNNING_KERNEL}\n"));
        write("proc/sys/kernel/random/boot_id", &format!("{BOOT_BEFORE}\n"));
        fs::write(machine.state.path().join("active-units"), "pw-demo.service\n").unwrap();

        // The stand-in systemctl.
        let script = format!(
            "#!/bin/sh\n\
             # Stand-in for systemctl: this machine has no systemd.\n\
             echo \"$*\" >> '{state}/systemctl-calls'\n\
             case \"$1\" in\n\
             is-active) grep -qx \"$4\" '{state}/active-units' && exit 0; exit 3 ;;\n\
             reboot) echo {BOOT_AFTER} > '{boot_id}'; exit 0 ;;\n\
             esac\n\
             exit 1\n",
            state = machine.state.path().display(),
            boot_id = machine.boot_id_file().display(),
        );
        let systemctl = machine.state.path().join("systemctl");
        fs::write(&systemctl, script).unwrap();
        fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
        machine
    }

    fn facts_root(&self) -> PathBuf {
        self.state.path().join("machine")
    }

    fn boot_id_file(&self) -> PathBuf {
        self.facts_root().join("proc/sys/kernel/random/boot_id")
    }

    fn keep_dir(&self) -> PathBuf {
        self.state.path().join("keep")
    }

    fn journal_dir(&self) -> PathBuf {
        self.state.path().join("jobs")
    }

    /// A new executor over the same state, as after an agent restart.
    fn executor(&self) -> Executor {
        Executor::new(ExecutorSettings {
            package_system: PackageSystem::Apt(self.sandbox.driver()),
            journal_dir: self.journal_dir(),
            keep_dir: self.keep_dir(),
            systemd: Box::new(SystemctlSystemd {
                systemctl: self.state.path().join("systemctl"),
                systemd_run: None,
                ..SystemctlSystemd::machine()
            }),
            facts: FactSources::under(self.facts_root()),
            clock: Box::new(now),
        })
    }

    /// Publishes `versions` of `name` and refreshes apt's lists.
    fn publish(&self, name: &str, versions: &[&str]) {
        let specs: Vec<DebSpec> = versions.iter().map(|v| DebSpec::new(name, v)).collect();
        self.sandbox.publish(&self.repository, &specs);
        self.sandbox.update();
    }

    fn version(&self, name: &str) -> Option<String> {
        self.package(name).map(|p| p.version)
    }

    fn held(&self, name: &str) -> bool {
        self.package(name).is_some_and(|p| p.held)
    }

    fn package(&self, name: &str) -> Option<patchwarden_agent::inventory::InstalledPackage> {
        dpkg::read_database(&self.sandbox.admindir()).unwrap().into_iter().find(|p| p.name == name)
    }

    /// `dpkg --audit`: empty when dpkg is consistent.
    fn audit(&self) -> String {
        run(self.sandbox.dpkg().arg("--audit").accept_exit_code(1)).stdout
    }

    fn systemctl_calls(&self) -> String {
        fs::read_to_string(self.state.path().join("systemctl-calls")).unwrap_or_default()
    }

    /// The package's payload says which version is installed.
    fn payload_version(&self, name: &str) -> String {
        let path = self.sandbox.root().join(format!("usr/share/doc/{name}/VERSION"));
        fs::read_to_string(path).unwrap().trim().to_owned()
    }

    /// A check that passes exactly when `name`'s payload is at `version`.
    fn payload_check(&self, name: &str, version: &str) -> HealthCheck {
        let path = self.sandbox.root().join(format!("usr/share/doc/{name}/VERSION"));
        check(CheckKind::Command {
            argv: vec!["grep".into(), "-qx".into(), version.into(), path.display().to_string()],
        })
    }

    /// No dpkg or apt lock is held: a helper takes each, non-blocking, and lets go.
    fn assert_locks_free(&self) {
        for lock in ["lock-frontend", "lock"] {
            let path = self.sandbox.admindir().join(lock);
            let status = Command::new("/usr/bin/python3")
                .args(["-c", "import fcntl,sys; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)"])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "{} is still locked", path.display());
        }
    }
}

fn check(kind: CheckKind) -> HealthCheck {
    HealthCheck { check: kind, timeout_seconds: 5, retries: 0, retry_delay_seconds: 0 }
}

fn job(id: i64, pins: &[(&str, &str)]) -> Job {
    let issued = now();
    Job {
        format: JOB_FORMAT,
        id,
        endpoint_id: 1,
        sequence: id as u64,
        issued_at: issued,
        expires_at: issued + SignedDuration::from_hours(1),
        window_end: issued + SignedDuration::from_hours(2),
        request_id: 10,
        environment: Environment::Test,
        install: pins
            .iter()
            .map(|(name, version)| PackagePin { name: (*name).into(), version: (*version).into() })
            .collect(),
        health_checks: Vec::new(),
        rollback_on_failure: true,
        reboot: RebootPolicy::Never,
        recover_interrupted: false,
        keep_local_config: true,
    }
}

fn pins(pairs: &[(&str, &str)]) -> Vec<PackagePin> {
    pairs.iter().map(|(n, v)| PackagePin { name: (*n).into(), version: (*v).into() }).collect()
}

fn report(execution: Execution) -> JobReport {
    match execution {
        Execution::Report(report) => report,
        other => panic!("expected a report, got {other:?}"),
    }
}

fn step<'a>(report: &'a JobReport, name: &str) -> &'a patchwarden_protocol::StepRecord {
    report
        .steps
        .iter()
        .rev()
        .find(|step| step.step == name)
        .unwrap_or_else(|| panic!("no step '{name}' in {:#?}", report.steps))
}

/// `Package` and `Version` of a .deb.
fn deb_fields(path: &Path) -> String {
    run(Invocation::new("dpkg-deb")
        .env("PATH", patchwarden_agent::process::DEFAULT_PATH)
        .arg("-f")
        .arg(path)
        .args(["Package", "Version"]))
    .stdout
}

/// A plain HTTP server on 127.0.0.1 answering 200 to every request until the test ends.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    port
}

/// A Python helper holding an fcntl write lock on `path` for `seconds`, once it says so.
fn hold_lock(path: &Path, seconds: f64) -> Child {
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import fcntl,sys,time\n\
             f = open(sys.argv[1], 'a')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n",
        ])
        .arg(path)
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_pinned_upgrade_succeeds_keeps_the_old_package_and_the_hold() {
    let status_before = common::machine_dpkg_status_hash();
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.sandbox.hold("pw-demo");
    machine.publish("pw-demo", &["1.1-1"]);

    // Every kind of check, each answered by something this test runs.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = http_server();
    let mut job = job(1, &[("pw-demo", "1.1-1")]);
    job.health_checks = vec![
        check(CheckKind::TcpPort {
            host: "127.0.0.1".into(),
            port: tcp.local_addr().unwrap().port(),
        }),
        check(CheckKind::Http { url: format!("http://127.0.0.1:{http}/health") }),
        check(CheckKind::SystemdUnit { unit: "pw-demo.service".into() }),
        machine.payload_check("pw-demo", "1.1-1"),
    ];
    let report = report(machine.executor().execute(&job));

    assert_eq!(report.outcome, JobOutcome::Succeeded, "{report:#?}");
    assert_eq!(report.versions_before, pins(&[("pw-demo", "1.0-1")]));
    assert_eq!(report.versions_after, pins(&[("pw-demo", "1.1-1")]));
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.1-1"));
    assert!(machine.held("pw-demo"), "an approved change to a held package keeps the hold");
    assert!(step(&report, "restore holds").ok);
    assert_eq!(report.health.len(), 4);
    assert!(report.health.iter().all(|c| c.passed && !c.after_rollback), "{:#?}", report.health);
    assert!(machine.systemctl_calls().contains("is-active --quiet -- pw-demo.service"));
    assert_eq!(report.reboot, None);
    assert!(!report.recovered_interrupted);

    // The old version's package file is kept.
    let kept = machine.keep_dir().join("1/pw-demo/pw-demo_1.0-1_all.deb");
    assert_eq!(deb_fields(&kept), "Package: pw-demo\nVersion: 1.0-1\n");
    assert!(step(&report, "keep old package files").detail.contains("downloaded"));
    assert_eq!(machine.audit(), "");

    // The report stays until acknowledged, and a job seen before is not run again.
    let again = machine.executor();
    assert_eq!(again.resume(), std::slice::from_ref(&report));
    assert_eq!(crate::report(again.execute(&job)), report);
    again.acknowledge(1).unwrap();
    assert_eq!(again.resume(), []);
    assert_eq!(crate::report(again.execute(&job)), report);
    assert!(machine.journal_dir().join("1.json").is_file(), "the journal is kept for audit");
    assert_eq!(common::machine_dpkg_status_hash(), status_before);
}

#[test]
fn a_failed_check_rolls_back_from_the_kept_file_after_the_repository_dropped_it() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.1-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.sandbox.hold("pw-demo");
    machine.publish("pw-demo", &["1.2-1"]);

    // The check passes only on 1.1-1: it fails after the update and passes after the rollback.
    let mut job = job(2, &[("pw-demo", "1.2-1")]);
    job.health_checks = vec![machine.payload_check("pw-demo", "1.1-1")];
    let stopped = machine.executor().execute_until(&job, Phase::TransactionFinished);
    assert_eq!(stopped, Execution::Stopped { phase: Phase::TransactionFinished });
    assert_eq!(machine.payload_version("pw-demo"), "1.2-1");

    // No repository carries 1.1-1 any more, nor does apt's cache.
    machine.sandbox.withdraw(&machine.repository, "pw-demo", "1.1-1");
    machine.sandbox.update();
    run(machine.sandbox.apt("apt-get").arg("clean"));
    let gone = machine.sandbox.apt("apt-get").args(["-s", "install", "pw-demo=1.1-1"]).run();
    assert!(gone.is_err(), "apt still finds 1.1-1");

    let reports = machine.executor().resume();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    match &report.outcome {
        JobOutcome::RolledBack { check, checks_after_rollback_passed, .. } => {
            assert!(check.contains("grep -qx 1.1-1"), "{check}");
            assert!(checks_after_rollback_passed);
        }
        other => panic!("{other:?}\n{report:#?}"),
    }
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.1-1"));
    assert_eq!(machine.payload_version("pw-demo"), "1.1-1");
    assert!(machine.held("pw-demo"));
    assert_eq!(report.versions_before, pins(&[("pw-demo", "1.1-1")]));
    assert_eq!(report.versions_after, pins(&[("pw-demo", "1.1-1")]));
    let health: Vec<(bool, bool)> =
        report.health.iter().map(|c| (c.passed, c.after_rollback)).collect();
    assert_eq!(health, [(false, false), (true, true)]);
    assert!(step(report, "resume").detail.contains("transaction-finished"));
    assert!(step(report, "rollback").ok);
    assert!(step(report, "verify rollback").ok);
    assert_eq!(machine.audit(), "");
}

#[test]
fn an_old_version_no_repository_carries_is_repacked_before_the_upgrade() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.sandbox.withdraw(&machine.repository, "pw-demo", "1.0-1");
    machine.publish("pw-demo", &["1.1-1"]);

    let report = report(machine.executor().execute(&job(3, &[("pw-demo", "1.1-1")])));
    assert_eq!(report.outcome, JobOutcome::Succeeded, "{report:#?}");
    let kept = step(&report, "keep old package files");
    assert!(kept.detail.contains("repacked with dpkg-repack"), "{}", kept.detail);
    let file = machine.keep_dir().join("3/pw-demo/pw-demo_1.0-1_all.deb");
    assert_eq!(deb_fields(&file), "Package: pw-demo\nVersion: 1.0-1\n");
}

#[test]
fn a_local_conffile_is_kept_or_replaced_as_the_job_says_and_the_other_one_is_reported() {
    let machine = Machine::new();
    let publish = |name: &str, version: &str| {
        let path = format!("/etc/{name}.conf");
        let content = format!("shipped with {version}\n");
        machine.sandbox.publish_with_conffile(&machine.repository, name, version, &path, &content);
    };
    publish("pw-keep", "1.0-1");
    publish("pw-take", "1.0-1");
    machine.sandbox.update();
    machine.sandbox.install(&["pw-keep", "pw-take"]);
    let etc = machine.sandbox.root().join("etc");
    fs::write(etc.join("pw-keep.conf"), "changed here\n").unwrap();
    fs::write(etc.join("pw-take.conf"), "changed here\n").unwrap();
    publish("pw-keep", "1.1-1");
    publish("pw-take", "1.1-1");
    machine.sandbox.update();

    let keep = report(machine.executor().execute(&job(4, &[("pw-keep", "1.1-1")])));
    assert_eq!(keep.outcome, JobOutcome::Succeeded, "{keep:#?}");
    assert_eq!(fs::read_to_string(etc.join("pw-keep.conf")).unwrap(), "changed here\n");
    assert_eq!(keep.config_files_left, ["/etc/pw-keep.conf.dpkg-dist"]);
    assert_eq!(
        fs::read_to_string(etc.join("pw-keep.conf.dpkg-dist")).unwrap(),
        "shipped with 1.1-1\n"
    );

    let mut take_job = job(5, &[("pw-take", "1.1-1")]);
    take_job.keep_local_config = false;
    let take = report(machine.executor().execute(&take_job));
    assert_eq!(take.outcome, JobOutcome::Succeeded, "{take:#?}");
    assert_eq!(fs::read_to_string(etc.join("pw-take.conf")).unwrap(), "shipped with 1.1-1\n");
    assert_eq!(take.config_files_left, ["/etc/pw-take.conf.dpkg-old"]);
}

#[test]
fn a_job_after_its_window_is_missed_and_changes_nothing() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);
    let status = fs::read(machine.sandbox.admindir().join("status")).unwrap();

    let mut late = job(6, &[("pw-demo", "1.1-1")]);
    late.window_end = now() - SignedDuration::from_secs(1);
    let report = report(machine.executor().execute(&late));
    match &report.outcome {
        JobOutcome::Missed { reason: MissedReason::TooLate, detail } => {
            assert!(detail.contains("the window ended at"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.versions_before, pins(&[("pw-demo", "1.0-1")]));
    assert_eq!(report.versions_after, report.versions_before);
    assert_eq!(fs::read(machine.sandbox.admindir().join("status")).unwrap(), status);
    assert!(!machine.keep_dir().exists());
}

#[test]
fn an_interrupted_dpkg_is_refused_or_recovered_as_the_job_allows() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);
    let extra = machine.sandbox.build(&DebSpec::new("pw-extra", "1.0-1"));
    run(machine.sandbox.dpkg().arg("--unpack").arg(&extra));
    assert_eq!(
        machine.package("pw-extra").unwrap().state,
        patchwarden_agent::inventory::PackageState::Unpacked
    );

    // Not allowed: refused, nothing changed.
    let report_refused = report(machine.executor().execute(&job(7, &[("pw-demo", "1.1-1")])));
    match &report_refused.outcome {
        JobOutcome::Refused { check, detail } => {
            assert_eq!(check, "dpkg not interrupted");
            assert!(detail.contains("pw-extra:all 1.0-1 is unpacked"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.0-1"));
    assert!(machine.audit().contains("pw-extra"));

    // Allowed: recovered and recorded, even across an agent death during the recovery.
    let mut recover = job(8, &[("pw-demo", "1.1-1")]);
    recover.recover_interrupted = true;
    let stopped = machine.executor().execute_until(&recover, Phase::Recovering);
    assert_eq!(stopped, Execution::Stopped { phase: Phase::Recovering });
    let reports = machine.executor().resume();
    let recovered = reports.iter().find(|r| r.job_id == 8).unwrap();
    assert_eq!(recovered.outcome, JobOutcome::Succeeded, "{recovered:#?}");
    assert!(recovered.recovered_interrupted);
    assert!(step(recovered, "recover interrupted dpkg").ok);
    assert_eq!(machine.audit(), "");
    assert_eq!(
        machine.package("pw-extra").unwrap().state,
        patchwarden_agent::inventory::PackageState::Installed
    );

    // A journal entry dpkg did not fold into its status file is an interruption too.
    let stanza =
        "Package: pw-demo\nStatus: install ok installed\nVersion: 1.1-1\nArchitecture: all\n\n";
    fs::write(machine.sandbox.admindir().join("updates/0001"), stanza).unwrap();
    machine.publish("pw-demo", &["1.2-1"]);
    let journal = report(machine.executor().execute(&job(9, &[("pw-demo", "1.2-1")])));
    match &journal.outcome {
        JobOutcome::Refused { detail, .. } => {
            assert!(detail.contains("1 journal entries"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_busy_lock_is_waited_for_and_then_the_job_runs() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);

    let mut holder = hold_lock(&machine.sandbox.admindir().join("lock-frontend"), 2.0);
    let started = Instant::now();
    let report = report(machine.executor().execute(&job(10, &[("pw-demo", "1.1-1")])));
    assert!(started.elapsed() >= Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(holder.wait().unwrap().success());

    assert_eq!(report.outcome, JobOutcome::Succeeded, "{report:#?}");
    let waited = step(&report, "wait for lock");
    assert!(waited.ok);
    assert!(
        waited.detail.contains(&format!("process {} (python3)", holder.id())),
        "{}",
        waited.detail
    );
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.1-1"));
}

#[test]
fn a_lock_held_past_the_window_misses_it_naming_the_holder() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);

    let lock = machine.sandbox.admindir().join("lock");
    let mut holder = hold_lock(&lock, 60.0);
    let mut short = job(11, &[("pw-demo", "1.1-1")]);
    short.window_end = now() + SignedDuration::from_secs(2);
    let report = report(machine.executor().execute(&short));
    holder.kill().unwrap();
    holder.wait().unwrap();

    match &report.outcome {
        JobOutcome::Missed { reason: MissedReason::LockBusy, detail } => {
            assert!(detail.starts_with("lock busy: "), "{detail}");
            assert!(detail.contains(&lock.display().to_string()), "{detail}");
            assert!(detail.contains(&format!("process {} (python3)", holder.id())), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.0-1"));
    assert_eq!(report.versions_after, pins(&[("pw-demo", "1.0-1")]));
}

#[test]
fn a_version_apt_cannot_find_fails_at_the_install_step() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);

    let report = report(machine.executor().execute(&job(12, &[("pw-demo", "1.9-1")])));
    match &report.outcome {
        JobOutcome::Failed { step, detail } => {
            assert_eq!(step, "install");
            assert!(detail.contains("Version '1.9-1' for 'pw-demo' was not found"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.versions_after, pins(&[("pw-demo", "1.0-1")]));
    assert_eq!(report.versions_before, report.versions_after);
}

/// Asserts what a resumed job must leave: one report, the same on a second call, none once
/// acknowledged, and a consistent, unlocked dpkg.
fn resume_once(machine: &Machine, job_id: i64) -> JobReport {
    let executor = machine.executor();
    let reports = executor.resume();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].job_id, job_id);
    assert_eq!(machine.executor().resume(), reports, "a second resume reports the same");
    executor.acknowledge(job_id).unwrap();
    assert_eq!(executor.resume(), []);
    assert_eq!(machine.audit(), "");
    machine.assert_locks_free();
    reports[0].clone()
}

#[test]
fn an_agent_killed_after_any_phase_of_an_upgrade_resumes_to_one_report() {
    let machine = Machine::new();
    let phases = [
        Phase::Accepted,
        Phase::VersionsRecorded,
        Phase::OldPackagesKept,
        Phase::TransactionStarted,
        Phase::TransactionFinished,
        Phase::CheckingHealth,
    ];
    let versions: Vec<String> = (0..=phases.len()).map(|n| format!("1.{n}-1")).collect();
    let version_refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    machine.publish("pw-demo", &version_refs);
    machine.sandbox.install(&["pw-demo=1.0-1"]);

    for (index, phase) in phases.into_iter().enumerate() {
        let id = 20 + index as i64;
        let target = &versions[index + 1];
        let mut job = job(id, &[("pw-demo", target)]);
        job.health_checks = vec![machine.payload_check("pw-demo", target)];
        let stopped = machine.executor().execute_until(&job, phase);
        assert_eq!(stopped, Execution::Stopped { phase });

        let report = resume_once(&machine, id);
        assert_eq!(report.outcome, JobOutcome::Succeeded, "{phase:?}: {report:#?}");
        assert_eq!(report.versions_before, pins(&[("pw-demo", &versions[index])]), "{phase:?}");
        assert_eq!(report.versions_after, pins(&[("pw-demo", target)]), "{phase:?}");
        assert_eq!(machine.payload_version("pw-demo"), *target);
    }
}

#[test]
fn an_agent_killed_during_a_rollback_resumes_to_one_report() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1", "2.0-1"]);
    machine.sandbox.install(&["pw-demo=1.0-1"]);

    for (index, phase) in
        [Phase::RollingBack, Phase::RollbackFinished, Phase::CheckingHealthAfterRollback]
            .into_iter()
            .enumerate()
    {
        let id = 40 + index as i64;
        let mut job = job(id, &[("pw-demo", "2.0-1")]);
        job.health_checks = vec![machine.payload_check("pw-demo", "1.0-1")];
        let stopped = machine.executor().execute_until(&job, phase);
        assert_eq!(stopped, Execution::Stopped { phase });

        let report = resume_once(&machine, id);
        assert!(
            matches!(
                report.outcome,
                JobOutcome::RolledBack { checks_after_rollback_passed: true, .. }
            ),
            "{phase:?}: {report:#?}"
        );
        assert_eq!(report.versions_after, pins(&[("pw-demo", "1.0-1")]), "{phase:?}");
        assert_eq!(machine.payload_version("pw-demo"), "1.0-1");
    }
}

#[test]
fn a_reboot_is_confirmed_after_the_boot_and_reported_with_its_record() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);
    let reboot_required = machine.facts_root().join("run/reboot-required");
    fs::create_dir_all(reboot_required.parent().unwrap()).unwrap();
    fs::write(&reboot_required, "*** System restart required ***\n").unwrap();

    let mut job = job(50, &[("pw-demo", "1.1-1")]);
    job.reboot = RebootPolicy::IfRequired;
    assert_eq!(machine.executor().execute(&job), Execution::Rebooting);
    assert!(machine.systemctl_calls().lines().any(|line| line == "reboot"));
    assert_eq!(machine.executor().resume().len(), 1, "after the stand-in reboot");

    let report = resume_once(&machine, 50);
    assert_eq!(report.outcome, JobOutcome::Succeeded, "{report:#?}");
    assert_eq!(
        report.reboot,
        Some(RebootRecord {
            boot_id_before: BOOT_BEFORE.into(),
            boot_id_after: BOOT_AFTER.into(),
            running_kernel: RUNNING_KERNEL.into(),
            expected_kernel: None,
        })
    );
    let reboot_steps: Vec<&str> =
        report.steps.iter().filter(|s| s.step == "reboot").map(|s| s.detail.as_str()).collect();
    assert_eq!(reboot_steps.len(), 2, "{reboot_steps:?}");
    assert!(reboot_steps[0].contains("RebootRequiredFile"), "{reboot_steps:?}");
    assert!(
        reboot_steps[1].contains(&format!("boot id before: {BOOT_BEFORE}")),
        "{reboot_steps:?}"
    );
    assert!(step(&report, "confirm reboot").ok);
}

#[test]
fn an_end_of_window_reboot_waits_for_the_window_and_a_reboot_that_never_comes_fails() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    machine.publish("pw-demo", &["1.1-1"]);

    // The reboot is asked for only once the window has ended.
    let mut job = job(60, &[("pw-demo", "1.1-1")]);
    job.reboot = RebootPolicy::EndOfWindow;
    job.window_end = now() + SignedDuration::from_secs(3);
    assert_eq!(machine.executor().execute(&job), Execution::Rebooting);
    assert!(now() >= job.window_end);
    assert_eq!(machine.version("pw-demo").as_deref(), Some("1.1-1"));

    // A machine whose boot id never changes: asked once more, then failed at the reboot.
    fs::write(machine.boot_id_file(), format!("{BOOT_BEFORE}\n")).unwrap();
    fs::write(machine.state.path().join("systemctl"), "#!/bin/sh\nexit 0\n").unwrap();
    assert_eq!(machine.executor().resume(), []);
    let reports = machine.executor().resume();
    assert_eq!(reports.len(), 1);
    match &reports[0].outcome {
        JobOutcome::Failed { step, detail } => {
            assert_eq!(step, "reboot");
            assert!(detail.contains("did not reboot"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pin_that_could_be_read_as_an_option_is_refused_before_any_command_runs() {
    let machine = Machine::new();
    machine.publish("pw-demo", &["1.0-1"]);
    machine.sandbox.install(&["pw-demo"]);
    let marker = machine.state.path().join("injected");
    let name = format!("-oAPT::Update::Pre-Invoke::=touch {}", marker.display());

    let report = report(machine.executor().execute(&job(70, &[(&name, "1.0-1")])));
    match &report.outcome {
        JobOutcome::Refused { check, detail } => {
            assert_eq!(check, "package pins are valid");
            assert!(detail.contains("is not a package name"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!marker.exists());
    assert!(!machine.state.path().join("jobs/70.runs").exists(), "no transaction was started");
}
