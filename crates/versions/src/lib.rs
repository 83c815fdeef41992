//! Debian and RPM version strings, validated once and ordered exactly as dpkg and rpm order them.
//!
//! [`DebVersion`] follows `dpkg --compare-versions` and [`RpmVersion`] follows rpm's
//! `labelCompare`. Both are parsed at the boundary: a string that is not a valid version is
//! refused with a [`VersionError`] that quotes it and says what is wrong, so code holding one of
//! these types never checks it again. `Display` gives back the exact text that was parsed, while
//! equality is the package manager's (`1.09` equals `1.9`), so neither type implements `Hash`.
//!
//! The rules are our own code, not a library's; ARCHITECTURE.md ("Version ordering") says why
//! and where we are deliberately stricter than the tools.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deb;
mod error;
mod rpm;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

pub use deb::DebVersion;
pub use error::{Part, Problem, UnknownFormat, VersionError};
pub use rpm::RpmVersion;

/// Which package manager's rules a version string follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// dpkg and apt: `[epoch:]upstream[-revision]`.
    Deb,
    /// rpm, dnf and yum: `[epoch:]version[-release]`.
    Rpm,
}

impl Format {
    /// The name used on the command line and in messages: `deb` or `rpm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Deb => "deb",
            Format::Rpm => "rpm",
        }
    }

    /// Checks that `value` is a valid version in this format.
    pub fn validate(self, value: &str) -> Result<(), VersionError> {
        match self {
            Format::Deb => DebVersion::parse(value).map(drop),
            Format::Rpm => RpmVersion::parse(value).map(drop),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "deb" => Ok(Format::Deb),
            "rpm" => Ok(Format::Rpm),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Compares two version strings by `format`'s rules; either string being invalid is an error.
pub fn compare(format: Format, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match format {
        Format::Deb => Ok(DebVersion::parse(a)?.cmp(&DebVersion::parse(b)?)),
        Format::Rpm => Ok(RpmVersion::parse(a)?.cmp(&RpmVersion::parse(b)?)),
    }
}

/// Reads the epoch before a version's first `:`: ASCII digits, at most `max`.
fn parse_epoch(digits: &str, max: u32) -> Result<u32, Problem> {
    if digits.is_empty() {
        return Err(Problem::EpochEmpty);
    }
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Problem::EpochNotNumber(digits.to_owned()));
    }

    let value = digits
        .bytes()
        .try_fold(0u32, |value, digit| value.checked_mul(10)?.checked_add(u32::from(digit - b'0')));
    match value {
        Some(epoch) if epoch <= max => Ok(epoch),
        _ => Err(Problem::EpochTooLarge { epoch: digits.to_owned(), max }),
    }
}

/// Refuses the first character that is neither an ASCII letter or digit nor `extra`.
fn check_characters(text: &str, part: Part, extra: impl Fn(u8) -> bool) -> Result<(), Problem> {
    let allowed =
        |found: char| found.is_ascii_alphanumeric() || u8::try_from(found).is_ok_and(&extra);
    match text.chars().find(|&found| !allowed(found)) {
        Some(found) => Err(Problem::BadCharacter { part, found }),
        None => Ok(()),
    }
}

/// Splits the longest prefix of `text` whose bytes satisfy `keep`; returns (prefix, rest).
fn split_run(text: &[u8], keep: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let end = text.iter().position(|&byte| !keep(byte)).unwrap_or(text.len());
    text.split_at(end)
}

/// Compares two runs of ASCII digits as numbers of any length, ignoring leading zeros.
fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = trim_zeros(a);
    let b = trim_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits.iter().position(|&digit| digit != b'0').unwrap_or(digits.len());
    &digits[start..]
}
