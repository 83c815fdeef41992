//! Jobs: what the server asks one endpoint to do, signed so the agent can
//! tell it came from its server, was meant for it, is still current and is
//! not a replay.
//!
//! A job can say only this: install these exact package versions, run these
//! declared health checks, roll back on a failed check or not, reboot or not.
//! There is no field for anything else, so there is no remote shell.
//!
//! The signature covers the exact bytes of the job's JSON (`SignedJob::payload`);
//! the agent checks it before it parses them, then checks the endpoint, the
//! expiry and the sequence number, in that order.

use std::fmt;

use ed25519_dalek::{Signer, Verifier};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The job format this build writes and reads.
pub const JOB_FORMAT: u32 = 1;

/// Which of a system's environments an endpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Test,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "test" => Ok(Environment::Test),
            "prod" => Ok(Environment::Prod),
            other => Err(format!("environment '{other}' is not test or prod")),
        }
    }
}

/// One package at one exact version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePin {
    pub name: String,
    pub version: String,
}

/// A check run after the update; each has a timeout and a number of retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub check: CheckKind,
    /// How long one attempt may take.
    pub timeout_seconds: u32,
    /// Attempts after the first failed one.
    pub retries: u32,
    /// Seconds between attempts.
    pub retry_delay_seconds: u32,
}

/// What a health check looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CheckKind {
    /// A systemd unit is active.
    SystemdUnit { unit: String },
    /// A TCP port accepts a connection.
    TcpPort { host: String, port: u16 },
    /// An HTTP URL answers 2xx.
    Http { url: String },
    /// A declared command exits 0; run without a shell, with a cleared environment.
    Command { argv: Vec<String> },
}

impl CheckKind {
    /// A short description for reports and logs.
    pub fn describe(&self) -> String {
        match self {
            CheckKind::SystemdUnit { unit } => format!("unit {unit} is active"),
            CheckKind::TcpPort { host, port } => format!("tcp {host}:{port} accepts"),
            CheckKind::Http { url } => format!("GET {url} answers 2xx"),
            CheckKind::Command { argv } => format!("command `{}` exits 0", argv.join(" ")),
        }
    }
}

/// When the agent reboots the machine after a successful update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    Never,
    /// Only when the machine says it needs one.
    IfRequired,
    /// At the end of the work window, whether or not one is required.
    EndOfWindow,
}

/// One job for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub format: u32,
    pub id: i64,
    pub endpoint_id: i64,
    /// Per endpoint, increasing; the agent refuses one it has already seen.
    pub sequence: u64,
    pub issued_at: Timestamp,
    /// No later than `window_end`.
    pub expires_at: Timestamp,
    /// Work must not start after this.
    pub window_end: Timestamp,
    pub request_id: i64,
    pub environment: Environment,
    pub install: Vec<PackagePin>,
    pub health_checks: Vec<HealthCheck>,
    pub rollback_on_failure: bool,
    pub reboot: RebootPolicy,
    /// Whether the agent may run `dpkg --configure -a` on an interrupted dpkg.
    pub recover_interrupted: bool,
    /// Keep locally changed configuration files (dpkg's `--force-confold`).
    pub keep_local_config: bool,
}

/// A job's bytes and the server's signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    /// The job's JSON, exactly as signed.
    pub payload: String,
    /// Ed25519 signature over `payload`'s bytes, lowercase hex.
    pub signature: String,
}

/// Why an agent refuses a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum JobError {
    #[error("the job's signature does not verify with the server's key")]
    BadSignature,
    #[error("the job is malformed: {detail}")]
    Malformed { detail: String },
    #[error("the job is for endpoint {job}, this is endpoint {ours}")]
    WrongEndpoint { job: i64, ours: i64 },
    #[error("the job expired at {expires_at}")]
    Expired { expires_at: Timestamp },
    #[error("the job's expiry {expires_at} is after its window's end {window_end}")]
    ExpiresAfterWindow { expires_at: Timestamp, window_end: Timestamp },
    #[error("job sequence {sequence} was seen already (last seen {last_seen})")]
    Replayed { sequence: u64, last_seen: u64 },
    #[error("job format {format} is not one this agent reads")]
    UnknownFormat { format: u32 },
}

impl SignedJob {
    /// Checks the signature, then the job's endpoint, expiry and sequence.
    pub fn open(
        &self,
        key: &VerifyingKey,
        endpoint_id: i64,
        now: Timestamp,
        last_seen_sequence: u64,
    ) -> Result<Job, JobError> {
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
            .ok_or(JobError::BadSignature)?;
        key.0.verify(self.payload.as_bytes(), &signature).map_err(|_| JobError::BadSignature)?;

        let job: Job = serde_json::from_str(&self.payload)
            .map_err(|err| JobError::Malformed { detail: err.to_string() })?;
        if job.format != JOB_FORMAT {
            return Err(JobError::UnknownFormat { format: job.format });
        }
        if job.endpoint_id != endpoint_id {
            return Err(JobError::WrongEndpoint { job: job.endpoint_id, ours: endpoint_id });
        }
        if job.expires_at > job.window_end {
            return Err(JobError::ExpiresAfterWindow {
                expires_at: job.expires_at,
                window_end: job.window_end,
            });
        }
        if now >= job.expires_at {
            return Err(JobError::Expired { expires_at: job.expires_at });
        }
        if job.sequence <= last_seen_sequence {
            return Err(JobError::Replayed {
                sequence: job.sequence,
                last_seen: last_seen_sequence,
            });
        }
        Ok(job)
    }

    /// The job's id and sequence without checking anything: for reporting a refusal.
    pub fn peek(&self) -> Option<(i64, u64)> {
        #[derive(Deserialize)]
        struct Ids {
            id: i64,
            sequence: u64,
        }
        serde_json::from_str::<Ids>(&self.payload).ok().map(|ids| (ids.id, ids.sequence))
    }
}

/// The server's job-signing key. `Debug` never shows it.
pub struct JobKey(ed25519_dalek::SigningKey);

impl fmt::Debug for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobKey(public {})", self.public().to_hex())
    }
}

impl JobKey {
    /// The key from its 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// The 32 secret bytes, to keep in the keys folder.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Serialises and signs `job`.
    pub fn sign(&self, job: &Job) -> Result<SignedJob, serde_json::Error> {
        let payload = serde_json::to_string(job)?;
        let signature = hex::encode(self.0.sign(payload.as_bytes()).to_bytes());
        Ok(SignedJob { payload, signature })
    }
}

/// The public half, which agents keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| "a signing key is 64 hexadecimal digits".to_owned())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| "the signing key is not a valid Ed25519 public key".to_owned())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::*;

    fn job(now: Timestamp) -> Job {
        Job {
            format: JOB_FORMAT,
            id: 7,
            endpoint_id: 3,
            sequence: 5,
            issued_at: now,
            expires_at: now + SignedDuration::from_hours(1),
            window_end: now + SignedDuration::from_hours(2),
            request_id: 1,
            environment: Environment::Test,
            install: vec![PackagePin { name: "demo".into(), version: "1.1-1".into() }],
            health_checks: vec![],
            rollback_on_failure: true,
            reboot: RebootPolicy::Never,
            recover_interrupted: false,
            keep_local_config: true,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_signed_job_opens_for_its_endpoint_and_nothing_else() {
        let key = JobKey::from_bytes(&[9; 32]);
        let signed = key.sign(&job(now())).unwrap();
        assert_eq!(signed.open(&key.public(), 3, now(), 4).unwrap(), job(now()));

        let wrong = signed.open(&key.public(), 4, now(), 4).unwrap_err();
        assert_eq!(wrong, JobError::WrongEndpoint { job: 3, ours: 4 });
        let later = now() + SignedDuration::from_hours(1);
        assert!(matches!(signed.open(&key.public(), 3, later, 4), Err(JobError::Expired { .. })));
        let replay = signed.open(&key.public(), 3, now(), 5).unwrap_err();
        assert_eq!(replay, JobError::Replayed { sequence: 5, last_seen: 5 });
    }

    #[test]
    fn a_changed_byte_or_another_key_breaks_the_signature() {
        let key = JobKey::from_bytes(&[9; 32]);
        let signed = key.sign(&job(now())).unwrap();
        let mut edited = signed.clone();
        edited.payload = edited.payload.replace("1.1-1", "6.6-6");
        assert_eq!(edited.open(&key.public(), 3, now(), 0), Err(JobError::BadSignature));
        let other = JobKey::from_bytes(&[8; 32]);
        assert_eq!(signed.open(&other.public(), 3, now(), 0), Err(JobError::BadSignature));
        let mut garbage = signed;
        garbage.signature = "zz".into();
        assert_eq!(garbage.open(&key.public(), 3, now(), 0), Err(JobError::BadSignature));
    }

    #[test]
    fn a_job_that_outlives_its_window_is_refused() {
        let key = JobKey::from_bytes(&[9; 32]);
        let mut long = job(now());
        long.expires_at = long.window_end + SignedDuration::from_secs(1);
        let signed = key.sign(&long).unwrap();
        assert!(matches!(
            signed.open(&key.public(), 3, now(), 0),
            Err(JobError::ExpiresAfterWindow { .. })
        ));
    }

    #[test]
    fn the_public_key_round_trips_as_hex() {
        let key = JobKey::from_bytes(&[9; 32]);
        let hex = key.public().to_hex();
        assert_eq!(VerifyingKey::from_hex(&hex).unwrap(), key.public());
        assert!(VerifyingKey::from_hex("abc").is_err());
    }
}
