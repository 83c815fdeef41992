//! The `patchwarden` command: the admin commands behind the binary.
//!
//! Each command returns an `Outcome` or an error; `run` turns them into the
//! exit codes scripts rely on: 0 done (or the log is intact), 1 the control
//! log does not verify, 2 the command could not do its work (bad usage, a
//! database that cannot be opened or read). Errors are printed once, to
//! stderr, as one line without a backtrace. Nothing here reads the clock:
//! `now` comes from `main`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
mod database;
mod demo;
mod log_show;
mod log_verify;
mod render;

use std::process::ExitCode;

use jiff::Timestamp;

use crate::args::{Cli, Command, LogCommand};

/// What a command found, when it could do its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command did what it was asked; any log it checked is intact.
    Done,
    /// The control log, its head or a request's state does not verify.
    LogBroken,
}

/// The exit code for a command that could not do its work.
const EXIT_FAILED: u8 = 2;

/// Runs one command to its exit code.
pub fn run(cli: Cli, now: Timestamp) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(execute(cli, now)),
        Err(err) => Err(anyhow::Error::new(err).context("cannot start the async runtime")),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::LogBroken) => ExitCode::from(1),
        // A reader that went away (`| head`) is not a failure of the command.
        Err(err) if render::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn execute(cli: Cli, now: Timestamp) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Log(LogCommand::Verify(args)) => log_verify::run(&args).await,
        Command::Log(LogCommand::Show(args)) => log_show::run(&args).await,
        Command::Demo(args) => demo::run(&args, now).await,
    }
}

/// An error and its causes on one line, each cause once: libraries often
/// repeat their source's message in their own.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
