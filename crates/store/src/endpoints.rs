//! Endpoints: enrolment tokens, the enrolled machines with their credentials
//! (as hashes), their latest inventory and its history of changes, and the
//! jobs issued to them with their reports.
//!
//! Issuing a token, enrolling, revoking, issuing a job and receiving its
//! report are logged. Inventories and check-in times are not: they are
//! observations, kept in their own tables, and arrive too often for the log.
//! A job's report is kept once: a second report of the same job changes
//! nothing and says so, so an agent that retries after a lost answer never
//! makes a second record.

use jiff::Timestamp;
use patchwarden_core::system::EnvironmentKind;
use patchwarden_core::{AccountId, LogDraft, RequestId, SystemId};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, StoreResult, from_micros, log, policy, to_micros};

/// An enrolled machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub system: SystemId,
    pub environment: EnvironmentKind,
    pub hostname: String,
    pub machine_id: Option<String>,
    pub enrolled_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
    /// The agent's clock minus the server's, in milliseconds, at the last check-in.
    pub clock_offset_ms: Option<i64>,
    /// Empty until the first inventory arrives.
    pub inventory_hash: String,
    pub inventory_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// What authenticating an endpoint's credential needs, and nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointAuth {
    pub id: i64,
    pub system: SystemId,
    pub environment: EnvironmentKind,
    pub inventory_hash: String,
}

/// What became of an enrolment attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enrolment {
    Enrolled {
        endpoint: Box<Endpoint>,
        system_name: String,
    },
    /// The token was used before: refused and logged as a security event.
    AlreadyUsed,
    Expired,
    Unknown,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub endpoint: i64,
    pub request: RequestId,
    pub environment: EnvironmentKind,
    /// The sequence number of the log entry that opened the work this job belongs to.
    pub round: i64,
    pub sequence: u64,
    pub payload: String,
    pub signature: String,
    pub created_at: Timestamp,
    pub window_end: Timestamp,
    /// `None` while the job is open.
    pub outcome: Option<String>,
    pub report: Option<String>,
}

/// Whether a report was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportRecorded {
    New,
    /// The job had its report already; nothing changed.
    Already,
}

const ENDPOINT_COLUMNS: &str = "id, system_id, environment, hostname, machine_id, enrolled_at, \
     last_seen_at, clock_offset_ms, inventory_hash, inventory_at, revoked_at";

const JOB_COLUMNS: &str = "id, endpoint_id, request_id, environment, round, sequence, payload, \
     signature, created_at, window_end, outcome, report";

fn environment(raw: &str) -> StoreResult<EnvironmentKind> {
    match raw {
        "test" => Ok(EnvironmentKind::Test),
        "prod" => Ok(EnvironmentKind::Prod),
        other => Err(StoreError::integrity(format!("environment '{other}' is unknown"))),
    }
}

fn optional_instant(row: &AnyRow, column: &str) -> StoreResult<Option<Timestamp>> {
    row.try_get::<Option<i64>, _>(column)?.map(from_micros).transpose()
}

fn endpoint_from_row(row: &AnyRow) -> StoreResult<Endpoint> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        system: SystemId(row.try_get("system_id")?),
        environment: environment(&row.try_get::<String, _>("environment")?)?,
        hostname: row.try_get("hostname")?,
        machine_id: row.try_get("machine_id")?,
        enrolled_at: from_micros(row.try_get("enrolled_at")?)?,
        last_seen_at: optional_instant(row, "last_seen_at")?,
        clock_offset_ms: row.try_get("clock_offset_ms")?,
        inventory_hash: row.try_get("inventory_hash")?,
        inventory_at: optional_instant(row, "inventory_at")?,
        revoked_at: optional_instant(row, "revoked_at")?,
    })
}

fn job_from_row(row: &AnyRow) -> StoreResult<JobRecord> {
    let sequence: i64 = row.try_get("sequence")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        endpoint: row.try_get("endpoint_id")?,
        request: RequestId(row.try_get("request_id")?),
        environment: environment(&row.try_get::<String, _>("environment")?)?,
        round: row.try_get("round")?,
        sequence: u64::try_from(sequence)
            .map_err(|_| StoreError::integrity(format!("job sequence {sequence} is negative")))?,
        payload: row.try_get("payload")?,
        signature: row.try_get("signature")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        window_end: from_micros(row.try_get("window_end")?)?,
        outcome: row.try_get("outcome")?,
        report: row.try_get("report")?,
    })
}

/// Appends one log entry about an endpoint inside `tx`.
#[allow(clippy::too_many_arguments)]
async fn log_entry(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    actor: &str,
    action: &str,
    request: Option<RequestId>,
    system: SystemId,
    details: Value,
    now: Timestamp,
) -> StoreResult<()> {
    let mut head = log::lock_head(store, tx).await?;
    let draft = LogDraft {
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        request: request.map(|r| r.0),
        system: Some(system.0),
        state_before: None,
        state_after: None,
        details,
        policy_version: policy::current_number(tx).await?,
    };
    log::append(store, tx, &mut head, draft).await?;
    Ok(())
}

async fn endpoint_in(tx: &mut Transaction<'static, Any>, id: i64) -> StoreResult<Endpoint> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("endpoint {id} does not exist")))?;
    endpoint_from_row(&row)
}

impl Store {
    /// Keeps a single-use enrolment token's hash for `system`'s `environment`.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_enrolment_token(
        &self,
        actor: &str,
        actor_id: AccountId,
        system: SystemId,
        environment: EnvironmentKind,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO enrolment_tokens (token_hash, system_id, environment, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(token_hash.to_owned())
        .bind(system.0)
        .bind(environment.as_str())
        .bind(actor_id.0)
        .bind(to_micros(now))
        .bind(to_micros(expires_at))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        let details =
            json!({ "token": id, "environment": environment.as_str(), "expires_at": expires_at });
        log_entry(self, &mut tx, actor, "enrolment-token", None, system, details, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Exchanges an enrolment token for a new endpoint holding `credential_hash`.
    pub async fn enrol(
        &self,
        token_hash: &str,
        credential_hash: &str,
        hostname: &str,
        machine_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Enrolment> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, system_id, environment, expires_at, used_at, endpoint_id FROM enrolment_tokens WHERE token_hash = $1",
        )
        .bind(token_hash.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(Enrolment::Unknown) };
        let token: i64 = row.try_get("id")?;
        let system = SystemId(row.try_get("system_id")?);
        let environment = environment(&row.try_get::<String, _>("environment")?)?;
        if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
            let details = json!({ "token": token, "hostname": hostname, "endpoint": row.try_get::<Option<i64>, _>("endpoint_id")? });
            log_entry(
                self,
                &mut tx,
                "patchwarden",
                "enrolment-token-reuse",
                None,
                system,
                details,
                now,
            )
            .await?;
            tx.commit().await?;
            return Ok(Enrolment::AlreadyUsed);
        }
        if from_micros(row.try_get("expires_at")?)? <= now {
            return Ok(Enrolment::Expired);
        }

        let inserted = sqlx::query(
            "INSERT INTO endpoints (system_id, environment, hostname, machine_id, credential_hash, enrolled_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(system.0)
        .bind(environment.as_str())
        .bind(hostname.to_owned())
        .bind(machine_id.map(str::to_owned))
        .bind(credential_hash.to_owned())
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = inserted.try_get(0)?;
        sqlx::query("UPDATE enrolment_tokens SET used_at = $1, endpoint_id = $2 WHERE id = $3")
            .bind(to_micros(now))
            .bind(id)
            .bind(token)
            .execute(&mut *tx)
            .await?;
        let details = json!({
            "endpoint": id, "token": token, "hostname": hostname,
            "machine_id": machine_id, "environment": environment.as_str(),
        });
        log_entry(self, &mut tx, "patchwarden", "endpoint-enrol", None, system, details, now)
            .await?;
        let endpoint = endpoint_in(&mut tx, id).await?;
        let system_name: String = sqlx::query("SELECT name FROM systems WHERE id = $1")
            .bind(system.0)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(Enrolment::Enrolled { endpoint: Box::new(endpoint), system_name })
    }

    /// The endpoint holding a credential with this hash, unless revoked.
    pub async fn endpoint_by_credential(
        &self,
        credential_hash: &str,
    ) -> StoreResult<Option<EndpointAuth>> {
        let row = sqlx::query(
            "SELECT id, system_id, environment, inventory_hash FROM endpoints \
             WHERE credential_hash = $1 AND revoked_at IS NULL",
        )
        .bind(credential_hash.to_owned())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(EndpointAuth {
                id: row.try_get("id")?,
                system: SystemId(row.try_get("system_id")?),
                environment: environment(&row.try_get::<String, _>("environment")?)?,
                inventory_hash: row.try_get("inventory_hash")?,
            })
        })
        .transpose()
    }

    pub async fn endpoint(&self, id: i64) -> StoreResult<Endpoint> {
        let mut tx = self.pool().begin().await?;
        let endpoint = endpoint_in(&mut tx, id).await;
        tx.commit().await?;
        endpoint
    }

    /// Endpoints, of one system or all, in enrolment order.
    pub async fn endpoints(&self, system: Option<SystemId>) -> StoreResult<Vec<Endpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE ($1 IS NULL OR system_id = $1) ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(system.map(|s| s.0))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// The endpoints that work on `system`'s `environment`: enrolled and not revoked.
    pub async fn active_endpoints(
        &self,
        system: SystemId,
        environment: EnvironmentKind,
    ) -> StoreResult<Vec<Endpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints \
             WHERE system_id = $1 AND environment = $2 AND revoked_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(system.0)
            .bind(environment.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// Revokes an endpoint's credential; it is refused from then on.
    pub async fn revoke_endpoint(&self, actor: &str, id: i64, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let endpoint = endpoint_in(&mut tx, id).await?;
        if endpoint.revoked_at.is_some() {
            return Err(StoreError::Invalid(format!("endpoint {id} is revoked already")));
        }
        sqlx::query("UPDATE endpoints SET revoked_at = $1 WHERE id = $2")
            .bind(to_micros(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let details = json!({ "endpoint": id, "hostname": endpoint.hostname });
        log_entry(self, &mut tx, actor, "endpoint-revoke", None, endpoint.system, details, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest inventory's hash and JSON, if one arrived.
    pub async fn endpoint_inventory(&self, id: i64) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT inventory_hash, inventory FROM endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("endpoint {id} does not exist")))?;
        let body: Option<String> = row.try_get("inventory")?;
        Ok(body.map(|body| (row.try_get::<String, _>("inventory_hash").unwrap_or_default(), body)))
    }

    /// Keeps a new inventory as the latest, and its difference from the one before.
    pub async fn record_inventory(
        &self,
        endpoint: i64,
        hash: &str,
        body: &str,
        delta: &Value,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE endpoints SET inventory_hash = $1, inventory = $2, inventory_at = $3 WHERE id = $4",
        )
        .bind(hash.to_owned())
        .bind(body.to_owned())
        .bind(to_micros(now))
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("endpoint {endpoint} does not exist")));
        }
        sqlx::query(
            "INSERT INTO inventory_changes (endpoint_id, received_at, hash, delta) VALUES ($1, $2, $3, $4)",
        )
        .bind(endpoint)
        .bind(to_micros(now))
        .bind(hash.to_owned())
        .bind(delta.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The changes an endpoint's inventories went through, oldest first.
    pub async fn inventory_changes(&self, endpoint: i64) -> StoreResult<Vec<(Timestamp, Value)>> {
        let rows = sqlx::query(
            "SELECT received_at, delta FROM inventory_changes WHERE endpoint_id = $1 ORDER BY id",
        )
        .bind(endpoint)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let delta: String = row.try_get("delta")?;
                let delta = serde_json::from_str(&delta)
                    .map_err(|err| StoreError::integrity(format!("inventory change: {err}")))?;
                Ok((from_micros(row.try_get("received_at")?)?, delta))
            })
            .collect()
    }

    /// Records when endpoints were last seen and their clock offsets, in one transaction.
    pub async fn record_last_seen(&self, seen: &[(i64, Timestamp, i64)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for (endpoint, at, offset_ms) in seen {
            sqlx::query(
                "UPDATE endpoints SET last_seen_at = $1, clock_offset_ms = $2 WHERE id = $3",
            )
            .bind(to_micros(*at))
            .bind(*offset_ms)
            .bind(*endpoint)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sequence number and time of the log entry that last moved
    /// `request` into `state` from another state: the round that work belongs to.
    pub async fn entry_into_state(
        &self,
        request: RequestId,
        state: patchwarden_core::State,
    ) -> StoreResult<Option<(i64, Timestamp)>> {
        let row = sqlx::query(
            "SELECT seq, at FROM control_log WHERE request_id = $1 AND state_after = $2 \
             AND (state_before IS NULL OR state_before <> $2) ORDER BY seq DESC LIMIT 1",
        )
        .bind(request.0)
        .bind(state.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok((row.try_get("seq")?, from_micros(row.try_get("at")?)?))).transpose()
    }

    /// Issues one job: allocates the endpoint's next sequence number and the
    /// job's id, lets `sign` make the payload from them, and logs it.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_job(
        &self,
        endpoint: &Endpoint,
        request: RequestId,
        round: i64,
        window_end: Timestamp,
        details: Value,
        now: Timestamp,
        sign: impl FnOnce(i64, u64) -> Result<(String, String), String>,
    ) -> StoreResult<JobRecord> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(
            "SELECT id FROM jobs WHERE endpoint_id = $1 AND request_id = $2 AND environment = $3 AND round = $4",
        )
        .bind(endpoint.id)
        .bind(request.0)
        .bind(endpoint.environment.as_str())
        .bind(round)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let id: i64 = row.try_get(0)?;
            return Err(StoreError::Invalid(format!(
                "endpoint {} has job {id} for this round of request {request} already",
                endpoint.id
            )));
        }
        let row = sqlx::query(
            "UPDATE endpoints SET next_job_sequence = next_job_sequence + 1 WHERE id = $1 \
             RETURNING next_job_sequence - 1",
        )
        .bind(endpoint.id)
        .fetch_one(&mut *tx)
        .await?;
        let sequence: i64 = row.try_get(0)?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (endpoint_id, request_id, environment, round, sequence, payload, signature, created_at, window_end) \
             VALUES ($1, $2, $3, $4, $5, '', '', $6, $7) RETURNING id",
        )
        .bind(endpoint.id)
        .bind(request.0)
        .bind(endpoint.environment.as_str())
        .bind(round)
        .bind(sequence)
        .bind(to_micros(now))
        .bind(to_micros(window_end))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = inserted.try_get(0)?;
        let sequence_u64 = u64::try_from(sequence)
            .map_err(|_| StoreError::integrity(format!("job sequence {sequence} is negative")))?;
        let (payload, signature) = sign(id, sequence_u64)
            .map_err(|err| StoreError::Invalid(format!("cannot sign job {id}: {err}")))?;
        sqlx::query("UPDATE jobs SET payload = $1, signature = $2 WHERE id = $3")
            .bind(payload)
            .bind(signature)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut details = details;
        details["job"] = json!(id);
        details["endpoint"] = json!(endpoint.id);
        details["hostname"] = json!(endpoint.hostname);
        details["sequence"] = json!(sequence);
        details["window_end"] = json!(window_end);
        log_entry(
            self,
            &mut tx,
            "patchwarden",
            "job-issue",
            Some(request),
            endpoint.system,
            details,
            now,
        )
        .await?;
        let job = self.job_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn job_in(&self, tx: &mut Transaction<'static, Any>, id: i64) -> StoreResult<JobRecord> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {id} does not exist")))?;
        job_from_row(&row)
    }

    pub async fn job(&self, id: i64) -> StoreResult<JobRecord> {
        let mut tx = self.pool().begin().await?;
        let job = self.job_in(&mut tx, id).await;
        tx.commit().await?;
        job
    }

    /// An endpoint's jobs without a report, oldest first.
    pub async fn open_jobs(&self, endpoint: i64) -> StoreResult<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE endpoint_id = $1 AND outcome IS NULL ORDER BY sequence"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(endpoint).fetch_all(self.pool()).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs without a report whose window has ended.
    pub async fn overdue_jobs(&self, now: Timestamp) -> StoreResult<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE outcome IS NULL AND window_end <= $1 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_micros(now))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The jobs of one round of a request's work.
    pub async fn round_jobs(
        &self,
        request: RequestId,
        environment: EnvironmentKind,
        round: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 AND environment = $2 AND round = $3 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(request.0)
            .bind(environment.as_str())
            .bind(round)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Every job of a request, in order.
    pub async fn request_jobs(&self, request: RequestId) -> StoreResult<Vec<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY id");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(request.0).fetch_all(self.pool()).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Keeps a job's report once and logs it; `details` is what the log records.
    pub async fn record_job_report(
        &self,
        job: i64,
        outcome: &str,
        report: &str,
        details: Value,
        now: Timestamp,
    ) -> StoreResult<ReportRecorded> {
        let mut tx = self.begin_write().await?;
        let record = self.job_in(&mut tx, job).await?;
        if record.outcome.is_some() {
            return Ok(ReportRecorded::Already);
        }
        sqlx::query("UPDATE jobs SET outcome = $1, report = $2, reported_at = $3 WHERE id = $4 AND outcome IS NULL")
            .bind(outcome.to_owned())
            .bind(report.to_owned())
            .bind(to_micros(now))
            .bind(job)
            .execute(&mut *tx)
            .await?;
        let system: i64 = sqlx::query("SELECT system_id FROM endpoints WHERE id = $1")
            .bind(record.endpoint)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut details = details;
        details["job"] = json!(job);
        details["endpoint"] = json!(record.endpoint);
        details["outcome"] = json!(outcome);
        log_entry(
            self,
            &mut tx,
            "patchwarden",
            "job-report",
            Some(record.request),
            SystemId(system),
            details,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ReportRecorded::New)
    }
}

impl Store {
    /// The settings of `system`'s `environment` (the server's JSON), if any were set.
    pub async fn environment_settings(
        &self,
        system: SystemId,
        environment: EnvironmentKind,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT settings FROM environment_settings WHERE system_id = $1 AND environment = $2",
        )
        .bind(system.0)
        .bind(environment.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok(row.try_get("settings")?)).transpose()
    }

    /// Replaces the settings of `system`'s `environment`, and logs them.
    pub async fn set_environment_settings(
        &self,
        actor: &str,
        system: SystemId,
        environment: EnvironmentKind,
        settings: &Value,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM environment_settings WHERE system_id = $1 AND environment = $2")
            .bind(system.0)
            .bind(environment.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO environment_settings (system_id, environment, settings, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(system.0)
        .bind(environment.as_str())
        .bind(settings.to_string())
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        let details = json!({ "environment": environment.as_str(), "settings": settings });
        log_entry(self, &mut tx, actor, "environment-settings", None, system, details, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// The endpoints that have at least one job without a report.
    pub async fn endpoints_with_open_jobs(&self) -> StoreResult<std::collections::HashSet<i64>> {
        let rows = sqlx::query("SELECT DISTINCT endpoint_id FROM jobs WHERE outcome IS NULL")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| Ok(row.try_get::<i64, _>(0)?)).collect()
    }
}
