//! Update requests over HTTP: filing, reading, and one route per lifecycle verb.
//!
//! A verb's handler checks in the design's order: the caller (401, by the
//! extractor), the request (404), the caller's standing (403, coarse here and
//! exact in the core), the body (422), then the core's own checks (403, 422,
//! 409) inside the store's transaction.

use axum::Json;
use axum::extract::{Path, State};
use patchwarden_core::lifecycle::{self, Command, WorkReport};
use patchwarden_core::request::{
    Criticality, DecisionKind, NewProblem, PackageTarget, PlanInput, RequestFields,
};
use patchwarden_core::system::EnvironmentKind;
use patchwarden_core::text::Text;
use patchwarden_core::{AccountId, Email, RequestId, Role, Verb};
use patchwarden_store::{RequestFilter, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::{QueryParams, RawBody};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, instant, views};

/// Parses a request id from the path; anything else is an unknown request.
pub fn request_id(raw: &str) -> ApiResult<RequestId> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(RequestId)
        .ok_or_else(|| ApiError::NotFound(format!("request '{raw}' does not exist")))
}

/// The fields of a request as the API takes them: people by name, instants
/// with an offset or zone, packages as `NAME=VERSION`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsBody {
    pub officer: Option<String>,
    pub operator: Option<String>,
    pub test_date: Option<String>,
    pub prod_date: Option<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    pub purpose: Option<String>,
    pub downtime: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub system: String,
    #[serde(flatten)]
    pub fields: FieldsBody,
}

async fn account_id(store: &Store, field: &str, name: &str) -> ApiResult<AccountId> {
    match store.account_by_name(name).await {
        Ok(account) => Ok(account.id),
        Err(patchwarden_store::StoreError::NotFound(_)) => {
            Err(ApiError::invalid_field(field, format!("{field}: account '{name}' does not exist")))
        }
        Err(other) => Err(other.into()),
    }
}

fn text(field: &str, raw: Option<&String>) -> ApiResult<Option<Text>> {
    raw.map(|raw| {
        Text::parse(field, raw).map_err(|message| ApiError::invalid_field(field, message))
    })
    .transpose()
}

fn required_text(field: &str, raw: &str) -> ApiResult<Text> {
    Text::parse(field, raw).map_err(|message| ApiError::invalid_field(field, message))
}

fn when(field: &str, raw: Option<&String>) -> ApiResult<Option<jiff::Timestamp>> {
    raw.map(|raw| {
        instant::parse(field, raw).map_err(|message| ApiError::invalid_field(field, message))
    })
    .transpose()
}

async fn fields(store: &Store, body: &FieldsBody) -> ApiResult<RequestFields> {
    let officer = match &body.officer {
        Some(name) => Some(account_id(store, "officer", name).await?),
        None => None,
    };
    let operator = match &body.operator {
        Some(name) => Some(account_id(store, "operator", name).await?),
        None => None,
    };
    let packages = body
        .packages
        .iter()
        .map(|raw| {
            PackageTarget::parse(raw)
                .map_err(|message| ApiError::invalid_field("packages", message))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(RequestFields {
        officer,
        operator,
        test_date: when("test_date", body.test_date.as_ref())?,
        prod_date: when("prod_date", body.prod_date.as_ref())?,
        packages,
        purpose: text("purpose", body.purpose.as_ref())?,
        downtime: text("downtime", body.downtime.as_ref())?,
        description: text("description", body.description.as_ref())?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemBody {
    description: String,
    criticality: String,
    environment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    passed: bool,
    notes: Option<String>,
    problem: Option<ProblemBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    decision: String,
    reasoning: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    start: String,
    duration_minutes: u32,
    #[serde(default)]
    participants: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentBody {
    summary: String,
}

fn problem(
    body: &ProblemBody,
    default_environment: Option<EnvironmentKind>,
) -> ApiResult<NewProblem> {
    let criticality: Criticality = body
        .criticality
        .parse()
        .map_err(|message: String| ApiError::invalid_field("problem.criticality", message))?;
    let environment = match (&body.environment, default_environment) {
        (Some(raw), _) => raw
            .parse()
            .map_err(|message: String| ApiError::invalid_field("problem.environment", message))?,
        (None, Some(default)) => default,
        (None, None) => {
            return Err(ApiError::invalid_field(
                "environment",
                "environment is missing: say test or prod",
            ));
        }
    };
    Ok(NewProblem {
        description: required_text("description", &body.description)?,
        criticality,
        environment,
    })
}

fn report(body: ReportBody, environment: EnvironmentKind) -> ApiResult<WorkReport> {
    Ok(WorkReport {
        passed: body.passed,
        notes: text("notes", body.notes.as_ref())?,
        problem: body.problem.as_ref().map(|p| problem(p, Some(environment))).transpose()?,
    })
}

async fn plan(store: &Store, body: PlanBody) -> ApiResult<PlanInput> {
    let mut participants = Vec::new();
    for name in &body.participants {
        participants.push(account_id(store, "participants", name).await?);
    }
    let recipients = body
        .recipients
        .iter()
        .map(|raw| {
            Email::parse(raw).map_err(|message| ApiError::invalid_field("recipients", message))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(PlanInput {
        start: instant::parse("start", &body.start)
            .map_err(|m| ApiError::invalid_field("start", m))?,
        duration_minutes: body.duration_minutes,
        participants,
        recipients,
    })
}

/// Turns a verb and its body into the core's command.
async fn command(store: &Store, verb: Verb, body: &RawBody) -> ApiResult<Command> {
    let command = match verb {
        Verb::Create => {
            return Err(ApiError::NotFound("create is POST /api/v1/requests".to_owned()));
        }
        Verb::Amend => {
            Command::Amend { fields: fields(store, &body.parse::<FieldsBody>()?).await? }
        }
        Verb::Submit => Command::Submit,
        Verb::Approve => {
            let body: CommentBody = body.parse()?;
            Command::Approve { comment: text("comment", body.comment.as_ref())? }
        }
        Verb::Reject => Command::Reject {
            reason: required_text("reason", &body.parse::<ReasonBody>()?.reason)?,
        },
        Verb::StartTest => Command::StartTest,
        Verb::RecordTest => {
            Command::RecordTest { report: report(body.parse()?, EnvironmentKind::Test)? }
        }
        Verb::Decide => {
            let body: DecideBody = body.parse()?;
            let decision: DecisionKind = body
                .decision
                .parse()
                .map_err(|message: String| ApiError::invalid_field("decision", message))?;
            Command::Decide { decision, reasoning: required_text("reasoning", &body.reasoning)? }
        }
        Verb::AcknowledgeTest => Command::AcknowledgeTest,
        Verb::ProposePlan => Command::ProposePlan { plan: plan(store, body.parse()?).await? },
        Verb::AcceptPlan => Command::AcceptPlan,
        Verb::ApprovePlan => Command::ApprovePlan,
        Verb::ConfirmPresence => Command::ConfirmPresence,
        Verb::StartProduction => Command::StartProduction,
        Verb::RecordProduction => {
            Command::RecordProduction { report: report(body.parse()?, EnvironmentKind::Prod)? }
        }
        Verb::Document => Command::Document {
            summary: required_text("summary", &body.parse::<DocumentBody>()?.summary)?,
        },
        Verb::Close => Command::Close,
        Verb::Cancel => Command::Cancel {
            reason: required_text("reason", &body.parse::<ReasonBody>()?.reason)?,
        },
        Verb::RevisePlan => Command::RevisePlan { plan: plan(store, body.parse()?).await? },
        Verb::Pause => {
            Command::Pause { reason: required_text("reason", &body.parse::<ReasonBody>()?.reason)? }
        }
        Verb::Resume => Command::Resume,
        Verb::Problem => Command::Problem { problem: problem(&body.parse()?, None)? },
        Verb::ReopenTest => {
            return Err(ApiError::NotFound(
                "reopen-test is the product's own step, taken when agents see a newer version"
                    .to_owned(),
            ));
        }
    };
    let takes_no_body = matches!(
        command,
        Command::Submit
            | Command::StartTest
            | Command::AcknowledgeTest
            | Command::AcceptPlan
            | Command::ApprovePlan
            | Command::ConfirmPresence
            | Command::StartProduction
            | Command::Close
            | Command::Resume
    );
    if takes_no_body {
        body.parse::<Nothing>()?;
    }
    Ok(command)
}

async fn request_view(
    state: &AppState,
    request: &patchwarden_core::UpdateRequest,
) -> ApiResult<Value> {
    let names = views::Names::new(&state.store.accounts().await?);
    let system = state.store.system(request.system).await?;
    Ok(views::request(request, system.name.as_str(), &names))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::SecurityOfficer], "file update requests")?;
    let body: CreateBody = raw.parse()?;
    let system = state.store.system_by_name(&body.system).await.map_err(|err| match err {
        patchwarden_store::StoreError::NotFound(message) => {
            ApiError::invalid_field("system", message)
        }
        other => other.into(),
    })?;
    let fields = fields(&state.store, &body.fields).await?;
    let now = state.clock.now();
    let (transition, entry) =
        state.store.create_request(caller.account.name.as_str(), system.id, fields, now).await?;
    Ok(Json(json!({
        "request": request_view(&state, &transition.request).await?,
        "log_entry": views::entry(&entry),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    system: Option<String>,
    state: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let system = match &query.system {
        Some(name) => Some(state.store.system_by_name(name).await?.id),
        None => None,
    };
    let wanted = query
        .state
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|message: String| ApiError::invalid_field("state", message))?;
    let requests = state.store.requests(&RequestFilter { system, state: wanted }).await?;
    let names = views::Names::new(&state.store.accounts().await?);
    let systems = state.store.systems().await?;
    let shown: Vec<Value> = requests
        .iter()
        .map(|request| {
            let system =
                systems.iter().find(|s| s.id == request.system).map_or("", |s| s.name.as_str());
            views::request(request, system, &names)
        })
        .collect();
    Ok(Json(json!({ "requests": shown })))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let request = state.store.request(request_id(&id)?).await?;
    Ok(Json(json!({ "request": request_view(&state, &request).await? })))
}

/// `GET /api/v1/requests/{id}/problems`: the problems found, in order.
pub async fn problems(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let request = state.store.request(request_id(&id)?).await?;
    let view = request_view(&state, &request).await?;
    Ok(Json(json!({ "request": request.id, "problems": view["problems"] })))
}

/// `GET /api/v1/requests/{id}/decisions`: the decisions taken, and one half-taken.
pub async fn decisions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let request = state.store.request(request_id(&id)?).await?;
    let view = request_view(&state, &request).await?;
    Ok(Json(json!({
        "request": request.id,
        "decisions": view["decisions"],
        "pending_decision": view["pending_decision"],
    })))
}

/// `POST /api/v1/requests/{id}/{verb}` for one verb.
pub async fn apply(
    state: AppState,
    caller: Caller,
    id: String,
    verb: Verb,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let id = request_id(&id)?;
    state.store.request(id).await?;
    lifecycle::refuse_admin_and_auditor(&caller.account)?;
    let command = command(&state.store, verb, &body).await?;
    let now = state.clock.now();
    let (transition, entry) =
        state.store.apply(caller.account.name.as_str(), id, command, now).await?;
    // The step is taken; jobs that fail to be issued now are issued by the sweep.
    if let Err(err) = crate::work::ensure_jobs(&state, &transition.request, now).await {
        tracing::warn!(request = %id, error = ?err, "jobs not issued yet");
    }
    Ok(Json(json!({
        "request": request_view(&state, &transition.request).await?,
        "log_entry": views::entry(&entry),
    })))
}
