//! The differential test against `dpkg --compare-versions` on mutated real Debian versions.
//!
//! For every pair our order must be dpkg's, and our refusals must be dpkg's complaints: a value
//! we accept is one dpkg compares without a word, a value we refuse is one dpkg refuses or warns
//! about. The exceptions are deliberate and pinned against dpkg in their own test: a signed
//! epoch (`+1:1.0`), which dpkg's `strtol` reads as a number, and white space around the
//! version, which dpkg trims.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::thread;
use std::time::Instant;

use patchwarden_versions::{DebVersion, Problem, VersionError};

use crate::mutate::{Flavour, pairs};
use crate::{slot, tool_missing};

const PAIRS: usize = 4000;
const SEED: u64 = 0x6470_6b67;

/// What dpkg made of one pair.
#[derive(Debug)]
struct DpkgVerdict {
    /// The order, or `None` when dpkg refused the pair.
    order: Option<Ordering>,
    /// The versions named in dpkg's warnings and errors.
    complaints: BTreeSet<String>,
    /// dpkg's stderr, for failure messages.
    stderr: String,
}

fn run_dpkg(a: &str, b: &str, relation: &str) -> Output {
    Command::new("dpkg")
        .args(["--compare-versions", "--", a, relation, b])
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|error| panic!("cannot run dpkg: {error}"))
}

/// Asks dpkg whether `a` is lower, then whether it is higher; anything else is equal.
fn ask_dpkg(a: &str, b: &str) -> DpkgVerdict {
    let mut stderr = String::new();
    let mut order = None;
    for (relation, if_true) in [("lt", Ordering::Less), ("gt", Ordering::Greater)] {
        let output = run_dpkg(a, b, relation);
        stderr.push_str(&String::from_utf8_lossy(&output.stderr));
        match output.status.code() {
            Some(0) => {
                order = Some(if_true);
                break;
            }
            Some(1) => order = Some(Ordering::Equal),
            _ => {
                order = None;
                break;
            }
        }
    }
    DpkgVerdict { order, complaints: named_in(&stderr), stderr }
}

/// The versions dpkg names in lines such as `dpkg: warning: version 'a1' has bad syntax: ...`.
fn named_in(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter_map(|line| line.split_once("version '")?.1.split_once("' has bad syntax"))
        .map(|(version, _)| version.to_owned())
        .collect()
}

fn dpkg_available() -> bool {
    Command::new("dpkg").arg("--version").output().is_ok_and(|output| output.status.success())
}

/// We refuse a signed epoch that dpkg's `strtol` accepts: Debian Policy's epoch is digits.
fn deliberately_stricter(error: &VersionError) -> bool {
    let Problem::EpochNotNumber(epoch) = error.problem() else {
        return false;
    };
    let unsigned = epoch.strip_prefix('+').unwrap_or_default();
    !unsigned.is_empty() && unsigned.bytes().all(|byte| byte.is_ascii_digit())
}

/// Compares one pair with dpkg's verdict; returns a description of every disagreement.
fn disagreements(a: &str, b: &str, dpkg: &DpkgVerdict) -> Vec<String> {
    let ours = (DebVersion::parse(a), DebVersion::parse(b));
    let mut found = Vec::new();

    // Refusals: dpkg must complain about every value we refuse and about no value we accept.
    // dpkg stops at the first value it refuses, so a refused `a` hides what it thinks of `b`.
    let dpkg_stopped_at_a = dpkg.order.is_none() && dpkg.complaints.contains(a);
    for (value, parsed) in [(a, ours.0.as_ref()), (b, ours.1.as_ref())] {
        let complained = dpkg.complaints.contains(value);
        let hidden = value == b && dpkg_stopped_at_a;
        match parsed {
            Ok(_) if complained => found.push(format!("we accept {value:?}, dpkg complains")),
            Err(error) if deliberately_stricter(error) && complained => {
                found.push(format!("dpkg now refuses {value:?} too: drop the exception"));
            }
            Err(error) if !deliberately_stricter(error) && !complained && !hidden => {
                found.push(format!("we refuse {value:?} ({error}), dpkg accepts it"));
            }
            _ => {}
        }
    }

    // Order: where we accept both, dpkg must have compared them and agree.
    if let (Ok(a_version), Ok(b_version)) = &ours {
        let order = a_version.cmp(b_version);
        if dpkg.order != Some(order) {
            found.push(format!("we say {order:?}, dpkg says {:?}", dpkg.order));
        }
    }
    found
        .into_iter()
        .map(|what| format!("{a:?} vs {b:?}: {what}; dpkg said {:?}", dpkg.stderr))
        .collect()
}

#[test]
fn deb_order_and_refusals_match_dpkg_on_mutated_real_versions() {
    if !dpkg_available() {
        tool_missing("dpkg", "install the Debian package dpkg");
        return;
    }
    let started = Instant::now();
    let pairs = pairs(Flavour::Deb, PAIRS, SEED);

    // Two workers: dpkg costs a process per question, and the test machine has two cores.
    let verdicts: Vec<DpkgVerdict> = thread::scope(|scope| {
        let workers: Vec<_> = pairs
            .chunks(pairs.len().div_ceil(2))
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|(a, b)| ask_dpkg(a, b)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_else(|_| panic!("a dpkg worker panicked")))
            .collect()
    });

    let mut failures = Vec::new();
    let mut orders = [0usize; 3];
    let mut refused = 0;
    for ((a, b), verdict) in pairs.iter().zip(&verdicts) {
        failures.extend(disagreements(a, b, verdict));
        match (DebVersion::parse(a), DebVersion::parse(b)) {
            (Ok(a), Ok(b)) => orders[slot(a.cmp(&b))] += 1,
            _ => refused += 1,
        }
    }
    eprintln!(
        "dpkg: {} pairs in {:.1?}: {} lower, {} equal, {} higher, {refused} with a refused side",
        pairs.len(),
        started.elapsed(),
        orders[0],
        orders[1],
        orders[2]
    );

    assert!(
        failures.is_empty(),
        "{} disagreements with dpkg:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The pairs must exercise all three answers and mostly be valid, or the test proves little.
    assert!(orders.iter().all(|&count| count >= 50), "too few of some order: {orders:?}");
    assert!(refused < pairs.len() / 3, "{refused} of {} pairs have a refused side", pairs.len());
}

/// Values dpkg compares without a word that we refuse on purpose: a signed epoch (dpkg reads it
/// with `strtol`) and white space around the version (dpkg trims it). Each is pinned against
/// dpkg, so a dpkg that starts refusing one shows up here.
#[test]
fn deliberate_refusals_are_values_dpkg_accepts_silently() {
    if !dpkg_available() {
        tool_missing("dpkg", "install the Debian package dpkg");
        return;
    }
    for (value, same_as) in [("+1:1.0", "1:1.0"), (" 1.0-1", "1.0-1"), ("1.0-1 ", "1.0-1")] {
        let verdict = ask_dpkg(value, same_as);
        assert_eq!(verdict.order, Some(Ordering::Equal), "dpkg on {value:?}: {}", verdict.stderr);
        assert!(verdict.stderr.is_empty(), "dpkg complains about {value:?}: {}", verdict.stderr);
        assert!(DebVersion::parse(value).is_err(), "we should refuse {value:?}");
    }
}
