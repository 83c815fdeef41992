//! The agent's state directory: what enrolment gave it and the last job sequence it accepted.
//!
//! The directory holds `enrolment.json` (server, endpoint, system, environment, the server's
//! job-signing key, the CA fingerprint), `credential` (the endpoint's secret alone), `ca.pem`
//! (the pinned Patchwarden CA, for an HTTPS server) and `last-sequence`. The rule it keeps: every
//! file is written whole or not at all (temporary file, fsync, rename, fsync of the directory)
//! with mode 0600 in a directory of mode 0700, and nothing is read from a directory or file that
//! its group or others may read: the agent refuses and says which path and how to fix it.
//!
//! `enrolment.json` is written last at enrolment, so a state directory with it is complete; a
//! missing or corrupt file is named with what to do about it.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use patchwarden_protocol::{Environment, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The state directory when `--state-dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/patchwarden-agent";

/// The format of `enrolment.json` this build writes and reads.
pub const ENROLMENT_FORMAT: u32 = 1;

const ENROLMENT_FILE: &str = "enrolment.json";
const CREDENTIAL_FILE: &str = "credential";
const CA_FILE: &str = "ca.pem";
const SEQUENCE_FILE: &str = "last-sequence";

/// What is wrong with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "not enrolled: {} does not exist; run patchwarden-agent enroll --server URL --token TOKEN \
         --state-dir {}",
        path.display(),
        dir.display()
    )]
    NotEnrolled { path: PathBuf, dir: PathBuf },
    #[error(
        "already enrolled as endpoint {endpoint_id} with {server} (see {}); pass --force to \
         enrol again",
        path.display()
    )]
    AlreadyEnrolled { path: PathBuf, endpoint_id: i64, server: String },
    #[error("{}: {problem}; enrol again with patchwarden-agent enroll", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "{} has mode {mode:04o}: it must be {wanted} by its owner only; fix with: chmod {fix:o} {}",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32, wanted: &'static str, fix: u32 },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

/// `enrolment.json`: who this endpoint is and whom it talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    pub format: u32,
    /// The server's base URL as given to `enroll`.
    pub server: String,
    pub endpoint_id: i64,
    pub system: String,
    pub environment: Environment,
    /// The server's Ed25519 job-signing public key, lowercase hex.
    pub signing_key: String,
    /// Lowercase hex SHA-256 of the pinned CA's DER; `None` for a plain-HTTP loopback server.
    pub ca_fingerprint: Option<String>,
    pub enrolled_at: Timestamp,
}

/// The endpoint's own secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(secret: impl Into<String>) -> Self {
        Credential(secret.into())
    }

    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Everything the agent needs from its state directory to run.
#[derive(Debug, Clone)]
pub struct AgentState {
    pub enrolment: Enrolment,
    pub credential: Credential,
    /// The pinned CA in PEM, present exactly when the enrolment names a fingerprint.
    pub ca_pem: Option<String>,
    pub signing_key: VerifyingKey,
    /// The highest job sequence the agent has accepted; it refuses any job at or below it.
    pub last_sequence: u64,
}

/// The state directory at one path.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory with mode 0700, or checks that an existing one is private. Called
    /// before enrolment talks to the server, so a token is not spent on a directory that cannot
    /// hold the result.
    pub fn prepare(&self, force: bool) -> Result<(), StateError> {
        if !self.path.exists() {
            DirBuilder::new().recursive(true).mode(0o700).create(&self.path).map_err(|source| {
                StateError::Io { action: "create", path: self.path.clone(), source }
            })?;
        }
        self.check_directory()?;
        if force {
            return Ok(());
        }
        match self.read_enrolment() {
            Ok(enrolment) => Err(StateError::AlreadyEnrolled {
                path: self.file(ENROLMENT_FILE),
                endpoint_id: enrolment.endpoint_id,
                server: enrolment.server,
            }),
            Err(StateError::NotEnrolled { .. }) => Ok(()),
            // A corrupt earlier enrolment is replaced only when asked to.
            Err(other) => Err(other),
        }
    }

    /// Writes what enrolment returned: the CA, the credential, the sequence, and last the
    /// enrolment itself. The sequence starts again at 0 for a new endpoint and is kept when
    /// the server recognised this machine as the endpoint it was.
    pub fn save_enrolment(
        &self,
        enrolment: &Enrolment,
        credential: &Credential,
        ca_pem: Option<&str>,
    ) -> Result<(), StateError> {
        self.check_directory()?;
        let same_endpoint =
            self.read_enrolment().is_ok_and(|earlier| earlier.endpoint_id == enrolment.endpoint_id);

        // The CA first: nothing refers to it until enrolment.json does.
        match ca_pem {
            Some(pem) => self.write_private(CA_FILE, pem.as_bytes())?,
            None => self.remove(CA_FILE)?,
        }
        self.write_private(CREDENTIAL_FILE, format!("{}\n", credential.secret()).as_bytes())?;
        if !same_endpoint || self.read_last_sequence().is_err() {
            self.write_private(SEQUENCE_FILE, b"0\n")?;
        }

        // The commit point: a directory with enrolment.json is a complete state.
        let mut json = serde_json::to_vec_pretty(enrolment).map_err(|err| StateError::Corrupt {
            path: self.file(ENROLMENT_FILE),
            problem: format!("cannot encode: {err}"),
        })?;
        json.push(b'\n');
        self.write_private(ENROLMENT_FILE, &json)
    }

    /// Reads and checks the whole state; refuses exposed files and says what is missing.
    pub fn load(&self) -> Result<AgentState, StateError> {
        self.check_directory()?;
        let enrolment = self.read_enrolment()?;
        let signing_key = VerifyingKey::from_hex(&enrolment.signing_key)
            .map_err(|problem| StateError::Corrupt { path: self.file(ENROLMENT_FILE), problem })?;

        // The credential alone, one line.
        let credential_path = self.file(CREDENTIAL_FILE);
        let credential = self.read_private(CREDENTIAL_FILE)?.ok_or_else(|| {
            StateError::Corrupt { path: credential_path.clone(), problem: "missing".to_owned() }
        })?;
        let credential = credential.trim();
        if credential.is_empty() || credential.contains(char::is_whitespace) {
            return Err(StateError::Corrupt {
                path: credential_path,
                problem: "does not hold one credential".to_owned(),
            });
        }

        let ca_pem = self.read_pinned_ca(&enrolment)?;
        let last_sequence = self.read_last_sequence()?;
        Ok(AgentState {
            enrolment,
            credential: Credential::new(credential),
            ca_pem,
            signing_key,
            last_sequence,
        })
    }

    /// Records that the agent accepted the job with `sequence`, before it runs it.
    pub fn record_sequence(&self, sequence: u64) -> Result<(), StateError> {
        self.write_private(SEQUENCE_FILE, format!("{sequence}\n").as_bytes())
    }

    /// The sequence in `last-sequence`.
    pub fn read_last_sequence(&self) -> Result<u64, StateError> {
        let path = self.file(SEQUENCE_FILE);
        let text = self.read_private(SEQUENCE_FILE)?.ok_or_else(|| StateError::Corrupt {
            path: path.clone(),
            problem: "missing: the agent cannot tell which jobs it has already accepted".to_owned(),
        })?;
        text.trim().parse().map_err(|_| StateError::Corrupt {
            path,
            problem: format!("'{}' is not a job sequence number", text.trim()),
        })
    }

    fn read_enrolment(&self) -> Result<Enrolment, StateError> {
        let path = self.file(ENROLMENT_FILE);
        let text = self.read_private(ENROLMENT_FILE)?.ok_or_else(|| StateError::NotEnrolled {
            path: path.clone(),
            dir: self.path.clone(),
        })?;
        let enrolment: Enrolment = serde_json::from_str(&text)
            .map_err(|err| StateError::Corrupt { path: path.clone(), problem: err.to_string() })?;
        if enrolment.format != ENROLMENT_FORMAT {
            return Err(StateError::Corrupt {
                path,
                problem: format!("format {} is not one this agent reads", enrolment.format),
            });
        }
        Ok(enrolment)
    }

    /// `ca.pem`, which must exist and match the enrolment's fingerprint when it names one.
    fn read_pinned_ca(&self, enrolment: &Enrolment) -> Result<Option<String>, StateError> {
        let path = self.file(CA_FILE);
        let Some(fingerprint) = &enrolment.ca_fingerprint else {
            return Ok(None);
        };
        let pem = self.read_private(CA_FILE)?.ok_or_else(|| StateError::Corrupt {
            path: path.clone(),
            problem: "missing, but the enrolment pins a CA".to_owned(),
        })?;
        let found = pem_fingerprint(&pem)
            .map_err(|problem| StateError::Corrupt { path: path.clone(), problem })?;
        if &found != fingerprint {
            return Err(StateError::Corrupt {
                path,
                problem: format!("its fingerprint {found} is not the enrolled CA's {fingerprint}"),
            });
        }
        Ok(Some(pem))
    }

    /// The directory must be a directory that only its owner may enter or read.
    fn check_directory(&self) -> Result<(), StateError> {
        let metadata = fs::metadata(&self.path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StateError::NotEnrolled { path: self.path.clone(), dir: self.path.clone() }
            } else {
                StateError::Io { action: "read", path: self.path.clone(), source }
            }
        })?;
        if !metadata.is_dir() {
            return Err(StateError::NotADirectory { path: self.path.clone() });
        }
        exposed(&self.path, metadata.permissions().mode(), "accessible", 0o700)
    }

    /// A file's text, `None` when it does not exist; refused when its group or others may read it.
    fn read_private(&self, name: &str) -> Result<Option<String>, StateError> {
        let path = self.file(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { action: "open", path, source }),
        };
        let metadata = file.metadata().map_err(|source| StateError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        exposed(&path, metadata.permissions().mode(), "readable", 0o600)?;
        let text = io::read_to_string(file).map_err(|source| StateError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        Ok(Some(text))
    }

    /// Writes `name` whole or not at all, mode 0600.
    fn write_private(&self, name: &str, contents: &[u8]) -> Result<(), StateError> {
        let path = self.file(name);
        let temporary = self.file(&format!(".{name}.tmp"));
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { action, path, source }
        };

        // A temporary file left by a crash is replaced; create_new makes sure the mode applies.
        match fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(source) if source.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io("remove", &temporary)(source)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io("create", &temporary))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io("set the mode of", &temporary))?;
        file.write_all(contents).map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        drop(file);

        // The rename replaces the old file at once; the directory's fsync keeps the rename.
        fs::rename(&temporary, &path).map_err(io("rename into place", &path))?;
        self.sync_directory()
    }

    fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_directory(),
            Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { action: "remove", path, source }),
        }
    }

    fn sync_directory(&self) -> Result<(), StateError> {
        File::open(&self.path).and_then(|dir| dir.sync_all()).map_err(|source| StateError::Io {
            action: "sync",
            path: self.path.clone(),
            source,
        })
    }
}

/// Refuses a mode that gives the group or others any access.
fn exposed(path: &Path, mode: u32, wanted: &'static str, fix: u32) -> Result<(), StateError> {
    if mode & 0o077 != 0 {
        return Err(StateError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o7777,
            wanted,
            fix,
        });
    }
    Ok(())
}

/// Lowercase hex SHA-256 of the DER of the one certificate in `pem`.
pub fn pem_fingerprint(pem: &str) -> Result<String, String> {
    let der = pem_certificate_der(pem)?;
    Ok(der_fingerprint(&der))
}

/// Lowercase hex SHA-256 of a certificate's DER.
pub fn der_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the single certificate in a PEM text; refuses none, several, or anything else.
pub fn pem_certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => {
                certificates.push(certificate.der().to_vec());
            }
            Ok(_) => return Err("holds something other than a certificate".to_owned()),
            Err(err) => return Err(format!("is not PEM: {err}")),
        }
    }
    match certificates.len() {
        1 => Ok(certificates.remove(0)),
        0 => Err("holds no certificate".to_owned()),
        n => Err(format!("holds {n} certificates, not one")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolment() -> Enrolment {
        Enrolment {
            format: ENROLMENT_FORMAT,
            server: "http://127.0.0.1:8080".into(),
            endpoint_id: 3,
            system: "billing".into(),
            environment: Environment::Test,
            signing_key: patchwarden_protocol::JobKey::from_bytes(&[9; 32]).public().to_hex(),
            ca_fingerprint: None,
            enrolled_at: Timestamp::from_second(1_800_000_000).unwrap(),
        }
    }

    #[test]
    fn a_saved_state_loads_back_and_keeps_its_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.prepare(false).unwrap();
        state.save_enrolment(&enrolment(), &Credential::new("pwa_secret"), None).unwrap();
        state.record_sequence(7).unwrap();
        let loaded = state.load().unwrap();
        assert_eq!(loaded.enrolment, enrolment());
        assert_eq!(loaded.credential.secret(), "pwa_secret");
        assert_eq!(loaded.last_sequence, 7);
        assert_eq!(format!("{:?}", loaded.credential), "Credential(<redacted>)");

        // Enrolling the same endpoint again keeps the sequence; another endpoint starts at 0.
        state.save_enrolment(&enrolment(), &Credential::new("pwa_other"), None).unwrap();
        assert_eq!(state.load().unwrap().last_sequence, 7);
        let other = Enrolment { endpoint_id: 4, ..enrolment() };
        state.save_enrolment(&other, &Credential::new("pwa_other"), None).unwrap();
        assert_eq!(state.load().unwrap().last_sequence, 0);
        let leftovers: Vec<_> = fs::read_dir(state.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_second_enrolment_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        state.save_enrolment(&enrolment(), &Credential::new("pwa_secret"), None).unwrap();
        let err = state.prepare(false).unwrap_err().to_string();
        assert!(err.contains("already enrolled as endpoint 3"), "{err}");
        state.prepare(true).unwrap();
    }

    #[test]
    fn missing_corrupt_and_exposed_state_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let state = StateDir::new(&path);
        let err = state.load().unwrap_err().to_string();
        assert!(err.starts_with("not enrolled:"), "{err}");
        assert!(err.contains("patchwarden-agent enroll"), "{err}");

        state.prepare(false).unwrap();
        state.save_enrolment(&enrolment(), &Credential::new("pwa_secret"), None).unwrap();
        fs::write(path.join("last-sequence"), "seven\n").unwrap();
        let err = state.load().unwrap_err().to_string();
        assert!(err.contains("'seven' is not a job sequence number"), "{err}");
        state.record_sequence(1).unwrap();

        fs::set_permissions(path.join("credential"), fs::Permissions::from_mode(0o640)).unwrap();
        let err = state.load().unwrap_err().to_string();
        assert!(err.contains("credential has mode 0640"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(path.join("credential"), fs::Permissions::from_mode(0o600)).unwrap();

        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let err = state.load().unwrap_err().to_string();
        assert!(err.contains("has mode 0755"), "{err}");
        assert!(err.contains("chmod 700"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();

        let mut file = OpenOptions::new().write(true).open(path.join("enrolment.json")).unwrap();
        file.write_all(b"{ not json").unwrap();
        let err = state.load().unwrap_err().to_string();
        assert!(err.contains("enrolment.json:"), "{err}");
        assert!(err.contains("enrol again"), "{err}");
    }
}
