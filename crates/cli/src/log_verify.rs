//! `patchwarden log verify`: checks the control log, offline straight from the
//! database with `--database` or through the server, and says where it breaks.
//!
//! The database is opened as it is, so checking never changes what is
//! checked. The verdict is the exit code (0 intact, 1 broken); the first
//! entry that does not match is named, with the store's reason, because
//! everything after it can no longer be trusted either. The JSON form is a
//! stable object for scripts and monitoring.

use std::io::{self, Write};

use patchwarden_store::LogVerification;
use serde::{Deserialize, Serialize};

use crate::args::{Output, VerifyArgs};
use crate::client::Api;
use crate::database::{explain, open_as_is};
use crate::{Outcome, render};

pub async fn run(args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let report = match &args.database.url {
        Some(url) => offline(url).await?,
        None => {
            let answer = Api::new(&args.server)?.get("/api/v1/log/verify").await?;
            serde_json::from_value(answer).map_err(|err| {
                anyhow::anyhow!("the server's verification is not as expected: {err}")
            })?
        }
    };

    // Answer: the verdict stands even if nobody is left reading it.
    let mut out = render::stdout();
    let printed = match args.output {
        Output::Text => write_text(&mut out, &report),
        Output::Json => write_json(&mut out, &report),
    };
    match printed {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => return Err(err.into()),
        _ => {}
    }
    Ok(if report.intact { Outcome::Done } else { Outcome::LogBroken })
}

/// Opens the database without migrating, checks, lets go of the database.
async fn offline(url: &str) -> anyhow::Result<Report> {
    let store = open_as_is(url).await?;
    let verification =
        store.verify_log().await.map_err(|err| explain(err, url, "cannot read the control log of"));
    store.close().await;
    Ok(Report::from(&verification?))
}

/// The verification as `--output json` prints it; the field names are stable.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    intact: bool,
    /// Entries that verified, up to the first break if there is one.
    entries: u64,
    /// The last entry that verified (0 and the genesis hash before the first).
    head_seq: i64,
    head_hash: String,
    first_break: Option<Break>,
    head_mismatch: Option<String>,
    request_mismatches: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Break {
    seq: i64,
    reason: String,
}

impl Report {
    pub(crate) fn intact(&self) -> bool {
        self.intact
    }
}

impl From<&LogVerification> for Report {
    fn from(verification: &LogVerification) -> Self {
        Self {
            intact: verification.is_intact(),
            entries: verification.summary.entries,
            head_seq: verification.summary.head.seq,
            head_hash: verification.summary.head.hash.clone(),
            first_break: verification
                .chain_break
                .as_ref()
                .map(|broken| Break { seq: broken.seq, reason: broken.reason.clone() }),
            head_mismatch: verification.head_mismatch.clone(),
            request_mismatches: verification.request_mismatches.clone(),
        }
    }
}

fn entries(n: u64) -> String {
    if n == 1 { "1 entry".to_owned() } else { format!("{n} entries") }
}

pub(crate) fn write_text(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let verified =
        format!("{}, head {} {}", entries(report.entries), report.head_seq, report.head_hash);
    if report.intact {
        return writeln!(out, "log intact: {verified}");
    }
    match &report.first_break {
        Some(broken) => {
            writeln!(
                out,
                "log broken: entry {} is the first that does not match: {}",
                broken.seq, broken.reason
            )?;
            if report.entries == 0 {
                writeln!(out, "verified before it: none")?;
            } else {
                writeln!(out, "verified before it: {verified}")?;
            }
        }
        None => writeln!(
            out,
            "log broken: the chain verifies ({verified}) but the records beside it disagree"
        )?,
    }
    if let Some(mismatch) = &report.head_mismatch {
        writeln!(out, "head row: {mismatch}")?;
    }
    for mismatch in &report.request_mismatches {
        writeln!(out, "request state: {mismatch}")?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    writeln!(out)
}
