//! Update requests: creating them and moving them through the lifecycle.
//!
//! Each change runs in one write transaction: lock the log head, read the
//! request, its system, the policy and the people involved, ask the core, then
//! write the request, any documentation revision and the log entry. A refusal
//! from the core rolls the transaction back, so nothing is half-written.

use jiff::Timestamp;
use patchwarden_core::account::PRODUCT_ACTOR;
use patchwarden_core::lifecycle::{self, Command, Context, Evidence, Transition};
use patchwarden_core::request::RequestFields;
use patchwarden_core::{
    Account, AccountId, ChainHead, LogDraft, LogEntry, RequestId, State, SystemId, UpdateRequest,
};
use sqlx::{Any, Row, Transaction};

use crate::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::{Store, StoreError, StoreResult, log, policy, systems, to_json, to_micros};

/// Which requests to list.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub system: Option<SystemId>,
    pub state: Option<State>,
}

async fn load(
    tx: &mut Transaction<'static, Any>,
    id: RequestId,
) -> StoreResult<(UpdateRequest, i64)> {
    let row = sqlx::query("SELECT body, revision FROM requests WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id} does not exist")))?;
    let body: String = row.try_get(0)?;
    let request = serde_json::from_str(&body)
        .map_err(|err| StoreError::integrity(format!("request {id}: {err}")))?;
    Ok((request, row.try_get(1)?))
}

async fn account_in(tx: &mut Transaction<'static, Any>, name: &str) -> StoreResult<Account> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name.to_owned())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account '{name}' does not exist")))?;
    account_from_row(&row)
}

/// Loads the accounts with these ids; unknown ids are left out for the core
/// to name.
async fn people(
    tx: &mut Transaction<'static, Any>,
    ids: impl IntoIterator<Item = AccountId>,
) -> StoreResult<Vec<Account>> {
    let mut ids: Vec<AccountId> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id.0)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = row {
            out.push(account_from_row(&row)?);
        }
    }
    Ok(out)
}

/// Every account a request or a command names.
fn named_ids(request: &UpdateRequest, command: Option<&Command>) -> Vec<AccountId> {
    let mut ids = vec![request.requester, request.officer()];
    ids.extend(request.fields.operator);
    if let Some(plan) = &request.plan {
        ids.extend(plan.participants.iter().copied());
    }
    match command {
        Some(Command::Amend { fields }) => {
            ids.extend(fields.officer.into_iter().chain(fields.operator))
        }
        Some(Command::ProposePlan { plan } | Command::RevisePlan { plan }) => {
            ids.extend(plan.participants.iter().copied());
        }
        _ => {}
    }
    ids
}

fn log_draft(
    transition: &Transition,
    actor: &str,
    policy_version: u32,
    now: Timestamp,
) -> LogDraft {
    LogDraft {
        at: now,
        actor: actor.to_owned(),
        action: transition.verb.as_str().to_owned(),
        request: Some(transition.request.id.0),
        system: Some(transition.request.system.0),
        state_before: transition.before,
        state_after: Some(transition.after),
        details: transition.details.clone(),
        policy_version,
    }
}

impl Store {
    /// Files a draft request on `system`; the requester is `actor`.
    pub async fn create_request(
        &self,
        actor: &str,
        system: SystemId,
        fields: RequestFields,
        now: Timestamp,
    ) -> StoreResult<(Transition, LogEntry)> {
        let mut tx = self.begin_write().await?;
        let mut head = log::lock_head(self, &mut tx).await?;
        let actor = account_in(&mut tx, actor).await?;
        let system = systems::load(&mut tx, system).await?;
        let policy = policy::current(&mut tx).await?;

        let placeholder =
            UpdateRequest::draft(RequestId(0), system.id, actor.id, fields.clone(), now);
        let people = people(&mut tx, named_ids(&placeholder, None)).await?;
        let ctx = Context { now, policy: &policy, system: &system, actor: &actor, people: &people };
        // Checked before the row exists so that a refusal leaves no id used.
        lifecycle::create(RequestId(0), fields.clone(), &ctx)?;

        let row = sqlx::query(
            "INSERT INTO requests (system_id, state, paused, revision, body, created_at, updated_at) \
             VALUES ($1, $2, 0, 1, '{}', $3, $3) RETURNING id",
        )
        .bind(system.id.0)
        .bind(State::Draft.as_str())
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let id = RequestId(row.try_get(0)?);
        let transition = lifecycle::create(id, fields, &ctx)?;
        sqlx::query("UPDATE requests SET body = $1 WHERE id = $2")
            .bind(to_json(&transition.request)?)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let entry = log::append(
            self,
            &mut tx,
            &mut head,
            log_draft(&transition, actor.name.as_str(), policy.number, now),
        )
        .await?;
        tx.commit().await?;
        Ok((transition, entry))
    }

    /// Applies `command` to request `id` on behalf of `actor`, or refuses it
    /// and writes nothing.
    pub async fn apply(
        &self,
        actor: &str,
        id: RequestId,
        command: Command,
        now: Timestamp,
    ) -> StoreResult<(Transition, LogEntry)> {
        let mut tx = self.begin_write().await?;
        let mut head = log::lock_head(self, &mut tx).await?;
        let actor = account_in(&mut tx, actor).await?;
        let (request, revision) = load(&mut tx, id).await?;
        let system = systems::load(&mut tx, request.system).await?;
        let policy = policy::current(&mut tx).await?;
        let people = people(&mut tx, named_ids(&request, Some(&command))).await?;
        let ctx = Context { now, policy: &policy, system: &system, actor: &actor, people: &people };

        let transition = lifecycle::apply(&request, command, &ctx)?;
        let entry = self
            .persist(
                &mut tx,
                &mut head,
                &transition,
                revision,
                actor.name.as_str(),
                policy.number,
                now,
            )
            .await?;
        tx.commit().await?;
        Ok((transition, entry))
    }

    /// Applies what the product observed through its agents (`lifecycle::Evidence`),
    /// as the product, or refuses it and writes nothing.
    pub async fn apply_evidence(
        &self,
        id: RequestId,
        evidence: Evidence,
        now: Timestamp,
    ) -> StoreResult<(Transition, LogEntry)> {
        let mut tx = self.begin_write().await?;
        let mut head = log::lock_head(self, &mut tx).await?;
        let (request, revision) = load(&mut tx, id).await?;
        let system = systems::load(&mut tx, request.system).await?;
        let policy = policy::current(&mut tx).await?;
        let transition = lifecycle::apply_evidence(&request, evidence, now, &policy, &system)?;
        let entry = self
            .persist(&mut tx, &mut head, &transition, revision, PRODUCT_ACTOR, policy.number, now)
            .await?;
        tx.commit().await?;
        Ok((transition, entry))
    }

    /// Writes a transition the core allowed, with its log entry, in `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn persist(
        &self,
        tx: &mut Transaction<'static, Any>,
        head: &mut ChainHead,
        transition: &Transition,
        revision: i64,
        actor: &str,
        policy_version: u32,
        now: Timestamp,
    ) -> StoreResult<LogEntry> {
        let id = transition.request.id;
        let updated = sqlx::query(
            "UPDATE requests SET state = $1, paused = $2, revision = $3, body = $4, updated_at = $5 \
             WHERE id = $6 AND revision = $7",
        )
        .bind(transition.after.as_str())
        .bind(i64::from(transition.request.paused))
        .bind(revision + 1)
        .bind(to_json(&transition.request)?)
        .bind(to_micros(now))
        .bind(id.0)
        .bind(revision)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Contended(format!(
                "request {id} was changed by someone else at the same time: read it again"
            )));
        }
        if let Some(revision) = &transition.documentation {
            systems::record_revision(tx, revision).await?;
        }
        log::append(self, tx, head, log_draft(transition, actor, policy_version, now)).await
    }

    pub async fn request(&self, id: RequestId) -> StoreResult<UpdateRequest> {
        let mut tx = self.pool().begin().await?;
        let (request, _) = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(request)
    }

    pub async fn requests(&self, filter: &RequestFilter) -> StoreResult<Vec<UpdateRequest>> {
        let rows = sqlx::query(
            "SELECT id, body FROM requests WHERE ($1 IS NULL OR system_id = $1) \
             AND ($2 IS NULL OR state = $2) ORDER BY id",
        )
        .bind(filter.system.map(|s| s.0))
        .bind(filter.state.map(|s| s.as_str().to_owned()))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                let body: String = row.try_get(1)?;
                serde_json::from_str(&body)
                    .map_err(|err| StoreError::integrity(format!("request {id}: {err}")))
            })
            .collect()
    }
}
