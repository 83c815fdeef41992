//! Harness for the `patchwarden` binary's tests: a fresh database per test,
//! made by the store on SQLite (a file in a temp dir) or PostgreSQL (a
//! database created on the server named by `PATCHWARDEN_TEST_PG`, by default
//! the local one, dropped afterwards), a control log with one request walked
//! to closed, the attacker's tools (`sqlite3`, `psql`), and the binary itself.
//!
//! With `CI=true` an unreachable PostgreSQL fails the test; elsewhere the
//! PostgreSQL variant prints "skipped" and returns. Adapted from the store's
//! own harness (crates/store/tests/common).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicU32, Ordering};

use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{Command, WorkReport};
use patchwarden_core::request::{PackageTarget, PlanInput, RequestFields};
use patchwarden_core::system::{NewSystem, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{AccountName, Email, LogEntry, RequestId, Roles};
use patchwarden_store::{Create, LogFilter, NewAccount, Store};

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn pg_admin_url() -> String {
    std::env::var("PATCHWARDEN_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `base` with its database name replaced by `db`.
pub fn pg_url_for(base: &str, db: &str) -> String {
    let (server, query) = match base.split_once('?') {
        Some((server, query)) => (server, Some(query)),
        None => (base, None),
    };
    let after_scheme = server.find("://").map_or(0, |i| i + 3);
    let server = match server[after_scheme..].find('/') {
        Some(slash) => &server[..after_scheme + slash],
        None => server,
    };
    match query {
        Some(query) => format!("{server}/{db}?{query}"),
        None => format!("{server}/{db}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's own database.
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
    dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_pg_name() -> String {
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "pw_test_cli_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    /// A path for a SQLite file in a fresh temp dir; the file does not exist yet.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("patchwarden.db").display());
        Self { url, kind: Kind::Sqlite, dir: Some(dir), pg_name: None }
    }

    /// A fresh, empty PostgreSQL database, or `None` (outside CI) when no server answers.
    pub fn postgres() -> Option<Self> {
        let mut db = Self::postgres_name()?;
        let name = db.pg_name.clone().expect("a name");
        psql(&pg_admin_url(), &format!("CREATE DATABASE {name}")).expect("create database");
        db.kind = Kind::Postgres;
        Some(db)
    }

    /// A PostgreSQL URL naming a database that does not exist yet (dropped
    /// afterwards if something created it), or `None` outside CI without a server.
    pub fn postgres_name() -> Option<Self> {
        let admin_url = pg_admin_url();
        match psql(&admin_url, "SELECT 1") {
            Ok(_) => {}
            Err(err) if under_ci() => {
                panic!("PostgreSQL at {admin_url} is required under CI=true: {err}")
            }
            Err(err) => {
                eprintln!("skipped: PostgreSQL at {admin_url} is not reachable: {err}");
                return None;
            }
        }
        let name = unique_pg_name();
        Some(Self {
            url: pg_url_for(&admin_url, &name),
            kind: Kind::Postgres,
            dir: None,
            pg_name: Some(name),
        })
    }

    /// The SQLite file's path.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.url.trim_start_matches("sqlite:"))
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|dir| dir.path())
    }

    pub async fn open(&self) -> Store {
        let store = Store::open(&self.url, Create::IfMissing).await.expect("open store");
        store.bootstrap(t0()).await.expect("bootstrap");
        store
    }

    /// Runs SQL as an attacker with direct access to the database would.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        match self.kind {
            Kind::Sqlite => sqlite3(&self.path(), sql),
            Kind::Postgres => psql(&self.url, sql),
        }
    }

    /// Drops the triggers that keep the log append-only, then runs `sql`.
    pub fn tamper(&self, sql: &str) {
        let drop_guards = match self.kind {
            Kind::Sqlite => {
                "DROP TRIGGER control_log_no_update; DROP TRIGGER control_log_no_delete;"
            }
            Kind::Postgres => {
                "DROP TRIGGER control_log_no_change ON control_log; \
                 DROP TRIGGER control_log_no_truncate ON control_log;"
            }
        };
        self.sql(&format!("{drop_guards} {sql}")).unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = psql(&pg_admin_url(), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs SQL with the `psql` client against `url`; returns what it printed.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Process::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|err| format!("cannot run psql: {err}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs SQL with the `sqlite3` command-line tool on `path`; returns what it printed.
pub fn sqlite3(path: &Path, sql: &str) -> Result<String, String> {
    let out = Process::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .map_err(|err| format!("cannot run sqlite3: {err}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if out.status.success() && stderr.is_empty() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(stderr)
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `patchwarden` binary with `args`.
pub fn patchwarden(args: &[&str]) -> Run {
    let out = Process::new(env!("CARGO_BIN_EXE_patchwarden"))
        .args(args)
        .env_remove("PATCHWARDEN_LOG")
        .env_remove("PATCHWARDEN_TOKEN")
        .env_remove("PATCHWARDEN_SERVER")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run patchwarden");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `patchwarden log verify --database URL [--output json]`.
pub fn verify(db: &TestDb, json: bool) -> Run {
    let mut args = vec!["log", "verify", "--database", db.url.as_str()];
    if json {
        args.extend(["--output", "json"]);
    }
    patchwarden(&args)
}

/// The instant the test log starts from.
pub fn t0() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().expect("t0")
}

pub fn at_hours(hours: i64) -> Timestamp {
    t0() + SignedDuration::from_hours(hours)
}

pub const ADMIN: &str = "adam";
pub const OFFICER: &str = "olivia";
pub const OWNER: &str = "oscar";
pub const DEPUTY: &str = "dora";
pub const OPERATOR: &str = "pat";

/// A log as the store wrote it: every entry, in order, and the request's id.
pub struct Built {
    pub entries: Vec<LogEntry>,
    pub request: RequestId,
}

impl Built {
    /// The sequence number of the first entry with `action`.
    pub fn seq_of(&self, action: &str) -> i64 {
        self.entries
            .iter()
            .find(|entry| entry.action == action)
            .map(|entry| entry.seq)
            .unwrap_or_else(|| panic!("no '{action}' entry"))
    }

    pub fn entry(&self, seq: i64) -> &LogEntry {
        &self.entries[usize::try_from(seq - 1).unwrap()]
    }

    pub fn last(&self) -> &LogEntry {
        self.entries.last().expect("a non-empty log")
    }
}

/// Builds a log in `db` with the store: a small organisation, one system,
/// one update request walked from draft to closed.
pub async fn build_log(db: &TestDb) -> Built {
    let store = db.open().await;
    for (name, roles) in [
        (ADMIN, "admin"),
        (OFFICER, "security-officer"),
        (OWNER, "owner"),
        (DEPUTY, "owner"),
        (OPERATOR, "operator"),
    ] {
        let new = NewAccount {
            name: AccountName::parse(name).unwrap(),
            email: Some(Email::parse(&format!("{name}@example.org")).unwrap()),
            position: Some("staff".to_owned()),
            roles: Roles::parse_list(roles).unwrap(),
        };
        store.create_account("patchwarden", new, t0()).await.unwrap();
    }
    let owner = store.account_by_name(OWNER).await.unwrap();
    let deputy = store.account_by_name(DEPUTY).await.unwrap();
    let system = store
        .create_system(
            OFFICER,
            NewSystem {
                name: SystemName::parse("payroll").unwrap(),
                owner: owner.id,
                deputy: Some(deputy.id),
                stakeholders: vec![],
                notify: vec![Email::parse("payroll-users@example.org").unwrap()],
                time_zone: TimeZoneName::parse("Europe/Berlin").unwrap(),
            },
            t0(),
        )
        .await
        .unwrap();
    let fields = complete_fields(&store).await;
    let (transition, _) = store.create_request(OFFICER, system.id, fields, t0()).await.unwrap();
    let request = transition.request.id;
    for (actor, command, hour) in steps_to_closed() {
        let verb = command.verb();
        store
            .apply(actor, request, command, at_hours(hour))
            .await
            .unwrap_or_else(|err| panic!("{actor} {verb}: {err}"));
    }
    let entries = store.log_entries(&LogFilter::default()).await.unwrap();
    store.close().await;
    Built { entries, request }
}

async fn complete_fields(store: &Store) -> RequestFields {
    let officer = store.account_by_name(OFFICER).await.unwrap();
    let operator = store.account_by_name(OPERATOR).await.unwrap();
    RequestFields {
        officer: Some(officer.id),
        operator: Some(operator.id),
        test_date: Some(at_hours(24)),
        prod_date: Some(at_hours(24 * 7)),
        packages: vec![PackageTarget::parse("openssl=3.0.15-1~deb12u1").unwrap()],
        purpose: Some(text("fix CVE-2024-5535")),
        downtime: Some(text("up to 10 minutes")),
        description: Some(text("upgrade openssl and restart nginx")),
    }
}

fn text(raw: &str) -> Text {
    Text::parse("text", raw).unwrap()
}

/// The steps from a draft to closed: who takes each, with what, at which hour.
fn steps_to_closed() -> Vec<(&'static str, Command, i64)> {
    let plan = PlanInput {
        start: at_hours(24 * 7),
        duration_minutes: 120,
        participants: vec![],
        recipients: vec![],
    };
    let passed = || WorkReport { passed: true, notes: None, problem: None };
    vec![
        (OFFICER, Command::Submit, 1),
        (OWNER, Command::Approve { comment: None }, 2),
        (OPERATOR, Command::StartTest, 24),
        (OPERATOR, Command::RecordTest { report: passed() }, 25),
        (OWNER, Command::AcknowledgeTest, 26),
        (OPERATOR, Command::ProposePlan { plan }, 27),
        (OFFICER, Command::AcceptPlan, 28),
        (OWNER, Command::AcceptPlan, 29),
        (OPERATOR, Command::ApprovePlan, 30),
        (OWNER, Command::ConfirmPresence, 31),
        (OPERATOR, Command::StartProduction, 24 * 7),
        (OPERATOR, Command::RecordProduction { report: passed() }, 24 * 7 + 1),
        (OPERATOR, Command::Document { summary: text("runbook revised") }, 24 * 7 + 2),
        (OFFICER, Command::Close, 24 * 7 + 3),
    ]
}

/// An SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The INSERT that puts `entry` into the log as a row, as the store would.
pub fn insert_sql(entry: &LogEntry) -> String {
    let number = |n: Option<i64>| n.map_or_else(|| "NULL".to_owned(), |n| n.to_string());
    let state = |s: Option<patchwarden_core::State>| {
        s.map_or_else(|| "NULL".to_owned(), |s| quote(s.as_str()))
    };
    format!(
        "INSERT INTO control_log (seq, format, at, actor, action, request_id, system_id, \
         state_before, state_after, details, policy_version, prev_hash, hash) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
        entry.seq,
        entry.format,
        entry.at.as_microsecond(),
        quote(&entry.actor),
        quote(&entry.action),
        number(entry.request),
        number(entry.system),
        state(entry.state_before),
        state(entry.state_after),
        quote(&entry.details),
        entry.policy_version,
        quote(&entry.prev_hash),
        quote(&entry.hash),
    )
}

/// Runs a test body on SQLite, and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::common::TestDb::postgres() else { return };
                    super::$name(db).await;
                }
            )*
        }
    };
}
