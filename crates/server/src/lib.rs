//! Patchwarden's server: the JSON API over HTTPS, accounts and authorisation,
//! and the server's start-up (database, first admin, keys, listener).
//!
//! Handlers are thin: they authenticate, turn the body into the core's types
//! and call the store, which asks the core. The route table in `routes` builds
//! both the router and the OpenAPI document.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agents;
pub mod api;
pub mod auth;
pub mod body;
pub mod clock;
pub mod config;
pub mod error;
pub mod instant;
pub mod routes;
pub mod secrets;
pub mod signing;
pub mod tls;
pub mod up;
pub mod views;
pub mod work;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use patchwarden_store::{Create, Store};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;

use crate::error::ApiError;
use crate::secrets::Secret;

/// The client's address, as the listener saw it.
pub type Peer = SocketAddr;

/// Settings the handlers read.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub invitation_hours: u32,
    pub body_limit_bytes: usize,
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<ApiSettings>,
    pub agents: Arc<agents::Agents>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes::table() {
        router = router.route(&route.path, route.handler);
    }
    let request_id = HeaderName::from_static("x-request-id");
    router
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", http.method = %req.method(), http.path = %req.uri().path(), request.id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] patchwarden_store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// What the first start of an empty database produced for the admin.
#[derive(Debug)]
pub enum FirstAdmin {
    /// The database had accounts already.
    Existing,
    /// `admin` holds the token from `PATCHWARDEN_BOOTSTRAP_TOKEN`.
    BootstrapToken,
    /// `admin` was created with this single-use invitation.
    Invitation { code: Secret, expires_at: jiff::Timestamp },
}

/// A server that is listening.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// `https://…` or `http://…`.
    pub url: String,
    pub keys: Option<tls::Keys>,
    pub first_admin: FirstAdmin,
    pub state: AppState,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections and waits for the server to finish.
    pub async fn shutdown(self) {
        self.sweeper.abort();
        self.handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        let _ = self.task.await;
        let _ = self.state.agents.flush_seen(&self.state.store).await;
    }

    /// Waits until the server stops by itself.
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ServeError::Other(format!("the server stopped: {err}"))),
            Err(err) => Err(ServeError::Other(format!("the server task failed: {err}"))),
        }
    }
}

/// Makes sure the database has its first admin.
async fn first_admin(
    store: &Store,
    bootstrap_token: Option<&Secret>,
    settings: &ApiSettings,
    now: jiff::Timestamp,
) -> Result<FirstAdmin, ServeError> {
    if let Some(token) = bootstrap_token {
        if token.expose().len() < 32 {
            return Err(ServeError::Other(format!(
                "{} must be at least 32 characters long",
                config::BOOTSTRAP_TOKEN_ENV
            )));
        }
        let created =
            store.bootstrap_admin_with_token(&secrets::digest(token.expose()), now).await?;
        return Ok(if created { FirstAdmin::BootstrapToken } else { FirstAdmin::Existing });
    }
    if !store.accounts().await?.is_empty() {
        return Ok(FirstAdmin::Existing);
    }
    let admin =
        store.create_account("patchwarden", patchwarden_store::NewAccount::admin(), now).await?;
    let code = secrets::generate(secrets::INVITATION_PREFIX)
        .map_err(|e| ServeError::Other(e.to_string()))?;
    let expires_at = now + jiff::SignedDuration::from_hours(i64::from(settings.invitation_hours));
    store
        .issue_invitation("patchwarden", admin.id, &secrets::digest(code.expose()), expires_at, now)
        .await?;
    Ok(FirstAdmin::Invitation { code, expires_at })
}

/// Opens the database, makes sure it has an admin, and starts listening.
pub async fn start(
    config: &Config,
    clock: Arc<dyn Clock>,
    bootstrap_token: Option<Secret>,
) -> Result<Running, ServeError> {
    config.validate()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let patchwarden_store::DatabaseUrl::Sqlite(path) =
        patchwarden_store::DatabaseUrl::parse(&config.database)?
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| ServeError::Other(format!("cannot create '{}': {e}", parent.display())))?;
    }
    let store = Store::open(&config.database, Create::IfMissing).await?;
    store.bootstrap(clock.now()).await?;
    let settings = ApiSettings {
        invitation_hours: config.invitation_hours,
        body_limit_bytes: config.body_limit_bytes,
    };
    let first_admin = first_admin(&store, bootstrap_token.as_ref(), &settings, clock.now()).await?;
    let keys_dir = config.data_dir.join("keys");
    let keys = if config.insecure_http {
        None
    } else {
        Some(tls::load_or_create(&keys_dir, &config.server_names)?)
    };
    let agents = agents::Agents::new(
        signing::load_or_create(&keys_dir)?,
        keys.as_ref().map(|k| k.ca_pem.clone()),
        keys.as_ref().map(|k| k.ca_fingerprint.clone()),
        config.agent_interval_seconds,
        config.enrolment_hours,
    );
    let state = AppState { store, clock, settings: Arc::new(settings), agents: Arc::new(agents) };

    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let handle = axum_server::Handle::new();
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (task, url) = match &keys {
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(|source| ServeError::Listen { addr, source })?
                .handle(handle.clone());
            (tokio::spawn(server.serve(service)), format!("http://{addr}"))
        }
        Some(keys) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(keys.server.clone());
            let server = axum_server::from_tcp_rustls(listener, rustls)
                .map_err(|source| ServeError::Listen { addr, source })?
                .handle(handle.clone());
            (tokio::spawn(server.serve(service)), format!("https://{addr}"))
        }
    };
    let sweeper = tokio::spawn(sweep_loop(state.clone()));
    tracing::info!(%url, "listening");
    Ok(Running { addr, url, keys, first_admin, state, handle, task, sweeper })
}

/// Runs `work::sweep` every `agents::CACHE_SECONDS` until the server stops.
async fn sweep_loop(state: AppState) {
    let period = std::time::Duration::from_secs(agents::CACHE_SECONDS.unsigned_abs());
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = work::sweep(&state, state.clock.now()).await {
            tracing::warn!(error = ?err, "the sweep failed; it runs again shortly");
        }
    }
}
