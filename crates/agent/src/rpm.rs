//! rpm's database, queried through rpm's own query interface (`rpm -qa --queryformat`).
//!
//! [`QUERY_FORMAT`] prints one tab-separated line per package: name, epoch (`(none)` when
//! unset), version, release, architecture and source rpm file name. [`parse_query_output`] turns
//! that into installed packages: the version is `[epoch:]version-release`, the source name and
//! version come from the source rpm's file name (`bash-5.1.8-6.el9.src.rpm`), carrying the
//! binary's epoch, which rpm gives every package built from one spec. The `gpg-pubkey`
//! pseudo-packages (imported signing keys) are not packages and are left out. rpm has no held
//! state of its own and no half-installed state: every package is `Installed`, never held.

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::{InstalledPackage, PackageState};
use crate::process::{self, Invocation, ProcessError};

/// The `--queryformat` the agent asks rpm for; rpm expands the `\t` and `\n` escapes itself.
pub const QUERY_FORMAT: &str =
    r"%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n";

/// What rpm prints for a tag that is not set.
const NONE: &str = "(none)";

/// A malformed line in rpm's query output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rpm query output line {line}: {problem}")]
pub struct QueryError {
    pub line: usize,
    pub problem: String,
}

/// Querying rpm failed.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Output(#[from] QueryError),
    #[error("rpm database {} does not exist (rpm would create an empty one)", path.display())]
    MissingDatabase { path: PathBuf },
}

/// Which rpm database to read and how to run rpm.
#[derive(Debug, Clone)]
pub struct RpmDatabase {
    /// `--root`: the install root (`/` on a real machine).
    pub root: Option<PathBuf>,
    /// `--dbpath`: the database folder inside the root, when not rpm's default.
    pub dbpath: Option<PathBuf>,
    /// `PATH` for the rpm process.
    pub path: String,
    pub timeout: Duration,
}

impl Default for RpmDatabase {
    fn default() -> Self {
        RpmDatabase {
            root: None,
            dbpath: None,
            path: process::DEFAULT_PATH.to_owned(),
            timeout: process::DEFAULT_TIMEOUT,
        }
    }
}

impl RpmDatabase {
    /// The rpm command that lists every installed package in [`QUERY_FORMAT`].
    pub fn query_invocation(&self) -> Invocation {
        let mut invocation = Invocation::new("rpm")
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .timeout(self.timeout);
        if let Some(root) = &self.root {
            invocation = invocation.arg("--root").arg(root);
        }
        if let Some(dbpath) = &self.dbpath {
            invocation = invocation.arg("--dbpath").arg(dbpath);
        }
        invocation.args(["-qa", "--queryformat", QUERY_FORMAT])
    }

    /// The root, and the database folder inside it, when either is named.
    fn required_paths(&self) -> Vec<PathBuf> {
        let root = self.root.clone().unwrap_or_else(|| PathBuf::from("/"));
        let mut paths = vec![root.clone()];
        if let Some(dbpath) = &self.dbpath {
            paths.push(root.join(dbpath.strip_prefix("/").unwrap_or(dbpath)));
        }
        paths
    }

    /// Every installed package, sorted by name and architecture.
    ///
    /// rpm pointed at a root or database folder that does not exist creates an empty database
    /// and lists nothing, so a missing one is refused before rpm runs.
    pub fn installed_packages(&self) -> Result<Vec<InstalledPackage>, RpmError> {
        for path in self.required_paths() {
            if !path.is_dir() {
                return Err(RpmError::MissingDatabase { path });
            }
        }
        let output = self.query_invocation().run()?;
        Ok(parse_query_output(&output.stdout)?)
    }
}

/// Parses rpm's output for [`QUERY_FORMAT`]; blank lines are skipped.
pub fn parse_query_output(text: &str) -> Result<Vec<InstalledPackage>, QueryError> {
    let mut packages = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |problem: String| QueryError { line: index + 1, problem };
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch, source_rpm] = fields[..] else {
            return Err(error(format!("expected 6 tab-separated fields, found {}", fields.len())));
        };
        if name == "gpg-pubkey" {
            continue;
        }
        if let Some(empty) =
            [("name", name), ("version", version), ("release", release), ("arch", arch)]
                .into_iter()
                .find(|(_, value)| value.is_empty() || *value == NONE)
        {
            return Err(error(format!("package '{name}' has no {}", empty.0)));
        }

        let epoch = match epoch {
            NONE => None,
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits)
            }
            other => return Err(error(format!("epoch '{other}' of '{name}' is not a number"))),
        };
        let full_version = with_epoch(epoch, &format!("{version}-{release}"));
        let (source_name, source_version) = match source_rpm {
            NONE => (name.to_owned(), full_version.clone()),
            file => {
                let (source_name, source_version) = split_source_rpm(file).ok_or_else(|| {
                    error(format!("source rpm '{file}' is not NAME-VERSION-RELEASE.src.rpm"))
                })?;
                (source_name.to_owned(), with_epoch(epoch, &source_version))
            }
        };
        packages.push(InstalledPackage {
            name: name.to_owned(),
            architecture: arch.to_owned(),
            version: full_version,
            source_name,
            source_version,
            state: PackageState::Installed,
            held: false,
        });
    }
    packages.sort_unstable_by(|a, b| {
        (&a.name, &a.architecture, &a.version).cmp(&(&b.name, &b.architecture, &b.version))
    });
    Ok(packages)
}

fn with_epoch(epoch: Option<&str>, version_release: &str) -> String {
    match epoch {
        Some(epoch) => format!("{epoch}:{version_release}"),
        None => version_release.to_owned(),
    }
}

/// `bash-5.1.8-6.el9.src.rpm` to (`bash`, `5.1.8-6.el9`); names may contain `-`, versions not.
fn split_source_rpm(file: &str) -> Option<(&str, String)> {
    let stem = file.strip_suffix(".src.rpm").or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    let parts_present = !name.is_empty() && !version.is_empty() && !release.is_empty();
    parts_present.then(|| (name, format!("{version}-{release}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_output_from_an_install_root_parses() {
        let packages =
            parse_query_output(include_str!("../tests/fixtures/rpm/query-sandbox.out")).unwrap();
        let summary: Vec<String> = packages
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {}",
                    p.name, p.architecture, p.version, p.source_name, p.source_version
                )
            })
            .collect();
        let long = "pw-a-package-with-a-name-long-enough-to-push-the-columns-of-dnf-output-apart";
        assert_eq!(
            summary,
            [
                format!("{long} noarch 1.0-1 {long} 1.0-1"),
                "pw-demo noarch 1.0-1 pw-demo 1.0-1".into(),
                "pw-epoch noarch 2:2.0-3 pw-epoch 2:2.0-3".into(),
                "pw-sub-tools noarch 3.1-2.fc40 pw-sub 3.1-2.fc40".into(),
            ]
        );
        assert!(packages.iter().all(|p| p.state == PackageState::Installed && !p.held));
    }

    #[test]
    fn query_lines_are_read_field_by_field() {
        let cases: [(&str, Option<&str>); 10] = [
            (
                "bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm",
                Some("bash x86_64 5.1.8-6.el9 bash 5.1.8-6.el9"),
            ),
            (
                "kernel-core\t(none)\t5.14.0\t362.8.1.el9_3\tx86_64\tkernel-5.14.0-362.8.1.el9_3.src.rpm",
                Some("kernel-core x86_64 5.14.0-362.8.1.el9_3 kernel 5.14.0-362.8.1.el9_3"),
            ),
            (
                "openssl-libs\t1\t3.0.7\t24.el9\tx86_64\topenssl-3.0.7-24.el9.src.rpm",
                Some("openssl-libs x86_64 1:3.0.7-24.el9 openssl 1:3.0.7-24.el9"),
            ),
            (
                "python3-dnf-plugin-versionlock\t(none)\t4.3.0\t11.el9\tnoarch\tdnf-plugins-core-4.3.0-11.el9.src.rpm",
                Some(
                    "python3-dnf-plugin-versionlock noarch 4.3.0-11.el9 dnf-plugins-core 4.3.0-11.el9",
                ),
            ),
            (
                "nosource\t(none)\t1\t1\tx86_64\tnosource-1-1.nosrc.rpm",
                Some("nosource x86_64 1-1 nosource 1-1"),
            ),
            ("gpg-pubkey\t(none)\tfd431d51\t4ae0493b\t(none)\t(none)", None),
            (
                "bash\t(none)\t5.1.8\t6.el9\tx86_64",
                Some("error: expected 6 tab-separated fields, found 5"),
            ),
            (
                "bash\tone\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm",
                Some("error: epoch 'one' of 'bash' is not a number"),
            ),
            (
                "bash\t(none)\t5.1.8\t(none)\tx86_64\tbash-5.1.8-6.el9.src.rpm",
                Some("error: package 'bash' has no release"),
            ),
            (
                "bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash.src.rpm",
                Some("error: source rpm 'bash.src.rpm' is not NAME-VERSION-RELEASE.src.rpm"),
            ),
        ];
        for (line, expected) in cases {
            let text = format!("\n{line}\n");
            let got = match parse_query_output(&text) {
                Ok(packages) => packages.first().map(|p| {
                    format!(
                        "{} {} {} {} {}",
                        p.name, p.architecture, p.version, p.source_name, p.source_version
                    )
                }),
                Err(error) => {
                    assert_eq!(error.line, 2, "{line}");
                    Some(format!("error: {}", error.problem))
                }
            };
            assert_eq!(got.as_deref(), expected, "{line}");
        }
    }

    #[test]
    fn the_query_command_passes_root_and_dbpath() {
        let database = RpmDatabase {
            root: Some("/srv/root".into()),
            dbpath: Some("/var/lib/rpm".into()),
            ..RpmDatabase::default()
        };
        assert_eq!(
            database.query_invocation().display(),
            r"rpm --root /srv/root --dbpath /var/lib/rpm -qa --queryformat '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n'"
        );
    }
}
