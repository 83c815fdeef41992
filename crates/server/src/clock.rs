//! The one place the server reads the clock.
//!
//! Handlers ask the `Clock` in the application state for `now` and pass it on;
//! tests give the server a `ManualClock` and move it forward instead of
//! waiting, so a 24-hour notice period takes no time to test.

use std::fmt::Debug;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: SignedDuration) {
        if let Ok(mut now) = self.0.lock() {
            *now = now.saturating_add(by).unwrap_or(*now);
        }
    }

    pub fn set(&self, to: Timestamp) {
        if let Ok(mut now) = self.0.lock() {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|now| *now).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}
