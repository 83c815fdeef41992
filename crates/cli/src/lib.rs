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
mod client;
mod database;
mod demo;
mod duration;
mod endpoints;
mod local_agent;
mod log_show;
mod log_verify;
mod people;
mod policy;
mod render;
mod requests;
mod serve;
mod systems;
mod version;

use std::process::ExitCode;

use jiff::Timestamp;

use crate::args::{
    Cli, Command, ConfigCommand, EndpointCommand, LogCommand, PolicyCommand, SystemCommand,
    TokenCommand, UserCommand, VersionCommand,
};
use crate::client::CallError;

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
/// The exit code for a request the server refused (4xx).
const EXIT_REFUSED: u8 = 3;
/// The exit code for a server that failed (5xx).
const EXIT_SERVER_FAILED: u8 = 4;

/// How a command's diagnostics are logged.
#[derive(Debug)]
pub struct Diagnostics {
    /// The level when `PATCHWARDEN_LOG` does not say.
    pub default_level: &'static str,
    /// One JSON object a line (the server's `log_format = "json"`).
    pub json: bool,
}

/// Servers log what they do; other commands only what goes wrong.
pub fn diagnostics(cli: &Cli) -> Diagnostics {
    match &cli.command {
        Command::Serve(args) => Diagnostics {
            default_level: "info",
            json: serve::load_config(args).is_ok_and(|config| {
                config.log_format == patchwarden_server::config::LogFormat::Json
            }),
        },
        Command::Up(_) => Diagnostics { default_level: "info", json: false },
        _ => Diagnostics { default_level: "warn", json: false },
    }
}

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
            ExitCode::from(exit_code(&err))
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    match err.chain().find_map(|cause| cause.downcast_ref::<CallError>()) {
        Some(CallError::Refused(_)) => EXIT_REFUSED,
        Some(CallError::Failed { .. }) => EXIT_SERVER_FAILED,
        Some(CallError::Unreachable { .. }) | None => EXIT_FAILED,
    }
}

async fn execute(cli: Cli, now: Timestamp) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Up(args) => serve::up(&args).await,
        Command::Serve(args) => serve::serve(serve::load_config(&args)?).await,
        Command::Config(ConfigCommand::Example) => serve::config_example(),
        Command::Login(args) => people::login(&args).await,
        Command::User(UserCommand::Create(args)) => people::user_create(&args).await,
        Command::User(UserCommand::Invite(args)) => people::user_invite(&args).await,
        Command::User(UserCommand::List(args)) => people::user_list(&args).await,
        Command::User(UserCommand::Show(args)) => people::user_show(&args).await,
        Command::User(UserCommand::Whoami(args)) => people::whoami(&args).await,
        Command::Token(TokenCommand::Create(args)) => people::token_create(&args).await,
        Command::Token(TokenCommand::List(args)) => people::token_list(&args).await,
        Command::Token(TokenCommand::Revoke(args)) => people::token_revoke(&args).await,
        Command::System(SystemCommand::Create(args)) => systems::create(&args).await,
        Command::System(SystemCommand::List(args)) => systems::list(&args).await,
        Command::System(SystemCommand::Show(args)) => systems::show(&args).await,
        Command::System(SystemCommand::Documentation(args)) => systems::documentation(&args).await,
        Command::Request(command) => requests::run(&command).await,
        Command::Endpoint(EndpointCommand::EnrollToken(args)) => {
            endpoints::enroll_token(&args).await
        }
        Command::Endpoint(EndpointCommand::List(args)) => endpoints::list(&args).await,
        Command::Endpoint(EndpointCommand::Show(args)) => endpoints::show(&args).await,
        Command::Endpoint(EndpointCommand::Revoke(args)) => endpoints::revoke(&args).await,
        Command::System(SystemCommand::Environment(args)) => endpoints::environment(&args).await,
        Command::Log(LogCommand::Verify(args)) => log_verify::run(&args).await,
        Command::Log(LogCommand::Show(args)) => log_show::run(&args).await,
        Command::Log(LogCommand::Export(args)) => log_show::export(&args).await,
        Command::Policy(PolicyCommand::Show(args)) => policy::show(&args).await,
        Command::Policy(PolicyCommand::History(args)) => policy::history(&args).await,
        Command::Policy(PolicyCommand::Set(args)) => policy::set(&args).await,
        Command::Version(VersionCommand::Compare(args)) => version::compare(&args),
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
