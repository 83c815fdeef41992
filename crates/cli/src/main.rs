//! The `patchwarden` binary: parses the command line, sends diagnostics to
//! stderr and hands the command to the library.
//!
//! This is the one place that reads the clock; every command receives that
//! instant as `now`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::process::ExitCode;

use clap::Parser;
use patchwarden_cli::args::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();

    // Diagnostics go to stderr, so that stdout carries only the command's answer.
    let diagnostics = patchwarden_cli::diagnostics(&cli);
    let filter = EnvFilter::try_from_env("PATCHWARDEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new(diagnostics.default_level));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if diagnostics.json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }

    #[allow(clippy::disallowed_methods)]
    let now = jiff::Timestamp::now();
    patchwarden_cli::run(cli, now)
}
