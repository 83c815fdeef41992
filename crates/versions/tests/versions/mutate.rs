//! Pairs of versions for the differential tests: real Debian and RPM versions, mutated the way
//! version strings differ in practice (a shared prefix, `~`, `^`, `+`, `.`, epochs, leading
//! zeros, a letter next to a digit, one digit changed), by a seeded generator so that every run
//! compares the same pairs and a failure can be reproduced.

use crate::fixtures::read_rows;

/// Which package manager's versions to start from and mutate towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Deb,
    Rpm,
}

/// Versions as Debian 12 and its security archive, backports and Ubuntu ship them.
const DEB_REAL: &[&str] = &[
    "1:2.38.1-5+deb12u1",
    "3.0.15-1~deb12u1",
    "2.36-9+deb12u7",
    "1:9.2p1-2+deb12u3",
    "7.88.1-10+deb12u8",
    "1.21.22",
    "2:9.0.1378-2",
    "252.30-1~deb12u2",
    "6.1.0-28",
    "6.1.119-1",
    "1:1.2.13.dfsg-1",
    "2.4.62-1~deb12u2",
    "5.36.0-7+deb12u1",
    "3.11.2-6+deb12u4",
    "1.1.1w-0+deb11u1",
    "20230311",
    "0.20.1+ds1-1~bpo12+1",
    "1.0~rc1+git20240101.abc123-2",
    "2.0~rc1",
    "1:2.3~beta2+dfsg-1",
    "1:9.18.28-1~deb12u2",
    "2:1.0.2-1ubuntu0.3",
    "1.6.12-1+b1",
    "10.2.1-6",
    "1:7.0.4-4",
    "2022.3",
    "0.0.20230626-1",
    "5.2.15-2+b7",
    "2.06-13+deb12u1",
    "1.0-1ubuntu1~22.04.1",
    "4.9.3-1+dfsg-2",
];

/// Versions as RHEL, Fedora and their rebuilds ship them.
const RPM_REAL: &[&str] = &[
    "5.14.0-362.8.1.el9_3",
    "1.2.3^git20240101.abc",
    "2.0~rc1",
    "1:1.1.1k-12.el8_9",
    "2.34-100.el9_4.2",
    "3.9.18-3.el9_4.5",
    "1:9.0.2-1.fc38",
    "0.9.8^20230101git1a2b3c-1.fc39",
    "2:8.2.2637-20.el9_1",
    "4.16.1.3-29.el9",
    "1.0.2k-26.el7_9",
    "3.0.7-27.el9",
    "252-32.el9_4",
    "1:2.38.1-5.el9",
    "0.1~beta2^post1-3.fc40",
    "1.0-0.1.rc1.el9",
    "4.18.0-553.16.1.el8_10",
    "8.0.36-1.el8",
    "1:1.20.1-1.el9",
    "11.2.1^20231121git3e8ddbd-1.fc40",
    "3.2.0~alpha1-0.1.fc41",
    "7.76.1-29.el9_4.1",
    "2.02-150.el8",
    "12:4.4.3-1+rh1",
];

/// A small seeded generator (SplitMix64): no extra crate, the same numbers on every machine.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound`; `bound` must not be 0.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// The starting versions: the real ones above and every version in the flavour's tables.
pub fn seeds(flavour: Flavour) -> Vec<String> {
    let (real, tables): (&[&str], &[&str]) = match flavour {
        Flavour::Deb => (DEB_REAL, &["dpkg_vercmp.tsv"]),
        Flavour::Rpm => (RPM_REAL, &["rpm_evrcmp.tsv", "rpm_vercmp.tsv"]),
    };
    let from_tables = tables.iter().flat_map(|file| read_rows(file)).flat_map(|row| [row.a, row.b]);
    let mut seeds: Vec<String> =
        real.iter().map(|text| (*text).to_owned()).chain(from_tables).collect();
    seeds.sort();
    seeds.dedup();
    seeds
}

/// `count` pairs. Most pairs share an ancestor a few mutations back, so they share a prefix and
/// differ where versions really differ; either side may come first.
pub fn pairs(flavour: Flavour, count: usize, seed: u64) -> Vec<(String, String)> {
    let seeds = seeds(flavour);
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let base = rng.pick(&seeds).clone();
            let steps = rng.below(2);
            let a = mutate_times(&base, steps, flavour, &mut rng);

            // b descends from a, or is a sibling of a from the same real version.
            let steps = 1 + rng.below(3);
            let b = if rng.one_in(3) {
                mutate_times(&base, steps, flavour, &mut rng)
            } else {
                mutate_times(&a, steps, flavour, &mut rng)
            };
            if rng.one_in(2) { (b, a) } else { (a, b) }
        })
        .collect()
}

fn mutate_times(text: &str, times: usize, flavour: Flavour, rng: &mut Rng) -> String {
    (0..times).fold(text.to_owned(), |text, _| mutate(&text, flavour, rng))
}

/// One mutation; never returns an empty string.
pub fn mutate(text: &str, flavour: Flavour, rng: &mut Rng) -> String {
    let mut out = text.to_owned();
    match rng.below(14) {
        0 => insert_somewhere(&mut out, '~', rng),
        1 if flavour == Flavour::Rpm => insert_somewhere(&mut out, '^', rng),
        1 | 2 => insert_somewhere(&mut out, *rng.pick(&['.', '+']), rng),
        3 => remove_separator(&mut out, rng),
        4 => change_epoch(&mut out, flavour, rng),
        5 | 6 => add_leading_zero(&mut out, rng),
        7 => letter_next_to_digit(&mut out, rng),
        8 | 9 => change_one_digit(&mut out, rng),
        10 => out.truncate(1 + rng.below(out.len().max(1))),
        11 => {
            let suffix = *rng.pick(suffixes(flavour));
            out.push_str(suffix);
        }
        12 => swap_separator(&mut out, flavour, rng),
        _ => change_release(&mut out, flavour, rng),
    }
    // Rarely, a character neither format allows here, to test that refusals agree too.
    if rng.one_in(40) {
        insert_somewhere(&mut out, *rng.pick(&['_', '^', ':', '-', '%', '@', '/']), rng);
    }
    if out.is_empty() { text.to_owned() } else { out }
}

fn suffixes(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::Deb => &[".0", "0", ".1", "a", "~", "~rc1", "+b1", "+deb12u1", "-1", "-0", "."],
        Flavour::Rpm => &[".0", "0", ".1", "a", "~", "~rc1", "^", "^git1", ".el9", "-1", "_1", "."],
    }
}

fn positions(text: &str, wanted: impl Fn(u8) -> bool) -> Vec<usize> {
    text.bytes().enumerate().filter(|&(_, byte)| wanted(byte)).map(|(at, _)| at).collect()
}

/// Inserts `what` anywhere but at the very start, where most formats refuse it anyway.
fn insert_somewhere(text: &mut String, what: char, rng: &mut Rng) {
    let at = 1 + rng.below(text.len().max(1));
    text.insert(at.min(text.len()), what);
}

fn remove_separator(text: &mut String, rng: &mut Rng) {
    let found = positions(text, |byte| b"~^+.-_".contains(&byte));
    if !found.is_empty() {
        text.remove(*rng.pick(&found));
    }
}

/// Adds, removes or changes the epoch, sometimes to the largest the format allows or just past.
fn change_epoch(text: &mut String, flavour: Flavour, rng: &mut Rng) {
    let body = match text.split_once(':') {
        Some((epoch, body)) if epoch.bytes().all(|byte| byte.is_ascii_digit()) => body.to_owned(),
        _ => text.clone(),
    };
    let largest = match flavour {
        Flavour::Deb => "2147483647",
        Flavour::Rpm => "4294967295",
    };
    let just_past = match flavour {
        Flavour::Deb => "2147483648",
        Flavour::Rpm => "4294967296",
    };
    let epoch = match rng.below(8) {
        0 | 1 => None,
        2 => Some("0"),
        3 => Some("00"),
        4 => Some("1"),
        5 => Some("2"),
        6 => Some(largest),
        _ => Some(just_past),
    };
    *text = match epoch {
        Some(epoch) => format!("{epoch}:{body}"),
        None => body,
    };
}

fn add_leading_zero(text: &mut String, rng: &mut Rng) {
    let bytes = text.as_bytes();
    let run_starts = positions(text, |_| true)
        .into_iter()
        .filter(|&at| bytes[at].is_ascii_digit() && (at == 0 || !bytes[at - 1].is_ascii_digit()))
        .collect::<Vec<_>>();
    if !run_starts.is_empty() {
        text.insert(*rng.pick(&run_starts), '0');
    }
}

fn letter_next_to_digit(text: &mut String, rng: &mut Rng) {
    let digits = positions(text, |byte| byte.is_ascii_digit());
    if digits.is_empty() {
        return;
    }
    let at = *rng.pick(&digits) + rng.below(2);
    text.insert(at, *rng.pick(&['a', 'b', 'p', 'z', 'A', 'Z']));
}

fn change_one_digit(text: &mut String, rng: &mut Rng) {
    let digits = positions(text, |byte| byte.is_ascii_digit());
    if digits.is_empty() {
        return;
    }
    let at = *rng.pick(&digits);
    let old = text.as_bytes()[at] - b'0';
    let new = match rng.below(3) {
        0 => (old + 1) % 10,
        1 => (old + 9) % 10,
        _ => rng.below(10) as u8,
    };
    text.replace_range(at..=at, &char::from(b'0' + new).to_string());
}

fn swap_separator(text: &mut String, flavour: Flavour, rng: &mut Rng) {
    let choices: &[char] = match flavour {
        Flavour::Deb => &['.', '+', '~'],
        Flavour::Rpm => &['.', '_', '+', '~', '^'],
    };
    let found = positions(text, |byte| choices.contains(&char::from(byte)));
    if !found.is_empty() {
        let at = *rng.pick(&found);
        text.replace_range(at..=at, &rng.pick(choices).to_string());
    }
}

/// Removes the revision or release, replaces it, or adds one.
fn change_release(text: &mut String, flavour: Flavour, rng: &mut Rng) {
    let releases: &[&str] = match flavour {
        Flavour::Deb => &["1", "0", "2", "1+b1", "0ubuntu1", "1~deb12u1", "10", "01"],
        Flavour::Rpm => &["1", "0", "2", "1.el9", "1.fc39", "0.1.rc1", "10", "01", "1.el9_4"],
    };
    let release = *rng.pick(releases);
    let start = text.find(':').map_or(0, |colon| colon + 1);
    match text[start..].rfind('-') {
        Some(hyphen) if rng.one_in(2) => text.truncate(start + hyphen),
        Some(hyphen) => text.replace_range(start + hyphen + 1.., release),
        None => {
            text.push('-');
            text.push_str(release);
        }
    }
}

/// The generator must reach the cases the comparison rules treat specially, or the
/// differential tests would only compare the easy ones.
#[test]
fn mutated_pairs_reach_tilde_caret_epochs_leading_zeros_and_letters_after_digits() {
    let deb = pairs(Flavour::Deb, 2000, 7);
    let rpm = pairs(Flavour::Rpm, 2000, 7);
    assert_eq!(deb, pairs(Flavour::Deb, 2000, 7), "the same seed must give the same pairs");

    let count = |pairs: &[(String, String)], feature: fn(&str) -> bool| {
        pairs.iter().filter(|(a, b)| feature(a) || feature(b)).count()
    };
    let tilde: fn(&str) -> bool = |text| text.contains('~');
    let caret: fn(&str) -> bool = |text| text.contains('^');
    let large_epoch: fn(&str) -> bool = |text| text.starts_with("2147483648:");
    let leading_zero: fn(&str) -> bool = |text| {
        let bytes = text.as_bytes();
        (0..bytes.len().saturating_sub(1)).any(|at| {
            let run_start = at == 0 || !bytes[at - 1].is_ascii_digit();
            run_start && bytes[at] == b'0' && bytes[at + 1].is_ascii_digit()
        })
    };
    let letter_after_digit: fn(&str) -> bool = |text| {
        text.as_bytes()
            .windows(2)
            .any(|pair| pair[0].is_ascii_digit() && pair[1].is_ascii_alphabetic())
    };
    let prefix_of_the_other = deb
        .iter()
        .filter(|(a, b)| a != b && (a.starts_with(b.as_str()) || b.starts_with(a.as_str())))
        .count();

    for (name, found) in [
        ("deb ~", count(&deb, tilde)),
        ("rpm ~", count(&rpm, tilde)),
        ("rpm ^", count(&rpm, caret)),
        ("deb epoch just past the largest", count(&deb, large_epoch)),
        ("deb leading zero", count(&deb, leading_zero)),
        ("rpm leading zero", count(&rpm, leading_zero)),
        ("deb letter after a digit", count(&deb, letter_after_digit)),
        ("deb pair where one is a prefix of the other", prefix_of_the_other),
    ] {
        assert!(found >= 20, "{name}: only {found} of 2000 pairs");
    }
}
