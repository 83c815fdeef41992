//! A job's report: the one explicit outcome the agent sends when a job ends,
//! with what it did on the way.
//!
//! "Nothing installed while updates were pending" is never a success: the
//! agent reports `Failed` when the versions after the job are not the ones
//! the job named.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::PackagePin;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobOutcome {
    /// The versions are installed and every health check passed.
    Succeeded,
    /// A step failed; when it failed after changing packages and the job
    /// asked for it, the old versions were put back (`rolled_back`).
    Failed { step: String, detail: String },
    /// A health check failed and the recorded versions were put back.
    RolledBack { check: String, detail: String, checks_after_rollback_passed: bool },
    /// The agent would not run the job: the check that refused it.
    Refused { check: String, detail: String },
    /// The window ended before the work could be done.
    Missed { reason: MissedReason, detail: String },
}

impl JobOutcome {
    /// The word for it in logs and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed { .. } => "failed",
            JobOutcome::RolledBack { .. } => "rolled-back",
            JobOutcome::Refused { .. } => "refused",
            JobOutcome::Missed { .. } => "missed",
        }
    }
}

/// Why a window was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedReason {
    /// The endpoint did not report before the window ended (decided by the server).
    EndpointOffline,
    /// The package manager's lock stayed held until the window ended.
    LockBusy,
    /// The job reached the agent after its window ended.
    TooLate,
}

/// One step the agent took, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub step: String,
    pub at: Timestamp,
    pub ok: bool,
    pub detail: String,
}

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    pub check: String,
    pub passed: bool,
    pub attempts: u32,
    pub detail: String,
    /// Run again after a rollback.
    pub after_rollback: bool,
}

/// `POST /api/v1/agent/jobs/{id}/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    pub protocol: u32,
    pub job_id: i64,
    pub sequence: u64,
    pub outcome: JobOutcome,
    pub steps: Vec<StepRecord>,
    /// The versions the job replaced, recorded before anything changed.
    pub versions_before: Vec<PackagePin>,
    /// The versions installed when the job ended.
    pub versions_after: Vec<PackagePin>,
    pub health: Vec<CheckResult>,
    /// Configuration files the package manager left beside the local ones (`.dpkg-dist`).
    pub config_files_left: Vec<String>,
    /// `dpkg --configure -a` was run first to recover an interrupted dpkg.
    pub recovered_interrupted: bool,
    /// The machine was rebooted and came back with this boot id and kernel.
    pub reboot: Option<RebootRecord>,
    pub finished_at: Timestamp,
}

/// A reboot the job made, as confirmed after boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootRecord {
    pub boot_id_before: String,
    pub boot_id_after: String,
    pub running_kernel: String,
    pub expected_kernel: Option<String>,
}
