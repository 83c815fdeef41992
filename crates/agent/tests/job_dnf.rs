//! The job executor against real dnf and rpm in an install root the test builds; the machine's
//! own packages are never touched.
//!
//! Stand-ins, because this machine has no systemd: transient runs are detached children
//! (`SystemctlSystemd { systemd_run: None }`) and `systemctl` is a script that answers every
//! unit as inactive (no unit check is declared, so it must never be called).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{RpmSandbox, RpmSpec};
use jiff::{SignedDuration, Timestamp};
use patchwarden_agent::PackageSystem;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::job::{Execution, Executor, ExecutorSettings, Phase, SystemctlSystemd};
use patchwarden_protocol::job::JOB_FORMAT;
use patchwarden_protocol::{
    CheckKind, Environment, HealthCheck, Job, JobOutcome, PackagePin, RebootPolicy,
};
use tempfile::TempDir;

/// The tests' clock: the executor's waits are real, so its clock is too.
#[allow(clippy::disallowed_methods)]
fn now() -> Timestamp {
    Timestamp::now()
}

struct Machine {
    sandbox: RpmSandbox,
    state: TempDir,
}

impl Machine {
    fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let root = state.path().join("machine");
        fs::create_dir_all(root.join("proc/sys/kernel/random")).unwrap();
        fs::write(root.join("proc/sys/kernel/random/boot_id"), "stand-in-boot-id\n").unwrap();
        let systemctl = state.path().join("systemctl");
        fs::write(
            &systemctl,
            format!(
                "#!/bin/sh\n# Stand-in for systemctl: this machine has no systemd.\n\
                 echo \"$*\" >> '{}/systemctl-calls'\nexit 3\n",
                state.path().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
        Machine { sandbox: RpmSandbox::new(), state }
    }

    fn keep_dir(&self) -> PathBuf {
        self.state.path().join("keep")
    }

    fn executor(&self) -> Executor {
        Executor::new(ExecutorSettings {
            package_system: PackageSystem::Dnf(self.sandbox.driver()),
            journal_dir: self.state.path().join("jobs"),
            keep_dir: self.keep_dir(),
            systemd: Box::new(SystemctlSystemd {
                systemctl: self.state.path().join("systemctl"),
                systemd_run: None,
                ..SystemctlSystemd::machine()
            }),
            facts: FactSources::under(self.state.path().join("machine")),
            clock: Box::new(now),
        })
    }

    fn version(&self, name: &str) -> String {
        let installed = self.sandbox.driver().installed_packages().unwrap();
        let found: Vec<String> =
            installed.into_iter().filter(|p| p.name == name).map(|p| p.version).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].clone()
    }

    /// A check that passes exactly when `name`'s payload is at `version`.
    fn payload_check(&self, name: &str, version: &str) -> HealthCheck {
        let path = self.sandbox.root().join(format!("usr/share/doc/{name}/VERSION"));
        HealthCheck {
            check: CheckKind::Command {
                argv: vec!["grep".into(), "-qx".into(), version.into(), path.display().to_string()],
            },
            timeout_seconds: 5,
            retries: 0,
            retry_delay_seconds: 0,
        }
    }
}

fn job(id: i64, name: &str, version: &str) -> Job {
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
        install: vec![PackagePin { name: name.into(), version: version.into() }],
        health_checks: Vec::new(),
        rollback_on_failure: true,
        reboot: RebootPolicy::Never,
        recover_interrupted: false,
        keep_local_config: true,
    }
}

fn pin(name: &str, version: &str) -> Vec<PackagePin> {
    vec![PackagePin { name: name.into(), version: version.into() }]
}

#[test]
fn an_update_succeeds_and_a_failed_check_rolls_back_from_the_kept_rpm() {
    let machine = Machine::new();
    machine.sandbox.publish(&[RpmSpec::new("pw-demo", "1.0", "1")]);
    machine.sandbox.install(&["pw-demo"]);
    machine
        .sandbox
        .publish(&[RpmSpec::new("pw-demo", "1.1", "1"), RpmSpec::new("pw-demo", "1.2", "1")]);

    // 1.0 to 1.1, checked: succeeded, and 1.0's rpm is kept.
    let mut upgrade = job(1, "pw-demo", "1.1-1");
    upgrade.health_checks = vec![machine.payload_check("pw-demo", "1.1")];
    let report = match machine.executor().execute(&upgrade) {
        Execution::Report(report) => report,
        other => panic!("{other:?}"),
    };
    assert_eq!(report.outcome, JobOutcome::Succeeded, "{report:#?}");
    assert_eq!(report.versions_before, pin("pw-demo", "1.0-1"));
    assert_eq!(report.versions_after, pin("pw-demo", "1.1-1"));
    assert!(machine.keep_dir().join("1/pw-demo/pw-demo-1.0-1.noarch.rpm").is_file());
    assert_eq!(machine.version("pw-demo"), "1.1-1");
    machine.executor().acknowledge(1).unwrap();

    // 1.1 to 1.2 with a check that fails on 1.2; the agent dies before the checks, and 1.1
    // leaves the repository before the rollback, which must use the kept rpm.
    let mut broken = job(2, "pw-demo", "1.2-1");
    broken.health_checks = vec![machine.payload_check("pw-demo", "1.1")];
    let stopped = machine.executor().execute_until(&broken, Phase::TransactionFinished);
    assert_eq!(stopped, Execution::Stopped { phase: Phase::TransactionFinished });
    assert_eq!(machine.version("pw-demo"), "1.2-1");
    machine.sandbox.withdraw("pw-demo", "1.1", "1");
    let available = common::run(machine.sandbox.dnf().args([
        "list",
        "--available",
        "--showduplicates",
        "pw-demo",
    ]));
    assert!(available.stdout.contains("1.0-1"), "{}", available.stdout);
    assert!(!available.stdout.contains("1.1-1"), "dnf still finds 1.1-1: {}", available.stdout);

    let reports = machine.executor().resume();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let report = &reports[0];
    assert!(
        matches!(report.outcome, JobOutcome::RolledBack { checks_after_rollback_passed: true, .. }),
        "{report:#?}"
    );
    assert_eq!(machine.version("pw-demo"), "1.1-1");
    assert_eq!(report.versions_before, pin("pw-demo", "1.1-1"));
    assert_eq!(report.versions_after, pin("pw-demo", "1.1-1"));
    let health: Vec<(bool, bool)> =
        report.health.iter().map(|c| (c.passed, c.after_rollback)).collect();
    assert_eq!(health, [(false, false), (true, true)]);
    assert_eq!(machine.executor().resume(), reports, "the same report until acknowledged");
    machine.executor().acknowledge(2).unwrap();
    assert_eq!(machine.executor().resume(), []);
    assert_eq!(fs::read_to_string(machine.state.path().join("systemctl-calls")).ok(), None);
}
