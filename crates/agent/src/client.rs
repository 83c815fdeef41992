//! The agent's blocking HTTP client for the server's agent API, and the one place that decides
//! whom the agent trusts.
//!
//! The rule it keeps: over HTTPS the agent trusts exactly one root, the Patchwarden CA whose
//! SHA-256 fingerprint the enrolment token carries. At enrolment the CA is fetched from
//! `/api/v1/agent/ca.pem` without verification, checked against the token's fingerprint, and
//! from then on it is the single root for every call, the enrolment itself included. Plain HTTP
//! is used only when the token carries no fingerprint and the server is a loopback address;
//! anything else is refused before a connection is made. No proxy is used and no redirect is
//! followed.
//!
//! Every call sends the protocol version header. Every error names the method, the URL and what
//! happened, and keeps the server's own message from its JSON error.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use patchwarden_protocol::{
    CheckIn, CheckInAnswer, EnrolAnswer, EnrolRequest, Inventory, JobReport, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION, VERSION_HEADER,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use ureq::http::{self, Method, Uri};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::state::{AgentState, Credential, der_fingerprint, pem_certificate_der};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one whole call may take (an inventory upload on a slow link included).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// The most bytes read of a CA certificate or an error answer.
const SMALL_ANSWER_BYTES: u64 = 64 * 1024;

/// A call to the server failed, or was not made because it would not be safe.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server URL '{url}' {problem}")]
    BadUrl { url: String, problem: String },
    #[error(
        "refusing plain HTTP to {url}: without TLS the agent talks only to a loopback address \
         (127.0.0.0/8, ::1, localhost); use the server's https:// URL with a token that carries \
         its CA fingerprint"
    )]
    PlainHttpNotLoopback { url: String },
    #[error(
        "the enrolment token carries a CA fingerprint, so the server speaks HTTPS: use an \
         https:// URL instead of {url}"
    )]
    FingerprintOverHttp { url: String },
    #[error(
        "the enrolment token carries no CA fingerprint, so the agent has no CA to pin for {url}; \
         ask for a token from the server that serves this URL"
    )]
    NoFingerprint { url: String },
    #[error(
        "the CA served at {url} has fingerprint {served}, but the enrolment token names \
         {expected}: refusing to trust this server"
    )]
    CaMismatch { url: String, served: String, expected: String },
    #[error("the CA served at {url} {problem}")]
    BadCa { url: String, problem: String },
    #[error("{method} {url}: {detail}")]
    Unreachable { method: Method, url: String, detail: String },
    #[error("{method} {url}: the server refused ({status} {code}): {message}")]
    Refused { method: Method, url: String, status: u16, code: String, message: String },
    #[error("{method} {url}: the server failed ({status}): {message}")]
    Failed { method: Method, url: String, status: u16, message: String },
    #[error("{method} {url}: unexpected answer: {detail}")]
    BadAnswer { method: Method, url: String, detail: String },
}

impl ClientError {
    /// The HTTP status of a refusal or failure.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } | ClientError::Failed { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Worth trying again later: the network, a timeout, or the server's own failure.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. } | ClientError::Failed { .. })
    }
}

/// A server's base URL, checked: http or https, a host, no user, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Without a trailing slash; API paths are appended to it.
    base: String,
    https: bool,
    /// The host without IPv6 brackets.
    host: String,
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let bad = |problem: &str| ClientError::BadUrl {
            url: text.to_owned(),
            problem: problem.to_owned(),
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad("is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(_) | None => return Err(bad("must start with https:// or http://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry a user name or password"));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(bad("must not carry a query or fragment"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let base = text.trim().trim_end_matches('/').to_owned();
        Ok(ServerUrl { base, https, host })
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host is a loopback address, or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(address) => address.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// How the agent will reach a server it enrols with, decided before any connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolTransport {
    /// Plain HTTP to a loopback address.
    PlainLoopback,
    /// HTTPS: fetch the CA, check it has this fingerprint, then trust it alone.
    PinCa { fingerprint: String },
}

/// Decides from the URL and the token's fingerprint how enrolment may talk to the server.
pub fn enrol_transport(
    server: &ServerUrl,
    ca_fingerprint: Option<&str>,
) -> Result<EnrolTransport, ClientError> {
    let url = server.as_str().to_owned();
    match (server.is_https(), ca_fingerprint) {
        (true, Some(fingerprint)) => {
            Ok(EnrolTransport::PinCa { fingerprint: fingerprint.to_ascii_lowercase() })
        }
        (true, None) => Err(ClientError::NoFingerprint { url }),
        (false, Some(_)) => Err(ClientError::FingerprintOverHttp { url }),
        (false, None) if server.is_loopback() => Ok(EnrolTransport::PlainLoopback),
        (false, None) => Err(ClientError::PlainHttpNotLoopback { url }),
    }
}

/// The server's answer to a job report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    /// The server had not seen this report.
    New,
    /// The server had it already.
    Already,
}

#[derive(Deserialize)]
struct RecordedAnswer {
    recorded: Recorded,
}

#[derive(serde::Serialize)]
struct InventoryUpload<'a> {
    hash: &'a str,
    inventory: &'a Inventory,
}

/// A client for one server, trusting what its transport says; with a credential once enrolled.
pub struct ApiClient {
    server: ServerUrl,
    agent: ureq::Agent,
    credential: Option<Credential>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("server", &self.server.as_str())
            .field("credential", &self.credential)
            .finish()
    }
}

impl ApiClient {
    /// A client for an enrolled agent: the server, the pinned CA and the credential from its
    /// state. Checks the transport rule again, since the state's files could have been edited.
    pub fn for_state(state: &AgentState) -> Result<Self, ClientError> {
        let server = ServerUrl::parse(&state.enrolment.server)?;
        let url = server.as_str().to_owned();
        let roots = match (&state.ca_pem, server.is_https()) {
            (Some(pem), true) => {
                let der = pem_certificate_der(pem)
                    .map_err(|problem| ClientError::BadCa { url: url.clone(), problem })?;
                Some(der)
            }
            (None, true) => return Err(ClientError::NoFingerprint { url }),
            (Some(_), false) => return Err(ClientError::FingerprintOverHttp { url }),
            (None, false) if server.is_loopback() => None,
            (None, false) => return Err(ClientError::PlainHttpNotLoopback { url }),
        };
        let agent = http_agent(roots.map(Trust::Pinned).unwrap_or(Trust::PlainOnly));
        Ok(ApiClient { server, agent, credential: Some(state.credential.clone()) })
    }

    /// A client for enrolment: over HTTPS, fetches and checks the CA first. Returns the CA's
    /// PEM too, for the state directory.
    pub fn for_enrolment(
        server: &ServerUrl,
        transport: &EnrolTransport,
    ) -> Result<(Self, Option<String>), ClientError> {
        match transport {
            EnrolTransport::PlainLoopback => {
                let agent = http_agent(Trust::PlainOnly);
                Ok((ApiClient { server: server.clone(), agent, credential: None }, None))
            }
            EnrolTransport::PinCa { fingerprint } => {
                let (pem, der) = fetch_ca(server, fingerprint)?;
                let agent = http_agent(Trust::Pinned(der));
                Ok((ApiClient { server: server.clone(), agent, credential: None }, Some(pem)))
            }
        }
    }

    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// `POST /api/v1/agent/enrol`.
    pub fn enrol(&self, request: &EnrolRequest) -> Result<EnrolAnswer, ClientError> {
        let answer = self.call(Method::POST, "/api/v1/agent/enrol", Some(json(request)))?;
        answer.json()
    }

    /// `POST /api/v1/agent/check-in`.
    pub fn check_in(&self, check_in: &CheckIn) -> Result<CheckInAnswer, ClientError> {
        let answer = self.call(Method::POST, "/api/v1/agent/check-in", Some(json(check_in)))?;
        answer.json()
    }

    /// `PUT /api/v1/agent/inventory`, with the inventory's hash.
    pub fn put_inventory(&self, hash: &str, inventory: &Inventory) -> Result<(), ClientError> {
        let body = json(&InventoryUpload { hash, inventory });
        self.call(Method::PUT, "/api/v1/agent/inventory", Some(body))?;
        Ok(())
    }

    /// `POST /api/v1/agent/jobs/{id}/report`; either answer means the server has the report.
    pub fn send_report(&self, report: &JobReport) -> Result<Recorded, ClientError> {
        let path = format!("/api/v1/agent/jobs/{}/report", report.job_id);
        let answer = self.call(Method::POST, &path, Some(json(report)))?;
        let recorded: RecordedAnswer = answer.json()?;
        Ok(recorded.recorded)
    }

    /// One call: the version header, the credential when there is one, JSON in and out;
    /// a 4xx or 5xx becomes an error with the server's message.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let url = self.server.join(path);
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
            .header("accept", "application/json");
        if let Some(credential) = &self.credential {
            request = request.header("authorization", format!("Bearer {}", credential.secret()));
        }
        let unreachable = |detail: String| ClientError::Unreachable {
            method: method.clone(),
            url: url.clone(),
            detail,
        };
        let response = match body {
            Some(body) => {
                let request = request
                    .header("content-type", "application/json")
                    .body(body)
                    .map_err(|err| unreachable(err.to_string()))?;
                self.agent.run(request)
            }
            None => {
                let request = request.body(()).map_err(|err| unreachable(err.to_string()))?;
                self.agent.run(request)
            }
        };
        let mut response = response.map_err(|err| unreachable(describe(&err)))?;
        let status = response.status().as_u16();
        let limit = if response.status().is_success() {
            MAX_MESSAGE_BYTES as u64
        } else {
            SMALL_ANSWER_BYTES
        };
        let text = response
            .body_mut()
            .with_config()
            .limit(limit)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|err| unreachable(format!("reading the answer: {}", describe(&err))))?;
        if (200..300).contains(&status) {
            return Ok(Answer { method, url, text });
        }
        Err(answer_error(method, url, status, &text))
    }
}

/// A successful answer's text, with what is needed to name it in an error.
struct Answer {
    method: Method,
    url: String,
    text: String,
}

impl Answer {
    fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        serde_json::from_str(&self.text).map_err(|err| ClientError::BadAnswer {
            method: self.method,
            url: self.url,
            detail: err.to_string(),
        })
    }
}

/// `{"error": {"status", "code", "message"}}`, as the server explains a 4xx or 5xx.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    message: String,
}

fn answer_error(method: Method, url: String, status: u16, text: &str) -> ClientError {
    let (code, message) = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => {
            let text = text.trim();
            let shown: String = text.chars().take(300).collect();
            let message = if shown.is_empty() { "(no message)".to_owned() } else { shown };
            (String::new(), message)
        }
    };
    if status >= 500 {
        return ClientError::Failed { method, url, status, message };
    }
    let code = if code.is_empty() { status_word(status).to_owned() } else { code };
    ClientError::Refused { method, url, status, code, message }
}

fn status_word(status: u16) -> &'static str {
    match status {
        400 => "bad-request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not-found",
        409 => "conflict",
        413 => "too-large",
        422 => "invalid",
        _ => "refused",
    }
}

/// Whom a connection trusts.
enum Trust {
    /// No TLS at all: only `http://` URLs work (`https_only` is off, and no root is given).
    PlainOnly,
    /// This CA certificate (DER) as the only root.
    Pinned(Vec<u8>),
    /// Nothing verified: only for fetching the CA, whose fingerprint is then checked.
    Unverified,
}

fn http_agent(trust: Trust) -> ureq::Agent {
    // ureq is built without a crypto provider of its own; ring is this process's provider.
    // An error only says one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let tls = match trust {
        Trust::PlainOnly => {
            TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(Vec::new())))
        }
        Trust::Pinned(der) => TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[Certificate::from_der(&der).to_owned()])),
        Trust::Unverified => TlsConfig::builder().disable_verification(true),
    };
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("patchwarden-agent/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(CALL_TIMEOUT))
        .build();
    ureq::Agent::new_with_config(config)
}

/// Fetches the CA without verification and checks its fingerprint; returns its PEM and DER.
fn fetch_ca(server: &ServerUrl, expected: &str) -> Result<(String, Vec<u8>), ClientError> {
    let url = server.join("/api/v1/agent/ca.pem");
    let agent = http_agent(Trust::Unverified);
    let unreachable =
        |detail: String| ClientError::Unreachable { method: Method::GET, url: url.clone(), detail };
    let request = http::Request::get(&url)
        .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
        .body(())
        .map_err(|err| unreachable(err.to_string()))?;
    let mut response = agent.run(request).map_err(|err| unreachable(describe(&err)))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(SMALL_ANSWER_BYTES)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|err| unreachable(format!("reading the answer: {}", describe(&err))))?;
    if !(200..300).contains(&status) {
        return Err(answer_error(Method::GET, url, status, &text));
    }

    // The one certificate in it must be the one the token names.
    let der = pem_certificate_der(&text)
        .map_err(|problem| ClientError::BadCa { url: url.clone(), problem })?;
    let served = der_fingerprint(&der);
    if served != expected {
        return Err(ClientError::CaMismatch { url, served, expected: expected.to_owned() });
    }
    Ok((text, der))
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail; an empty body would be refused by the server.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A transport error with its causes, as one line.
fn describe(err: &ureq::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.contains("invalid peer certificate") {
        text.push_str(" (the agent trusts only the Patchwarden CA it pinned at enrolment)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_loopback_is_told_apart() {
        let cases = [
            ("http://127.0.0.1:8080", false, true),
            ("http://127.8.9.10:8080/", false, true),
            ("http://[::1]:8080", false, true),
            ("http://localhost:8080", false, true),
            ("http://patchwarden.invalid:8080", false, false),
            ("http://10.0.0.1", false, false),
            ("https://patchwarden.invalid", true, false),
        ];
        for (text, https, loopback) in cases {
            let url = ServerUrl::parse(text).unwrap();
            assert_eq!((url.is_https(), url.is_loopback()), (https, loopback), "{text}");
        }
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1:8080/").unwrap().as_str(),
            "http://127.0.0.1:8080"
        );
        for bad in ["ftp://host", "127.0.0.1:8080", "http://user:pw@host", "https://host/?a=1", ""]
        {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_transport_follows_the_token_and_the_host() {
        let fingerprint = "ab".repeat(32);
        let url = |text| ServerUrl::parse(text).unwrap();
        assert_eq!(
            enrol_transport(&url("http://127.0.0.1:1"), None).unwrap(),
            EnrolTransport::PlainLoopback
        );
        assert_eq!(
            enrol_transport(&url("https://patchwarden.invalid"), Some(&fingerprint)).unwrap(),
            EnrolTransport::PinCa { fingerprint: fingerprint.clone() }
        );
        let refusals = [
            ("http://patchwarden.invalid", None, "refusing plain HTTP"),
            ("http://127.0.0.1:1", Some(fingerprint.as_str()), "use an https:// URL"),
            ("https://patchwarden.invalid", None, "carries no CA fingerprint"),
        ];
        for (text, fingerprint, part) in refusals {
            let err = enrol_transport(&url(text), fingerprint).unwrap_err().to_string();
            assert!(err.contains(part), "{text}: {err}");
        }
    }

    #[test]
    fn an_error_answer_keeps_the_servers_message() {
        let body = r#"{"error":{"status":409,"code":"conflict","message":"the token was used"}}"#;
        let err = answer_error(Method::POST, "http://x/api".into(), 409, body);
        assert_eq!(
            err.to_string(),
            "POST http://x/api: the server refused (409 conflict): the token was used"
        );
        let err = answer_error(Method::GET, "http://x/api".into(), 502, "bad gateway\n");
        assert_eq!(err.to_string(), "GET http://x/api: the server failed (502): bad gateway");
        assert!(err.is_transient());
    }
}
