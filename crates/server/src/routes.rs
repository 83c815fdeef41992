//! The route table: one list that builds both the router and the OpenAPI
//! document, so the document cannot describe a route that does not exist or
//! miss one that does.

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{MethodRouter, get, post, put};
use patchwarden_core::Verb;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::{accounts, agent, endpoints, log, policy, requests, systems};
use crate::auth::Caller;
use crate::body::RawBody;

/// One operation of the API.
pub struct Route {
    pub method: Method,
    pub path: String,
    pub operation_id: String,
    pub summary: String,
    pub tag: &'static str,
    /// Whether it answers without a token.
    pub public: bool,
    /// The JSON schema of its body, if it takes one.
    pub body: Option<Value>,
    pub handler: MethodRouter<AppState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.operation_id)
    }
}

fn route(
    method: Method,
    path: &str,
    operation_id: &str,
    summary: &str,
    tag: &'static str,
) -> Route {
    Route {
        method,
        path: path.to_owned(),
        operation_id: operation_id.to_owned(),
        summary: summary.to_owned(),
        tag,
        public: false,
        body: None,
        handler: MethodRouter::new(),
    }
}

impl Route {
    fn handler(mut self, handler: MethodRouter<AppState>) -> Self {
        self.handler = handler;
        self
    }

    fn body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    fn public(mut self) -> Self {
        self.public = true;
        self
    }

    /// An agent's message: described by the protocol crate, not here.
    fn agent_body(mut self) -> Self {
        self.body =
            Some(json!({ "type": "object", "description": "see the patchwarden-protocol crate" }));
        self
    }

    /// An agent's route: its own credential, not a person's token, and the
    /// protocol's message size limit.
    fn agent(mut self) -> Self {
        self.public = true;
        self.handler =
            self.handler.layer(DefaultBodyLimit::max(patchwarden_protocol::MAX_MESSAGE_BYTES));
        self
    }
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": properties })
}

fn instant() -> Value {
    json!({ "type": "string", "description": "RFC 3339 with an offset, or a civil time with [Zone/Name]" })
}

fn request_fields(required: &[&str], with_system: bool) -> Value {
    let mut properties = json!({
        "officer": string(), "operator": string(),
        "test_date": instant(), "prod_date": instant(),
        "packages": { "type": "array", "items": { "type": "string", "description": "NAME=VERSION" } },
        "purpose": string(), "downtime": string(), "description": string(),
    });
    if with_system {
        properties["system"] = string();
    }
    object(required, properties)
}

fn problem_schema() -> Value {
    object(
        &["description", "criticality"],
        json!({
            "description": string(),
            "criticality": { "enum": ["low", "medium", "high", "critical"] },
            "environment": { "enum": ["test", "prod"] },
        }),
    )
}

fn plan_schema() -> Value {
    object(
        &["start", "duration_minutes"],
        json!({
            "start": instant(),
            "duration_minutes": { "type": "integer", "minimum": 1 },
            "participants": { "type": "array", "items": string() },
            "recipients": { "type": "array", "items": string() },
        }),
    )
}

/// The body schema of each lifecycle verb; `None` for verbs without one.
fn verb_body(verb: Verb) -> Option<Value> {
    let reason = || object(&["reason"], json!({ "reason": string() }));
    let report = || {
        object(
            &["passed"],
            json!({ "passed": { "type": "boolean" }, "notes": string(), "problem": problem_schema() }),
        )
    };
    match verb {
        Verb::Amend => Some(request_fields(&[], false)),
        Verb::Approve => Some(object(&[], json!({ "comment": string() }))),
        Verb::Reject | Verb::Cancel | Verb::Pause => Some(reason()),
        Verb::RecordTest | Verb::RecordProduction => Some(report()),
        Verb::Decide => Some(object(
            &["decision", "reasoning"],
            json!({
                "decision": { "enum": ["proceed", "abandon", "roll-back", "accept"] },
                "reasoning": string(),
            }),
        )),
        Verb::ProposePlan | Verb::RevisePlan => Some(plan_schema()),
        Verb::Document => Some(object(&["summary"], json!({ "summary": string() }))),
        Verb::Problem => Some(problem_schema()),
        _ => None,
    }
}

fn verb_summary(verb: Verb) -> &'static str {
    match verb {
        Verb::Create => "file a draft",
        Verb::Amend => "fill in or change a draft's fields",
        Verb::Submit => "submit a complete draft for the owner's approval",
        Verb::Approve => "approve as the system's owner",
        Verb::Reject => "reject as the system's owner",
        Verb::StartTest => "start test work (assigned operator)",
        Verb::RecordTest => "record the test's outcome (assigned operator)",
        Verb::Decide => "decide after a failure: proceed, abandon, roll-back or accept",
        Verb::AcknowledgeTest => "acknowledge the test's conclusion (owner)",
        Verb::ProposePlan => "propose the production plan (assigned operator)",
        Verb::AcceptPlan => "accept the plan (update officer and owner, one call each)",
        Verb::ApprovePlan => "approve the plan and record the announcement (assigned operator)",
        Verb::ConfirmPresence => "confirm the owner's presence for production work",
        Verb::StartProduction => "start production work (assigned operator)",
        Verb::RecordProduction => "record production's outcome (assigned operator)",
        Verb::Document => "record the documentation revision (assigned operator)",
        Verb::Close => "close the request (update officer)",
        Verb::Cancel => "cancel (owner or update officer)",
        Verb::RevisePlan => "replace the plan; it must be accepted and approved again",
        Verb::Pause => "pause test or production work",
        Verb::Resume => "resume paused work",
        Verb::Problem => "record a problem found",
        Verb::ReopenTest => "repeat the test with a newer version (the product's own step)",
    }
}

fn verb_route(verb: Verb) -> Route {
    let path = format!("/api/v1/requests/{{id}}/{}", verb.as_str());
    let handler = post(
        move |State(state): State<AppState>,
              caller: Caller,
              Path(id): Path<String>,
              body: RawBody| async move { requests::apply(state, caller, id, verb, body).await },
    );
    let mut route = route(
        Method::POST,
        &path,
        &format!("request_{}", verb.as_str().replace('-', "_")),
        verb_summary(verb),
        "requests",
    )
    .handler(handler);
    route.body = verb_body(verb);
    route
}

/// Every operation the server answers under `/api/v1` and `/healthz`.
pub fn table() -> Vec<Route> {
    let mut routes = vec![
        route(Method::GET, "/healthz", "healthz", "liveness", "service").public().handler(get(|| async { "ok\n" })),
        route(Method::GET, "/api/v1/openapi.json", "openapi", "this document", "service").public().handler(get(openapi_handler)),
        route(Method::POST, "/api/v1/invitations/redeem", "invitation_redeem", "redeem an invitation: set a password, get a first API token", "accounts")
            .public()
            .body(object(&["code", "password"], json!({ "code": string(), "password": string() })))
            .handler(post(accounts::redeem)),
        route(Method::POST, "/api/v1/login", "login", "log in with name and password; get a new API token", "accounts")
            .public()
            .body(object(&["name", "password"], json!({ "name": string(), "password": string() })))
            .handler(post(accounts::login)),
        route(Method::GET, "/api/v1/me", "me", "the calling account", "accounts").handler(get(accounts::me)),
        route(Method::GET, "/api/v1/tokens", "token_list", "the caller's API tokens", "accounts").handler(get(accounts::list_tokens)),
        route(Method::POST, "/api/v1/tokens", "token_create", "another API token for the caller", "accounts")
            .body(object(&[], json!({ "label": string() })))
            .handler(post(accounts::create_token)),
        route(Method::POST, "/api/v1/tokens/{id}/revoke", "token_revoke", "revoke one of the caller's tokens (an admin: anyone's)", "accounts")
            .handler(post(accounts::revoke_token)),
        route(Method::GET, "/api/v1/accounts", "account_list", "all accounts", "accounts").handler(get(accounts::list)),
        route(Method::POST, "/api/v1/accounts", "account_create", "create an account and its invitation (admin)", "accounts")
            .body(object(&["name", "roles"], json!({
                "name": string(),
                "roles": { "type": "array", "items": { "enum": ["security-officer", "operator", "owner", "auditor", "admin"] } },
                "email": string(), "position": string(),
            })))
            .handler(post(accounts::create)),
        route(Method::GET, "/api/v1/accounts/{name}", "account_show", "one account", "accounts").handler(get(accounts::show)),
        route(Method::POST, "/api/v1/accounts/{name}/invitation", "account_invite", "a new invitation for an account (admin)", "accounts")
            .handler(post(accounts::reinvite)),
        route(Method::GET, "/api/v1/systems", "system_list", "all systems", "systems").handler(get(systems::list)),
        route(Method::POST, "/api/v1/systems", "system_create", "create a system (security officer)", "systems")
            .body(object(&["name", "owner"], json!({
                "name": string(), "owner": string(), "deputy": string(),
                "stakeholders": { "type": "array", "items": string() },
                "notify": { "type": "array", "items": string() },
                "time_zone": string(),
            })))
            .handler(post(systems::create)),
        route(Method::GET, "/api/v1/systems/{name}", "system_show", "one system", "systems").handler(get(systems::show)),
        route(Method::GET, "/api/v1/systems/{name}/documentation", "system_documentation", "a system's documentation revisions", "systems")
            .handler(get(systems::documentation)),
        route(Method::GET, "/api/v1/requests", "request_list", "update requests, by system and state", "requests").handler(get(requests::list)),
        route(Method::POST, "/api/v1/requests", "request_create", "file a draft update request (security officer)", "requests")
            .body(request_fields(&["system"], true))
            .handler(post(requests::create)),
        route(Method::GET, "/api/v1/requests/{id}", "request_show", "one update request", "requests").handler(get(requests::show)),
        route(Method::GET, "/api/v1/requests/{id}/problems", "request_problems", "the problems found on a request", "requests")
            .handler(get(requests::problems)),
        route(Method::GET, "/api/v1/requests/{id}/decisions", "request_decisions", "the decisions taken on a request", "requests")
            .handler(get(requests::decisions)),
        route(Method::GET, "/api/v1/policy", "policy_show", "the policy version in force", "policy").handler(get(policy::show)),
        route(Method::GET, "/api/v1/policy/history", "policy_history", "every policy version", "policy").handler(get(policy::history)),
        route(Method::POST, "/api/v1/policy", "policy_change", "change settings, making a new policy version (admin)", "policy")
            .body(object(&["set", "reason"], json!({ "set": { "type": "object" }, "reason": string(), "effective": instant() })))
            .handler(post(policy::change)),
        route(Method::POST, "/api/v1/endpoints/enrolment-tokens", "enrolment_token", "a single-use, expiring enrolment token for one environment (security officer)", "endpoints")
            .body(object(&["system", "environment"], json!({ "system": string(), "environment": { "enum": ["test", "prod"] } })))
            .handler(post(endpoints::enrolment_token)),
        route(Method::GET, "/api/v1/endpoints", "endpoint_list", "enrolled endpoints, by system", "endpoints").handler(get(endpoints::list)),
        route(Method::GET, "/api/v1/endpoints/{id}", "endpoint_show", "one endpoint with its inventory's summary", "endpoints").handler(get(endpoints::show)),
        route(Method::GET, "/api/v1/endpoints/{id}/inventory", "endpoint_inventory", "an endpoint's latest whole inventory", "endpoints").handler(get(endpoints::inventory)),
        route(Method::GET, "/api/v1/endpoints/{id}/changes", "endpoint_changes", "what each of an endpoint's inventories changed", "endpoints").handler(get(endpoints::changes)),
        route(Method::POST, "/api/v1/endpoints/{id}/revoke", "endpoint_revoke", "revoke an endpoint's credential (security officer)", "endpoints").handler(post(endpoints::revoke)),
        route(Method::GET, "/api/v1/systems/{name}/environments/{env}", "environment_show", "how an environment is worked on: health checks, rollback, reboot", "systems").handler(get(endpoints::settings)),
        route(Method::PUT, "/api/v1/systems/{name}/environments/{env}", "environment_set", "set how an environment is worked on (security officer)", "systems")
            .body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "health_checks": { "type": "array" }, "rollback_on_failure": { "type": "boolean" },
                "reboot": { "enum": ["never", "if-required", "end-of-window"] },
                "recover_interrupted": { "type": "boolean" }, "keep_local_config": { "type": "boolean" } } }))
            .handler(put(endpoints::set_settings)),
        route(Method::GET, "/api/v1/requests/{id}/jobs", "request_jobs", "the jobs issued for a request, with their reports", "requests").handler(get(endpoints::request_jobs)),
        route(Method::GET, "/api/v1/agent/ca.pem", "agent_ca", "the Patchwarden CA, which an enrolling agent checks against its token", "agent").public().handler(get(agent::ca)),
        route(Method::POST, "/api/v1/agent/enrol", "agent_enrol", "exchange an enrolment token for the endpoint's credential", "agent").agent_body().handler(post(agent::enrol)).agent(),
        route(Method::POST, "/api/v1/agent/check-in", "agent_check_in", "an agent's check-in: inventory hash in, open jobs out", "agent").agent_body().handler(post(agent::check_in)).agent(),
        route(Method::PUT, "/api/v1/agent/inventory", "agent_inventory", "an agent's new inventory", "agent").agent_body().handler(put(agent::inventory)).agent(),
        route(Method::POST, "/api/v1/agent/jobs/{id}/report", "agent_report", "a job's one report", "agent").agent_body().handler(post(agent::report)).agent(),
        route(Method::GET, "/api/v1/log", "log_show", "control log entries", "log").handler(get(log::show)),
        route(Method::GET, "/api/v1/log/verify", "log_verify", "check the control log's chain", "log").handler(get(log::verify)),
        route(Method::GET, "/api/v1/log/export", "log_export", "the control log as csv or json", "log").handler(get(log::export)),
    ];
    routes.extend(Verb::ALL.into_iter().filter(|v| *v != Verb::Create).map(verb_route));
    routes
}

async fn openapi_handler() -> Json<Value> {
    Json(openapi(&table()))
}

/// The OpenAPI 3.1 document for `routes`.
pub fn openapi(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut responses = json!({
            "200": { "description": "done", "content": { "application/json": {} } },
            "404": { "$ref": "#/components/responses/Error" },
            "422": { "$ref": "#/components/responses/Error" },
        });
        if !route.public {
            responses["401"] = json!({ "$ref": "#/components/responses/Error" });
            responses["403"] = json!({ "$ref": "#/components/responses/Error" });
            responses["409"] = json!({ "$ref": "#/components/responses/Error" });
        }
        let mut operation = json!({
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": parameters,
            "responses": responses,
        });
        if route.public {
            operation["security"] = json!([]);
        }
        if let Some(schema) = &route.body {
            operation["requestBody"] =
                json!({ "content": { "application/json": { "schema": schema } } });
        }
        let entry = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Patchwarden API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "refused: error.status, error.code and error.message say why; on 409 error.state and error.allowed",
                    "content": { "application/json": {} },
                },
            },
        },
    })
}
