//! Endpoints for people: enrolment tokens, the enrolled machines with their
//! inventories and jobs, revocation, and each environment's work settings.

use axum::Json;
use axum::extract::{Path, State};
use jiff::SignedDuration;
use patchwarden_core::Role;
use patchwarden_core::system::EnvironmentKind;
use patchwarden_protocol::EnrolmentToken;
use patchwarden_protocol::enrol::ENROLMENT_PREFIX;
use patchwarden_protocol::inventory::Inventory;
use patchwarden_store::{Endpoint, JobRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::{QueryParams, RawBody};
use crate::error::{ApiError, ApiResult};
use crate::work::{self, WorkSettings};
use crate::{AppState, secrets};

fn environment(field: &str, raw: &str) -> ApiResult<EnvironmentKind> {
    match raw {
        "test" => Ok(EnvironmentKind::Test),
        "prod" => Ok(EnvironmentKind::Prod),
        other => Err(ApiError::invalid_field(
            field,
            format!("environment '{other}' is not test or prod"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    system: String,
    environment: String,
}

/// `POST /api/v1/endpoints/enrolment-tokens`: a single-use, expiring token.
pub async fn enrolment_token(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::SecurityOfficer], "make enrolment tokens")?;
    let body: TokenBody = raw.parse()?;
    let environment = environment("environment", &body.environment)?;
    let system = state.store.system_by_name(&body.system).await.map_err(|err| match err {
        patchwarden_store::StoreError::NotFound(message) => {
            ApiError::invalid_field("system", message)
        }
        other => other.into(),
    })?;
    let secret = secrets::generate(ENROLMENT_PREFIX).map_err(ApiError::internal)?;
    let now = state.clock.now();
    let expires_at = now + SignedDuration::from_hours(i64::from(state.agents.enrolment_hours));
    state
        .store
        .issue_enrolment_token(
            caller.account.name.as_str(),
            caller.account.id,
            system.id,
            environment,
            &secrets::digest(secret.expose()),
            expires_at,
            now,
        )
        .await?;
    let token = EnrolmentToken {
        secret: secret.expose().to_owned(),
        ca_fingerprint: state.agents.ca_fingerprint.clone(),
    };
    Ok(Json(json!({
        "token": token.to_text(),
        "system": system.name,
        "environment": environment.as_str(),
        "expires_at": expires_at,
    })))
}

fn endpoint_view(endpoint: &Endpoint, system: &str) -> Value {
    json!({
        "id": endpoint.id,
        "system": system,
        "environment": endpoint.environment.as_str(),
        "hostname": endpoint.hostname,
        "machine_id": endpoint.machine_id,
        "enrolled_at": endpoint.enrolled_at,
        "last_seen_at": endpoint.last_seen_at,
        "clock_offset_ms": endpoint.clock_offset_ms,
        "inventory_hash": endpoint.inventory_hash,
        "inventory_at": endpoint.inventory_at,
        "revoked_at": endpoint.revoked_at,
    })
}

/// A summary of an inventory: what a person looks at first.
fn inventory_summary(inventory: &Inventory) -> Value {
    let pending: Vec<Value> = inventory
        .pending
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "architecture": p.architecture,
                "installed": p.installed_version,
                "candidate": p.candidate_version,
                "security": p.security,
                "kept_back": p.kept_back,
            })
        })
        .collect();
    json!({
        "package_manager": inventory.package_manager,
        "os": inventory.facts.os,
        "running_kernel": inventory.facts.running_kernel,
        "newest_installed_kernel": inventory.facts.newest_installed_kernel,
        "reboot": inventory.facts.reboot,
        "competing_updaters": inventory.facts.competing_updaters,
        "packages": inventory.packages.len(),
        "pending": pending,
        "pending_security": inventory.pending.iter().filter(|p| p.security).count(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    system: Option<String>,
}

/// `GET /api/v1/endpoints`.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let system = match &query.system {
        Some(name) => Some(state.store.system_by_name(name).await?.id),
        None => None,
    };
    let systems = state.store.systems().await?;
    let shown: Vec<Value> = state
        .store
        .endpoints(system)
        .await?
        .iter()
        .map(|e| {
            let name = systems.iter().find(|s| s.id == e.system).map_or("", |s| s.name.as_str());
            endpoint_view(e, name)
        })
        .collect();
    Ok(Json(json!({ "endpoints": shown })))
}

fn endpoint_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::NotFound(format!("endpoint '{raw}' does not exist")))
}

/// `GET /api/v1/endpoints/{id}`: the endpoint, its inventory's summary, its jobs.
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let endpoint = state.store.endpoint(endpoint_id(&id)?).await?;
    let system = state.store.system(endpoint.system).await?;
    let inventory = latest_inventory(&state, endpoint.id).await?;
    Ok(Json(json!({
        "endpoint": endpoint_view(&endpoint, system.name.as_str()),
        "inventory": inventory.as_ref().map(inventory_summary),
    })))
}

async fn latest_inventory(state: &AppState, endpoint: i64) -> ApiResult<Option<Inventory>> {
    match state.store.endpoint_inventory(endpoint).await? {
        Some((_, text)) => serde_json::from_str(&text).map(Some).map_err(|err| {
            ApiError::internal(format!("stored inventory of endpoint {endpoint}: {err}"))
        }),
        None => Ok(None),
    }
}

/// `GET /api/v1/endpoints/{id}/inventory`: the whole latest inventory.
pub async fn inventory(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&id)?;
    state.store.endpoint(id).await?;
    let inventory = latest_inventory(&state, id).await?;
    Ok(Json(json!({ "endpoint": id, "inventory": inventory })))
}

/// `GET /api/v1/endpoints/{id}/changes`: what each inventory changed.
pub async fn changes(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&id)?;
    state.store.endpoint(id).await?;
    let changes: Vec<Value> = state
        .store
        .inventory_changes(id)
        .await?
        .into_iter()
        .map(|(at, delta)| json!({ "received_at": at, "delta": delta }))
        .collect();
    Ok(Json(json!({ "endpoint": id, "changes": changes })))
}

/// `POST /api/v1/endpoints/{id}/revoke`: the credential stops working.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::SecurityOfficer], "revoke endpoints")?;
    let id = endpoint_id(&id)?;
    state.store.revoke_endpoint(caller.account.name.as_str(), id, state.clock.now()).await?;
    state.agents.forget(id);
    Ok(Json(json!({ "endpoint": id, "revoked": true })))
}

/// `GET /api/v1/systems/{name}/environments/{env}`: how that environment is worked on.
pub async fn settings(
    State(state): State<AppState>,
    _caller: Caller,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let environment = environment("environment", &env).map_err(|_| {
        ApiError::NotFound(format!("environment '{env}' does not exist: it is test or prod"))
    })?;
    let system = state.store.system_by_name(&name).await?;
    let settings = work::settings_for(&state, system.id, environment).await?;
    Ok(Json(json!({ "system": system.name, "environment": env, "settings": settings })))
}

/// `PUT /api/v1/systems/{name}/environments/{env}` (security officer).
pub async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, env)): Path<(String, String)>,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    let environment = environment("environment", &env).map_err(|_| {
        ApiError::NotFound(format!("environment '{env}' does not exist: it is test or prod"))
    })?;
    let system = state.store.system_by_name(&name).await?;
    caller.require_any(&[Role::SecurityOfficer], "set how environments are worked on")?;
    let settings: WorkSettings = raw.parse()?;
    check_settings(&settings)?;
    let value = serde_json::to_value(&settings).map_err(ApiError::internal)?;
    state
        .store
        .set_environment_settings(
            caller.account.name.as_str(),
            system.id,
            environment,
            &value,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "system": system.name, "environment": env, "settings": settings })))
}

fn check_settings(settings: &WorkSettings) -> ApiResult<()> {
    use patchwarden_protocol::job::CheckKind;
    for (index, check) in settings.health_checks.iter().enumerate() {
        let field = format!("health_checks[{index}]");
        let bad = |message: String| ApiError::invalid_field(&field, format!("{field}: {message}"));
        if !(1..=3600).contains(&check.timeout_seconds) {
            return Err(bad("timeout_seconds must be 1 to 3600".to_owned()));
        }
        if check.retries > 100 || check.retry_delay_seconds > 3600 {
            return Err(bad(
                "retries must be at most 100 and retry_delay_seconds at most 3600".to_owned()
            ));
        }
        match &check.check {
            CheckKind::SystemdUnit { unit } if unit.trim().is_empty() => {
                return Err(bad("the unit is empty".to_owned()));
            }
            CheckKind::TcpPort { host, port } if host.trim().is_empty() || *port == 0 => {
                return Err(bad("a TCP check needs a host and a port above 0".to_owned()));
            }
            CheckKind::Http { url }
                if !url.starts_with("http://") && !url.starts_with("https://") =>
            {
                return Err(bad(format!("'{url}' is not an http:// or https:// URL")));
            }
            CheckKind::Command { argv }
                if argv.first().is_none_or(|program| !program.starts_with('/')) =>
            {
                return Err(bad("a command check names its program by absolute path".to_owned()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn job_view(job: &JobRecord) -> Value {
    let report: Option<Value> =
        job.report.as_deref().and_then(|text| serde_json::from_str(text).ok());
    json!({
        "id": job.id,
        "endpoint": job.endpoint,
        "environment": job.environment.as_str(),
        "round": job.round,
        "sequence": job.sequence,
        "created_at": job.created_at,
        "window_end": job.window_end,
        "outcome": job.outcome,
        "report": report,
    })
}

/// `GET /api/v1/requests/{id}/jobs`: the jobs issued for a request, with their reports.
pub async fn request_jobs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = patchwarden_core::RequestId(
        id.parse().map_err(|_| ApiError::NotFound(format!("request '{id}' does not exist")))?,
    );
    state.store.request(id).await?;
    let jobs: Vec<Value> = state.store.request_jobs(id).await?.iter().map(job_view).collect();
    Ok(Json(json!({ "request": id.0, "jobs": jobs })))
}
