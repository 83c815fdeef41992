//! The update request lifecycle: states, verbs, who may take each verb, and the
//! guards that hold a request back until the policy is satisfied.
//!
//! `create` and `apply` are the only ways a request comes into being or moves.
//! Each checks in a fixed order: who is acting (403), what they sent (422),
//! whether the state allows the verb (409), then the guards on the request's
//! history; only when all pass does it return the changed request together
//! with the details for its control log entry. Nothing here reads the clock.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::account::{Account, AccountId, Role};
use crate::error::Refusal;
use crate::policy::PolicyVersion;
use crate::request::{
    Decision, DecisionKind, NewProblem, PackageTarget, PendingConsent, Plan, PlanInput, Problem,
    RequestFields, RequestId, Signoff, UpdateRequest, WorkResult,
};
use crate::system::{DocumentationRevision, EnvironmentKind, System};
use crate::text::Text;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Testing,
    TestPassed,
    TestFailed,
    RiskAccepted,
    Abandoned,
    TestAcknowledged,
    PlanProposed,
    PlanAccepted,
    PlanApproved,
    Ready,
    ProdUpdating,
    ProdPassed,
    ProdFailed,
    RolledBack,
    Documented,
    Closed,
    Cancelled,
}

impl State {
    pub const ALL: [State; 21] = [
        State::Draft,
        State::Submitted,
        State::Approved,
        State::Rejected,
        State::Testing,
        State::TestPassed,
        State::TestFailed,
        State::RiskAccepted,
        State::Abandoned,
        State::TestAcknowledged,
        State::PlanProposed,
        State::PlanAccepted,
        State::PlanApproved,
        State::Ready,
        State::ProdUpdating,
        State::ProdPassed,
        State::ProdFailed,
        State::RolledBack,
        State::Documented,
        State::Closed,
        State::Cancelled,
    ];

    /// The spelling used by the API, the CLI and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Submitted => "submitted",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Testing => "testing",
            State::TestPassed => "test_passed",
            State::TestFailed => "test_failed",
            State::RiskAccepted => "risk_accepted",
            State::Abandoned => "abandoned",
            State::TestAcknowledged => "test_acknowledged",
            State::PlanProposed => "plan_proposed",
            State::PlanAccepted => "plan_accepted",
            State::PlanApproved => "plan_approved",
            State::Ready => "ready",
            State::ProdUpdating => "prod_updating",
            State::ProdPassed => "prod_passed",
            State::ProdFailed => "prod_failed",
            State::RolledBack => "rolled_back",
            State::Documented => "documented",
            State::Closed => "closed",
            State::Cancelled => "cancelled",
        }
    }

    /// States a request never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Rejected | State::Abandoned | State::Cancelled | State::Closed)
    }

    /// The states from submitted to ready, from which a request may be cancelled.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            State::Submitted
                | State::Approved
                | State::Testing
                | State::TestPassed
                | State::TestFailed
                | State::RiskAccepted
                | State::TestAcknowledged
                | State::PlanProposed
                | State::PlanAccepted
                | State::PlanApproved
                | State::Ready
        )
    }

    /// The verbs this state allows, whoever asks.
    pub fn allowed_verbs(self, paused: bool) -> Vec<Verb> {
        let mut verbs: Vec<Verb> = match (self, paused) {
            (State::Draft, _) => vec![Verb::Amend, Verb::Submit],
            (State::Submitted, _) => vec![Verb::Approve, Verb::Reject],
            (State::Approved, _) => vec![Verb::StartTest],
            (State::Testing, false) => vec![Verb::RecordTest, Verb::Pause],
            (State::ProdUpdating, false) => vec![Verb::RecordProduction, Verb::Pause],
            (State::Testing | State::ProdUpdating, true) => vec![Verb::Resume],
            (State::TestPassed | State::RiskAccepted, _) => vec![Verb::AcknowledgeTest],
            (State::TestFailed | State::ProdFailed, _) => vec![Verb::Decide],
            (State::TestAcknowledged, _) => vec![Verb::ProposePlan],
            (State::PlanProposed, _) => vec![Verb::AcceptPlan, Verb::RevisePlan],
            (State::PlanAccepted, _) => vec![Verb::ApprovePlan, Verb::RevisePlan],
            (State::PlanApproved, _) => vec![Verb::ConfirmPresence, Verb::RevisePlan],
            (State::Ready, _) => vec![Verb::StartProduction, Verb::RevisePlan],
            (State::ProdPassed | State::RolledBack, _) => vec![Verb::Document],
            (State::Documented, _) => vec![Verb::Close],
            (State::Rejected | State::Abandoned | State::Cancelled | State::Closed, _) => vec![],
        };
        if self.is_cancellable() {
            verbs.push(Verb::Cancel);
        }
        if !self.is_terminal() && self != State::Draft {
            verbs.push(Verb::Problem);
        }
        verbs
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown state '{s}'"))
    }
}

/// One step a person can take on a request; the same word in the CLI and API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    Create,
    Amend,
    Submit,
    Approve,
    Reject,
    StartTest,
    RecordTest,
    Decide,
    AcknowledgeTest,
    ProposePlan,
    AcceptPlan,
    ApprovePlan,
    ConfirmPresence,
    StartProduction,
    RecordProduction,
    Document,
    Close,
    Cancel,
    RevisePlan,
    Pause,
    Resume,
    Problem,
    /// Taken by the product, never by a person: a newer version of a package
    /// appeared after the test, so the request is tested again.
    ReopenTest,
}

impl Verb {
    pub const ALL: [Verb; 22] = [
        Verb::Create,
        Verb::Amend,
        Verb::Submit,
        Verb::Approve,
        Verb::Reject,
        Verb::StartTest,
        Verb::RecordTest,
        Verb::Decide,
        Verb::AcknowledgeTest,
        Verb::ProposePlan,
        Verb::AcceptPlan,
        Verb::ApprovePlan,
        Verb::ConfirmPresence,
        Verb::StartProduction,
        Verb::RecordProduction,
        Verb::Document,
        Verb::Close,
        Verb::Cancel,
        Verb::RevisePlan,
        Verb::Pause,
        Verb::Resume,
        Verb::Problem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Amend => "amend",
            Verb::Submit => "submit",
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::StartTest => "start-test",
            Verb::RecordTest => "record-test",
            Verb::Decide => "decide",
            Verb::AcknowledgeTest => "acknowledge-test",
            Verb::ProposePlan => "propose-plan",
            Verb::AcceptPlan => "accept-plan",
            Verb::ApprovePlan => "approve-plan",
            Verb::ConfirmPresence => "confirm-presence",
            Verb::StartProduction => "start-production",
            Verb::RecordProduction => "record-production",
            Verb::Document => "document",
            Verb::Close => "close",
            Verb::Cancel => "cancel",
            Verb::RevisePlan => "revise-plan",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Problem => "problem",
            Verb::ReopenTest => "reopen-test",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verb::ALL
            .into_iter()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| format!("unknown verb '{s}'"))
    }
}

/// What a person reports after test or production work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkReport {
    pub passed: bool,
    pub notes: Option<Text>,
    /// A problem found during the work; a failed report needs one.
    pub problem: Option<NewProblem>,
}

/// A verb with what it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    Amend { fields: RequestFields },
    Submit,
    Approve { comment: Option<Text> },
    Reject { reason: Text },
    StartTest,
    RecordTest { report: WorkReport },
    Decide { decision: DecisionKind, reasoning: Text },
    AcknowledgeTest,
    ProposePlan { plan: PlanInput },
    AcceptPlan,
    ApprovePlan,
    ConfirmPresence,
    StartProduction,
    RecordProduction { report: WorkReport },
    Document { summary: Text },
    Close,
    Cancel { reason: Text },
    RevisePlan { plan: PlanInput },
    Pause { reason: Text },
    Resume,
    Problem { problem: NewProblem },
}

impl Command {
    pub fn verb(&self) -> Verb {
        match self {
            Command::Amend { .. } => Verb::Amend,
            Command::Submit => Verb::Submit,
            Command::Approve { .. } => Verb::Approve,
            Command::Reject { .. } => Verb::Reject,
            Command::StartTest => Verb::StartTest,
            Command::RecordTest { .. } => Verb::RecordTest,
            Command::Decide { .. } => Verb::Decide,
            Command::AcknowledgeTest => Verb::AcknowledgeTest,
            Command::ProposePlan { .. } => Verb::ProposePlan,
            Command::AcceptPlan => Verb::AcceptPlan,
            Command::ApprovePlan => Verb::ApprovePlan,
            Command::ConfirmPresence => Verb::ConfirmPresence,
            Command::StartProduction => Verb::StartProduction,
            Command::RecordProduction { .. } => Verb::RecordProduction,
            Command::Document { .. } => Verb::Document,
            Command::Close => Verb::Close,
            Command::Cancel { .. } => Verb::Cancel,
            Command::RevisePlan { .. } => Verb::RevisePlan,
            Command::Pause { .. } => Verb::Pause,
            Command::Resume => Verb::Resume,
            Command::Problem { .. } => Verb::Problem,
        }
    }
}

/// Everything a transition may look at besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub now: Timestamp,
    pub policy: &'a PolicyVersion,
    pub system: &'a System,
    pub actor: &'a Account,
    /// The accounts the request and the command name (officer, operator,
    /// participants); an id missing here is an unknown account.
    pub people: &'a [Account],
}

impl Context<'_> {
    fn person(&self, id: AccountId) -> Option<&Account> {
        if self.actor.id == id {
            return Some(self.actor);
        }
        self.people.iter().find(|account| account.id == id)
    }

    fn name_of(&self, id: AccountId) -> String {
        self.person(id).map_or_else(|| format!("account {id}"), |a| a.name.to_string())
    }

    fn deputy_may_act(&self) -> bool {
        self.policy.settings.deputy_may_act()
    }

    fn signoff(&self) -> Signoff {
        Signoff { by: self.actor.id, at: self.now }
    }
}

/// A change the core allows, ready to be persisted with its log entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub verb: Verb,
    pub request: UpdateRequest,
    /// `None` when the request is created.
    pub before: Option<State>,
    pub after: State,
    /// The details the control log entry records.
    pub details: Value,
    /// A documentation revision to record with the transition.
    pub documentation: Option<DocumentationRevision>,
}

/// Creates a draft request; the requester is the actor.
pub fn create(
    id: RequestId,
    fields: RequestFields,
    ctx: &Context<'_>,
) -> Result<Transition, Refusal> {
    refuse_admin_and_auditor(ctx.actor)?;
    if !ctx.actor.has(Role::SecurityOfficer) {
        return Err(Refusal::forbidden(format!(
            "'{}' is not a security officer: only security officers file update requests",
            ctx.actor.name
        )));
    }
    let request = UpdateRequest::draft(id, ctx.system.id, ctx.actor.id, fields, ctx.now);
    check_named_people(&request, ctx)?;
    let details = json!({ "fields": fields_details(&request.fields) });
    Ok(Transition {
        verb: Verb::Create,
        before: None,
        after: request.state,
        request,
        details,
        documentation: None,
    })
}

/// Applies `command` to `request`, or says why it may not be applied.
pub fn apply(
    request: &UpdateRequest,
    command: Command,
    ctx: &Context<'_>,
) -> Result<Transition, Refusal> {
    let verb = command.verb();
    authorize(request, &command, ctx)?;
    validate(request, &command, ctx)?;
    if !request.state.allowed_verbs(request.paused).contains(&verb) {
        return Err(not_now(request, verb));
    }

    let mut next = request.clone();
    let outcome = step(&mut next, command, ctx)?;
    Ok(Transition {
        verb,
        before: Some(request.state),
        after: next.state,
        request: next,
        details: outcome.details,
        documentation: outcome.documentation,
    })
}

/// What the product itself observed through its agents, which moves a
/// request without a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Every job of an environment's round ended; `report` sums them up and
    /// `runs` lists each endpoint's outcome for the log. `automatic_rollback`,
    /// when agents put old versions back on a failed check, says for the log
    /// that the rollback was pre-approved with the plan, and by whom.
    Runs {
        environment: EnvironmentKind,
        report: WorkReport,
        runs: Value,
        automatic_rollback: Option<Value>,
    },
    /// A newer version of one of the request's packages reached the test
    /// endpoints after the test and before production started.
    NewerVersion { package: String, tested: String, newer: String },
}

/// The states from which a newer version sends a request back to testing.
const REOPENABLE: [State; 7] = [
    State::TestPassed,
    State::RiskAccepted,
    State::TestAcknowledged,
    State::PlanProposed,
    State::PlanAccepted,
    State::PlanApproved,
    State::Ready,
];

/// Applies what the product observed. The actor is the product
/// (`Account::product`); the state rules are the same as for people.
pub fn apply_evidence(
    request: &UpdateRequest,
    evidence: Evidence,
    now: Timestamp,
    policy: &PolicyVersion,
    system: &System,
) -> Result<Transition, Refusal> {
    let product = Account::product();
    let ctx = Context { now, policy, system, actor: &product, people: &[] };
    let mut next = request.clone();
    let (verb, details) = match evidence {
        Evidence::Runs { environment, report, runs, automatic_rollback } => {
            let command = match environment {
                EnvironmentKind::Test => Command::RecordTest { report },
                EnvironmentKind::Prod => Command::RecordProduction { report },
            };
            let verb = command.verb();
            validate(request, &command, &ctx)?;
            if !request.state.allowed_verbs(request.paused).contains(&verb) {
                return Err(not_now(request, verb));
            }
            let mut details = step(&mut next, command, &ctx)?.details;
            details["runs"] = runs;
            if let Some(rollback) = automatic_rollback {
                details["automatic_rollback"] = rollback;
            }
            (verb, details)
        }
        Evidence::NewerVersion { package, tested, newer } => {
            if !REOPENABLE.contains(&request.state) {
                return Err(not_now(request, Verb::ReopenTest));
            }
            let target = PackageTarget::parse(&format!("{package}={newer}"))
                .map_err(|message| Refusal::invalid_fields(message, vec!["packages".to_owned()]))?;
            for pin in &mut next.fields.packages {
                if pin.name == package {
                    *pin = target.clone();
                }
            }
            next.test_result = None;
            next.test_acknowledgement = None;
            next.plan = None;
            next.presence = None;
            next.paused = false;
            next.state = State::Testing;
            let window_end = now + hours(policy.settings.default_work_hours);
            let details = json!({
                "package": package,
                "tested": tested,
                "newer": newer,
                "reason": format!("{package} {newer} is newer than the tested {tested}: the test is repeated with it"),
                "window_end": window_end,
            });
            (Verb::ReopenTest, details)
        }
    };
    Ok(Transition {
        verb,
        before: Some(request.state),
        after: next.state,
        request: next,
        details,
        documentation: None,
    })
}

fn not_now(request: &UpdateRequest, verb: Verb) -> Refusal {
    let paused = if request.paused { " (paused)" } else { "" };
    Refusal::conflict(
        format!("cannot {verb} request {}: it is {}{paused}", request.id, request.state),
        request.state,
        request.paused,
    )
}

// Authorisation: roles and the separation of duties.

/// Refuses admins and auditors, who never act on a request.
pub fn refuse_admin_and_auditor(actor: &Account) -> Result<(), Refusal> {
    if actor.has(Role::Admin) {
        return Err(Refusal::forbidden(format!(
            "'{}' is an admin: an admin never acts on an update request",
            actor.name
        )));
    }
    let works = [Role::SecurityOfficer, Role::Operator, Role::Owner].iter().any(|r| actor.has(*r));
    if !works {
        return Err(Refusal::forbidden(format!(
            "'{}' is an auditor: auditors read, they do not act",
            actor.name
        )));
    }
    Ok(())
}

/// Who the actor is to this request; one person may be several of these.
#[derive(Clone, Copy, Debug)]
struct Standing {
    requester: bool,
    officer: bool,
    operator: bool,
    owner: bool,
}

impl Standing {
    fn of(request: &UpdateRequest, ctx: &Context<'_>) -> Self {
        let actor = ctx.actor;
        Self {
            requester: request.requester == actor.id,
            officer: request.officer() == actor.id && actor.has(Role::SecurityOfficer),
            operator: request.fields.operator == Some(actor.id) && actor.has(Role::Operator),
            owner: actor.has(Role::Owner) && ctx.system.is_owner(actor.id, ctx.deputy_may_act()),
        }
    }
}

fn authorize(request: &UpdateRequest, command: &Command, ctx: &Context<'_>) -> Result<(), Refusal> {
    refuse_admin_and_auditor(ctx.actor)?;
    let standing = Standing::of(request, ctx);
    let name = &ctx.actor.name;
    let verb = command.verb();
    match command {
        Command::Amend { .. } | Command::Submit => {
            let files =
                ctx.actor.has(Role::SecurityOfficer) && (standing.requester || standing.officer);
            allow(files, || {
                format!(
                    "only the requester or the update officer may {verb} a request; '{name}' is neither"
                )
            })
        }
        Command::Approve { .. }
        | Command::Reject { .. }
        | Command::AcknowledgeTest
        | Command::ConfirmPresence => as_owner(request, ctx, standing, verb),
        Command::StartTest
        | Command::RecordTest { .. }
        | Command::ProposePlan { .. }
        | Command::RevisePlan { .. }
        | Command::ApprovePlan
        | Command::StartProduction
        | Command::RecordProduction { .. }
        | Command::Document { .. } => allow(standing.operator, || {
            format!("only the request's assigned operator may {verb}; '{name}' is not")
        }),
        Command::AcceptPlan => officer_or_owner(request, ctx, standing, verb),
        Command::Decide { decision, .. } => match decision {
            DecisionKind::RollBack => as_owner(request, ctx, standing, verb),
            _ => officer_or_owner(request, ctx, standing, verb),
        },
        Command::Close => allow(standing.officer, || {
            format!("only the request's update officer may close it; '{name}' is not")
        }),
        Command::Cancel { .. } => officer_or_owner(request, ctx, standing, verb),
        Command::Pause { .. } | Command::Resume => {
            if standing.operator || standing.officer {
                Ok(())
            } else {
                as_owner(request, ctx, standing, verb)
            }
        }
        Command::Problem { .. } => {
            let involved = standing.requester || standing.officer || standing.operator;
            if involved { Ok(()) } else { as_owner(request, ctx, standing, verb) }
        }
    }
}

fn allow(allowed: bool, message: impl FnOnce() -> String) -> Result<(), Refusal> {
    if allowed { Ok(()) } else { Err(Refusal::forbidden(message())) }
}

/// The actor acts as the system's owner: owner or deputy, and none of the
/// request's other parties.
fn as_owner(
    request: &UpdateRequest,
    ctx: &Context<'_>,
    standing: Standing,
    verb: Verb,
) -> Result<(), Refusal> {
    let name = &ctx.actor.name;
    let system = &ctx.system.name;
    if !standing.owner {
        let who =
            if ctx.deputy_may_act() { "owner or deputy" } else { "owner (policy: owner only)" };
        return Err(Refusal::forbidden(format!(
            "only the {who} of system '{system}' may {verb}; '{name}' is not"
        )));
    }
    let conflict = if request.requester == ctx.actor.id {
        Some("the requester")
    } else if request.officer() == ctx.actor.id {
        Some("the update officer")
    } else if request.fields.operator == Some(ctx.actor.id) {
        Some("the operator")
    } else {
        None
    };
    match conflict {
        Some(role) => Err(Refusal::forbidden(format!(
            "'{name}' is {role} of request {}: requester, owner and operator must be three different people",
            request.id
        ))),
        None => Ok(()),
    }
}

fn officer_or_owner(
    request: &UpdateRequest,
    ctx: &Context<'_>,
    standing: Standing,
    verb: Verb,
) -> Result<(), Refusal> {
    if standing.officer {
        return Ok(());
    }
    as_owner(request, ctx, standing, verb).map_err(|_| {
        Refusal::forbidden(format!(
            "only the update officer or the owner of system '{}' may {verb}; '{}' is neither",
            ctx.system.name, ctx.actor.name
        ))
    })
}

// Validation of what the command carries.

fn validate(request: &UpdateRequest, command: &Command, ctx: &Context<'_>) -> Result<(), Refusal> {
    match command {
        Command::Amend { fields } => {
            let mut amended = request.clone();
            amended.fields.amend(fields.clone());
            check_named_people(&amended, ctx)
        }
        Command::Submit => {
            let missing = request.fields.missing_fields();
            if !missing.is_empty() {
                return Err(Refusal::invalid_fields(
                    format!(
                        "request {} cannot be submitted: missing {}",
                        request.id,
                        missing.join(", ")
                    ),
                    missing,
                ));
            }
            check_named_people(request, ctx)
        }
        Command::RecordTest { report } => check_report(request, report, EnvironmentKind::Test),
        Command::RecordProduction { report } => {
            check_report(request, report, EnvironmentKind::Prod)
        }
        Command::ProposePlan { plan } | Command::RevisePlan { plan } => check_plan(plan, ctx),
        _ => Ok(()),
    }
}

/// The people a request names hold the roles their parts need and keep the
/// separation of duties.
fn check_named_people(request: &UpdateRequest, ctx: &Context<'_>) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    let officer_id = request.officer();
    match ctx.person(officer_id) {
        None => problems.push(("officer", format!("officer: account {officer_id} does not exist"))),
        Some(officer) if !officer.has(Role::SecurityOfficer) => problems
            .push(("officer", format!("officer: '{}' is not a security officer", officer.name))),
        Some(_) => {}
    }
    let officer_is_requester = officer_id == request.requester;
    if ctx.policy.settings.approval.officer_not_requester && officer_is_requester {
        problems.push((
            "officer",
            "officer: the policy requires an update officer other than the requester".to_owned(),
        ));
    }
    if let Some(operator_id) = request.fields.operator {
        match ctx.person(operator_id) {
            None => problems
                .push(("operator", format!("operator: account {operator_id} does not exist"))),
            Some(operator) if !operator.has(Role::Operator) => problems
                .push(("operator", format!("operator: '{}' is not an operator", operator.name))),
            Some(operator) => {
                let clash = if operator_id == request.requester {
                    Some("the requester")
                } else if operator_id == officer_id {
                    Some("the update officer")
                } else if ctx.system.is_owner(operator_id, true) {
                    Some("an owner of the system")
                } else {
                    None
                };
                if let Some(clash) = clash {
                    problems.push((
                        "operator",
                        format!(
                            "operator: '{}' is {clash}: requester, owner and operator must be three different people",
                            operator.name
                        ),
                    ));
                }
            }
        }
    }
    if ctx.system.is_owner(officer_id, true) {
        problems.push((
            "officer",
            format!(
                "officer: '{}' is an owner of the system and cannot also be its update officer",
                ctx.name_of(officer_id)
            ),
        ));
    }
    if let (Some(test), Some(prod)) = (request.fields.test_date, request.fields.prod_date)
        && prod < test
    {
        problems.push(("prod_date", format!("prod_date {prod} is before test_date {test}")));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let fields = problems.iter().map(|(field, _)| (*field).to_owned()).collect();
    let messages: Vec<String> = problems.into_iter().map(|(_, message)| message).collect();
    Err(Refusal::invalid_fields(messages.join("; "), fields))
}

fn check_report(
    request: &UpdateRequest,
    report: &WorkReport,
    environment: EnvironmentKind,
) -> Result<(), Refusal> {
    if let Some(problem) = &report.problem
        && problem.environment != environment
    {
        return Err(Refusal::invalid_fields(
            format!(
                "the problem is marked for {} but this report is for {environment}",
                problem.environment
            ),
            vec!["problem.environment".to_owned()],
        ));
    }
    let has_problem = report.problem.is_some()
        || request.problems.iter().any(|problem| problem.environment == environment);
    if !report.passed && !has_problem {
        return Err(Refusal::invalid_fields(
            format!(
                "a failed {environment} needs the problem found: give its description and criticality"
            ),
            vec!["problem".to_owned()],
        ));
    }
    Ok(())
}

/// The longest production plan accepted, in minutes (one week).
const MAX_PLAN_MINUTES: u32 = 7 * 24 * 60;

fn check_plan(plan: &PlanInput, ctx: &Context<'_>) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    if plan.start <= ctx.now {
        problems.push(("start", format!("plan start {} is not in the future", plan.start)));
    }
    if !(1..=MAX_PLAN_MINUTES).contains(&plan.duration_minutes) {
        problems.push((
            "duration_minutes",
            format!(
                "plan duration {} minutes must be 1 to {MAX_PLAN_MINUTES}",
                plan.duration_minutes
            ),
        ));
    }
    for participant in &plan.participants {
        if ctx.person(*participant).is_none() {
            problems.push((
                "participants",
                format!("participant account {participant} does not exist"),
            ));
        }
    }
    if plan.recipients.is_empty() && ctx.system.notify.is_empty() {
        problems.push((
            "recipients",
            format!(
                "the plan names no recipients and system '{}' has no users to notify",
                ctx.system.name
            ),
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let fields = problems.iter().map(|(field, _)| (*field).to_owned()).collect();
    let messages: Vec<String> = problems.into_iter().map(|(_, message)| message).collect();
    Err(Refusal::invalid_fields(messages.join("; "), fields))
}

// The steps themselves, with the guards that look at the request's history.

struct Outcome {
    details: Value,
    documentation: Option<DocumentationRevision>,
}

impl Outcome {
    fn details(details: Value) -> Result<Self, Refusal> {
        Ok(Self { details, documentation: None })
    }
}

fn step(
    request: &mut UpdateRequest,
    command: Command,
    ctx: &Context<'_>,
) -> Result<Outcome, Refusal> {
    let now = ctx.now;
    match command {
        Command::Amend { fields } => {
            request.fields.amend(fields);
            Outcome::details(json!({ "fields": fields_details(&request.fields) }))
        }
        Command::Submit => {
            request.state = State::Submitted;
            Outcome::details(json!({ "fields": fields_details(&request.fields) }))
        }
        Command::Approve { comment } => {
            request.owner_approval = Some(ctx.signoff());
            request.state = State::Approved;
            Outcome::details(json!({ "comment": comment }))
        }
        Command::Reject { reason } => {
            request.state = State::Rejected;
            let details = json!({ "reason": reason });
            request.end_reason = Some(reason);
            Outcome::details(details)
        }
        Command::StartTest => {
            require(request, request.owner_approval.is_some(), "the owner has not approved it")?;
            request.state = State::Testing;
            let window_end = request
                .fields
                .test_date
                .map(|start| start + hours(ctx.policy.settings.default_work_hours));
            Outcome::details(
                json!({ "test_date": request.fields.test_date, "window_end": window_end }),
            )
        }
        Command::RecordTest { report } => {
            let (passed, details) = record_work(request, report, EnvironmentKind::Test, ctx);
            request.state = if passed { State::TestPassed } else { State::TestFailed };
            Outcome::details(details)
        }
        Command::Decide { decision, reasoning } => decide(request, decision, reasoning, ctx),
        Command::AcknowledgeTest => {
            let test_ok = request.test_result.as_ref().is_some_and(|result| result.passed)
                || request.decided(DecisionKind::Proceed);
            require(request, test_ok, "the test neither passed nor had its risk accepted")?;
            request.test_acknowledgement = Some(ctx.signoff());
            request.state = State::TestAcknowledged;
            Outcome::details(json!({}))
        }
        Command::ProposePlan { plan } | Command::RevisePlan { plan } => {
            let revised = request.plan.is_some();
            let plan = new_plan(plan, ctx);
            let details = json!({
                "start": plan.start,
                "duration_minutes": plan.duration_minutes,
                "participants": plan.participants,
                "recipients": plan.recipients,
                "replaces_earlier_plan": revised,
            });
            request.plan = Some(plan);
            request.presence = None;
            request.state = State::PlanProposed;
            Outcome::details(details)
        }
        Command::AcceptPlan => accept_plan(request, ctx),
        Command::ApprovePlan => approve_plan(request, ctx),
        Command::ConfirmPresence => {
            let approved = request.plan.as_ref().is_some_and(|plan| plan.approval.is_some());
            require(request, approved, "the plan has not been approved")?;
            request.presence = Some(ctx.signoff());
            request.state = State::Ready;
            Outcome::details(json!({}))
        }
        Command::StartProduction => start_production(request, ctx),
        Command::RecordProduction { report } => {
            let (passed, details) = record_work(request, report, EnvironmentKind::Prod, ctx);
            request.state = if passed { State::ProdPassed } else { State::ProdFailed };
            Outcome::details(details)
        }
        Command::Document { summary } => {
            let number = ctx.system.documentation_revision + 1;
            request.documentation_revision = Some(number);
            request.state = State::Documented;
            let details = json!({ "revision": number, "summary": summary });
            let revision = DocumentationRevision {
                system: ctx.system.id,
                number,
                summary,
                request: Some(request.id),
                recorded_by: ctx.actor.id,
                recorded_at: now,
            };
            Ok(Outcome { details, documentation: Some(revision) })
        }
        Command::Close => {
            let documented = request.documentation_revision.is_some();
            require(request, documented, "no documentation revision has been recorded")?;
            request.state = State::Closed;
            Outcome::details(json!({ "revision": request.documentation_revision }))
        }
        Command::Cancel { reason } => {
            request.state = State::Cancelled;
            request.paused = false;
            let details = json!({ "reason": reason });
            request.end_reason = Some(reason);
            Outcome::details(details)
        }
        Command::Pause { reason } => {
            request.paused = true;
            Outcome::details(json!({ "reason": reason }))
        }
        Command::Resume => {
            request.paused = false;
            Outcome::details(json!({}))
        }
        Command::Problem { problem } => {
            let number = add_problem(request, problem, ctx);
            Outcome::details(problem_details(request, number))
        }
    }
}

fn hours(n: u32) -> SignedDuration {
    SignedDuration::from_hours(i64::from(n))
}

/// A guard on the request's history that the state alone should already imply.
fn require(request: &UpdateRequest, holds: bool, failure: &str) -> Result<(), Refusal> {
    if holds {
        return Ok(());
    }
    Err(Refusal::conflict(
        format!("request {} cannot move: {failure}", request.id),
        request.state,
        request.paused,
    ))
}

fn record_work(
    request: &mut UpdateRequest,
    report: WorkReport,
    environment: EnvironmentKind,
    ctx: &Context<'_>,
) -> (bool, Value) {
    let problem = report.problem.map(|problem| add_problem(request, problem, ctx));
    let result = WorkResult { passed: report.passed, notes: report.notes, recorded: ctx.signoff() };
    let details = json!({
        "passed": result.passed,
        "notes": result.notes,
        "problem": problem.map(|number| problem_details(request, number)),
    });
    match environment {
        EnvironmentKind::Test => request.test_result = Some(result),
        EnvironmentKind::Prod => request.production_result = Some(result),
    }
    (report.passed, details)
}

fn add_problem(request: &mut UpdateRequest, problem: NewProblem, ctx: &Context<'_>) -> u32 {
    let number = u32::try_from(request.problems.len()).unwrap_or(u32::MAX - 1) + 1;
    request.problems.push(Problem {
        number,
        description: problem.description,
        criticality: problem.criticality,
        environment: problem.environment,
        found_by: ctx.actor.id,
        found_at: ctx.now,
    });
    number
}

fn problem_details(request: &UpdateRequest, number: u32) -> Value {
    match request.problems.iter().find(|problem| problem.number == number) {
        Some(problem) => json!({
            "number": problem.number,
            "description": problem.description,
            "criticality": problem.criticality,
            "environment": problem.environment,
        }),
        None => Value::Null,
    }
}

fn decide(
    request: &mut UpdateRequest,
    decision: DecisionKind,
    reasoning: Text,
    ctx: &Context<'_>,
) -> Result<Outcome, Refusal> {
    let fits = match request.state {
        State::TestFailed => matches!(decision, DecisionKind::Proceed | DecisionKind::Abandon),
        State::ProdFailed => matches!(decision, DecisionKind::RollBack | DecisionKind::Accept),
        _ => false,
    };
    if !fits {
        let expected = if request.state == State::TestFailed {
            "proceed or abandon"
        } else {
            "roll-back or accept"
        };
        return Err(Refusal::conflict(
            format!(
                "decision '{}' does not apply to request {} in {}: decide {expected}",
                decision.as_str(),
                request.id,
                request.state
            ),
            request.state,
            request.paused,
        ));
    }

    if !decision.needs_officer_and_owner() {
        return Ok(Outcome {
            details: finish_decision(request, decision, reasoning, vec![ctx.actor.id], ctx),
            documentation: None,
        });
    }

    // Two calls: the update officer's and the owner's; the second completes it.
    let as_officer = request.officer() == ctx.actor.id;
    let mut consent = match request.pending_consent.take() {
        Some(pending) if pending.decision == decision => pending,
        _ => PendingConsent { decision, reasoning: reasoning.clone(), officer: None, owner: None },
    };
    let slot = if as_officer { &mut consent.officer } else { &mut consent.owner };
    if slot.is_some() {
        let party = if as_officer { "update officer" } else { "owner" };
        request.pending_consent = Some(consent);
        return Err(Refusal::conflict(
            format!(
                "the {party} has already decided '{}' on request {}; waiting for the other party",
                decision.as_str(),
                request.id
            ),
            request.state,
            request.paused,
        ));
    }
    *slot = Some(ctx.signoff());
    let party = if as_officer { "officer" } else { "owner" };
    match (consent.officer, consent.owner) {
        (Some(officer), Some(owner)) => {
            let mut details =
                finish_decision(request, decision, reasoning, vec![officer.by, owner.by], ctx);
            details["consent"] = json!(party);
            Ok(Outcome { details, documentation: None })
        }
        _ => {
            request.pending_consent = Some(consent);
            let awaiting = if as_officer { "owner" } else { "officer" };
            Outcome::details(json!({
                "decision": decision.as_str(),
                "reasoning": reasoning,
                "consent": party,
                "awaiting": awaiting,
                "complete": false,
            }))
        }
    }
}

fn finish_decision(
    request: &mut UpdateRequest,
    kind: DecisionKind,
    reasoning: Text,
    taken_by: Vec<AccountId>,
    ctx: &Context<'_>,
) -> Value {
    request.pending_consent = None;
    request.state = match kind {
        DecisionKind::Proceed => State::RiskAccepted,
        DecisionKind::Abandon => State::Abandoned,
        DecisionKind::RollBack => State::RolledBack,
        DecisionKind::Accept => State::ProdPassed,
    };
    let details = json!({
        "decision": kind.as_str(),
        "reasoning": reasoning,
        "taken_by": taken_by,
        "complete": true,
    });
    request.decisions.push(Decision { kind, reasoning, taken_by, taken_at: ctx.now });
    details
}

fn new_plan(input: PlanInput, ctx: &Context<'_>) -> Plan {
    let recipients =
        if input.recipients.is_empty() { ctx.system.notify.clone() } else { input.recipients };
    Plan {
        start: input.start,
        duration_minutes: input.duration_minutes,
        participants: input.participants,
        recipients,
        proposed: ctx.signoff(),
        officer_acceptance: None,
        owner_acceptance: None,
        approval: None,
        announced_at: None,
    }
}

fn accept_plan(request: &mut UpdateRequest, ctx: &Context<'_>) -> Result<Outcome, Refusal> {
    let id = request.id;
    let (state, paused) = (request.state, request.paused);
    let as_officer = request.officer() == ctx.actor.id;
    let Some(plan) = request.plan.as_mut() else {
        return Err(Refusal::conflict(format!("request {id} has no plan"), state, paused));
    };
    let slot = if as_officer { &mut plan.officer_acceptance } else { &mut plan.owner_acceptance };
    let party = if as_officer { "officer" } else { "owner" };
    if slot.is_some() {
        return Err(Refusal::conflict(
            format!(
                "the {party} has already accepted the plan of request {id}; waiting for the other party"
            ),
            state,
            paused,
        ));
    }
    *slot = Some(ctx.signoff());
    let complete = plan.officer_acceptance.is_some() && plan.owner_acceptance.is_some();
    if complete {
        request.state = State::PlanAccepted;
    }
    let awaiting = if complete {
        None
    } else if as_officer {
        Some("owner")
    } else {
        Some("officer")
    };
    Outcome::details(json!({ "consent": party, "complete": complete, "awaiting": awaiting }))
}

fn approve_plan(request: &mut UpdateRequest, ctx: &Context<'_>) -> Result<Outcome, Refusal> {
    let id = request.id;
    let (state, paused) = (request.state, request.paused);
    let notice = hours(ctx.policy.settings.notice_hours);
    let Some(plan) = request.plan.as_mut() else {
        return Err(Refusal::conflict(format!("request {id} has no plan"), state, paused));
    };
    let accepted = plan.officer_acceptance.is_some() && plan.owner_acceptance.is_some();
    if !accepted {
        return Err(Refusal::conflict(
            format!("the plan of request {id} has not been accepted by the officer and the owner"),
            state,
            paused,
        ));
    }
    let earliest = ctx.now + notice;
    if plan.start < earliest {
        return Err(Refusal::invalid_fields(
            format!(
                "plan start {} is less than the policy's {} h notice away; the earliest start that complies is {earliest}: revise the plan",
                plan.start, ctx.policy.settings.notice_hours
            ),
            vec!["start".to_owned()],
        ));
    }
    plan.approval = Some(ctx.signoff());
    plan.announced_at = Some(ctx.now);
    let details = json!({
        "announced_at": ctx.now,
        "plan_start": plan.start,
        "notice_hours": ctx.policy.settings.notice_hours,
        "recipients": plan.recipients,
    });
    request.state = State::PlanApproved;
    Outcome::details(details)
}

fn start_production(request: &mut UpdateRequest, ctx: &Context<'_>) -> Result<Outcome, Refusal> {
    let notice = hours(ctx.policy.settings.notice_hours);
    let test_ok = request.test_result.as_ref().is_some_and(|result| result.passed)
        || request.decided(DecisionKind::Proceed);
    let plan = request.plan.as_ref();
    let plan_agreed = plan.is_some_and(|plan| {
        plan.officer_acceptance.is_some()
            && plan.owner_acceptance.is_some()
            && plan.approval.is_some()
    });
    let announced_at = plan.and_then(|plan| plan.announced_at);
    let guards = [
        (request.owner_approval.is_some(), "the owner has not approved it".to_owned()),
        (test_ok, "the test neither passed nor had its risk accepted".to_owned()),
        (
            request.test_acknowledgement.is_some(),
            "the owner has not acknowledged the test".to_owned(),
        ),
        (plan_agreed, "the plan has not been accepted and approved".to_owned()),
        (announced_at.is_some(), "no announcement has been recorded".to_owned()),
        (request.presence.is_some(), "the owner has not confirmed presence".to_owned()),
    ];
    for (holds, failure) in guards {
        require(request, holds, &failure)?;
    }
    if let Some(announced_at) = announced_at {
        let earliest = announced_at + notice;
        if ctx.now < earliest {
            return Err(Refusal::conflict(
                format!(
                    "production work on request {} may start from {earliest}: the announcement went out at {announced_at} and the policy asks {} h notice",
                    request.id, ctx.policy.settings.notice_hours
                ),
                request.state,
                request.paused,
            ));
        }
    }
    request.production_start = Some(ctx.signoff());
    request.state = State::ProdUpdating;
    let window_end =
        plan.map(|plan| plan.start + SignedDuration::from_mins(i64::from(plan.duration_minutes)));
    Outcome::details(json!({ "announced_at": announced_at, "window_end": window_end }))
}

fn fields_details(fields: &RequestFields) -> Value {
    json!({
        "officer": fields.officer,
        "operator": fields.operator,
        "test_date": fields.test_date,
        "prod_date": fields.prod_date,
        "packages": fields.packages.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "purpose": fields.purpose,
        "downtime": fields.downtime,
        "description": fields.description,
    })
}
