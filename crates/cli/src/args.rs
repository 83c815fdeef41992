//! The command line: every command, its options and their spelling.
//!
//! Parsing only: what a command does lives in its own module. The words here
//! are the ones users and scripts rely on (DESIGN.md, "Interfaces").

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Patchwarden keeps an organisation's systems patched the way its policy says.
#[derive(Debug, Parser)]
#[command(name = "patchwarden", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and check the control log, offline, straight from the database.
    #[command(subcommand)]
    Log(LogCommand),
    /// See Patchwarden work: one update request walked from draft to closed.
    ///
    /// A missing SQLite file (and its folder) or PostgreSQL database is created;
    /// run again on the same database, it only checks the log.
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the hash chain, the head row and each request's state.
    ///
    /// Exits 0 when the log is intact, 1 when it is not, 2 when the database
    /// cannot be opened or read.
    Verify(VerifyArgs),
    /// Print the log's entries in sequence order.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// The database: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long = "database", value_name = "URL")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
    /// How to print the answer; json is a stable shape for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Only the entries of this update request.
    #[arg(long, value_name = "ID")]
    pub request: Option<i64>,
    /// How to print the answer; json is a stable shape for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
}

/// How a read command prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}
