//! What can go wrong in the store, sorted by who must act on it.
//!
//! `Refused` and `NotFound` and `Invalid` are the caller's to fix and carry a
//! message fit to show them; `Database` and `Integrity` are the operator's, and
//! their text stays in the server's log, never in an API answer.

use patchwarden_core::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The core refused the command; nothing was written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    NotFound(String),
    /// Input that the core cannot judge alone: a name taken, a bad URL.
    #[error("{0}")]
    Invalid(String),
    /// Another transaction changed the same record first; nothing was written.
    #[error("{0}")]
    Contended(String),
    /// Stored data does not read back as it was written.
    #[error("stored data is inconsistent: {0}")]
    Integrity(String),
    /// The driver's error, shown in full here and not repeated as a source.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A fault injected by a test between two writes of one transaction.
    #[error("injected fault at {0}")]
    InjectedFault(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

impl StoreError {
    pub(crate) fn integrity(what: impl Into<String>) -> Self {
        Self::Integrity(what.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
