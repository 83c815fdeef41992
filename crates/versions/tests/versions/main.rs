//! The integration tests of patchwarden-versions, one binary: the comparison tables copied from
//! dpkg's, apt's and rpm's own suites, the parser's refusals and round trips, and differential
//! runs of mutated real versions against `dpkg --compare-versions` and rpm's `labelCompare`.

use std::cmp::Ordering;

mod dpkg;
mod fixtures;
mod mutate;
mod parsing;
mod rpm;

/// Reports that the tool a differential test compares against is missing.
///
/// Where `CI` is `true` this fails the test, so a CI run never passes without the comparison;
/// elsewhere it prints a notice and the caller returns.
fn tool_missing(tool: &str, how_to_install: &str) {
    let message = format!("{tool} is not available ({how_to_install})");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{message}; CI=true, so the differential test cannot be skipped");
    }
    eprintln!("notice: skipping the differential test: {message}");
}

/// Where an order is counted in `[lower, equal, higher]`.
fn slot(order: Ordering) -> usize {
    match order {
        Ordering::Less => 0,
        Ordering::Equal => 1,
        Ordering::Greater => 2,
    }
}
