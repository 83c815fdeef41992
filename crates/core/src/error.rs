//! Why the core refused something, in the categories the API maps to statuses.
//!
//! The order of the categories is the order in which the core checks: who is
//! asking (`Forbidden`), what they sent (`Invalid`), then whether the request's
//! state allows it (`Conflict`). A refusal changes nothing.

use crate::lifecycle::{State, Verb};

/// The category of a refusal; the server maps each to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The actor's roles or the separation of duties do not allow it (403).
    Forbidden,
    /// A field is missing or invalid (422).
    Invalid,
    /// The request's state, or a guard on it, does not allow it now (409).
    Conflict,
}

/// A refused command: what was wrong, and for conflicts where the request stands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    /// For conflicts: the request's state and whether it is paused.
    pub state: Option<(State, bool)>,
    /// For conflicts: the verbs the state allows now.
    pub allowed: Vec<Verb>,
    /// For invalid input: every field that was missing or wrong.
    pub fields: Vec<String>,
}

impl Refusal {
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Forbidden, message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Invalid, message.into())
    }

    /// An invalid-input refusal naming each field that was missing or wrong.
    pub fn invalid_fields(message: impl Into<String>, fields: Vec<String>) -> Self {
        Self { fields, ..Self::new(RefusalKind::Invalid, message.into()) }
    }

    /// A conflict with the request's current state; lists the verbs allowed now.
    pub fn conflict(message: impl Into<String>, state: State, paused: bool) -> Self {
        Self {
            state: Some((state, paused)),
            allowed: state.allowed_verbs(paused),
            ..Self::new(RefusalKind::Conflict, message.into())
        }
    }

    fn new(kind: RefusalKind, message: String) -> Self {
        Self { kind, message, state: None, allowed: Vec::new(), fields: Vec::new() }
    }
}
