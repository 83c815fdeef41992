//! `patchwarden request …`: filing update requests and taking each lifecycle
//! step through the API, one verb per subcommand.
//!
//! The CLI judges nothing itself: the server checks who may act, what was
//! sent and whether the state allows it, and its refusal is printed as it
//! gave it, with the verbs allowed now. A step's answer shows where the
//! request went and what may follow.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::args::{
    AmendArgs, ApproveArgs, DecideArgs, Decision, FieldArgs, Output, PlanArgs, ProblemArgs,
    ReasonArgs, ReportArgs, RequestCommand, RequestCreateArgs, RequestListArgs, RequestShowArgs,
    VerbArgs,
};
use crate::client::{Api, encode};
use crate::people::join;
use crate::render::{self, text};
use crate::{Outcome, duration};

pub async fn run(command: &RequestCommand) -> anyhow::Result<Outcome> {
    match command {
        RequestCommand::Create(args) => create(args).await,
        RequestCommand::List(args) => list(args).await,
        RequestCommand::Show(args) => show(args).await,
        RequestCommand::Amend(args) => amend(args).await,
        RequestCommand::Submit(args) => step(args, "submit", json!({})).await,
        RequestCommand::Approve(args) => approve(args).await,
        RequestCommand::Reject(args) => with_reason(args, "reject").await,
        RequestCommand::StartTest(args) => step(args, "start-test", json!({})).await,
        RequestCommand::RecordTest(args) => report(args, "record-test", "test").await,
        RequestCommand::Decide(args) => decide(args).await,
        RequestCommand::AcknowledgeTest(args) => step(args, "acknowledge-test", json!({})).await,
        RequestCommand::ProposePlan(args) => plan(args, "propose-plan").await,
        RequestCommand::AcceptPlan(args) => step(args, "accept-plan", json!({})).await,
        RequestCommand::ApprovePlan(args) => step(args, "approve-plan", json!({})).await,
        RequestCommand::ConfirmPresence(args) => step(args, "confirm-presence", json!({})).await,
        RequestCommand::StartProduction(args) => step(args, "start-production", json!({})).await,
        RequestCommand::RecordProduction(args) => report(args, "record-production", "prod").await,
        RequestCommand::Document(args) => {
            step(&args.verb, "document", json!({ "summary": args.summary })).await
        }
        RequestCommand::Close(args) => step(args, "close", json!({})).await,
        RequestCommand::Cancel(args) => with_reason(args, "cancel").await,
        RequestCommand::RevisePlan(args) => plan(args, "revise-plan").await,
        RequestCommand::Pause(args) => with_reason(args, "pause").await,
        RequestCommand::Resume(args) => step(args, "resume", json!({})).await,
        RequestCommand::Problem(args) => problem(args).await,
        RequestCommand::Jobs(args) => crate::endpoints::request_jobs(args).await,
    }
}

/// The fields given on the command line; those not given are left out.
fn fields(args: &FieldArgs) -> Map<String, Value> {
    let mut body = Map::new();
    let given = [
        ("officer", &args.officer),
        ("operator", &args.operator),
        ("test_date", &args.test_date),
        ("prod_date", &args.prod_date),
        ("purpose", &args.purpose),
        ("downtime", &args.downtime),
        ("description", &args.description),
    ];
    for (name, value) in given {
        if let Some(value) = value {
            body.insert(name.to_owned(), json!(value));
        }
    }
    if !args.packages.is_empty() {
        body.insert("packages".to_owned(), json!(args.packages));
    }
    body
}

async fn create(args: &RequestCreateArgs) -> anyhow::Result<Outcome> {
    let mut body = fields(&args.fields);
    body.insert("system".to_owned(), json!(args.system));
    let answer = Api::new(&args.server)?.post("/api/v1/requests", Value::Object(body)).await?;
    render::answer(args.output, &answer, |out| {
        let request = &answer["request"];
        writeln!(out, "request {} filed as a draft for {}", text(&request["id"]), args.system)?;
        next_steps(out, request)
    })
}

async fn amend(args: &AmendArgs) -> anyhow::Result<Outcome> {
    let body = fields(&args.fields);
    if body.is_empty() {
        anyhow::bail!("name at least one field to change, such as --purpose or --package");
    }
    step(&args.verb, "amend", Value::Object(body)).await
}

async fn approve(args: &ApproveArgs) -> anyhow::Result<Outcome> {
    let body = match &args.comment {
        Some(comment) => json!({ "comment": comment }),
        None => json!({}),
    };
    step(&args.verb, "approve", body).await
}

async fn with_reason(args: &ReasonArgs, verb: &str) -> anyhow::Result<Outcome> {
    step(&args.verb, verb, json!({ "reason": args.reason })).await
}

async fn report(args: &ReportArgs, verb: &str, environment: &str) -> anyhow::Result<Outcome> {
    let mut body = json!({ "passed": args.passed && !args.failed });
    if let Some(notes) = &args.notes {
        body["notes"] = json!(notes);
    }
    if let (Some(problem), Some(criticality)) = (&args.problem, args.criticality) {
        body["problem"] = json!({
            "description": problem,
            "criticality": criticality_name(criticality),
            "environment": environment,
        });
    }
    step(&args.verb, verb, body).await
}

async fn decide(args: &DecideArgs) -> anyhow::Result<Outcome> {
    let decision = match args.decision {
        Decision::Proceed => "proceed",
        Decision::Abandon => "abandon",
        Decision::RollBack => "roll-back",
        Decision::Accept => "accept",
    };
    step(&args.verb, "decide", json!({ "decision": decision, "reasoning": args.reasoning })).await
}

async fn plan(args: &PlanArgs, verb: &str) -> anyhow::Result<Outcome> {
    let minutes = duration::minutes(&args.duration)?;
    let body = json!({
        "start": args.start,
        "duration_minutes": minutes,
        "participants": args.participants,
        "recipients": args.recipients,
    });
    step(&args.verb, verb, body).await
}

async fn problem(args: &ProblemArgs) -> anyhow::Result<Outcome> {
    let mut body = json!({
        "description": args.description,
        "criticality": criticality_name(args.criticality),
    });
    if let Some(environment) = args.environment {
        body["environment"] = json!(match environment {
            crate::args::Environment::Test => "test",
            crate::args::Environment::Prod => "prod",
        });
    }
    step(&args.verb, "problem", body).await
}

fn criticality_name(criticality: crate::args::Criticality) -> &'static str {
    use crate::args::Criticality;
    match criticality {
        Criticality::Low => "low",
        Criticality::Medium => "medium",
        Criticality::High => "high",
        Criticality::Critical => "critical",
    }
}

/// Takes one lifecycle step and shows where the request went.
async fn step(args: &VerbArgs, verb: &str, body: Value) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/requests/{}/{verb}", encode(args.id.trim()));
    let answer = Api::new(&args.server)?.post(&path, body).await?;
    render::answer(args.output, &answer, |out| {
        let entry = &answer["log_entry"];
        let request = &answer["request"];
        let (before, after) = (text(&entry["state_before"]), text(&entry["state_after"]));
        let moved =
            if before == after { format!("stays {after}") } else { format!("{before} -> {after}") };
        writeln!(
            out,
            "request {}: {verb} by {}: {moved}",
            text(&request["id"]),
            text(&entry["actor"])
        )?;
        let details = &entry["details"];
        if let Some(awaiting) = details.get("awaiting").filter(|a| !a.is_null()) {
            writeln!(out, "recorded; still awaiting {}", join(awaiting))?;
        }
        if let Some(announced) = details.get("announced_at").filter(|a| !a.is_null()) {
            writeln!(out, "announcement recorded at {}", text(announced))?;
        }
        if let Some(revision) = details.get("revision").filter(|r| !r.is_null()) {
            writeln!(out, "documentation revision {}", text(revision))?;
        }
        writeln!(out, "log entry {}", text(&entry["seq"]))?;
        next_steps(out, request)
    })
}

fn next_steps(out: &mut impl Write, request: &Value) -> std::io::Result<()> {
    let missing = join(&request["missing"]);
    if request["state"] == "draft" && !missing.is_empty() {
        writeln!(out, "missing before it can be submitted: {missing}")?;
    }
    let allowed = join(&request["allowed"]);
    if allowed.is_empty() {
        writeln!(out, "no step follows: the request is {}", text(&request["state"]))
    } else {
        writeln!(out, "allowed now: {allowed}")
    }
}

async fn list(args: &RequestListArgs) -> anyhow::Result<Outcome> {
    let mut query = Vec::new();
    if let Some(system) = &args.system {
        query.push(format!("system={}", encode(system)));
    }
    if let Some(state) = &args.state {
        query.push(format!("state={}", encode(state)));
    }
    let path = if query.is_empty() {
        "/api/v1/requests".to_owned()
    } else {
        format!("/api/v1/requests?{}", query.join("&"))
    };
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    render::answer(args.read.output, &answer, |out| {
        let requests = answer["requests"].as_array().map_or(&[][..], Vec::as_slice);
        if requests.is_empty() {
            return writeln!(out, "no update requests");
        }
        writeln!(
            out,
            "{:<5} {:<16} {:<18} {:<10} {:<10} PURPOSE",
            "ID", "SYSTEM", "STATE", "OFFICER", "OPERATOR"
        )?;
        for request in requests {
            let mut state = text(&request["state"]);
            if request["paused"] == true {
                state.push_str(" (paused)");
            }
            writeln!(
                out,
                "{:<5} {:<16} {:<18} {:<10} {:<10} {}",
                text(&request["id"]),
                text(&request["system"]),
                state,
                text(&request["officer"]),
                text(&request["operator"]),
                text(&request["purpose"]),
            )?;
        }
        Ok(())
    })
}

async fn show(args: &RequestShowArgs) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/requests/{}", encode(args.id.trim()));
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    if args.read.output == Output::Json {
        return render::answer(Output::Json, &answer, |_| Ok(()));
    }
    render::answer(Output::Text, &answer, |out| card(out, &answer["request"]))
}

/// One request for a person, field by field.
fn card(out: &mut impl Write, r: &Value) -> std::io::Result<()> {
    let signoff = |value: &Value| {
        if value.is_null() {
            "-".to_owned()
        } else {
            format!("{} at {}", text(&value["by"]), text(&value["at"]))
        }
    };
    let paused = if r["paused"] == true { " (paused)" } else { "" };
    writeln!(out, "request      {} on {}", text(&r["id"]), text(&r["system"]))?;
    writeln!(out, "state        {}{paused}", text(&r["state"]))?;
    writeln!(out, "requester    {}", text(&r["requester"]))?;
    writeln!(out, "officer      {}", text(&r["officer"]))?;
    writeln!(out, "operator     {}", text(&r["operator"]))?;
    writeln!(out, "test date    {}", text(&r["test_date"]))?;
    writeln!(out, "prod date    {}", text(&r["prod_date"]))?;
    writeln!(out, "packages     {}", join(&r["packages"]))?;
    writeln!(out, "purpose      {}", text(&r["purpose"]))?;
    writeln!(out, "downtime     {}", text(&r["downtime"]))?;
    writeln!(out, "description  {}", text(&r["description"]))?;
    writeln!(out, "approved     {}", signoff(&r["owner_approval"]))?;
    for (label, result) in [("test", &r["test_result"]), ("production", &r["production_result"])] {
        if !result.is_null() {
            let verdict = if result["passed"] == true { "passed" } else { "failed" };
            writeln!(
                out,
                "{label:<12} {verdict}, recorded by {}; {}",
                signoff(&result["recorded"]),
                text(&result["notes"])
            )?;
        }
    }
    writeln!(out, "acknowledged {}", signoff(&r["test_acknowledgement"]))?;
    let plan = &r["plan"];
    if !plan.is_null() {
        writeln!(
            out,
            "plan         {} for {} minutes; participants {}; recipients {}",
            text(&plan["start"]),
            text(&plan["duration_minutes"]),
            join(&plan["participants"]),
            join(&plan["recipients"])
        )?;
        writeln!(out, "  officer accepted  {}", signoff(&plan["officer_acceptance"]))?;
        writeln!(out, "  owner accepted    {}", signoff(&plan["owner_acceptance"]))?;
        writeln!(out, "  approved          {}", signoff(&plan["approval"]))?;
        writeln!(out, "  announced         {}", text(&plan["announced_at"]))?;
    }
    writeln!(out, "presence     {}", signoff(&r["presence"]))?;
    writeln!(out, "production   started {}", signoff(&r["production_start"]))?;
    for problem in r["problems"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "problem {}    {} ({}, {}) found by {}",
            text(&problem["number"]),
            text(&problem["description"]),
            text(&problem["criticality"]),
            text(&problem["environment"]),
            text(&problem["found_by"])
        )?;
    }
    for decision in r["decisions"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "decision     {}: {} (by {})",
            text(&decision["decision"]),
            text(&decision["reasoning"]),
            join(&decision["taken_by"])
        )?;
    }
    writeln!(out, "doc revision {}", text(&r["documentation_revision"]))?;
    if !r["end_reason"].is_null() {
        writeln!(out, "ended        {}", text(&r["end_reason"]))?;
    }
    next_steps(out, r)
}
