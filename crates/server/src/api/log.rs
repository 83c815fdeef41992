//! The control log over HTTP: entries, the chain check, and exports.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patchwarden_core::LogEntry;
use patchwarden_core::log::format_instant;
use patchwarden_store::LogFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, views};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    request: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// The most entries one page returns.
const MAX_PAGE: i64 = 10_000;

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(query): QueryParams<LogQuery>,
) -> ApiResult<Json<Value>> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("limit {limit} must be 1 to {MAX_PAGE}"),
        ));
    }
    let filter = LogFilter { request: query.request, after_seq: query.after, limit: Some(limit) };
    let entries: Vec<Value> =
        state.store.log_entries(&filter).await?.iter().map(views::entry).collect();
    Ok(Json(json!({ "entries": entries })))
}

pub async fn verify(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let verification = state.store.verify_log().await?;
    Ok(Json(json!({
        "intact": verification.is_intact(),
        "entries": verification.summary.entries,
        "head_seq": verification.summary.head.seq,
        "head_hash": verification.summary.head.hash,
        "first_break": verification.chain_break.map(|b| json!({ "seq": b.seq, "reason": b.reason })),
        "head_mismatch": verification.head_mismatch,
        "request_mismatches": verification.request_mismatches,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    request: Option<i64>,
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn csv_row(entry: &LogEntry) -> String {
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let state =
        |s: Option<patchwarden_core::State>| s.map(|s| s.as_str().to_owned()).unwrap_or_default();
    let fields = [
        entry.seq.to_string(),
        format_instant(entry.at),
        entry.actor.clone(),
        entry.action.clone(),
        number(entry.request),
        number(entry.system),
        state(entry.state_before),
        state(entry.state_after),
        entry.policy_version.to_string(),
        entry.details.clone(),
        entry.prev_hash.clone(),
        entry.hash.clone(),
    ];
    let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    row.join(",") + "\r\n"
}

pub async fn export(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(query): QueryParams<ExportQuery>,
) -> ApiResult<Response> {
    let format = query.format.as_deref().unwrap_or("json");
    let filter = LogFilter { request: query.request, ..LogFilter::default() };
    let entries = state.store.log_entries(&filter).await?;
    match format {
        "json" => {
            let entries: Vec<Value> = entries.iter().map(views::entry).collect();
            Ok(Json(json!({ "entries": entries })).into_response())
        }
        "csv" => {
            let mut out = String::from(
                "seq,at,actor,action,request,system,state_before,state_after,policy_version,details,prev_hash,hash\r\n",
            );
            for entry in &entries {
                out.push_str(&csv_row(entry));
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        other => Err(ApiError::invalid_field(
            "format",
            format!("unknown export format '{other}': use csv or json"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(r#"{"a":1,"b":"x"}"#), r#""{""a"":1,""b"":""x""}""#);
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
