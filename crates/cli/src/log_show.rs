//! `patchwarden log show`: prints the control log's entries in sequence order,
//! offline, straight from the database.
//!
//! It shows what is stored, whether or not the chain verifies (that is `log
//! verify`'s question). Entries are read a page at a time, so a long log
//! never sits in memory whole. Times are printed exactly as the hash covers
//! them: RFC 3339 in UTC with microseconds.

use std::io::Write;

use patchwarden_core::log::format_instant;
use patchwarden_core::{LogEntry, State};
use patchwarden_store::{LogFilter, Store};
use serde::Serialize;

use crate::args::{Output, ShowArgs};
use crate::database::{explain, open_as_is};
use crate::{Outcome, render};

/// How many entries one read fetches.
const PAGE: i64 = 500;

pub async fn run(args: &ShowArgs) -> anyhow::Result<Outcome> {
    let url = &args.database.url;
    let store = open_as_is(url).await?;
    let shown = show(&store, args).await;
    store.close().await;
    shown.map(|()| Outcome::Done)
}

async fn show(store: &Store, args: &ShowArgs) -> anyhow::Result<()> {
    let url = &args.database.url;
    let mut out = render::stdout();
    let mut printer = Printer { output: args.output, shown: 0 };
    printer.start(&mut out)?;
    let mut after_seq = None;
    loop {
        let filter = LogFilter { request: args.request, after_seq, limit: Some(PAGE) };
        let page = store
            .log_entries(&filter)
            .await
            .map_err(|err| explain(err, url, "cannot read the control log of"))?;
        for entry in &page {
            printer.entry(&mut out, entry)?;
        }
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(PAGE) => after_seq = Some(last.seq),
            _ => break,
        }
    }
    printer.finish(&mut out, args.request)?;
    Ok(())
}

struct Printer {
    output: Output,
    shown: u64,
}

impl Printer {
    fn start(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self.output {
            Output::Text => Ok(()),
            Output::Json => write!(out, "["),
        }
    }

    fn entry(&mut self, out: &mut impl Write, entry: &LogEntry) -> std::io::Result<()> {
        match self.output {
            Output::Text => {
                if self.shown == 0 {
                    writeln!(
                        out,
                        "{:>5}  {:<27}  {:<12}  {:<18}  {:<7}  {:<35}  DETAILS",
                        "SEQ", "TIME", "ACTOR", "ACTION", "REQUEST", "STATE"
                    )?;
                }
                let request = entry.request.map_or_else(|| "-".to_owned(), |id| id.to_string());
                writeln!(
                    out,
                    "{:>5}  {:<27}  {:<12}  {:<18}  {:<7}  {:<35}  {}",
                    entry.seq,
                    format_instant(entry.at),
                    entry.actor,
                    entry.action,
                    request,
                    render::states(entry.state_before, entry.state_after),
                    entry.details
                )?;
            }
            Output::Json => {
                let separator = if self.shown == 0 { "\n" } else { ",\n" };
                write!(out, "{separator}")?;
                serde_json::to_writer(&mut *out, &EntryJson::from(entry))?;
            }
        }
        self.shown += 1;
        Ok(())
    }

    fn finish(&self, out: &mut impl Write, request: Option<i64>) -> std::io::Result<()> {
        match self.output {
            Output::Json if self.shown == 0 => writeln!(out, "]"),
            Output::Json => writeln!(out, "\n]"),
            Output::Text if self.shown > 0 => Ok(()),
            Output::Text => match request {
                Some(id) => writeln!(out, "no log entries for request {id}"),
                None => writeln!(out, "the control log is empty"),
            },
        }
    }
}

/// One entry as `--output json` prints it; `details` is the JSON it holds.
#[derive(Debug, Serialize)]
struct EntryJson<'a> {
    seq: i64,
    format: u32,
    at: String,
    actor: &'a str,
    action: &'a str,
    request: Option<i64>,
    system: Option<i64>,
    state_before: Option<&'static str>,
    state_after: Option<&'static str>,
    details: serde_json::Value,
    policy_version: u32,
    prev_hash: &'a str,
    hash: &'a str,
}

impl<'a> From<&'a LogEntry> for EntryJson<'a> {
    fn from(entry: &'a LogEntry) -> Self {
        // Details are stored as canonical JSON; text that is not JSON is shown as it is.
        let details = serde_json::from_str(&entry.details)
            .unwrap_or_else(|_| serde_json::Value::String(entry.details.clone()));
        Self {
            seq: entry.seq,
            format: entry.format,
            at: format_instant(entry.at),
            actor: &entry.actor,
            action: &entry.action,
            request: entry.request,
            system: entry.system,
            state_before: entry.state_before.map(State::as_str),
            state_after: entry.state_after.map(State::as_str),
            details,
            policy_version: entry.policy_version,
            prev_hash: &entry.prev_hash,
            hash: &entry.hash,
        }
    }
}
