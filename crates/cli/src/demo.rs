//! `patchwarden demo`: what a newcomer runs to see the product work.
//!
//! It makes (or opens) a database, gives it a small organisation and one
//! system, and walks one update request from draft to closed through the
//! store, exactly as the lifecycle and its guards allow, printing each step as
//! it is taken; then it checks the control log. The work takes a week, so the
//! steps are dated from `now` as they would happen, and `now` is the only
//! clock it has. Run again on the same database, it says the demo is there
//! and only checks the log.

use std::io::Write;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use patchwarden_core::lifecycle::{Command, WorkReport};
use patchwarden_core::request::{PackageTarget, PlanInput, RequestFields};
use patchwarden_core::system::{NewSystem, SystemName, TimeZoneName};
use patchwarden_core::text::Text;
use patchwarden_core::{
    Account, AccountId, AccountName, Email, LogEntry, RequestId, Role, Roles, State, System,
};
use patchwarden_store::{NewAccount, RequestFilter, Store, StoreError};

use crate::args::DemoArgs;
use crate::database::{Found, explain, open_creating, redact};
use crate::log_verify::{Report, write_text};
use crate::{Outcome, render};

/// The demo's system; finding it means the demo has run here before.
const SYSTEM: &str = "payroll";

/// The people of the demo: account name, role, position, what they do here.
const PEOPLE: [(&str, Role, &str, &str); 5] = [
    ("adam", Role::Admin, "IT administrator", "manages accounts and policy"),
    (
        "olivia",
        Role::SecurityOfficer,
        "Information security officer",
        "files the request and closes it",
    ),
    ("oscar", Role::Owner, "Head of payroll", "owns the payroll system"),
    ("dora", Role::Owner, "Payroll team lead", "the owner's deputy"),
    ("pat", Role::Operator, "Systems operator", "does the work"),
];
const ADMIN: &str = "adam";
const OFFICER: &str = "olivia";
const OWNER: &str = "oscar";
const DEPUTY: &str = "dora";
const OPERATOR: &str = "pat";

pub async fn run(args: &DemoArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let url = &args.url;
    let shown = redact(url);
    let start = whole_second(now);
    let mut out = render::Unstoppable::new(render::stdout());
    writeln!(out, "Patchwarden demo: one update request from draft to closed\n")?;

    // Open: make the database if it is missing and give it its first policy.
    let (store, found) = open_creating(url).await?;
    store.bootstrap(start).await.map_err(|err| explain(err, url, "cannot bootstrap"))?;
    match found {
        Found::Created => writeln!(out, "Created the database {shown}.")?,
        Found::Existing => writeln!(out, "Opened the database {shown}.")?,
    }

    // Walk, unless an earlier run already did.
    let walked = match existing_demo(&store).await? {
        Some(state) => {
            writeln!(out, "It already holds the demo ({state}); nothing was added.\n")?;
            Ok(())
        }
        None => Demo { store: &store, out: &mut out, start }.walk().await,
    };

    // Check what was written, and say where to look next.
    let verification = match walked {
        Ok(()) => store.verify_log().await.map_err(|err| explain(err, url, "cannot verify")),
        Err(err) => Err(err),
    };
    store.close().await;
    let report = Report::from(&verification?);
    writeln!(out, "The control log")?;
    write!(out, "  ")?;
    write_text(&mut out, &report)?;
    writeln!(out, "\nSee every entry, and check the chain yourself:")?;
    writeln!(out, "  patchwarden log show --database {shown}")?;
    writeln!(out, "  patchwarden log verify --database {shown}")?;
    Ok(if report.intact() { Outcome::Done } else { Outcome::LogBroken })
}

/// Where the demo's request stands, if this database holds the demo.
async fn existing_demo(store: &Store) -> anyhow::Result<Option<String>> {
    let system = match store.system_by_name(SYSTEM).await {
        Ok(system) => system,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err).context("cannot look for an earlier demo"),
    };
    let filter = RequestFilter { system: Some(system.id), state: None };
    let requests = store.requests(&filter).await.context("cannot read the demo's requests")?;
    let state = match requests.first() {
        Some(request) => format!("system {SYSTEM}, request {} is {}", request.id, request.state),
        None => format!("system {SYSTEM}, no request yet"),
    };
    Ok(Some(state))
}

struct Demo<'a, W> {
    store: &'a Store,
    out: &'a mut W,
    start: Timestamp,
}

impl<W: Write> Demo<'_, W> {
    async fn walk(&mut self) -> anyhow::Result<()> {
        writeln!(
            self.out,
            "\nThe work takes a week. Each step is dated as it would happen, from now ({}),\n\
             and each writes one entry to the control log.\n",
            render::minute(self.start)
        )?;

        writeln!(self.out, "The organisation")?;
        let mut accounts = Vec::new();
        for (name, role, position, does) in PEOPLE {
            accounts.push(self.account(name, role, position, does).await?);
        }
        let person = |name: &str| {
            accounts
                .iter()
                .find(|account| account.name.as_str() == name)
                .map(|account| account.id)
                .with_context(|| format!("the demo has no account '{name}'"))
        };
        let (owner, deputy) = (person(OWNER)?, person(DEPUTY)?);
        let (officer, operator) = (person(OFFICER)?, person(OPERATOR)?);

        writeln!(self.out, "\nThe system")?;
        let system = self.system(owner, deputy).await?;

        let fields = RequestFields {
            officer: Some(officer),
            operator: Some(operator),
            test_date: Some(self.at(days(1))),
            prod_date: Some(self.at(days(7))),
            packages: vec![parse(PackageTarget::parse("openssl=3.0.15-1~deb12u1"))?],
            purpose: Some(text("purpose", "fix CVE-2024-5535 in OpenSSL")?),
            downtime: Some(text("downtime", "up to 10 minutes while nginx restarts")?),
            description: Some(text(
                "description",
                "upgrade openssl on the payroll web servers and restart nginx",
            )?),
        };
        let id = self.file(&system, fields).await?;
        for (number, step) in self.steps()?.into_iter().enumerate() {
            self.take(id, number + 2, step).await?;
        }
        writeln!(self.out)?;
        Ok(())
    }

    fn at(&self, offset: SignedDuration) -> Timestamp {
        self.start + offset
    }

    async fn account(
        &mut self,
        name: &str,
        role: Role,
        position: &str,
        does: &str,
    ) -> anyhow::Result<Account> {
        let new = NewAccount {
            name: parse(AccountName::parse(name))?,
            email: Some(parse(Email::parse(&format!("{name}@example.org")))?),
            position: Some(position.to_owned()),
            roles: Roles::only(role),
        };
        // The admin is the product's first account; the admin creates the rest.
        let actor = if name == ADMIN { "patchwarden" } else { ADMIN };
        let account = self
            .store
            .create_account(actor, new, self.start)
            .await
            .with_context(|| format!("cannot create the demo account '{name}'"))?;
        writeln!(self.out, "  {name:<7} {:<17} {position}: {does}", role.as_str())?;
        Ok(account)
    }

    async fn system(&mut self, owner: AccountId, deputy: AccountId) -> anyhow::Result<System> {
        let notify = parse(Email::parse("payroll-users@example.org"))?;
        let new = NewSystem {
            name: parse(SystemName::parse(SYSTEM))?,
            owner,
            deputy: Some(deputy),
            stakeholders: vec![],
            notify: vec![notify.clone()],
            time_zone: parse(TimeZoneName::parse("Europe/Berlin"))?,
        };
        // Security officers create systems.
        let system = self
            .store
            .create_system(OFFICER, new, self.at(minutes(5)))
            .await
            .context("cannot create the demo system")?;
        writeln!(
            self.out,
            "  {SYSTEM} (Europe/Berlin): owner {OWNER}, deputy {DEPUTY}\n  \
             its users are told of planned downtime at {notify}\n"
        )?;
        Ok(system)
    }

    async fn file(&mut self, system: &System, fields: RequestFields) -> anyhow::Result<RequestId> {
        let packages: Vec<String> = fields.packages.iter().map(ToString::to_string).collect();
        let (transition, entry) = self
            .store
            .create_request(OFFICER, system.id, fields, self.at(minutes(10)))
            .await
            .context("the demo could not file its update request")?;
        let id = transition.request.id;
        writeln!(
            self.out,
            "Update request {id}: {} on {SYSTEM}, to fix CVE-2024-5535",
            packages.join(", ")
        )?;
        self.print_step(1, "olivia, the security officer, files it as a draft", &entry)?;
        Ok(id)
    }

    async fn take(&mut self, id: RequestId, number: usize, step: Step) -> anyhow::Result<()> {
        let verb = step.command.verb();
        let (_, entry) = self
            .store
            .apply(step.actor, id, step.command, self.at(step.offset))
            .await
            .with_context(|| format!("demo step {number} ({} by {}) failed", verb, step.actor))?;
        self.print_step(number, &step.says, &entry)
    }

    fn print_step(&mut self, number: usize, says: &str, entry: &LogEntry) -> anyhow::Result<()> {
        let moved = match (entry.state_before, entry.state_after) {
            (Some(before), Some(after)) if before == after => format!("stays {after}"),
            (before, after) => render::states(before.map(State::as_str), after.map(State::as_str)),
        };
        writeln!(self.out, "  {number:>2}. {says}")?;
        writeln!(
            self.out,
            "      {}: {moved}, {}, log entry {}",
            entry.action,
            render::minute(entry.at),
            entry.seq
        )?;
        if let Some(notice) = notice(entry) {
            writeln!(self.out, "      {notice}")?;
        }
        Ok(())
    }

    /// Every step after filing, in order: who, what, when (from the start).
    fn steps(&self) -> anyhow::Result<Vec<Step>> {
        let passed = || WorkReport { passed: true, notes: None, problem: None };
        let plan = PlanInput {
            start: self.at(days(7)),
            duration_minutes: 120,
            participants: vec![],
            recipients: vec![],
        };
        let plan_start = render::minute(plan.start);
        let step = |actor, command, offset, says: &str| Step {
            actor,
            command,
            offset,
            says: says.to_owned(),
        };
        Ok(vec![
            step(
                OFFICER,
                Command::Submit,
                minutes(12),
                "olivia submits it for the owner's approval",
            ),
            step(
                OWNER,
                Command::Approve { comment: Some(text("comment", "go ahead, test it first")?) },
                hours(1),
                "oscar, the system's owner, approves it",
            ),
            step(
                OPERATOR,
                Command::StartTest,
                days(1),
                "pat, the operator, starts the update in the test environment",
            ),
            step(
                OPERATOR,
                Command::RecordTest {
                    report: WorkReport {
                        notes: Some(text("notes", "nginx restarted; health checks green")?),
                        ..passed()
                    },
                },
                days(1) + hours(2),
                "pat records that the test passed",
            ),
            step(
                OWNER,
                Command::AcknowledgeTest,
                days(1) + hours(3),
                "oscar acknowledges the test",
            ),
            step(
                OPERATOR,
                Command::ProposePlan { plan },
                days(1) + hours(4),
                &format!("pat proposes the production plan: {plan_start}, for 2 hours"),
            ),
            step(
                OFFICER,
                Command::AcceptPlan,
                days(1) + hours(5),
                "olivia accepts the plan as the update officer; it waits for the owner",
            ),
            step(OWNER, Command::AcceptPlan, days(1) + hours(6), "oscar accepts the plan too"),
            step(
                OPERATOR,
                Command::ApprovePlan,
                days(1) + hours(7),
                "pat approves the plan; the announcement to payroll's users is recorded",
            ),
            step(
                OWNER,
                Command::ConfirmPresence,
                days(2),
                "oscar confirms he will be there during the work",
            ),
            step(
                OPERATOR,
                Command::StartProduction,
                days(7),
                "on the planned day, pat starts the update in production",
            ),
            step(
                OPERATOR,
                Command::RecordProduction { report: passed() },
                days(7) + hours(1),
                "pat records that production passed its checks",
            ),
            step(
                OPERATOR,
                Command::Document {
                    summary: text("summary", "runbook revised for openssl 3.0.15")?,
                },
                days(7) + hours(2),
                "pat records documentation revision 1 of payroll",
            ),
            step(OFFICER, Command::Close, days(7) + hours(3), "olivia closes the request"),
        ])
    }
}

/// What the notice period asks, said where the announcement is recorded.
fn notice(entry: &LogEntry) -> Option<String> {
    let details: serde_json::Value = serde_json::from_str(&entry.details).ok()?;
    let notice_hours = details.get("notice_hours")?.as_i64()?;
    let earliest = entry.at + SignedDuration::from_hours(notice_hours);
    Some(format!(
        "(the policy asks {notice_hours} h notice: production may start from {})",
        render::minute(earliest)
    ))
}

/// One step of the walk.
struct Step {
    actor: &'static str,
    command: Command,
    offset: SignedDuration,
    says: String,
}

/// `now` without its fraction of a second, so that the dates read cleanly.
fn whole_second(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn text(field: &str, raw: &str) -> anyhow::Result<Text> {
    parse(Text::parse(field, raw))
}

/// The demo's own constants, which parse; a failure is a bug worth a message.
fn parse<T>(parsed: Result<T, String>) -> anyhow::Result<T> {
    parsed.map_err(|err| anyhow::anyhow!("the demo's data is invalid: {err}"))
}
