//! Harness for the API tests: a real server listening on 127.0.0.1 (port 0)
//! over plain HTTP, on a fresh SQLite file or PostgreSQL database, with a
//! manual clock the test moves forward, and a small HTTP client.
//!
//! With `CI=true` an unreachable PostgreSQL fails the test; elsewhere the
//! PostgreSQL variant says it skipped and returns.

#![allow(dead_code)]

/// Generates `sqlite::NAME` and `postgres::NAME` for each scenario `NAME`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server =
                        super::TestServer::start(super::Backend::Sqlite).await.unwrap();
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = super::TestServer::start(super::Backend::Postgres).await
                    else {
                        return;
                    };
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use jiff::{SignedDuration, Timestamp};
use patchwarden_server::{Config, ManualClock, Running, secrets::Secret};
use reqwest::Method;
use serde_json::{Value, json};

pub const BOOTSTRAP_TOKEN: &str = "pwt_bootstrap-token-for-tests-only-0123456789";

pub fn pg_admin_url() -> String {
    std::env::var("PATCHWARDEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn pg_url_for(base: &str, db: &str) -> String {
    let (server, query) = base.split_once('?').map_or((base, None), |(s, q)| (s, Some(q)));
    let after_scheme = server.find("://").map_or(0, |i| i + 3);
    let server =
        server[after_scheme..].find('/').map_or(server, |slash| &server[..after_scheme + slash]);
    match query {
        Some(query) => format!("{server}/{db}?{query}"),
        None => format!("{server}/{db}"),
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    pub client: reqwest::Client,
    running: Option<Running>,
    _dir: tempfile::TempDir,
    pg_name: Option<String>,
}

pub fn t0() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

impl TestServer {
    pub async fn start(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (database, pg_name) = match backend {
            Backend::Sqlite => (format!("sqlite:{}", dir.path().join("pw.db").display()), None),
            Backend::Postgres => {
                #[allow(clippy::disallowed_methods)]
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!(
                    "pw_test_api_{}_{}_{nanos}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let admin_url = pg_admin_url();
                match psql(&admin_url, &format!("CREATE DATABASE {name}")) {
                    Ok(()) => {}
                    Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                        panic!("PostgreSQL at {admin_url} is required under CI=true: {err}")
                    }
                    Err(err) => {
                        eprintln!("skipped: PostgreSQL at {admin_url} is not reachable: {err}");
                        return None;
                    }
                }
                (pg_url_for(&admin_url, &name), Some(name))
            }
        };
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database,
            data_dir: dir.path().to_owned(),
            insecure_http: true,
            ..Config::default()
        };
        let clock = Arc::new(ManualClock::new(t0()));
        let running = patchwarden_server::start(
            &config,
            clock.clone(),
            Some(Secret::from(BOOTSTRAP_TOKEN.to_owned())),
        )
        .await
        .unwrap();
        Some(Self {
            url: running.url.clone(),
            clock,
            admin: BOOTSTRAP_TOKEN.to_owned(),
            client: reqwest::Client::new(),
            running: Some(running),
            _dir: dir,
            pg_name,
        })
    }

    pub fn advance_hours(&self, hours: i64) {
        self.clock.advance(SignedDuration::from_hours(hours));
    }

    pub fn now(&self) -> Timestamp {
        use patchwarden_server::Clock;
        self.clock.now()
    }

    /// Sends a request; returns the status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
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
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates an account as the admin, redeems its invitation, returns its token.
    pub async fn person(&self, name: &str, roles: &[&str]) -> String {
        let (status, created) = self
            .post("/api/v1/accounts", &self.admin, json!({ "name": name, "roles": roles, "email": format!("{name}@example.org"), "position": "staff" }))
            .await;
        assert_eq!(status, 200, "{created}");
        let code = created["invitation"]["code"].as_str().unwrap().to_owned();
        let (status, redeemed) = self
            .call(
                Method::POST,
                "/api/v1/invitations/redeem",
                None,
                Some(json!({ "code": code, "password": "a long enough password" })),
            )
            .await;
        assert_eq!(status, 200, "{redeemed}");
        redeemed["token"].as_str().unwrap().to_owned()
    }

    /// Runs the server's periodic sweep once, at the manual clock's time.
    pub async fn sweep(&self) {
        let running = self.running.as_ref().unwrap();
        patchwarden_server::work::sweep(&running.state, self.now()).await.unwrap();
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = psql(&pg_admin_url(), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The people of a small organisation, each with their own token.
pub struct Cast {
    pub officer: String,
    pub owner: String,
    pub deputy: String,
    pub operator: String,
    pub auditor: String,
    pub other_owner: String,
}

pub async fn cast(server: &TestServer) -> Cast {
    let cast = Cast {
        officer: server.person("olivia", &["security-officer"]).await,
        owner: server.person("oscar", &["owner"]).await,
        deputy: server.person("dora", &["owner"]).await,
        operator: server.person("pat", &["operator"]).await,
        auditor: server.person("audrey", &["auditor"]).await,
        other_owner: server.person("otto", &["owner"]).await,
    };
    let (status, body) = server
        .post(
            "/api/v1/systems",
            &cast.officer,
            json!({ "name": "payroll", "owner": "oscar", "deputy": "dora", "notify": ["payroll-users@example.org"], "time_zone": "Europe/Berlin" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post("/api/v1/systems", &cast.officer, json!({ "name": "ledger", "owner": "otto" }))
        .await;
    assert_eq!(status, 200, "{body}");
    cast
}

/// A draft with every field, filed by the officer; returns its id.
pub async fn file_request(server: &TestServer, cast: &Cast) -> i64 {
    let now = server.now();
    let test_date = (now + SignedDuration::from_hours(24)).to_string();
    let prod_date = (now + SignedDuration::from_hours(24 * 7)).to_string();
    let (status, body) = server
        .post(
            "/api/v1/requests",
            &cast.officer,
            json!({
                "system": "payroll",
                "operator": "pat",
                "test_date": test_date,
                "prod_date": prod_date,
                "packages": ["openssl=3.0.15-1~deb12u1"],
                "purpose": "fix CVE-2024-5535",
                "downtime": "up to 10 minutes",
                "description": "upgrade openssl and restart nginx",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["request"]["id"].as_i64().unwrap()
}
