//! Patchwarden's domain model, kept pure: no I/O, no clock, no randomness.
//!
//! Everything that decides whether an update request may move lives here: the
//! accounts and their roles, systems, the request with its lifecycle and guards,
//! policy versions, and the control log's canonical encoding and chain check.
//! Callers pass the current instant in as `now`; the store persists what the
//! functions here return and never decides a transition itself.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod account;
pub mod error;
pub mod lifecycle;
pub mod log;
pub mod policy;
pub mod request;
pub mod system;
pub mod text;

pub use account::{Account, AccountId, AccountName, Email, Role, Roles};
pub use error::{Refusal, RefusalKind};
pub use lifecycle::{Command, Context, State, Transition, Verb};
pub use log::{ChainBreak, ChainHead, ChainSummary, ChainVerifier, LOG_FORMAT, LogDraft, LogEntry};
pub use policy::{PolicySettings, PolicyVersion};
pub use request::{RequestId, UpdateRequest};
pub use system::{System, SystemId};
