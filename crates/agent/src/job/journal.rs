//! The job journal: one JSON file per job, `JOURNAL_DIR/<job id>.json`, holding the job, the
//! phase it reached and everything learnt on the way.
//!
//! The rule it keeps: the journal is on disk before every side effect. Each save writes a
//! temporary file, flushes it to the disk, renames it over the old one and flushes the folder,
//! so after a crash the file is the old journal or the new one, never a mix. A journal is never
//! deleted: once the server has the report it is marked acknowledged and kept for audit.
//!
//! The file carries [`JOURNAL_FORMAT`]; a journal written by an older agent must still load
//! (the test below pins format 1).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use patchwarden_protocol::{CheckResult, Job, JobReport, PackagePin, RebootRecord, StepRecord};
use serde::{Deserialize, Serialize};

/// The journal format this build writes and reads.
pub const JOURNAL_FORMAT: u32 = 1;

/// How far a job got; each phase is saved before the side effect it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The job is taken; nothing checked or changed yet.
    Accepted,
    /// `dpkg --configure -a` is about to run (or ran) on an interrupted dpkg.
    Recovering,
    /// The versions the job replaces are recorded; their package files are being kept.
    VersionsRecorded,
    /// The old package files are kept; the window and the lock are checked once more.
    OldPackagesKept,
    /// The transaction is started (or about to be).
    TransactionStarted,
    /// The transaction ended; the versions are being compared with the targets.
    TransactionFinished,
    CheckingHealth,
    /// The rollback transaction is started (or about to be).
    RollingBack,
    RollbackFinished,
    CheckingHealthAfterRollback,
    /// The work is done and the reboot waits for the window's end.
    RebootScheduled,
    /// A reboot was asked for, with the boot id before it recorded.
    RebootRequested,
    /// The report is final and is sent until the server acknowledges it.
    ReportReady,
    /// The server has the report.
    Acknowledged,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Accepted => "accepted",
            Phase::Recovering => "recovering",
            Phase::VersionsRecorded => "versions-recorded",
            Phase::OldPackagesKept => "old-packages-kept",
            Phase::TransactionStarted => "transaction-started",
            Phase::TransactionFinished => "transaction-finished",
            Phase::CheckingHealth => "checking-health",
            Phase::RollingBack => "rolling-back",
            Phase::RollbackFinished => "rollback-finished",
            Phase::CheckingHealthAfterRollback => "checking-health-after-rollback",
            Phase::RebootScheduled => "reboot-scheduled",
            Phase::RebootRequested => "reboot-requested",
            Phase::ReportReady => "report-ready",
            Phase::Acknowledged => "acknowledged",
        }
    }
}

/// A package the transaction changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    /// `None`: not installed before; a rollback removes it.
    pub before: Option<String>,
    pub after: String,
}

/// An old version's package file, kept for a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    /// How it was obtained: `downloaded`, `repacked`, `from the package cache`.
    pub how: String,
}

/// How a transient run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub ok: bool,
    pub detail: String,
}

/// Why a rollback was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum Failure {
    /// The install (`step` "install") or the versions after it ("verify versions") failed.
    Install {
        step: String,
        detail: String,
    },
    Check {
        check: String,
        detail: String,
    },
}

/// A reboot asked for and not yet confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReboot {
    pub boot_id_before: String,
    /// The newest installed kernel's release, which should be running after the boot.
    pub expected_kernel: Option<String>,
    /// How many times the reboot was asked for.
    pub requests: u32,
}

/// Everything the executor knows about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub job: Job,
    pub phase: Phase,
    pub steps: Vec<StepRecord>,
    /// The versions of the job's packages (and of what the transaction changes) before it.
    pub before: Option<Vec<PackagePin>>,
    pub changes: Vec<Change>,
    /// Packages dpkg held before the transaction; they are held again after it.
    pub held_before: Vec<String>,
    pub kept: Vec<KeptFile>,
    pub recovered_interrupted: bool,
    pub failure: Option<Failure>,
    pub health: Vec<CheckResult>,
    pub config_files_left: Vec<String>,
    pub reboot: Option<PendingReboot>,
    /// The reboot as confirmed after boot.
    pub confirmed_reboot: Option<RebootRecord>,
    /// How each transient run ended, by purpose (`recover`, `install`, `rollback`).
    pub runs: BTreeMap<String, RunResult>,
    pub report: Option<JobReport>,
}

impl Journal {
    /// A new journal for `job`, in phase `Accepted`.
    pub fn new(job: Job) -> Self {
        Journal {
            format: JOURNAL_FORMAT,
            job,
            phase: Phase::Accepted,
            steps: Vec::new(),
            before: None,
            changes: Vec::new(),
            held_before: Vec::new(),
            kept: Vec::new(),
            recovered_interrupted: false,
            failure: None,
            health: Vec::new(),
            config_files_left: Vec::new(),
            reboot: None,
            confirmed_reboot: None,
            runs: BTreeMap::new(),
            report: None,
        }
    }

    pub fn path(dir: &Path, job_id: i64) -> PathBuf {
        dir.join(format!("{job_id}.json"))
    }

    /// The journal of `job_id`, if there is one.
    pub fn load(dir: &Path, job_id: i64) -> io::Result<Option<Journal>> {
        match fs::read(Self::path(dir, job_id)) {
            Ok(bytes) => parse(&bytes).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the journal whole: temporary file, fsync, rename, fsync of the folder.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let path = Self::path(dir, self.job.id);
        let partial = dir.join(format!("{}.json.partial", self.job.id));
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let mut file = File::create(&partial)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&partial, &path)?;
        File::open(dir)?.sync_all()
    }
}

/// A journal file that does not load.
#[derive(Debug)]
pub struct Unreadable {
    pub error: io::Error,
    /// When the file was last written: a stable time for the report about it.
    pub modified: Timestamp,
}

/// Every journal in `dir` by job id, loaded or not.
pub fn load_each(dir: &Path) -> Vec<(i64, Result<Journal, Unreadable>)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut ids: Vec<i64> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| match Journal::load(dir, id) {
            Ok(Some(journal)) => Some((id, Ok(journal))),
            Ok(None) => None,
            Err(error) => {
                let modified = fs::metadata(Journal::path(dir, id))
                    .and_then(|metadata| metadata.modified())
                    .ok()
                    .and_then(|time| Timestamp::try_from(time).ok())
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                Some((id, Err(Unreadable { error, modified })))
            }
        })
        .collect()
}

fn parse(bytes: &[u8]) -> io::Result<Journal> {
    let journal: Journal = serde_json::from_slice(bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    if journal.format != JOURNAL_FORMAT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("journal format {} is not one this agent reads", journal.format),
        ));
    }
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format-1 journal as this agent wrote it halfway through a job.
    const FORMAT_1: &str = r#"{
      "format": 1,
      "job": {
        "format": 1, "id": 42, "endpoint_id": 3, "sequence": 9,
        "issued_at": "2026-12-04T09:00:00Z", "expires_at": "2026-12-04T10:00:00Z",
        "window_end": "2026-12-04T11:00:00Z", "request_id": 5, "environment": "test",
        "install": [{"name": "pw-demo", "version": "1.1-1"}],
        "health_checks": [{"check": {"kind": "tcp-port", "host": "127.0.0.1", "port": 80},
                           "timeout_seconds": 5, "retries": 2, "retry_delay_seconds": 1}],
        "rollback_on_failure": true, "reboot": "if-required",
        "recover_interrupted": false, "keep_local_config": true
      },
      "phase": "transaction-started",
      "steps": [{"step": "check window", "at": "2026-12-04T09:00:01Z", "ok": true, "detail": "ok"}],
      "before": [{"name": "pw-demo", "version": "1.0-1"}],
      "changes": [{"name": "pw-demo", "before": "1.0-1", "after": "1.1-1"},
                  {"name": "pw-new", "before": null, "after": "1.0-1"}],
      "held_before": ["pw-demo"],
      "kept": [{"name": "pw-demo", "version": "1.0-1", "path": "/keep/42/pw-demo/pw-demo_1.0-1_all.deb",
                "how": "downloaded"}],
      "recovered_interrupted": false,
      "failure": {"cause": "check", "check": "tcp 127.0.0.1:80 accepts", "detail": "refused"},
      "health": [],
      "config_files_left": [],
      "reboot": {"boot_id_before": "b1", "expected_kernel": null, "requests": 1},
      "confirmed_reboot": null,
      "runs": {"install": {"ok": true, "detail": "exit 0"}},
      "report": null
    }"#;

    #[test]
    fn a_format_1_journal_still_loads() {
        let journal = parse(FORMAT_1.as_bytes()).unwrap();
        assert_eq!(journal.phase, Phase::TransactionStarted);
        assert_eq!(journal.changes[1].before, None);
        assert_eq!(journal.held_before, ["pw-demo"]);
        assert!(matches!(journal.failure, Some(Failure::Check { .. })));
        assert_eq!(journal.reboot.unwrap().requests, 1);
    }

    #[test]
    fn a_saved_journal_loads_back_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = parse(FORMAT_1.as_bytes()).unwrap();
        journal.save(dir.path()).unwrap();
        journal.phase = Phase::ReportReady;
        journal.save(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path(), 42).unwrap(), Some(journal.clone()));
        assert_eq!(Journal::load(dir.path(), 43).unwrap(), None);
        fs::write(dir.path().join("notes.txt"), "").unwrap();
        fs::write(dir.path().join("7.json"), "{ torn").unwrap();
        let each = load_each(dir.path());
        assert_eq!(each.len(), 2);
        assert!(matches!(&each[0], (7, Err(_))));
        assert!(matches!(&each[1], (42, Ok(loaded)) if *loaded == journal));
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no partial file is left: {names:?}");
    }

    #[test]
    fn phase_names_are_the_serialised_ones() {
        for phase in [Phase::Accepted, Phase::CheckingHealthAfterRollback, Phase::Acknowledged] {
            assert_eq!(serde_json::to_string(&phase).unwrap(), format!("\"{}\"", phase.as_str()));
        }
    }
}
