//! Requests walked through their lifecycle by people over the API while real agents do the work.
//!
//! The main flow, on apt and on dnf: 1.0-1 installed on a test and a production endpoint, 1.1-1
//! published, a request for it tested by the test agent (the product records the test), taken
//! to production under a plan and its notice (the product records production), documented and
//! closed; then 1.2-1 passes its test but fails a production health check, and the production
//! agent puts 1.1-1 back. The newer-version guard: a version published after a passed test
//! sends the request back to testing with that version, and the next run tests it.

use std::net::TcpListener;

use serde_json::{Value, json};

use crate::harness::{Agent, PACKAGE, Packages, Patchwarden, UNIT, check, command_check, settings};

/// Checks that pass on every version: the unit (answered by the stand-in systemctl), the
/// service's port (a listener the test holds), and the package's file being there.
fn passing_checks(agent: &Agent, service: &TcpListener) -> Vec<Value> {
    let port = service.local_addr().unwrap().port();
    let payload = agent.packages.payload_file().display().to_string();
    vec![
        check(json!({ "kind": "systemd-unit", "unit": UNIT })),
        check(json!({ "kind": "tcp-port", "host": "127.0.0.1", "port": port })),
        command_check(&["/usr/bin/test", "-s", &payload]),
    ]
}

fn pins(version: &str) -> Value {
    json!([{ "name": PACKAGE, "version": version }])
}

/// `(environment, endpoint, outcome)` of each of the request's jobs.
fn job_summary(server: &Patchwarden, id: i64) -> Vec<(String, i64, String)> {
    server
        .jobs(id)
        .iter()
        .map(|job| {
            (
                job["environment"].as_str().unwrap().to_owned(),
                job["endpoint"].as_i64().unwrap(),
                job["outcome"].as_str().unwrap_or("(none)").to_owned(),
            )
        })
        .collect()
}

/// The report of the request's job on `endpoint`, the latest one.
fn report_on(server: &Patchwarden, id: i64, endpoint: i64) -> Value {
    let jobs = server.jobs(id);
    let job = jobs.iter().rev().find(|job| job["endpoint"] == endpoint).unwrap();
    job["report"].clone()
}

fn main_flow(packages: fn() -> Packages) {
    let machine_status = crate::common::machine_dpkg_status_hash();
    let server = Patchwarden::start();
    let test = Agent::enrol(&server, "test", packages());
    let prod = Agent::enrol(&server, "prod", packages());
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    for agent in [&test, &prod] {
        agent.packages.publish(&["1.0-1"]);
        agent.packages.install("1.0-1");
        agent.packages.publish(&["1.1-1"]);
    }
    server.set_environment("test", settings(passing_checks(&test, &service)));
    server.set_environment("prod", settings(passing_checks(&prod, &service)));

    // First check-ins: each agent sends its inventory, 1.1-1 pending.
    for agent in [&test, &prod] {
        agent.run_once();
        let shown = server.endpoint(agent.endpoint_id);
        let pending = &shown["inventory"]["pending"];
        assert_eq!(pending[0]["name"], PACKAGE, "{shown}");
        assert_eq!(pending[0]["installed"], "1.0-1", "{shown}");
        assert_eq!(pending[0]["candidate"], "1.1-1", "{shown}");
    }

    // The test: one job for the test endpoint, run and reported by the agent.
    let first = server.approved_request("1.1-1");
    server.verb(&server.operator, first, "start-test", json!({}));
    assert_eq!(job_summary(&server, first), [("test".into(), test.endpoint_id, "(none)".into())]);
    test.run_once();
    let request = server.request(first);
    assert_eq!(request["state"], "test_passed", "{request}");
    assert_eq!(request["test_result"]["recorded"]["by"], "patchwarden", "{request}");
    assert_eq!(test.packages.version().as_deref(), Some("1.1-1"));

    // Nothing reaches production before the plan, its notice and the start.
    prod.run_once();
    assert_eq!(prod.packages.version().as_deref(), Some("1.0-1"));
    assert_eq!(server.jobs(first).len(), 1);

    // Production.
    server.take_to_production(first);
    prod.run_once();
    let request = server.request(first);
    assert_eq!(request["state"], "prod_passed", "{request}");
    assert_eq!(request["production_result"]["recorded"]["by"], "patchwarden", "{request}");
    assert_eq!(prod.packages.version().as_deref(), Some("1.1-1"));
    assert_eq!(test.packages.version().as_deref(), Some("1.1-1"));
    let summary = "pw-demo 1.1-1 on the test and production endpoints";
    server.verb(&server.operator, first, "document", json!({ "summary": summary }));
    server.verb(&server.officer, first, "close", json!({}));
    assert_eq!(server.state(first), "closed");

    // What the agents reported.
    assert_eq!(
        job_summary(&server, first),
        [
            ("test".into(), test.endpoint_id, "succeeded".into()),
            ("prod".into(), prod.endpoint_id, "succeeded".into()),
        ]
    );
    for job in server.jobs(first) {
        let report = &job["report"];
        let steps: Vec<&str> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps.first(), Some(&"accept"), "{report}");
        assert!(!steps.contains(&"resume"), "a job run in one go is not resumed: {report}");
        assert_eq!(report["versions_before"], pins("1.0-1"), "{report}");
        assert_eq!(report["versions_after"], pins("1.1-1"), "{report}");
        let health = report["health"].as_array().unwrap();
        assert_eq!(health.len(), 3, "{report}");
        assert!(health.iter().all(|c| c["passed"] == true), "{report}");
    }
    server.assert_log_intact();

    // 1.2-1 passes its test; in production it breaks what a check looks at.
    for agent in [&test, &prod] {
        agent.packages.publish(&["1.2-1"]);
    }
    let mut prod_checks = passing_checks(&prod, &service);
    prod_checks.push(prod.packages.payload_is_not("1.2-1"));
    server.set_environment("prod", settings(prod_checks));
    let second = server.approved_request("1.2-1");
    server.verb(&server.operator, second, "start-test", json!({}));
    test.run_once();
    assert_eq!(server.state(second), "test_passed");
    assert_eq!(test.packages.version().as_deref(), Some("1.2-1"));

    server.take_to_production(second);
    prod.run_once();
    let request = server.request(second);
    assert_eq!(request["state"], "prod_failed", "{request}");
    assert_eq!(request["production_result"]["passed"], false, "{request}");
    let problem = &request["problems"][0];
    assert_eq!(problem["environment"], "prod", "{request}");
    assert_eq!(problem["found_by"], "patchwarden", "{request}");
    let description = problem["description"].as_str().unwrap();
    assert!(description.contains("grep -qvx"), "{description}");
    assert!(description.contains("the old versions were put back"), "{description}");

    // The production endpoint has 1.1-1 again, and says so.
    assert_eq!(prod.packages.version().as_deref(), Some("1.1-1"));
    assert_eq!(
        std::fs::read_to_string(prod.packages.payload_file()).unwrap().trim(),
        prod.packages.payload("1.1-1")
    );
    assert_eq!(
        job_summary(&server, second),
        [
            ("test".into(), test.endpoint_id, "succeeded".into()),
            ("prod".into(), prod.endpoint_id, "rolled-back".into()),
        ]
    );
    // The automatic rollback is recorded as pre-approved with the plan, naming who accepted it.
    let log = server.log(second);
    let recorded = log.iter().find(|entry| entry["action"] == "record-production").unwrap();
    assert_eq!(recorded["actor"], "patchwarden", "{recorded}");
    let rollback = &recorded["details"]["automatic_rollback"];
    assert_eq!(rollback["pre_approved"], true, "{recorded}");
    assert!(rollback["owner_acceptance"]["by"].is_string(), "{recorded}");
    assert!(rollback["plan_approval"]["by"].is_string(), "{recorded}");
    let job_report = log
        .iter()
        .find(|entry| {
            entry["action"] == "job-report" && entry["details"]["outcome"] == "rolled-back"
        })
        .unwrap();
    assert_eq!(job_report["details"]["automatic_rollback"]["pre_approved"], true, "{job_report}");

    let report = report_on(&server, second, prod.endpoint_id);
    assert_eq!(report["outcome"]["checks_after_rollback_passed"], true, "{report}");
    assert_eq!(report["versions_before"], pins("1.1-1"), "{report}");
    assert_eq!(report["versions_after"], pins("1.1-1"), "{report}");

    // The owner confirms the rollback the agent made; the request ends like any other.
    let reasoning = "1.2-1 breaks the service in production; 1.1-1 is back";
    server.verb(
        &server.owner,
        second,
        "decide",
        json!({ "decision": "roll-back", "reasoning": reasoning }),
    );
    assert_eq!(server.state(second), "rolled_back");
    let summary = "pw-demo 1.2-1 rolled back in production";
    server.verb(&server.operator, second, "document", json!({ "summary": summary }));
    server.verb(&server.officer, second, "close", json!({}));
    assert_eq!(server.state(second), "closed");
    assert_eq!(server.jobs(second).len(), 2, "a decision issues no job");
    server.assert_log_intact();
    assert_eq!(crate::common::machine_dpkg_status_hash(), machine_status);
}

#[test]
fn apt_a_request_walks_through_test_and_production_and_a_failing_version_is_rolled_back() {
    main_flow(Packages::deb);
}

#[test]
fn dnf_a_request_walks_through_test_and_production_and_a_failing_version_is_rolled_back() {
    main_flow(Packages::rpm);
}

#[test]
fn a_version_published_after_the_test_sends_the_request_back_to_testing_and_is_tested() {
    let server = Patchwarden::start();
    let test = Agent::enrol(&server, "test", Packages::deb());
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    test.packages.publish(&["1.0-1"]);
    test.packages.install("1.0-1");
    test.packages.publish(&["1.1-1"]);
    server.set_environment("test", settings(passing_checks(&test, &service)));

    let id = server.approved_request("1.1-1");
    server.verb(&server.operator, id, "start-test", json!({}));
    test.run_once();
    server.verb(&server.owner, id, "acknowledge-test", json!({}));
    assert_eq!(server.state(id), "test_acknowledged");

    // 1.2-1 appears; the agent's next inventory shows it pending.
    test.packages.publish(&["1.2-1"]);
    test.run_once();
    let request = server.request(id);
    assert_eq!(request["state"], "testing", "{request}");
    assert_eq!(request["packages"], json!([format!("{PACKAGE}=1.2-1")]), "{request}");
    let log = server.log(id);
    let reopen = log.iter().find(|entry| entry["action"] == "reopen-test").unwrap();
    assert_eq!(reopen["actor"], "patchwarden");
    assert!(
        reopen["details"]["reason"].as_str().unwrap().contains("newer than the tested 1.1-1"),
        "{reopen}"
    );
    assert_eq!(test.packages.version().as_deref(), Some("1.1-1"));
    assert_eq!(
        job_summary(&server, id),
        [
            ("test".into(), test.endpoint_id, "succeeded".into()),
            ("test".into(), test.endpoint_id, "(none)".into()),
        ]
    );

    // The next run tests the newer version.
    test.run_once();
    assert_eq!(server.state(id), "test_passed");
    assert_eq!(test.packages.version().as_deref(), Some("1.2-1"));
    let report = report_on(&server, id, test.endpoint_id);
    assert_eq!(report["outcome"]["outcome"], "succeeded", "{report}");
    assert_eq!(report["versions_before"], pins("1.1-1"), "{report}");
    assert_eq!(report["versions_after"], pins("1.2-1"), "{report}");
    server.assert_log_intact();
}
