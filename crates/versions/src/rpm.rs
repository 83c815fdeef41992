//! RPM versions, `[epoch:]version[-release]`, parsed as rpmbuild allows and ordered as rpm does.
//!
//! The split is rpm's own (`parseEVR`): the epoch is the digits before the first `:`, the release
//! everything after the last `-`. The character rules are rpmbuild's for Version and Release
//! (ASCII letters, digits and `._+%{}~^`, never `..`), so `-` and `:` cannot hide inside a part.
//! The order is `rpm.labelCompare`: epochs as numbers, then `rpmvercmp` on the versions, then on
//! the releases, where a missing release sorts before any release.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::{
    Format, Part, Problem, VersionError, check_characters, compare_digits, parse_epoch, split_run,
};

/// rpm keeps the epoch in an unsigned 32-bit tag.
const MAX_EPOCH: u32 = u32::MAX;

/// A valid RPM version; `Display` gives back the text it was parsed from.
#[derive(Clone)]
pub struct RpmVersion {
    text: String,
    epoch: u32,
    version: Range<usize>,
    release: Option<Range<usize>>,
}

impl RpmVersion {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        Self::split(text).map_err(|problem| VersionError::new(Format::Rpm, text, problem))
    }

    /// The epoch; 0 when none is written.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The version, between the epoch and the last `-`.
    pub fn version(&self) -> &str {
        &self.text[self.version.clone()]
    }

    /// The release after the last `-`, if there is one.
    pub fn release(&self) -> Option<&str> {
        self.release.clone().map(|range| &self.text[range])
    }

    /// The text as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn split(text: &str) -> Result<Self, Problem> {
        if text.is_empty() {
            return Err(Problem::Empty);
        }

        // The epoch is everything before the first ':', when there is one.
        let (epoch, body_start) = match text.find(':') {
            Some(colon) => (parse_epoch(&text[..colon], MAX_EPOCH)?, colon + 1),
            None => (0, 0),
        };

        // The release is everything after the last '-', when there is one.
        let (version, release) = match text[body_start..].rfind('-') {
            Some(hyphen) => {
                let hyphen = body_start + hyphen;
                (body_start..hyphen, Some(hyphen + 1..text.len()))
            }
            None => (body_start..text.len(), None),
        };
        if release.as_ref().is_some_and(Range::is_empty) {
            return Err(Problem::TrailingHyphen(Part::Release));
        }
        if version.is_empty() {
            return Err(Problem::PartEmpty(Part::Version));
        }

        // Then rpmbuild's rules for each part.
        check_part(&text[version.clone()], Part::Version)?;
        if let Some(range) = release.clone() {
            check_part(&text[range], Part::Release)?;
        }

        Ok(Self { text: text.to_owned(), epoch, version, release })
    }
}

fn check_part(text: &str, part: Part) -> Result<(), Problem> {
    check_characters(text, part, |byte| b"._+%{}~^".contains(&byte))?;
    if text.contains("..") {
        return Err(Problem::DoubleDot(part));
    }
    Ok(())
}

/// rpm's `rpmvercmp`. Characters other than ASCII letters, digits, `~` and `^` only separate
/// segments. `~` sorts before anything, even the end; `^` sorts after the end but before any
/// other segment. A digit segment beats a letter segment; digit segments compare as numbers,
/// letter segments byte by byte. When one side runs out, the side with text left is newer.
fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let is_separator = |byte: u8| !byte.is_ascii_alphanumeric() && byte != b'~' && byte != b'^';
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        a = split_run(a, is_separator).1;
        b = split_run(b, is_separator).1;

        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) | (Some(b'^'), Some(b'^')) => {
                (a, b) = (&a[1..], &b[1..]);
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), Some(_)) => return Ordering::Less,
            (Some(_), Some(b'^')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(_), Some(_)) => {}
        }

        let (order, a_rest, b_rest) = compare_segment(a, b);
        if order.is_ne() {
            return order;
        }
        (a, b) = (a_rest, b_rest);
    }
}

/// Compares the segment at the start of `a` (digits or letters, whichever `a` starts with)
/// with the segment of the same kind at the start of `b`; returns the order and both rests.
fn compare_segment<'a, 'b>(a: &'a [u8], b: &'b [u8]) -> (Ordering, &'a [u8], &'b [u8]) {
    let numeric = a.first().is_some_and(u8::is_ascii_digit);
    let of_kind =
        |byte: u8| if numeric { byte.is_ascii_digit() } else { byte.is_ascii_alphabetic() };
    let (a_segment, a_rest) = split_run(a, of_kind);
    let (b_segment, b_rest) = split_run(b, of_kind);

    let order = match (b_segment.is_empty(), numeric) {
        (true, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, true) => compare_digits(a_segment, b_segment),
        (false, false) => a_segment.cmp(b_segment),
    };
    (order, a_rest, b_rest)
}

/// labelCompare's rule for releases: a missing release sorts before any release.
fn compare_release(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => rpmvercmp(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(self.version(), other.version()))
            .then_with(|| compare_release(self.release(), other.release()))
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal as rpm sees it: `10.0001` equals `10.1`, `2_0` equals `2.0`, `0:1.0` equals `1.0`.
impl PartialEq for RpmVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for RpmVersion {}

impl FromStr for RpmVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for RpmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for RpmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RpmVersion").field(&self.text).finish()
    }
}
