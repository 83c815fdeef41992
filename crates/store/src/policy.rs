//! Policy versions: the first one on a new database, changes, and history.

use jiff::Timestamp;
use patchwarden_core::policy::PolicyChange;
use patchwarden_core::text::Text;
use patchwarden_core::{LogDraft, PolicySettings, PolicyVersion};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, StoreResult, from_micros, log, to_micros};

const POLICY_COLUMNS: &str = "number, effective, author_name, author_position, reason, settings";

fn policy_from_row(row: &AnyRow) -> StoreResult<PolicyVersion> {
    let number: i64 = row.try_get("number")?;
    let bad = |what: String| StoreError::integrity(format!("policy version {number}: {what}"));
    let reason: String = row.try_get("reason")?;
    let settings: String = row.try_get("settings")?;
    Ok(PolicyVersion {
        number: u32::try_from(number).map_err(|_| bad("number out of range".to_owned()))?,
        effective: from_micros(row.try_get("effective")?)?,
        author_name: row.try_get("author_name")?,
        author_position: row.try_get("author_position")?,
        reason: Text::parse("reason", &reason).map_err(bad)?,
        settings: serde_json::from_str::<PolicySettings>(&settings)
            .map_err(|err| bad(err.to_string()))?,
    })
}

/// The number of the newest policy version, read inside a transaction.
pub(crate) async fn current_number(tx: &mut Transaction<'static, Any>) -> StoreResult<u32> {
    let number: Option<i64> = sqlx::query("SELECT MAX(number) FROM policy_versions")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let number = number.ok_or_else(|| {
        StoreError::integrity("the database has no policy version: it was not bootstrapped")
    })?;
    u32::try_from(number).map_err(|_| StoreError::integrity("policy version out of range"))
}

/// The newest policy version, read inside a transaction.
pub(crate) async fn current(tx: &mut Transaction<'static, Any>) -> StoreResult<PolicyVersion> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policy_versions ORDER BY number DESC LIMIT 1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::integrity("the database has no policy version"))?;
    policy_from_row(&row)
}

async fn insert(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    actor: &str,
    version: &PolicyVersion,
    now: Timestamp,
) -> StoreResult<()> {
    let mut head = log::lock_head(store, tx).await?;
    let settings = serde_json::to_string(&version.settings)
        .map_err(|err| StoreError::integrity(err.to_string()))?;
    sqlx::query(
        "INSERT INTO policy_versions (number, effective, author_name, author_position, reason, settings, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(i64::from(version.number))
    .bind(to_micros(version.effective))
    .bind(version.author_name.clone())
    .bind(version.author_position.clone())
    .bind(version.reason.as_str().to_owned())
    .bind(settings)
    .bind(to_micros(now))
    .execute(&mut **tx)
    .await?;
    let draft = LogDraft {
        at: now,
        actor: actor.to_owned(),
        action: "policy-version".to_owned(),
        request: None,
        system: None,
        state_before: None,
        state_after: None,
        details: json!({
            "number": version.number,
            "effective": version.effective,
            "author_name": version.author_name,
            "author_position": version.author_position,
            "reason": version.reason,
            "settings": version.settings,
        }),
        policy_version: version.number,
    };
    log::append(store, tx, &mut head, draft).await?;
    Ok(())
}

pub(crate) async fn ensure_initial(store: &Store, now: Timestamp) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    let _head = log::lock_head(store, &mut tx).await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM policy_versions")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if count == 0 {
        insert(store, &mut tx, "patchwarden", &PolicyVersion::initial(now), now).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Store {
    pub async fn policy(&self) -> StoreResult<PolicyVersion> {
        let mut tx = self.pool().begin().await?;
        let version = current(&mut tx).await?;
        tx.commit().await?;
        Ok(version)
    }

    pub async fn policy_history(&self) -> StoreResult<Vec<PolicyVersion>> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM policy_versions ORDER BY number");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Records the next policy version; a change that alters nothing is refused.
    pub async fn change_policy(
        &self,
        actor: &str,
        change: PolicyChange,
        now: Timestamp,
    ) -> StoreResult<PolicyVersion> {
        let mut tx = self.begin_write().await?;
        let _head = log::lock_head(self, &mut tx).await?;
        let next = current(&mut tx).await?.next(change).map_err(|problems| {
            StoreError::Invalid(format!("policy not changed: {}", problems.join("; ")))
        })?;
        insert(self, &mut tx, actor, &next, now).await?;
        tx.commit().await?;
        Ok(next)
    }
}
