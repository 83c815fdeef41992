//! Systems over HTTP: created by security officers, read by everyone.

use axum::Json;
use axum::extract::{Path, State};
use patchwarden_core::system::{NewSystem, SystemName, TimeZoneName};
use patchwarden_core::{Email, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, instant, views};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSystemBody {
    name: String,
    owner: String,
    deputy: Option<String>,
    #[serde(default)]
    stakeholders: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    time_zone: Option<String>,
}

async fn id_of(
    state: &AppState,
    field: &str,
    name: &str,
) -> ApiResult<patchwarden_core::AccountId> {
    match state.store.account_by_name(name).await {
        Ok(account) => Ok(account.id),
        Err(patchwarden_store::StoreError::NotFound(_)) => {
            Err(ApiError::invalid_field(field, format!("{field}: account '{name}' does not exist")))
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::SecurityOfficer], "create systems")?;
    let body: CreateSystemBody = raw.parse()?;
    let name = SystemName::parse(&body.name).map_err(|m| ApiError::invalid_field("name", m))?;
    let zone = body.time_zone.as_deref().unwrap_or("UTC");
    let time_zone =
        TimeZoneName::parse(zone).map_err(|m| ApiError::invalid_field("time_zone", m))?;
    instant::check_zone(zone).map_err(|m| ApiError::invalid_field("time_zone", m))?;
    let notify = body
        .notify
        .iter()
        .map(|raw| Email::parse(raw).map_err(|m| ApiError::invalid_field("notify", m)))
        .collect::<ApiResult<Vec<_>>>()?;
    let owner = id_of(&state, "owner", &body.owner).await?;
    let deputy = match &body.deputy {
        Some(name) => Some(id_of(&state, "deputy", name).await?),
        None => None,
    };
    let mut stakeholders = Vec::new();
    for name in &body.stakeholders {
        stakeholders.push(id_of(&state, "stakeholders", name).await?);
    }
    let new = NewSystem { name, owner, deputy, stakeholders, notify, time_zone };
    let system =
        state.store.create_system(caller.account.name.as_str(), new, state.clock.now()).await?;
    let names = views::Names::new(&state.store.accounts().await?);
    Ok(Json(json!({ "system": views::system(&system, &names) })))
}

pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let names = views::Names::new(&state.store.accounts().await?);
    let systems: Vec<Value> =
        state.store.systems().await?.iter().map(|s| views::system(s, &names)).collect();
    Ok(Json(json!({ "systems": systems })))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let system = state.store.system_by_name(&name).await?;
    let names = views::Names::new(&state.store.accounts().await?);
    Ok(Json(json!({ "system": views::system(&system, &names) })))
}

pub async fn documentation(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let system = state.store.system_by_name(&name).await?;
    let names = views::Names::new(&state.store.accounts().await?);
    let revisions: Vec<Value> = state
        .store
        .documentation_revisions(system.id)
        .await?
        .iter()
        .map(|r| {
            json!({
                "number": r.number,
                "summary": r.summary,
                "request": r.request,
                "recorded_by": names.of(r.recorded_by),
                "recorded_at": r.recorded_at,
            })
        })
        .collect();
    Ok(Json(json!({ "system": system.name, "revisions": revisions })))
}
