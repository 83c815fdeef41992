//! The work agents do for update requests.
//!
//! When a request enters test or production work, each active endpoint of
//! that environment gets one signed job for that round (a round is the log
//! entry that opened the work). When every job of the round has its report,
//! the reports become the request's next step, taken by the product on the
//! agents' evidence: all succeeded is a passed test or production; any
//! failure or rollback is a failed one with the problem recorded. Reports
//! that only say "missed" or "refused" move nothing: a person decides.
//! A newer version of a request's package, seen by a test endpoint after the
//! test passed and before production started, sends the request back to
//! testing with that version.
//!
//! Until maintenance windows exist, a job's window is, for test work, the
//! request's test date (or, when the work started later, the time it
//! started) for the policy's default work hours; for production, the plan's
//! start and duration.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{Evidence, WorkReport};
use patchwarden_core::request::{Criticality, NewProblem};
use patchwarden_core::system::EnvironmentKind;
use patchwarden_core::text::Text;
use patchwarden_core::{State, UpdateRequest};
use patchwarden_protocol::inventory::{Inventory, PackageManager};
use patchwarden_protocol::job::JOB_FORMAT;
use patchwarden_protocol::{
    Environment, HealthCheck, Job, JobOutcome, JobReport, PackagePin, RebootPolicy,
};
use patchwarden_store::{EndpointAuth, JobRecord, ReportRecorded, RequestFilter, StoreError};
use patchwarden_versions::Format;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// How one environment of a system is worked on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkSettings {
    pub health_checks: Vec<HealthCheck>,
    pub rollback_on_failure: bool,
    pub reboot: RebootPolicy,
    pub recover_interrupted: bool,
    pub keep_local_config: bool,
}

impl Default for WorkSettings {
    fn default() -> Self {
        Self {
            health_checks: Vec::new(),
            rollback_on_failure: true,
            reboot: RebootPolicy::Never,
            recover_interrupted: false,
            keep_local_config: true,
        }
    }
}

pub fn protocol_environment(kind: EnvironmentKind) -> Environment {
    match kind {
        EnvironmentKind::Test => Environment::Test,
        EnvironmentKind::Prod => Environment::Prod,
    }
}

/// The settings of `system`'s `environment`, or the defaults.
pub async fn settings_for(
    state: &AppState,
    system: patchwarden_core::SystemId,
    environment: EnvironmentKind,
) -> ApiResult<WorkSettings> {
    match state.store.environment_settings(system, environment).await? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|err| ApiError::internal(format!("stored environment settings: {err}"))),
        None => Ok(WorkSettings::default()),
    }
}

/// The environment a request's state works on, if it is a work state.
fn working_environment(request: &UpdateRequest) -> Option<EnvironmentKind> {
    match (request.state, request.paused) {
        (State::Testing, false) => Some(EnvironmentKind::Test),
        (State::ProdUpdating, false) => Some(EnvironmentKind::Prod),
        _ => None,
    }
}

/// The end of the window a round's work must start in.
fn window_end(
    request: &UpdateRequest,
    environment: EnvironmentKind,
    round_at: Timestamp,
    work_hours: u32,
) -> Option<Timestamp> {
    match environment {
        EnvironmentKind::Test => {
            let start = request.fields.test_date.map_or(round_at, |date| date.max(round_at));
            Some(start + SignedDuration::from_hours(i64::from(work_hours)))
        }
        EnvironmentKind::Prod => request
            .plan
            .as_ref()
            .map(|plan| plan.start + SignedDuration::from_mins(i64::from(plan.duration_minutes))),
    }
}

/// Issues the jobs of a request's current round that are missing; returns how many.
pub async fn ensure_jobs(
    state: &AppState,
    request: &UpdateRequest,
    now: Timestamp,
) -> ApiResult<usize> {
    let Some(environment) = working_environment(request) else { return Ok(0) };
    let Some((round, round_at)) = state.store.entry_into_state(request.id, request.state).await?
    else {
        return Ok(0);
    };
    let policy = state.store.policy().await?;
    let Some(window_end) =
        window_end(request, environment, round_at, policy.settings.default_work_hours)
    else {
        return Ok(0);
    };
    // FIXME: a round whose window has already ended gets no jobs and waits for a
    // person; the scheduler's maintenance windows will move it to the next window.
    if window_end <= now {
        return Ok(0);
    }

    let endpoints = state.store.active_endpoints(request.system, environment).await?;
    let existing = state.store.round_jobs(request.id, environment, round).await?;
    let settings = settings_for(state, request.system, environment).await?;
    let install: Vec<PackagePin> = request
        .fields
        .packages
        .iter()
        .map(|target| PackagePin { name: target.name.clone(), version: target.version.clone() })
        .collect();
    let mut issued = 0;
    for endpoint in endpoints.iter().filter(|e| !existing.iter().any(|job| job.endpoint == e.id)) {
        let key = &state.agents.job_key;
        let sign = |id: i64, sequence: u64| {
            let job = Job {
                format: JOB_FORMAT,
                id,
                endpoint_id: endpoint.id,
                sequence,
                issued_at: now,
                expires_at: window_end,
                window_end,
                request_id: request.id.0,
                environment: protocol_environment(environment),
                install: install.clone(),
                health_checks: settings.health_checks.clone(),
                rollback_on_failure: settings.rollback_on_failure,
                reboot: settings.reboot,
                recover_interrupted: settings.recover_interrupted,
                keep_local_config: settings.keep_local_config,
            };
            key.sign(&job)
                .map(|signed| (signed.payload, signed.signature))
                .map_err(|err| err.to_string())
        };
        let details = json!({
            "environment": environment.as_str(),
            "install": install.iter().map(|p| format!("{}={}", p.name, p.version)).collect::<Vec<_>>(),
            "round": round,
        });
        match state
            .store
            .issue_job(endpoint, request.id, round, window_end, details, now, sign)
            .await
        {
            Ok(_) => {
                state.agents.note_open_job(endpoint.id);
                issued += 1;
            }
            // Another server issued it first.
            Err(StoreError::Invalid(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(issued)
}

/// Keeps a job's report and, when it ends its round, takes the request's next step.
pub async fn record_report(
    state: &AppState,
    job: &JobRecord,
    report: &JobReport,
    now: Timestamp,
) -> ApiResult<&'static str> {
    let text = serde_json::to_string(report).map_err(ApiError::internal)?;
    let details = json!({
        "outcome_detail": outcome_detail(&report.outcome),
        "versions_before": report.versions_before.iter().map(pin).collect::<Vec<_>>(),
        "versions_after": report.versions_after.iter().map(pin).collect::<Vec<_>>(),
        "health": report.health.iter().map(|c| json!({ "check": c.check, "passed": c.passed, "after_rollback": c.after_rollback })).collect::<Vec<_>>(),
        "config_files_left": report.config_files_left,
        "recovered_interrupted": report.recovered_interrupted,
        "rebooted": report.reboot.is_some(),
    });
    let mut details = details;
    let rolled_back = matches!(report.outcome, JobOutcome::RolledBack { .. });
    if rolled_back && job.environment == EnvironmentKind::Prod {
        let request = state.store.request(job.request).await?;
        details["automatic_rollback"] = rollback_approval(state, &request).await?;
    }
    let recorded =
        state.store.record_job_report(job.id, report.outcome.as_str(), &text, details, now).await?;
    if recorded == ReportRecorded::Already {
        return Ok("already");
    }
    finish_round(state, job, now).await?;
    Ok("new")
}

fn pin(pin: &PackagePin) -> String {
    format!("{}={}", pin.name, pin.version)
}

fn outcome_detail(outcome: &JobOutcome) -> String {
    match outcome {
        JobOutcome::Succeeded => "the versions are installed and every check passed".to_owned(),
        JobOutcome::Failed { step, detail } => format!("failed at {step}: {detail}"),
        JobOutcome::RolledBack { check, detail, checks_after_rollback_passed } => format!(
            "check {check} failed ({detail}); the old versions were put back; checks after the rollback {}",
            if *checks_after_rollback_passed { "passed" } else { "failed" }
        ),
        JobOutcome::Refused { check, detail } => format!("refused by {check}: {detail}"),
        JobOutcome::Missed { reason, detail } => {
            let reason = serde_json::to_value(reason).unwrap_or(Value::Null);
            format!("missed ({}): {detail}", reason.as_str().unwrap_or("?"))
        }
    }
}

/// When every job of `job`'s round has its report, records the round's result.
async fn finish_round(state: &AppState, job: &JobRecord, now: Timestamp) -> ApiResult<()> {
    let jobs = state.store.round_jobs(job.request, job.environment, job.round).await?;
    if jobs.iter().any(|j| j.outcome.is_none()) {
        return Ok(());
    }
    let request = state.store.request(job.request).await?;
    let current = state.store.entry_into_state(request.id, request.state).await?;
    let working = working_environment(&request) == Some(job.environment);
    if !working || current.map(|(seq, _)| seq) != Some(job.round) {
        return Ok(());
    }

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut all_succeeded = true;
    let mut rolled_back = false;
    for job in &jobs {
        let report: Option<JobReport> =
            job.report.as_deref().and_then(|text| serde_json::from_str(text).ok());
        let outcome = report.as_ref().map(|r| r.outcome.clone());
        let hostname = state.store.endpoint(job.endpoint).await.map(|e| e.hostname)?;
        match &outcome {
            Some(JobOutcome::Succeeded) => {}
            Some(failed @ (JobOutcome::Failed { .. } | JobOutcome::RolledBack { .. })) => {
                all_succeeded = false;
                rolled_back |= matches!(failed, JobOutcome::RolledBack { .. });
                failures.push(format!("{hostname}: {}", outcome_detail(failed)));
            }
            _ => all_succeeded = false,
        }
        runs.push(json!({
            "job": job.id,
            "endpoint": job.endpoint,
            "hostname": hostname,
            "outcome": job.outcome,
        }));
    }
    if !all_succeeded && failures.is_empty() {
        tracing::warn!(request = %request.id, "the round ended without a failure or a success: a person decides");
        return Ok(());
    }
    let environment = job.environment;
    let notes = if all_succeeded {
        format!("{} endpoint(s) updated and checked by their agents", jobs.len())
    } else {
        format!("{} of {} endpoint(s) failed", failures.len(), jobs.len())
    };
    let problem = (!all_succeeded)
        .then(|| -> ApiResult<NewProblem> {
            Ok(NewProblem {
                description: Text::parse("problem", &failures.join("; "))
                    .map_err(ApiError::internal)?,
                criticality: Criticality::High,
                environment,
            })
        })
        .transpose()?;
    let report = WorkReport {
        passed: all_succeeded,
        notes: Some(Text::parse("notes", &notes).map_err(ApiError::internal)?),
        problem,
    };
    let automatic_rollback = if rolled_back && environment == EnvironmentKind::Prod {
        Some(rollback_approval(state, &request).await?)
    } else {
        None
    };
    let evidence =
        Evidence::Runs { environment, report, runs: Value::Array(runs), automatic_rollback };
    match state.store.apply_evidence(request.id, evidence, now).await {
        Ok(_) => Ok(()),
        Err(StoreError::Refused(refusal)) => {
            tracing::warn!(request = %request.id, reason = %refusal, "agents' evidence not applied");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// An inventory message: the hash the agent computed and the inventory as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload<'a> {
    hash: String,
    #[serde(borrow)]
    inventory: &'a RawValue,
}

/// Checks an agent's inventory message (parses, hash matches) and keeps it.
pub async fn accept_inventory(
    state: &AppState,
    endpoint: &EndpointAuth,
    body: &[u8],
    now: Timestamp,
) -> ApiResult<()> {
    let upload: Upload<'_> = serde_json::from_slice(body)
        .map_err(|err| ApiError::invalid(format!("the message is not valid: {err}")))?;
    let inventory: Inventory = serde_json::from_str(upload.inventory.get()).map_err(|err| {
        ApiError::invalid_field("inventory", format!("the inventory is not valid: {err}"))
    })?;
    let computed = inventory.hash();
    if computed != upload.hash {
        return Err(ApiError::invalid_field(
            "hash",
            format!("the inventory hashes to {computed}, not to the {} sent with it", upload.hash),
        ));
    }
    ingest_inventory(state, endpoint, &inventory, upload.inventory.get(), &computed, now).await
}

/// What the log says of an automatic rollback in production: it was part of
/// what the owner and the update officer accepted, and the operator approved,
/// with the plan, so it needed no approval of its own.
async fn rollback_approval(state: &AppState, request: &UpdateRequest) -> ApiResult<Value> {
    let names = crate::views::Names::new(&state.store.accounts().await?);
    let signoff = |signoff: Option<&patchwarden_core::request::Signoff>| {
        signoff.map_or(Value::Null, |s| json!({ "by": names.of(s.by), "at": s.at }))
    };
    let plan = request.plan.as_ref();
    Ok(json!({
        "pre_approved": true,
        "reason": "a rollback on a failed health check is part of the approved plan",
        "owner_acceptance": signoff(plan.and_then(|p| p.owner_acceptance.as_ref())),
        "officer_acceptance": signoff(plan.and_then(|p| p.officer_acceptance.as_ref())),
        "plan_approval": signoff(plan.and_then(|p| p.approval.as_ref())),
    }))
}

/// Keeps a new inventory (`text` is its JSON as received) with its delta,
/// and looks for newer versions.
pub async fn ingest_inventory(
    state: &AppState,
    endpoint: &EndpointAuth,
    inventory: &Inventory,
    text: &str,
    hash: &str,
    now: Timestamp,
) -> ApiResult<()> {
    let previous = state.store.endpoint_inventory(endpoint.id).await?;
    let previous: Option<Previous<'_>> =
        previous.as_ref().and_then(|(_, text)| serde_json::from_str(text).ok());
    let delta = delta(previous.as_ref(), inventory);
    state.store.record_inventory(endpoint.id, hash, text, &delta, now).await?;
    state.agents.note_inventory(endpoint.id, hash);
    if endpoint.environment == EnvironmentKind::Test {
        newer_versions(state, endpoint, inventory, now).await?;
    }
    Ok(())
}

/// What the delta needs of the previous inventory, read without copying its strings.
#[derive(Debug, Deserialize)]
pub struct Previous<'a> {
    #[serde(borrow)]
    packages: Vec<PreviousPackage<'a>>,
    facts: patchwarden_protocol::inventory::Facts,
}

#[derive(Debug, Deserialize)]
struct PreviousPackage<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    architecture: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    state: patchwarden_protocol::inventory::PackageState,
    held: bool,
}

/// What changed between two inventories: packages added, removed or changed.
pub fn delta(previous: Option<&Previous<'_>>, next: &Inventory) -> Value {
    let before: HashMap<(&str, &str), &PreviousPackage<'_>> = previous
        .map(|p| p.packages.iter().map(|p| ((&*p.name, &*p.architecture), p)).collect())
        .unwrap_or_default();
    let mut seen = HashSet::with_capacity(next.packages.len());
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for package in &next.packages {
        let key = (package.name.as_str(), package.architecture.as_str());
        seen.insert(key);
        match before.get(&key) {
            None => added.push(json!([package.name, package.architecture, package.version])),
            Some(old)
                if old.version != package.version
                    || old.state != package.state
                    || old.held != package.held =>
            {
                changed.push(json!([
                    package.name,
                    package.architecture,
                    old.version,
                    package.version,
                    package.state.as_str(),
                    package.held,
                ]));
            }
            Some(_) => {}
        }
    }
    let mut removed: Vec<Value> = before
        .iter()
        .filter(|(key, _)| !seen.contains(*key))
        .map(|(_, p)| json!([p.name, p.architecture, p.version]))
        .collect();
    removed.sort_by_key(Value::to_string);
    json!({
        "first": previous.is_none(),
        "added": added,
        "removed": removed,
        "changed": changed,
        "facts_changed": previous.is_none_or(|p| p.facts != next.facts),
        "pending": next.pending.len(),
        "pending_security": next.pending.iter().filter(|p| p.security).count(),
    })
}

/// The states in which a newer version sends a request back to testing.
const REOPENABLE: [State; 7] = [
    State::TestPassed,
    State::RiskAccepted,
    State::TestAcknowledged,
    State::PlanProposed,
    State::PlanAccepted,
    State::PlanApproved,
    State::Ready,
];

async fn newer_versions(
    state: &AppState,
    endpoint: &EndpointAuth,
    inventory: &Inventory,
    now: Timestamp,
) -> ApiResult<()> {
    let format = match inventory.package_manager {
        PackageManager::Dpkg => Format::Deb,
        PackageManager::Rpm => Format::Rpm,
    };
    let filter = RequestFilter { system: Some(endpoint.system), state: None };
    let requests = state.store.requests(&filter).await?;
    for request in requests.iter().filter(|r| REOPENABLE.contains(&r.state)) {
        let newer = request.fields.packages.iter().find_map(|target| {
            inventory
                .pending
                .iter()
                .filter(|p| p.name == target.name)
                .find(|p| {
                    patchwarden_versions::compare(format, &p.candidate_version, &target.version)
                        == Ok(Ordering::Greater)
                })
                .map(|p| (target, p.candidate_version.clone()))
        });
        let Some((target, newer)) = newer else { continue };
        let evidence = Evidence::NewerVersion {
            package: target.name.clone(),
            tested: target.version.clone(),
            newer,
        };
        match state.store.apply_evidence(request.id, evidence, now).await {
            Ok((transition, _)) => {
                ensure_jobs(state, &transition.request, now).await?;
            }
            Err(StoreError::Refused(refusal)) => {
                tracing::warn!(request = %request.id, reason = %refusal, "newer version not applied");
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// The server's periodic work: check-in times written, jobs whose window
/// ended without a report marked missed, and missing jobs issued.
pub async fn sweep(state: &AppState, now: Timestamp) -> ApiResult<()> {
    state.agents.flush_seen(&state.store).await?;

    for job in state.store.overdue_jobs(now).await? {
        let report = json!({
            "outcome": "missed",
            "reason": "endpoint-offline",
            "detail": format!("no report arrived before the window ended at {}", job.window_end),
        });
        let details = json!({
            "outcome_detail": "missed (endpoint-offline): no report before the window ended",
            "by": "server",
        });
        let recorded = state
            .store
            .record_job_report(job.id, "missed", &report.to_string(), details, now)
            .await?;
        if recorded == ReportRecorded::New {
            finish_round(state, &job, now).await?;
        }
    }

    for working in [State::Testing, State::ProdUpdating] {
        let filter = RequestFilter { system: None, state: Some(working) };
        for request in state.store.requests(&filter).await? {
            ensure_jobs(state, &request, now).await?;
        }
    }
    Ok(())
}
