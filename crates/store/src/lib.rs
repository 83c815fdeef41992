//! Patchwarden's persistence: one `Store` over SQLite or PostgreSQL.
//!
//! The backend is chosen once, from the database URL's scheme; an unknown
//! scheme is refused and a SQLite file is only created when the caller asks
//! for it. Every write that changes a record appends its control log entry in
//! the same transaction, after locking the log's head, so a change and its
//! entry commit together or not at all and the chain never forks. The store
//! asks the core whether a request may move; it never decides that itself.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod accounts;
mod credentials;
mod endpoints;
mod error;
mod log;
mod migrate;
mod policy;
mod requests;
mod systems;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

pub use accounts::NewAccount;
pub use credentials::{Redemption, TokenInfo};
pub use endpoints::{Endpoint, EndpointAuth, Enrolment, JobRecord, ReportRecorded};
pub use error::{StoreError, StoreResult};
pub use log::{LogFilter, LogVerification};
pub use requests::RequestFilter;

/// The database engine behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether opening a SQLite URL may create the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    IfMissing,
    Never,
}

/// A parsed database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Accepts `sqlite:PATH`, `sqlite://PATH`, `postgres://…` and `postgresql://…`.
    pub fn parse(raw: &str) -> StoreResult<Self> {
        let (scheme, rest) = raw.split_once(':').ok_or_else(|| {
            StoreError::Invalid(format!(
                "database URL '{raw}' has no scheme: use sqlite:PATH or postgres://HOST/DB"
            ))
        })?;
        match scheme {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() || path.contains(['?', '#']) || path == ":memory:" {
                    return Err(StoreError::Invalid(format!(
                        "database URL '{raw}' needs a file path without '?' or '#'"
                    )));
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => Ok(Self::Postgres(raw.to_owned())),
            other => Err(StoreError::Invalid(format!(
                "unknown database URL scheme '{other}': use sqlite:PATH or postgres://HOST/DB"
            ))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// How a store may touch its database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadWrite(Create),
    /// Read only: nothing is created, migrated or switched to WAL.
    ReadOnly,
}

/// Where a test wants a transaction to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// After the record changed and before its control log entry is written.
    BeforeLogAppend,
}

/// The connection to Patchwarden's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    fault: Arc<std::sync::Mutex<Option<FaultPoint>>>,
}

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the database, creating a SQLite file only with `Create::IfMissing`,
    /// and brings its schema up to date.
    pub async fn open(url: &str, create: Create) -> StoreResult<Self> {
        let store = Self::connect(url, Access::ReadWrite(create)).await?;
        migrate::run(&store.pool, store.backend).await?;
        Ok(store)
    }

    /// Opens an existing database as it is, without migrating it: for offline
    /// checks that must not change what they check.
    pub async fn open_as_is(url: &str) -> StoreResult<Self> {
        Self::connect(url, Access::ReadOnly).await
    }

    async fn connect(url: &str, access: Access) -> StoreResult<Self> {
        let create = match access {
            Access::ReadWrite(create) => create,
            Access::ReadOnly => Create::Never,
        };
        sqlx::any::install_default_drivers();
        let parsed = DatabaseUrl::parse(url)?;
        let backend = parsed.backend();
        let sqlx_url = match &parsed {
            DatabaseUrl::Sqlite(path) => {
                if create == Create::Never && !path.exists() {
                    return Err(StoreError::NotFound(format!(
                        "database file '{}' does not exist",
                        path.display()
                    )));
                }
                let mode = match access {
                    Access::ReadOnly => "ro",
                    Access::ReadWrite(Create::IfMissing) => "rwc",
                    Access::ReadWrite(Create::Never) => "rw",
                };
                format!("sqlite://{}?mode={mode}", path.display())
            }
            DatabaseUrl::Postgres(url) => url.clone(),
        };
        let options = AnyConnectOptions::from_str(&sqlx_url)
            .map_err(|err| StoreError::Invalid(format!("database URL is invalid: {err}")))?;
        // One direct attempt first, so that a refused connection or a missing
        // database is reported at once with the server's own words, instead
        // of as a pool timeout after retries.
        AnyConnection::connect_with(&options).await?.close().await?;
        let read_only = access == Access::ReadOnly;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite && !read_only {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    } else if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    } else {
                        conn.execute("SET lock_timeout = '10s'").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend, fault: Arc::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Makes the next write fail at `point` (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, point: FaultPoint) {
        if let Ok(mut fault) = self.fault.lock() {
            *fault = Some(point);
        }
    }

    /// Fails if a test asked for a fault at `point`; the fault fires once.
    pub(crate) fn fault_at(&self, point: FaultPoint) -> StoreResult<()> {
        let fired = self
            .fault
            .lock()
            .ok()
            .and_then(|mut fault| if *fault == Some(point) { fault.take() } else { None });
        match fired {
            Some(FaultPoint::BeforeLogAppend) => {
                Err(StoreError::InjectedFault("before log append"))
            }
            None => Ok(()),
        }
    }

    /// Begins a transaction that will write: on SQLite it takes the write lock
    /// at once, so that two writers never both read and then both write.
    pub(crate) async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Makes sure a new database has its first policy version; idempotent.
    pub async fn bootstrap(&self, now: Timestamp) -> StoreResult<()> {
        policy::ensure_initial(self, now).await
    }
}

/// Serialises a value stored as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|err| StoreError::integrity(err.to_string()))
}

/// Instants are stored as microseconds since the Unix epoch.
pub(crate) fn to_micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

pub(crate) fn from_micros(micros: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(micros)
        .map_err(|err| StoreError::integrity(format!("instant {micros} is out of range: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_and_refuse_the_unknown() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/pw.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/pw.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/pw.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/pw.db"))
        );
        assert_eq!(DatabaseUrl::parse("postgresql://h/db").unwrap().backend(), Backend::Postgres);
        let err = DatabaseUrl::parse("mysql://h/db").unwrap_err().to_string();
        assert!(err.contains("unknown database URL scheme 'mysql'"), "{err}");
        let err = DatabaseUrl::parse("pw.db").unwrap_err().to_string();
        assert!(err.contains("has no scheme"), "{err}");
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("sqlite:x.db?mode=ro").is_err());
    }
}
