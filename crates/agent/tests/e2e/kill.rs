//! The agent killed with SIGKILL in each phase of a job, and started again.
//!
//! Each case is a request tested on one endpoint: the agent runs `run --once` with the
//! executor's test hook (`PATCHWARDEN_AGENT_TEST_HALT_AFTER`) naming the point to halt at, is
//! killed there once it says it halted, and runs `run --once` again without the hook. Then the
//! package database is consistent (apt: `dpkg --audit` clean and neither dpkg lock held; dnf:
//! `rpm -Va` clean and rpm's lock free), the package is at the target version (or the old one
//! after a rollback), the journal is acknowledged, and the server holds exactly one report for
//! the job: its outcome set once and one `job-report` log entry.
//!
//! On apt, for the points inside a transaction, the sandbox's transaction gate holds apt before
//! it calls dpkg, so the transaction is provably still running when the agent dies; the gate
//! opens once the agent is dead, and the restarted agent waits for the transaction it did not
//! see end. dnf has no such hook: there the transaction may have ended before the kill.
//! The cases of one test share one server and one sandbox, each one a version further.

use serde_json::json;

use crate::harness::{Agent, Packages, Patchwarden, settings};

/// A halt point and the phase the journal must show when the agent was killed there.
struct Case {
    point: &'static str,
    phase_on_disk: &'static str,
    /// The transient run that is still running when the agent dies (apt only): the agent is
    /// killed once right before the run, the sandbox's transaction gate is closed, the
    /// restarted agent starts the run and is killed again; the gate opens only after that.
    running: Option<&'static str>,
}

const fn case(point: &'static str, phase_on_disk: &'static str) -> Case {
    Case { point, phase_on_disk, running: None }
}

const fn running(point: &'static str, phase_on_disk: &'static str, run: &'static str) -> Case {
    Case { point, phase_on_disk, running: Some(run) }
}

/// Every phase of an upgrade whose checks pass, and the points inside the transaction and
/// around the report.
const UPGRADE: [Case; 10] = [
    // The journal is saved; the sequence is not recorded yet.
    case("accepted", "accepted"),
    // The sequence is recorded too, and the run loop hands the job over.
    case("job-received", "accepted"),
    case("versions-recorded", "versions-recorded"),
    case("old-packages-kept", "old-packages-kept"),
    // Saved right before the transaction starts.
    case("transaction-started", "transaction-started"),
    // The transaction is running when the agent dies; it runs on without it.
    running("install-run-started", "transaction-started", "install"),
    case("transaction-finished", "transaction-finished"),
    case("checking-health", "checking-health"),
    // The report is built, not sent.
    case("report-ready", "report-ready"),
    // The server has the report; the journal does not know yet.
    case("report-sent", "report-ready"),
];

/// Every phase of a rollback after a failed check.
const ROLLBACK: [Case; 5] = [
    case("rolling-back", "rolling-back"),
    running("rollback-run-started", "rolling-back", "rollback"),
    case("rollback-finished", "rollback-finished"),
    case("checking-health-after-rollback", "checking-health-after-rollback"),
    case("report-sent", "report-ready"),
];

/// The same on dnf, fewer of them: its transactions cannot be held running.
const DNF_UPGRADE: [Case; 6] = [
    case("job-received", "accepted"),
    case("old-packages-kept", "old-packages-kept"),
    case("install-run-started", "transaction-started"),
    case("transaction-finished", "transaction-finished"),
    case("checking-health", "checking-health"),
    case("report-sent", "report-ready"),
];

const DNF_ROLLBACK: [Case; 3] = [
    case("rolling-back", "rolling-back"),
    case("rollback-run-started", "rolling-back"),
    case("checking-health-after-rollback", "checking-health-after-rollback"),
];

fn killed_in_each_phase(packages: Packages, cases: &[Case], rollback: bool) {
    let server = Patchwarden::start();
    let agent = Agent::enrol(&server, "test", packages);
    agent.packages.publish(&["1.0-1"]);
    agent.packages.install("1.0-1");
    agent.run_once();
    let mut installed = "1.0-1".to_owned();

    for (index, case) in cases.iter().enumerate() {
        let point = case.point;
        let target = format!("1.{}-1", index + 1);
        agent.packages.publish(&[&target]);

        // A check that passes on the target, or one that passes only on the old version.
        let check = if rollback {
            agent.packages.payload_is(&installed)
        } else {
            agent.packages.payload_is(&target)
        };
        server.set_environment("test", settings(vec![check]));
        let id = server.approved_request(&target);
        server.verb(&server.operator, id, "start-test", json!({}));
        let jobs = server.jobs(id);
        assert_eq!(jobs.len(), 1, "{point}: {jobs:?}");
        let job = jobs[0]["id"].as_i64().unwrap();
        let sequence = jobs[0]["sequence"].as_u64().unwrap();

        // A run to be caught running: killed first right before it starts, then the gate is
        // closed and the restarted agent starts it.
        if case.running.is_some() {
            agent.run_killed_at(case.phase_on_disk, job);
            agent.packages.close_gate();
        }

        // Killed at the point: the journal says where, the server has a report only if sent.
        agent.run_killed_at(point, job);
        assert_eq!(agent.journal_phase(job), case.phase_on_disk, "{point}");
        // The job is journaled before its sequence is recorded as seen.
        let seen = if point == "accepted" { sequence - 1 } else { sequence };
        assert_eq!(agent.last_sequence(), seen, "{point}");
        let reports_before = if point == "report-sent" { 1 } else { 0 };
        assert_eq!(server.reports_logged(id, job), reports_before, "{point}");
        if let Some(run) = case.running {
            assert!(agent.run_in_progress(job, run), "{point}: the {run} run is not running");
            agent.packages.open_gate();
        }

        // Started again: it finishes or undoes the job and reports it once.
        agent.run_once();
        let expected = if rollback { installed.clone() } else { target.clone() };
        agent.packages.assert_consistent();
        assert_eq!(agent.packages.version().as_deref(), Some(expected.as_str()), "{point}");
        assert_eq!(agent.journal_phase(job), "acknowledged", "{point}");
        let jobs = server.jobs(id);
        assert_eq!(jobs.len(), 1, "{point}: {jobs:?}");
        let outcome = if rollback { "rolled-back" } else { "succeeded" };
        assert_eq!(jobs[0]["outcome"], outcome, "{point}: {jobs:?}");
        let report = &jobs[0]["report"];
        if rollback {
            let passed = &report["outcome"]["checks_after_rollback_passed"];
            assert_eq!(passed, true, "{point}: {report}");
        }
        // A job killed before its report was built says where it was resumed from.
        let resumed_from = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["step"] == "resume")
            .map(|step| step["detail"].as_str().unwrap().to_owned());
        match case.phase_on_disk {
            "report-ready" => assert_eq!(resumed_from, None, "{point}: {report}"),
            phase => assert_eq!(
                resumed_from,
                Some(format!("continuing from phase {phase}")),
                "{point}: {report}"
            ),
        }
        assert_eq!(server.reports_logged(id, job), 1, "{point}");
        let state = if rollback { "test_failed" } else { "test_passed" };
        assert_eq!(server.state(id), state, "{point}");

        // Out of the way of the next case's newer version.
        server.verb(&server.officer, id, "cancel", json!({ "reason": "case done" }));
        installed = expected;
    }
    server.assert_log_intact();
}

#[test]
fn apt_an_agent_killed_in_any_phase_of_an_upgrade_finishes_it_and_reports_once() {
    killed_in_each_phase(Packages::deb(), &UPGRADE, false);
}

#[test]
fn apt_an_agent_killed_in_any_phase_of_a_rollback_finishes_it_and_reports_once() {
    killed_in_each_phase(Packages::deb(), &ROLLBACK, true);
}

#[test]
fn dnf_an_agent_killed_in_a_phase_of_an_upgrade_or_rollback_finishes_it_and_reports_once() {
    killed_in_each_phase(Packages::rpm(), &DNF_UPGRADE, false);
    killed_in_each_phase(Packages::rpm(), &DNF_ROLLBACK, true);
}
