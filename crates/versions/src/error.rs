//! Why a version string was refused: one error type for both formats, quoting the value.
//!
//! Messages are lowercase, short and name the part of the version that is wrong, for example
//! `invalid deb version "1.0-": the revision after the last '-' is empty`.

use std::fmt;

use crate::Format;

/// A version string that is not valid in its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {format} version {value:?}: {problem}")]
pub struct VersionError {
    format: Format,
    value: String,
    problem: Problem,
}

impl VersionError {
    pub(crate) fn new(format: Format, value: &str, problem: Problem) -> Self {
        Self { format, value: value.to_owned(), problem }
    }

    /// The format the value was read as.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The refused text, exactly as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

/// What is wrong with a refused version string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Nothing was given.
    #[error("the version is empty")]
    Empty,
    /// A `:` with nothing before it.
    #[error("the epoch before ':' is empty")]
    EpochEmpty,
    /// The text before the first `:` is not all ASCII digits.
    #[error("the epoch {0:?} before the first ':' is not a number")]
    EpochNotNumber(String),
    /// The epoch is larger than the package manager stores.
    #[error("the epoch {epoch} is larger than {max}")]
    EpochTooLarge {
        /// The epoch's digits as given.
        epoch: String,
        /// The largest epoch this format allows.
        max: u32,
    },
    /// The upstream version (deb) or version (rpm) is empty.
    #[error("the {0} is empty")]
    PartEmpty(Part),
    /// A `-` with nothing after it.
    #[error("the {0} after the last '-' is empty")]
    TrailingHyphen(Part),
    /// A Debian upstream version must start with a digit.
    #[error("the {part} must start with a digit, not {found:?}")]
    NoLeadingDigit {
        /// Always the upstream version.
        part: Part,
        /// The character found instead.
        found: char,
    },
    /// A character the format does not allow in this part.
    #[error("{found:?} is not allowed in the {part} (allowed: {})", part.allowed())]
    BadCharacter {
        /// The part that holds it.
        part: Part,
        /// The character.
        found: char,
    },
    /// rpmbuild refuses `..` in a version or release.
    #[error("\"..\" is not allowed in the {0}")]
    DoubleDot(Part),
}

/// The parts of a version string that a [`Problem`] can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Debian: between the epoch and the last `-`.
    Upstream,
    /// Debian: after the last `-`.
    Revision,
    /// RPM: between the epoch and the last `-`.
    Version,
    /// RPM: after the last `-`.
    Release,
}

impl Part {
    /// The characters this part may hold, as a message shows them.
    pub fn allowed(self) -> &'static str {
        match self {
            Part::Upstream => "ASCII letters, digits and . + ~ - :",
            Part::Revision => "ASCII letters, digits and . + ~",
            Part::Version | Part::Release => "ASCII letters, digits and . _ + ~ ^ % { }",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Upstream => "upstream version",
            Part::Revision => "revision",
            Part::Version => "version",
            Part::Release => "release",
        })
    }
}

/// A format name other than `deb` or `rpm`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown version format {0:?}: expected deb or rpm")]
pub struct UnknownFormat(pub String);
