//! The API client: one HTTP client per command, the caller's token, the
//! Patchwarden CA for HTTPS, and the server's answers turned into values or
//! into errors that keep the server's own message.
//!
//! A refusal (4xx) keeps the status, the message and, on 409, the state and
//! the verbs allowed now; `lib.rs` maps each kind of failure to its exit code.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::args::ServerArgs;

/// How long one call may take before the command gives up.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A failure of a call to the server, by whose fault.
#[derive(Debug)]
pub enum CallError {
    /// The server refused the request: the caller's mistake or lack of rights.
    Refused(Refusal),
    /// The server answered 5xx.
    Failed { status: u16, message: String },
    /// No answer: nothing listens there, TLS failed, or the call timed out.
    Unreachable { url: String, reason: String },
}

/// A 4xx answer, as the server explained it.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub state: Option<String>,
    pub paused: bool,
    pub allowed: Vec<String>,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(refusal) => write!(f, "{refusal}"),
            Self::Failed { status, message } => {
                write!(f, "the server failed ({status}): {message}")
            }
            Self::Unreachable { url, reason } => {
                write!(f, "cannot reach the server at {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for CallError {}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.status {
            401 => "not authenticated",
            403 => "forbidden",
            404 => "not found",
            409 => "not allowed now",
            413 => "too large",
            422 => "invalid",
            _ => "refused",
        };
        write!(f, "{kind}: {}", self.message)?;
        if self.state.is_some() {
            let paused = if self.paused { "the request is paused; " } else { "" };
            if self.allowed.is_empty() {
                write!(f, " ({paused}no step is allowed now)")?;
            } else {
                write!(f, " ({paused}allowed now: {})", self.allowed.join(", "))?;
            }
        }
        Ok(())
    }
}

/// A connection to one server, as one caller.
#[derive(Debug)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client for the server and token in `args`; HTTPS trusts only the CA given.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let base = args.server.trim_end_matches('/').to_owned();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(CALL_TIMEOUT).tls_backend_rustls();
        if base.starts_with("https://") {
            let Some(ca) = &args.ca else {
                anyhow::bail!(
                    "{base} speaks HTTPS: give the Patchwarden CA with --ca FILE or PATCHWARDEN_CA (the server writes it to its data folder's keys/ca.pem)"
                );
            };
            builder = builder.tls_certs_only([read_ca(ca)?]);
        } else if !base.starts_with("http://") {
            anyhow::bail!("the server address '{base}' must start with https:// or http://");
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        let token = args.token.as_ref().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(Self { base, token, http })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None, true).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body), true).await
    }

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(body), true).await
    }

    /// A POST that needs no token: redeeming an invitation, logging in.
    pub async fn post_anonymous(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body), false).await
    }

    /// A GET whose answer is returned as text (CSV exports).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.send(Method::GET, path, None, true).await?;
        let status = response.status();
        let text = response.text().await.map_err(|err| self.unreachable(&err))?;
        if status.is_success() {
            return Ok(text);
        }
        Err(failure(status, serde_json::from_str(&text).unwrap_or(Value::Null), &text).into())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authenticated: bool,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, body, authenticated).await?;
        let status = response.status();
        let text = response.text().await.map_err(|err| self.unreachable(&err))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        Err(failure(status, json, &text).into())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authenticated: bool,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if authenticated {
            let Some(token) = &self.token else {
                anyhow::bail!(
                    "no API token: set PATCHWARDEN_TOKEN (or --token) to the token `patchwarden login` gave you"
                );
            };
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send().await.map_err(|err| self.unreachable(&err))?)
    }

    fn unreachable(&self, err: &reqwest::Error) -> CallError {
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            source = cause.source();
        }
        CallError::Unreachable { url: self.base.clone(), reason }
    }
}

fn read_ca(path: &Path) -> anyhow::Result<reqwest::Certificate> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA certificate '{}'", path.display()))?;
    reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("'{}' is not a PEM certificate", path.display()))
}

/// The error for a non-2xx answer, from the API's JSON error when there is one.
fn failure(status: StatusCode, json: Value, text: &str) -> CallError {
    let error = &json["error"];
    let message = error["message"].as_str().map_or_else(
        || {
            let text = text.trim();
            if text.is_empty() { status.to_string() } else { text.chars().take(300).collect() }
        },
        str::to_owned,
    );
    if status.is_server_error() {
        return CallError::Failed { status: status.as_u16(), message };
    }
    let strings = |value: &Value| -> Vec<String> {
        value.as_array().map_or_else(Vec::new, |items| {
            items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
        })
    };
    CallError::Refused(Refusal {
        status: status.as_u16(),
        message,
        state: error["state"].as_str().map(str::to_owned),
        paused: error["paused"].as_bool().unwrap_or(false),
        allowed: strings(&error["allowed"]),
    })
}

/// Percent-encodes one path segment or query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
