//! `patchwarden log show`: prints the control log's entries in sequence order,
//! through the server, or offline straight from the database with `--database`.
//!
//! It shows what is stored, whether or not the chain verifies (that is `log
//! verify`'s question). Entries are read a page at a time, so a long log
//! never sits in memory whole. Times are printed exactly as the hash covers
//! them: RFC 3339 in UTC with microseconds.

use std::io::Write;

use patchwarden_core::log::format_instant;
use patchwarden_core::{LogEntry, State};
use patchwarden_store::{LogFilter, Store};
use serde::{Deserialize, Serialize};

use crate::args::{ExportArgs, ExportFormat, Output, ShowArgs};
use crate::client::Api;
use crate::database::{explain, open_as_is};
use crate::{Outcome, render};

/// How many entries one read fetches.
const PAGE: i64 = 500;

pub async fn run(args: &ShowArgs) -> anyhow::Result<Outcome> {
    let Some(url) = &args.database.url else { return through_server(args).await };
    let store = open_as_is(url).await?;
    let shown = show(&store, url, args).await;
    store.close().await;
    shown.map(|()| Outcome::Done)
}

async fn through_server(args: &ShowArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    let mut out = render::stdout();
    let mut printer = Printer { output: args.output, shown: 0 };
    printer.start(&mut out)?;
    let mut after_seq = 0;
    loop {
        let mut path = format!("/api/v1/log?after={after_seq}&limit={PAGE}");
        if let Some(request) = args.request {
            path.push_str(&format!("&request={request}"));
        }
        let answer = api.get(&path).await?;
        let page: Vec<EntryJson> =
            serde_json::from_value(answer["entries"].clone()).map_err(|err| {
                anyhow::anyhow!("the server's log entries are not as expected: {err}")
            })?;
        for entry in &page {
            printer.entry(&mut out, entry)?;
        }
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(PAGE) => after_seq = last.seq,
            _ => break,
        }
    }
    printer.finish(&mut out, args.request)?;
    Ok(Outcome::Done)
}

async fn show(store: &Store, url: &str, args: &ShowArgs) -> anyhow::Result<()> {
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
            printer.entry(&mut out, &EntryJson::from(entry))?;
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

    fn entry(&mut self, out: &mut impl Write, entry: &EntryJson) -> std::io::Result<()> {
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
                    entry.at,
                    entry.actor,
                    entry.action,
                    request,
                    render::states(entry.state_before.as_deref(), entry.state_after.as_deref()),
                    entry.details
                )?;
            }
            Output::Json => {
                let separator = if self.shown == 0 { "\n" } else { ",\n" };
                write!(out, "{separator}")?;
                serde_json::to_writer(&mut *out, entry)?;
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

/// One entry as `--output json` prints it and the API sends it; `details` is
/// the JSON it holds.
#[derive(Debug, Serialize, Deserialize)]
struct EntryJson {
    seq: i64,
    format: u32,
    at: String,
    actor: String,
    action: String,
    request: Option<i64>,
    system: Option<i64>,
    state_before: Option<String>,
    state_after: Option<String>,
    details: serde_json::Value,
    policy_version: u32,
    prev_hash: String,
    hash: String,
}

impl From<&LogEntry> for EntryJson {
    fn from(entry: &LogEntry) -> Self {
        // Details are stored as canonical JSON; text that is not JSON is shown as it is.
        let details = serde_json::from_str(&entry.details)
            .unwrap_or_else(|_| serde_json::Value::String(entry.details.clone()));
        let state = |state: Option<State>| state.map(|s| s.as_str().to_owned());
        Self {
            seq: entry.seq,
            format: entry.format,
            at: format_instant(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            request: entry.request,
            system: entry.system,
            state_before: state(entry.state_before),
            state_after: state(entry.state_after),
            details,
            policy_version: entry.policy_version,
            prev_hash: entry.prev_hash.clone(),
            hash: entry.hash.clone(),
        }
    }
}

/// `patchwarden log export`: the log as the server exports it, to stdout.
pub async fn export(args: &ExportArgs) -> anyhow::Result<Outcome> {
    let format = match args.format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    let mut path = format!("/api/v1/log/export?format={format}");
    if let Some(request) = args.request {
        path.push_str(&format!("&request={request}"));
    }
    let text = Api::new(&args.server)?.get_text(&path).await?;
    let mut out = render::stdout();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(Outcome::Done)
}
