//! The differential test against rpm itself on mutated real RPM versions, through one Python
//! process running Debian's `python3-rpm`: `rpm.ver` splits each value with rpm's own
//! `parseEVR` and `rpm.labelCompare` orders the pair.
//!
//! rpm orders nearly any text, so the refusals are checked against rpmbuild's rules for a
//! spec's Epoch, Version and Release, applied here to the parts rpm split off: we must refuse
//! exactly the values rpmbuild would, split every other value as rpm does and order it as rpm
//! does.

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use patchwarden_versions::RpmVersion;

use crate::mutate::{Flavour, pairs};
use crate::{slot, tool_missing};

const PAIRS: usize = 20_000;
const SEED: u64 = 0x7270_6d76;

/// Only this interpreter can import Debian's `rpm` module; the `python3` on PATH may be another.
const PYTHON: &str = "/usr/bin/python3";

/// Reads `a<TAB>b` lines; writes labelCompare's answer (`x` where it refuses the pair, as it
/// does an empty version) and both splits, `-` for a missing part and `=` before a present one.
const SCRIPT: &str = r#"
import sys, rpm

def evr(text):
    version = rpm.ver(text)
    return (version.e, version.v, version.r)

def show(part):
    return "-" if part is None else "=" + part

for line in sys.stdin:
    a, b = line.rstrip("\n").split("\t")
    left, right = evr(a), evr(b)
    try:
        order = rpm.labelCompare(left, right)
    except ValueError:
        order = "x"
    print(order, *map(show, left + right), sep="\t")
"#;

/// A value as rpm's `parseEVR` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Evr {
    epoch: Option<String>,
    version: String,
    release: Option<String>,
}

#[derive(Debug)]
struct RpmVerdict {
    /// labelCompare's answer, `None` where it refused the pair.
    order: Option<Ordering>,
    a: Evr,
    b: Evr,
}

fn rpm_available() -> bool {
    python().args(["-c", "import rpm"]).output().is_ok_and(|output| output.status.success())
}

fn python() -> Command {
    let mut command = Command::new(PYTHON);
    command.env("LC_ALL", "C").env_remove("PYTHONPATH").env_remove("PYTHONHOME");
    command
}

/// Sends every pair through one Python process and reads one verdict per pair.
fn ask_rpm(pairs: &[(String, String)]) -> Vec<RpmVerdict> {
    let mut child = python()
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {PYTHON}: {error}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin for {PYTHON}"));
    let input: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();

    // Write on a thread of its own so that neither pipe can fill up and stall the other side.
    let (written, output) = thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    let output = output.unwrap_or_else(|error| panic!("waiting for {PYTHON}: {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{PYTHON} failed ({}): {stderr}", output.status);
    assert!(matches!(written, Ok(Ok(()))), "writing the pairs failed: {written:?}; {stderr}");

    let stdout = String::from_utf8(output.stdout).unwrap_or_else(|error| panic!("{error}"));
    let verdicts: Vec<RpmVerdict> = stdout.lines().map(parse_verdict).collect();
    assert_eq!(verdicts.len(), pairs.len(), "one line per pair from {PYTHON}");
    verdicts
}

fn parse_verdict(line: &str) -> RpmVerdict {
    let fields: Vec<&str> = line.split('\t').collect();
    let [order, fields @ ..] = &fields[..] else { panic!("empty line from {PYTHON}") };
    let [ea, va, ra, eb, vb, rb] = fields else { panic!("unexpected line {line:?}") };
    let part = |field: &str| match field.strip_prefix('=') {
        Some(text) => Some(text.to_owned()),
        None if field == "-" => None,
        None => panic!("unexpected part {field:?} in {line:?}"),
    };
    let evr = |epoch, version, release| Evr {
        epoch: part(epoch),
        version: part(version).unwrap_or_else(|| panic!("rpm gave no version in {line:?}")),
        release: part(release),
    };
    let order = match *order {
        "-1" => Some(Ordering::Less),
        "0" => Some(Ordering::Equal),
        "1" => Some(Ordering::Greater),
        "x" => None,
        other => panic!("labelCompare gave {other:?}"),
    };
    RpmVerdict { order, a: evr(ea, va, ra), b: evr(eb, vb, rb) }
}

/// Why rpmbuild would refuse `text`, split by rpm as `evr`, as a spec's Epoch, Version and
/// Release: an epoch that is not a 32-bit number, an empty version or release, a character
/// outside ASCII letters, digits and `._+%{}~^`, or `..`.
fn rpmbuild_refuses(text: &str, evr: &Evr) -> Option<String> {
    if text.starts_with(':') {
        return Some("the epoch is empty".to_owned());
    }
    if evr.epoch.as_ref().is_some_and(|epoch| epoch.parse::<u32>().is_err()) {
        return Some("the epoch is above 32 bits".to_owned());
    }
    if evr.version.is_empty() {
        return Some("the version is empty".to_owned());
    }
    if evr.release.as_deref() == Some("") {
        return Some("the release is empty".to_owned());
    }

    let allowed = |found: char| found.is_ascii_alphanumeric() || "._+%{}~^".contains(found);
    for (name, part) in [("version", Some(&evr.version)), ("release", evr.release.as_ref())] {
        let part = part.map(String::as_str).unwrap_or_default();
        if let Some(found) = part.chars().find(|&found| !allowed(found)) {
            return Some(format!("{found:?} in the {name}"));
        }
        if part.contains("..") {
            return Some(format!("\"..\" in the {name}"));
        }
    }
    None
}

/// Checks one value against rpm's split and rpmbuild's rules.
fn value_disagreement(text: &str, evr: &Evr) -> Option<String> {
    let ours = RpmVersion::parse(text);
    let theirs = rpmbuild_refuses(text, evr);
    match (&ours, &theirs) {
        (Ok(version), None) => {
            let epoch = evr.epoch.as_deref().map_or(Some(0), |epoch| epoch.parse().ok());
            let split = (Some(version.epoch()), version.version(), version.release());
            let rpm_split = (epoch, evr.version.as_str(), evr.release.as_deref());
            (split != rpm_split)
                .then(|| format!("we split {text:?} as {split:?}, rpm {rpm_split:?}"))
        }
        (Err(error), Some(_)) => {
            let quoted = error.to_string().contains(&format!("{text:?}"));
            (!quoted).then(|| format!("the refusal of {text:?} does not quote it: {error}"))
        }
        (Ok(_), Some(reason)) => Some(format!("we accept {text:?}, rpmbuild refuses it: {reason}")),
        (Err(error), None) => Some(format!("we refuse {text:?} ({error}), rpmbuild accepts it")),
    }
}

#[test]
fn rpm_order_and_refusals_match_rpm_on_mutated_real_versions() {
    if !rpm_available() {
        tool_missing(
            "rpm's Python module",
            "apt-get install python3-rpm, used by /usr/bin/python3",
        );
        return;
    }
    let started = Instant::now();
    let pairs = pairs(Flavour::Rpm, PAIRS, SEED);
    let verdicts = ask_rpm(&pairs);

    let mut failures = Vec::new();
    let mut orders = [0usize; 3];
    let mut refused = 0;
    for ((a, b), verdict) in pairs.iter().zip(&verdicts) {
        failures.extend(value_disagreement(a, &verdict.a));
        failures.extend(value_disagreement(b, &verdict.b));

        if let (Ok(a_version), Ok(b_version)) = (RpmVersion::parse(a), RpmVersion::parse(b)) {
            let order = a_version.cmp(&b_version);
            orders[slot(order)] += 1;
            if verdict.order != Some(order) {
                failures.push(format!("{a:?} vs {b:?}: we say {order:?}, rpm {:?}", verdict.order));
            }
        } else {
            refused += 1;
        }
    }
    eprintln!(
        "rpm: {} pairs in {:.1?}: {} lower, {} equal, {} higher, {refused} with a refused side",
        pairs.len(),
        started.elapsed(),
        orders[0],
        orders[1],
        orders[2]
    );

    assert!(
        failures.is_empty(),
        "{} disagreements with rpm:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The pairs must exercise all three answers and mostly be valid, or the test proves little.
    assert!(orders.iter().all(|&count| count >= 50), "too few of some order: {orders:?}");
    assert!(refused < pairs.len() / 3, "{refused} of {} pairs have a refused side", pairs.len());
}
