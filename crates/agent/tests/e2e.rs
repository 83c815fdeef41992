//! End to end: the real server and the real agent binary together.
//!
//! The server runs in this process (`patchwarden_server::start`, plain HTTP on 127.0.0.1, SQLite
//! in a temporary folder, a manual clock started at the real time); each agent is the
//! `patchwarden-agent` binary, enrolled with a token the officer made and run as one process per
//! `run --once`, on a sandbox root of its own (apt and dpkg, or dnf and rpm, from `common`). The
//! people (officer, owner, operator) act over the HTTP API. Nothing here touches the machine's
//! own packages or talks to anything but 127.0.0.1.
//!
//! - `flow`: a request walks through test, approval and production on a test endpoint and a
//!   production endpoint, then a version whose production health check fails is rolled back;
//!   on apt and on dnf. A version published after the test sends the request back to testing.
//! - `kill`: the agent is killed with SIGKILL in each phase of a job (the executor's test hook
//!   halts it there) and started again, on apt and on dnf; the package database is consistent,
//!   the package at the version it should be, and the server has exactly one report.

mod common;
#[path = "e2e/flow.rs"]
mod flow;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/kill.rs"]
mod kill;
