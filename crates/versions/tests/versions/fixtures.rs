//! The comparison tables in `tests/fixtures` (rows from dpkg's, apt's and rpm's own test suites,
//! see SOURCES.md): every row must hold read as `a` against `b` and as `b` against `a`, with
//! equality symmetric, through the types' `Ord` and `PartialEq` and through `compare`.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::fs;
use std::path::Path;

use patchwarden_versions::{DebVersion, Format, RpmVersion, VersionError, compare};

/// One line of a table: `a<TAB>b<TAB>expected`, where expected is the sign of compare(a, b).
pub struct Row {
    pub line: usize,
    pub a: String,
    pub b: String,
    pub expected: Ordering,
}

/// Reads a table from `tests/fixtures`, skipping `#` comments and the column header.
pub fn read_rows(file: &str) -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));

    let is_data = |line: &&str| !line.starts_with('#') && *line != "a\tb\texpected";
    text.lines()
        .enumerate()
        .filter(|(_, line)| is_data(line))
        .map(|(index, line)| parse_row(file, index + 1, line))
        .collect()
}

fn parse_row(file: &str, line: usize, text: &str) -> Row {
    let fields: Vec<&str> = text.split('\t').collect();
    let [a, b, expected] = fields[..] else {
        panic!("{file}:{line}: expected three tab-separated columns, found {text:?}");
    };
    let expected = match expected {
        "-1" => Ordering::Less,
        "0" => Ordering::Equal,
        "1" => Ordering::Greater,
        other => panic!("{file}:{line}: expected -1, 0 or 1, found {other:?}"),
    };
    Row { line, a: a.to_owned(), b: b.to_owned(), expected }
}

/// Checks every row in both directions; returns one line per row that does not hold.
fn check_rows<T: Ord + Debug>(
    file: &str,
    rows: &[Row],
    parse: impl Fn(&str) -> Result<T, VersionError>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let (a, b) = match (parse(&row.a), parse(&row.b)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                failures.push(format!("{file}:{}: refused: {:?} {:?}", row.line, a.err(), b.err()));
                continue;
            }
        };

        let forward = a.cmp(&b);
        let backward = b.cmp(&a);
        let equal_both_ways = (a == b, b == a);
        let expected_equal = row.expected.is_eq();
        if forward != row.expected
            || backward != row.expected.reverse()
            || equal_both_ways != (expected_equal, expected_equal)
        {
            failures.push(format!(
                "{file}:{}: {:?} vs {:?}: expected {:?}, got {forward:?}, reversed got \
                 {backward:?}, a == b and b == a: {equal_both_ways:?}",
                row.line, row.a, row.b, row.expected
            ));
        }
    }
    failures
}

/// Checks the rows through the string-level `compare`, in both directions.
fn check_compare(file: &str, rows: &[Row], format: Format) -> Vec<String> {
    rows.iter()
        .filter_map(|row| {
            let forward = compare(format, &row.a, &row.b);
            let backward = compare(format, &row.b, &row.a);
            let holds = forward == Ok(row.expected) && backward == Ok(row.expected.reverse());
            (!holds)
                .then(|| format!("{file}:{}: compare gave {forward:?} and {backward:?}", row.line))
        })
        .collect()
}

fn assert_no_failures(failures: &[String]) {
    assert!(failures.is_empty(), "{} rows fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn dpkg_vercmp_rows_hold_in_both_directions() {
    let file = "dpkg_vercmp.tsv";
    let rows = read_rows(file);
    assert_eq!(rows.len(), 76, "{file} should hold 76 rows");

    let mut failures = check_rows(file, &rows, DebVersion::parse);
    failures.extend(check_compare(file, &rows, Format::Deb));
    assert_no_failures(&failures);
}

#[test]
fn rpm_evrcmp_rows_hold_in_both_directions() {
    let file = "rpm_evrcmp.tsv";
    let rows = read_rows(file);
    assert_eq!(rows.len(), 10, "{file} should hold 10 rows");

    let mut failures = check_rows(file, &rows, RpmVersion::parse);
    failures.extend(check_compare(file, &rows, Format::Rpm));
    assert_no_failures(&failures);
}

/// The rpmvercmp rows compare bare strings, so they must hold as the version and as the release.
#[test]
fn rpm_vercmp_rows_hold_as_version_and_as_release() {
    let file = "rpm_vercmp.tsv";
    let rows = read_rows(file);
    assert_eq!(rows.len(), 60, "{file} should hold 60 rows");

    let mut failures = check_rows(file, &rows, RpmVersion::parse);
    failures.extend(check_compare(file, &rows, Format::Rpm));
    let as_release = |release: &str| RpmVersion::parse(&format!("1.0-{release}"));
    failures.extend(check_rows(file, &rows, as_release));
    assert_no_failures(&failures);
}
