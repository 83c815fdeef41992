//! How answers are written: to stdout through a writer whose errors are
//! returned, never panicked on, and with instants spelled one way.

use std::io;

use jiff::Timestamp;
use patchwarden_core::State;

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
pub fn states(before: Option<State>, after: Option<State>) -> String {
    match (before, after) {
        (None, None) => "-".to_owned(),
        (None, Some(after)) => format!("-> {after}"),
        (before, after) => {
            let name = |state: Option<State>| state.map_or("-", State::as_str);
            format!("{} -> {}", name(before), name(after))
        }
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
