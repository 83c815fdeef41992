//! How answers are written: to stdout through a writer whose errors are
//! returned, never panicked on, with instants spelled one way, and for
//! `--output json` as the server's own JSON.

use std::io::{self, Write};

use jiff::Timestamp;
use serde_json::Value;

use crate::Outcome;
use crate::args::Output;

/// Stdout, locked; write errors (a closed pipe) come back as errors.
pub fn stdout() -> io::StdoutLock<'static> {
    io::stdout().lock()
}

/// Whether an error is a reader going away, as with `| head`.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// An instant for people: to the minute, in UTC.
pub fn minute(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// `before -> after`, with `-` for a side the entry does not have.
pub fn states(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (None, None) => "-".to_owned(),
        (None, Some(after)) => format!("-> {after}"),
        (before, after) => format!("{} -> {}", before.unwrap_or("-"), after.unwrap_or("-")),
    }
}

/// A writer that keeps going when its reader has gone away: for commands
/// that change things and must finish whether or not anyone reads along.
#[derive(Debug)]
pub struct Unstoppable<W> {
    inner: W,
    reader_gone: bool,
}

impl<W: io::Write> Unstoppable<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, reader_gone: false }
    }

    fn guard(&mut self, result: io::Result<usize>, len: usize) -> io::Result<usize> {
        match result {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl<W: io::Write> io::Write for Unstoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reader_gone {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.guard(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.reader_gone {
            return Ok(());
        }
        let result = self.inner.flush().map(|()| 0);
        self.guard(result, 0).map(|_| ())
    }
}

/// Prints a server's answer: as pretty JSON, or as text by `text`.
pub fn answer(
    output: Output,
    answer: &Value,
    text: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> anyhow::Result<Outcome> {
    let mut out = stdout();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, answer)?;
            writeln!(out)?;
        }
        Output::Text => text(&mut out)?,
    }
    Ok(Outcome::Done)
}

/// A JSON value for a person: strings bare, `-` for null.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
