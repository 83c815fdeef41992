//! `patchwarden serve`, `patchwarden up` and `patchwarden config example`:
//! starting the server and telling the person at the terminal how to reach it.
//!
//! `up` also enrols and runs this machine's agent, in-process and scan-only
//! (`local_agent`). Both run until SIGINT or SIGTERM, then stop accepting connections and let
//! the requests in flight finish. Secrets printed here (the first admin's and
//! the demo people's invitations) are printed once, to stdout, and never logged.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use patchwarden_server::up::ShownInvitation;
use patchwarden_server::{Config, FirstAdmin, SystemClock, config};

use crate::args::{ServeArgs, UpArgs};
use crate::local_agent::{self, LocalAgent};
use crate::{Outcome, render};

/// Loads the configuration: defaults, the file, the environment, then the flags.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(database) = &args.database {
        config.database.clone_from(database);
    }
    if args.insecure_http {
        config.insecure_http = true;
    }
    config.validate()?;
    Ok(config)
}

pub async fn serve(config: Config) -> anyhow::Result<Outcome> {
    let bootstrap = std::env::var(config::BOOTSTRAP_TOKEN_ENV).ok().map(Into::into);
    let running = patchwarden_server::start(&config, Arc::new(SystemClock), bootstrap).await?;

    let mut out = render::stdout();
    writeln!(out, "Patchwarden is listening on {}", running.url)?;
    if let Some(keys) = &running.keys {
        writeln!(
            out,
            "CA certificate: {} (SHA-256 {})",
            keys.ca_path.display(),
            keys.ca_fingerprint
        )?;
        writeln!(out, "clients trust it with: export PATCHWARDEN_CA={}", keys.ca_path.display())?;
    }
    match &running.first_admin {
        FirstAdmin::Invitation { code, expires_at } => {
            writeln!(out, "\nThe new database has an account 'admin'. Its single-use invitation:")?;
            writeln!(out, "  patchwarden login --invite {}", code.expose())?;
            writeln!(out, "  (expires {})", render::minute(*expires_at))?;
        }
        FirstAdmin::BootstrapToken => {
            writeln!(
                out,
                "\nThe account 'admin' was created with {}.",
                config::BOOTSTRAP_TOKEN_ENV
            )?;
        }
        FirstAdmin::Existing => {}
    }
    out.flush()?;
    drop(out);

    wait_and_stop(running).await
}

pub async fn up(args: &UpArgs) -> anyhow::Result<Outcome> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "up serves plain HTTP and so listens on loopback only; {} is not a loopback address (use `patchwarden serve` for HTTPS)",
            args.listen
        );
    }
    let started = patchwarden_server::up::up(&args.data_dir, args.listen, Arc::new(SystemClock))
        .await
        .with_context(|| format!("cannot start in '{}'", args.data_dir.display()))?;

    let url = started.running.url.clone();
    let agent = if args.no_agent { None } else { local_agent(&started, &args.data_dir).await };

    let mut out = render::stdout();
    writeln!(out, "Patchwarden is running at {url}")?;
    writeln!(out, "data: {} (SQLite); stop with Ctrl-C\n", args.data_dir.display())?;
    writeln!(out, "The system '{}' stands for this machine.", started.system)?;
    if agent.is_some() {
        writeln!(
            out,
            "This machine's agent reports to it (scan-only, every minute): see it with\n  patchwarden endpoint list    and    patchwarden endpoint show 1"
        )?;
    }
    print_invitations(&mut out, &started.invitations)?;
    writeln!(out, "\nIn another terminal:")?;
    writeln!(out, "  export PATCHWARDEN_SERVER={url}")?;
    writeln!(out, "  patchwarden login --invite CODE     # then export PATCHWARDEN_TOKEN=pwt_…")?;
    out.flush()?;
    drop(out);

    let stopped = wait_and_stop(started.running).await;
    if let Some(agent) = agent {
        tokio::task::spawn_blocking(move || agent.stop()).await.ok();
    }
    stopped
}

/// Enrols this machine's agent on first start and starts it; a failure is
/// reported and `up` goes on without it.
async fn local_agent(started: &patchwarden_server::up::Up, data_dir: &Path) -> Option<LocalAgent> {
    let data_dir = data_dir.to_owned();
    let result: anyhow::Result<Option<LocalAgent>> = async {
        if !local_agent::enrolled(&data_dir) {
            let token = patchwarden_server::up::local_enrolment_token(
                &started.running,
                &started.system,
                &SystemClock,
            )
            .await?;
            let url = started.running.url.clone();
            let dir = data_dir.clone();
            tokio::task::spawn_blocking(move || local_agent::enrol(&url, token, &dir)).await??;
        }
        local_agent::start(&data_dir)
    }
    .await;
    match result {
        Ok(agent) => agent,
        Err(err) => {
            eprintln!("warning: this machine's agent does not run: {err:#}");
            None
        }
    }
}

fn print_invitations(out: &mut impl Write, shown: &[ShownInvitation]) -> std::io::Result<()> {
    if shown.is_empty() {
        return writeln!(
            out,
            "Everyone has set a password already; log in with `patchwarden login --name NAME`."
        );
    }
    writeln!(out, "Single-use invitations (each person sets a password and gets an API token):")?;
    for invitation in shown {
        writeln!(
            out,
            "  {:<9} {:<17} patchwarden login --invite {}   (expires {})",
            invitation.name,
            invitation.roles,
            invitation.code.expose(),
            render::minute(invitation.expires_at)
        )?;
    }
    Ok(())
}

/// Serves until SIGINT or SIGTERM, or until the server stops by itself.
async fn wait_and_stop(running: patchwarden_server::Running) -> anyhow::Result<Outcome> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(Outcome::Done)
}

pub fn config_example() -> anyhow::Result<Outcome> {
    let mut out = render::stdout();
    out.write_all(Config::example().as_bytes())?;
    Ok(Outcome::Done)
}
