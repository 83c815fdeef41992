//! The update request lifecycle against DESIGN.md: one test per guard or rule.
//!
//! Each test drives `lifecycle::create` and `lifecycle::apply` with an injected
//! `now` and checks what DESIGN.md promises ("People and roles", "The update
//! request lifecycle"): the states each verb leads to, who may take it, the
//! order of the checks (403, then 422, then 409), the two-party steps, the
//! notice period and the terminal states. The expectations come from DESIGN.md,
//! not from the code; a test that fails here means the two disagree.

use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{self, WorkReport};
use patchwarden_core::policy::{ApprovalRules, PolicyChange, PolicySettings};
use patchwarden_core::request::{
    Criticality, DecisionKind, NewProblem, PackageTarget, Plan, PlanInput, RequestFields,
};
use patchwarden_core::system::{EnvironmentKind, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{
    Account, AccountId, AccountName, Command, Context, Email, PolicyVersion, Refusal, RefusalKind,
    RequestId, Role, Roles, State, System, SystemId, Transition, UpdateRequest, Verb,
};

// The people. The requester is the update officer unless a test names another.

/// "rhea", security officer: files requests and is their update officer by default.
const REQUESTER: AccountId = AccountId(1);
/// "olga", owner of the system `payroll`.
const OWNER: AccountId = AccountId(2);
/// "dmitri", deputy of `payroll`.
const DEPUTY: AccountId = AccountId(3);
/// "otto", the operator the requests name.
const OPERATOR: AccountId = AccountId(4);
/// "petra", an operator the requests do not name.
const OTHER_OPERATOR: AccountId = AccountId(5);
/// "ada", admin.
const ADMIN: AccountId = AccountId(6);
/// "aurel", auditor.
const AUDITOR: AccountId = AccountId(7);
/// "stan", an owner, but of another system.
const OTHER_OWNER: AccountId = AccountId(8);
/// "vera", a second security officer.
const SECOND_OFFICER: AccountId = AccountId(9);
/// "sam", security officer and owner.
const OFFICER_OWNER: AccountId = AccountId(10);
/// "sol", security officer and operator.
const OFFICER_OPERATOR: AccountId = AccountId(11);
/// "ovid", operator and owner.
const OPERATOR_OWNER: AccountId = AccountId(12);

const SYSTEM: SystemId = SystemId(1);
const REQUEST: RequestId = RequestId(1);

// The standard timeline, in hours after `at(0)`.

/// The test date the requests name; the test starts then.
const TEST_DATE: i64 = 48;
/// The production plan's start.
const PLAN_START: i64 = 100;
/// When the operator approves the plan, and so when the announcement is recorded.
const ANNOUNCED: i64 = 60;
/// A time after every step of the standard timeline.
const LATER: i64 = 200;

/// The states from submitted to ready, from which DESIGN.md allows cancel.
const CANCELLABLE: [State; 11] = [
    State::Submitted,
    State::Approved,
    State::Testing,
    State::TestPassed,
    State::TestFailed,
    State::RiskAccepted,
    State::TestAcknowledged,
    State::PlanProposed,
    State::PlanAccepted,
    State::PlanApproved,
    State::Ready,
];

const TERMINAL: [State; 4] = [State::Rejected, State::Abandoned, State::Cancelled, State::Closed];

fn at(hours: i64) -> Timestamp {
    let origin: Timestamp = "2030-03-04T08:00:00Z".parse().unwrap();
    origin + SignedDuration::from_hours(hours)
}

fn text(raw: &str) -> Text {
    Text::parse("text", raw).unwrap()
}

/// The accounts, the system and the policy one test works with.
#[derive(Debug)]
struct Fixture {
    people: Vec<Account>,
    system: System,
    policy: PolicyVersion,
}

impl Fixture {
    fn new() -> Self {
        let person = |id: AccountId, name: &str, roles: &[Role]| Account {
            id,
            name: AccountName::parse(name).unwrap(),
            email: Some(Email::parse(&format!("{name}@example.org")).unwrap()),
            position: None,
            roles: Roles::new(roles.iter().copied()).unwrap(),
        };
        let people = vec![
            person(REQUESTER, "rhea", &[Role::SecurityOfficer]),
            person(OWNER, "olga", &[Role::Owner]),
            person(DEPUTY, "dmitri", &[Role::Owner]),
            person(OPERATOR, "otto", &[Role::Operator]),
            person(OTHER_OPERATOR, "petra", &[Role::Operator]),
            person(ADMIN, "ada", &[Role::Admin]),
            person(AUDITOR, "aurel", &[Role::Auditor]),
            person(OTHER_OWNER, "stan", &[Role::Owner]),
            person(SECOND_OFFICER, "vera", &[Role::SecurityOfficer]),
            person(OFFICER_OWNER, "sam", &[Role::SecurityOfficer, Role::Owner]),
            person(OFFICER_OPERATOR, "sol", &[Role::SecurityOfficer, Role::Operator]),
            person(OPERATOR_OWNER, "ovid", &[Role::Operator, Role::Owner]),
        ];
        let system = System {
            id: SYSTEM,
            name: SystemName::parse("payroll").unwrap(),
            owner: OWNER,
            deputy: Some(DEPUTY),
            stakeholders: vec![],
            notify: vec![Email::parse("payroll-users@example.org").unwrap()],
            time_zone: TimeZoneName::default(),
            documentation_revision: 0,
        };
        Self { people, system, policy: PolicyVersion::initial(at(-1000)) }
    }

    /// The same fixture under a policy version with `settings`.
    fn with_settings(mut self, settings: PolicySettings) -> Self {
        let change = PolicyChange {
            author_name: "Dana Reyes".to_owned(),
            author_position: "CISO".to_owned(),
            reason: text("stricter rules for payroll"),
            effective: at(-500),
            settings,
        };
        self.policy = self.policy.next(change).unwrap();
        self
    }

    fn person(&self, id: AccountId) -> &Account {
        self.people.iter().find(|account| account.id == id).unwrap()
    }

    fn ctx(&self, actor: AccountId, now: Timestamp) -> Context<'_> {
        Context {
            now,
            policy: &self.policy,
            system: &self.system,
            actor: self.person(actor),
            people: &self.people,
        }
    }

    fn create_as(
        &self,
        actor: AccountId,
        fields: RequestFields,
        now: Timestamp,
    ) -> Result<Transition, Refusal> {
        lifecycle::create(REQUEST, fields, &self.ctx(actor, now))
    }

    fn try_as(
        &self,
        request: &UpdateRequest,
        actor: AccountId,
        command: Command,
        now: Timestamp,
    ) -> Result<Transition, Refusal> {
        lifecycle::apply(request, command, &self.ctx(actor, now))
    }

    /// Applies a command that must be allowed and moves `request` on.
    #[track_caller]
    fn run(
        &self,
        request: &mut UpdateRequest,
        actor: AccountId,
        command: Command,
        now: Timestamp,
    ) -> Transition {
        let verb = command.verb();
        let transition = self
            .try_as(request, actor, command, now)
            .unwrap_or_else(|refusal| panic!("{verb} by account {actor} refused: {refusal:?}"));
        *request = transition.request.clone();
        transition
    }

    /// A complete draft filed by the requester at hour 0.
    fn draft(&self) -> UpdateRequest {
        self.draft_with(complete_fields())
    }

    fn draft_with(&self, fields: RequestFields) -> UpdateRequest {
        self.create_as(REQUESTER, fields, at(0)).unwrap().request
    }

    /// A complete request taken along the standard timeline to `target`.
    fn reach(&self, target: State) -> UpdateRequest {
        self.advance(self.draft(), target)
    }

    /// Takes a draft along the standard timeline to `target`.
    fn advance(&self, mut request: UpdateRequest, target: State) -> UpdateRequest {
        for (actor, command, hour) in path_to(target, request.officer()) {
            self.run(&mut request, actor, command, at(hour));
        }
        assert_eq!(request.state, target);
        request
    }

    /// `reach`, then paused by the operator when `paused`.
    fn reach_paused(&self, target: State, paused: bool) -> UpdateRequest {
        let mut request = self.reach(target);
        if paused {
            self.run(&mut request, OPERATOR, pause(), at(PLAN_START));
            assert!(request.paused);
        }
        request
    }
}

/// One step of the standard timeline: who, what, at which hour.
type Step = (AccountId, Command, i64);

/// The steps that take a draft to `target`; `officer` is the request's update officer.
fn path_to(target: State, officer: AccountId) -> Vec<Step> {
    let (from, steps): (Option<State>, Vec<Step>) = match target {
        State::Draft => (None, vec![]),
        State::Submitted => (Some(State::Draft), vec![(REQUESTER, Command::Submit, 0)]),
        State::Approved => (Some(State::Submitted), vec![(OWNER, approve(), 1)]),
        State::Rejected => (
            Some(State::Submitted),
            vec![(OWNER, Command::Reject { reason: text("not this quarter") }, 1)],
        ),
        State::Cancelled => (Some(State::Submitted), vec![(officer, cancel(), 1)]),
        State::Testing => (Some(State::Approved), vec![(OPERATOR, Command::StartTest, TEST_DATE)]),
        State::TestPassed => {
            (Some(State::Testing), vec![(OPERATOR, Command::RecordTest { report: passed() }, 50)])
        }
        State::TestFailed => (
            Some(State::Testing),
            vec![(OPERATOR, Command::RecordTest { report: failed(EnvironmentKind::Test) }, 50)],
        ),
        State::RiskAccepted => (
            Some(State::TestFailed),
            vec![
                (officer, decide(DecisionKind::Proceed), 51),
                (OWNER, decide(DecisionKind::Proceed), 51),
            ],
        ),
        State::Abandoned => {
            (Some(State::TestFailed), vec![(officer, decide(DecisionKind::Abandon), 51)])
        }
        State::TestAcknowledged => {
            (Some(State::TestPassed), vec![(OWNER, Command::AcknowledgeTest, 52)])
        }
        State::PlanProposed => (
            Some(State::TestAcknowledged),
            vec![(OPERATOR, Command::ProposePlan { plan: plan_at(at(PLAN_START)) }, 53)],
        ),
        State::PlanAccepted => (
            Some(State::PlanProposed),
            vec![(officer, Command::AcceptPlan, 54), (OWNER, Command::AcceptPlan, 55)],
        ),
        State::PlanApproved => {
            (Some(State::PlanAccepted), vec![(OPERATOR, Command::ApprovePlan, ANNOUNCED)])
        }
        State::Ready => (Some(State::PlanApproved), vec![(OWNER, Command::ConfirmPresence, 61)]),
        State::ProdUpdating => {
            (Some(State::Ready), vec![(OPERATOR, Command::StartProduction, PLAN_START)])
        }
        State::ProdPassed => (
            Some(State::ProdUpdating),
            vec![(OPERATOR, Command::RecordProduction { report: passed() }, 101)],
        ),
        State::ProdFailed => (
            Some(State::ProdUpdating),
            vec![(
                OPERATOR,
                Command::RecordProduction { report: failed(EnvironmentKind::Prod) },
                101,
            )],
        ),
        State::RolledBack => {
            (Some(State::ProdFailed), vec![(OWNER, decide(DecisionKind::RollBack), 102)])
        }
        State::Documented => (Some(State::ProdPassed), vec![(OPERATOR, document(), 103)]),
        State::Closed => (Some(State::Documented), vec![(officer, Command::Close, 104)]),
    };
    let mut path = from.map(|from| path_to(from, officer)).unwrap_or_default();
    path.extend(steps);
    path
}

// What the requests and commands carry.

fn complete_fields() -> RequestFields {
    RequestFields {
        officer: None,
        operator: Some(OPERATOR),
        test_date: Some(at(TEST_DATE)),
        prod_date: Some(at(PLAN_START)),
        packages: vec![PackageTarget::parse("openssl=3.0.15-1~deb12u1").unwrap()],
        purpose: Some(text("fix CVE-2024-5535 in openssl")),
        downtime: Some(text("up to 30 minutes inside the window")),
        description: Some(text("apt-get install openssl, then restart nginx")),
    }
}

fn approve() -> Command {
    Command::Approve { comment: None }
}

fn cancel() -> Command {
    Command::Cancel { reason: text("superseded by a newer release") }
}

fn pause() -> Command {
    Command::Pause { reason: text("database replica lagging") }
}

fn document() -> Command {
    Command::Document { summary: text("openssl 3.0.15 on all payroll hosts") }
}

fn decide(decision: DecisionKind) -> Command {
    Command::Decide { decision, reasoning: text("weighed against the exposure") }
}

fn passed() -> WorkReport {
    WorkReport { passed: true, notes: None, problem: None }
}

fn problem(environment: EnvironmentKind) -> NewProblem {
    NewProblem {
        description: text("nginx fails to start after the upgrade"),
        criticality: Criticality::High,
        environment,
    }
}

fn failed(environment: EnvironmentKind) -> WorkReport {
    WorkReport {
        passed: false,
        notes: Some(text("service down")),
        problem: Some(problem(environment)),
    }
}

fn plan_at(start: Timestamp) -> PlanInput {
    PlanInput { start, duration_minutes: 90, participants: vec![OPERATOR], recipients: vec![] }
}

fn plan(request: &UpdateRequest) -> &Plan {
    request.plan.as_ref().unwrap()
}

fn plan_mut(request: &mut UpdateRequest) -> &mut Plan {
    request.plan.as_mut().unwrap()
}

/// The party DESIGN.md gives `verb` on `request`, with a command whose input is valid.
fn proper(verb: Verb, request: &UpdateRequest, now: Timestamp) -> (AccountId, Command) {
    let officer = request.officer();
    let later_plan = || plan_at(now + SignedDuration::from_hours(48));
    match verb {
        Verb::Create => panic!("create makes a request; it is not applied to one"),
        Verb::ReopenTest => panic!("reopen-test is the product's, taken on evidence"),
        Verb::Amend => (
            REQUESTER,
            Command::Amend {
                fields: RequestFields {
                    purpose: Some(text("fix CVE-2024-5535 and CVE-2024-6119")),
                    ..RequestFields::default()
                },
            },
        ),
        Verb::Submit => (REQUESTER, Command::Submit),
        Verb::Approve => (OWNER, approve()),
        Verb::Reject => (OWNER, Command::Reject { reason: text("not this quarter") }),
        Verb::StartTest => (OPERATOR, Command::StartTest),
        Verb::RecordTest => (OPERATOR, Command::RecordTest { report: passed() }),
        Verb::Decide if request.state == State::ProdFailed => {
            (officer, decide(DecisionKind::Accept))
        }
        Verb::Decide => (officer, decide(DecisionKind::Proceed)),
        Verb::AcknowledgeTest => (OWNER, Command::AcknowledgeTest),
        Verb::ProposePlan => (OPERATOR, Command::ProposePlan { plan: later_plan() }),
        Verb::AcceptPlan => (officer, Command::AcceptPlan),
        Verb::ApprovePlan => (OPERATOR, Command::ApprovePlan),
        Verb::ConfirmPresence => (OWNER, Command::ConfirmPresence),
        Verb::StartProduction => (OPERATOR, Command::StartProduction),
        Verb::RecordProduction => (OPERATOR, Command::RecordProduction { report: passed() }),
        Verb::Document => (OPERATOR, document()),
        Verb::Close => (officer, Command::Close),
        Verb::Cancel => (officer, cancel()),
        Verb::RevisePlan => (OPERATOR, Command::RevisePlan { plan: later_plan() }),
        Verb::Pause => (OPERATOR, pause()),
        Verb::Resume => (OPERATOR, Command::Resume),
        Verb::Problem => (OPERATOR, Command::Problem { problem: problem(EnvironmentKind::Test) }),
    }
}

/// The verbs DESIGN.md's lifecycle diagram allows in `state`, sorted: each
/// arrow's verb, `cancel` from submitted to ready, and `problem` at any active
/// state. A draft also allows `amend`, the verb that fills its gaps.
fn design_allowed(state: State, paused: bool) -> Vec<Verb> {
    let mut verbs = match (state, paused) {
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
    if CANCELLABLE.contains(&state) {
        verbs.push(Verb::Cancel);
    }
    let active = state != State::Draft && !TERMINAL.contains(&state);
    if active {
        verbs.push(Verb::Problem);
    }
    verbs.sort();
    verbs
}

/// Whether DESIGN.md leaves `verb` in `state` open: it does not say whether a
/// problem may be added to a draft, so neither answer is asserted.
fn undefined(verb: Verb, state: State) -> bool {
    verb == Verb::Create || (verb == Verb::Problem && state == State::Draft)
}

/// Every situation a request can be in: each state, and the two paused ones.
fn situations() -> Vec<(State, bool)> {
    let mut all: Vec<(State, bool)> = State::ALL.iter().map(|state| (*state, false)).collect();
    all.extend([(State::Testing, true), (State::ProdUpdating, true)]);
    all
}

// Assertions on refusals.

#[track_caller]
fn expect_refusal(result: Result<Transition, Refusal>) -> Refusal {
    match result {
        Ok(moved) => panic!(
            "expected a refusal, but {} moved the request from {:?} to {}",
            moved.verb, moved.before, moved.after
        ),
        Err(refusal) => refusal,
    }
}

#[track_caller]
fn assert_refused(result: Result<Transition, Refusal>, kind: RefusalKind, needle: &str) -> Refusal {
    let refusal = expect_refusal(result);
    assert_eq!(refusal.kind, kind, "{refusal:?}");
    assert!(refusal.message.contains(needle), "message {:?} lacks {needle:?}", refusal.message);
    refusal
}

/// A 409 that names the state and lists the verbs DESIGN.md allows there.
#[track_caller]
fn assert_conflict(result: Result<Transition, Refusal>, state: State, paused: bool) -> Refusal {
    let refusal = assert_refused(result, RefusalKind::Conflict, state.as_str());
    assert_eq!(refusal.state, Some((state, paused)), "{refusal:?}");
    let mut allowed = refusal.allowed.clone();
    allowed.sort();
    if state == State::Draft {
        allowed.retain(|verb| *verb != Verb::Problem);
    }
    assert_eq!(allowed, design_allowed(state, paused), "allowed verbs in {state}: {refusal:?}");
    refusal
}

/// Every verb `request`'s state does not allow, sent by its proper party with
/// valid input, is refused as a conflict.
#[track_caller]
fn assert_other_verbs_conflict(fx: &Fixture, request: &UpdateRequest) {
    let now = at(LATER);
    let allowed = design_allowed(request.state, request.paused);
    for verb in Verb::ALL {
        if undefined(verb, request.state) || allowed.contains(&verb) {
            continue;
        }
        let (actor, command) = proper(verb, request, now);
        let result = fx.try_as(request, actor, command, now);
        let refusal = assert_conflict(result, request.state, request.paused);
        assert!(refusal.message.contains(verb.as_str()), "{verb}: {refusal:?}");
    }
}

// The happy path.

#[test]
fn happy_path_walks_from_draft_to_closed() {
    let fx = Fixture::new();
    let created = fx.create_as(REQUESTER, complete_fields(), at(0)).unwrap();
    assert_eq!((created.before, created.after), (None, State::Draft));
    let mut request = created.request;
    assert_eq!((request.requester, request.officer()), (REQUESTER, REQUESTER));

    let steps: Vec<(AccountId, Command, i64, State)> = vec![
        (REQUESTER, Command::Submit, 0, State::Submitted),
        (OWNER, approve(), 1, State::Approved),
        (OPERATOR, Command::StartTest, TEST_DATE, State::Testing),
        (OPERATOR, Command::RecordTest { report: passed() }, 50, State::TestPassed),
        (OWNER, Command::AcknowledgeTest, 52, State::TestAcknowledged),
        (OPERATOR, Command::ProposePlan { plan: plan_at(at(PLAN_START)) }, 53, State::PlanProposed),
        (REQUESTER, Command::AcceptPlan, 54, State::PlanProposed),
        (OWNER, Command::AcceptPlan, 55, State::PlanAccepted),
        (OPERATOR, Command::ApprovePlan, ANNOUNCED, State::PlanApproved),
        (OWNER, Command::ConfirmPresence, 61, State::Ready),
        (OPERATOR, Command::StartProduction, PLAN_START, State::ProdUpdating),
        (OPERATOR, Command::RecordProduction { report: passed() }, 101, State::ProdPassed),
        (OPERATOR, document(), 103, State::Documented),
        (REQUESTER, Command::Close, 104, State::Closed),
    ];
    for (actor, command, hour, expected) in steps {
        let before = request.state;
        let verb = command.verb();
        let moved = fx.run(&mut request, actor, command, at(hour));
        assert_eq!((moved.verb, moved.before, moved.after), (verb, Some(before), expected));
        assert_eq!(moved.documentation.is_some(), verb == Verb::Document, "{verb}");
    }

    assert_eq!(request.owner_approval.unwrap().by, OWNER);
    assert_eq!(request.test_acknowledgement.unwrap().by, OWNER);
    let plan = plan(&request);
    assert_eq!(plan.officer_acceptance.unwrap().by, REQUESTER);
    assert_eq!(plan.owner_acceptance.unwrap().by, OWNER);
    assert_eq!(plan.approval.unwrap().by, OPERATOR);
    assert_eq!(plan.announced_at, Some(at(ANNOUNCED)));
    assert_eq!(request.presence.unwrap().by, OWNER);
    assert_eq!(request.production_start.unwrap().by, OPERATOR);
    assert_eq!(request.documentation_revision, Some(1));
}

#[test]
fn only_a_security_officer_files_a_request() {
    let fx = Fixture::new();
    assert_refused(
        fx.create_as(OPERATOR, complete_fields(), at(0)),
        RefusalKind::Forbidden,
        "otto",
    );
    assert_refused(fx.create_as(OWNER, complete_fields(), at(0)), RefusalKind::Forbidden, "olga");
    assert_refused(fx.create_as(ADMIN, complete_fields(), at(0)), RefusalKind::Forbidden, "admin");
    assert_refused(
        fx.create_as(AUDITOR, complete_fields(), at(0)),
        RefusalKind::Forbidden,
        "auditor",
    );
}

// Submit and the fields a request needs.

#[test]
fn submit_names_every_missing_field() {
    let fx = Fixture::new();
    let draft = fx.draft_with(RequestFields::default());
    let refusal = assert_refused(
        fx.try_as(&draft, REQUESTER, Command::Submit, at(0)),
        RefusalKind::Invalid,
        "missing",
    );
    let mut fields = refusal.fields.clone();
    fields.sort();
    let mut expected =
        ["operator", "test_date", "prod_date", "packages", "purpose", "downtime", "description"];
    expected.sort();
    assert_eq!(fields, expected);
    for field in expected {
        assert!(refusal.message.contains(field), "message {:?} lacks {field}", refusal.message);
    }
}

#[test]
fn submit_names_only_the_fields_still_missing_and_passes_once_filled() {
    let fx = Fixture::new();
    let partial = RequestFields {
        operator: Some(OPERATOR),
        packages: complete_fields().packages,
        purpose: complete_fields().purpose,
        ..RequestFields::default()
    };
    let mut draft = fx.draft_with(partial);
    let refusal = assert_refused(
        fx.try_as(&draft, REQUESTER, Command::Submit, at(0)),
        RefusalKind::Invalid,
        "downtime",
    );
    let mut fields = refusal.fields.clone();
    fields.sort();
    assert_eq!(fields, ["description", "downtime", "prod_date", "test_date"]);

    fx.run(&mut draft, REQUESTER, Command::Amend { fields: complete_fields() }, at(0));
    let moved = fx.run(&mut draft, REQUESTER, Command::Submit, at(0));
    assert_eq!(moved.after, State::Submitted);
}

// Separation of duties.

#[test]
fn requester_who_owns_the_system_cannot_approve() {
    let mut fx = Fixture::new();
    fx.system.owner = OFFICER_OWNER;
    let fields = RequestFields { officer: Some(SECOND_OFFICER), ..complete_fields() };
    let mut request = fx.create_as(OFFICER_OWNER, fields, at(0)).unwrap().request;
    fx.run(&mut request, OFFICER_OWNER, Command::Submit, at(0));

    let refusal = assert_refused(
        fx.try_as(&request, OFFICER_OWNER, approve(), at(1)),
        RefusalKind::Forbidden,
        "requester",
    );
    assert!(refusal.message.contains("sam"), "{refusal:?}");
    assert_eq!(fx.run(&mut request, DEPUTY, approve(), at(1)).after, State::Approved);
}

#[test]
fn requester_who_is_the_deputy_cannot_approve() {
    let mut fx = Fixture::new();
    fx.system.deputy = Some(OFFICER_OWNER);
    let fields = RequestFields { officer: Some(SECOND_OFFICER), ..complete_fields() };
    let mut request = fx.create_as(OFFICER_OWNER, fields, at(0)).unwrap().request;
    fx.run(&mut request, OFFICER_OWNER, Command::Submit, at(0));

    assert_refused(
        fx.try_as(&request, OFFICER_OWNER, approve(), at(1)),
        RefusalKind::Forbidden,
        "requester",
    );
    assert_eq!(fx.run(&mut request, OWNER, approve(), at(1)).after, State::Approved);
}

#[test]
fn admin_is_refused_every_verb_in_every_state() {
    let fx = Fixture::new();
    for (state, paused) in situations() {
        let request = fx.reach_paused(state, paused);
        for verb in design_allowed(state, paused) {
            let (_, command) = proper(verb, &request, at(LATER));
            let refusal = assert_refused(
                fx.try_as(&request, ADMIN, command, at(LATER)),
                RefusalKind::Forbidden,
                "admin",
            );
            assert!(refusal.message.contains("ada"), "{verb} in {state}: {refusal:?}");
        }
    }
}

#[test]
fn auditor_is_refused_every_verb_in_every_state() {
    let fx = Fixture::new();
    for (state, paused) in situations() {
        let request = fx.reach_paused(state, paused);
        for verb in design_allowed(state, paused) {
            let (_, command) = proper(verb, &request, at(LATER));
            let refusal = assert_refused(
                fx.try_as(&request, AUDITOR, command, at(LATER)),
                RefusalKind::Forbidden,
                "auditor",
            );
            assert!(refusal.message.contains("aurel"), "{verb} in {state}: {refusal:?}");
        }
    }
}

#[test]
fn assigned_operator_cannot_approve() {
    let fx = Fixture::new();
    let request = fx.reach(State::Submitted);
    assert_refused(fx.try_as(&request, OPERATOR, approve(), at(1)), RefusalKind::Forbidden, "otto");
}

#[test]
fn owner_of_another_system_cannot_approve() {
    let fx = Fixture::new();
    let request = fx.reach(State::Submitted);
    let refusal = assert_refused(
        fx.try_as(&request, OTHER_OWNER, approve(), at(1)),
        RefusalKind::Forbidden,
        "stan",
    );
    assert!(refusal.message.contains("payroll"), "{refusal:?}");
}

#[test]
fn only_the_assigned_operator_starts_the_test() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Approved);
    let now = at(TEST_DATE);
    assert_refused(
        fx.try_as(&request, OTHER_OPERATOR, Command::StartTest, now),
        RefusalKind::Forbidden,
        "petra",
    );
    assert_refused(
        fx.try_as(&request, OWNER, Command::StartTest, now),
        RefusalKind::Forbidden,
        "olga",
    );
    assert_eq!(fx.run(&mut request, OPERATOR, Command::StartTest, now).after, State::Testing);
}

#[test]
fn only_the_assigned_operator_does_the_work_and_finalises_the_plan() {
    let fx = Fixture::new();
    let now = at(LATER);
    // DESIGN.md: the operator performs the work in test and production, drafts
    // and finalises the plan, and records the documentation revision.
    let operators_verbs = [
        Verb::StartTest,
        Verb::RecordTest,
        Verb::ProposePlan,
        Verb::RevisePlan,
        Verb::ApprovePlan,
        Verb::StartProduction,
        Verb::RecordProduction,
        Verb::Document,
    ];
    let work = [
        State::Approved,
        State::Testing,
        State::TestAcknowledged,
        State::PlanProposed,
        State::PlanAccepted,
        State::Ready,
        State::ProdUpdating,
        State::ProdPassed,
    ];
    for state in work {
        let request = fx.reach(state);
        for verb in design_allowed(state, false) {
            if !operators_verbs.contains(&verb) {
                continue;
            }
            let (_, command) = proper(verb, &request, now);
            for (actor, name) in [(OTHER_OPERATOR, "petra"), (OWNER, "olga"), (REQUESTER, "rhea")] {
                let result = fx.try_as(&request, actor, command.clone(), now);
                let refusal = assert_refused(result, RefusalKind::Forbidden, name);
                assert!(refusal.message.contains(verb.as_str()), "{verb}: {refusal:?}");
            }
        }
    }
}

#[test]
fn the_owners_steps_are_refused_to_everyone_else() {
    let fx = Fixture::new();
    let now = at(LATER);
    let owners_steps = [
        (State::Submitted, approve()),
        (State::Submitted, Command::Reject { reason: text("not this quarter") }),
        (State::TestPassed, Command::AcknowledgeTest),
        (State::PlanApproved, Command::ConfirmPresence),
        (State::ProdFailed, decide(DecisionKind::RollBack)),
    ];
    for (state, command) in owners_steps {
        let request = fx.reach(state);
        let verb = command.verb();
        let others = [
            (REQUESTER, "rhea"),
            (OPERATOR, "otto"),
            (OTHER_OWNER, "stan"),
            (SECOND_OFFICER, "vera"),
        ];
        for (actor, name) in others {
            let result = fx.try_as(&request, actor, command.clone(), now);
            let refusal = assert_refused(result, RefusalKind::Forbidden, name);
            assert!(refusal.message.contains(verb.as_str()), "{verb} in {state}: {refusal:?}");
        }
        for owner in [OWNER, DEPUTY] {
            assert!(fx.try_as(&request, owner, command.clone(), now).is_ok(), "{verb} by {owner}");
        }
    }
}

#[test]
fn operator_who_is_the_requester_is_refused_at_submit() {
    let fx = Fixture::new();
    // A draft as a store might hold it; create is not the guard under test.
    // The update officer is someone else, so only the requester clash is left.
    let fields = RequestFields {
        officer: Some(SECOND_OFFICER),
        operator: Some(OFFICER_OPERATOR),
        ..complete_fields()
    };
    let draft = UpdateRequest::draft(REQUEST, SYSTEM, OFFICER_OPERATOR, fields, at(0));
    let refusal = assert_refused(
        fx.try_as(&draft, OFFICER_OPERATOR, Command::Submit, at(0)),
        RefusalKind::Invalid,
        "sol",
    );
    assert!(refusal.fields.contains(&"operator".to_owned()), "{refusal:?}");
    assert!(refusal.message.contains("requester"), "{refusal:?}");
}

#[test]
fn operator_who_owns_the_system_is_refused_at_submit() {
    let mut fx = Fixture::new();
    let fields = RequestFields { operator: Some(OPERATOR_OWNER), ..complete_fields() };
    let draft = fx.draft_with(fields);
    // The system changes hands to the named operator before the draft is submitted.
    fx.system.owner = OPERATOR_OWNER;
    let refusal = assert_refused(
        fx.try_as(&draft, REQUESTER, Command::Submit, at(0)),
        RefusalKind::Invalid,
        "ovid",
    );
    assert!(refusal.fields.contains(&"operator".to_owned()), "{refusal:?}");
    assert!(refusal.message.contains("owner"), "{refusal:?}");
}

#[test]
fn deputy_approves_under_the_default_policy() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Submitted);
    assert_eq!(fx.run(&mut request, DEPUTY, approve(), at(1)).after, State::Approved);
    assert_eq!(request.owner_approval.unwrap().by, DEPUTY);
}

#[test]
fn owner_only_policy_refuses_the_deputy_and_lets_the_owner_approve() {
    let settings = PolicySettings {
        approval: ApprovalRules { owner_only: true, ..ApprovalRules::default() },
        ..PolicySettings::default()
    };
    let fx = Fixture::new().with_settings(settings);
    let mut request = fx.reach(State::Submitted);
    let refusal = assert_refused(
        fx.try_as(&request, DEPUTY, approve(), at(1)),
        RefusalKind::Forbidden,
        "dmitri",
    );
    assert!(refusal.message.contains("owner"), "{refusal:?}");
    assert_eq!(fx.run(&mut request, OWNER, approve(), at(1)).after, State::Approved);
    assert_eq!(request.owner_approval.unwrap().by, OWNER);
}

// The order of the checks: 403, then 422, then 409.

#[test]
fn forbidden_is_checked_before_invalid_and_conflict() {
    let fx = Fixture::new();
    let submitted = fx.reach(State::Submitted);
    let bad_plan = PlanInput {
        start: at(-5),
        duration_minutes: 0,
        participants: vec![AccountId(999)],
        recipients: vec![],
    };
    let bad_report = WorkReport { passed: false, notes: None, problem: None };

    // The owner is not the operator, the plan is invalid, and submitted allows no plan.
    assert_refused(
        fx.try_as(&submitted, OWNER, Command::ProposePlan { plan: bad_plan.clone() }, at(1)),
        RefusalKind::Forbidden,
        "olga",
    );
    assert_refused(
        fx.try_as(&submitted, ADMIN, Command::ProposePlan { plan: bad_plan }, at(1)),
        RefusalKind::Forbidden,
        "admin",
    );
    assert_refused(
        fx.try_as(&submitted, OTHER_OPERATOR, Command::RecordTest { report: bad_report }, at(1)),
        RefusalKind::Forbidden,
        "petra",
    );
}

#[test]
fn invalid_is_checked_before_conflict() {
    let fx = Fixture::new();
    let submitted = fx.reach(State::Submitted);
    let bad_plan = PlanInput {
        start: at(-5),
        duration_minutes: 0,
        participants: vec![AccountId(999)],
        recipients: vec![],
    };
    let refusal = assert_refused(
        fx.try_as(&submitted, OPERATOR, Command::ProposePlan { plan: bad_plan }, at(1)),
        RefusalKind::Invalid,
        "999",
    );
    let mut fields = refusal.fields.clone();
    fields.sort();
    assert_eq!(fields, ["duration_minutes", "participants", "start"]);

    let bad_report = WorkReport { passed: false, notes: None, problem: None };
    let refusal = assert_refused(
        fx.try_as(&submitted, OPERATOR, Command::RecordTest { report: bad_report }, at(1)),
        RefusalKind::Invalid,
        "problem",
    );
    assert_eq!(refusal.fields, ["problem"]);
}

#[test]
fn every_verb_the_state_does_not_allow_is_a_conflict_listing_the_allowed_verbs() {
    let fx = Fixture::new();
    for (state, paused) in situations() {
        assert_other_verbs_conflict(&fx, &fx.reach_paused(state, paused));
    }
}

// Nothing reaches production without approval, a passed test or accepted
// risk, acknowledgement, an agreed and approved plan.

#[test]
fn start_production_is_refused_in_every_state_before_ready() {
    let fx = Fixture::new();
    let before_ready = [
        State::Draft,
        State::Submitted,
        State::Approved,
        State::Testing,
        State::TestPassed,
        State::TestFailed,
        State::RiskAccepted,
        State::TestAcknowledged,
        State::PlanProposed,
        State::PlanAccepted,
        State::PlanApproved,
    ];
    for state in before_ready {
        let request = fx.reach(state);
        let result = fx.try_as(&request, OPERATOR, Command::StartProduction, at(LATER));
        assert_conflict(result, state, false);
    }
}

#[test]
fn start_production_checks_the_history_not_only_the_state() {
    type Forgery = fn(&mut UpdateRequest);
    let fx = Fixture::new();
    let ready = fx.reach(State::Ready);
    let forgeries: [(&str, &str, Forgery); 9] = [
        ("owner approval", "approved", |r| r.owner_approval = None),
        ("test result", "test", |r| r.test_result = None),
        ("passed test", "test", |r| r.test_result.as_mut().unwrap().passed = false),
        ("acknowledgement", "acknowledged", |r| r.test_acknowledgement = None),
        ("officer acceptance", "accepted", |r| plan_mut(r).officer_acceptance = None),
        ("owner acceptance", "accepted", |r| plan_mut(r).owner_acceptance = None),
        ("plan approval", "approved", |r| plan_mut(r).approval = None),
        ("announcement", "announcement", |r| plan_mut(r).announced_at = None),
        ("presence", "presence", |r| r.presence = None),
    ];
    for (missing, needle, forge) in forgeries {
        let mut request = ready.clone();
        forge(&mut request);
        let result = fx.try_as(&request, OPERATOR, Command::StartProduction, at(LATER));
        let refusal = expect_refusal(result);
        assert_eq!(refusal.kind, RefusalKind::Conflict, "without {missing}: {refusal:?}");
        assert_eq!(refusal.state, Some((State::Ready, false)), "without {missing}");
        assert!(refusal.message.contains(needle), "without {missing}: {refusal:?}");
    }
    let moved = fx.try_as(&ready, OPERATOR, Command::StartProduction, at(LATER)).unwrap();
    assert_eq!(moved.after, State::ProdUpdating);
}

#[test]
fn start_test_needs_the_owner_approval_on_record() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Approved);
    request.owner_approval = None;
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::StartTest, at(TEST_DATE)),
        RefusalKind::Conflict,
        "approved",
    );
    assert_eq!(refusal.state, Some((State::Approved, false)));
}

#[test]
fn decide_proceed_needs_the_officer_then_the_owner() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::TestFailed);
    let half = fx.run(&mut request, REQUESTER, decide(DecisionKind::Proceed), at(51));
    assert_eq!((half.before, half.after), (Some(State::TestFailed), State::TestFailed));
    assert_conflict(
        fx.try_as(&request, OWNER, Command::AcknowledgeTest, at(51)),
        State::TestFailed,
        false,
    );

    let whole = fx.run(&mut request, OWNER, decide(DecisionKind::Proceed), at(52));
    assert_eq!(whole.after, State::RiskAccepted);
    let decision = request.decisions.last().unwrap();
    assert_eq!(decision.kind, DecisionKind::Proceed);
    let mut taken_by = decision.taken_by.clone();
    taken_by.sort();
    assert_eq!(taken_by, [REQUESTER, OWNER]);
}

#[test]
fn decide_proceed_needs_the_owner_then_the_officer() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::TestFailed);
    let half = fx.run(&mut request, OWNER, decide(DecisionKind::Proceed), at(51));
    assert_eq!(half.after, State::TestFailed);
    let whole = fx.run(&mut request, REQUESTER, decide(DecisionKind::Proceed), at(52));
    assert_eq!(whole.after, State::RiskAccepted);
}

#[test]
fn the_same_party_deciding_twice_does_not_complete_a_two_party_step() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::TestFailed);
    fx.run(&mut request, REQUESTER, decide(DecisionKind::Proceed), at(51));
    match fx.try_as(&request, REQUESTER, decide(DecisionKind::Proceed), at(52)) {
        Ok(moved) => assert_eq!(moved.after, State::TestFailed),
        Err(refusal) => assert_eq!(refusal.kind, RefusalKind::Conflict, "{refusal:?}"),
    }
}

#[test]
fn accepted_risk_leads_to_production_after_acknowledgement() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::RiskAccepted);
    assert_refused(
        fx.try_as(&request, REQUESTER, Command::AcknowledgeTest, at(52)),
        RefusalKind::Forbidden,
        "rhea",
    );
    let steps: Vec<(AccountId, Command, i64, State)> = vec![
        (OWNER, Command::AcknowledgeTest, 52, State::TestAcknowledged),
        (OPERATOR, Command::ProposePlan { plan: plan_at(at(PLAN_START)) }, 53, State::PlanProposed),
        (REQUESTER, Command::AcceptPlan, 54, State::PlanProposed),
        (OWNER, Command::AcceptPlan, 55, State::PlanAccepted),
        (OPERATOR, Command::ApprovePlan, ANNOUNCED, State::PlanApproved),
        (OWNER, Command::ConfirmPresence, 61, State::Ready),
        (OPERATOR, Command::StartProduction, PLAN_START, State::ProdUpdating),
    ];
    for (actor, command, hour, expected) in steps {
        assert_eq!(fx.run(&mut request, actor, command, at(hour)).after, expected);
    }
}

#[test]
fn accept_plan_needs_the_officer_and_the_owner() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::PlanProposed);
    assert_refused(
        fx.try_as(&request, OPERATOR, Command::AcceptPlan, at(54)),
        RefusalKind::Forbidden,
        "otto",
    );
    let half = fx.run(&mut request, REQUESTER, Command::AcceptPlan, at(54));
    assert_eq!(half.after, State::PlanProposed);
    assert_conflict(
        fx.try_as(&request, OPERATOR, Command::ApprovePlan, at(54)),
        State::PlanProposed,
        false,
    );
    assert_eq!(fx.run(&mut request, OWNER, Command::AcceptPlan, at(55)).after, State::PlanAccepted);
}

#[test]
fn the_named_update_officer_not_the_requester_gives_the_officer_consent() {
    let fx = Fixture::new();
    let fields = RequestFields { officer: Some(SECOND_OFFICER), ..complete_fields() };
    let mut request = fx.advance(fx.draft_with(fields), State::PlanProposed);
    assert_refused(
        fx.try_as(&request, REQUESTER, Command::AcceptPlan, at(54)),
        RefusalKind::Forbidden,
        "rhea",
    );
    let half = fx.run(&mut request, SECOND_OFFICER, Command::AcceptPlan, at(54));
    assert_eq!(half.after, State::PlanProposed);
    assert_eq!(fx.run(&mut request, OWNER, Command::AcceptPlan, at(55)).after, State::PlanAccepted);
    assert_eq!(plan(&request).officer_acceptance.unwrap().by, SECOND_OFFICER);
}

// The notice period.

#[test]
fn approve_plan_refuses_a_start_inside_the_default_24_hours_notice() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::PlanAccepted);
    assert_eq!(fx.policy.settings.notice_hours, 24);

    // The plan starts at hour 100; approving at hour 77 leaves 23 hours.
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::ApprovePlan, at(77)),
        RefusalKind::Invalid,
        &at(101).to_string(),
    );
    assert!(refusal.message.contains("24"), "{refusal:?}");
    assert!(refusal.fields.contains(&"start".to_owned()), "{refusal:?}");

    // Exactly 24 hours ahead complies, and the announcement is recorded then.
    let moved = fx.run(&mut request, OPERATOR, Command::ApprovePlan, at(76));
    assert_eq!(moved.after, State::PlanApproved);
    assert_eq!(plan(&request).announced_at, Some(at(76)));
}

#[test]
fn approve_plan_and_start_production_follow_a_48_hours_policy() {
    let fx = Fixture::new()
        .with_settings(PolicySettings { notice_hours: 48, ..PolicySettings::default() });
    let mut request = fx.reach(State::TestAcknowledged);
    let start = at(150);
    fx.run(&mut request, OPERATOR, Command::ProposePlan { plan: plan_at(start) }, at(53));
    fx.run(&mut request, REQUESTER, Command::AcceptPlan, at(54));
    fx.run(&mut request, OWNER, Command::AcceptPlan, at(55));

    // 47 hours before the start is too late under this policy.
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::ApprovePlan, at(103)),
        RefusalKind::Invalid,
        &at(151).to_string(),
    );
    assert!(refusal.message.contains("48"), "{refusal:?}");

    fx.run(&mut request, OPERATOR, Command::ApprovePlan, at(102));
    fx.run(&mut request, OWNER, Command::ConfirmPresence, at(103));
    let just_before = start - SignedDuration::from_secs(1);
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::StartProduction, just_before),
        RefusalKind::Conflict,
        &start.to_string(),
    );
    assert_eq!(refusal.state, Some((State::Ready, false)));
    let moved = fx.run(&mut request, OPERATOR, Command::StartProduction, start);
    assert_eq!(moved.after, State::ProdUpdating);
}

#[test]
fn start_production_waits_until_exactly_the_notice_after_the_announcement() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::PlanAccepted);
    // Announced exactly 24 hours before the plan's start at hour 100.
    fx.run(&mut request, OPERATOR, Command::ApprovePlan, at(76));
    fx.run(&mut request, OWNER, Command::ConfirmPresence, at(77));

    let earliest = at(100);
    let just_before = earliest - SignedDuration::from_secs(1);
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::StartProduction, just_before),
        RefusalKind::Conflict,
        &earliest.to_string(),
    );
    assert_eq!(refusal.state, Some((State::Ready, false)));
    let moved = fx.run(&mut request, OPERATOR, Command::StartProduction, earliest);
    assert_eq!(moved.after, State::ProdUpdating);
    assert_eq!(request.production_start.unwrap().at, earliest);
}

// Test and production results, problems and decisions.

#[test]
fn failed_test_without_a_problem_is_refused() {
    let fx = Fixture::new();
    let request = fx.reach(State::Testing);
    let report = WorkReport { passed: false, notes: Some(text("broke")), problem: None };
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::RecordTest { report }, at(50)),
        RefusalKind::Invalid,
        "problem",
    );
    assert_eq!(refusal.fields, ["problem"]);
}

#[test]
fn failed_test_with_a_problem_records_it_with_its_criticality() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Testing);
    let report = failed(EnvironmentKind::Test);
    let moved = fx.run(&mut request, OPERATOR, Command::RecordTest { report }, at(50));
    assert_eq!(moved.after, State::TestFailed);
    assert_eq!(request.problems.len(), 1);
    let problem = &request.problems[0];
    assert_eq!(problem.criticality, Criticality::High);
    assert_eq!(problem.environment, EnvironmentKind::Test);
    assert_eq!(problem.description.as_str(), "nginx fails to start after the upgrade");
    assert_eq!((problem.found_by, problem.found_at), (OPERATOR, at(50)));
    assert!(!request.test_result.unwrap().passed);
}

#[test]
fn failed_production_without_a_problem_is_refused() {
    let fx = Fixture::new();
    let request = fx.reach(State::ProdUpdating);
    let report = WorkReport { passed: false, notes: None, problem: None };
    let refusal = assert_refused(
        fx.try_as(&request, OPERATOR, Command::RecordProduction { report }, at(101)),
        RefusalKind::Invalid,
        "problem",
    );
    assert_eq!(refusal.fields, ["problem"]);
}

#[test]
fn abandoning_a_failed_test_is_terminal() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::TestFailed);
    let moved = fx.run(&mut request, REQUESTER, decide(DecisionKind::Abandon), at(51));
    assert_eq!(moved.after, State::Abandoned);
    assert_eq!(request.decisions.last().unwrap().kind, DecisionKind::Abandon);
    assert_other_verbs_conflict(&fx, &request);
    assert!(design_allowed(State::Abandoned, false).is_empty());
}

#[test]
fn a_decision_must_fit_the_failure() {
    let fx = Fixture::new();
    let test_failed = fx.reach(State::TestFailed);
    let refusal =
        expect_refusal(fx.try_as(&test_failed, OWNER, decide(DecisionKind::RollBack), at(51)));
    assert_eq!(refusal.kind, RefusalKind::Conflict, "{refusal:?}");
    assert_eq!(refusal.state, Some((State::TestFailed, false)));

    let prod_failed = fx.reach(State::ProdFailed);
    let refusal =
        expect_refusal(fx.try_as(&prod_failed, REQUESTER, decide(DecisionKind::Proceed), at(102)));
    assert_eq!(refusal.kind, RefusalKind::Conflict, "{refusal:?}");
    assert_eq!(refusal.state, Some((State::ProdFailed, false)));
}

#[test]
fn rolling_back_a_failed_production_is_the_owners_decision() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::ProdFailed);
    let roll_back = || decide(DecisionKind::RollBack);
    assert_refused(
        fx.try_as(&request, REQUESTER, roll_back(), at(102)),
        RefusalKind::Forbidden,
        "rhea",
    );
    assert_refused(
        fx.try_as(&request, OPERATOR, roll_back(), at(102)),
        RefusalKind::Forbidden,
        "otto",
    );
    let moved = fx.run(&mut request, OWNER, roll_back(), at(102));
    assert_eq!(moved.after, State::RolledBack);
    let decision = request.decisions.last().unwrap();
    assert_eq!((decision.kind, decision.taken_by.clone()), (DecisionKind::RollBack, vec![OWNER]));
}

#[test]
fn accepting_a_failed_production_needs_the_officer_and_the_owner() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::ProdFailed);
    let half = fx.run(&mut request, REQUESTER, decide(DecisionKind::Accept), at(102));
    assert_eq!(half.after, State::ProdFailed);
    let whole = fx.run(&mut request, OWNER, decide(DecisionKind::Accept), at(103));
    assert_eq!(whole.after, State::ProdPassed);
    assert_eq!(request.decisions.last().unwrap().kind, DecisionKind::Accept);
}

// Cancel.

#[test]
fn cancel_from_submitted_to_ready_by_the_owner_or_the_update_officer() {
    let fx = Fixture::new();
    let mut situations: Vec<(State, bool)> =
        CANCELLABLE.iter().map(|state| (*state, false)).collect();
    situations.push((State::Testing, true));
    for (state, paused) in situations {
        for actor in [OWNER, REQUESTER] {
            let mut request = fx.reach_paused(state, paused);
            let moved = fx.run(&mut request, actor, cancel(), at(LATER));
            assert_eq!((moved.before, moved.after), (Some(state), State::Cancelled));
            let reason = request.end_reason.as_ref().unwrap();
            assert_eq!(reason.as_str(), "superseded by a newer release");
        }
    }
}

#[test]
fn cancel_by_anyone_else_is_forbidden() {
    let fx = Fixture::new();
    let request = fx.reach(State::Approved);
    for (actor, name) in [(OPERATOR, "otto"), (OTHER_OWNER, "stan"), (SECOND_OFFICER, "vera")] {
        assert_refused(fx.try_as(&request, actor, cancel(), at(2)), RefusalKind::Forbidden, name);
    }
}

#[test]
fn cancel_is_refused_from_production_on_and_from_terminal_states() {
    let fx = Fixture::new();
    let mut situations = vec![
        (State::ProdUpdating, false),
        (State::ProdUpdating, true),
        (State::ProdPassed, false),
        (State::ProdFailed, false),
        (State::RolledBack, false),
        (State::Documented, false),
    ];
    situations.extend(TERMINAL.iter().map(|state| (*state, false)));
    for (state, paused) in situations {
        let request = fx.reach_paused(state, paused);
        for actor in [OWNER, REQUESTER] {
            let result = fx.try_as(&request, actor, cancel(), at(LATER));
            assert_conflict(result, state, paused);
        }
    }
}

// Revising the plan.

#[test]
fn revise_plan_returns_to_plan_proposed_and_clears_every_agreement() {
    let fx = Fixture::new();
    for state in [State::PlanAccepted, State::PlanApproved, State::Ready] {
        let mut request = fx.reach(state);
        // The new plan starts exactly 24 hours after its approval at hour 80.
        let start = at(104);
        let revise = Command::RevisePlan { plan: plan_at(start) };
        let moved = fx.run(&mut request, OPERATOR, revise, at(70));
        assert_eq!((moved.before, moved.after), (Some(state), State::PlanProposed));
        let revised = plan(&request);
        assert_eq!(revised.start, start, "from {state}");
        assert!(revised.officer_acceptance.is_none(), "from {state}");
        assert!(revised.owner_acceptance.is_none(), "from {state}");
        assert!(revised.approval.is_none(), "from {state}");
        assert!(revised.announced_at.is_none(), "from {state}");
        assert!(request.presence.is_none(), "from {state}");

        // Accept and approve again, each by the same parties as before.
        let result = fx.try_as(&request, OPERATOR, Command::ApprovePlan, at(71));
        assert_conflict(result, State::PlanProposed, false);
        fx.run(&mut request, REQUESTER, Command::AcceptPlan, at(72));
        assert_eq!(request.state, State::PlanProposed, "from {state}");
        fx.run(&mut request, OWNER, Command::AcceptPlan, at(73));
        assert_eq!(request.state, State::PlanAccepted, "from {state}");
        fx.run(&mut request, OPERATOR, Command::ApprovePlan, at(80));
        assert_eq!(plan(&request).announced_at, Some(at(80)), "from {state}");
        let result = fx.try_as(&request, OPERATOR, Command::StartProduction, at(LATER));
        assert_conflict(result, State::PlanApproved, false);
        fx.run(&mut request, OWNER, Command::ConfirmPresence, at(81));

        // The old announcement (hour 60) no longer counts.
        let just_before = start - SignedDuration::from_secs(1);
        let refusal = assert_refused(
            fx.try_as(&request, OPERATOR, Command::StartProduction, just_before),
            RefusalKind::Conflict,
            &start.to_string(),
        );
        assert_eq!(refusal.state, Some((State::Ready, false)), "from {state}");
        fx.run(&mut request, OPERATOR, Command::StartProduction, start);
        assert_eq!(request.state, State::ProdUpdating, "from {state}");
    }
}

#[test]
fn revise_plan_in_plan_proposed_drops_a_partial_acceptance() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::PlanProposed);
    fx.run(&mut request, REQUESTER, Command::AcceptPlan, at(54));
    let revise = Command::RevisePlan { plan: plan_at(at(120)) };
    assert_eq!(fx.run(&mut request, OPERATOR, revise, at(55)).after, State::PlanProposed);
    assert!(plan(&request).officer_acceptance.is_none());

    fx.run(&mut request, OWNER, Command::AcceptPlan, at(56));
    assert_eq!(request.state, State::PlanProposed);
    fx.run(&mut request, REQUESTER, Command::AcceptPlan, at(57));
    assert_eq!(request.state, State::PlanAccepted);
}

#[test]
fn revise_plan_is_the_operators() {
    let fx = Fixture::new();
    let request = fx.reach(State::PlanAccepted);
    let revise = || Command::RevisePlan { plan: plan_at(at(120)) };
    assert_refused(fx.try_as(&request, OWNER, revise(), at(56)), RefusalKind::Forbidden, "olga");
    assert_refused(
        fx.try_as(&request, OTHER_OPERATOR, revise(), at(56)),
        RefusalKind::Forbidden,
        "petra",
    );
}

// Pause and resume.

#[test]
fn pause_holds_test_work_until_resumed() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Testing);
    let moved = fx.run(&mut request, OPERATOR, pause(), at(49));
    assert_eq!(
        (moved.before, moved.after, request.paused),
        (Some(State::Testing), State::Testing, true)
    );

    let record = || Command::RecordTest { report: passed() };
    let refusal =
        assert_conflict(fx.try_as(&request, OPERATOR, record(), at(50)), State::Testing, true);
    assert!(refusal.allowed.contains(&Verb::Resume), "{refusal:?}");
    assert_conflict(fx.try_as(&request, OWNER, pause(), at(50)), State::Testing, true);

    fx.run(&mut request, OWNER, Command::Resume, at(50));
    assert!(!request.paused);
    assert_conflict(fx.try_as(&request, OPERATOR, Command::Resume, at(50)), State::Testing, false);
    assert_eq!(fx.run(&mut request, OPERATOR, record(), at(51)).after, State::TestPassed);
}

#[test]
fn pause_holds_production_work_until_resumed() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::ProdUpdating);
    fx.run(&mut request, REQUESTER, pause(), at(100));
    assert_eq!((request.state, request.paused), (State::ProdUpdating, true));

    let record = || Command::RecordProduction { report: passed() };
    assert_conflict(fx.try_as(&request, OPERATOR, record(), at(101)), State::ProdUpdating, true);
    fx.run(&mut request, OPERATOR, Command::Resume, at(101));
    assert!(!request.paused);
    let result = fx.try_as(&request, REQUESTER, Command::Resume, at(101));
    assert_conflict(result, State::ProdUpdating, false);
    assert_eq!(fx.run(&mut request, OPERATOR, record(), at(102)).after, State::ProdPassed);
}

#[test]
fn pause_is_for_the_operator_the_owner_or_the_update_officer() {
    let fx = Fixture::new();
    let testing = fx.reach(State::Testing);
    for actor in [OPERATOR, OWNER, REQUESTER] {
        let moved = fx.try_as(&testing, actor, pause(), at(49)).unwrap();
        assert!(moved.request.paused, "paused by account {actor}");
    }
    for (actor, name) in [(OTHER_OPERATOR, "petra"), (OTHER_OWNER, "stan")] {
        assert_refused(fx.try_as(&testing, actor, pause(), at(49)), RefusalKind::Forbidden, name);
    }
}

#[test]
fn pause_outside_test_and_production_work_is_a_conflict() {
    let fx = Fixture::new();
    for state in [State::Approved, State::TestPassed, State::Ready, State::ProdPassed] {
        let request = fx.reach(state);
        assert_conflict(fx.try_as(&request, OPERATOR, pause(), at(LATER)), state, false);
    }
}

// Documentation and closing.

#[test]
fn document_records_the_next_revision_and_only_the_update_officer_closes() {
    let mut fx = Fixture::new();
    fx.system.documentation_revision = 6;
    let mut request = fx.reach(State::ProdPassed);
    assert_refused(
        fx.try_as(&request, OTHER_OPERATOR, document(), at(103)),
        RefusalKind::Forbidden,
        "petra",
    );

    let moved = fx.run(&mut request, OPERATOR, document(), at(103));
    assert_eq!(moved.after, State::Documented);
    let revision = moved.documentation.unwrap();
    assert_eq!(revision.number, 7);
    assert_eq!((revision.system, revision.request), (SYSTEM, Some(REQUEST)));
    assert_eq!((revision.recorded_by, revision.recorded_at), (OPERATOR, at(103)));
    assert_eq!(revision.summary.as_str(), "openssl 3.0.15 on all payroll hosts");
    assert_eq!(request.documentation_revision, Some(7));

    for (actor, name) in [(OPERATOR, "otto"), (OWNER, "olga"), (SECOND_OFFICER, "vera")] {
        let result = fx.try_as(&request, actor, Command::Close, at(104));
        assert_refused(result, RefusalKind::Forbidden, name);
    }
    assert_eq!(fx.run(&mut request, REQUESTER, Command::Close, at(104)).after, State::Closed);
}

#[test]
fn a_rolled_back_request_is_documented_and_closed_too() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::RolledBack);
    let moved = fx.run(&mut request, OPERATOR, document(), at(103));
    assert_eq!((moved.after, moved.documentation.unwrap().number), (State::Documented, 1));
    assert_eq!(fx.run(&mut request, REQUESTER, Command::Close, at(104)).after, State::Closed);
}

#[test]
fn close_is_for_the_named_update_officer_not_the_requester() {
    let fx = Fixture::new();
    let fields = RequestFields { officer: Some(SECOND_OFFICER), ..complete_fields() };
    let mut request = fx.advance(fx.draft_with(fields), State::Documented);
    assert_refused(
        fx.try_as(&request, REQUESTER, Command::Close, at(104)),
        RefusalKind::Forbidden,
        "rhea",
    );
    assert_eq!(fx.run(&mut request, SECOND_OFFICER, Command::Close, at(104)).after, State::Closed);
}

#[test]
fn close_needs_the_documentation_revision_on_record() {
    let fx = Fixture::new();
    let mut request = fx.reach(State::Documented);
    request.documentation_revision = None;
    let refusal = assert_refused(
        fx.try_as(&request, REQUESTER, Command::Close, at(104)),
        RefusalKind::Conflict,
        "documentation",
    );
    assert_eq!(refusal.state, Some((State::Documented, false)));
}

// Terminal states.

#[test]
fn terminal_states_refuse_every_verb_with_nothing_allowed() {
    let fx = Fixture::new();
    for state in TERMINAL {
        let request = fx.reach(state);
        assert!(design_allowed(state, false).is_empty());
        for verb in Verb::ALL {
            if verb == Verb::Create {
                continue;
            }
            let (actor, command) = proper(verb, &request, at(LATER));
            let refusal =
                assert_conflict(fx.try_as(&request, actor, command, at(LATER)), state, false);
            assert!(refusal.allowed.is_empty(), "{verb} in {state}: {refusal:?}");
        }
    }
}

// Evidence: the product's own steps on its agents' reports.

fn runs(environment: EnvironmentKind, report: WorkReport) -> lifecycle::Evidence {
    lifecycle::Evidence::Runs {
        environment,
        report,
        runs: serde_json::json!([{ "job": 1 }]),
        automatic_rollback: None,
    }
}

#[test]
fn agent_runs_record_the_test_as_the_product() {
    let fx = Fixture::new();
    let request = fx.reach(State::Testing);
    let moved = lifecycle::apply_evidence(
        &request,
        runs(EnvironmentKind::Test, passed()),
        at(50),
        &fx.policy,
        &fx.system,
    )
    .unwrap();
    assert_eq!((moved.verb, moved.after), (Verb::RecordTest, State::TestPassed));
    assert_eq!(moved.request.test_result.unwrap().recorded.by, AccountId::PRODUCT);
    assert_eq!(moved.details["runs"][0]["job"], 1);

    let failed = lifecycle::apply_evidence(
        &request,
        runs(EnvironmentKind::Test, failed(EnvironmentKind::Test)),
        at(50),
        &fx.policy,
        &fx.system,
    )
    .unwrap();
    assert_eq!(failed.after, State::TestFailed);
    assert_eq!(failed.request.problems[0].found_by, AccountId::PRODUCT);
}

#[test]
fn agent_runs_in_another_state_or_without_a_problem_are_refused() {
    let fx = Fixture::new();
    let approved = fx.reach(State::Approved);
    let result = lifecycle::apply_evidence(
        &approved,
        runs(EnvironmentKind::Test, passed()),
        at(50),
        &fx.policy,
        &fx.system,
    );
    assert_conflict(result, State::Approved, false);

    let updating = fx.reach(State::ProdUpdating);
    let test_runs = lifecycle::apply_evidence(
        &updating,
        runs(EnvironmentKind::Test, passed()),
        at(101),
        &fx.policy,
        &fx.system,
    );
    assert_conflict(test_runs, State::ProdUpdating, false);

    let no_problem = WorkReport { passed: false, notes: None, problem: None };
    let result = lifecycle::apply_evidence(
        &updating,
        runs(EnvironmentKind::Prod, no_problem),
        at(101),
        &fx.policy,
        &fx.system,
    );
    assert_refused(result, RefusalKind::Invalid, "problem");
}

#[test]
fn a_newer_version_after_the_test_sends_the_request_back_to_testing() {
    let fx = Fixture::new();
    for state in [State::TestPassed, State::TestAcknowledged, State::PlanApproved, State::Ready] {
        let request = fx.reach(state);
        let package = request.fields.packages[0].clone();
        let evidence = lifecycle::Evidence::NewerVersion {
            package: package.name.clone(),
            tested: package.version.clone(),
            newer: "9.9.9-1".to_owned(),
        };
        let moved =
            lifecycle::apply_evidence(&request, evidence, at(80), &fx.policy, &fx.system).unwrap();
        assert_eq!((moved.verb, moved.after), (Verb::ReopenTest, State::Testing), "{state}");
        assert_eq!(moved.request.fields.packages[0].version, "9.9.9-1");
        assert!(moved.request.test_result.is_none() && moved.request.plan.is_none());
        assert!(moved.details["reason"].as_str().unwrap().contains("newer than the tested"));
    }
    for state in [State::Testing, State::ProdUpdating, State::Closed] {
        let request = fx.reach(state);
        let evidence = lifecycle::Evidence::NewerVersion {
            package: "openssl".to_owned(),
            tested: "1".to_owned(),
            newer: "2".to_owned(),
        };
        let result = lifecycle::apply_evidence(&request, evidence, at(80), &fx.policy, &fx.system);
        assert_conflict(result, state, false);
    }
}

#[test]
fn a_package_version_valid_for_neither_dpkg_nor_rpm_is_refused_naming_both() {
    let err = PackageTarget::parse("openssl=1.0..1-a:b").unwrap_err();
    assert!(err.contains("invalid deb version") && err.contains("as rpm"), "{err}");
    assert!(PackageTarget::parse("openssl=3.0.15-1~deb12u1").is_ok());
    assert!(PackageTarget::parse("kernel=5.14.0-362.8.1.el9_3").is_ok());
}
