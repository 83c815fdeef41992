//! Opening the database a command names, and saying clearly why it could not.
//!
//! Read commands open the database as it is: nothing is migrated or created,
//! and a missing SQLite file stays missing. Only `demo` creates what is
//! missing. A password in a URL never reaches the terminal.

use std::str::FromStr;

use anyhow::Context as _;
use patchwarden_store::{Create, DatabaseUrl, Store, StoreError};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Opens an existing database without changing its schema.
pub async fn open_as_is(url: &str) -> anyhow::Result<Store> {
    Store::open_as_is(url).await.map_err(|err| explain(err, url, "cannot open"))
}

/// Whether `demo` found the database or had to make it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Existing,
    Created,
}

/// Opens the database, creating the SQLite file (and its folder) or the
/// PostgreSQL database when missing, and brings the schema up to date.
pub async fn open_creating(url: &str) -> anyhow::Result<(Store, Found)> {
    let parsed = DatabaseUrl::parse(url).map_err(|err| explain(err, url, "cannot open"))?;
    match parsed {
        DatabaseUrl::Sqlite(path) => {
            let found = if path.exists() { Found::Existing } else { Found::Created };
            let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty());
            if let Some(folder) = folder {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("cannot create the folder '{}'", folder.display()))?;
            }
            let store = Store::open(url, Create::IfMissing)
                .await
                .map_err(|err| explain(err, url, "cannot open"))?;
            Ok((store, found))
        }
        DatabaseUrl::Postgres(_) => match Store::open(url, Create::IfMissing).await {
            Ok(store) => Ok((store, Found::Existing)),
            Err(err) if database_is_missing(&err) => {
                create_postgres_database(url).await?;
                let store = Store::open(url, Create::IfMissing)
                    .await
                    .map_err(|err| explain(err, url, "cannot open"))?;
                Ok((store, Found::Created))
            }
            Err(err) => Err(explain(err, url, "cannot open")),
        },
    }
}

/// PostgreSQL's "invalid catalog name": the database does not exist.
fn database_is_missing(err: &StoreError) -> bool {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => db.code().as_deref() == Some("3D000"),
        _ => false,
    }
}

/// Creates the database a PostgreSQL URL names, through the server's
/// `postgres` maintenance database.
///
/// FIXME: creating a database belongs in the store (next to `Create::IfMissing`
/// for SQLite); this stands in for it until the store offers it.
async fn create_postgres_database(url: &str) -> anyhow::Result<()> {
    let shown = redact(url);
    let options = PgConnectOptions::from_str(url)
        .with_context(|| format!("database URL '{shown}' is invalid"))?;
    let name = options
        .get_database()
        .or_else(|| Some(options.get_username()))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("database URL '{shown}' names no database"))?;
    let mut server = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .with_context(|| format!("cannot connect to the server of '{shown}' to create it"))?;
    let quoted = name.replace('"', "\"\"");
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
        .execute(&mut server)
        .await;
    match created {
        Ok(_) => {}
        // Someone else created it in the meantime: just as good.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
        Err(err) => {
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("cannot create the database '{name}'"));
        }
    }
    let _ = server.close().await;
    Ok(())
}

/// Turns a store error into one line that says what was wrong with what.
pub fn explain(err: StoreError, url: &str, doing: &str) -> anyhow::Error {
    let shown = redact(url);
    let hint = match &err {
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            " (no connection could be made in time: is the database server running?)"
        }
        StoreError::Database(sqlx::Error::Database(db)) if is_missing_table(db.as_ref()) => {
            " (is this a Patchwarden database?)"
        }
        _ => "",
    };
    anyhow::anyhow!("{doing} {shown}: {}{hint}", crate::one_line(&anyhow::Error::new(err)))
}

fn is_missing_table(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme_end) = shown.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end =
            shown[authority_start..].find(['/', '?']).map_or(shown.len(), |i| authority_start + i);
        let authority = &shown[authority_start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            let password = authority_start + colon + 1..authority_start + at;
            shown.replace_range(password, "***");
        }
    }
    if let Some(query_start) = shown.find('?') {
        let (base, query) = shown.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{base}{}", query.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_terminal() {
        assert_eq!(redact("postgres://pw:s3cret@db:5432/pw"), "postgres://pw:***@db:5432/pw");
        assert_eq!(
            redact("postgres://pw@db/pw?password=x&sslmode=require"),
            "postgres://pw@db/pw?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact("sqlite:/var/lib/pw.db"), "sqlite:/var/lib/pw.db");
    }
}
