//! The agents' API: enrolment, check-ins, inventories and job reports.
//!
//! Agents authenticate with their own credential (`Authorization: Bearer
//! pwa_…`), never with a person's token, and send their protocol version in
//! `x-patchwarden-protocol`. A malformed or oversized message is refused with
//! 4xx and a reason, and changes nothing; an unknown or revoked endpoint gets
//! 401.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use patchwarden_protocol::{
    CheckIn, CheckInAnswer, EnrolAnswer, EnrolRequest, JobReport, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION, SignedJob, VERSION_HEADER,
};
use patchwarden_store::{EndpointAuth, Enrolment};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::{AppState, secrets, work};

/// An agent's message as bytes: its protocol version checked, read within the
/// protocol's size limit.
#[derive(Debug)]
pub struct AgentBytes(pub Bytes);

impl FromRequest<AppState> for AgentBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_protocol(req.headers())?;
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(format!(
                    "the message is larger than the limit of {MAX_MESSAGE_BYTES} bytes"
                )))
            }
            Err(rejection) => {
                Err(ApiError::invalid(format!("the message could not be read: {rejection}")))
            }
        }
    }
}

/// An agent's message, parsed.
#[derive(Debug)]
pub struct AgentBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AgentBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let AgentBytes(bytes) = AgentBytes::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(AgentBody)
            .map_err(|err| ApiError::invalid(format!("the message is not valid: {err}")))
    }
}

fn check_protocol(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let sent = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    match sent {
        Some(version) if version == PROTOCOL_VERSION.to_string() => Ok(()),
        Some(other) => Err(ApiError::invalid(format!(
            "protocol version '{other}' is not spoken here; this server speaks {PROTOCOL_VERSION}"
        ))),
        None => {
            Err(ApiError::invalid(format!("send the header {VERSION_HEADER}: {PROTOCOL_VERSION}")))
        }
    }
}

/// The calling endpoint, by its credential.
#[derive(Clone, Debug)]
pub struct AgentCaller(pub EndpointAuth);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "no endpoint credential: send 'Authorization: Bearer CREDENTIAL'".to_owned(),
                )
            })?;
        let now = state.clock.now();
        let endpoint = state.agents.authenticate(&state.store, credential, now).await?;
        Ok(Self(endpoint))
    }
}

/// `GET /api/v1/agent/ca.pem`: the CA an enrolling agent checks against its token.
pub async fn ca(State(state): State<AppState>) -> ApiResult<Response> {
    match &state.agents.ca_pem {
        Some(pem) => {
            Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem.clone()).into_response())
        }
        None => Err(ApiError::NotFound("this server speaks plain HTTP and has no CA".to_owned())),
    }
}

/// `POST /api/v1/agent/enrol`: a token for a credential and the signing key.
pub async fn enrol(
    State(state): State<AppState>,
    AgentBody(body): AgentBody<EnrolRequest>,
) -> ApiResult<Json<EnrolAnswer>> {
    let hostname = body.hostname.trim();
    let hostname_ok = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !hostname_ok {
        return Err(ApiError::invalid_field(
            "hostname",
            format!("hostname '{hostname}' is not a host name"),
        ));
    }
    let machine_id = body.machine_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
    if machine_id.is_some_and(|id| id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(ApiError::invalid_field(
            "machine_id",
            "machine_id must be up to 64 hexadecimal digits",
        ));
    }
    let token = patchwarden_protocol::EnrolmentToken::parse(&body.token)
        .map_err(|message| ApiError::invalid_field("token", message))?;

    let credential = secrets::generate(patchwarden_protocol::enrol::CREDENTIAL_PREFIX)
        .map_err(ApiError::internal)?;
    let now = state.clock.now();
    let outcome = state
        .store
        .enrol(
            &secrets::digest(&token.secret),
            &secrets::digest(credential.expose()),
            hostname,
            machine_id,
            now,
        )
        .await?;
    match outcome {
        Enrolment::Enrolled { endpoint, system_name } => Ok(Json(EnrolAnswer {
            endpoint_id: endpoint.id,
            credential: credential.expose().to_owned(),
            signing_key: state.agents.job_key.public().to_hex(),
            system: system_name,
            environment: work::protocol_environment(endpoint.environment),
            server_time: now,
        })),
        Enrolment::AlreadyUsed => Err(ApiError::conflict(
            "this enrolment token was used already; the attempt is logged: ask for a new token",
        )),
        Enrolment::Expired => {
            Err(ApiError::conflict("this enrolment token has expired: ask for a new token"))
        }
        Enrolment::Unknown => {
            Err(ApiError::Unauthenticated("the enrolment token is not valid".to_owned()))
        }
    }
}

/// `POST /api/v1/agent/check-in`: answered from memory when nothing changed.
pub async fn check_in(
    State(state): State<AppState>,
    AgentCaller(endpoint): AgentCaller,
    AgentBody(body): AgentBody<CheckIn>,
) -> ApiResult<Json<CheckInAnswer>> {
    let now = state.clock.now();
    state.agents.saw(endpoint.id, now, offset_ms(body.agent_time, now));

    let send_inventory = body.inventory_hash != endpoint.inventory_hash;
    let jobs = if state.agents.may_have_jobs(&state.store, endpoint.id, now).await? {
        state
            .store
            .open_jobs(endpoint.id)
            .await?
            .into_iter()
            .filter(|job| job.sequence > body.last_job_sequence && job.window_end > now)
            .map(|job| SignedJob { payload: job.payload, signature: job.signature })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(CheckInAnswer {
        send_inventory,
        jobs,
        server_time: now,
        interval_seconds: state.agents.interval_seconds,
    }))
}

/// `PUT /api/v1/agent/inventory`: the endpoint's new inventory, kept as a delta.
pub async fn inventory(
    State(state): State<AppState>,
    AgentCaller(endpoint): AgentCaller,
    AgentBytes(body): AgentBytes,
) -> ApiResult<StatusCode> {
    work::accept_inventory(&state, &endpoint, &body, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/agent/jobs/{id}/report`: a job's one report.
pub async fn report(
    State(state): State<AppState>,
    AgentCaller(endpoint): AgentCaller,
    Path(id): Path<String>,
    AgentBody(report): AgentBody<JobReport>,
) -> ApiResult<Json<Value>> {
    let id: i64 =
        id.parse().map_err(|_| ApiError::NotFound(format!("job '{id}' does not exist")))?;
    let job = match state.store.job(id).await {
        Ok(job) if job.endpoint == endpoint.id => job,
        Ok(_) | Err(patchwarden_store::StoreError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("job {id} does not exist for this endpoint")));
        }
        Err(other) => return Err(other.into()),
    };
    if report.job_id != job.id || report.sequence != job.sequence {
        return Err(ApiError::invalid(format!(
            "the report names job {} sequence {}, the path job {} sequence {}",
            report.job_id, report.sequence, job.id, job.sequence
        )));
    }
    let recorded = work::record_report(&state, &job, &report, state.clock.now()).await?;
    Ok(Json(json!({ "recorded": recorded })))
}

/// An agent's clock minus the server's, in milliseconds, saturated.
fn offset_ms(agent: Timestamp, server: Timestamp) -> i64 {
    let millis = agent.duration_since(server).as_millis();
    i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX })
}
