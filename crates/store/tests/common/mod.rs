//! Test harness shared by the store's integration tests: a fresh database per
//! test on SQLite (a file in a temp dir) or PostgreSQL (a database created on
//! the server named by `PATCHWARDEN_TEST_PG`, by default the local one), and a
//! small cast of accounts and a system to act on.
//!
//! With `CI=true` an unreachable PostgreSQL fails the test; elsewhere the
//! PostgreSQL variant says it skipped and returns.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{Command, WorkReport};
use patchwarden_core::request::{PackageTarget, PlanInput, RequestFields};
use patchwarden_core::system::{NewSystem, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{AccountName, Email, RequestId, Roles, System};
use patchwarden_store::{Create, NewAccount, Store};

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn pg_admin_url() -> String {
    std::env::var("PATCHWARDEN_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned())
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

/// One test's own database.
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("patchwarden.db").display());
        Self { url, kind: Kind::Sqlite, _dir: Some(dir), pg_name: None }
    }

    /// A fresh PostgreSQL database, or `None` (outside CI) when no server answers.
    pub async fn postgres() -> Option<Self> {
        let admin_url = pg_admin_url();
        #[allow(clippy::disallowed_methods)]
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "pw_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let created = psql(&admin_url, &format!("CREATE DATABASE {name}"));
        match created {
            Ok(()) => {}
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL at {admin_url} is required under CI=true: {err}")
            }
            Err(err) => {
                eprintln!("skipped: PostgreSQL at {admin_url} is not reachable: {err}");
                return None;
            }
        }
        Some(Self {
            url: pg_url_for(&admin_url, &name),
            kind: Kind::Postgres,
            _dir: None,
            pg_name: Some(name),
        })
    }

    pub async fn open(&self) -> Store {
        let store = Store::open(&self.url, Create::IfMissing).await.expect("open store");
        store.bootstrap(t0()).await.expect("bootstrap");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = psql(&pg_admin_url(), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs one SQL statement with the `psql` client against `url`.
pub fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|err| format!("cannot run psql: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The instant every test starts from; tests move forward from it.
pub fn t0() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().expect("t0")
}

pub fn at_hours(hours: i64) -> Timestamp {
    t0() + SignedDuration::from_hours(hours)
}

/// The people of a small organisation and one system they work on.
pub struct Cast {
    pub system: System,
}

pub const OFFICER: &str = "olivia";
pub const OWNER: &str = "oscar";
pub const DEPUTY: &str = "dora";
pub const OPERATOR: &str = "pat";
pub const AUDITOR: &str = "audrey";
pub const ADMIN: &str = "adam";
pub const OTHER_OWNER: &str = "otto";

pub async fn account(store: &Store, name: &str, roles: &str) {
    let new = NewAccount {
        name: AccountName::parse(name).unwrap(),
        email: Some(Email::parse(&format!("{name}@example.org")).unwrap()),
        position: Some("staff".to_owned()),
        roles: Roles::parse_list(roles).unwrap(),
    };
    store.create_account("patchwarden", new, t0()).await.unwrap();
}

pub async fn cast(store: &Store) -> Cast {
    account(store, ADMIN, "admin").await;
    account(store, OFFICER, "security-officer").await;
    account(store, OWNER, "owner").await;
    account(store, DEPUTY, "owner").await;
    account(store, OPERATOR, "operator").await;
    account(store, AUDITOR, "auditor").await;
    account(store, OTHER_OWNER, "owner").await;
    let owner = store.account_by_name(OWNER).await.unwrap();
    let deputy = store.account_by_name(DEPUTY).await.unwrap();
    let system = store
        .create_system(
            ADMIN,
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
    Cast { system }
}

/// Runs a test body on SQLite, or on PostgreSQL.
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
                    let Some(db) = super::common::TestDb::postgres().await else { return };
                    super::$name(db).await;
                }
            )*
        }
    };
}

/// A draft's fields with every required field filled in.
pub async fn complete_fields(store: &Store) -> RequestFields {
    let officer = store.account_by_name(OFFICER).await.unwrap();
    let operator = store.account_by_name(OPERATOR).await.unwrap();
    RequestFields {
        officer: Some(officer.id),
        operator: Some(operator.id),
        test_date: Some(at_hours(24)),
        prod_date: Some(at_hours(24 * 7)),
        packages: vec![PackageTarget::parse("openssl=3.0.15-1~deb12u1").unwrap()],
        purpose: Some(Text::parse("purpose", "fix CVE-2024-5535").unwrap()),
        downtime: Some(Text::parse("downtime", "up to 10 minutes").unwrap()),
        description: Some(Text::parse("description", "upgrade openssl and restart nginx").unwrap()),
    }
}

fn text(raw: &str) -> Text {
    Text::parse("text", raw).unwrap()
}

/// The steps from a draft to closed: who takes each, with what, at which hour.
pub fn steps_to_closed() -> Vec<(&'static str, Command, i64)> {
    let plan = PlanInput {
        start: at_hours(24 * 7),
        duration_minutes: 120,
        participants: vec![],
        recipients: vec![],
    };
    vec![
        (OFFICER, Command::Submit, 1),
        (OWNER, Command::Approve { comment: None }, 2),
        (OPERATOR, Command::StartTest, 24),
        (
            OPERATOR,
            Command::RecordTest { report: WorkReport { passed: true, notes: None, problem: None } },
            25,
        ),
        (OWNER, Command::AcknowledgeTest, 26),
        (OPERATOR, Command::ProposePlan { plan }, 27),
        (OFFICER, Command::AcceptPlan, 28),
        (OWNER, Command::AcceptPlan, 29),
        (OPERATOR, Command::ApprovePlan, 30),
        (OWNER, Command::ConfirmPresence, 31),
        (OPERATOR, Command::StartProduction, 24 * 7),
        (
            OPERATOR,
            Command::RecordProduction {
                report: WorkReport { passed: true, notes: None, problem: None },
            },
            24 * 7 + 1,
        ),
        (
            OPERATOR,
            Command::Document { summary: text("runbook revised for openssl 3.0.15") },
            24 * 7 + 2,
        ),
        (OFFICER, Command::Close, 24 * 7 + 3),
    ]
}

/// Files a complete draft as the officer and returns its id.
pub async fn file_request(store: &Store, cast: &Cast) -> RequestId {
    let fields = complete_fields(store).await;
    let (transition, _) =
        store.create_request(OFFICER, cast.system.id, fields, t0()).await.unwrap();
    transition.request.id
}

/// Takes the first `n` steps towards closed.
pub async fn walk(store: &Store, id: RequestId, n: usize) {
    for (actor, command, hour) in steps_to_closed().into_iter().take(n) {
        let verb = command.verb();
        store
            .apply(actor, id, command, at_hours(hour))
            .await
            .unwrap_or_else(|err| panic!("{actor} {verb}: {err}"));
    }
}
