//! Systems and their documentation revisions.

use jiff::Timestamp;
use patchwarden_core::system::{DocumentationRevision, NewSystem, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{AccountId, Email, LogDraft, RequestId, Role, System, SystemId};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::accounts::account_from_row;
use crate::{Store, StoreError, StoreResult, from_micros, log, policy, to_json, to_micros};

const SYSTEM_COLUMNS: &str =
    "id, name, owner_id, deputy_id, stakeholders, notify, time_zone, documentation_revision";

fn system_from_row(row: &AnyRow) -> StoreResult<System> {
    let id: i64 = row.try_get("id")?;
    let bad = |what: String| StoreError::integrity(format!("system {id}: {what}"));
    let name: String = row.try_get("name")?;
    let stakeholders: String = row.try_get("stakeholders")?;
    let notify: String = row.try_get("notify")?;
    let zone: String = row.try_get("time_zone")?;
    let revision: i64 = row.try_get("documentation_revision")?;
    Ok(System {
        id: SystemId(id),
        name: SystemName::parse(&name).map_err(bad)?,
        owner: AccountId(row.try_get("owner_id")?),
        deputy: row.try_get::<Option<i64>, _>("deputy_id")?.map(AccountId),
        stakeholders: serde_json::from_str(&stakeholders).map_err(|e| bad(e.to_string()))?,
        notify: serde_json::from_str::<Vec<Email>>(&notify).map_err(|e| bad(e.to_string()))?,
        time_zone: TimeZoneName::parse(&zone).map_err(bad)?,
        documentation_revision: u32::try_from(revision)
            .map_err(|_| bad(format!("revision {revision} out of range")))?,
    })
}

pub(crate) async fn load(tx: &mut Transaction<'static, Any>, id: SystemId) -> StoreResult<System> {
    let sql = format!("SELECT {SYSTEM_COLUMNS} FROM systems WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("system {id} does not exist")))?;
    system_from_row(&row)
}

/// Records a documentation revision and moves the system's revision counter.
pub(crate) async fn record_revision(
    tx: &mut Transaction<'static, Any>,
    revision: &DocumentationRevision,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO documentation_revisions (system_id, number, summary, request_id, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(revision.system.0)
    .bind(i64::from(revision.number))
    .bind(revision.summary.as_str().to_owned())
    .bind(revision.request.map(|r| r.0))
    .bind(revision.recorded_by.0)
    .bind(to_micros(revision.recorded_at))
    .execute(&mut **tx)
    .await?;
    let moved = sqlx::query(
        "UPDATE systems SET documentation_revision = $1 WHERE id = $2 AND documentation_revision = $3",
    )
    .bind(i64::from(revision.number))
    .bind(revision.system.0)
    .bind(i64::from(revision.number) - 1)
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Err(StoreError::Contended(format!(
            "system {} got another documentation revision at the same time",
            revision.system
        )));
    }
    Ok(())
}

impl Store {
    /// Creates a system; its owner and deputy must hold the owner role.
    pub async fn create_system(
        &self,
        actor: &str,
        new: NewSystem,
        now: Timestamp,
    ) -> StoreResult<System> {
        new.validate().map_err(StoreError::Invalid)?;
        let mut tx = self.begin_write().await?;
        let mut head = log::lock_head(self, &mut tx).await?;

        let taken = sqlx::query("SELECT id FROM systems WHERE name = $1")
            .bind(new.name.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Invalid(format!("system name '{}' is taken", new.name)));
        }
        let people = [("owner", Some(new.owner)), ("deputy", new.deputy)];
        for (part, id) in people {
            let Some(id) = id else { continue };
            let row =
                sqlx::query("SELECT id, name, email, position, roles FROM accounts WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Invalid(format!("{part}: account {id} does not exist"))
                    })?;
            let account = account_from_row(&row)?;
            if !account.has(Role::Owner) {
                return Err(StoreError::Invalid(format!(
                    "{part}: '{}' does not hold the owner role",
                    account.name
                )));
            }
        }
        for stakeholder in &new.stakeholders {
            let exists = sqlx::query("SELECT id FROM accounts WHERE id = $1")
                .bind(stakeholder.0)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::Invalid(format!(
                    "stakeholder: account {stakeholder} does not exist"
                )));
            }
        }

        let row = sqlx::query(
            "INSERT INTO systems (name, owner_id, deputy_id, stakeholders, notify, time_zone, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.name.as_str().to_owned())
        .bind(new.owner.0)
        .bind(new.deputy.map(|d| d.0))
        .bind(to_json(&new.stakeholders)?)
        .bind(to_json(&new.notify)?)
        .bind(new.time_zone.as_str().to_owned())
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let system = System {
            id: SystemId(row.try_get(0)?),
            name: new.name,
            owner: new.owner,
            deputy: new.deputy,
            stakeholders: new.stakeholders,
            notify: new.notify,
            time_zone: new.time_zone,
            documentation_revision: 0,
        };
        let draft = LogDraft {
            at: now,
            actor: actor.to_owned(),
            action: "system-create".to_owned(),
            request: None,
            system: Some(system.id.0),
            state_before: None,
            state_after: None,
            details: json!({
                "name": system.name,
                "owner": system.owner,
                "deputy": system.deputy,
                "stakeholders": system.stakeholders,
                "notify": system.notify,
                "time_zone": system.time_zone,
            }),
            policy_version: policy::current_number(&mut tx).await?,
        };
        log::append(self, &mut tx, &mut head, draft).await?;
        tx.commit().await?;
        Ok(system)
    }

    pub async fn system(&self, id: SystemId) -> StoreResult<System> {
        let mut tx = self.pool().begin().await?;
        let system = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(system)
    }

    pub async fn system_by_name(&self, name: &str) -> StoreResult<System> {
        let sql = format!("SELECT {SYSTEM_COLUMNS} FROM systems WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("system '{name}' does not exist")))?;
        system_from_row(&row)
    }

    pub async fn systems(&self) -> StoreResult<Vec<System>> {
        let sql = format!("SELECT {SYSTEM_COLUMNS} FROM systems ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(system_from_row).collect()
    }

    pub async fn documentation_revisions(
        &self,
        system: SystemId,
    ) -> StoreResult<Vec<DocumentationRevision>> {
        let rows = sqlx::query(
            "SELECT system_id, number, summary, request_id, recorded_by, recorded_at \
             FROM documentation_revisions WHERE system_id = $1 ORDER BY number",
        )
        .bind(system.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let number: i64 = row.try_get("number")?;
                let summary: String = row.try_get("summary")?;
                Ok(DocumentationRevision {
                    system: SystemId(row.try_get("system_id")?),
                    number: u32::try_from(number)
                        .map_err(|_| StoreError::integrity("revision number out of range"))?,
                    summary: Text::parse("summary", &summary).map_err(StoreError::integrity)?,
                    request: row.try_get::<Option<i64>, _>("request_id")?.map(RequestId),
                    recorded_by: AccountId(row.try_get("recorded_by")?),
                    recorded_at: from_micros(row.try_get("recorded_at")?)?,
                })
            })
            .collect()
    }
}
