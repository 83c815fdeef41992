//! Parsing at the boundary: what each format refuses, with a message that quotes the value and
//! names the problem, how accepted text is split into its parts, and that `Display` gives back
//! exactly the text that was parsed.

use std::cmp::Ordering;

use patchwarden_versions::{
    DebVersion, Format, Part, Problem, RpmVersion, UnknownFormat, VersionError, compare,
};

/// Deb strings we refuse, each with the whole message it must give.
const DEB_REFUSED: &[(&str, &str)] = &[
    ("", r#"invalid deb version "": the version is empty"#),
    // dpkg's own t-version.c accepts an empty revision, `dpkg --compare-versions` refuses it.
    ("0:0-", r#"invalid deb version "0:0-": the revision after the last '-' is empty"#),
    ("1.0-", r#"invalid deb version "1.0-": the revision after the last '-' is empty"#),
    (":1.0", r#"invalid deb version ":1.0": the epoch before ':' is empty"#),
    ("a:1.0", r#"invalid deb version "a:1.0": the epoch "a" before the first ':' is not a number"#),
    // dpkg reads the epoch with strtol, which takes a sign; Debian Policy's epoch is digits.
    (
        "+1:1.0",
        r#"invalid deb version "+1:1.0": the epoch "+1" before the first ':' is not a number"#,
    ),
    (
        "1.0-1:2",
        r#"invalid deb version "1.0-1:2": the epoch "1.0-1" before the first ':' is not a number"#,
    ),
    (
        "2147483648:1.0",
        r#"invalid deb version "2147483648:1.0": the epoch 2147483648 is larger than 2147483647"#,
    ),
    (
        "99999999999999999999:1",
        "invalid deb version \"99999999999999999999:1\": \
         the epoch 99999999999999999999 is larger than 2147483647",
    ),
    ("1:", r#"invalid deb version "1:": the upstream version is empty"#),
    ("0:-1", r#"invalid deb version "0:-1": the upstream version is empty"#),
    ("-1", r#"invalid deb version "-1": the upstream version is empty"#),
    (
        "a1.0",
        r#"invalid deb version "a1.0": the upstream version must start with a digit, not 'a'"#,
    ),
    (
        "1:~1",
        r#"invalid deb version "1:~1": the upstream version must start with a digit, not '~'"#,
    ),
    (
        "1.0_1",
        "invalid deb version \"1.0_1\": '_' is not allowed in the upstream version \
         (allowed: ASCII letters, digits and . + ~ - :)",
    ),
    (
        "1.0 1",
        "invalid deb version \"1.0 1\": ' ' is not allowed in the upstream version \
         (allowed: ASCII letters, digits and . + ~ - :)",
    ),
    (
        "1\u{e9}",
        "invalid deb version \"1\u{e9}\": '\u{e9}' is not allowed in the upstream version \
         (allowed: ASCII letters, digits and . + ~ - :)",
    ),
    (
        "1.0-1_1",
        "invalid deb version \"1.0-1_1\": '_' is not allowed in the revision \
         (allowed: ASCII letters, digits and . + ~)",
    ),
    (
        "1.0^git1",
        "invalid deb version \"1.0^git1\": '^' is not allowed in the upstream version \
         (allowed: ASCII letters, digits and . + ~ - :)",
    ),
];

/// Rpm strings we refuse although rpm's parseEVR would read them: rpmbuild refuses them in a
/// spec's Version and Release, and an rpm header cannot hold such an epoch.
const RPM_REFUSED: &[(&str, &str)] = &[
    ("", r#"invalid rpm version "": the version is empty"#),
    ("1.0-", r#"invalid rpm version "1.0-": the release after the last '-' is empty"#),
    ("1:-1", r#"invalid rpm version "1:-1": the version is empty"#),
    ("-1", r#"invalid rpm version "-1": the version is empty"#),
    (":1.0", r#"invalid rpm version ":1.0": the epoch before ':' is empty"#),
    ("a:1.0", r#"invalid rpm version "a:1.0": the epoch "a" before the first ':' is not a number"#),
    (
        "4294967296:1.0",
        r#"invalid rpm version "4294967296:1.0": the epoch 4294967296 is larger than 4294967295"#,
    ),
    (
        "1-2-3",
        "invalid rpm version \"1-2-3\": '-' is not allowed in the version \
         (allowed: ASCII letters, digits and . _ + ~ ^ % { })",
    ),
    (
        "1:2:3",
        "invalid rpm version \"1:2:3\": ':' is not allowed in the version \
         (allowed: ASCII letters, digits and . _ + ~ ^ % { })",
    ),
    (
        "1.0-1?el9",
        "invalid rpm version \"1.0-1?el9\": '?' is not allowed in the release \
         (allowed: ASCII letters, digits and . _ + ~ ^ % { })",
    ),
    ("1.0..1", r#"invalid rpm version "1.0..1": ".." is not allowed in the version"#),
    ("1.0-1..el9", r#"invalid rpm version "1.0-1..el9": ".." is not allowed in the release"#),
];

fn check_refusals(format: Format, cases: &[(&str, &str)]) {
    for &(value, message) in cases {
        let refused = match format {
            Format::Deb => value.parse::<DebVersion>().map(drop),
            Format::Rpm => value.parse::<RpmVersion>().map(drop),
        };
        let error = refused.expect_err(value);
        assert_eq!(error.to_string(), message, "message for {value:?}");
        assert_eq!((error.format(), error.value()), (format, value));
        assert_eq!(format.validate(value), Err(error));
    }
}

#[test]
fn deb_refusals_quote_the_value_and_name_the_problem() {
    check_refusals(Format::Deb, DEB_REFUSED);
}

#[test]
fn rpm_refusals_quote_the_value_and_name_the_problem() {
    check_refusals(Format::Rpm, RPM_REFUSED);
}

/// The refusal names the part that is wrong, as data as well as in the message.
#[test]
fn refusals_carry_the_problem_as_data() {
    let problem =
        |result: Result<(), VersionError>| result.map_err(|error| error.problem().clone());

    assert_eq!(problem(Format::Deb.validate("0:0-")), Err(Problem::TrailingHyphen(Part::Revision)));
    assert_eq!(problem(Format::Rpm.validate("1.0-")), Err(Problem::TrailingHyphen(Part::Release)));
    assert_eq!(problem(Format::Deb.validate(":1")), Err(Problem::EpochEmpty));
    assert_eq!(
        problem(Format::Deb.validate("x1")),
        Err(Problem::NoLeadingDigit { part: Part::Upstream, found: 'x' })
    );
    assert_eq!(
        problem(Format::Rpm.validate("1.0-1/2")),
        Err(Problem::BadCharacter { part: Part::Release, found: '/' })
    );
    assert_eq!(problem(Format::Rpm.validate("1..0")), Err(Problem::DoubleDot(Part::Version)));
    assert_eq!(
        problem(Format::Rpm.validate("4294967296:1")),
        Err(Problem::EpochTooLarge { epoch: "4294967296".to_owned(), max: u32::MAX })
    );
}

/// `0:0-` is the one case where libdpkg's parser and `dpkg --compare-versions` disagree.
#[test]
fn empty_revision_in_0_0_is_refused_as_dpkg_compare_versions_refuses_it() {
    let error = DebVersion::parse("0:0-").expect_err("an empty revision must be refused");
    assert_eq!(error.problem(), &Problem::TrailingHyphen(Part::Revision));
    assert_eq!(compare(Format::Deb, "0:0-", "0"), Err(error));
}

/// Accepted deb strings: (text, epoch, upstream, revision).
const DEB_ACCEPTED: &[(&str, u32, &str, Option<&str>)] = &[
    ("0", 0, "0", None),
    ("0:0", 0, "0", None),
    ("00:1.0-1", 0, "1.0", Some("1")),
    ("2147483647:1", 2_147_483_647, "1", None),
    ("1:2.38.1-5+deb12u1", 1, "2.38.1", Some("5+deb12u1")),
    ("3.0.15-1~deb12u1", 0, "3.0.15", Some("1~deb12u1")),
    // The revision starts after the last '-'; the epoch ends at the first ':'.
    ("1.0-1-2", 0, "1.0-1", Some("2")),
    ("1:2:3", 1, "2:3", None),
    ("57:1.2.3abYZ+~-4-5", 57, "1.2.3abYZ+~-4", Some("5")),
    ("0foo", 0, "0foo", None),
    ("1.0-~", 0, "1.0", Some("~")),
    ("1~", 0, "1~", None),
];

/// Accepted rpm strings: (text, epoch, version, release).
const RPM_ACCEPTED: &[(&str, u32, &str, Option<&str>)] = &[
    ("1.0", 0, "1.0", None),
    ("0:1.0", 0, "1.0", None),
    ("4294967295:1", u32::MAX, "1", None),
    ("5.14.0-362.8.1.el9_3", 0, "5.14.0", Some("362.8.1.el9_3")),
    ("1:1.1.1k-12.el8_9", 1, "1.1.1k", Some("12.el8_9")),
    ("1.2.3^git20240101.abc", 0, "1.2.3^git20240101.abc", None),
    ("2.0~rc1", 0, "2.0~rc1", None),
    ("v1.0", 0, "v1.0", None),
    ("+_", 0, "+_", None),
    ("1.0-1%{dist}", 0, "1.0", Some("1%{dist}")),
];

#[test]
fn deb_splits_at_the_first_colon_and_the_last_hyphen() {
    for &(text, epoch, upstream, revision) in DEB_ACCEPTED {
        let version = DebVersion::parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (version.epoch(), version.upstream(), version.revision()),
            (epoch, upstream, revision)
        );
        assert_eq!(Format::Deb.validate(text), Ok(()));
    }
}

#[test]
fn rpm_splits_at_the_first_colon_and_the_last_hyphen() {
    for &(text, epoch, version_part, release) in RPM_ACCEPTED {
        let version = RpmVersion::parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (version.epoch(), version.version(), version.release()),
            (epoch, version_part, release)
        );
        assert_eq!(Format::Rpm.validate(text), Ok(()));
    }
}

/// `Display`, `as_str` and `FromStr` give back the text as written, even where two texts are
/// equal versions (`00:1.09` and `1.9`).
#[test]
fn display_gives_back_the_parsed_text() {
    for &(text, ..) in DEB_ACCEPTED {
        let version: DebVersion = text.parse().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((version.to_string().as_str(), version.as_str()), (text, text));
        assert_eq!(format!("{version:?}"), format!("DebVersion({text:?})"));
    }
    for &(text, ..) in RPM_ACCEPTED {
        let version: RpmVersion = text.parse().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((version.to_string().as_str(), version.as_str()), (text, text));
        assert_eq!(format!("{version:?}"), format!("RpmVersion({text:?})"));
    }

    let (padded, plain) = (DebVersion::parse("00:1.09-0").ok(), DebVersion::parse("1.9").ok());
    assert_eq!(padded, plain);
    assert_eq!(padded.map(|version| version.to_string()).as_deref(), Some("00:1.09-0"));
}

#[test]
fn format_names_parse_and_an_unknown_name_is_refused() {
    assert_eq!("deb".parse::<Format>(), Ok(Format::Deb));
    assert_eq!("rpm".parse::<Format>(), Ok(Format::Rpm));
    assert_eq!((Format::Deb.to_string(), Format::Rpm.as_str()), ("deb".to_owned(), "rpm"));

    let error = "apk".parse::<Format>().expect_err("apk is not a format");
    assert_eq!(error, UnknownFormat("apk".to_owned()));
    assert_eq!(error.to_string(), r#"unknown version format "apk": expected deb or rpm"#);
}

/// `compare` refuses a pair when either side is invalid, naming the invalid side.
#[test]
fn compare_refuses_a_pair_with_an_invalid_side() {
    let left = compare(Format::Deb, "a1", "1").expect_err("a1 is not a deb version");
    assert_eq!(left.value(), "a1");
    let right = compare(Format::Rpm, "1.0", "1.0-").expect_err("1.0- is not an rpm version");
    assert_eq!(right.value(), "1.0-");
    assert_eq!(compare(Format::Rpm, "1.0-1", "1.0"), Ok(Ordering::Greater));
    assert_eq!(compare(Format::Deb, "1.0-1", "1.0"), Ok(Ordering::Greater));
}
