//! The agents' API against a real server on 127.0.0.1, on SQLite and on
//! PostgreSQL, with the agent played by this test over HTTP using the
//! protocol crate's real messages: enrolment, check-ins that ask for the
//! inventory only when it changed, inventories kept as deltas, signed jobs
//! issued when a request enters test or production work, reports that move
//! the request, a newer version that sends a tested request back, and bad
//! input refused with 4xx that changes nothing.

#[macro_use]
mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use patchwarden_protocol::inventory::{
    Facts, InstalledPackage, Inventory, OperatingSystem, PackageManager, PackageState,
    PendingUpdate, RebootStatus, Repository,
};
use patchwarden_protocol::{
    CheckInAnswer, EnrolAnswer, Job, JobOutcome, JobReport, PROTOCOL_VERSION, PackagePin,
    SignedJob, VERSION_HEADER, VerifyingKey,
};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    an_enrolment_token_works_once_and_expires,
    a_check_in_asks_for_the_inventory_only_when_its_hash_changed,
    bad_agent_input_is_refused_and_changes_nothing,
    a_revoked_or_unknown_endpoint_is_401,
    passing_jobs_record_the_test_and_production_as_the_product,
    a_rolled_back_job_fails_the_test_with_the_problem_recorded,
    a_report_is_kept_once_and_only_for_its_own_endpoint,
    a_newer_version_on_a_test_endpoint_sends_the_request_back_to_testing,
    a_job_without_a_report_by_the_end_of_its_window_is_missed,
);

/// One simulated agent.
struct Agent {
    id: i64,
    credential: String,
    key: VerifyingKey,
    last_sequence: u64,
}

async fn agent_call(
    server: &TestServer,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.url))
        .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
        .json(&body);
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn enrolment_token(server: &TestServer, officer: &str, env: &str) -> String {
    let (status, body) = server
        .post(
            "/api/v1/endpoints/enrolment-tokens",
            officer,
            json!({ "system": "payroll", "environment": env }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn enrol(server: &TestServer, officer: &str, env: &str, hostname: &str) -> Agent {
    let token = enrolment_token(server, officer, env).await;
    let (status, body) = agent_call(
        server,
        Method::POST,
        "/api/v1/agent/enrol",
        None,
        json!({ "protocol": 1, "token": token, "hostname": hostname, "machine_id": null }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: EnrolAnswer = serde_json::from_value(body).unwrap();
    Agent {
        id: answer.endpoint_id,
        credential: answer.credential,
        key: VerifyingKey::from_hex(&answer.signing_key).unwrap(),
        last_sequence: 0,
    }
}

async fn check_in(server: &TestServer, agent: &Agent, hash: &str) -> CheckInAnswer {
    let body = json!({
        "protocol": 1,
        "inventory_hash": hash,
        "agent_time": server.now(),
        "last_job_sequence": agent.last_sequence,
    });
    let (status, answer) =
        agent_call(server, Method::POST, "/api/v1/agent/check-in", Some(&agent.credential), body)
            .await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_value(answer).unwrap()
}

/// The jobs a check-in hands `agent`, opened as the agent opens them.
async fn jobs(server: &TestServer, agent: &mut Agent) -> Vec<Job> {
    let answer = check_in(server, agent, "").await;
    let mut opened = Vec::new();
    for signed in &answer.jobs {
        let job = signed.open(&agent.key, agent.id, server.now(), agent.last_sequence).unwrap();
        agent.last_sequence = job.sequence;
        opened.push(job);
    }
    opened
}

fn package(name: &str, version: &str) -> InstalledPackage {
    InstalledPackage {
        name: name.to_owned(),
        architecture: "amd64".to_owned(),
        version: version.to_owned(),
        source_name: name.to_owned(),
        source_version: version.to_owned(),
        state: PackageState::Installed,
        held: false,
    }
}

fn inventory(installed: &[(&str, &str)], pending: &[(&str, &str, &str)]) -> Inventory {
    let facts = Facts {
        os: OperatingSystem {
            id: "debian".into(),
            id_like: vec![],
            name: "Debian GNU/Linux".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            release: "12".into(),
        },
        architecture: "x86_64".into(),
        running_kernel: "6.1.0-27-amd64".into(),
        newest_installed_kernel: None,
        boot_id: "6e2b1c1e-0000-4000-8000-000000000001".into(),
        reboot: RebootStatus { required: false, reasons: vec![] },
        competing_updaters: vec![],
    };
    let pending = pending
        .iter()
        .map(|(name, installed, candidate)| PendingUpdate {
            name: (*name).to_owned(),
            architecture: "amd64".into(),
            installed_version: Some((*installed).to_owned()),
            candidate_version: (*candidate).to_owned(),
            repositories: vec![Repository {
                index: "file:/repo ./ Packages".into(),
                origin: Some("Debian".into()),
                label: Some("Debian-Security".into()),
                codename: Some("bookworm-security".into()),
                suite: Some("stable-security".into()),
            }],
            security: true,
            kept_back: None,
        })
        .collect();
    let packages = installed.iter().map(|(n, v)| package(n, v)).collect();
    Inventory::new(PackageManager::Dpkg, packages, facts, pending)
}

async fn upload(server: &TestServer, agent: &Agent, inventory: &Inventory) -> (u16, Value) {
    let body = json!({ "hash": inventory.hash(), "inventory": inventory });
    agent_call(server, Method::PUT, "/api/v1/agent/inventory", Some(&agent.credential), body).await
}

fn report(job: &Job, outcome: JobOutcome) -> JobReport {
    JobReport {
        protocol: 1,
        job_id: job.id,
        sequence: job.sequence,
        outcome,
        steps: vec![],
        versions_before: vec![PackagePin { name: "openssl".into(), version: "3.0.14-1".into() }],
        versions_after: job.install.clone(),
        health: vec![],
        config_files_left: vec![],
        recovered_interrupted: false,
        reboot: None,
        finished_at: Timestamp::from_second(1_800_000_000).unwrap(),
    }
}

async fn send_report(server: &TestServer, agent: &Agent, report: &JobReport) -> (u16, Value) {
    let path = format!("/api/v1/agent/jobs/{}/report", report.job_id);
    let body = serde_json::to_value(report).unwrap();
    agent_call(server, Method::POST, &path, Some(&agent.credential), body).await
}

async fn state_of(server: &TestServer, token: &str, id: i64) -> Value {
    let (status, body) = server.get(&format!("/api/v1/requests/{id}"), token).await;
    assert_eq!(status, 200, "{body}");
    body["request"].clone()
}

async fn log_actions(server: &TestServer, token: &str, id: i64) -> Vec<(String, String)> {
    let (_, body) = server.get(&format!("/api/v1/log?request={id}"), token).await;
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["actor"].as_str().unwrap().to_owned(), e["action"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn step(server: &TestServer, token: &str, id: i64, verb: &str, body: Value) {
    let (status, answer) = server.post(&format!("/api/v1/requests/{id}/{verb}"), token, body).await;
    assert_eq!(status, 200, "{verb}: {answer}");
}

/// Files, submits and approves a request, then starts its test.
async fn into_testing(server: &TestServer, cast: &Cast) -> i64 {
    let id = file_request(server, cast).await;
    step(server, &cast.officer, id, "submit", json!({})).await;
    step(server, &cast.owner, id, "approve", json!({})).await;
    step(server, &cast.operator, id, "start-test", json!({})).await;
    id
}

async fn an_enrolment_token_works_once_and_expires(server: &TestServer) {
    let cast = cast(server).await;
    let (status, body) = server
        .post(
            "/api/v1/endpoints/enrolment-tokens",
            &cast.operator,
            json!({ "system": "payroll", "environment": "test" }),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/endpoints/enrolment-tokens",
            &cast.officer,
            json!({ "system": "payroll", "environment": "staging" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'staging'"), "{body}");

    let token = enrolment_token(server, &cast.officer, "test").await;
    let enrol_body = |hostname: &str| json!({ "protocol": 1, "token": token, "hostname": hostname, "machine_id": null });
    let (status, body) =
        agent_call(server, Method::POST, "/api/v1/agent/enrol", None, enrol_body("bad host!"))
            .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) =
        agent_call(server, Method::POST, "/api/v1/agent/enrol", None, enrol_body("web-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["system"], "payroll");
    assert_eq!(body["environment"], "test");
    let (status, body) =
        agent_call(server, Method::POST, "/api/v1/agent/enrol", None, enrol_body("web-2")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("used already"), "{body}");

    let later = enrolment_token(server, &cast.officer, "prod").await;
    server.advance_hours(25);
    let body = json!({ "protocol": 1, "token": later, "hostname": "db-1", "machine_id": null });
    let (status, answer) =
        agent_call(server, Method::POST, "/api/v1/agent/enrol", None, body).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("expired"), "{answer}");
    let body = json!({ "protocol": 1, "token": "pwe_unknownunknownunknown", "hostname": "x", "machine_id": null });
    let (status, _) = agent_call(server, Method::POST, "/api/v1/agent/enrol", None, body).await;
    assert_eq!(status, 401);

    let (_, endpoints) = server.get("/api/v1/endpoints?system=payroll", &cast.auditor).await;
    let names: Vec<&str> = endpoints["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1"]);
    let (_, log) = server.get("/api/v1/log", &cast.auditor).await;
    let actions: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"endpoint-enrol") && actions.contains(&"enrolment-token-reuse"));
}

async fn a_check_in_asks_for_the_inventory_only_when_its_hash_changed(server: &TestServer) {
    let cast = cast(server).await;
    let agent = enrol(server, &cast.officer, "test", "web-1").await;
    let first = inventory(
        &[("openssl", "3.0.14-1"), ("nginx", "1.22.1-9")],
        &[("openssl", "3.0.14-1", "3.0.15-1~deb12u1")],
    );
    assert!(check_in(server, &agent, &first.hash()).await.send_inventory);
    let (status, body) = upload(server, &agent, &first).await;
    assert_eq!(status, 204, "{body}");
    assert!(!check_in(server, &agent, &first.hash()).await.send_inventory);

    let second = inventory(
        &[("openssl", "3.0.15-1~deb12u1"), ("nginx", "1.22.1-9"), ("curl", "7.88.1-10")],
        &[],
    );
    assert!(check_in(server, &agent, &second.hash()).await.send_inventory);
    assert_eq!(upload(server, &agent, &second).await.0, 204);

    let (_, shown) = server.get(&format!("/api/v1/endpoints/{}", agent.id), &cast.auditor).await;
    assert_eq!(shown["inventory"]["packages"], 3);
    assert_eq!(shown["endpoint"]["inventory_hash"], second.hash());
    let (_, changes) =
        server.get(&format!("/api/v1/endpoints/{}/changes", agent.id), &cast.auditor).await;
    let changes = changes["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["delta"]["first"], true);
    assert_eq!(changes[0]["delta"]["pending_security"], 1);
    assert_eq!(changes[1]["delta"]["added"], json!([["curl", "amd64", "7.88.1-10"]]));
    assert_eq!(changes[1]["delta"]["changed"][0][2], "3.0.14-1");
    assert_eq!(changes[1]["delta"]["changed"][0][3], "3.0.15-1~deb12u1");
}

async fn bad_agent_input_is_refused_and_changes_nothing(server: &TestServer) {
    let cast = cast(server).await;
    let agent = enrol(server, &cast.officer, "test", "web-1").await;
    let good = inventory(&[("openssl", "3.0.14-1")], &[]);

    let wrong_hash = json!({ "hash": "0".repeat(64), "inventory": good });
    let (status, body) = agent_call(
        server,
        Method::PUT,
        "/api/v1/agent/inventory",
        Some(&agent.credential),
        wrong_hash,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("hashes to"), "{body}");

    let malformed = json!({ "hash": good.hash(), "inventory": { "packages": "all of them" } });
    let (status, body) = agent_call(
        server,
        Method::PUT,
        "/api/v1/agent/inventory",
        Some(&agent.credential),
        malformed,
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let huge =
        json!({ "hash": good.hash(), "inventory": good, "padding": "x".repeat(9 * 1024 * 1024) });
    let (status, body) =
        agent_call(server, Method::PUT, "/api/v1/agent/inventory", Some(&agent.credential), huge)
            .await;
    assert_eq!(status, 413, "{body}");

    let no_header = server
        .client
        .post(format!("{}/api/v1/agent/check-in", server.url))
        .bearer_auth(&agent.credential)
        .json(&json!({ "protocol": 1, "inventory_hash": "", "agent_time": server.now(), "last_job_sequence": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status().as_u16(), 422);

    let (_, changes) =
        server.get(&format!("/api/v1/endpoints/{}/changes", agent.id), &cast.auditor).await;
    assert_eq!(changes["changes"], json!([]));
    let (_, shown) = server.get(&format!("/api/v1/endpoints/{}", agent.id), &cast.auditor).await;
    assert_eq!(shown["inventory"], Value::Null);
}

async fn a_revoked_or_unknown_endpoint_is_401(server: &TestServer) {
    let cast = cast(server).await;
    let agent = enrol(server, &cast.officer, "test", "web-1").await;
    check_in(server, &agent, "").await;
    let (status, _) = server
        .post(&format!("/api/v1/endpoints/{}/revoke", agent.id), &cast.operator, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .post(&format!("/api/v1/endpoints/{}/revoke", agent.id), &cast.officer, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let body = json!({ "protocol": 1, "inventory_hash": "", "agent_time": server.now(), "last_job_sequence": 0 });
    let (status, answer) = agent_call(
        server,
        Method::POST,
        "/api/v1/agent/check-in",
        Some(&agent.credential),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = agent_call(
        server,
        Method::POST,
        "/api/v1/agent/check-in",
        Some("pwa_nobody"),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = agent_call(server, Method::POST, "/api/v1/agent/check-in", None, body).await;
    assert_eq!(status, 401);
}

async fn passing_jobs_record_the_test_and_production_as_the_product(server: &TestServer) {
    let cast = cast(server).await;
    let mut web1 = enrol(server, &cast.officer, "test", "web-1").await;
    let mut web2 = enrol(server, &cast.officer, "test", "web-2").await;
    let mut prod = enrol(server, &cast.officer, "prod", "db-1").await;
    assert!(jobs(server, &mut web1).await.is_empty());

    let id = into_testing(server, &cast).await;
    let job1 = jobs(server, &mut web1).await;
    let job2 = jobs(server, &mut web2).await;
    assert_eq!((job1.len(), job2.len()), (1, 1));
    assert!(jobs(server, &mut prod).await.is_empty(), "no production job while testing");
    let job = &job1[0];
    assert_eq!(job.request_id, id);
    assert_eq!(
        job.install,
        [PackagePin { name: "openssl".into(), version: "3.0.15-1~deb12u1".into() }]
    );
    assert_eq!(job.window_end, server.now() + SignedDuration::from_hours(24 + 4));
    assert!(job.rollback_on_failure);
    // The check-in hands an open job again until its sequence is reported as seen.
    assert!(jobs(server, &mut web1).await.is_empty());

    let (status, body) = send_report(server, &web1, &report(job, JobOutcome::Succeeded)).await;
    assert_eq!((status, body["recorded"].clone()), (200, json!("new")));
    assert_eq!(state_of(server, &cast.auditor, id).await["state"], "testing");
    send_report(server, &web2, &report(&job2[0], JobOutcome::Succeeded)).await;
    let request = state_of(server, &cast.auditor, id).await;
    assert_eq!(request["state"], "test_passed");
    assert_eq!(request["test_result"]["recorded"]["by"], "patchwarden");
    let actions = log_actions(server, &cast.auditor, id).await;
    assert!(actions.contains(&("patchwarden".to_owned(), "record-test".to_owned())), "{actions:?}");
    assert_eq!(actions.iter().filter(|(_, a)| a == "job-issue").count(), 2);

    // Production: the plan, its notice, then the production endpoint's job.
    step(server, &cast.owner, id, "acknowledge-test", json!({})).await;
    let start = (server.now() + SignedDuration::from_hours(30)).to_string();
    step(
        server,
        &cast.operator,
        id,
        "propose-plan",
        json!({ "start": start, "duration_minutes": 120 }),
    )
    .await;
    step(server, &cast.officer, id, "accept-plan", json!({})).await;
    step(server, &cast.owner, id, "accept-plan", json!({})).await;
    step(server, &cast.operator, id, "approve-plan", json!({})).await;
    step(server, &cast.owner, id, "confirm-presence", json!({})).await;
    server.advance_hours(30);
    step(server, &cast.operator, id, "start-production", json!({})).await;
    assert!(jobs(server, &mut web1).await.is_empty());
    let prod_jobs = jobs(server, &mut prod).await;
    assert_eq!(prod_jobs.len(), 1);
    assert_eq!(prod_jobs[0].window_end, server.now() + SignedDuration::from_hours(2));
    send_report(server, &prod, &report(&prod_jobs[0], JobOutcome::Succeeded)).await;
    let request = state_of(server, &cast.auditor, id).await;
    assert_eq!(request["state"], "prod_passed");
    let (_, listed) = server.get(&format!("/api/v1/requests/{id}/jobs"), &cast.auditor).await;
    let outcomes: Vec<&str> =
        listed["jobs"].as_array().unwrap().iter().map(|j| j["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["succeeded", "succeeded", "succeeded"]);
    let (_, verified) = server.get("/api/v1/log/verify", &cast.auditor).await;
    assert_eq!(verified["intact"], true, "{verified}");
}

async fn a_rolled_back_job_fails_the_test_with_the_problem_recorded(server: &TestServer) {
    let cast = cast(server).await;
    let mut web1 = enrol(server, &cast.officer, "test", "web-1").await;
    let id = into_testing(server, &cast).await;
    let job = jobs(server, &mut web1).await.remove(0);
    let outcome = JobOutcome::RolledBack {
        check: "tcp 127.0.0.1:443 accepts".into(),
        detail: "connection refused".into(),
        checks_after_rollback_passed: true,
    };
    send_report(server, &web1, &report(&job, outcome)).await;
    let request = state_of(server, &cast.auditor, id).await;
    assert_eq!(request["state"], "test_failed");
    let problem = &request["problems"][0];
    assert_eq!(problem["criticality"], "high");
    assert_eq!(problem["found_by"], "patchwarden");
    let description = problem["description"].as_str().unwrap();
    assert!(
        description.contains("web-1") && description.contains("connection refused"),
        "{description}"
    );
}

async fn a_report_is_kept_once_and_only_for_its_own_endpoint(server: &TestServer) {
    let cast = cast(server).await;
    let mut web1 = enrol(server, &cast.officer, "test", "web-1").await;
    let mut web2 = enrol(server, &cast.officer, "test", "web-2").await;
    let id = into_testing(server, &cast).await;
    let job1 = jobs(server, &mut web1).await.remove(0);
    let job2 = jobs(server, &mut web2).await.remove(0);

    let (status, _) = send_report(server, &web2, &report(&job1, JobOutcome::Succeeded)).await;
    assert_eq!(status, 404, "another endpoint's job");
    let mut mismatched = report(&job1, JobOutcome::Succeeded);
    mismatched.sequence += 7;
    let (status, _) = send_report(server, &web1, &mismatched).await;
    assert_eq!(status, 422);

    let before = log_actions(server, &cast.auditor, id).await.len();
    assert_eq!(
        send_report(server, &web1, &report(&job1, JobOutcome::Succeeded)).await.1["recorded"],
        "new"
    );
    let failed = JobOutcome::Failed { step: "install".into(), detail: "late".into() };
    assert_eq!(send_report(server, &web1, &report(&job1, failed)).await.1["recorded"], "already");
    assert_eq!(log_actions(server, &cast.auditor, id).await.len(), before + 1);
    let (_, listed) = server.get(&format!("/api/v1/requests/{id}/jobs"), &cast.auditor).await;
    assert_eq!(listed["jobs"][0]["outcome"], "succeeded");
    assert_eq!(state_of(server, &cast.auditor, id).await["state"], "testing");
    send_report(server, &web2, &report(&job2, JobOutcome::Succeeded)).await;
    assert_eq!(state_of(server, &cast.auditor, id).await["state"], "test_passed");
}

async fn a_newer_version_on_a_test_endpoint_sends_the_request_back_to_testing(server: &TestServer) {
    let cast = cast(server).await;
    let mut web1 = enrol(server, &cast.officer, "test", "web-1").await;
    let id = into_testing(server, &cast).await;
    let job = jobs(server, &mut web1).await.remove(0);
    send_report(server, &web1, &report(&job, JobOutcome::Succeeded)).await;
    step(server, &cast.owner, id, "acknowledge-test", json!({})).await;

    // The same version again changes nothing; a newer one reopens the test.
    let same = inventory(&[("openssl", "3.0.15-1~deb12u1")], &[]);
    upload(server, &web1, &same).await;
    assert_eq!(state_of(server, &cast.auditor, id).await["state"], "test_acknowledged");
    let newer = inventory(
        &[("openssl", "3.0.15-1~deb12u1")],
        &[("openssl", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1")],
    );
    assert_eq!(upload(server, &web1, &newer).await.0, 204);
    let request = state_of(server, &cast.auditor, id).await;
    assert_eq!(request["state"], "testing");
    assert_eq!(request["packages"], json!(["openssl=3.0.16-1~deb12u1"]));
    let actions = log_actions(server, &cast.auditor, id).await;
    assert!(actions.contains(&("patchwarden".to_owned(), "reopen-test".to_owned())), "{actions:?}");
    let (_, log) = server.get(&format!("/api/v1/log?request={id}"), &cast.auditor).await;
    let reopen =
        log["entries"].as_array().unwrap().iter().find(|e| e["action"] == "reopen-test").unwrap();
    assert!(
        reopen["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("newer than the tested 3.0.15-1~deb12u1")
    );

    let retest = jobs(server, &mut web1).await;
    assert_eq!(retest.len(), 1);
    assert_eq!(retest[0].install[0].version, "3.0.16-1~deb12u1");
}

async fn a_job_without_a_report_by_the_end_of_its_window_is_missed(server: &TestServer) {
    let cast = cast(server).await;
    let mut web1 = enrol(server, &cast.officer, "test", "web-1").await;
    let id = into_testing(server, &cast).await;
    assert_eq!(jobs(server, &mut web1).await.len(), 1);
    server.sweep().await;
    let (_, listed) = server.get(&format!("/api/v1/requests/{id}/jobs"), &cast.auditor).await;
    assert_eq!(listed["jobs"][0]["outcome"], Value::Null);
    server.advance_hours(24 + 5);
    server.sweep().await;
    let (_, listed) = server.get(&format!("/api/v1/requests/{id}/jobs"), &cast.auditor).await;
    assert_eq!(listed["jobs"][0]["outcome"], "missed");
    assert_eq!(listed["jobs"][0]["report"]["reason"], "endpoint-offline");
    // Missing is not failing: the request waits for a person.
    assert_eq!(state_of(server, &cast.auditor, id).await["state"], "testing");
    let _ = SignedJob { payload: String::new(), signature: String::new() };
}
