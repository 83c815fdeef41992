//! Property test of the lifecycle as the store persists it: random sequences of every verb,
//! allowed or not, by every kind of actor, are applied to a real database; then an oracle
//! written from DESIGN.md, not from the guard code, reads the control log back and checks
//! that nothing reached production work without what the policy asks for, that the separation
//! of duties held, that terminal states stayed terminal and that the chain verifies.
//!
//! The generator is steered towards closed, so that enough sequences get far enough to matter;
//! the shares that reached production work and closed are printed, and the test fails when
//! they fall below 30% and 10%.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use common::*;
use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{Command, WorkReport};
use patchwarden_core::log::verify_chain;
use patchwarden_core::request::{Criticality, DecisionKind, NewProblem, PlanInput, RequestFields};
use patchwarden_core::system::{EnvironmentKind, NewSystem, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{
    AccountId, Email, LogEntry, PolicySettings, RequestId, Role, Roles, State, System, SystemId,
    UpdateRequest,
};
use patchwarden_store::{LogFilter, Store, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{
    Config, RngAlgorithm, TestCaseError, TestCaseResult, TestRng, TestRunner,
};
use serde_json::Value;

// The cast: the harness's people, one person holding several roles, and a second system.

/// Security officer, operator and owner at once, and the deputy of `ledger`.
const SAM: &str = "sam";
/// An owner who is also an operator, and owner of no system.
const KIM: &str = "kim";

/// Everyone who may try a verb, the admin and the auditor included.
const ACTORS: [&str; 9] = [ADMIN, OFFICER, OWNER, DEPUTY, OPERATOR, AUDITOR, OTHER_OWNER, SAM, KIM];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum On {
    /// Owned by oscar, with dora as deputy (the harness's system).
    Payroll,
    /// Owned by otto, with sam as deputy.
    Ledger,
}

/// Who files a request, on which system, naming which update officer and operator.
#[derive(Clone, Copy, Debug)]
struct Filing {
    on: On,
    requester: &'static str,
    officer: &'static str,
    operator: &'static str,
}

/// The filings a sequence starts from; each is one the policy allows.
const FILINGS: [Filing; 8] = [
    Filing { on: On::Payroll, requester: OFFICER, officer: OFFICER, operator: OPERATOR },
    Filing { on: On::Payroll, requester: OFFICER, officer: SAM, operator: OPERATOR },
    Filing { on: On::Payroll, requester: SAM, officer: OFFICER, operator: OPERATOR },
    Filing { on: On::Payroll, requester: OFFICER, officer: OFFICER, operator: SAM },
    Filing { on: On::Payroll, requester: OFFICER, officer: OFFICER, operator: KIM },
    Filing { on: On::Ledger, requester: OFFICER, officer: OFFICER, operator: OPERATOR },
    Filing { on: On::Ledger, requester: SAM, officer: OFFICER, operator: OPERATOR },
    Filing { on: On::Ledger, requester: OFFICER, officer: OFFICER, operator: KIM },
];

/// The accounts and systems of one database, by name.
struct World {
    payroll: System,
    ledger: System,
    ids: Vec<(&'static str, AccountId)>,
}

impl World {
    async fn set_up(store: &Store) -> Self {
        let cast = cast(store).await;
        account(store, SAM, "security-officer,operator,owner").await;
        account(store, KIM, "owner,operator").await;
        let mut ids = Vec::new();
        for name in ACTORS {
            ids.push((name, store.account_by_name(name).await.unwrap().id));
        }
        let id = |name: &str| ids.iter().find(|(n, _)| *n == name).unwrap().1;
        let ledger = NewSystem {
            name: SystemName::parse("ledger").unwrap(),
            owner: id(OTHER_OWNER),
            deputy: Some(id(SAM)),
            stakeholders: vec![],
            notify: vec![Email::parse("ledger-users@example.org").unwrap()],
            time_zone: TimeZoneName::parse("Europe/Vienna").unwrap(),
        };
        let ledger = store.create_system(OFFICER, ledger, t0()).await.unwrap();
        Self { payroll: cast.system, ledger, ids }
    }

    fn id(&self, name: &str) -> AccountId {
        self.ids.iter().find(|(n, _)| *n == name).map(|(_, id)| *id).unwrap()
    }

    fn name(&self, id: AccountId) -> &'static str {
        self.ids.iter().find(|(_, i)| *i == id).map_or("nobody", |(name, _)| name)
    }

    fn system(&self, on: On) -> &System {
        match on {
            On::Payroll => &self.payroll,
            On::Ledger => &self.ledger,
        }
    }

    fn system_by_id(&self, id: SystemId) -> &System {
        if self.ledger.id == id { &self.ledger } else { &self.payroll }
    }

    async fn file(&self, store: &Store, filing: Filing, now: Timestamp) -> Filed {
        let mut fields = complete_fields(store).await;
        fields.officer = Some(self.id(filing.officer));
        fields.operator = Some(self.id(filing.operator));
        let system = self.system(filing.on).id;
        let (transition, _) = store.create_request(filing.requester, system, fields, now).await?;
        Ok(Some(transition.request.id))
    }
}

/// What a move got from the store: the id of the request it filed, if it filed one.
type Filed = Result<Option<RequestId>, StoreError>;

// The generator: a sequence is a filing and a list of moves; each move is either the next step
// towards closed by the right person, or a random verb by a random actor.

#[derive(Clone, Debug)]
struct Sequence {
    filing: usize,
    /// The percentage of moves that are steered towards closed.
    steer_percent: u8,
    moves: Vec<Move>,
}

/// Raw choices; `play` reads them against the request as it stands.
#[derive(Clone, Copy, Debug)]
struct Move {
    roll: u8,
    verb: u8,
    actor: u8,
    wait: u8,
    pick: u8,
    target: u8,
}

fn sequences() -> impl Strategy<Value = Sequence> {
    let one_move = (0..100u8, any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
        .prop_map(|(roll, verb, actor, wait, pick, target)| Move {
            roll,
            verb,
            actor,
            wait,
            pick,
            target,
        });
    (0..FILINGS.len(), 35..=95u8, prop::collection::vec(one_move, 8..=72))
        .prop_map(|(filing, steer_percent, moves)| Sequence { filing, steer_percent, moves })
}

/// What one move does.
#[derive(Debug)]
enum Action {
    File(Filing),
    Apply(Command),
}

/// The notice the generator steers by; the oracle reads the policy itself.
const NOTICE: SignedDuration = SignedDuration::from_hours(24);

/// How far a random move moves the clock.
const WAIT_MINUTES: [i64; 10] = [0, 5, 30, 60, 120, 360, 720, 1440, 1800, 2880];

fn text(raw: &str) -> Text {
    Text::parse("text", raw).unwrap()
}

fn problem(environment: EnvironmentKind, pick: u8) -> NewProblem {
    let criticality =
        [Criticality::Low, Criticality::Medium, Criticality::High, Criticality::Critical];
    NewProblem {
        description: text("nginx does not come back after the restart"),
        criticality: criticality[usize::from(pick % 4)],
        environment,
    }
}

fn report(passed: bool, problem: Option<NewProblem>) -> WorkReport {
    WorkReport { passed, notes: None, problem }
}

/// A plan starting `hours` from `now`, valid in every other respect.
fn plan_in(now: Timestamp, hours: i64) -> PlanInput {
    PlanInput {
        start: now + SignedDuration::from_hours(hours),
        duration_minutes: 120,
        participants: vec![],
        recipients: vec![],
    }
}

/// A plan that may start in the past, last too long or name an unknown participant.
fn any_plan(world: &World, now: Timestamp, pick: u8) -> PlanInput {
    let mut plan = plan_in(now, i64::from(pick % 120) - 8);
    plan.duration_minutes = match pick % 7 {
        0 => 0,
        1 => 20_000,
        n => 60 * u32::from(n),
    };
    if pick.is_multiple_of(11) {
        plan.participants = vec![AccountId(9999)];
    } else if pick.is_multiple_of(5) {
        plan.participants = vec![world.id(OPERATOR)];
        plan.recipients = vec![Email::parse("ops@example.org").unwrap()];
    }
    plan
}

/// An amendment naming a random person as officer or operator, or changing a date or text.
fn amendment(pick: u8, world: &World) -> RequestFields {
    let person = world.id(ACTORS[usize::from(pick / 4) % ACTORS.len()]);
    match pick % 4 {
        0 => RequestFields { officer: Some(person), ..RequestFields::default() },
        1 => RequestFields { operator: Some(person), ..RequestFields::default() },
        2 => RequestFields { test_date: Some(at_hours(48)), ..RequestFields::default() },
        _ => RequestFields {
            purpose: Some(text("fix CVE-2024-5535 and more")),
            ..Default::default()
        },
    }
}

/// Any verb with random content, by anyone.
fn random_action(world: &World, step: &Move, now: Timestamp) -> (&'static str, Action, Timestamp) {
    let at = now + SignedDuration::from_mins(WAIT_MINUTES[usize::from(step.wait) % 10]);
    let actor = ACTORS[usize::from(step.actor) % ACTORS.len()];
    let pick = step.pick;
    let environment = if pick & 8 == 0 { EnvironmentKind::Test } else { EnvironmentKind::Prod };
    let found = (!pick.is_multiple_of(4)).then(|| problem(environment, pick));
    let decisions = [
        DecisionKind::Proceed,
        DecisionKind::Abandon,
        DecisionKind::RollBack,
        DecisionKind::Accept,
    ];
    let command = match step.verb % 22 {
        0 => {
            let filing = Filing {
                on: if pick.is_multiple_of(2) { On::Payroll } else { On::Ledger },
                requester: if pick & 64 == 0 {
                    actor
                } else {
                    [OFFICER, SAM][usize::from(pick % 2)]
                },
                officer: [OFFICER, OFFICER, SAM, OWNER][usize::from(pick / 2 % 4)],
                operator: [OPERATOR, KIM, SAM, OFFICER, DEPUTY][usize::from(pick / 8 % 5)],
            };
            return (actor, Action::File(filing), at);
        }
        1 => Command::Amend { fields: amendment(pick, world) },
        2 => Command::Submit,
        3 => Command::Approve { comment: pick.is_multiple_of(2).then(|| text("fine by me")) },
        4 => Command::Reject { reason: text("not this quarter") },
        5 => Command::StartTest,
        6 => Command::RecordTest { report: report(!pick.is_multiple_of(3), found) },
        7 => Command::Decide {
            decision: decisions[usize::from(pick % 4)],
            reasoning: text("weighed the risk"),
        },
        8 => Command::AcknowledgeTest,
        9 => Command::ProposePlan { plan: any_plan(world, at, pick) },
        10 => Command::AcceptPlan,
        11 => Command::ApprovePlan,
        12 => Command::ConfirmPresence,
        13 => Command::StartProduction,
        14 => Command::RecordProduction { report: report(!pick.is_multiple_of(3), found) },
        15 => Command::Document { summary: text("runbook revised") },
        16 => Command::Close,
        17 => Command::Cancel { reason: text("superseded") },
        18 => Command::RevisePlan { plan: any_plan(world, at, pick) },
        19 => Command::Pause { reason: text("waiting for the vendor") },
        20 => Command::Resume,
        _ => Command::Problem { problem: problem(environment, pick) },
    };
    (actor, Action::Apply(command), at)
}

/// The next step towards closed by the person who should take it, or `None` when the request
/// has ended.
fn steered_action(
    world: &World,
    request: &UpdateRequest,
    step: &Move,
    now: Timestamp,
) -> Option<(&'static str, Action, Timestamp)> {
    let at = now + SignedDuration::from_mins(i64::from(step.wait % 90));
    let pick = step.pick;
    let system = world.system_by_id(request.system);
    let officer = world.name(request.officer());
    let operator = world.name(request.fields.operator?);
    let owner_id =
        if pick.is_multiple_of(2) { system.owner } else { system.deputy.unwrap_or(system.owner) };
    let owner = world.name(owner_id);
    let plan = request.plan.as_ref();
    let plan_stale =
        plan.is_some_and(|plan| plan.start < at + NOTICE + SignedDuration::from_hours(1));

    let (actor, command) = match (request.state, request.paused) {
        (State::Draft, _) if pick.is_multiple_of(5) => {
            (officer, Command::Amend { fields: amendment(pick / 5, world) })
        }
        (State::Draft, _) => (officer, Command::Submit),
        (State::Submitted, _) => (owner, Command::Approve { comment: None }),
        (State::Approved, _) => (operator, Command::StartTest),
        (State::Testing | State::ProdUpdating, true) => (operator, Command::Resume),
        (State::Testing | State::ProdUpdating, false) if pick.is_multiple_of(7) => {
            let actor = [operator, officer, owner][usize::from(pick / 7 % 3)];
            (actor, Command::Pause { reason: text("the vendor published a fix to the fix") })
        }
        (State::Testing, false) => {
            let passed = !pick.is_multiple_of(5);
            let found = (!passed).then(|| problem(EnvironmentKind::Test, pick));
            (operator, Command::RecordTest { report: report(passed, found) })
        }
        (State::TestPassed | State::RiskAccepted, _) => (owner, Command::AcknowledgeTest),
        (State::TestFailed, _) => {
            let give_up = pick.is_multiple_of(8);
            decision(request, pick, (officer, owner), give_up, DecisionKind::Abandon)
        }
        (State::TestAcknowledged, _) => {
            let plan = plan_in(at, 12 + i64::from(pick % 96));
            (operator, Command::ProposePlan { plan })
        }
        (State::PlanProposed | State::PlanAccepted, _)
            if plan_stale && !step.wait.is_multiple_of(5) =>
        {
            let plan = plan_in(at, 26 + i64::from(pick % 72));
            (operator, Command::RevisePlan { plan })
        }
        (State::PlanProposed, _) => {
            let officer_in = plan.is_some_and(|plan| plan.officer_acceptance.is_some());
            let owner_in = plan.is_some_and(|plan| plan.owner_acceptance.is_some());
            let by_officer = !officer_in && (owner_in || pick % 4 < 2);
            (if by_officer { officer } else { owner }, Command::AcceptPlan)
        }
        (State::PlanAccepted, _) => (operator, Command::ApprovePlan),
        (State::PlanApproved, _) => (owner, Command::ConfirmPresence),
        (State::Ready, _) => {
            let announced = plan.and_then(|plan| plan.announced_at).unwrap_or(at);
            let start = plan.map_or(at, |plan| plan.start);
            let when = if step.wait.is_multiple_of(4) {
                at
            } else {
                at.max(announced + NOTICE).max(start)
            };
            return Some((operator, Action::Apply(Command::StartProduction), when));
        }
        (State::ProdUpdating, false) => {
            let passed = !pick.is_multiple_of(4);
            let found = (!passed).then(|| problem(EnvironmentKind::Prod, pick));
            (operator, Command::RecordProduction { report: report(passed, found) })
        }
        (State::ProdFailed, _) => {
            let roll_back = pick.is_multiple_of(3);
            decision(request, pick, (officer, owner), roll_back, DecisionKind::RollBack)
        }
        (State::ProdPassed | State::RolledBack, _) => {
            (operator, Command::Document { summary: text("runbook revised for openssl") })
        }
        (State::Documented, _) => (officer, Command::Close),
        (State::Rejected | State::Abandoned | State::Cancelled | State::Closed, _) => return None,
    };
    Some((actor, Action::Apply(command), at))
}

/// A decision after a failed test or production update: the one-call kind (abandon by the
/// officer, roll back by the owner), or the half of the two-call kind still missing.
fn decision(
    request: &UpdateRequest,
    pick: u8,
    (officer, owner): (&'static str, &'static str),
    single: bool,
    single_kind: DecisionKind,
) -> (&'static str, Command) {
    let reasoning = text("the failure is understood");
    if single {
        let actor = if single_kind == DecisionKind::RollBack { owner } else { officer };
        return (actor, Command::Decide { decision: single_kind, reasoning });
    }
    let both_kind = match request.state {
        State::TestFailed => DecisionKind::Proceed,
        _ => DecisionKind::Accept,
    };
    let pending = request.pending_consent.as_ref().filter(|pending| pending.decision == both_kind);
    let actor = match pending {
        Some(pending) if pending.officer.is_some() => owner,
        Some(_) => officer,
        None if pick % 4 < 2 => officer,
        None => owner,
    };
    (actor, Command::Decide { decision: both_kind, reasoning })
}

/// A refusal is what a wrong verb should get; anything else fails the case.
fn expected(result: Filed, what: &str) -> Result<(), TestCaseError> {
    match result {
        Ok(_) | Err(StoreError::Refused(_) | StoreError::Contended(_)) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("{what}: unexpected error: {other}"))),
    }
}

/// Files the sequence's request and applies its moves; returns the request's id.
async fn play(
    store: &Store,
    world: &World,
    sequence: &Sequence,
) -> Result<RequestId, TestCaseError> {
    let filing = FILINGS[sequence.filing];
    let primary = world.file(store, filing, t0()).await.unwrap().unwrap();
    let mut requests = vec![primary];
    let mut now = t0();
    for (n, step) in sequence.moves.iter().enumerate() {
        // Steer, or pick any verb; time only moves forward.
        let steered = if step.roll < sequence.steer_percent {
            let request = store.request(primary).await.unwrap();
            steered_action(world, &request, step, now)
        } else {
            None
        };
        let target = match steered {
            Some(_) => primary,
            None => requests[usize::from(step.target) % requests.len()],
        };
        let (actor, action, at) = steered.unwrap_or_else(|| random_action(world, step, now));
        now = at;

        // Apply it; a new request joins the targets.
        let what = format!("move {n}: {actor} {action:?} on request {target} at {at}");
        let result = match action {
            Action::File(filing) => world.file(store, filing, at).await,
            Action::Apply(command) => store.apply(actor, target, command, at).await.map(|_| None),
        };
        if let Ok(Some(filed)) = &result {
            requests.push(*filed);
        }
        expected(result, &what)?;
    }
    Ok(primary)
}

// The oracle: the policy of DESIGN.md read against the persisted log. It knows the accounts,
// the systems and the policy versions, and nothing of how the core decides.

/// Who holds which roles, who owns which system, and what each policy version says.
#[derive(Debug)]
struct Directory {
    accounts: HashMap<String, (AccountId, Roles)>,
    names: HashMap<AccountId, String>,
    systems: HashMap<i64, System>,
    policies: HashMap<u32, PolicySettings>,
}

impl Directory {
    async fn read(store: &Store) -> Self {
        let accounts = store.accounts().await.unwrap();
        let names = accounts.iter().map(|a| (a.id, a.name.to_string())).collect();
        let accounts =
            accounts.into_iter().map(|a| (a.name.to_string(), (a.id, a.roles))).collect();
        let systems = store.systems().await.unwrap().into_iter().map(|s| (s.id.0, s)).collect();
        let history = store.policy_history().await.unwrap();
        let policies = history.into_iter().map(|v| (v.number, v.settings)).collect();
        Self { accounts, names, systems, policies }
    }

    fn holds(&self, name: &str, role: Role) -> bool {
        self.accounts.get(name).is_some_and(|(_, roles)| roles.has(role))
    }

    /// The entry's actor acts as the system's owner: the owner, or the deputy unless the policy
    /// says owner only; holds the owner role; and is none of the request's other parties.
    fn speaks_for_owner(&self, entry: &LogEntry, parties: &Parties) -> bool {
        let Some((id, roles)) = self.accounts.get(&entry.actor) else { return false };
        let Some(system) = entry.system.and_then(|s| self.systems.get(&s)) else { return false };
        let deputy_counts =
            self.policies.get(&entry.policy_version).is_some_and(|p| !p.approval.owner_only);
        let named = system.owner == *id || (deputy_counts && system.deputy == Some(*id));
        roles.has(Role::Owner) && named && !parties.includes(&entry.actor)
    }

    fn is_officer(&self, entry: &LogEntry, parties: &Parties) -> bool {
        entry.actor == parties.officer && self.holds(&entry.actor, Role::SecurityOfficer)
    }

    fn is_operator(&self, entry: &LogEntry, parties: &Parties) -> bool {
        parties.operator.as_deref() == Some(entry.actor.as_str())
            && self.holds(&entry.actor, Role::Operator)
    }

    fn notice(&self, version: u32) -> Option<SignedDuration> {
        let settings = self.policies.get(&version)?;
        Some(SignedDuration::from_hours(i64::from(settings.notice_hours)))
    }

    /// The name of the account a `fields` member of an entry's details names.
    fn named(&self, value: &Value) -> Option<String> {
        let id = AccountId(value.as_i64()?);
        self.names.get(&id).cloned()
    }
}

/// The requester, the update officer and the operator of one request, as its log says.
#[derive(Debug, Default)]
struct Parties {
    requester: String,
    officer: String,
    operator: Option<String>,
}

impl Parties {
    fn includes(&self, name: &str) -> bool {
        self.requester == name || self.officer == name || self.operator.as_deref() == Some(name)
    }

    /// Follows the fields the creation, an amendment or the submission recorded.
    fn follow(&mut self, dir: &Directory, entry: &LogEntry) {
        if entry.action == "create" {
            self.requester = entry.actor.clone();
        }
        if matches!(entry.action.as_str(), "create" | "amend" | "submit") {
            let fields = &details(entry)["fields"];
            self.officer = dir.named(&fields["officer"]).unwrap_or_else(|| self.requester.clone());
            self.operator = dir.named(&fields["operator"]);
        }
    }
}

fn details(entry: &LogEntry) -> Value {
    serde_json::from_str(&entry.details).unwrap_or(Value::Null)
}

fn instant(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

/// Every way the log breaks the policy, one line each; empty when it keeps it.
fn policy_violations(dir: &Directory, log: &[LogEntry]) -> Vec<String> {
    let mut by_request: BTreeMap<i64, Vec<&LogEntry>> = BTreeMap::new();
    for entry in log {
        if let Some(request) = entry.request {
            by_request.entry(request).or_default().push(entry);
        }
    }
    let mut violations = Vec::new();
    for (request, entries) in &by_request {
        let found = request_violations(dir, entries);
        violations.extend(found.into_iter().map(|v| format!("request {request}: {v}")));
    }
    violations
}

fn request_violations(dir: &Directory, entries: &[&LogEntry]) -> Vec<String> {
    let mut violations = history_violations(entries);
    let mut parties = Parties::default();
    for (n, entry) in entries.iter().enumerate() {
        parties.follow(dir, entry);
        let at = |what: String| {
            format!("entry {} ({} by {}): {what}", entry.seq, entry.action, entry.actor)
        };

        // Only people with a working role act on a request: never an admin, never an auditor.
        if dir.holds(&entry.actor, Role::Admin) {
            violations.push(at("an admin acted on a request".to_owned()));
        }
        let works = [Role::SecurityOfficer, Role::Operator, Role::Owner];
        if !works.iter().any(|role| dir.holds(&entry.actor, *role)) {
            violations.push(at("the actor holds no working role".to_owned()));
        }

        // Only the owner or deputy approves, and never the requester.
        if entry.action == "approve" {
            if entry.actor == parties.requester {
                violations.push(at("the requester approved".to_owned()));
            } else if !dir.speaks_for_owner(entry, &parties) {
                let who = "approved by someone not the owner or deputy, or a party to it";
                violations.push(at(who.to_owned()));
            }
        }

        // Production work starts only when everything the policy asks for is in.
        if entry.action == "start-production" {
            let missing = production_start_violations(dir, &parties, &entries[..n], entry);
            violations.extend(missing.into_iter().map(at));
        }

        // A failed update is rolled back with the owner's approval, or accepted by the officer
        // and the owner; closing needs the officer and a documentation revision.
        let missing = ending_violations(dir, &parties, &entries[..n], entry);
        violations.extend(missing.into_iter().map(at));
    }
    violations
}

fn ending_violations(
    dir: &Directory,
    parties: &Parties,
    earlier: &[&LogEntry],
    entry: &LogEntry,
) -> Vec<String> {
    let mut missing = Vec::new();
    let from_failure = entry.state_before == Some(State::ProdFailed);
    let since_work =
        earlier.iter().rposition(|e| e.action == "record-production").map_or(0, |i| i + 1);
    let decided = |kind: &str, by: &dyn Fn(&LogEntry) -> bool| {
        earlier[since_work..]
            .iter()
            .chain([&entry])
            .any(|e| e.action == "decide" && details(e)["decision"] == kind && by(e))
    };
    let officer = |e: &LogEntry| dir.is_officer(e, parties);
    let owner = |e: &LogEntry| dir.speaks_for_owner(e, parties);
    if from_failure && entry.state_after == Some(State::RolledBack) && !owner(entry) {
        missing.push("rolled back without the owner's decision".to_owned());
    }
    let accepted = from_failure && entry.state_after == Some(State::ProdPassed);
    if accepted && !(decided("accept", &officer) && decided("accept", &owner)) {
        missing.push("a failed update accepted without the officer and the owner".to_owned());
    }
    if entry.action == "close" {
        if !officer(entry) {
            missing.push("closed by someone other than the update officer".to_owned());
        }
        let documented =
            earlier.iter().any(|e| e.action == "document" && details(e)["revision"].is_u64());
        if !documented {
            missing.push("closed without a documentation revision".to_owned());
        }
    }
    missing
}

/// The states follow on from each other, from a creation on, and stop at a terminal state.
fn history_violations(entries: &[&LogEntry]) -> Vec<String> {
    let mut violations = Vec::new();
    let Some(first) = entries.first() else { return violations };
    if first.action != "create" || first.state_before.is_some() {
        violations.push(format!("entry {} is its first entry but no creation", first.seq));
    }
    for pair in entries.windows(2) {
        let (before, entry) = (pair[0], pair[1]);
        if entry.state_before != before.state_after {
            violations.push(format!(
                "entry {} ({}) has state_before {:?} but entry {} left it {:?}",
                entry.seq, entry.action, entry.state_before, before.seq, before.state_after
            ));
        }
        if let Some(end) = before.state_after.filter(|state| terminal_by_design(*state)) {
            violations.push(format!(
                "entry {} ({}) follows the terminal state {end:?} of entry {}",
                entry.seq, entry.action, before.seq
            ));
        }
    }
    violations
}

/// The terminal states as DESIGN.md lists them, spelt out here rather than asked of the core.
fn terminal_by_design(state: State) -> bool {
    matches!(state.as_str(), "rejected" | "abandoned" | "cancelled" | "closed")
}

/// What is missing for the production start `start`, judged by the entries before it.
fn production_start_violations(
    dir: &Directory,
    parties: &Parties,
    earlier: &[&LogEntry],
    start: &LogEntry,
) -> Vec<String> {
    let mut missing = Vec::new();
    let by_owner =
        |e: &LogEntry, action: &str| e.action == action && dir.speaks_for_owner(e, parties);

    // The request's operator starts the work.
    if !dir.is_operator(start, parties) {
        missing.push("production work started by someone other than the operator".to_owned());
    }

    // The owner approved the request.
    if !earlier.iter().any(|e| by_owner(e, "approve")) {
        missing.push("production work without the owner's approval".to_owned());
    }

    // The test passed or its risk was accepted, and the owner acknowledged that afterwards.
    match test_cleared_at(dir, parties, earlier) {
        None => missing.push("production work without a passed test or accepted risk".to_owned()),
        Some(cleared) => {
            if !earlier[cleared + 1..].iter().any(|e| by_owner(e, "acknowledge-test")) {
                missing.push("production work without the owner's acknowledgement".to_owned());
            }
        }
    }

    missing.extend(plan_violations(dir, parties, earlier, start));
    missing
}

/// Where, among `earlier`, the latest test was cleared: its passing record, or the later of the
/// officer's and the owner's decisions to proceed after it failed.
fn test_cleared_at(dir: &Directory, parties: &Parties, earlier: &[&LogEntry]) -> Option<usize> {
    let tested = earlier.iter().rposition(|e| e.action == "record-test")?;
    if details(earlier[tested])["passed"] == Value::Bool(true) {
        return Some(tested);
    }
    let proceed = |e: &LogEntry| e.action == "decide" && details(e)["decision"] == "proceed";
    let after = tested + 1..earlier.len();
    let officer =
        after.clone().find(|&i| proceed(earlier[i]) && dir.is_officer(earlier[i], parties));
    let owner =
        after.clone().find(|&i| proceed(earlier[i]) && dir.speaks_for_owner(earlier[i], parties));
    Some(officer?.max(owner?))
}

/// The latest plan was accepted by the officer and the owner, then approved by the operator
/// with an announcement the notice period ahead of the start, then the owner confirmed presence.
fn plan_violations(
    dir: &Directory,
    parties: &Parties,
    earlier: &[&LogEntry],
    start: &LogEntry,
) -> Vec<String> {
    let planned = |e: &LogEntry| matches!(e.action.as_str(), "propose-plan" | "revise-plan");
    let Some(proposed) = earlier.iter().rposition(|e| planned(e)) else {
        return vec!["production work without a plan".to_owned()];
    };
    let find = |from: usize, matches: &dyn Fn(&LogEntry) -> bool| {
        (from..earlier.len()).find(|&i| matches(earlier[i]))
    };
    let accepted = |e: &LogEntry| e.action == "accept-plan";
    let by_officer = find(proposed + 1, &|e| accepted(e) && dir.is_officer(e, parties));
    let by_owner = find(proposed + 1, &|e| accepted(e) && dir.speaks_for_owner(e, parties));
    let (Some(by_officer), Some(by_owner)) = (by_officer, by_owner) else {
        return vec![
            "production work on a plan the officer and the owner did not accept".to_owned(),
        ];
    };
    let approving = |e: &LogEntry| e.action == "approve-plan" && dir.is_operator(e, parties);
    let Some(approved) = find(by_officer.max(by_owner) + 1, &approving) else {
        return vec!["production work on a plan the operator did not approve".to_owned()];
    };

    let mut missing = Vec::new();
    let approval = earlier[approved];
    let plan_start = instant(&details(earlier[proposed])["start"]);
    let Some(notice) = dir.notice(start.policy_version) else {
        return vec![format!("production work under unknown policy {}", start.policy_version)];
    };
    match instant(&details(approval)["announced_at"]) {
        None => missing.push("production work without an announcement".to_owned()),
        Some(announced) => {
            if announced > approval.at {
                missing.push("the announcement is dated after the plan's approval".to_owned());
            }
            if announced + notice > start.at {
                missing.push(format!("production work less than {notice} after the announcement"));
            }
            if plan_start.is_none_or(|plan_start| announced + notice > plan_start) {
                missing.push(format!("the announcement came less than {notice} before the plan"));
            }
        }
    }
    let present =
        find(approved + 1, &|e| e.action == "confirm-presence" && dir.speaks_for_owner(e, parties));
    if present.is_none() {
        missing.push("production work without the owner's confirmed presence".to_owned());
    }
    missing
}

/// The oracle's whole verdict on a store: the policy over the log read back, the chain over the
/// same entries, and the store's own verification.
async fn judge(store: &Store) -> Vec<String> {
    let log = store.log_entries(&LogFilter::default()).await.unwrap();
    let directory = Directory::read(store).await;
    let mut verdict = policy_violations(&directory, &log);
    if let Err(broken) = verify_chain(&log) {
        verdict.push(format!("the log read back does not chain: {broken}"));
    }
    let verification = store.verify_log().await.unwrap();
    if !verification.is_intact() {
        verdict.push(format!("the store's verification fails: {verification:?}"));
    }
    verdict
}

// Running the property and counting how far the sequences got.

#[derive(Debug, Default)]
struct Tally {
    sequences: usize,
    production: usize,
    closed: usize,
    last_states: BTreeMap<String, usize>,
    /// Entries of every request, by action, with partial two-call steps apart.
    logged: BTreeMap<String, usize>,
    /// FIXME: production work may start outside its plan's window until the window guard
    /// arrives with maintenance windows (DESIGN.md); counted here, not yet checked.
    outside_window: usize,
}

async fn one_sequence(db: TestDb, sequence: &Sequence, tally: &Mutex<Tally>) -> TestCaseResult {
    let store = db.open().await;
    let world = World::set_up(&store).await;
    let played = play(&store, &world, sequence).await;
    let verdict = judge(&store).await;
    let primary = played.as_ref().ok().copied();
    let filter = LogFilter { request: primary.map(|id| id.0), ..LogFilter::default() };
    let log = store.log_entries(&filter).await.unwrap();
    let everything = store.log_entries(&LogFilter::default()).await.unwrap();
    store.close().await;
    played?;
    if !verdict.is_empty() {
        return Err(TestCaseError::fail(verdict.join("\n")));
    }

    // Count how far the request got.
    let mut tally = tally.lock().unwrap();
    tally.sequences += 1;
    tally.production += usize::from(log.iter().any(|e| e.action == "start-production"));
    tally.closed += usize::from(log.iter().any(|e| e.action == "close"));
    let last = log.last().and_then(|e| e.state_after).map_or("none", State::as_str);
    *tally.last_states.entry(last.to_owned()).or_default() += 1;
    tally.outside_window += starts_outside_the_plan(&everything);
    for entry in everything.iter().filter(|e| e.request.is_some()) {
        let partial = details(entry)["complete"] == Value::Bool(false);
        let kind = match details(entry)["decision"].as_str() {
            Some(decision) => format!("{} {decision}", entry.action),
            None => entry.action.clone(),
        };
        let kind = if partial { format!("{kind} (half)") } else { kind };
        *tally.logged.entry(kind).or_default() += 1;
    }
    Ok(())
}

/// How many production starts fall outside the window of the plan proposed last before them.
fn starts_outside_the_plan(log: &[LogEntry]) -> usize {
    let mut windows: HashMap<i64, (Timestamp, Timestamp)> = HashMap::new();
    let mut outside = 0;
    for entry in log {
        let (Some(request), details) = (entry.request, details(entry)) else { continue };
        if matches!(entry.action.as_str(), "propose-plan" | "revise-plan") {
            let start = instant(&details["start"]).unwrap();
            let minutes = details["duration_minutes"].as_i64().unwrap();
            windows.insert(request, (start, start + SignedDuration::from_mins(minutes)));
        }
        let window = windows.get(&request);
        let inside = window.is_some_and(|(start, end)| *start <= entry.at && entry.at < *end);
        outside += usize::from(entry.action == "start-production" && !inside);
    }
    outside
}

fn run_property(kind: Kind, cases: u32) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if kind == Kind::Postgres && runtime.block_on(TestDb::postgres()).is_none() {
        return;
    }
    let config =
        Config { max_shrink_iters: 64, failure_persistence: None, ..Config::with_cases(cases) };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, b"patchwarden lifecycle properties");
    let mut runner = TestRunner::new_with_rng(config, rng);
    let tally = Mutex::new(Tally::default());
    let result = runner.run(&sequences(), |sequence| {
        runtime.block_on(async {
            let db = match kind {
                Kind::Sqlite => TestDb::sqlite(),
                Kind::Postgres => TestDb::postgres().await.unwrap(),
            };
            one_sequence(db, &sequence, &tally).await
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }

    let tally = tally.into_inner().unwrap();
    let share = |n: usize| 100.0 * n as f64 / tally.sequences as f64;
    eprintln!(
        "{kind:?}: {} sequences; {} reached production work ({:.1}%), {} closed ({:.1}%); \
         {} started outside the plan's window; last states {:?}; logged {:?}",
        tally.sequences,
        tally.production,
        share(tally.production),
        tally.closed,
        share(tally.closed),
        tally.outside_window,
        tally.last_states,
        tally.logged
    );
    assert!(tally.production * 100 >= tally.sequences * 30, "too few reached production work");
    assert!(tally.closed * 100 >= tally.sequences * 10, "too few closed");
}

#[test]
fn random_sequences_on_sqlite_never_break_the_policy() {
    run_property(Kind::Sqlite, 128);
}

#[test]
fn random_sequences_on_postgres_never_break_the_policy() {
    run_property(Kind::Postgres, 16);
}

// The oracle itself must be able to fail: a walked log, changed by hand.

type Tampering = fn(&mut Vec<LogEntry>);

fn position(log: &[LogEntry], action: &str) -> usize {
    log.iter().position(|e| e.action == action).unwrap()
}

/// Makes `actor` the actor of the first entry with `action`.
fn set_actor(log: &mut [LogEntry], action: &str, actor: &str) {
    let n = position(log, action);
    log[n].actor = actor.to_owned();
}

/// Sets the announcement of the plan's approval to an hour before the production start.
fn announce_late(log: &mut [LogEntry]) {
    let start = log[position(log, "start-production")].at;
    let late = (start - SignedDuration::from_hours(1)).to_string();
    let n = position(log, "approve-plan");
    let mut details = details(&log[n]);
    details["announced_at"] = Value::String(late);
    log[n].details = details.to_string();
}

/// A copy of the last entry, appended as a problem reported on the closed request.
fn act_after_closed(log: &mut Vec<LogEntry>) {
    let mut after = log.last().unwrap().clone();
    after.seq += 1;
    after.action = "problem".to_owned();
    after.state_before = after.state_after;
    log.push(after);
}

#[tokio::test]
async fn the_oracle_reports_a_log_that_breaks_the_policy() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    walk(&store, id, steps_to_closed().len()).await;
    assert!(judge(&store).await.is_empty(), "{:?}", judge(&store).await);
    let directory = Directory::read(&store).await;
    let log = store.log_entries(&LogFilter::default()).await.unwrap();

    let tamperings: [(&str, Tampering, &str); 9] = [
        (
            "the approval dropped",
            |log| drop(log.remove(position(log, "approve"))),
            "without the owner's approval",
        ),
        (
            "the requester approving",
            |log| set_actor(log, "approve", OFFICER),
            "the requester approved",
        ),
        (
            "an admin submitting",
            |log| set_actor(log, "submit", ADMIN),
            "an admin acted on a request",
        ),
        (
            "a failed test",
            |log| {
                let n = position(log, "record-test");
                log[n].details = log[n].details.replace("\"passed\":true", "\"passed\":false");
            },
            "without a passed test or accepted risk",
        ),
        (
            "the owner's acceptance dropped",
            |log| drop(log.remove(log.iter().rposition(|e| e.action == "accept-plan").unwrap())),
            "did not accept",
        ),
        ("a late announcement", |log| announce_late(log), "after the announcement"),
        (
            "the presence dropped",
            |log| drop(log.remove(position(log, "confirm-presence"))),
            "confirmed presence",
        ),
        ("an entry after closed", act_after_closed, "follows the terminal state"),
        (
            "the operator closing",
            |log| set_actor(log, "close", OPERATOR),
            "closed by someone other than the update officer",
        ),
    ];
    for (name, tamper, expected) in tamperings {
        let mut changed = log.clone();
        tamper(&mut changed);
        let violations = policy_violations(&directory, &changed);
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{name}: expected '{expected}' among {violations:?}"
        );
        assert!(verify_chain(&changed).is_err(), "{name}: the chain should break too");
    }
}
