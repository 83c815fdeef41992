//! The `patchwarden` CLI against a real `patchwarden serve` process: a request
//! walked from draft to closed by the people of the policy, each guard they
//! try to skip refused with the server's message and exit code 3, accounts
//! and tokens, HTTPS through the Patchwarden CA, and the plain-word errors
//! and exit codes scripts rely on.
//!
//! The server runs under libfaketime (Debian's `faketime`) with a timestamp
//! file, so the test moves its clock past the 24 h notice period instead of
//! waiting. Under `CI=true` a missing libfaketime fails the test.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use common::{Run, TestDb};
use serde_json::Value;

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const BOOTSTRAP: &str = "pwt_bootstrap-token-for-the-cli-tests-0123456789";
const PASSWORD: &str = "correct horse battery staple";

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `true` when libfaketime is there; under CI its absence fails the test.
fn have_faketime() -> bool {
    if Path::new(FAKETIME_LIB).exists() {
        return true;
    }
    assert!(!under_ci(), "{FAKETIME_LIB} is required under CI=true (Debian package faketime)");
    eprintln!("skipped: {FAKETIME_LIB} is missing (Debian package faketime)");
    false
}

/// A `patchwarden serve` process on 127.0.0.1 with its own data folder.
struct Served {
    child: Child,
    url: String,
    data: tempfile::TempDir,
    clock_file: PathBuf,
}

impl Served {
    fn start(database: &str, https: bool) -> Self {
        let data = tempfile::tempdir().unwrap();
        let clock_file = data.path().join("faketime");
        std::fs::write(&clock_file, "+0\n").unwrap();
        let mut command = Process::new(env!("CARGO_BIN_EXE_patchwarden"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .env("PATCHWARDEN_DATA_DIR", data.path())
            .env("PATCHWARDEN_BOOTSTRAP_TOKEN", BOOTSTRAP)
            .env("PATCHWARDEN_LOG", "warn")
            .env("LD_PRELOAD", FAKETIME_LIB)
            .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
            .env("FAKETIME_NO_CACHE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !https {
            command.arg("--insecure-http");
        }
        let mut child = command.spawn().expect("start patchwarden serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("serve printed nothing").unwrap();
        let url = first
            .strip_prefix("Patchwarden is listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url, data, clock_file }
    }

    /// Moves the server's clock `hours` ahead of the real one.
    fn travel_hours(&self, hours: i64) {
        std::fs::write(&self.clock_file, format!("+{hours}h\n")).unwrap();
    }

    fn ca(&self) -> PathBuf {
        self.data.path().join("keys").join("ca.pem")
    }

    /// Runs the CLI against this server as the holder of `token`.
    fn cli(&self, token: Option<&str>, args: &[&str]) -> Run {
        cli_at(&self.url, token, None, args, None)
    }

    /// Runs the CLI with `stdin` as its standard input.
    fn cli_with_input(&self, args: &[&str], stdin: &str) -> Run {
        cli_at(&self.url, None, None, args, Some(stdin))
    }

    /// Creates an account as the admin and logs it in; returns its token.
    fn person(&self, name: &str, roles: &str) -> String {
        let created = self.cli(Some(BOOTSTRAP), &["user", "create", name, "--role", roles]);
        assert_eq!(created.code, Some(0), "{created:?}");
        let code = invitation_code(&created.stdout);
        login(self, &code)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_at(
    url: &str,
    token: Option<&str>,
    ca: Option<&Path>,
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut command = Process::new(env!("CARGO_BIN_EXE_patchwarden"));
    command
        .args(args)
        .env("PATCHWARDEN_SERVER", url)
        .env_remove("PATCHWARDEN_TOKEN")
        .env_remove("PATCHWARDEN_CA")
        .env_remove("PATCHWARDEN_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("PATCHWARDEN_TOKEN", token);
    }
    if let Some(ca) = ca {
        command.env("PATCHWARDEN_CA", ca);
    }
    let mut child = command.spawn().expect("run patchwarden");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn invitation_code(stdout: &str) -> String {
    let start = stdout.find("pwi_").unwrap_or_else(|| panic!("no invitation in: {stdout}"));
    stdout[start..].split_whitespace().next().unwrap().to_owned()
}

fn login(server: &Served, code: &str) -> String {
    let run = server
        .cli_with_input(&["login", "--invite", code, "--password-stdin"], &format!("{PASSWORD}\n"));
    assert_eq!(run.code, Some(0), "{run:?}");
    let start = run.stdout.find("PATCHWARDEN_TOKEN=").expect("a token line") + 18;
    run.stdout[start..].split_whitespace().next().unwrap().to_owned()
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, Some(0), "expected success: {run:?}");
    &run.stdout
}

/// The run was refused by the server (exit 3) with `part` in its message.
fn refused(run: &Run, part: &str) {
    assert_eq!(run.code, Some(3), "expected a refusal naming '{part}': {run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains(part), "expected '{part}' in: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

fn json(run: &Run) -> Value {
    serde_json::from_str(ok(run)).unwrap_or_else(|err| panic!("not JSON ({err}): {run:?}"))
}

/// A start time `hours` from now, in RFC 3339 UTC to the minute.
fn hours_from_now(hours: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = jiff::Timestamp::now();
    let at = now + jiff::SignedDuration::from_hours(hours);
    at.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

fn walk_from_draft_to_closed(database: &str) {
    let server = Served::start(database, false);
    let officer = server.person("officer", "security-officer");
    let owner = server.person("owner", "owner");
    let operator = server.person("operator", "operator");
    let (officer, owner, operator) =
        (Some(officer.as_str()), Some(owner.as_str()), Some(operator.as_str()));
    let admin = Some(BOOTSTRAP);

    ok(&server.cli(
        officer,
        &[
            "system",
            "create",
            "payroll",
            "--owner",
            "owner",
            "--notify",
            "staff@example.org",
            "--tz",
            "Europe/Berlin",
        ],
    ));
    refused(
        &server.cli(operator, &["system", "create", "hr", "--owner", "owner"]),
        "create systems",
    );

    // A draft may have gaps; submit names every missing one.
    let created = server.cli(
        officer,
        &[
            "request",
            "create",
            "--system",
            "payroll",
            "--operator",
            "operator",
            "--purpose",
            "fix CVE-2024-5535",
            "--package",
            "openssl=3.0.15-1~deb12u1",
        ],
    );
    assert!(ok(&created).contains("request 1 filed as a draft"), "{created:?}");
    assert!(
        created.stdout.contains(
            "missing before it can be submitted: test_date, prod_date, downtime, description"
        ),
        "{created:?}"
    );
    refused(
        &server.cli(officer, &["request", "submit", "1"]),
        "missing test_date, prod_date, downtime, description",
    );
    refused(
        &server.cli(officer, &["request", "amend", "1", "--test-date", "2026-12-07T09:00"]),
        "test_date",
    );
    ok(&server.cli(
        officer,
        &[
            "request",
            "amend",
            "1",
            "--test-date",
            "2026-12-07T09:00[Europe/Berlin]",
            "--prod-date",
            "2026-12-14T09:00+01:00",
            "--downtime",
            "10 minutes",
            "--description",
            "upgrade openssl, restart nginx",
        ],
    ));
    assert!(ok(&server.cli(officer, &["request", "submit", "1"])).contains("draft -> submitted"));

    // Separation of duties: only the owner approves.
    refused(&server.cli(officer, &["request", "approve", "1"]), "only the owner or deputy");
    refused(&server.cli(admin, &["request", "approve", "1"]), "an admin never acts");
    refused(&server.cli(operator, &["request", "approve", "1"]), "only the owner or deputy");
    refused(
        &server.cli(operator, &["request", "start-test", "1"]),
        "allowed now: approve, reject, cancel",
    );
    assert!(
        ok(&server.cli(owner, &["request", "approve", "1", "--comment", "go ahead"]))
            .contains("submitted -> approved")
    );

    ok(&server.cli(operator, &["request", "start-test", "1"]));
    refused(
        &server.cli(
            operator,
            &["request", "propose-plan", "1", "--start", &hours_from_now(30), "--duration", "2h"],
        ),
        "it is testing",
    );
    ok(&server.cli(
        operator,
        &["request", "record-test", "1", "--passed", "--notes", "handshake checked"],
    ));
    refused(
        &server.cli(
            operator,
            &["request", "propose-plan", "1", "--start", &hours_from_now(30), "--duration", "2h"],
        ),
        "acknowledge-test",
    );
    ok(&server.cli(owner, &["request", "acknowledge-test", "1"]));

    // The plan: too soon is refused with the earliest start that complies.
    ok(&server.cli(
        operator,
        &[
            "request",
            "propose-plan",
            "1",
            "--start",
            &hours_from_now(2),
            "--duration",
            "2h",
            "--participants",
            "operator,owner",
        ],
    ));
    let half = server.cli(officer, &["request", "accept-plan", "1"]);
    assert!(ok(&half).contains("still awaiting owner"), "{half:?}");
    ok(&server.cli(owner, &["request", "accept-plan", "1"]));
    refused(
        &server.cli(operator, &["request", "approve-plan", "1"]),
        "the earliest start that complies is",
    );
    ok(&server.cli(
        operator,
        &["request", "revise-plan", "1", "--start", &hours_from_now(26), "--duration", "2h"],
    ));
    ok(&server.cli(officer, &["request", "accept-plan", "1"]));
    ok(&server.cli(owner, &["request", "accept-plan", "1"]));
    assert!(
        ok(&server.cli(operator, &["request", "approve-plan", "1"]))
            .contains("announcement recorded at")
    );
    ok(&server.cli(owner, &["request", "confirm-presence", "1"]));
    refused(
        &server.cli(operator, &["request", "start-production", "1"]),
        "policy asks 24 h notice",
    );

    // A day and more later.
    server.travel_hours(26);
    ok(&server.cli(operator, &["request", "start-production", "1"]));
    ok(&server.cli(operator, &["request", "record-production", "1", "--passed"]));
    refused(&server.cli(officer, &["request", "close", "1"]), "allowed now: document");
    ok(&server.cli(operator, &["request", "document", "1", "--summary", "runbook updated"]));
    refused(&server.cli(owner, &["request", "close", "1"]), "close");
    assert!(ok(&server.cli(officer, &["request", "close", "1"])).contains("documented -> closed"));

    let shown = json(&server.cli(officer, &["request", "show", "1", "--output", "json"]));
    assert_eq!(shown["request"]["state"], "closed");
    assert_eq!(shown["request"]["documentation_revision"], 1);
    let docs = ok(&server.cli(officer, &["system", "documentation", "payroll"])).to_owned();
    assert!(docs.contains("revision 1  request 1  by operator"), "{docs}");

    // Every step is in the log, in order, and the chain verifies.
    let log = json(&server.cli(officer, &["log", "show", "--request", "1", "--output", "json"]));
    let actions: Vec<&str> =
        log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "amend",
            "submit",
            "approve",
            "start-test",
            "record-test",
            "acknowledge-test",
            "propose-plan",
            "accept-plan",
            "accept-plan",
            "revise-plan",
            "accept-plan",
            "accept-plan",
            "approve-plan",
            "confirm-presence",
            "start-production",
            "record-production",
            "document",
            "close"
        ]
    );
    let text = ok(&server.cli(officer, &["log", "show"])).to_owned();
    assert!(text.lines().next().unwrap().contains("SEQ"), "{text}");
    assert!(ok(&server.cli(officer, &["log", "verify"])).starts_with("log intact"));
    let csv = ok(&server.cli(officer, &["log", "export", "--format", "csv", "--request", "1"]))
        .to_owned();
    assert!(csv.starts_with("seq,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + actions.len(), "{csv}");
    let listed = ok(&server.cli(officer, &["request", "list", "--state", "closed"])).to_owned();
    assert!(listed.contains("payroll") && listed.contains("closed"), "{listed}");
}

#[test]
fn a_request_walks_from_draft_to_closed_through_the_cli_on_sqlite() {
    if !have_faketime() {
        return;
    }
    let db = TestDb::sqlite();
    walk_from_draft_to_closed(&db.url);
}

#[test]
fn a_request_walks_from_draft_to_closed_through_the_cli_on_postgres() {
    if !have_faketime() {
        return;
    }
    let Some(db) = TestDb::postgres() else { return };
    walk_from_draft_to_closed(&db.url);
}

#[test]
fn an_invitation_works_once_and_a_revoked_token_is_refused() {
    if !have_faketime() {
        return;
    }
    let db = TestDb::sqlite();
    let server = Served::start(&db.url, false);
    let created = server.cli(
        Some(BOOTSTRAP),
        &["user", "create", "dana", "--role", "owner", "--email", "dana@example.org"],
    );
    let code = invitation_code(ok(&created));
    refused(
        &server.cli(Some(BOOTSTRAP), &["user", "create", "eve", "--role", "admin,owner"]),
        "admin",
    );

    let short = server.cli_with_input(&["login", "--invite", &code, "--password-stdin"], "short\n");
    refused(&short, "12");
    let token = login(&server, &code);
    let again = server.cli_with_input(
        &["login", "--invite", &code, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    refused(&again, "used already");
    refused(
        &server.cli_with_input(
            &["login", "--invite", "pwi_nonsense", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        ),
        "not valid",
    );

    let me = json(&server.cli(Some(&token), &["user", "whoami", "--output", "json"]));
    assert_eq!(me["account"]["name"], "dana");
    let second = server.cli(Some(&token), &["token", "create", "--label", "laptop"]);
    let second_token = ok(&second).split("PATCHWARDEN_TOKEN=").nth(1).unwrap().trim().to_owned();
    let listed = json(&server.cli(Some(&second_token), &["token", "list", "--output", "json"]));
    let laptop =
        listed["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "laptop").unwrap();
    let id = laptop["id"].to_string();
    ok(&server.cli(Some(&token), &["token", "revoke", &id]));
    refused(&server.cli(Some(&second_token), &["user", "whoami"]), "not authenticated");
    ok(&server.cli(Some(&token), &["user", "whoami"]));

    // Password login gives a fresh token.
    let by_name = server
        .cli_with_input(&["login", "--name", "dana", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert!(ok(&by_name).contains("logged in as dana"), "{by_name:?}");
}

#[test]
fn policy_changes_make_numbered_versions_through_the_cli() {
    if !have_faketime() {
        return;
    }
    let db = TestDb::sqlite();
    let server = Served::start(&db.url, false);
    let admin = Some(BOOTSTRAP);
    let set = server.cli(
        admin,
        &[
            "policy",
            "set",
            "notice_hours=48",
            "approval.owner_only=true",
            "--reason",
            "audit finding 7",
        ],
    );
    assert!(ok(&set).contains("policy version 2"), "{set:?}");
    refused(
        &server.cli(admin, &["policy", "set", "colour=red", "--reason", "x"]),
        "unknown policy setting 'colour'",
    );
    let officer = server.person("olga", "security-officer");
    refused(
        &server.cli(Some(&officer), &["policy", "set", "notice_hours=12", "--reason", "x"]),
        "change the policy",
    );
    let history = ok(&server.cli(Some(&officer), &["policy", "history"])).to_owned();
    assert!(history.contains("version 1") && history.contains("version 2"), "{history}");
    assert!(history.contains("audit finding 7"), "{history}");
    let shown = ok(&server.cli(Some(&officer), &["policy", "show"])).to_owned();
    assert!(shown.contains("notice_hours = 48"), "{shown}");
}

#[test]
fn the_cli_trusts_the_server_over_https_through_the_patchwarden_ca() {
    if !have_faketime() {
        return;
    }
    let db = TestDb::sqlite();
    let server = Served::start(&db.url, true);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    let trusted =
        cli_at(&server.url, Some(BOOTSTRAP), Some(&server.ca()), &["user", "whoami"], None);
    assert!(ok(&trusted).contains("admin"), "{trusted:?}");

    let no_ca = cli_at(&server.url, Some(BOOTSTRAP), None, &["user", "whoami"], None);
    assert_eq!(no_ca.code, Some(2), "{no_ca:?}");
    assert!(no_ca.stderr.contains("PATCHWARDEN_CA"), "{no_ca:?}");

    // Another CA, made by a second server, is not trusted.
    let other_db = TestDb::sqlite();
    let other = Served::start(&other_db.url, true);
    let wrong = cli_at(&server.url, Some(BOOTSTRAP), Some(&other.ca()), &["user", "whoami"], None);
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
    assert!(wrong.stderr.contains("cannot reach the server"), "{wrong:?}");
}

#[test]
fn usage_and_connection_errors_exit_2_in_plain_words() {
    let unreachable = cli_at("http://127.0.0.1:9", Some("pwt_x"), None, &["request", "list"], None);
    assert_eq!(unreachable.code, Some(2), "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot reach the server at http://127.0.0.1:9"),
        "{unreachable:?}"
    );

    let no_token = cli_at("http://127.0.0.1:9", None, None, &["request", "list"], None);
    assert_eq!(no_token.code, Some(2), "{no_token:?}");
    assert!(no_token.stderr.contains("PATCHWARDEN_TOKEN"), "{no_token:?}");

    let bad_scheme = cli_at("ftp://127.0.0.1", Some("pwt_x"), None, &["request", "list"], None);
    assert!(bad_scheme.stderr.contains("must start with https:// or http://"), "{bad_scheme:?}");

    let duration = cli_at(
        "http://127.0.0.1:9",
        Some("pwt_x"),
        None,
        &["request", "propose-plan", "1", "--start", "2026-12-07T09:00Z", "--duration", "90"],
        None,
    );
    assert_eq!(duration.code, Some(2), "{duration:?}");
    assert!(duration.stderr.contains("duration '90'"), "{duration:?}");

    let outside = common::patchwarden(&["serve", "--insecure-http", "--listen", "0.0.0.0:0"]);
    assert_eq!(outside.code, Some(2), "{outside:?}");
    assert!(outside.stderr.contains("loopback"), "{outside:?}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwarden.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ncolour = \"red\"\n").unwrap();
    let unknown = common::patchwarden(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("colour"), "{unknown:?}");
}

#[test]
fn config_example_is_a_config_file_serve_accepts() {
    let example = common::patchwarden(&["config", "example"]);
    assert_eq!(example.code, Some(0), "{example:?}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwarden.toml");
    std::fs::write(&config, &example.stdout).unwrap();
    let loaded = patchwarden_server::Config::load(Some(&config), |_| None);
    assert!(loaded.is_ok(), "{loaded:?}\n{}", example.stdout);
}

#[test]
fn version_compare_prints_the_package_managers_order() {
    let cases = [
        (["deb", "1.0~rc1", "1.0"], "<"),
        (["deb", "1:0.9", "2.0"], ">"),
        (["deb", "1.09", "1.9"], "="),
        (["rpm", "1.0^git1", "1.0"], ">"),
        (["rpm", "1.0~rc1", "1.0"], "<"),
    ];
    for (args, expected) in cases {
        let run = common::patchwarden(&["version", "compare", args[0], args[1], args[2]]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.stdout.trim(), expected, "{args:?}");
    }
    let invalid = common::patchwarden(&["version", "compare", "deb", "1.0", "a:1"]);
    assert_eq!(invalid.code, Some(2), "{invalid:?}");
    assert!(invalid.stderr.contains("\"a:1\": the epoch"), "{invalid:?}");
}
