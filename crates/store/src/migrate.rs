//! Schema migrations: one folder of numbered SQL files per backend, applied in
//! order, each in its own transaction, and recorded in `schema_migrations`.
//!
//! Migrations are append-only: a shipped file is never edited; a new change is
//! a new file. A database whose recorded migrations are newer than this build
//! knows is refused rather than guessed at.

use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::{Backend, StoreError, StoreResult};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "credentials",
        sql: include_str!("../migrations/sqlite/0002_credentials.sql"),
    },
    Migration {
        version: 3,
        name: "endpoints",
        sql: include_str!("../migrations/sqlite/0003_endpoints.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "credentials",
        sql: include_str!("../migrations/postgres/0002_credentials.sql"),
    },
    Migration {
        version: 3,
        name: "endpoints",
        sql: include_str!("../migrations/postgres/0003_endpoints.sql"),
    },
];

pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> StoreResult<()> {
    let migrations = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;

    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        // Several servers may start together: one migrates, the others wait.
        sqlx::query("SELECT pg_advisory_xact_lock(7305412)").execute(&mut *tx).await?;
    }
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    let known = migrations.last().map_or(0, |m| m.version);
    if let Some(newest) = applied.iter().max().filter(|v| **v > known) {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {newest}, newer than this build knows ({known}): upgrade Patchwarden"
        )));
    }
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(AssertSqlSafe(migration.sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await?;
        tracing::info!(migration.version, migration.name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}
