//! Enrolment and the agent's loop: check in, send the inventory when asked, take jobs, report.
//!
//! One cycle: send reports the server has not confirmed yet; collect the inventory and hash
//! it; check in with the hash, the agent's clock and the last job sequence; upload the
//! inventory when the server does not hold that hash; open each signed job with the server's
//! key and refuse a bad one with a `Refused` report; for a good one, let the [`JobRunner`] keep
//! it (so that a crash from then on leaves it to be finished at the next start), persist its
//! sequence *before* it runs (so that a replay after a crash is refused), then hand it to the
//! runner; send each report until the server answers, then let the runner forget it.
//!
//! Between cycles the loop waits the interval with ±20% jitter, or backs off after a failure,
//! on a channel that a signal handler also uses, so SIGTERM ends the wait at once and never
//! interrupts a job. The clock is read in one place ([`system_clock`]) and passed in.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchwarden_protocol::{
    CheckIn, EnrolRequest, EnrolmentToken, Inventory, Job, JobError, JobOutcome, JobReport,
    PROTOCOL_VERSION, SignedJob, VerifyingKey,
};

use crate::client::{ApiClient, ClientError, ServerUrl, enrol_transport};
use crate::collect::{CollectError, PackageSystem, collect_inventory};
use crate::facts::{self, FactSources};
use crate::state::{AgentState, Credential, ENROLMENT_FORMAT, Enrolment, StateDir, StateError};

/// The interval before the server has named one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// The first wait after a failed cycle; it doubles with each failure after it.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait after failures, unless the interval is shorter.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A clock this far off the server's is worth a warning: job expiry is judged by the agent.
const CLOCK_WARNING: SignedDuration = SignedDuration::from_secs(60);

/// Reads the clock. The one place in the agent that does.
#[allow(clippy::disallowed_methods)]
pub fn system_clock() -> Timestamp {
    Timestamp::now()
}

/// Runs the jobs the agent accepted.
///
/// The job executor (`crate::job::Executor`) implements this through a thin adapter:
/// `execute` maps its `Execution` to [`Executed`], `resume` returns the reports of jobs an
/// earlier run finished or undid, `acknowledge` lets it drop a report the server has.
pub trait JobRunner {
    /// Reports of jobs an earlier run of the agent finished or undid, not yet acknowledged.
    fn resume(&mut self) -> Vec<JobReport>;
    /// Keeps a checked job before its sequence is recorded, so that an agent killed after this
    /// finds it in [`Self::resume`] at its next start: once the sequence is on disk the server
    /// does not send the job again. By default nothing is kept.
    fn accept(&mut self, job: &Job) -> Result<(), String> {
        let _ = job;
        Ok(())
    }
    /// Runs a job whose signature, endpoint, expiry and sequence were checked.
    fn execute(&mut self, job: &Job) -> Executed;
    /// The server has the report of `job_id`: the runner may forget it.
    fn acknowledge(&mut self, job_id: i64);
}

/// What running a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    Finished(Box<JobReport>),
    /// The machine is going down; the report comes from [`JobRunner::resume`] after the boot.
    Rebooting,
}

/// The stand-in runner until the job executor is wired in: it refuses every job with a
/// report that says so (check `no-executor`), after the agent has recorded the sequence.
#[derive(Debug, Clone, Copy)]
pub struct NoExecutor {
    pub clock: fn() -> Timestamp,
}

impl JobRunner for NoExecutor {
    fn resume(&mut self) -> Vec<JobReport> {
        Vec::new()
    }

    fn execute(&mut self, job: &Job) -> Executed {
        let detail = "this build of the agent has no job executor".to_owned();
        Executed::Finished(Box::new(refusal(
            job.id,
            job.sequence,
            "no-executor",
            detail,
            (self.clock)(),
        )))
    }

    fn acknowledge(&mut self, _job_id: i64) {}
}

/// Where the inventory comes from: the machine's package system, or a stand-in in tests.
pub trait InventorySource {
    fn collect(&mut self) -> Result<Inventory, CollectError>;
}

/// The machine's own package system and facts.
#[derive(Debug, Clone)]
pub struct MachineInventory {
    pub system: PackageSystem,
    pub facts: FactSources,
    /// How often apt's package lists are fetched again before a collection
    /// (`apt-get update`); `None` never. dnf's `check-update` refreshes
    /// metadata that has expired by itself.
    pub refresh_every: Option<Duration>,
    /// When the lists were last fetched by this process.
    pub refreshed_at: Option<std::time::Instant>,
}

impl MachineInventory {
    /// Fetches apt's lists when they are due; a failure is logged and the
    /// lists already on the machine are used.
    fn refresh_lists(&mut self) {
        let (Some(every), PackageSystem::Apt(apt)) = (self.refresh_every, &self.system) else {
            return;
        };
        if self.refreshed_at.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.refreshed_at = Some(std::time::Instant::now());
        if let Err(err) = apt.update_lists() {
            tracing::warn!(error = %err, "cannot fetch the package lists; pending updates are computed from the lists on the machine");
        }
    }
}

impl InventorySource for MachineInventory {
    fn collect(&mut self) -> Result<Inventory, CollectError> {
        self.refresh_lists();
        collect_inventory(&self.system, &self.facts)
    }
}

/// Enrolment or a cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the enrolment token is not usable: {0}")]
    Token(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{url}: the enrolment answer is not usable: {problem}")]
    BadEnrolment { url: String, problem: String },
    #[error("cannot collect the inventory: {0}")]
    Inventory(#[from] CollectError),
    #[error("{0}")]
    Problems(String),
}

impl AgentError {
    /// The loop stops on these instead of trying again: the state is unusable, or the server
    /// no longer knows this endpoint.
    pub fn is_fatal(&self) -> bool {
        match self {
            AgentError::Token(_) | AgentError::State(_) | AgentError::BadEnrolment { .. } => true,
            AgentError::Client(err) => err.status() == Some(401) || !answered_or_network(err),
            AgentError::Inventory(_) | AgentError::Problems(_) => false,
        }
    }

    /// 2: could not run (state, token, trust); 3: the server refused; 4: the server failed
    /// or could not be reached.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Client(err) if err.is_transient() => 4,
            AgentError::Client(err) if err.status().is_some() => 3,
            AgentError::Client(ClientError::BadAnswer { .. }) => 4,
            AgentError::Problems(_) => 3,
            _ => 2,
        }
    }
}

/// The server answered, or the network failed: as opposed to a call the agent would not make.
fn answered_or_network(err: &ClientError) -> bool {
    err.status().is_some()
        || matches!(err, ClientError::Unreachable { .. } | ClientError::BadAnswer { .. })
}

/// What `enroll` is given.
#[derive(Debug, Clone)]
pub struct EnrolOptions {
    pub server: String,
    pub token: String,
    pub state_dir: StateDir,
    /// Replace an existing enrolment.
    pub force: bool,
    pub hostname: String,
    pub machine_id: Option<String>,
}

/// Exchanges a single-use token for the endpoint's credential and the server's signing key,
/// and keeps them in the state directory. Everything that can be checked without the server
/// (the token, the URL and its transport, the directory) is checked before the token is spent.
pub fn enrol(options: &EnrolOptions, now: Timestamp) -> Result<Enrolment, AgentError> {
    let token = EnrolmentToken::parse(&options.token).map_err(AgentError::Token)?;
    let server = ServerUrl::parse(&options.server)?;
    let transport = enrol_transport(&server, token.ca_fingerprint.as_deref())?;
    options.state_dir.prepare(options.force)?;

    // Over HTTPS this fetches and checks the CA; every call after it trusts that CA alone.
    let (client, ca_pem) = ApiClient::for_enrolment(&server, &transport)?;
    let answer = client.enrol(&EnrolRequest {
        protocol: PROTOCOL_VERSION,
        token: token.secret.clone(),
        hostname: options.hostname.clone(),
        machine_id: options.machine_id.clone(),
    })?;

    // The answer must be usable before anything is written.
    let bad =
        |problem: String| AgentError::BadEnrolment { url: server.as_str().to_owned(), problem };
    VerifyingKey::from_hex(&answer.signing_key).map_err(bad)?;
    let credential = answer.credential.trim();
    if credential.is_empty() || credential.contains(char::is_whitespace) {
        return Err(bad("the credential is empty or has white space in it".to_owned()));
    }

    let enrolment = Enrolment {
        format: ENROLMENT_FORMAT,
        server: server.as_str().to_owned(),
        endpoint_id: answer.endpoint_id,
        system: answer.system,
        environment: answer.environment,
        signing_key: answer.signing_key.to_ascii_lowercase(),
        ca_fingerprint: token.ca_fingerprint,
        enrolled_at: now,
    };
    options.state_dir.save_enrolment(
        &enrolment,
        &Credential::new(credential),
        ca_pem.as_deref(),
    )?;
    Ok(enrolment)
}

/// How `run` behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Report the inventory; refuse every job.
    pub scan_only: bool,
    /// Overrides the server's interval.
    pub interval: Option<Duration>,
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleSummary {
    pub inventory_hash: String,
    pub inventory_sent: bool,
    /// Jobs handed to the runner, by id.
    pub executed: Vec<i64>,
    /// Jobs refused, by id, with the check that refused them.
    pub refused: Vec<(i64, String)>,
    /// Reports the server confirmed.
    pub reports_confirmed: usize,
    /// A job is rebooting the machine; the loop ends.
    pub rebooting: bool,
    /// What went wrong without stopping the cycle (a refused upload, a report the server
    /// will not take).
    pub problems: Vec<String>,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A stop was asked for (SIGTERM, SIGINT).
    Stopped,
    /// A job is rebooting the machine.
    Rebooting,
}

/// A report waiting for the server's confirmation.
#[derive(Debug, Clone)]
struct Unconfirmed {
    report: JobReport,
    /// From the runner, which is told when the server has it.
    from_runner: bool,
}

/// An enrolled agent, ready to run cycles.
pub struct Agent<'a> {
    state_dir: StateDir,
    state: AgentState,
    client: ApiClient,
    inventory: &'a mut dyn InventorySource,
    runner: &'a mut dyn JobRunner,
    clock: fn() -> Timestamp,
    options: RunOptions,
    unconfirmed: Vec<Unconfirmed>,
    /// The last inventory collected, used when collecting fails later.
    last_inventory: Option<(Inventory, String)>,
    server_interval: Option<Duration>,
}

impl std::fmt::Debug for Agent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state_dir", &self.state_dir)
            .field("endpoint_id", &self.state.enrolment.endpoint_id)
            .field("client", &self.client)
            .field("unconfirmed", &self.unconfirmed.len())
            .finish()
    }
}

impl<'a> Agent<'a> {
    /// Loads the state (refusing an exposed or incomplete one), builds the client, and takes
    /// the runner's reports from an earlier run.
    pub fn new(
        state_dir: StateDir,
        inventory: &'a mut dyn InventorySource,
        runner: &'a mut dyn JobRunner,
        clock: fn() -> Timestamp,
        options: RunOptions,
    ) -> Result<Self, AgentError> {
        let state = state_dir.load()?;
        let client = ApiClient::for_state(&state)?;
        let unconfirmed = runner
            .resume()
            .into_iter()
            .map(|report| Unconfirmed { report, from_runner: true })
            .collect();
        Ok(Agent {
            state_dir,
            state,
            client,
            inventory,
            runner,
            clock,
            options,
            unconfirmed,
            last_inventory: None,
            server_interval: None,
        })
    }

    /// The interval before jitter: `--interval`, else the server's, else the default.
    pub fn interval(&self) -> Duration {
        let interval = self.options.interval.or(self.server_interval).unwrap_or(DEFAULT_INTERVAL);
        interval.max(Duration::from_secs(1))
    }

    /// Cycles until a stop arrives on `stop` (or its senders are gone) or a job reboots the
    /// machine; returns early only on a fatal error.
    pub fn run(&mut self, stop: &Receiver<()>) -> Result<Ended, AgentError> {
        let mut failures = 0u32;
        loop {
            let wait = match self.cycle() {
                Ok(summary) if summary.rebooting => return Ok(Ended::Rebooting),
                Ok(_) => {
                    failures = 0;
                    jitter(self.interval())
                }
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let wait = jitter(backoff(failures, self.interval()));
                    tracing::warn!(error = %err, failures, retry_in_seconds = wait.as_secs(), "cycle failed");
                    wait
                }
            };
            tracing::debug!(next_in_seconds = wait.as_secs(), "waiting");
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(Ended::Stopped),
            }
        }
    }

    /// One cycle: unconfirmed reports, inventory, check-in, upload, jobs, reports.
    pub fn cycle(&mut self) -> Result<CycleSummary, AgentError> {
        let mut summary = CycleSummary::default();

        // Reports from an earlier cycle or run go first, so a job's report is never
        // mistaken for a replay of it.
        self.send_unconfirmed(&mut summary)?;

        // The inventory and its hash; the last one stands in when collecting fails.
        let (inventory, hash) = self.collect()?;
        summary.inventory_hash = hash.clone();

        // The check-in.
        let sent = (self.clock)();
        let answer = self.client.check_in(&CheckIn {
            protocol: PROTOCOL_VERSION,
            inventory_hash: hash.clone(),
            agent_time: sent,
            // Reports went out first, so every accepted job up to here is reported.
            last_job_sequence: self.state.last_sequence,
        })?;
        self.note_clock_offset(sent, answer.server_time);
        self.server_interval = Some(Duration::from_secs(u64::from(answer.interval_seconds)));
        tracing::info!(
            jobs = answer.jobs.len(),
            send_inventory = answer.send_inventory,
            "checked in"
        );

        // The inventory, only when the server does not hold this hash.
        if answer.send_inventory {
            match self.client.put_inventory(&hash, &inventory) {
                Ok(()) => {
                    summary.inventory_sent = true;
                    tracing::info!(inventory.hash = %hash, packages = inventory.packages.len(), "inventory sent");
                }
                Err(err) if err.is_transient() || err.status() == Some(401) => {
                    return Err(err.into());
                }
                Err(err) => {
                    tracing::error!(error = %err, "the server refused the inventory");
                    summary.problems.push(err.to_string());
                }
            }
        }

        // The jobs, oldest first; each report goes out as soon as it exists.
        for signed in &answer.jobs {
            if self.handle_job(signed, &mut summary)? == Handled::Rebooting {
                summary.rebooting = true;
                break;
            }
            self.send_unconfirmed(&mut summary)?;
        }
        Ok(summary)
    }

    fn collect(&mut self) -> Result<(Inventory, String), AgentError> {
        match self.inventory.collect() {
            Ok(inventory) => {
                let hash = inventory.hash();
                self.last_inventory = Some((inventory.clone(), hash.clone()));
                Ok((inventory, hash))
            }
            Err(err) => match &self.last_inventory {
                Some(last) => {
                    tracing::error!(error = %err, "cannot collect the inventory; checking in with the last one");
                    Ok(last.clone())
                }
                None => Err(err.into()),
            },
        }
    }

    /// Opens one job and refuses it, runs it or skips it.
    fn handle_job(
        &mut self,
        signed: &SignedJob,
        summary: &mut CycleSummary,
    ) -> Result<Handled, AgentError> {
        let ids = signed.peek();
        let now = (self.clock)();
        let endpoint_id = self.state.enrolment.endpoint_id;
        let job = match signed.open(
            &self.state.signing_key,
            endpoint_id,
            now,
            self.state.last_sequence,
        ) {
            Ok(job) => job,
            Err(err) => {
                self.refuse(ids, refusal_check(&err), err.to_string(), summary);
                return Ok(Handled::Refused);
            }
        };

        // The runner keeps the job before its sequence is on disk: the server does not send
        // a job again once the agent says it saw its sequence, so a job known only by its
        // sequence would be lost to a crash. Should keeping it fail, running it reports that.
        if !self.options.scan_only
            && let Err(problem) = self.runner.accept(&job)
        {
            tracing::warn!(job.id = job.id, problem, "cannot keep the job before running it");
        }

        // The sequence is on disk before anything runs: after a crash this job is a replay.
        self.state_dir.record_sequence(job.sequence)?;
        self.state.last_sequence = job.sequence;

        if self.options.scan_only {
            let detail =
                "the agent runs with --scan-only: it reports its inventory and runs no jobs";
            self.refuse(Some((job.id, job.sequence)), "scan-only", detail.to_owned(), summary);
            return Ok(Handled::Refused);
        }

        tracing::info!(job.id = job.id, job.sequence = job.sequence, "running job");
        summary.executed.push(job.id);
        match self.runner.execute(&job) {
            Executed::Finished(report) => {
                tracing::info!(job.id = job.id, outcome = report.outcome.as_str(), "job finished");
                self.unconfirmed.push(Unconfirmed { report: *report, from_runner: true });
                Ok(Handled::Ran)
            }
            Executed::Rebooting => {
                tracing::info!(job.id = job.id, "the job is rebooting the machine");
                Ok(Handled::Rebooting)
            }
        }
    }

    fn refuse(
        &mut self,
        ids: Option<(i64, u64)>,
        check: &str,
        detail: String,
        summary: &mut CycleSummary,
    ) {
        let Some((job_id, sequence)) = ids else {
            tracing::error!(
                check,
                detail,
                "refused a job whose id cannot be read; nothing to report it to"
            );
            summary.problems.push(format!("refused a job without a readable id: {detail}"));
            return;
        };
        tracing::warn!(job.id = job_id, job.sequence = sequence, check, detail, "job refused");
        summary.refused.push((job_id, check.to_owned()));
        let report = refusal(job_id, sequence, check, detail, (self.clock)());
        self.unconfirmed.push(Unconfirmed { report, from_runner: false });
    }

    /// Sends every unconfirmed report. A report the server will never take is logged and
    /// dropped (a runner's report comes back from `resume` at the next start); the network or
    /// the server failing keeps the rest for the next cycle.
    fn send_unconfirmed(&mut self, summary: &mut CycleSummary) -> Result<(), AgentError> {
        let waiting = std::mem::take(&mut self.unconfirmed);
        let mut rest = waiting.into_iter();
        while let Some(item) = rest.next() {
            match self.client.send_report(&item.report) {
                Ok(recorded) => {
                    tracing::info!(job.id = item.report.job_id, ?recorded, "report confirmed");
                    summary.reports_confirmed += 1;
                    if item.from_runner {
                        self.runner.acknowledge(item.report.job_id);
                    }
                }
                Err(err) if err.is_transient() || err.status() == Some(401) => {
                    self.unconfirmed.push(item);
                    self.unconfirmed.extend(rest);
                    return Err(err.into());
                }
                Err(err) => {
                    tracing::error!(job.id = item.report.job_id, error = %err, "the server will not take the report");
                    summary.problems.push(err.to_string());
                }
            }
        }
        Ok(())
    }

    fn note_clock_offset(&self, sent: Timestamp, server_time: Timestamp) {
        let offset = facts::clock_offset(sent, server_time, (self.clock)());
        if offset.abs() > CLOCK_WARNING {
            tracing::warn!(
                offset_seconds = offset.as_secs(),
                "the server's clock differs from the agent's; job expiry is judged by the agent's"
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Refused,
    Ran,
    Rebooting,
}

/// The check named in a refusal report: the `JobError`'s kind.
pub fn refusal_check(err: &JobError) -> &'static str {
    match err {
        JobError::BadSignature => "bad-signature",
        JobError::Malformed { .. } => "malformed",
        JobError::WrongEndpoint { .. } => "wrong-endpoint",
        JobError::Expired { .. } => "expired",
        JobError::ExpiresAfterWindow { .. } => "expires-after-window",
        JobError::Replayed { .. } => "replayed",
        JobError::UnknownFormat { .. } => "unknown-format",
    }
}

/// A report that the agent would not run a job.
pub fn refusal(
    job_id: i64,
    sequence: u64,
    check: &str,
    detail: String,
    now: Timestamp,
) -> JobReport {
    JobReport {
        protocol: PROTOCOL_VERSION,
        job_id,
        sequence,
        outcome: JobOutcome::Refused { check: check.to_owned(), detail },
        steps: Vec::new(),
        versions_before: Vec::new(),
        versions_after: Vec::new(),
        health: Vec::new(),
        config_files_left: Vec::new(),
        recovered_interrupted: false,
        reboot: None,
        finished_at: now,
    }
}

/// `interval` scaled by a random factor in [0.8, 1.2].
pub fn jitter(interval: Duration) -> Duration {
    // Without randomness the middle is as good as any point: jitter only spreads the load.
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    let factor = 0.8 + 0.4 * f64::from(random) / f64::from(u32::MAX);
    interval.mul_f64(factor)
}

/// The wait after `failures` failed cycles in a row: doubling from 5 s, at most 5 minutes or
/// the interval, whichever is shorter.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF).min(interval)
}

/// The machine's host name, for people reading the endpoint list.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `/etc/machine-id`, when the machine has one.
pub fn machine_id() -> Option<String> {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_check_is_the_errors_own_name() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let errors = [
            JobError::BadSignature,
            JobError::Malformed { detail: "x".into() },
            JobError::WrongEndpoint { job: 1, ours: 2 },
            JobError::Expired { expires_at: now },
            JobError::ExpiresAfterWindow { expires_at: now, window_end: now },
            JobError::Replayed { sequence: 1, last_seen: 1 },
            JobError::UnknownFormat { format: 9 },
        ];
        for err in errors {
            let value = serde_json::to_value(&err).unwrap();
            assert_eq!(value["reason"], refusal_check(&err), "{err:?}");
        }
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_backoff_doubles_to_its_cap() {
        let interval = Duration::from_secs(100);
        for _ in 0..200 {
            let wait = jitter(interval);
            assert!(
                wait >= Duration::from_secs(80) && wait <= Duration::from_secs(120),
                "{wait:?}"
            );
        }
        let hour = Duration::from_secs(3600);
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n, hour).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(100, hour).as_secs(), 300);
        assert_eq!(backoff(3, Duration::from_secs(7)).as_secs(), 7);
    }
}

/// The job executor as the run loop's runner.
#[derive(Debug)]
pub struct ExecutorRunner(pub crate::job::Executor);

impl JobRunner for ExecutorRunner {
    fn resume(&mut self) -> Vec<JobReport> {
        self.0.resume()
    }

    fn accept(&mut self, job: &Job) -> Result<(), String> {
        self.0.accept(job).map_err(|err| err.to_string())
    }

    fn execute(&mut self, job: &Job) -> Executed {
        match self.0.execute(job) {
            crate::job::Execution::Report(report) => Executed::Finished(Box::new(report)),
            crate::job::Execution::Rebooting => Executed::Rebooting,
            // Only `execute_until` stops part-way; `execute` never does. Should it, the
            // journal holds the phase and `resume` finishes the job on the next start.
            crate::job::Execution::Stopped { phase } => {
                tracing::warn!(
                    job = job.id,
                    ?phase,
                    "the job stopped part-way; resume finishes it"
                );
                Executed::Rebooting
            }
        }
    }

    fn acknowledge(&mut self, job_id: i64) {
        // The server has the report; the journal does not know it yet.
        self.0.halt_point("report-sent", job_id);
        if let Err(err) = self.0.acknowledge(job_id) {
            tracing::warn!(job = job_id, error = %err, "cannot mark the job's report as received");
        }
    }
}
