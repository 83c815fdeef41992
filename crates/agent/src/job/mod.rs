//! The job executor: runs one verified job to one explicit end and reports it.
//!
//! A job says only: install these exact versions, run these health checks, roll back on a
//! failed check or not, reboot or not. The executor's rules:
//!
//! - **A job is on disk before it counts as seen.** The run loop has the executor journal a
//!   job ([`Executor::accept`]) before it records the job's sequence, after which the server
//!   does not send that job again; so a job is never known to the agent only by its sequence.
//! - **The phase is on disk before every side effect.** Each job has a journal
//!   (`journal_dir/<job id>.json`, see [`journal`]); the executor saves the phase it is entering
//!   before it does what the phase names, so an agent killed at any point finds on start what it
//!   was doing and [`Executor::resume`] finishes it or reconciles it with what the machine shows.
//! - **Transactions outlive the agent.** Installs, rollbacks and `dpkg --configure -a` run as
//!   transient runs ([`Systemd::run_transient`], [`transient`]), so an upgrade that restarts the
//!   agent's own service does not kill them; their outcome is read from files they write.
//! - **Nothing changes before the checks.** Too late in the window: missed. The package
//!   manager's lock held until the window's end: missed with "lock busy", naming the holder.
//!   dpkg interrupted: refused, unless the job allows `dpkg --configure -a` (recorded). The
//!   versions replaced are recorded and their package files kept (refused when they cannot be),
//!   so a rollback never needs the repository.
//! - **The end is explicit.** Succeeded only when every pinned version is installed and every
//!   check passed; a mismatch is failed, never succeeded; a failed check with rollback is
//!   rolled back, with the checks run again after it.
//! - **A reboot is a step.** The boot id before it is journaled; after boot `resume` confirms
//!   the new boot id and the running kernel and only then reports.
//!
//! **A test hook that only stops the process.** When the environment variable
//! [`HALT_AFTER_VARIABLE`] (`PATCHWARDEN_AGENT_TEST_HALT_AFTER`) names a halt point, the
//! executor, on reaching it, writes `journal_dir/<job id>.halted` (holding the point's name) and
//! blocks forever, so that a test can kill the process there with SIGKILL and start it again.
//! The points are:
//!
//! - a phase's name as the journal writes it (`accepted`, `versions-recorded`, ...,
//!   `report-ready`): right after that phase was saved, before its side effect;
//! - `job-received`: when the run loop hands a job to [`Executor::execute`], its journal
//!   accepted and its sequence recorded;
//! - `install-run-started`, `rollback-run-started`, `recover-run-started`: once that transient
//!   run was started, before it is waited for (the transaction runs on, as after a crash);
//! - `report-sent`: once the server confirmed the report, before the journal records it
//!   ([`Executor::halt_point`], called by the run loop).
//!
//! The hook never changes what the executor does: unset, or naming a point the job does not
//! pass, it is inert.
//!
//! `EndOfWindow` reboots are simplified: once the work succeeded, `execute` waits until the
//! window's end (journaled as `reboot-scheduled`, so a restarted agent keeps waiting) and then
//! reboots; the report follows the reboot. After a reboot the health checks are not run again.
//! A rollback or a failure never reboots.

mod apt;
mod dnf;
mod health;
mod journal;
mod lock;
mod packages;
mod systemd;
mod transient;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use patchwarden_protocol::{
    CheckResult, Job, JobOutcome, JobReport, MissedReason, PROTOCOL_VERSION, RebootPolicy,
    RebootRecord, StepRecord,
};

pub use journal::{JOURNAL_FORMAT, Phase};
pub use lock::{BusyLock, LockHolder};
pub use systemd::{SystemctlSystemd, Systemd, SystemdError};
pub use transient::{TransientCommand, WrappedCommand};

use crate::PackageSystem;
use crate::facts::{self, FactSources};
use journal::{Change, Failure, Journal, PendingReboot, RunResult};
use packages::{PackageOps, PlanError};
use transient::RunState;

/// How often a held lock is probed again.
const LOCK_POLL: Duration = Duration::from_millis(250);

/// How long a rollback waits for a lock, past the window's end if need be.
pub(crate) const ROLLBACK_LOCK_WAIT: SignedDuration = SignedDuration::from_mins(10);

/// How long past its commands' own limits a transient run is waited for.
const RUN_GRACE: Duration = Duration::from_secs(60);

/// How many times a reboot is asked for before the job fails at the reboot.
const REBOOT_REQUESTS: u32 = 2;

/// The test hook's variable: the point at which the executor stops the process for good.
pub const HALT_AFTER_VARIABLE: &str = "PATCHWARDEN_AGENT_TEST_HALT_AFTER";

/// What the executor works with.
pub struct ExecutorSettings {
    pub package_system: PackageSystem,
    /// One journal per job (`STATE_DIR/jobs`); the transient runs' folders live beside them.
    pub journal_dir: PathBuf,
    /// Old package files, `keep_dir/<job id>/<package>/`.
    pub keep_dir: PathBuf,
    /// Unit checks, transient runs, the reboot.
    pub systemd: Box<dyn Systemd>,
    /// Where the boot id (`facts.boot_id`), the running kernel and `/run/reboot-required` are read.
    pub facts: FactSources,
    pub clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl fmt::Debug for ExecutorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorSettings")
            .field("package_system", &self.package_system)
            .field("journal_dir", &self.journal_dir)
            .field("keep_dir", &self.keep_dir)
            .field("systemd", &self.systemd)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// Runs jobs; see the module documentation.
#[derive(Debug)]
pub struct Executor {
    settings: ExecutorSettings,
    /// Jobs [`Executor::accept`] journaled in this process and not yet executed.
    accepted_here: Mutex<BTreeSet<i64>>,
    /// The test hook's halt point, read once from [`HALT_AFTER_VARIABLE`].
    halt_after: Option<String>,
}

/// How [`Executor::execute`] returned.
// One value per job run: the report is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Execution {
    /// The job ended; send this report until the server acknowledges it.
    Report(JobReport),
    /// A reboot was asked for; [`Executor::resume`] reports after the boot.
    Rebooting,
    /// Only from [`Executor::execute_until`]: the run stopped as if the agent died there.
    Stopped { phase: Phase },
}

/// The journal could not be read or written, or has no report to acknowledge.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("job journal {}: {source}", path.display())]
    Journal { path: PathBuf, source: io::Error },
    #[error("there is no journal for job {0}")]
    UnknownJob(i64),
    #[error("job {job_id} has no report yet (phase {})", phase.as_str())]
    NotFinished { job_id: i64, phase: Phase },
}

/// What a phase's handler decided.
enum Next {
    Phase(Phase),
    /// The test hook stopped the run after a side effect started.
    Stopped,
    Rebooting,
    /// The journal could not be saved: the run cannot go on safely.
    Broken(io::Error),
}

/// What a handler needs besides the journal.
struct Context<'a> {
    ops: &'a dyn PackageOps,
    /// `execute_until` stops in this phase, right after its side effect started.
    stop_here: bool,
    /// The journal was loaded from disk and this is the first phase handled since.
    resumed: bool,
}

/// Waits without sleeping the thread in a way clippy forbids: a channel nobody sends on.
pub(crate) fn pause(duration: Duration) {
    let (_sender, receiver) = mpsc::channel::<()>();
    let _ = receiver.recv_timeout(duration);
}

impl Executor {
    pub fn new(settings: ExecutorSettings) -> Self {
        let halt_after = std::env::var(HALT_AFTER_VARIABLE).ok().filter(|point| !point.is_empty());
        Executor { settings, accepted_here: Mutex::new(BTreeSet::new()), halt_after }
    }

    /// The test hook (see the module documentation): when [`HALT_AFTER_VARIABLE`] names `point`,
    /// writes `journal_dir/<job id>.halted` and blocks this thread forever; otherwise returns.
    pub fn halt_point(&self, point: &str, job_id: i64) {
        if self.halt_after.as_deref() != Some(point) {
            return;
        }
        let marker = self.settings.journal_dir.join(format!("{job_id}.halted"));
        let written = std::fs::create_dir_all(&self.settings.journal_dir)
            .and_then(|()| std::fs::write(&marker, point));
        if let Err(error) = written {
            tracing::error!(path = %marker.display(), %error, "cannot write the halt marker");
        }
        tracing::warn!(job.id = job_id, point, "halted by {HALT_AFTER_VARIABLE}");
        loop {
            std::thread::park();
        }
    }

    /// Runs a verified job to its end (or to a reboot). A job whose journal exists already is
    /// not started again: it is resumed, or its report is returned again.
    pub fn execute(&self, job: &Job) -> Execution {
        self.halt_point("job-received", job.id);
        self.start(job, None)
    }

    /// For tests only: runs `job` like [`Self::execute`] but stops once `stop_after`'s side
    /// effect has started (a transaction is not waited for) and before the next phase is saved,
    /// as an agent killed at that moment would.
    pub fn execute_until(&self, job: &Job, stop_after: Phase) -> Execution {
        self.start(job, Some(stop_after))
    }

    /// On agent start: finishes or reconciles every job not acknowledged yet and returns the
    /// reports that are ready. The same report comes back on every call until acknowledged.
    pub fn resume(&self) -> Vec<JobReport> {
        let mut reports = Vec::new();
        for (job_id, loaded) in journal::load_each(&self.settings.journal_dir) {
            match loaded {
                Ok(journal) if journal.phase == Phase::Acknowledged => {}
                Ok(journal) => {
                    if let Execution::Report(report) = self.drive(journal, None, true) {
                        reports.push(report);
                    }
                }
                Err(unreadable) => reports.push(unreadable_report(job_id, &unreadable)),
            }
        }
        reports
    }

    /// The server has the report of `job_id`: it is never reported again. The journal stays.
    pub fn acknowledge(&self, job_id: i64) -> Result<(), ExecutorError> {
        let dir = &self.settings.journal_dir;
        let journal_error =
            |source| ExecutorError::Journal { path: Journal::path(dir, job_id), source };
        let mut journal = Journal::load(dir, job_id)
            .map_err(journal_error)?
            .ok_or(ExecutorError::UnknownJob(job_id))?;
        match journal.phase {
            Phase::Acknowledged => Ok(()),
            Phase::ReportReady => {
                journal.phase = Phase::Acknowledged;
                journal.save(dir).map_err(journal_error)
            }
            phase => Err(ExecutorError::NotFinished { job_id, phase }),
        }
    }

    fn now(&self) -> Timestamp {
        (self.settings.clock)()
    }

    fn ops(&self) -> Box<dyn PackageOps + '_> {
        match &self.settings.package_system {
            PackageSystem::Apt(driver) => Box::new(apt::AptOps::new(driver)),
            PackageSystem::Dnf(driver) => Box::new(dnf::DnfOps::new(driver)),
        }
    }

    /// Keeps `job` as a journal in phase `accepted` without running it, so that an agent killed
    /// from here on finds it at its next start ([`Self::resume`]). The run loop calls this
    /// before it records the job's sequence; [`Self::execute`] then runs the job as accepted
    /// here, not as resumed. A job with a journal already is left as it is.
    pub fn accept(&self, job: &Job) -> Result<(), ExecutorError> {
        let dir = &self.settings.journal_dir;
        let journal_error =
            |source| ExecutorError::Journal { path: Journal::path(dir, job.id), source };
        if Journal::load(dir, job.id).map_err(journal_error)?.is_some() {
            return Ok(());
        }
        let journal = self.accepted_journal(job);
        journal.save(dir).map_err(journal_error)?;
        if let Ok(mut accepted) = self.accepted_here.lock() {
            accepted.insert(job.id);
        }
        self.halt_point(journal.phase.as_str(), job.id);
        Ok(())
    }

    fn start(&self, job: &Job, stop: Option<Phase>) -> Execution {
        let dir = &self.settings.journal_dir;
        match Journal::load(dir, job.id) {
            Ok(Some(journal)) => {
                let accepted_here =
                    self.accepted_here.lock().is_ok_and(|mut accepted| accepted.remove(&job.id));
                return self.drive(journal, stop, !accepted_here);
            }
            Ok(None) => {}
            Err(error) => {
                return Execution::Report(self.broken_report(&Journal::new(job.clone()), &error));
            }
        }
        let journal = self.accepted_journal(job);
        if let Err(error) = journal.save(dir) {
            return Execution::Report(self.broken_report(&journal, &error));
        }
        self.halt_point(journal.phase.as_str(), journal.job.id);
        self.drive(journal, stop, false)
    }

    /// A new journal for `job`, its acceptance noted.
    fn accepted_journal(&self, job: &Job) -> Journal {
        let mut journal = Journal::new(job.clone());
        let packages: Vec<String> =
            job.install.iter().map(|pin| format!("{}={}", pin.name, pin.version)).collect();
        let detail =
            format!("job {} for request {}: {}", job.id, job.request_id, packages.join(" "));
        self.note(&mut journal, "accept", true, detail);
        journal
    }

    /// Handles phase after phase, saving each before its side effect, until the job ends.
    fn drive(&self, mut journal: Journal, stop: Option<Phase>, resumed: bool) -> Execution {
        let ops = self.ops();
        let unfinished = !matches!(journal.phase, Phase::ReportReady | Phase::Acknowledged);
        if resumed && unfinished {
            let detail = format!("continuing from phase {}", journal.phase.as_str());
            self.note(&mut journal, "resume", true, detail);
        }
        let mut resumed_here = resumed;
        loop {
            if matches!(journal.phase, Phase::ReportReady | Phase::Acknowledged) {
                return match journal.report.clone() {
                    Some(report) => Execution::Report(report),
                    None => {
                        let missing = io::Error::other("the journal is finished but has no report");
                        Execution::Report(self.broken_report(&journal, &missing))
                    }
                };
            }
            let phase = journal.phase;
            let context =
                Context { ops: &*ops, stop_here: stop == Some(phase), resumed: resumed_here };
            resumed_here = false;
            match self.handle(&mut journal, &context) {
                Next::Phase(_) if context.stop_here => return Execution::Stopped { phase },
                Next::Phase(next) => {
                    journal.phase = next;
                    if let Err(error) = journal.save(&self.settings.journal_dir) {
                        return Execution::Report(self.broken_report(&journal, &error));
                    }
                    self.halt_point(next.as_str(), journal.job.id);
                }
                Next::Stopped => return Execution::Stopped { phase },
                Next::Rebooting => return Execution::Rebooting,
                Next::Broken(error) => {
                    return Execution::Report(self.broken_report(&journal, &error));
                }
            }
        }
    }

    fn handle(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        match journal.phase {
            Phase::Accepted => self.prepare(journal, cx),
            Phase::Recovering => self.recover(journal, cx),
            Phase::VersionsRecorded => self.keep_old_files(journal, cx),
            Phase::OldPackagesKept => self.before_transaction(journal, cx),
            Phase::TransactionStarted => self.transaction(journal, cx),
            Phase::TransactionFinished => self.verify_transaction(journal, cx),
            Phase::CheckingHealth => self.check_health(journal, cx, false),
            Phase::RollingBack => self.roll_back(journal, cx),
            Phase::RollbackFinished => self.verify_rollback(journal, cx),
            Phase::CheckingHealthAfterRollback => self.check_health(journal, cx, true),
            Phase::RebootScheduled => self.wait_for_window_end(journal, cx),
            Phase::RebootRequested => self.reboot(journal, cx),
            // `drive` returns before handling a finished journal.
            Phase::ReportReady | Phase::Acknowledged => Next::Phase(journal.phase),
        }
    }

    // --- before anything changes ------------------------------------------------------------

    /// Pins, window, lock, interrupted dpkg, plan, and the versions before.
    fn prepare(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        if let Err(detail) = packages::validate_pins(cx.ops.manager(), &journal.job.install) {
            self.note(journal, "check pins", false, detail.clone());
            let outcome = JobOutcome::Refused { check: "package pins are valid".into(), detail };
            return self.finish(journal, cx, outcome);
        }
        if let Some(next) = self.check_window(journal, cx) {
            return next;
        }
        let window_end = journal.job.window_end;
        if let Some(next) = self.wait_for_locks(journal, cx, window_end, true) {
            return next;
        }

        // An interrupted dpkg is looked at once its lock is free: a running dpkg looks the same.
        match cx.ops.interrupted() {
            Err(detail) => return self.fail(journal, cx, "check dpkg", detail),
            Ok(Some(problem)) if journal.recovered_interrupted => {
                let detail = format!("still interrupted after dpkg --configure -a: {problem}");
                return self.fail(journal, cx, "recover interrupted dpkg", detail);
            }
            Ok(Some(problem)) if !journal.job.recover_interrupted => {
                self.note(journal, "check dpkg", false, problem.clone());
                let detail = format!("{problem}; the job does not allow recovering it");
                let outcome = JobOutcome::Refused { check: "dpkg not interrupted".into(), detail };
                return self.finish(journal, cx, outcome);
            }
            Ok(Some(problem)) => {
                self.note(journal, "check dpkg", false, format!("{problem}; recovering"));
                return Next::Phase(Phase::Recovering);
            }
            Ok(None) if cx.ops.manager() == crate::inventory::PackageManager::Dpkg => {
                self.note(journal, "check dpkg", true, "dpkg was not interrupted");
            }
            Ok(None) => {}
        }

        // What the transaction would change, and the versions it replaces.
        let installed = match cx.ops.installed() {
            Ok(installed) => installed,
            Err(detail) => return self.fail(journal, cx, "record versions", detail),
        };
        let changes = match cx.ops.plan(&journal.job.install, &installed) {
            Ok(changes) => changes,
            Err(PlanError::Failed(detail)) => return self.fail(journal, cx, "install", detail),
            Err(PlanError::Refused { check, detail }) => {
                self.note(journal, "plan", false, detail.clone());
                return self.finish(journal, cx, JobOutcome::Refused { check, detail });
            }
        };
        journal.changes = changes;
        let names = names_of(journal);
        journal.before = Some(packages::pins_of(cx.ops.manager(), &installed, &names));
        journal.held_before = installed
            .iter()
            .filter(|p| p.held && names.iter().any(|name| name == &p.name))
            .map(|p| p.name.clone())
            .collect();
        let detail = describe_changes(&journal.changes);
        self.note(journal, "record versions", true, detail);
        Next::Phase(Phase::VersionsRecorded)
    }

    /// `dpkg --configure -a`, then the checks before the transaction once more.
    fn recover(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        let command = match cx.ops.recover_command(journal.job.keep_local_config) {
            Ok(Some(command)) => command,
            Ok(None) => {
                let detail = "this package manager has no recovery command".to_owned();
                return self.fail(journal, cx, "recover interrupted dpkg", detail);
            }
            Err(detail) => return self.fail(journal, cx, "recover interrupted dpkg", detail),
        };
        let result = match self.transient(journal, cx, "recover", &command) {
            Ok(result) => result,
            Err(next) => return next,
        };
        journal.recovered_interrupted = true;
        self.note(journal, "recover interrupted dpkg", result.ok, result.detail.clone());
        if !result.ok {
            return self.finish(
                journal,
                cx,
                JobOutcome::Failed {
                    step: "recover interrupted dpkg".into(),
                    detail: result.detail,
                },
            );
        }
        Next::Phase(Phase::Accepted)
    }

    /// Each version replaced has its package file in the keep folder, or the job is refused.
    fn keep_old_files(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        let mut kept = Vec::new();
        let mut problems = Vec::new();
        for change in &journal.changes {
            let Some(before) = &change.before else { continue };
            let earlier = journal
                .kept
                .iter()
                .find(|file| file.name == change.name && &file.version == before)
                .filter(|file| cx.ops.kept_file_matches(file));
            if let Some(earlier) = earlier {
                kept.push(earlier.clone());
                continue;
            }
            let dir = self.keep_folder(journal.job.id, &change.name);
            match cx.ops.keep(&change.name, before, &dir) {
                Ok(file) => kept.push(file),
                Err(error) => problems.push(format!("{} {before}: {error}", change.name)),
            }
        }
        if !problems.is_empty() {
            let detail = problems.join("; ");
            self.note(journal, "keep old package files", false, detail.clone());
            let check = "keep old package files".to_owned();
            return self.finish(journal, cx, JobOutcome::Refused { check, detail });
        }
        let shown: Vec<String> = kept
            .iter()
            .map(|file| {
                format!("{} {} {} ({})", file.name, file.version, file.how, file.path.display())
            })
            .collect();
        journal.kept = kept;
        let detail = if shown.is_empty() {
            "no installed version is replaced".into()
        } else {
            shown.join("; ")
        };
        self.note(journal, "keep old package files", true, detail);
        Next::Phase(Phase::OldPackagesKept)
    }

    /// The window and the lock once more, just before the transaction.
    fn before_transaction(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        if journal.changes.is_empty() {
            self.note(journal, "install", true, "every package is at its pinned version already");
            return Next::Phase(Phase::TransactionFinished);
        }
        if let Some(next) = self.check_window(journal, cx) {
            return next;
        }
        let window_end = journal.job.window_end;
        if let Some(next) = self.wait_for_locks(journal, cx, window_end, true) {
            return next;
        }
        Next::Phase(Phase::TransactionStarted)
    }

    // --- the transaction ----------------------------------------------------------------------

    fn transaction(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        let never_started = !journal.runs.contains_key("install")
            && transient::state(&self.run_folder(journal.job.id, "install"))
                == RunState::NotStarted;
        if never_started && let Some(next) = self.check_window(journal, cx) {
            return next;
        }
        let lock_wait = Duration::try_from(journal.job.window_end.duration_since(self.now()))
            .unwrap_or(Duration::from_secs(1));
        let job = &journal.job;
        let command = match cx.ops.install_command(&job.install, job.keep_local_config, lock_wait) {
            Ok(command) => command,
            Err(detail) => return self.fail(journal, cx, "install", detail),
        };
        let result = match self.transient(journal, cx, "install", &command) {
            Ok(result) => result,
            Err(next) => return next,
        };
        self.note(journal, "install", result.ok, result.detail);
        Next::Phase(Phase::TransactionFinished)
    }

    /// Holds back, versions compared with the pins, configuration files left.
    fn verify_transaction(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        self.restore_holds(journal, cx);
        let installed = match cx.ops.installed() {
            Ok(installed) => installed,
            Err(detail) => return self.fail(journal, cx, "verify versions", detail),
        };
        self.record_config_files(journal, cx);

        let manager = cx.ops.manager();
        let mismatches: Vec<String> = journal
            .job
            .install
            .iter()
            .filter_map(|pin| {
                let now = packages::version_of(manager, &installed, &pin.name);
                let right = now
                    .as_deref()
                    .is_some_and(|v| packages::same_version(manager, v, &pin.version));
                let state_ok = installed
                    .iter()
                    .filter(|p| p.name == pin.name)
                    .all(|p| p.state == crate::inventory::PackageState::Installed);
                (!right || !state_ok).then(|| {
                    format!(
                        "{} is {}, not {}",
                        pin.name,
                        now.as_deref().unwrap_or("not installed"),
                        pin.version
                    )
                })
            })
            .collect();
        let install_failure =
            journal.runs.get("install").filter(|run| !run.ok).map(|run| run.detail.clone());
        if mismatches.is_empty() && install_failure.is_none() {
            let detail = packages::pins_of(manager, &installed, &names_of(journal))
                .iter()
                .map(|pin| format!("{} {}", pin.name, pin.version))
                .collect::<Vec<_>>()
                .join(", ");
            self.note(journal, "verify versions", true, detail);
            return Next::Phase(Phase::CheckingHealth);
        }

        // The install failed, or left other versions than the pinned ones.
        let step = if install_failure.is_some() { "install" } else { "verify versions" };
        let detail = install_failure.into_iter().chain(mismatches).collect::<Vec<_>>().join("; ");
        self.note(journal, "verify versions", false, detail.clone());
        let changed = journal.changes.iter().any(|change| {
            let now = packages::version_of(manager, &installed, &change.name);
            match (&now, &change.before) {
                (Some(now), Some(before)) => !packages::same_version(manager, now, before),
                (None, None) => false,
                _ => true,
            }
        });
        if journal.job.rollback_on_failure && changed {
            journal.failure = Some(Failure::Install { step: step.into(), detail });
            return Next::Phase(Phase::RollingBack);
        }
        let detail = if changed { format!("{detail}; nothing was rolled back") } else { detail };
        self.finish(journal, cx, JobOutcome::Failed { step: step.into(), detail })
    }

    // --- health and rollback -------------------------------------------------------------------

    fn check_health(&self, journal: &mut Journal, cx: &Context<'_>, after_rollback: bool) -> Next {
        journal.health.retain(|result| result.after_rollback != after_rollback);
        let results =
            health::run_checks(&journal.job.health_checks, &*self.settings.systemd, after_rollback);
        let failed: Option<CheckResult> = results.iter().find(|result| !result.passed).cloned();
        let passed = results.iter().filter(|result| result.passed).count();
        let summary = format!("{passed} of {} passed", results.len());
        journal.health.extend(results);
        let step = if after_rollback { "health checks after rollback" } else { "health checks" };
        let detail = match &failed {
            Some(failed) => format!("{summary}; {}: {}", failed.check, failed.detail),
            None => summary,
        };
        self.note(journal, step, failed.is_none(), detail);

        if after_rollback {
            let (check, detail) = match journal.failure.clone() {
                Some(Failure::Check { check, detail }) => (check, detail),
                _ => ("unknown".to_owned(), "the rollback's cause was not recorded".to_owned()),
            };
            let outcome = JobOutcome::RolledBack {
                check,
                detail,
                checks_after_rollback_passed: failed.is_none(),
            };
            return self.finish(journal, cx, outcome);
        }
        match failed {
            None => self.after_success(journal, cx),
            Some(failed) if journal.job.rollback_on_failure => {
                journal.failure =
                    Some(Failure::Check { check: failed.check, detail: failed.detail });
                Next::Phase(Phase::RollingBack)
            }
            Some(failed) => {
                let detail = format!("{}: {}", failed.check, failed.detail);
                self.finish(
                    journal,
                    cx,
                    JobOutcome::Failed { step: "health checks".into(), detail },
                )
            }
        }
    }

    fn roll_back(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        let never_started = !journal.runs.contains_key("rollback")
            && transient::state(&self.run_folder(journal.job.id, "rollback"))
                == RunState::NotStarted;
        if never_started {
            let until = journal.job.window_end.max(self.now() + ROLLBACK_LOCK_WAIT);
            if let Some(next) = self.wait_for_locks(journal, cx, until, false) {
                return next;
            }
        }
        let remove: Vec<String> = journal
            .changes
            .iter()
            .filter(|change| change.before.is_none())
            .map(|change| change.name.clone())
            .collect();
        let command =
            match cx.ops.rollback_command(&journal.kept, &remove, journal.job.keep_local_config) {
                Ok(command) => command,
                Err(detail) => return self.fail(journal, cx, "rollback", detail),
            };
        let result = match self.transient(journal, cx, "rollback", &command) {
            Ok(result) => result,
            Err(next) => return next,
        };
        self.note(journal, "rollback", result.ok, result.detail);
        Next::Phase(Phase::RollbackFinished)
    }

    fn verify_rollback(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        self.restore_holds(journal, cx);
        let installed = match cx.ops.installed() {
            Ok(installed) => installed,
            Err(detail) => return self.fail(journal, cx, "verify rollback", detail),
        };
        self.record_config_files(journal, cx);
        let manager = cx.ops.manager();
        let not_restored: Vec<String> = journal
            .changes
            .iter()
            .filter_map(|change| {
                let now = packages::version_of(manager, &installed, &change.name);
                let restored = match (&now, &change.before) {
                    (Some(now), Some(before)) => packages::same_version(manager, now, before),
                    (None, None) => true,
                    _ => false,
                };
                let shown =
                    |v: &Option<String>| v.clone().unwrap_or_else(|| "not installed".into());
                (!restored).then(|| {
                    format!("{} is {}, not {}", change.name, shown(&now), shown(&change.before))
                })
            })
            .collect();
        let cause = match &journal.failure {
            Some(Failure::Check { check, detail }) => format!("{check}: {detail}"),
            Some(Failure::Install { detail, .. }) => detail.clone(),
            None => "unknown".into(),
        };
        if !not_restored.is_empty() {
            let detail = format!("{}; after {cause}", not_restored.join("; "));
            self.note(journal, "verify rollback", false, detail.clone());
            return self.finish(
                journal,
                cx,
                JobOutcome::Failed { step: "rollback".into(), detail },
            );
        }
        self.note(journal, "verify rollback", true, "the recorded versions are installed again");
        match journal.failure.clone() {
            Some(Failure::Check { .. }) => Next::Phase(Phase::CheckingHealthAfterRollback),
            Some(Failure::Install { step, detail }) => {
                let detail = format!("{detail}; the recorded versions were put back");
                self.finish(journal, cx, JobOutcome::Failed { step, detail })
            }
            None => {
                self.fail(journal, cx, "rollback", "a rollback without a recorded cause".into())
            }
        }
    }

    // --- reboot ----------------------------------------------------------------------------------

    fn after_success(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        match journal.job.reboot {
            RebootPolicy::Never => self.finish(journal, cx, JobOutcome::Succeeded),
            RebootPolicy::IfRequired => match self.reboot_reasons(cx) {
                Ok(None) => {
                    self.note(journal, "reboot", true, "not required");
                    self.finish(journal, cx, JobOutcome::Succeeded)
                }
                Ok(Some(reasons)) => {
                    self.prepare_reboot(journal, cx, &format!("required: {reasons}"))
                }
                Err(detail) => self.fail(journal, cx, "reboot", detail),
            },
            RebootPolicy::EndOfWindow => {
                let detail =
                    format!("scheduled for the window's end at {}", journal.job.window_end);
                self.note(journal, "reboot", true, detail);
                Next::Phase(Phase::RebootScheduled)
            }
        }
    }

    /// Why the machine needs a reboot, as the inventory's facts say; `None` when it does not.
    fn reboot_reasons(&self, cx: &Context<'_>) -> Result<Option<String>, String> {
        let installed = cx.ops.installed()?;
        let extra = cx.ops.reboot_reasons()?;
        let facts = facts::gather(&self.settings.facts, cx.ops.manager(), &installed, extra)
            .map_err(|error| error.to_string())?;
        if !facts.reboot.required {
            return Ok(None);
        }
        let reasons: Vec<String> = facts.reboot.reasons.iter().map(|r| format!("{r:?}")).collect();
        Ok(Some(reasons.join(", ")))
    }

    fn wait_for_window_end(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        loop {
            let remaining = journal.job.window_end.duration_since(self.now());
            let Ok(remaining) = Duration::try_from(remaining) else { break };
            if remaining.is_zero() {
                break;
            }
            pause(remaining.min(Duration::from_secs(1)));
        }
        self.prepare_reboot(journal, cx, "the window ended")
    }

    /// Records the boot id and the kernel expected after the boot, before asking for it.
    fn prepare_reboot(&self, journal: &mut Journal, cx: &Context<'_>, why: &str) -> Next {
        let boot_id_before = match facts::boot_id(&self.settings.facts.boot_id) {
            Ok(id) => id,
            Err(error) => return self.fail(journal, cx, "reboot", error.to_string()),
        };
        let installed = cx.ops.installed().unwrap_or_default();
        let expected_kernel = facts::newest_installed_kernel(cx.ops.manager(), &installed)
            .map(|kernel| kernel.release);
        journal.reboot = Some(PendingReboot { boot_id_before, expected_kernel, requests: 0 });
        self.note(journal, "reboot", true, format!("rebooting: {why}"));
        Next::Phase(Phase::RebootRequested)
    }

    /// Asks for the reboot, or, after a boot, confirms it.
    fn reboot(&self, journal: &mut Journal, cx: &Context<'_>) -> Next {
        let Some(mut pending) = journal.reboot.clone() else {
            return self.fail(
                journal,
                cx,
                "reboot",
                "no boot id was recorded before the reboot".into(),
            );
        };
        let asked_before = pending.requests > 0 || cx.resumed;
        if asked_before {
            let boot_id = match facts::boot_id(&self.settings.facts.boot_id) {
                Ok(id) => id,
                Err(error) => return self.fail(journal, cx, "confirm reboot", error.to_string()),
            };
            if boot_id != pending.boot_id_before {
                return self.confirm_reboot(journal, cx, pending, boot_id);
            }
            if pending.requests >= REBOOT_REQUESTS {
                let detail = format!(
                    "the machine did not reboot: boot id still {} after {} requests",
                    boot_id, pending.requests
                );
                return self.fail(journal, cx, "reboot", detail);
            }
        }

        // Ask; the count is on disk before the request.
        pending.requests += 1;
        let detail = format!("requested (boot id before: {})", pending.boot_id_before);
        journal.reboot = Some(pending);
        self.note(journal, "reboot", true, detail);
        if let Err(error) = journal.save(&self.settings.journal_dir) {
            return Next::Broken(error);
        }
        match self.settings.systemd.reboot() {
            Ok(()) => Next::Rebooting,
            Err(error) => self.fail(journal, cx, "reboot", error.to_string()),
        }
    }

    fn confirm_reboot(
        &self,
        journal: &mut Journal,
        cx: &Context<'_>,
        pending: PendingReboot,
        boot_id_after: String,
    ) -> Next {
        let running_kernel = facts::running_kernel(&self.settings.facts)
            .unwrap_or_else(|error| format!("unknown ({error})"));
        let record = RebootRecord {
            boot_id_before: pending.boot_id_before,
            boot_id_after,
            running_kernel: running_kernel.clone(),
            expected_kernel: pending.expected_kernel.clone(),
        };
        journal.confirmed_reboot = Some(record.clone());
        match pending.expected_kernel {
            Some(expected) if expected != running_kernel => {
                let detail = format!("running kernel {running_kernel}, expected {expected}");
                self.fail(journal, cx, "confirm reboot", detail)
            }
            _ => {
                let detail = format!("boot id {}, kernel {running_kernel}", record.boot_id_after);
                self.note(journal, "confirm reboot", true, detail);
                self.finish(journal, cx, JobOutcome::Succeeded)
            }
        }
    }

    // --- helpers ---------------------------------------------------------------------------------

    /// Missed (too late) when the window has ended.
    fn check_window(&self, journal: &mut Journal, cx: &Context<'_>) -> Option<Next> {
        let now = self.now();
        let end = journal.job.window_end;
        if now < end {
            let left = end.duration_since(now).as_secs();
            self.note(journal, "check window", true, format!("{left} s left until {end}"));
            return None;
        }
        let detail = format!("the window ended at {end}; it is {now}");
        self.note(journal, "check window", false, detail.clone());
        Some(self.finish(journal, cx, JobOutcome::Missed { reason: MissedReason::TooLate, detail }))
    }

    /// Waits until every lock is free or `until` passes. Before the window's end a busy lock
    /// is a missed window (`missed`); for a rollback it is a failed rollback.
    fn wait_for_locks(
        &self,
        journal: &mut Journal,
        cx: &Context<'_>,
        until: Timestamp,
        missed: bool,
    ) -> Option<Next> {
        let step = if missed { "wait for lock" } else { "rollback" };
        let files = match cx.ops.lock_files() {
            Ok(files) => files,
            Err(detail) => return Some(self.fail(journal, cx, step, detail)),
        };
        let started = Instant::now();
        let mut first_seen: Option<BusyLock> = None;
        loop {
            let busy = match lock::first_busy(&files) {
                Ok(busy) => busy,
                Err(error) => {
                    return Some(self.fail(
                        journal,
                        cx,
                        step,
                        format!("probing the lock: {error}"),
                    ));
                }
            };
            let Some(busy) = busy else {
                if let Some(seen) = first_seen {
                    let waited = started.elapsed().as_secs();
                    self.note(journal, "wait for lock", true, format!("waited {waited} s: {seen}"));
                }
                return None;
            };
            let now = self.now();
            if now >= until {
                let detail = format!("lock busy: {busy} until {until}");
                self.note(journal, "wait for lock", false, detail.clone());
                let outcome = if missed {
                    JobOutcome::Missed { reason: MissedReason::LockBusy, detail }
                } else {
                    JobOutcome::Failed { step: step.into(), detail }
                };
                return Some(self.finish(journal, cx, outcome));
            }
            first_seen.get_or_insert(busy);
            let remaining = Duration::try_from(until.duration_since(now)).unwrap_or(LOCK_POLL);
            pause(remaining.min(LOCK_POLL));
        }
    }

    /// Runs `command` as the job's transient run `purpose`, once: a run started by an earlier
    /// agent is waited for, not started again.
    fn transient(
        &self,
        journal: &mut Journal,
        cx: &Context<'_>,
        purpose: &str,
        command: &TransientCommand,
    ) -> Result<RunResult, Next> {
        if let Some(result) = journal.runs.get(purpose) {
            return Ok(result.clone());
        }
        let dir = self.run_folder(journal.job.id, purpose);
        let mut state = transient::state(&dir);
        if state == RunState::Starting {
            state = transient::wait(&dir, Instant::now() + transient::START_GRACE);
        }
        if matches!(state, RunState::NotStarted | RunState::Starting) {
            let started = packages::fresh_dir(&dir)
                .map_err(|e| format!("the run folder: {e}"))
                .and_then(|()| {
                    let unit = format!("patchwarden-job-{}-{purpose}", journal.job.id);
                    self.settings
                        .systemd
                        .run_transient(&unit, &command.wrapped(&dir))
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = started {
                let result = RunResult {
                    ok: false,
                    detail: format!("cannot start `{}`: {error}", command.display()),
                };
                journal.runs.insert(purpose.to_owned(), result.clone());
                return Ok(result);
            }
        }
        if cx.stop_here {
            return Err(Next::Stopped);
        }
        self.halt_point(&format!("{purpose}-run-started"), journal.job.id);

        let limit = command.timeout().saturating_mul(command.len().max(1) as u32) + RUN_GRACE;
        let result = match transient::wait(&dir, Instant::now() + limit) {
            RunState::Exited { code: 0, output } => {
                RunResult { ok: true, detail: last_words(&output) }
            }
            RunState::Exited { code, output } => RunResult {
                ok: false,
                detail: format!(
                    "`{}` exited with code {code}: {}",
                    command.display(),
                    last_words(&output)
                ),
            },
            RunState::Vanished { output } => RunResult {
                ok: false,
                detail: format!(
                    "`{}` was killed before it ended: {}",
                    command.display(),
                    last_words(&output)
                ),
            },
            RunState::Running { pid } => RunResult {
                ok: false,
                detail: format!(
                    "`{}` still runs as process {pid} past its limit",
                    command.display()
                ),
            },
            RunState::NotStarted | RunState::Starting => {
                RunResult { ok: false, detail: format!("`{}` never started", command.display()) }
            }
        };
        journal.runs.insert(purpose.to_owned(), result.clone());
        Ok(result)
    }

    fn restore_holds(&self, journal: &mut Journal, cx: &Context<'_>) {
        if journal.held_before.is_empty() {
            return;
        }
        match cx.ops.restore_holds(&journal.held_before) {
            Ok(restored) if restored.is_empty() => {}
            Ok(restored) => self.note(
                journal,
                "restore holds",
                true,
                format!("held again: {}", restored.join(", ")),
            ),
            Err(detail) => self.note(journal, "restore holds", false, detail),
        }
    }

    fn record_config_files(&self, journal: &mut Journal, cx: &Context<'_>) {
        match cx.ops.config_files_left(&names_of(journal)) {
            Ok(files) => journal.config_files_left = files,
            Err(detail) => self.note(journal, "configuration files", false, detail),
        }
    }

    fn note(&self, journal: &mut Journal, step: &str, ok: bool, detail: impl Into<String>) {
        journal.steps.push(StepRecord {
            step: step.into(),
            at: self.now(),
            ok,
            detail: detail.into(),
        });
    }

    /// Records a failed step and ends the job with it.
    fn fail(&self, journal: &mut Journal, cx: &Context<'_>, step: &str, detail: String) -> Next {
        self.note(journal, step, false, detail.clone());
        self.finish(journal, cx, JobOutcome::Failed { step: step.into(), detail })
    }

    /// Builds the report into the journal; it is saved with the phase `report-ready`.
    fn finish(&self, journal: &mut Journal, cx: &Context<'_>, outcome: JobOutcome) -> Next {
        let names = names_of(journal);
        let after = match cx.ops.installed() {
            Ok(installed) => packages::pins_of(cx.ops.manager(), &installed, &names),
            Err(detail) => {
                self.note(journal, "read versions", false, detail);
                Vec::new()
            }
        };
        let report = JobReport {
            protocol: PROTOCOL_VERSION,
            job_id: journal.job.id,
            sequence: journal.job.sequence,
            outcome,
            steps: journal.steps.clone(),
            versions_before: journal.before.clone().unwrap_or_else(|| after.clone()),
            versions_after: after,
            health: journal.health.clone(),
            config_files_left: journal.config_files_left.clone(),
            recovered_interrupted: journal.recovered_interrupted,
            reboot: journal.confirmed_reboot.clone(),
            finished_at: self.now(),
        };
        journal.report = Some(report);
        Next::Phase(Phase::ReportReady)
    }

    /// The report when the journal cannot be written: the job stops where it is.
    fn broken_report(&self, journal: &Journal, error: &io::Error) -> JobReport {
        let path = Journal::path(&self.settings.journal_dir, journal.job.id);
        let detail = format!("cannot keep the job journal {}: {error}", path.display());
        let mut steps = journal.steps.clone();
        steps.push(StepRecord {
            step: "journal".into(),
            at: self.now(),
            ok: false,
            detail: detail.clone(),
        });
        let ops = self.ops();
        let after = ops
            .installed()
            .map(|installed| packages::pins_of(ops.manager(), &installed, &names_of(journal)))
            .unwrap_or_default();
        JobReport {
            protocol: PROTOCOL_VERSION,
            job_id: journal.job.id,
            sequence: journal.job.sequence,
            outcome: JobOutcome::Failed { step: "journal".into(), detail },
            steps,
            versions_before: journal.before.clone().unwrap_or_else(|| after.clone()),
            versions_after: after,
            health: journal.health.clone(),
            config_files_left: journal.config_files_left.clone(),
            recovered_interrupted: journal.recovered_interrupted,
            reboot: journal.confirmed_reboot.clone(),
            finished_at: self.now(),
        }
    }

    fn run_folder(&self, job_id: i64, purpose: &str) -> PathBuf {
        self.settings.journal_dir.join(format!("{job_id}.runs")).join(purpose)
    }

    fn keep_folder(&self, job_id: i64, package: &str) -> PathBuf {
        let safe: String = package
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "+-.".contains(c) { c } else { '_' })
            .collect();
        self.settings.keep_dir.join(job_id.to_string()).join(safe)
    }
}

/// The job's packages and everything the transaction changes, each once, in that order.
fn names_of(journal: &Journal) -> Vec<String> {
    let mut names: Vec<String> = journal.job.install.iter().map(|pin| pin.name.clone()).collect();
    for change in &journal.changes {
        if !names.contains(&change.name) {
            names.push(change.name.clone());
        }
    }
    names
}

fn describe_changes(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "nothing to change".into();
    }
    let shown: Vec<String> = changes
        .iter()
        .map(|change| {
            format!(
                "{} {} -> {}",
                change.name,
                change.before.as_deref().unwrap_or("(not installed)"),
                change.after
            )
        })
        .collect();
    shown.join(", ")
}

/// The last few hundred bytes of a run's output tail, for a step's detail.
fn last_words(output: &str) -> String {
    const KEEP: usize = 600;
    if output.len() <= KEEP {
        return output.to_owned();
    }
    let mut cut = output.len() - KEEP;
    while !output.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...{}", &output[cut..])
}

/// The report of a journal that cannot be read, stable across calls (its time is the file's).
fn unreadable_report(job_id: i64, unreadable: &journal::Unreadable) -> JobReport {
    let detail = format!("cannot read the job journal: {}", unreadable.error);
    let modified = unreadable.modified;
    JobReport {
        protocol: PROTOCOL_VERSION,
        job_id,
        sequence: 0,
        outcome: JobOutcome::Failed { step: "journal".into(), detail: detail.clone() },
        steps: vec![StepRecord { step: "journal".into(), at: modified, ok: false, detail }],
        versions_before: Vec::new(),
        versions_after: Vec::new(),
        health: Vec::new(),
        config_files_left: Vec::new(),
        recovered_interrupted: false,
        reboot: None,
        finished_at: modified,
    }
}
