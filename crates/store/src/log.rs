//! The control log in the database: appending inside a caller's transaction,
//! reading it back, and checking the chain.
//!
//! There is deliberately no function here that updates or deletes an entry,
//! and the schema's triggers refuse both. Appends lock the single `log_head`
//! row first, which serialises them across connections and servers.

use std::collections::BTreeMap;

use patchwarden_core::log::ChainVerifier;
use patchwarden_core::{ChainBreak, ChainHead, ChainSummary, LogDraft, LogEntry, State};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Backend, FaultPoint, Store, StoreError, StoreResult, from_micros, to_micros};

/// Locks the log's head for this transaction and returns it.
pub(crate) async fn lock_head(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
) -> StoreResult<ChainHead> {
    let sql = match store.backend {
        Backend::Sqlite => "SELECT seq, hash FROM log_head WHERE id = 1",
        Backend::Postgres => "SELECT seq, hash FROM log_head WHERE id = 1 FOR UPDATE",
    };
    let row = sqlx::query(sql)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::integrity("the log head row is missing"))?;
    Ok(ChainHead { seq: row.try_get(0)?, hash: row.try_get(1)? })
}

/// Appends one entry after `head` and moves the head; the caller commits.
pub(crate) async fn append(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    head: &mut ChainHead,
    draft: LogDraft,
) -> StoreResult<LogEntry> {
    store.fault_at(FaultPoint::BeforeLogAppend)?;
    let entry = LogEntry::seal(draft, head);
    sqlx::query(
        "INSERT INTO control_log (seq, format, at, actor, action, request_id, system_id, \
         state_before, state_after, details, policy_version, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(entry.seq)
    .bind(i64::from(entry.format))
    .bind(to_micros(entry.at))
    .bind(entry.actor.clone())
    .bind(entry.action.clone())
    .bind(entry.request)
    .bind(entry.system)
    .bind(entry.state_before.map(|s| s.as_str().to_owned()))
    .bind(entry.state_after.map(|s| s.as_str().to_owned()))
    .bind(entry.details.clone())
    .bind(i64::from(entry.policy_version))
    .bind(entry.prev_hash.clone())
    .bind(entry.hash.clone())
    .execute(&mut **tx)
    .await?;
    let moved = sqlx::query("UPDATE log_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
        .bind(entry.seq)
        .bind(entry.hash.clone())
        .bind(head.seq)
        .execute(&mut **tx)
        .await?;
    if moved.rows_affected() != 1 {
        return Err(StoreError::Contended("the control log moved during this write".to_owned()));
    }
    *head = entry.head();
    Ok(entry)
}

const ENTRY_COLUMNS: &str = "seq, format, at, actor, action, request_id, system_id, \
     state_before, state_after, details, policy_version, prev_hash, hash";

fn entry_from_row(row: &AnyRow) -> StoreResult<LogEntry> {
    let seq: i64 = row.try_get("seq")?;
    let state = |column: &str| -> StoreResult<Option<State>> {
        let raw: Option<String> = row.try_get(column)?;
        raw.map(|raw| {
            raw.parse::<State>()
                .map_err(|err| StoreError::integrity(format!("log entry {seq}: {err}")))
        })
        .transpose()
    };
    let number = |column: &str| -> StoreResult<u32> {
        let raw: i64 = row.try_get(column)?;
        u32::try_from(raw).map_err(|_| {
            StoreError::integrity(format!("log entry {seq}: {column} {raw} out of range"))
        })
    };
    Ok(LogEntry {
        seq,
        format: number("format")?,
        at: from_micros(row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        request: row.try_get("request_id")?,
        system: row.try_get("system_id")?,
        state_before: state("state_before")?,
        state_after: state("state_after")?,
        details: row.try_get("details")?,
        policy_version: number("policy_version")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Which entries to read.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub request: Option<i64>,
    /// Only entries with a larger sequence number.
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

/// How many rows one verification page reads.
const PAGE: i64 = 1000;

/// The result of checking the whole log and what it says of the requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerification {
    pub summary: ChainSummary,
    /// The first break in the chain, if any.
    pub chain_break: Option<ChainBreak>,
    /// The stored head row, if it disagrees with the chain's last entry.
    pub head_mismatch: Option<String>,
    /// Requests whose stored state is not where their log entries leave them.
    pub request_mismatches: Vec<String>,
}

impl LogVerification {
    pub fn is_intact(&self) -> bool {
        self.chain_break.is_none()
            && self.head_mismatch.is_none()
            && self.request_mismatches.is_empty()
    }
}

impl Store {
    /// Entries in sequence order.
    pub async fn log_entries(&self, filter: &LogFilter) -> StoreResult<Vec<LogEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM control_log \
             WHERE ($1 IS NULL OR request_id = $1) AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.request)
            .bind(filter.after_seq.unwrap_or(0))
            .bind(filter.limit.unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Checks the whole chain page by page, the head row, and that each
    /// request's stored state is the state its last entry left it in.
    pub async fn verify_log(&self) -> StoreResult<LogVerification> {
        let mut verifier = ChainVerifier::new();
        let mut chain_break = None;
        let mut last_state: BTreeMap<i64, State> = BTreeMap::new();
        let mut after = i64::MIN;
        'pages: loop {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM control_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(PAGE)
                .fetch_all(self.pool())
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let entry = match entry_from_row(row) {
                    Ok(entry) => entry,
                    Err(err) => {
                        let seq = row.try_get::<i64, _>("seq").unwrap_or(after);
                        chain_break = Some(ChainBreak { seq, reason: err.to_string() });
                        break 'pages;
                    }
                };
                after = entry.seq;
                if let Err(broken) = verifier.check(&entry) {
                    chain_break = Some(broken);
                    break 'pages;
                }
                if let (Some(request), Some(state)) = (entry.request, entry.state_after) {
                    last_state.insert(request, state);
                }
            }
        }
        let summary = verifier.finish();

        let head_row = sqlx::query("SELECT seq, hash FROM log_head WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let head_mismatch = match head_row {
            None => Some("the log head row is missing".to_owned()),
            Some(row) => {
                let head = ChainHead { seq: row.try_get(0)?, hash: row.try_get(1)? };
                let agrees = head == summary.head;
                (!agrees && chain_break.is_none()).then(|| {
                    format!(
                        "the head row says entry {} ({}) but the chain ends at entry {} ({})",
                        head.seq, head.hash, summary.head.seq, summary.head.hash
                    )
                })
            }
        };

        let mut request_mismatches = Vec::new();
        if chain_break.is_none() {
            let rows = sqlx::query("SELECT id, state FROM requests ORDER BY id")
                .fetch_all(self.pool())
                .await?;
            for row in rows {
                let id: i64 = row.try_get(0)?;
                let stored: String = row.try_get(1)?;
                match last_state.get(&id) {
                    Some(logged) if logged.as_str() == stored => {}
                    Some(logged) => request_mismatches.push(format!(
                        "request {id} is stored as '{stored}' but its log leaves it '{logged}'"
                    )),
                    None => request_mismatches
                        .push(format!("request {id} is stored but has no log entry")),
                }
            }
        }
        Ok(LogVerification { summary, chain_break, head_mismatch, request_mismatches })
    }
}
