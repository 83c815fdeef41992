//! The JSON API against a real server on 127.0.0.1 (port 0), every scenario on
//! SQLite and on PostgreSQL: the whole lifecycle over HTTP, each guard refused
//! with its status and message, the separation of duties, the order of checks
//! (401, 404, 403, 422, 409), invitations, tokens, bad input that changes
//! nothing, and policy versions.
//!
//! Each scenario asserts the behaviour the issue and DESIGN.md ask for; the
//! clock is the harness's manual clock, moved forward, never waited on.

#[macro_use]
mod common;

use common::*;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    the_whole_lifecycle_from_draft_to_closed_is_logged_in_order,
    submit_names_every_missing_field,
    a_verb_in_the_wrong_state_is_409_with_the_state_and_the_verbs_allowed,
    approve_plan_too_soon_is_422_with_the_earliest_compliant_start,
    start_production_before_the_notice_has_run_is_409,
    a_failed_test_without_a_problem_is_422,
    only_the_update_officer_closes,
    a_request_field_without_an_offset_or_a_bad_package_is_422_naming_it,
    the_requester_may_not_approve_even_as_deputy_of_the_system,
    an_admin_never_approves,
    an_operator_never_approves,
    the_owner_of_another_system_may_not_approve,
    an_auditor_reads_everything_and_acts_on_nothing,
    an_admin_creates_no_system_and_files_no_request,
    only_an_admin_creates_and_invites_accounts,
    the_requester_is_the_caller_and_cannot_be_named_in_the_body,
    no_token_is_401_even_for_an_unknown_request,
    a_bad_token_is_401,
    an_unknown_request_is_404_before_any_role_check,
    a_forbidden_caller_with_a_malformed_body_is_403,
    a_non_admin_with_a_malformed_body_on_an_admin_route_is_403,
    a_malformed_body_on_a_request_in_the_wrong_state_is_422,
    an_invitation_is_single_use_and_its_reuse_is_logged,
    an_invitation_expires_after_the_invitation_hours,
    an_unknown_invitation_code_is_401,
    a_short_password_is_422_and_keeps_the_invitation,
    a_new_invitation_replaces_the_unredeemed_one,
    login_gives_a_new_token_and_a_wrong_password_is_401,
    a_token_is_created_only_for_the_caller,
    the_token_list_never_shows_secrets,
    a_revoked_token_is_refused_and_the_others_still_work,
    only_an_admin_revokes_someone_elses_token,
    the_bootstrap_token_belongs_to_admin,
    malformed_json_wrong_types_and_unknown_fields_are_422_and_change_nothing,
    a_body_over_the_limit_is_413_in_json_and_changes_nothing,
    a_malformed_query_string_is_422_in_json,
    the_policy_starts_at_version_1_with_24_hours_notice,
    a_policy_change_makes_version_2_and_the_lifecycle_enforces_it,
    an_unknown_or_mistyped_policy_setting_is_422_and_a_non_admin_is_403,
);

// Helpers.

const PASSWORD: &str = "a long enough password";

/// The error's message, or "" when the body is not an error.
fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

/// Fails if an answer shows SQL, the database driver or the engine's name.
fn assert_no_internals(text: &str) {
    let lower = text.to_lowercase();
    for word in ["sqlx", "sqlite", "postgres"] {
        assert!(!lower.contains(word), "the answer leaks '{word}': {text}");
    }
    assert!(!text.contains("SELECT"), "the answer leaks SQL: {text}");
}

/// Asserts a refusal: its status (in the header and the JSON), its code and a
/// part of its message; returns the body.
#[track_caller]
fn refused(answer: (u16, Value), status: u16, part: &str) -> Value {
    let (got, body) = answer;
    assert_eq!(got, status, "expected {status}, got {got}: {body}");
    assert_eq!(body["error"]["status"], status, "{body}");
    let code = body["error"]["code"].as_str().unwrap_or("");
    assert!(code.starts_with(&format!("PW{status}")), "code {code:?} for {status}: {body}");
    let text = message(&body);
    assert!(text.contains(part), "message {text:?} does not say {part:?}");
    assert_no_internals(&body.to_string());
    body
}

/// Asserts a 200 and returns the body.
#[track_caller]
fn ok(answer: (u16, Value)) -> Value {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    body
}

fn hours_from_now(server: &TestServer, hours: i64) -> String {
    (server.now() + SignedDuration::from_hours(hours)).to_string()
}

/// `POST /api/v1/requests/{id}/{verb}`.
async fn act(server: &TestServer, token: &str, id: i64, verb: &str, body: Value) -> (u16, Value) {
    server.post(&format!("/api/v1/requests/{id}/{verb}"), token, body).await
}

/// Takes a verb that must succeed and leave the request in `state`.
async fn step(server: &TestServer, token: &str, id: i64, verb: &str, body: Value, state: &str) {
    let answer = ok(act(server, token, id, verb, body).await);
    assert_eq!(answer["request"]["state"], state, "after {verb}: {answer}");
}

async fn state_of(server: &TestServer, id: i64) -> String {
    let body = ok(server.get(&format!("/api/v1/requests/{id}"), &server.admin).await);
    body["request"]["state"].as_str().unwrap().to_owned()
}

async fn log(server: &TestServer, query: &str) -> Vec<Value> {
    let body = ok(server.get(&format!("/api/v1/log?limit=10000{query}"), &server.admin).await);
    body["entries"].as_array().unwrap().clone()
}

/// What must not change when a call is refused: the log's length and the
/// request's state.
async fn snapshot(server: &TestServer, id: i64) -> (usize, String) {
    (log(server, "").await.len(), state_of(server, id).await)
}

/// Sends `body` as it is, with a JSON content type; returns the status and text.
async fn send_raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.url))
        .header("content-type", "application/json")
        // The server may close a connection whose body it refused unread; never reuse it.
        .header("connection", "close")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// As `send_raw`, parsing the answer as JSON (a refusal must be JSON).
async fn send_raw_json(server: &TestServer, path: &str, token: &str, body: &str) -> (u16, Value) {
    let (status, text) =
        send_raw(server, Method::POST, path, Some(token), body.as_bytes().to_vec()).await;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("answer {status} is not JSON: {text:?}"));
    (status, value)
}

async fn redeem(server: &TestServer, code: &str, password: &str) -> (u16, Value) {
    let body = json!({ "code": code, "password": password });
    server.call(Method::POST, "/api/v1/invitations/redeem", None, Some(body)).await
}

/// Creates an account as the admin; returns its invitation code.
async fn invite(server: &TestServer, name: &str, roles: &[&str]) -> String {
    let body = json!({ "name": name, "roles": roles, "position": "staff" });
    let created = ok(server.post("/api/v1/accounts", &server.admin, body).await);
    assert_eq!(created["account"]["name"], name);
    created["invitation"]["code"].as_str().unwrap().to_owned()
}

/// The id of the token the caller presents.
async fn token_id(server: &TestServer, token: &str) -> i64 {
    ok(server.get("/api/v1/me", token).await)["token"].as_i64().unwrap()
}

fn plan_body(server: &TestServer, start_hours: i64) -> Value {
    json!({ "start": hours_from_now(server, start_hours), "duration_minutes": 60 })
}

/// Takes request `id` along the ordinary path (production plan 48 h ahead,
/// the clock moved by the default 24 h notice before production starts) until
/// it reaches `target`.
async fn drive(server: &TestServer, cast: &Cast, id: i64, target: &str) {
    let steps: Vec<(&str, &str, &str, Value)> = vec![
        ("submitted", &cast.officer, "submit", json!({})),
        ("approved", &cast.owner, "approve", json!({ "comment": "go ahead" })),
        ("testing", &cast.operator, "start-test", json!({})),
        ("test_passed", &cast.operator, "record-test", json!({ "passed": true })),
        ("test_acknowledged", &cast.owner, "acknowledge-test", json!({})),
        ("plan_proposed", &cast.operator, "propose-plan", plan_body(server, 48)),
        ("plan_proposed", &cast.officer, "accept-plan", json!({})),
        ("plan_accepted", &cast.owner, "accept-plan", json!({})),
        ("plan_approved", &cast.operator, "approve-plan", json!({})),
        ("ready", &cast.owner, "confirm-presence", json!({})),
        ("prod_updating", &cast.operator, "start-production", json!({})),
        ("prod_passed", &cast.operator, "record-production", json!({ "passed": true })),
        ("documented", &cast.operator, "document", json!({ "summary": "openssl updated" })),
    ];
    for (index, (state, token, verb, body)) in steps.iter().enumerate() {
        if *verb == "start-production" {
            server.advance_hours(24);
        }
        step(server, token, id, verb, body.clone(), state).await;
        let last_for_state = steps.get(index + 1).is_none_or(|next| next.0 != *state);
        if *state == target && last_for_state {
            return;
        }
    }
    panic!("drive does not reach '{target}'");
}

/// Proposes a plan starting `start_hours` from now and has both parties accept it.
async fn propose_and_accept(server: &TestServer, cast: &Cast, id: i64, start_hours: i64) {
    let plan = plan_body(server, start_hours);
    step(server, &cast.operator, id, "propose-plan", plan, "plan_proposed").await;
    step(server, &cast.officer, id, "accept-plan", json!({}), "plan_proposed").await;
    step(server, &cast.owner, id, "accept-plan", json!({}), "plan_accepted").await;
}

// The whole lifecycle.

async fn the_whole_lifecycle_from_draft_to_closed_is_logged_in_order(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    let shown = ok(server.get(&format!("/api/v1/requests/{id}"), &cast.auditor).await);
    assert_eq!(shown["request"]["state"], "draft");
    assert_eq!(shown["request"]["requester"], "olivia");
    assert_eq!(shown["request"]["missing"], json!([]));

    // Approval and test.
    step(server, &cast.officer, id, "submit", json!({}), "submitted").await;
    step(server, &cast.owner, id, "approve", json!({ "comment": "go ahead" }), "approved").await;
    step(server, &cast.operator, id, "start-test", json!({}), "testing").await;
    let report = json!({ "passed": true, "notes": "nginx answers" });
    step(server, &cast.operator, id, "record-test", report, "test_passed").await;
    step(server, &cast.owner, id, "acknowledge-test", json!({}), "test_acknowledged").await;

    // The plan, accepted by officer and owner, approved 48 h ahead.
    propose_and_accept(server, &cast, id, 48).await;
    let announced_at = server.now();
    step(server, &cast.operator, id, "approve-plan", json!({}), "plan_approved").await;
    let shown = ok(server.get(&format!("/api/v1/requests/{id}"), &cast.owner).await);
    assert_eq!(shown["request"]["plan"]["announced_at"], json!(announced_at));
    step(server, &cast.owner, id, "confirm-presence", json!({}), "ready").await;

    // Production once the notice period has run, then documentation and close.
    server.advance_hours(24);
    step(server, &cast.operator, id, "start-production", json!({}), "prod_updating").await;
    let report = json!({ "passed": true });
    step(server, &cast.operator, id, "record-production", report, "prod_passed").await;
    let summary = json!({ "summary": "openssl 3.0.15 on payroll" });
    step(server, &cast.operator, id, "document", summary, "documented").await;
    step(server, &cast.officer, id, "close", json!({}), "closed").await;

    // The log lists every step in order with its actor.
    let entries = log(server, &format!("&request={id}")).await;
    let expected = [
        ("create", "olivia", None, "draft"),
        ("submit", "olivia", Some("draft"), "submitted"),
        ("approve", "oscar", Some("submitted"), "approved"),
        ("start-test", "pat", Some("approved"), "testing"),
        ("record-test", "pat", Some("testing"), "test_passed"),
        ("acknowledge-test", "oscar", Some("test_passed"), "test_acknowledged"),
        ("propose-plan", "pat", Some("test_acknowledged"), "plan_proposed"),
        ("accept-plan", "olivia", Some("plan_proposed"), "plan_proposed"),
        ("accept-plan", "oscar", Some("plan_proposed"), "plan_accepted"),
        ("approve-plan", "pat", Some("plan_accepted"), "plan_approved"),
        ("confirm-presence", "oscar", Some("plan_approved"), "ready"),
        ("start-production", "pat", Some("ready"), "prod_updating"),
        ("record-production", "pat", Some("prod_updating"), "prod_passed"),
        ("document", "pat", Some("prod_passed"), "documented"),
        ("close", "olivia", Some("documented"), "closed"),
    ];
    let seen: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for (entry, (action, actor, before, after)) in entries.iter().zip(expected) {
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["actor"], actor, "{entry}");
        assert_eq!(entry["request"], id, "{entry}");
        assert_eq!(entry["state_before"], json!(before), "{entry}");
        assert_eq!(entry["state_after"], after, "{entry}");
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "not in order: {seqs:?}");

    // The chain is intact, and exports have one line per entry.
    let all = log(server, "").await;
    let verified = ok(server.get("/api/v1/log/verify", &cast.auditor).await);
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["entries"], all.len(), "{verified}");
    let (status, csv) = server.get("/api/v1/log/export?format=csv", &cast.auditor).await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    let lines: Vec<&str> = csv.split("\r\n").filter(|line| !line.is_empty()).collect();
    assert!(lines[0].starts_with("seq,at,actor,action,request"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + all.len(), "{csv}");
    let (status, csv) =
        server.get(&format!("/api/v1/log/export?format=csv&request={id}"), &cast.auditor).await;
    assert_eq!(status, 200);
    let lines = csv.as_str().unwrap().split("\r\n").filter(|line| !line.is_empty()).count();
    assert_eq!(lines, 1 + entries.len());
    refused(server.get("/api/v1/log/export?format=xml", &cast.auditor).await, 422, "'xml'");
}

// Each guard, refused with its status and message.

async fn submit_names_every_missing_field(server: &TestServer) {
    let cast = cast(server).await;
    let body = json!({ "system": "payroll", "purpose": "fix CVE-2024-5535" });
    let created = ok(server.post("/api/v1/requests", &cast.officer, body).await);
    let id = created["request"]["id"].as_i64().unwrap();
    let before = snapshot(server, id).await;

    let refusal =
        refused(act(server, &cast.officer, id, "submit", json!({})).await, 422, "missing");
    let missing = ["operator", "test_date", "prod_date", "packages", "downtime", "description"];
    for field in missing {
        assert!(message(&refusal).contains(field), "{field} is not named: {refusal}");
    }
    assert_eq!(refusal["error"]["fields"], json!(missing), "{refusal}");
    assert_eq!(snapshot(server, id).await, before);
}

async fn a_verb_in_the_wrong_state_is_409_with_the_state_and_the_verbs_allowed(
    server: &TestServer,
) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;

    let refusal = refused(
        act(server, &cast.operator, id, "start-test", json!({})).await,
        409,
        &format!("cannot start-test request {id}: it is draft"),
    );
    assert_eq!(refusal["error"]["state"], "draft", "{refusal}");
    assert_eq!(refusal["error"]["paused"], false, "{refusal}");
    assert_eq!(refusal["error"]["allowed"], json!(["amend", "submit"]), "{refusal}");

    step(server, &cast.officer, id, "submit", json!({}), "submitted").await;
    let refusal =
        refused(act(server, &cast.officer, id, "close", json!({})).await, 409, "submitted");
    assert_eq!(refusal["error"]["state"], "submitted");
    assert_eq!(refusal["error"]["allowed"], json!(["approve", "reject", "cancel", "problem"]));
}

async fn approve_plan_too_soon_is_422_with_the_earliest_compliant_start(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "test_acknowledged").await;
    propose_and_accept(server, &cast, id, 2).await;
    let before = snapshot(server, id).await;

    let earliest = hours_from_now(server, 24);
    let refusal = refused(
        act(server, &cast.operator, id, "approve-plan", json!({})).await,
        422,
        &format!("the earliest start that complies is {earliest}"),
    );
    assert!(message(&refusal).contains("24 h"), "{refusal}");
    assert_eq!(refusal["error"]["fields"], json!(["start"]));
    assert_eq!(snapshot(server, id).await, before);

    // A plan starting exactly the notice period ahead complies.
    let plan = json!({ "start": earliest, "duration_minutes": 60 });
    step(server, &cast.operator, id, "revise-plan", plan, "plan_proposed").await;
    step(server, &cast.officer, id, "accept-plan", json!({}), "plan_proposed").await;
    step(server, &cast.owner, id, "accept-plan", json!({}), "plan_accepted").await;
    step(server, &cast.operator, id, "approve-plan", json!({}), "plan_approved").await;
}

async fn start_production_before_the_notice_has_run_is_409(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "ready").await;
    let announced = ok(server.get(&format!("/api/v1/requests/{id}"), &cast.operator).await);
    let announced_at: jiff::Timestamp =
        announced["request"]["plan"]["announced_at"].as_str().unwrap().parse().unwrap();
    let earliest = (announced_at + SignedDuration::from_hours(24)).to_string();
    let before = snapshot(server, id).await;

    let refusal = refused(
        act(server, &cast.operator, id, "start-production", json!({})).await,
        409,
        &format!("may start from {earliest}"),
    );
    assert_eq!(refusal["error"]["state"], "ready");
    assert!(refusal["error"]["allowed"].as_array().unwrap().contains(&json!("start-production")));
    server.advance_hours(23);
    refused(act(server, &cast.operator, id, "start-production", json!({})).await, 409, "24 h");
    assert_eq!(snapshot(server, id).await, before);

    server.advance_hours(1);
    step(server, &cast.operator, id, "start-production", json!({}), "prod_updating").await;
}

async fn a_failed_test_without_a_problem_is_422(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "testing").await;
    let before = snapshot(server, id).await;

    let failed = json!({ "passed": false, "notes": "nginx does not start" });
    let refusal =
        refused(act(server, &cast.operator, id, "record-test", failed).await, 422, "problem");
    assert!(message(&refusal).contains("a failed test needs the problem found"), "{refusal}");
    assert_eq!(refusal["error"]["fields"], json!(["problem"]));
    assert_eq!(snapshot(server, id).await, before);

    let failed = json!({
        "passed": false,
        "problem": { "description": "nginx does not start", "criticality": "high" },
    });
    step(server, &cast.operator, id, "record-test", failed, "test_failed").await;
}

async fn only_the_update_officer_closes(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "documented").await;
    let before = snapshot(server, id).await;

    let only = "only the request's update officer may close it";
    refused(act(server, &cast.owner, id, "close", json!({})).await, 403, only);
    refused(act(server, &cast.operator, id, "close", json!({})).await, 403, only);
    refused(act(server, &cast.other_owner, id, "close", json!({})).await, 403, only);
    refused(act(server, &server.admin, id, "close", json!({})).await, 403, "is an admin");
    assert_eq!(snapshot(server, id).await, before);

    step(server, &cast.officer, id, "close", json!({}), "closed").await;
}

async fn a_request_field_without_an_offset_or_a_bad_package_is_422_naming_it(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    let body = json!({ "system": "payroll", "test_date": "2026-03-03T09:00" });
    let refusal =
        refused(server.post("/api/v1/requests", &cast.officer, body).await, 422, "offset");
    assert_eq!(refusal["error"]["fields"], json!(["test_date"]));
    let body = json!({ "system": "payroll", "packages": ["openssl"] });
    let refusal = refused(server.post("/api/v1/requests", &cast.officer, body).await, 422, "");
    assert_eq!(refusal["error"]["fields"], json!(["packages"]));
    let body = json!({ "system": "nowhere" });
    let refusal =
        refused(server.post("/api/v1/requests", &cast.officer, body).await, 422, "nowhere");
    assert_eq!(refusal["error"]["fields"], json!(["system"]));
    assert_eq!(log(server, "").await.len(), count);
}

// Separation of duties.

async fn the_requester_may_not_approve_even_as_deputy_of_the_system(server: &TestServer) {
    let cast = cast(server).await;
    let sam = server.person("sam", &["security-officer", "owner"]).await;
    let system =
        json!({ "name": "hr", "owner": "oscar", "deputy": "sam", "notify": ["hr@example.org"] });
    ok(server.post("/api/v1/systems", &cast.officer, system).await);
    let body = json!({
        "system": "hr",
        "officer": "olivia",
        "operator": "pat",
        "test_date": hours_from_now(server, 24),
        "prod_date": hours_from_now(server, 24 * 7),
        "packages": ["openssl=3.0.15-1~deb12u1"],
        "purpose": "fix CVE-2024-5535",
        "downtime": "up to 10 minutes",
        "description": "upgrade openssl",
    });
    let created = ok(server.post("/api/v1/requests", &sam, body).await);
    assert_eq!(created["request"]["requester"], "sam");
    let id = created["request"]["id"].as_i64().unwrap();
    step(server, &sam, id, "submit", json!({}), "submitted").await;
    let before = snapshot(server, id).await;

    refused(act(server, &sam, id, "approve", json!({})).await, 403, "'sam' is the requester");
    assert_eq!(snapshot(server, id).await, before);

    // The other owner of the system may.
    step(server, &cast.owner, id, "approve", json!({}), "approved").await;
}

async fn an_admin_never_approves(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;

    let refusal = refused(
        act(server, &server.admin, id, "approve", json!({})).await,
        403,
        "an admin never acts on an update request",
    );
    assert!(message(&refusal).contains("'admin'"), "{refusal}");
    refused(
        act(server, &server.admin, id, "reject", json!({ "reason": "no" })).await,
        403,
        "admin",
    );
    assert_eq!(snapshot(server, id).await, before);
}

async fn an_operator_never_approves(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;

    refused(
        act(server, &cast.operator, id, "approve", json!({})).await,
        403,
        "only the owner or deputy of system 'payroll' may approve; 'pat' is not",
    );
    refused(act(server, &cast.officer, id, "approve", json!({})).await, 403, "'olivia' is not");
    assert_eq!(snapshot(server, id).await, before);
}

async fn the_owner_of_another_system_may_not_approve(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;

    refused(
        act(server, &cast.other_owner, id, "approve", json!({})).await,
        403,
        "only the owner or deputy of system 'payroll' may approve; 'otto' is not",
    );
    assert_eq!(snapshot(server, id).await, before);

    // The deputy of the system may.
    step(server, &cast.deputy, id, "approve", json!({}), "approved").await;
}

async fn an_auditor_reads_everything_and_acts_on_nothing(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;

    let auditors = "auditors read, they do not act";
    refused(act(server, &cast.auditor, id, "approve", json!({})).await, 403, auditors);
    refused(
        act(server, &cast.auditor, id, "cancel", json!({ "reason": "x" })).await,
        403,
        auditors,
    );
    let system = json!({ "name": "audit", "owner": "oscar" });
    refused(server.post("/api/v1/systems", &cast.auditor, system).await, 403, "security-officer");
    let filing = json!({ "system": "payroll" });
    refused(server.post("/api/v1/requests", &cast.auditor, filing).await, 403, "'audrey'");
    let change = json!({ "set": { "notice_hours": 1 }, "reason": "x" });
    refused(server.post("/api/v1/policy", &cast.auditor, change).await, 403, "admin");
    let account = json!({ "name": "eve", "roles": ["admin"] });
    refused(server.post("/api/v1/accounts", &cast.auditor, account).await, 403, "admin");
    assert_eq!(snapshot(server, id).await, before);

    for path in [
        format!("/api/v1/requests/{id}"),
        "/api/v1/requests".to_owned(),
        "/api/v1/systems".to_owned(),
        "/api/v1/systems/payroll".to_owned(),
        "/api/v1/accounts".to_owned(),
        "/api/v1/policy".to_owned(),
        "/api/v1/policy/history".to_owned(),
        format!("/api/v1/log?request={id}"),
        "/api/v1/log/verify".to_owned(),
        "/api/v1/log/export?format=json".to_owned(),
    ] {
        let (status, body) = server.get(&path, &cast.auditor).await;
        assert_eq!(status, 200, "auditor reading {path}: {body}");
    }
}

async fn an_admin_creates_no_system_and_files_no_request(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    let system = json!({ "name": "mail", "owner": "oscar" });
    refused(
        server.post("/api/v1/systems", &server.admin, system).await,
        403,
        "'admin' may not create systems",
    );
    let filing = json!({ "system": "payroll", "purpose": "x" });
    refused(server.post("/api/v1/requests", &server.admin, filing).await, 403, "'admin'");
    assert_eq!(log(server, "").await.len(), count);
    let systems = ok(server.get("/api/v1/systems", &cast.officer).await);
    assert_eq!(systems["systems"].as_array().unwrap().len(), 2);
    let requests = ok(server.get("/api/v1/requests", &cast.officer).await);
    assert_eq!(requests["requests"], json!([]));
}

async fn only_an_admin_creates_and_invites_accounts(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    for token in [&cast.officer, &cast.owner, &cast.operator, &cast.auditor] {
        let account = json!({ "name": "mallory", "roles": ["owner"] });
        refused(server.post("/api/v1/accounts", token, account).await, 403, "create accounts");
        let path = "/api/v1/accounts/oscar/invitation";
        refused(server.post(path, token, json!({})).await, 403, "invite accounts");
    }
    assert_eq!(log(server, "").await.len(), count);
    let (status, _) = server.get("/api/v1/accounts/mallory", &server.admin).await;
    assert_eq!(status, 404);
}

async fn the_requester_is_the_caller_and_cannot_be_named_in_the_body(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    let body = json!({ "system": "payroll", "requester": "oscar", "purpose": "x" });
    refused(server.post("/api/v1/requests", &cast.officer, body).await, 422, "requester");
    assert_eq!(log(server, "").await.len(), count);

    let id = file_request(server, &cast).await;
    let amend = json!({ "requester": "oscar" });
    refused(act(server, &cast.officer, id, "amend", amend).await, 422, "requester");
    let shown = ok(server.get(&format!("/api/v1/requests/{id}"), &cast.owner).await);
    assert_eq!(shown["request"]["requester"], "olivia");
    assert_eq!(shown["request"]["officer"], "olivia");
    let entries = log(server, &format!("&request={id}")).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "olivia");
}

// The order of checks: 401, 404, 403, 422, 409.

async fn no_token_is_401_even_for_an_unknown_request(server: &TestServer) {
    let unknown = server.call(Method::POST, "/api/v1/requests/999999/approve", None, None).await;
    refused(unknown, 401, "no API token");
    let shown = server.call(Method::GET, "/api/v1/requests/999999", None, None).await;
    refused(shown, 401, "no API token");
    let body = Some(json!({ "comment": 5 }));
    let malformed = server.call(Method::POST, "/api/v1/requests/abc/approve", None, body).await;
    refused(malformed, 401, "no API token");
    refused(server.call(Method::GET, "/api/v1/log", None, None).await, 401, "no API token");
}

async fn a_bad_token_is_401(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    let before = snapshot(server, id).await;

    let forged = format!("{}x", cast.officer);
    let answer = act(server, &forged, id, "submit", json!({})).await;
    refused(answer, 401, "unknown or revoked");
    refused(server.get("/api/v1/requests/999999", "pwt_nothing").await, 401, "unknown or revoked");
    let basic = server
        .client
        .get(format!("{}/api/v1/me", server.url))
        .header("authorization", "Basic b2xpdmlhOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    assert_eq!(basic.headers()["www-authenticate"], "Bearer");
    let body: Value = basic.json().await.unwrap();
    refused((401, body), 401, "Bearer TOKEN");
    assert_eq!(snapshot(server, id).await, before);
}

async fn an_unknown_request_is_404_before_any_role_check(server: &TestServer) {
    let cast = cast(server).await;

    let answer = act(server, &server.admin, 999_999, "approve", json!({})).await;
    refused(answer, 404, "request 999999 does not exist");
    let answer = act(server, &cast.auditor, 999_999, "approve", json!({})).await;
    refused(answer, 404, "999999");
    let answer = act(server, &cast.owner, 999_999, "approve", json!({ "comment": 5 })).await;
    refused(answer, 404, "999999");
    let path = "/api/v1/requests/1%20OR%201=1/approve";
    refused(server.post(path, &cast.owner, json!({})).await, 404, "does not exist");
    refused(server.get("/api/v1/requests/abc", &cast.owner).await, 404, "'abc'");
}

async fn a_forbidden_caller_with_a_malformed_body_is_403(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "testing").await;
    let before = snapshot(server, id).await;

    let path = format!("/api/v1/requests/{id}/record-test");
    let answer = send_raw_json(server, &path, &server.admin, "{not json").await;
    refused(answer, 403, "is an admin");
    let answer = send_raw_json(server, &path, &cast.auditor, r#"{"passed":"yes"}"#).await;
    refused(answer, 403, "auditors read");
    let answer = act(server, &cast.auditor, id, "record-test", json!({ "verdict": 1 })).await;
    refused(answer, 403, "auditors read");
    assert_eq!(snapshot(server, id).await, before);
}

async fn a_non_admin_with_a_malformed_body_on_an_admin_route_is_403(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    // Each case is checked, and every mismatch named at the end.
    let cases = [
        ("/api/v1/accounts", &cast.officer, "{not json", "create accounts"),
        (
            "/api/v1/accounts",
            &cast.auditor,
            r#"{"name":"eve","roles":["owner"],"x":1}"#,
            "create accounts",
        ),
        ("/api/v1/policy", &cast.owner, r#"{"set":5}"#, "change the policy"),
        ("/api/v1/systems", &server.admin, r#"{"name":1}"#, "create systems"),
        ("/api/v1/requests", &server.admin, r#"{"system":["payroll"]}"#, "file update requests"),
    ];
    let mut wrong = Vec::new();
    for (path, token, body, part) in cases {
        let (status, answer) = send_raw_json(server, path, token, body).await;
        assert_no_internals(&answer.to_string());
        if status != 403 || !message(&answer).contains(part) {
            wrong.push(format!("POST {path} {body} answered {status}: {answer}"));
        }
    }
    assert_eq!(log(server, "").await.len(), count);
    assert!(wrong.is_empty(), "expected 403 before 422:\n{}", wrong.join("\n"));
}

async fn a_malformed_body_on_a_request_in_the_wrong_state_is_422(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    let before = snapshot(server, id).await;

    let path = format!("/api/v1/requests/{id}/record-test");
    let answer = send_raw_json(server, &path, &cast.operator, r#"{"passed":"yes"}"#).await;
    refused(answer, 422, "the request body is not valid");
    let answer = act(server, &cast.operator, id, "record-test", json!({ "verdict": 1 })).await;
    refused(answer, 422, "verdict");
    let answer = act(server, &cast.operator, id, "start-test", json!({ "now": true })).await;
    refused(answer, 422, "now");
    assert_eq!(snapshot(server, id).await, before);

    // With a well-formed body the state is what refuses.
    let answer = act(server, &cast.operator, id, "record-test", json!({ "passed": true })).await;
    refused(answer, 409, "it is draft");
}

// Invitations.

async fn an_invitation_is_single_use_and_its_reuse_is_logged(server: &TestServer) {
    let code = invite(server, "nina", &["operator"]).await;

    let redeemed = ok(redeem(server, &code, PASSWORD).await);
    assert_eq!(redeemed["account"]["name"], "nina");
    let token = redeemed["token"].as_str().unwrap().to_owned();
    assert_eq!(ok(server.get("/api/v1/me", &token).await)["account"]["name"], "nina");
    let entries = log(server, "").await;
    let redemption = entries.iter().find(|e| e["action"] == "invitation-redeem").unwrap();
    assert_eq!(redemption["actor"], "nina");
    assert!(redemption["details"]["from"].as_str().unwrap().starts_with("127.0.0.1"));
    assert!(!entries.iter().any(|e| e["action"] == "invitation-reuse"));

    let refusal =
        refused(redeem(server, &code, "another long password").await, 409, "used already");
    assert!(message(&refusal).contains("'nina'"), "{refusal}");
    let entries = log(server, "").await;
    let reuse: Vec<&Value> = entries.iter().filter(|e| e["action"] == "invitation-reuse").collect();
    assert_eq!(reuse.len(), 1, "{entries:?}");
    assert_eq!(reuse[0]["details"]["name"], "nina");

    // The first password still holds; the second attempt changed nothing.
    let login = json!({ "name": "nina", "password": PASSWORD });
    ok(server.call(Method::POST, "/api/v1/login", None, Some(login)).await);
    let login = json!({ "name": "nina", "password": "another long password" });
    let answer = server.call(Method::POST, "/api/v1/login", None, Some(login)).await;
    refused(answer, 401, "wrong");
}

async fn an_invitation_expires_after_the_invitation_hours(server: &TestServer) {
    let early = invite(server, "ella", &["owner"]).await;
    let late = invite(server, "liam", &["owner"]).await;

    server.advance_hours(71);
    ok(redeem(server, &early, PASSWORD).await);
    server.advance_hours(2);
    refused(redeem(server, &late, PASSWORD).await, 409, "has expired");
    let login = json!({ "name": "liam", "password": PASSWORD });
    let answer = server.call(Method::POST, "/api/v1/login", None, Some(login)).await;
    refused(answer, 401, "the name or the password is wrong");
}

async fn an_unknown_invitation_code_is_401(server: &TestServer) {
    let count = log(server, "").await.len();
    refused(redeem(server, "pwi_no-such-invitation", PASSWORD).await, 401, "not valid");
    refused(redeem(server, "", PASSWORD).await, 401, "not valid");
    assert_eq!(log(server, "").await.len(), count);
}

async fn a_short_password_is_422_and_keeps_the_invitation(server: &TestServer) {
    let code = invite(server, "nina", &["operator"]).await;
    let count = log(server, "").await.len();

    let refusal = refused(redeem(server, &code, "short").await, 422, "at least 12 characters");
    assert_eq!(refusal["error"]["fields"], json!(["password"]));
    assert_eq!(log(server, "").await.len(), count);

    ok(redeem(server, &code, PASSWORD).await);
}

async fn a_new_invitation_replaces_the_unredeemed_one(server: &TestServer) {
    let first = invite(server, "nina", &["operator"]).await;
    let reissued =
        ok(server.post("/api/v1/accounts/nina/invitation", &server.admin, json!({})).await);
    let second = reissued["invitation"]["code"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    refused(redeem(server, &first, PASSWORD).await, 409, "expired");
    let redeemed = ok(redeem(server, &second, PASSWORD).await);
    assert_eq!(redeemed["account"]["name"], "nina");
    let path = "/api/v1/accounts/nobody/invitation";
    refused(server.post(path, &server.admin, json!({})).await, 404, "");
}

async fn login_gives_a_new_token_and_a_wrong_password_is_401(server: &TestServer) {
    let first = server.person("nina", &["operator"]).await;
    let count = log(server, "").await.len();

    let login = json!({ "name": "nina", "password": "not the password" });
    let answer = server.call(Method::POST, "/api/v1/login", None, Some(login)).await;
    refused(answer, 401, "the name or the password is wrong");
    let login = json!({ "name": "nobody", "password": PASSWORD });
    let answer = server.call(Method::POST, "/api/v1/login", None, Some(login)).await;
    refused(answer, 401, "the name or the password is wrong");
    assert_eq!(log(server, "").await.len(), count);

    let login = json!({ "name": "nina", "password": PASSWORD });
    let answer = ok(server.call(Method::POST, "/api/v1/login", None, Some(login)).await);
    let second = answer["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(ok(server.get("/api/v1/me", &second).await)["account"]["name"], "nina");
    assert_eq!(ok(server.get("/api/v1/me", &first).await)["account"]["name"], "nina");
}

// Tokens.

async fn a_token_is_created_only_for_the_caller(server: &TestServer) {
    let cast = cast(server).await;

    let created =
        ok(server.post("/api/v1/tokens", &cast.owner, json!({ "label": "laptop" })).await);
    let token = created["token"].as_str().unwrap().to_owned();
    assert_ne!(token, cast.owner);
    assert_eq!(created["label"], "laptop");
    assert_eq!(ok(server.get("/api/v1/me", &token).await)["account"]["name"], "oscar");

    let count = log(server, "").await.len();
    for field in ["account", "name", "for", "owner"] {
        let body = json!({ "label": "sneaky", field: "otto" });
        refused(server.post("/api/v1/tokens", &server.admin, body.clone()).await, 422, field);
        refused(server.post("/api/v1/tokens", &cast.owner, body).await, 422, field);
    }
    assert_eq!(log(server, "").await.len(), count);

    let created = ok(server.post("/api/v1/tokens", &server.admin, json!({})).await);
    let token = created["token"].as_str().unwrap();
    assert_eq!(ok(server.get("/api/v1/me", token).await)["account"]["name"], "admin");
}

async fn the_token_list_never_shows_secrets(server: &TestServer) {
    let cast = cast(server).await;
    let created = ok(server.post("/api/v1/tokens", &cast.owner, json!({ "label": "ci" })).await);
    let second = created["token"].as_str().unwrap().to_owned();

    let (status, listed) = server.get("/api/v1/tokens", &cast.owner).await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    assert!(!text.contains(&cast.owner), "the first token is shown: {text}");
    assert!(!text.contains(&second), "the second token is shown: {text}");
    assert!(!text.contains("pwt_"), "a token is shown: {text}");
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{text}");
    for token in tokens {
        let mut keys: Vec<&String> = token.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "id", "label", "revoked_at"], "{token}");
    }
    let labels: Vec<&Value> = tokens.iter().map(|t| &t["label"]).collect();
    assert!(labels.contains(&&json!("ci")), "{text}");

    // Another person's list holds only their own.
    let listed = ok(server.get("/api/v1/tokens", &cast.other_owner).await);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);
    let exported = server.get("/api/v1/log/export?format=csv", &cast.auditor).await.1.to_string();
    assert!(!exported.contains(&second), "the log holds a token");
}

async fn a_revoked_token_is_refused_and_the_others_still_work(server: &TestServer) {
    let cast = cast(server).await;
    let created = ok(server.post("/api/v1/tokens", &cast.officer, json!({ "label": "old" })).await);
    let old = created["token"].as_str().unwrap().to_owned();
    let old_id = created["id"].as_i64().unwrap();
    assert_eq!(token_id(server, &old).await, old_id);

    let revoked =
        ok(server.post(&format!("/api/v1/tokens/{old_id}/revoke"), &cast.officer, json!({})).await);
    assert!(revoked["token"]["revoked_at"].is_string(), "{revoked}");
    refused(server.get("/api/v1/me", &old).await, 401, "unknown or revoked");
    refused(server.get("/api/v1/systems", &old).await, 401, "unknown or revoked");
    let filing = json!({ "system": "payroll" });
    refused(server.post("/api/v1/requests", &old, filing).await, 401, "unknown or revoked");
    assert_eq!(ok(server.get("/api/v1/me", &cast.officer).await)["account"]["name"], "olivia");

    let listed = ok(server.get("/api/v1/tokens", &cast.officer).await);
    let shown = listed["tokens"].as_array().unwrap().iter().find(|t| t["id"] == old_id).unwrap();
    assert!(shown["revoked_at"].is_string(), "{shown}");
    let again =
        server.post(&format!("/api/v1/tokens/{old_id}/revoke"), &cast.officer, json!({})).await;
    refused(again, 422, "revoked already");
    let entries = log(server, "").await;
    assert_eq!(entries.iter().filter(|e| e["action"] == "token-revoke").count(), 1);
}

async fn only_an_admin_revokes_someone_elses_token(server: &TestServer) {
    let cast = cast(server).await;
    let oscar_token = token_id(server, &cast.owner).await;
    let count = log(server, "").await.len();

    let path = format!("/api/v1/tokens/{oscar_token}/revoke");
    for token in [&cast.officer, &cast.other_owner, &cast.auditor] {
        refused(server.post(&path, token, json!({})).await, 404, "does not exist");
    }
    assert_eq!(log(server, "").await.len(), count);
    assert_eq!(ok(server.get("/api/v1/me", &cast.owner).await)["account"]["name"], "oscar");

    ok(server.post(&path, &server.admin, json!({})).await);
    refused(server.get("/api/v1/me", &cast.owner).await, 401, "unknown or revoked");
}

async fn the_bootstrap_token_belongs_to_admin(server: &TestServer) {
    let me = ok(server.get("/api/v1/me", BOOTSTRAP_TOKEN).await);
    assert_eq!(me["account"]["name"], "admin");
    assert_eq!(me["account"]["roles"], json!(["admin"]));
    let listed = ok(server.get("/api/v1/tokens", BOOTSTRAP_TOKEN).await);
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["label"], "bootstrap");
    assert!(!listed.to_string().contains(BOOTSTRAP_TOKEN));
}

// Bad input loses nothing.

async fn malformed_json_wrong_types_and_unknown_fields_are_422_and_change_nothing(
    server: &TestServer,
) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;
    let path = format!("/api/v1/requests/{id}/approve");

    for (body, part) in [
        ("{\"comment\": ", "not valid"),
        ("not json at all", "not valid"),
        ("[1, 2, 3]", "not valid"),
        ("{\"comment\": 5}", "not valid"),
        ("{\"comment\": \"ok\", \"approved_by\": \"oscar\"}", "approved_by"),
        ("{\"comment\": \"\\u0000\"}", "comment"),
    ] {
        let answer = send_raw_json(server, &path, &cast.owner, body).await;
        refused(answer, 422, part);
        assert_eq!(snapshot(server, id).await, before, "after {body}");
    }

    // Filing and system creation refuse the same way.
    let count = ok(server.get("/api/v1/requests", &cast.officer).await)["requests"].clone();
    for body in [r#"{"system": 7}"#, r#"{"system":"payroll","packages":"openssl=3"}"#, "{"] {
        let answer = send_raw_json(server, "/api/v1/requests", &cast.officer, body).await;
        refused(answer, 422, "");
    }
    let answer =
        send_raw_json(server, "/api/v1/systems", &cast.officer, r#"{"name":"x","owner":5}"#).await;
    refused(answer, 422, "");
    assert_eq!(ok(server.get("/api/v1/requests", &cast.officer).await)["requests"], count);
    assert_eq!(snapshot(server, id).await, before);

    // A well-formed call still works afterwards.
    step(server, &cast.owner, id, "approve", json!({ "comment": "ok" }), "approved").await;
}

async fn a_body_over_the_limit_is_413_in_json_and_changes_nothing(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "submitted").await;
    let before = snapshot(server, id).await;
    let huge = serde_json::to_vec(&json!({ "comment": "x".repeat(2 * 1024 * 1024) })).unwrap();

    let path = format!("/api/v1/requests/{id}/approve");
    let (status, text) =
        send_raw(server, Method::POST, &path, Some(&cast.owner), huge.clone()).await;
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let refusal = refused((status, body), 413, "1048576");
    assert_eq!(refusal["error"]["code"], "PW413-too-large");
    assert_eq!(snapshot(server, id).await, before);

    let (status, text) =
        send_raw(server, Method::POST, "/api/v1/requests", Some(&cast.officer), huge).await;
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    refused((status, body), 413, "larger than the limit");
    assert_eq!(snapshot(server, id).await, before);
    let requests = ok(server.get("/api/v1/requests", &cast.officer).await);
    assert_eq!(requests["requests"].as_array().unwrap().len(), 1);

    step(server, &cast.owner, id, "approve", json!({}), "approved").await;
}

async fn a_malformed_query_string_is_422_in_json(server: &TestServer) {
    let cast = cast(server).await;

    // Each query is checked, and every mismatch named at the end.
    let mut wrong = Vec::new();
    for path in [
        "/api/v1/log?request=abc",
        "/api/v1/log?colour=red",
        "/api/v1/requests?state=nowhere",
        "/api/v1/requests?colour=red",
        "/api/v1/log/export?format=csv&request=1;DROP",
    ] {
        let (status, body) = server.get(path, &cast.auditor).await;
        assert_no_internals(&body.to_string());
        let json_refusal = body["error"]["code"] == "PW422-invalid" && !message(&body).is_empty();
        if status != 422 || !json_refusal {
            wrong.push(format!("GET {path} answered {status}: {body}"));
        }
    }
    assert!(wrong.is_empty(), "expected a 422 JSON error:\n{}", wrong.join("\n"));
}

// Policy.

async fn the_policy_starts_at_version_1_with_24_hours_notice(server: &TestServer) {
    let cast = cast(server).await;
    let shown = ok(server.get("/api/v1/policy", &cast.operator).await);
    assert_eq!(shown["policy"]["number"], 1, "{shown}");
    assert_eq!(shown["policy"]["settings"]["notice_hours"], 24, "{shown}");
    let history = ok(server.get("/api/v1/policy/history", &cast.auditor).await);
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
}

async fn a_policy_change_makes_version_2_and_the_lifecycle_enforces_it(server: &TestServer) {
    let cast = cast(server).await;
    let id = file_request(server, &cast).await;
    drive(server, &cast, id, "test_acknowledged").await;

    let change =
        json!({ "set": { "notice_hours": 48 }, "reason": "the works council asks two days" });
    let changed = ok(server.post("/api/v1/policy", &server.admin, change).await);
    assert_eq!(changed["policy"]["number"], 2, "{changed}");
    assert_eq!(changed["policy"]["settings"]["notice_hours"], 48);
    assert_eq!(changed["policy"]["author_name"], "admin");
    let shown = ok(server.get("/api/v1/policy", &cast.owner).await);
    assert_eq!(shown["policy"]["number"], 2);
    assert_eq!(shown["policy"]["reason"], "the works council asks two days");

    // approve-plan now needs 48 h.
    propose_and_accept(server, &cast, id, 30).await;
    let earliest = hours_from_now(server, 48);
    let refusal = refused(
        act(server, &cast.operator, id, "approve-plan", json!({})).await,
        422,
        &format!("the earliest start that complies is {earliest}"),
    );
    assert!(message(&refusal).contains("48 h"), "{refusal}");

    // A plan 49 h ahead passes; production waits 48 h after the announcement.
    let plan = plan_body(server, 49);
    step(server, &cast.operator, id, "revise-plan", plan, "plan_proposed").await;
    step(server, &cast.officer, id, "accept-plan", json!({}), "plan_proposed").await;
    step(server, &cast.owner, id, "accept-plan", json!({}), "plan_accepted").await;
    step(server, &cast.operator, id, "approve-plan", json!({}), "plan_approved").await;
    step(server, &cast.owner, id, "confirm-presence", json!({}), "ready").await;
    server.advance_hours(24);
    refused(act(server, &cast.operator, id, "start-production", json!({})).await, 409, "48 h");
    server.advance_hours(24);
    step(server, &cast.operator, id, "start-production", json!({}), "prod_updating").await;

    // The log records the version in force at each step.
    let entries = log(server, &format!("&request={id}")).await;
    assert_eq!(entries[0]["action"], "create");
    assert_eq!(entries[0]["policy_version"], 1);
    let last = entries.last().unwrap();
    assert_eq!(last["action"], "start-production");
    assert_eq!(last["policy_version"], 2);

    let history = ok(server.get("/api/v1/policy/history", &cast.auditor).await);
    let mut numbers: Vec<i64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2], "{history}");
}

async fn an_unknown_or_mistyped_policy_setting_is_422_and_a_non_admin_is_403(server: &TestServer) {
    let cast = cast(server).await;
    let count = log(server, "").await.len();

    let unknown = json!({ "set": { "notice_days": 2 }, "reason": "shorter" });
    let refusal = refused(
        server.post("/api/v1/policy", &server.admin, unknown).await,
        422,
        "unknown policy setting 'notice_days'",
    );
    assert_eq!(refusal["error"]["fields"], json!(["set"]));
    let mistyped = json!({ "set": { "notice_hours": "soon" }, "reason": "x" });
    refused(server.post("/api/v1/policy", &server.admin, mistyped).await, 422, "wrong type");
    let empty = json!({ "set": {}, "reason": "x" });
    refused(server.post("/api/v1/policy", &server.admin, empty).await, 422, "at least one");
    let change = json!({ "set": { "notice_hours": 1 }, "reason": "faster" });
    for token in [&cast.officer, &cast.owner, &cast.operator, &cast.auditor] {
        let answer = server.post("/api/v1/policy", token, change.clone()).await;
        refused(answer, 403, "change the policy");
    }

    assert_eq!(log(server, "").await.len(), count);
    let shown = ok(server.get("/api/v1/policy", &cast.owner).await);
    assert_eq!(shown["policy"]["number"], 1);
    assert_eq!(shown["policy"]["settings"]["notice_hours"], 24);
    let history = ok(server.get("/api/v1/policy/history", &cast.auditor).await);
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
}
