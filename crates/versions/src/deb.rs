//! Debian versions, `[epoch:]upstream[-revision]`, parsed and ordered as dpkg does.
//!
//! The split is dpkg's: the epoch is everything before the first `:`, the revision everything
//! after the last `-`. We refuse what `dpkg --compare-versions` refuses (an empty revision in
//! `0:0-`, an epoch that is not a number or above `INT_MAX`) and also what it only warns about
//! (an upstream version not starting with a digit, characters outside Debian Policy's set), so
//! every accepted value is one dpkg compares without a word. The order is dpkg's `verrevcmp`.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::{
    Format, Part, Problem, VersionError, check_characters, compare_digits, parse_epoch, split_run,
};

/// dpkg keeps the epoch in a C `int`.
const MAX_EPOCH: u32 = 2_147_483_647;

/// A valid Debian version; `Display` gives back the text it was parsed from.
#[derive(Clone)]
pub struct DebVersion {
    text: String,
    epoch: u32,
    upstream: Range<usize>,
    revision: Option<Range<usize>>,
}

impl DebVersion {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        Self::split(text).map_err(|problem| VersionError::new(Format::Deb, text, problem))
    }

    /// The epoch; 0 when none is written.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version, between the epoch and the last `-`.
    pub fn upstream(&self) -> &str {
        &self.text[self.upstream.clone()]
    }

    /// The Debian revision after the last `-`, if there is one.
    pub fn revision(&self) -> Option<&str> {
        self.revision.clone().map(|range| &self.text[range])
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

        // The revision is everything after the last '-', when there is one.
        let (upstream, revision) = match text[body_start..].rfind('-') {
            Some(hyphen) => {
                let hyphen = body_start + hyphen;
                (body_start..hyphen, Some(hyphen + 1..text.len()))
            }
            None => (body_start..text.len(), None),
        };
        if revision.as_ref().is_some_and(Range::is_empty) {
            return Err(Problem::TrailingHyphen(Part::Revision));
        }

        // Then the characters of each part.
        check_upstream(&text[upstream.clone()])?;
        if let Some(range) = revision.clone() {
            check_characters(&text[range], Part::Revision, |byte| b".+~".contains(&byte))?;
        }

        Ok(Self { text: text.to_owned(), epoch, upstream, revision })
    }
}

fn check_upstream(upstream: &str) -> Result<(), Problem> {
    match upstream.chars().next() {
        None => Err(Problem::PartEmpty(Part::Upstream)),
        Some(first) if !first.is_ascii_digit() => {
            Err(Problem::NoLeadingDigit { part: Part::Upstream, found: first })
        }
        Some(_) => check_characters(upstream, Part::Upstream, |byte| b".+~-:".contains(&byte)),
    }
}

/// dpkg's `verrevcmp`: alternating non-digit runs, compared character by character, and digit
/// runs, compared as numbers. A missing run counts as empty text or as zero.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        let (a_text, a_rest) = split_run(a, |byte| !byte.is_ascii_digit());
        let (b_text, b_rest) = split_run(b, |byte| !byte.is_ascii_digit());
        let (a_number, a_rest) = split_run(a_rest, |byte| byte.is_ascii_digit());
        let (b_number, b_rest) = split_run(b_rest, |byte| byte.is_ascii_digit());

        let order = compare_text(a_text, b_text).then_with(|| compare_digits(a_number, b_number));
        if order.is_ne() {
            return order;
        }
        (a, b) = (a_rest, b_rest);
    }
    Ordering::Equal
}

/// Compares two non-digit runs position by position, the shorter padded with end-of-text.
fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|at| weight(a.get(at).copied()).cmp(&weight(b.get(at).copied())))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// dpkg's character order: `~` sorts before the end of the text, the end before letters, and
/// letters before every other character.
fn weight(byte: Option<u8>) -> i32 {
    match byte {
        Some(b'~') => -1,
        None => 0,
        Some(letter) if letter.is_ascii_alphabetic() => i32::from(letter),
        Some(other) => i32::from(other) + 256,
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // A missing revision compares as an empty one, which equals "0".
        let revisions = (self.revision().unwrap_or(""), other.revision().unwrap_or(""));
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream(), other.upstream()))
            .then_with(|| compare_part(revisions.0, revisions.1))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal as dpkg sees it: `1.09` equals `1.9`, and `1.0` equals `0:1.0-0`.
impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for DebVersion {}

impl FromStr for DebVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DebVersion").field(&self.text).finish()
    }
}
