//! dpkg's database, read directly: the `status` file and the journal in `updates/`.
//!
//! The status file is a list of RFC 822-style stanzas separated by blank lines; a line starting
//! with white space continues the previous field. Only five fields matter here: `Package`,
//! `Status` (`want eflag state`, e.g. `hold ok installed`), `Version`, `Architecture` and
//! `Source` (`name` or `name (version)` when the source version differs). Packages whose state
//! is `not-installed` or `config-files` are not installed and are left out. A package installed
//! for several architectures (multi-arch) has one stanza per architecture and one entry each.
//!
//! dpkg writes each change to `updates/NNNN` before it folds them into `status`; after a crash
//! those journal entries are newer than the status file, so they are applied on top, in order,
//! as dpkg itself does on its next start.
//!
//! Malformed input is an error naming the line, never a panic.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::inventory::{InstalledPackage, PackageState};

/// A malformed stanza in a dpkg database file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct StatusError {
    /// 1-based line number in the file.
    pub line: usize,
    pub problem: String,
}

/// Reading dpkg's database failed.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Malformed { path: PathBuf, source: StatusError },
}

/// One stanza's meaning: a package that is installed (in some state) or one that is not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    name: String,
    architecture: String,
    package: Option<InstalledPackage>,
}

/// Reads `ADMINDIR/status` and applies the journal in `ADMINDIR/updates/`.
pub fn read_database(admindir: &Path) -> Result<Vec<InstalledPackage>, DpkgError> {
    let status_path = admindir.join("status");
    let status = read(&status_path)?;
    let mut records = BTreeMap::new();
    for record in parse_records(&status).map_err(|source| malformed(&status_path, source))? {
        records.insert((record.name.clone(), record.architecture.clone()), record.package);
    }

    // Journal entries are named by a decimal sequence number; anything else is dpkg's scratch.
    for path in journal_files(&admindir.join("updates"))? {
        let text = read(&path)?;
        let journal = parse_journal(&text).map_err(|source| malformed(&path, source))?;
        for record in journal {
            records.insert((record.name, record.architecture), record.package);
        }
    }
    Ok(records.into_values().flatten().collect())
}

/// Parses a whole status file into the installed packages, sorted by name and architecture.
pub fn parse_status(text: &str) -> Result<Vec<InstalledPackage>, StatusError> {
    let mut packages: Vec<InstalledPackage> =
        parse_records(text)?.into_iter().filter_map(|record| record.package).collect();
    packages.sort_unstable_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    Ok(packages)
}

fn read(path: &Path) -> Result<String, DpkgError> {
    fs::read_to_string(path).map_err(|source| DpkgError::Read { path: path.to_owned(), source })
}

fn malformed(path: &Path, source: StatusError) -> DpkgError {
    DpkgError::Malformed { path: path.to_owned(), source }
}

fn journal_files(updates: &Path) -> Result<Vec<PathBuf>, DpkgError> {
    let entries = match fs::read_dir(updates) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DpkgError::Read { path: updates.to_owned(), source }),
    };
    let mut numbered = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DpkgError::Read { path: updates.to_owned(), source })?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
        if let Some(number) = number.and_then(|number| number.parse::<u64>().ok()) {
            numbered.push((number, entry.path()));
        }
    }
    numbered.sort_unstable();
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

/// Every stanza of a status file; a package named twice for one architecture is an error.
fn parse_records(text: &str) -> Result<Vec<Record>, StatusError> {
    let mut records = Vec::new();
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for stanza in Stanzas::new(text) {
        let stanza = stanza?;
        let record = stanza.record()?;
        let key = (
            stanza.field("Package").map_or("", |f| f.value),
            stanza.field("Architecture").map_or("", |f| f.value),
        );
        if let Some(first) = seen.insert(key, stanza.start) {
            return Err(StatusError {
                line: stanza.start,
                problem: format!(
                    "package '{}' for '{}' is already listed at line {first}",
                    key.0, key.1
                ),
            });
        }
        records.push(record);
    }
    Ok(records)
}

/// A journal file: stanzas in the status file's format, later ones overriding earlier ones.
fn parse_journal(text: &str) -> Result<Vec<Record>, StatusError> {
    Stanzas::new(text).map(|stanza| stanza?.record()).collect()
}

/// A field's value (first line, trimmed) and the line it is on.
#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    value: &'a str,
    line: usize,
}

/// The fields of one stanza that the inventory needs.
#[derive(Debug, Default)]
struct Stanza<'a> {
    start: usize,
    package: Option<Field<'a>>,
    status: Option<Field<'a>>,
    version: Option<Field<'a>>,
    architecture: Option<Field<'a>>,
    source: Option<Field<'a>>,
}

impl<'a> Stanza<'a> {
    fn field(&self, name: &str) -> Option<Field<'a>> {
        match name {
            "Package" => self.package,
            "Status" => self.status,
            "Version" => self.version,
            "Architecture" => self.architecture,
            "Source" => self.source,
            _ => None,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<Field<'a>>> {
        const NAMES: [&str; 5] = ["Package", "Status", "Version", "Architecture", "Source"];
        let index = NAMES.iter().position(|known| known.eq_ignore_ascii_case(name))?;
        Some(match index {
            0 => &mut self.package,
            1 => &mut self.status,
            2 => &mut self.version,
            3 => &mut self.architecture,
            _ => &mut self.source,
        })
    }

    fn error(line: usize, problem: impl Into<String>) -> StatusError {
        StatusError { line, problem: problem.into() }
    }

    fn required(&self, name: &str) -> Result<Field<'a>, StatusError> {
        self.field(name)
            .ok_or_else(|| Self::error(self.start, format!("stanza has no {name} field")))
    }

    /// What this stanza says about its package.
    fn record(&self) -> Result<Record, StatusError> {
        let package = self.required("Package")?;
        let status = self.required("Status")?;
        let (held, state) = parse_status_field(status)?;
        let architecture = match (self.architecture, state) {
            (Some(field), _) => single_word(field, "Architecture")?,
            // dpkg keeps architecture-less stanzas only for packages that are gone.
            (None, None) => "",
            (None, Some(_)) => {
                return Err(Self::error(self.start, "stanza has no Architecture field"));
            }
        };
        let name = single_word(package, "Package")?;
        let Some(state) = state else {
            return Ok(Record {
                name: name.into(),
                architecture: architecture.into(),
                package: None,
            });
        };

        // An installed package always has a version; its source defaults to itself.
        let version = single_word(self.required("Version")?, "Version")?;
        let (source_name, source_version) = match self.source {
            Some(field) => parse_source(field, version)?,
            None => (name, version),
        };
        let package = InstalledPackage {
            name: name.into(),
            architecture: architecture.into(),
            version: version.into(),
            source_name: source_name.into(),
            source_version: source_version.into(),
            state,
            held,
        };
        Ok(Record { name: name.into(), architecture: architecture.into(), package: Some(package) })
    }
}

/// `want eflag state`: whether the package is held, and its state when it is installed.
fn parse_status_field(field: Field<'_>) -> Result<(bool, Option<PackageState>), StatusError> {
    let words: Vec<&str> = field.value.split_ascii_whitespace().collect();
    let [want, eflag, state] = words[..] else {
        return Err(Stanza::error(
            field.line,
            format!("Status '{}' is not three words (want, error flag, state)", field.value),
        ));
    };
    let held = match want {
        "hold" => true,
        "unknown" | "install" | "deinstall" | "purge" => false,
        other => {
            return Err(Stanza::error(
                field.line,
                format!("unknown selection '{other}' in Status"),
            ));
        }
    };
    if !matches!(eflag, "ok" | "reinstreq") {
        return Err(Stanza::error(field.line, format!("unknown error flag '{eflag}' in Status")));
    }
    let state = match state {
        "not-installed" | "config-files" => None,
        "installed" => Some(PackageState::Installed),
        "half-installed" => Some(PackageState::HalfInstalled),
        "unpacked" => Some(PackageState::Unpacked),
        "half-configured" => Some(PackageState::HalfConfigured),
        "triggers-awaited" => Some(PackageState::TriggersAwaited),
        "triggers-pending" => Some(PackageState::TriggersPending),
        other => {
            return Err(Stanza::error(field.line, format!("unknown state '{other}' in Status")));
        }
    };
    Ok((held, state))
}

/// `Source: name` or `Source: name (version)`; without a version the package's own applies.
fn parse_source<'a>(field: Field<'a>, version: &'a str) -> Result<(&'a str, &'a str), StatusError> {
    let bad = || {
        Stanza::error(
            field.line,
            format!("Source '{}' is not 'name' or 'name (version)'", field.value),
        )
    };
    let Some((name, rest)) = field.value.split_once(' ') else {
        return if field.value.is_empty() { Err(bad()) } else { Ok((field.value, version)) };
    };
    let source_version = rest
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(bad)?
        .trim();
    if name.is_empty() || source_version.is_empty() || source_version.contains(char::is_whitespace)
    {
        return Err(bad());
    }
    Ok((name, source_version))
}

fn single_word<'a>(field: Field<'a>, name: &str) -> Result<&'a str, StatusError> {
    if field.value.is_empty() || field.value.contains(char::is_whitespace) {
        return Err(Stanza::error(
            field.line,
            format!("{name} '{}' is not a single word", field.value),
        ));
    }
    Ok(field.value)
}

/// Splits a status file into stanzas, keeping only the fields the inventory needs.
struct Stanzas<'a> {
    lines: std::iter::Enumerate<std::str::Split<'a, char>>,
}

impl<'a> Stanzas<'a> {
    fn new(text: &'a str) -> Self {
        Stanzas { lines: text.split('\n').enumerate() }
    }
}

impl<'a> Iterator for Stanzas<'a> {
    type Item = Result<Stanza<'a>, StatusError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut stanza: Option<Stanza<'a>> = None;
        for (index, raw) in self.lines.by_ref() {
            let line = index + 1;
            let text = raw.strip_suffix('\r').unwrap_or(raw);

            // A blank line ends the stanza; blank lines between stanzas are skipped.
            if text.trim().is_empty() {
                match stanza {
                    Some(done) => return Some(Ok(done)),
                    None => continue,
                }
            }

            // A continuation line belongs to the previous field, whatever it was.
            if text.starts_with([' ', '\t']) {
                if stanza.is_none() {
                    return Some(Err(Stanza::error(line, "continuation line outside a stanza")));
                }
                continue;
            }

            let Some((name, value)) = text.split_once(':') else {
                return Some(Err(Stanza::error(
                    line,
                    format!("expected 'Field: value', found '{text}'"),
                )));
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Some(Err(Stanza::error(line, format!("'{name}' is not a field name"))));
            }
            let current = stanza.get_or_insert_with(|| Stanza { start: line, ..Stanza::default() });
            if let Some(slot) = current.slot(name) {
                if let Some(first) = slot {
                    let problem = format!("field {name} repeats the one at line {}", first.line);
                    return Some(Err(Stanza::error(line, problem)));
                }
                *slot = Some(Field { value: value.trim(), line });
            }
        }
        stanza.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(name: &str, arch: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            architecture: arch.into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            state: PackageState::Installed,
            held: false,
        }
    }

    #[test]
    fn stanzas_from_this_machine_parse() {
        let packages =
            parse_status(include_str!("../tests/fixtures/dpkg/status-debian12")).unwrap();
        let summary: Vec<String> = packages
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {} {}",
                    p.name,
                    p.architecture,
                    p.version,
                    p.source_name,
                    p.source_version,
                    p.state.as_str()
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "base-files amd64 12.4+deb12u11 base-files 12.4+deb12u11 installed",
                "bash amd64 5.2.15-2+b8 bash 5.2.15-2 installed",
                "libc6 amd64 2.36-9+deb12u14 glibc 2.36-9+deb12u14 installed",
                "tzdata all 2025b-0+deb12u2 tzdata 2025b-0+deb12u2 installed",
                "zlib1g amd64 1:1.2.13.dfsg-1 zlib 1:1.2.13.dfsg-1 installed",
            ]
        );
    }

    #[test]
    fn states_from_a_sandbox_root_parse() {
        let packages = parse_status(include_str!("../tests/fixtures/dpkg/status-states")).unwrap();
        let summary: Vec<(&str, &str, &str, PackageState, bool)> = packages
            .iter()
            .map(|p| {
                (p.name.as_str(), p.architecture.as_str(), p.version.as_str(), p.state, p.held)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("pw-binnmu", "all", "2.0-1+b1", PackageState::Installed, false),
                ("pw-broken", "all", "1.0-1", PackageState::HalfConfigured, false),
                ("pw-held", "all", "1.0-1", PackageState::Installed, true),
                ("pw-multi", "amd64", "1.0-1", PackageState::Installed, false),
                ("pw-multi", "i386", "1.0-1", PackageState::Installed, false),
                ("pw-unpacked", "all", "1.0-1", PackageState::Unpacked, false),
            ]
        );
        let binnmu = &packages[0];
        assert_eq!(
            (binnmu.source_name.as_str(), binnmu.source_version.as_str()),
            ("pw-binsrc", "2.0-1")
        );
        let text = include_str!("../tests/fixtures/dpkg/status-states");
        assert!(text.contains("deinstall ok config-files"), "the fixture keeps a removed package");
    }

    #[test]
    fn the_status_field_decides_held_and_state() {
        let cases = [
            ("install ok installed", Some((false, Some(PackageState::Installed)))),
            ("hold ok installed", Some((true, Some(PackageState::Installed)))),
            ("install ok half-configured", Some((false, Some(PackageState::HalfConfigured)))),
            ("install reinstreq half-installed", Some((false, Some(PackageState::HalfInstalled)))),
            ("install ok unpacked", Some((false, Some(PackageState::Unpacked)))),
            ("install ok triggers-pending", Some((false, Some(PackageState::TriggersPending)))),
            ("install ok triggers-awaited", Some((false, Some(PackageState::TriggersAwaited)))),
            ("deinstall ok config-files", Some((false, None))),
            ("purge ok not-installed", Some((false, None))),
            ("unknown ok not-installed", Some((false, None))),
            ("hold ok not-installed", Some((true, None))),
            ("install ok", None),
            ("install ok installed extra", None),
            ("keep ok installed", None),
            ("install fine installed", None),
            ("install ok removed", None),
        ];
        for (value, expected) in cases {
            let parsed = parse_status_field(Field { value, line: 7 });
            match expected {
                Some(expected) => assert_eq!(parsed, Ok(expected), "{value}"),
                None => assert_eq!(parsed.map_err(|e| e.line), Err(7), "{value}"),
            }
        }
    }

    #[test]
    fn the_source_field_names_the_source_and_its_version() {
        let cases = [
            ("glibc", Some(("glibc", "2.36-9"))),
            ("bash (5.2.15-2)", Some(("bash", "5.2.15-2"))),
            ("zlib (1:1.2.13.dfsg-1)", Some(("zlib", "1:1.2.13.dfsg-1"))),
            ("bash (5.2.15-2", None),
            ("bash 5.2.15-2", None),
            ("bash ()", None),
            ("bash (1 2)", None),
            ("", None),
        ];
        for (value, expected) in cases {
            let parsed = parse_source(Field { value, line: 3 }, "2.36-9");
            match expected {
                Some(expected) => assert_eq!(parsed, Ok(expected), "{value}"),
                None => assert_eq!(parsed.map_err(|e| e.line), Err(3), "{value}"),
            }
        }
    }

    #[test]
    fn malformed_input_is_an_error_naming_the_line() {
        let good = "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n";
        let cases: [(&str, String, usize, &str); 9] = [
            ("no colon", format!("{good}\nPackage b\n"), 6, "expected 'Field: value'"),
            ("leading continuation", format!(" stray\n{good}"), 1, "continuation line outside"),
            (
                "no status",
                "Package: a\nVersion: 1\nArchitecture: all\n".into(),
                1,
                "no Status field",
            ),
            (
                "no package",
                "Status: install ok installed\nVersion: 1\n".into(),
                1,
                "no Package field",
            ),
            (
                "no version",
                format!("\n\n{}", "Package: a\nStatus: install ok installed\nArchitecture: all\n"),
                3,
                "no Version field",
            ),
            (
                "bad state",
                "Package: a\nStatus: install ok gone\n".into(),
                2,
                "unknown state 'gone'",
            ),
            (
                "repeated field",
                "Package: a\nVersion: 1\nVersion: 2\n".into(),
                3,
                "repeats the one at line 2",
            ),
            ("duplicate package", format!("{good}\n{good}"), 6, "already listed at line 1"),
            (
                "version with space",
                "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: 1 2\n"
                    .into(),
                4,
                "not a single word",
            ),
        ];
        for (what, text, line, problem) in cases {
            let error = parse_status(&text).unwrap_err();
            assert_eq!(error.line, line, "{what}: {error}");
            assert!(error.problem.contains(problem), "{what}: {error}");
        }
    }

    #[test]
    fn packages_that_are_not_installed_are_left_out() {
        let text = "Package: gone\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n\n\
                    Package: never\nStatus: purge ok not-installed\n\n\
                    Package: kept\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n";
        assert_eq!(parse_status(text).unwrap(), [installed("kept", "amd64", "2")]);
    }

    #[test]
    fn continuation_lines_crlf_and_extra_blank_lines_are_accepted() {
        let text = "\n\nPackage: a\r\nStatus: install ok installed\r\nDescription: one\r\n more\r\n .\r\n\
                    Architecture: all\r\nVersion: 1.0\r\n\r\n\r\n\nPackage: b\nStatus: install ok installed\n\
                    Conffiles:\n /etc/b.conf 0123 obsolete\nArchitecture: all\nVersion: 2.0";
        assert_eq!(
            parse_status(text).unwrap(),
            [installed("a", "all", "1.0"), installed("b", "all", "2.0")]
        );
    }

    #[test]
    fn the_journal_in_updates_overrides_the_status_file() {
        let admin = tempfile::tempdir().unwrap();
        let stanza = |name: &str, status: &str, version: &str| {
            format!("Package: {name}\nStatus: {status}\nArchitecture: all\nVersion: {version}\n\n")
        };
        let status = [
            stanza("stays", "install ok installed", "1"),
            stanza("upgraded", "install ok installed", "1"),
            stanza("removed", "install ok installed", "1"),
        ]
        .concat();
        fs::write(admin.path().join("status"), status).unwrap();
        fs::create_dir(admin.path().join("updates")).unwrap();
        fs::write(
            admin.path().join("updates/0001"),
            stanza("upgraded", "install ok unpacked", "2"),
        )
        .unwrap();
        fs::write(
            admin.path().join("updates/0002"),
            stanza("upgraded", "install ok installed", "2"),
        )
        .unwrap();
        fs::write(
            admin.path().join("updates/0010"),
            stanza("removed", "deinstall ok config-files", "1"),
        )
        .unwrap();
        fs::write(admin.path().join("updates/tmp.i"), "not a stanza at all").unwrap();

        let packages = read_database(admin.path()).unwrap();
        assert_eq!(packages, [installed("stays", "all", "1"), installed("upgraded", "all", "2")]);
    }

    #[test]
    fn a_malformed_journal_names_its_file_and_line() {
        let admin = tempfile::tempdir().unwrap();
        fs::write(admin.path().join("status"), "").unwrap();
        fs::create_dir(admin.path().join("updates")).unwrap();
        fs::write(admin.path().join("updates/0003"), "Package: a\nbroken line\n").unwrap();
        let error = read_database(admin.path()).unwrap_err().to_string();
        assert!(
            error.ends_with("updates/0003: line 2: expected 'Field: value', found 'broken line'"),
            "{error}"
        );
    }
}
