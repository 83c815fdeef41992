//! What Patchwarden's server and agent say to each other, in one place both
//! depend on.
//!
//! Every message is JSON. The protocol has one version number, sent by the
//! agent on every call and checked by the server; a change that an older
//! agent could misread gets the next number. Jobs travel signed: the server
//! signs the exact bytes of a job's JSON with its Ed25519 key and the agent
//! checks them before it reads a field (see `job`). Fixture files of every
//! message kind live in `tests/fixtures` and must keep parsing.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod enrol;
pub mod inventory;
pub mod job;
pub mod report;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The header that carries the agent's protocol version on every call.
pub const VERSION_HEADER: &str = "x-patchwarden-protocol";

/// The most bytes an agent may send in one message (an inventory of a large
/// machine is well under this).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

pub use enrol::{CheckIn, CheckInAnswer, EnrolAnswer, EnrolRequest, EnrolmentToken};
pub use inventory::Inventory;
pub use job::{
    CheckKind, Environment, HealthCheck, Job, JobError, JobKey, PackagePin, RebootPolicy,
    SignedJob, VerifyingKey,
};
pub use report::{CheckResult, JobOutcome, JobReport, MissedReason, RebootRecord, StepRecord};
