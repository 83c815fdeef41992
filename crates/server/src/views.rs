//! The JSON shapes the API answers with.
//!
//! Records are shown with account names beside their ids so that a person
//! reading an answer never has to look an id up; instants are RFC 3339 UTC.

use std::collections::HashMap;

use patchwarden_core::request::Signoff;
use patchwarden_core::{Account, AccountId, LogEntry, System, UpdateRequest};
use patchwarden_store::TokenInfo;
use serde_json::{Value, json};

/// Account names by id, for showing records.
#[derive(Debug, Default)]
pub struct Names(HashMap<AccountId, String>);

impl Names {
    /// The names of `accounts`, and the product's for its own sign-offs.
    pub fn new(accounts: &[Account]) -> Self {
        let mut names: HashMap<AccountId, String> =
            accounts.iter().map(|a| (a.id, a.name.to_string())).collect();
        names.insert(AccountId::PRODUCT, patchwarden_core::account::PRODUCT_ACTOR.to_owned());
        Self(names)
    }

    pub fn of(&self, id: AccountId) -> Value {
        self.0.get(&id).map_or(Value::Null, |name| Value::String(name.clone()))
    }

    fn of_all(&self, ids: &[AccountId]) -> Value {
        Value::Array(ids.iter().map(|id| self.of(*id)).collect())
    }

    fn signoff(&self, signoff: Option<&Signoff>) -> Value {
        signoff.map_or(Value::Null, |s| json!({ "by": self.of(s.by), "at": s.at }))
    }
}

pub fn account(account: &Account) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "email": account.email,
        "position": account.position,
        "roles": account.roles,
    })
}

pub fn system(system: &System, names: &Names) -> Value {
    json!({
        "id": system.id,
        "name": system.name,
        "owner": names.of(system.owner),
        "deputy": system.deputy.map(|d| names.of(d)),
        "stakeholders": names.of_all(&system.stakeholders),
        "notify": system.notify,
        "time_zone": system.time_zone,
        "documentation_revision": system.documentation_revision,
    })
}

pub fn request(request: &UpdateRequest, system_name: &str, names: &Names) -> Value {
    let fields = &request.fields;
    let plan = request.plan.as_ref().map(|plan| {
        json!({
            "start": plan.start,
            "duration_minutes": plan.duration_minutes,
            "participants": names.of_all(&plan.participants),
            "recipients": plan.recipients,
            "proposed": names.signoff(Some(&plan.proposed)),
            "officer_acceptance": names.signoff(plan.officer_acceptance.as_ref()),
            "owner_acceptance": names.signoff(plan.owner_acceptance.as_ref()),
            "approval": names.signoff(plan.approval.as_ref()),
            "announced_at": plan.announced_at,
        })
    });
    let result = |result: Option<&patchwarden_core::request::WorkResult>| {
        result.map(|r| json!({ "passed": r.passed, "notes": r.notes, "recorded": names.signoff(Some(&r.recorded)) }))
    };
    let problems: Vec<Value> = request
        .problems
        .iter()
        .map(|p| {
            json!({
                "number": p.number,
                "description": p.description,
                "criticality": p.criticality,
                "environment": p.environment,
                "found_by": names.of(p.found_by),
                "found_at": p.found_at,
            })
        })
        .collect();
    let decisions: Vec<Value> = request
        .decisions
        .iter()
        .map(|d| {
            json!({
                "decision": d.kind.as_str(),
                "reasoning": d.reasoning,
                "taken_by": names.of_all(&d.taken_by),
                "taken_at": d.taken_at,
            })
        })
        .collect();
    let pending = request.pending_consent.as_ref().map(|p| {
        json!({
            "decision": p.decision.as_str(),
            "reasoning": p.reasoning,
            "officer": names.signoff(p.officer.as_ref()),
            "owner": names.signoff(p.owner.as_ref()),
        })
    });
    json!({
        "id": request.id,
        "system": system_name,
        "state": request.state,
        "paused": request.paused,
        "allowed": request.state.allowed_verbs(request.paused),
        "requester": names.of(request.requester),
        "officer": names.of(request.officer()),
        "operator": fields.operator.map(|o| names.of(o)),
        "test_date": fields.test_date,
        "prod_date": fields.prod_date,
        "packages": fields.packages.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "purpose": fields.purpose,
        "downtime": fields.downtime,
        "description": fields.description,
        "missing": fields.missing_fields(),
        "created_at": request.created_at,
        "owner_approval": names.signoff(request.owner_approval.as_ref()),
        "test_result": result(request.test_result.as_ref()),
        "test_acknowledgement": names.signoff(request.test_acknowledgement.as_ref()),
        "plan": plan,
        "presence": names.signoff(request.presence.as_ref()),
        "production_start": names.signoff(request.production_start.as_ref()),
        "production_result": result(request.production_result.as_ref()),
        "problems": problems,
        "decisions": decisions,
        "pending_decision": pending,
        "documentation_revision": request.documentation_revision,
        "end_reason": request.end_reason,
    })
}

pub fn entry(entry: &LogEntry) -> Value {
    let details: Value =
        serde_json::from_str(&entry.details).unwrap_or(Value::String(entry.details.clone()));
    json!({
        "seq": entry.seq,
        "format": entry.format,
        "at": patchwarden_core::log::format_instant(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "request": entry.request,
        "system": entry.system,
        "state_before": entry.state_before,
        "state_after": entry.state_after,
        "details": details,
        "policy_version": entry.policy_version,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    })
}

pub fn token(token: &TokenInfo) -> Value {
    json!({
        "id": token.id,
        "label": token.label,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    })
}
