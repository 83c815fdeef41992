//! A stand-in for the server's agent API, on 127.0.0.1, for the agent's tests and its memory
//! bench: the routes, status codes and JSON shapes of the contract, with every request kept
//! for the test to inspect. It serves plain HTTP, or HTTPS with a certificate chain
//! `[leaf, CA]` issued by a test CA made with rcgen.
//!
//! It checks what the real server checks that the agent could get wrong: the protocol header,
//! the bearer credential, a single-use token, and an inventory whose hash matches its body.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use patchwarden_agent::run::system_clock;
use patchwarden_protocol::{
    CheckIn, CheckInAnswer, EnrolAnswer, EnrolRequest, Environment, Inventory, JobReport,
    PROTOCOL_VERSION, SignedJob, VERSION_HEADER,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use sha2::{Digest, Sha256};

/// What the fake hands out and what it was sent.
#[derive(Debug, Default)]
pub struct Fake {
    /// Enrolment token secrets and whether each was used.
    pub tokens: BTreeMap<String, bool>,
    pub endpoint_id: i64,
    pub credential: String,
    pub signing_key: String,
    pub system: String,
    /// The CA certificate served at `/api/v1/agent/ca.pem`.
    pub ca_pem: Option<String>,
    /// Offered at every check-in until a report for the job arrives.
    pub jobs: Vec<SignedJob>,
    pub interval_seconds: u32,
    /// The inventory hash the server holds.
    pub held_hash: Option<String>,
    /// Answer report calls with 503.
    pub fail_reports: bool,
    /// Answer inventory uploads with this status.
    pub refuse_inventory: Option<StatusCode>,

    pub enrolments: Vec<EnrolRequest>,
    pub check_ins: Vec<CheckIn>,
    pub inventories: Vec<(String, Inventory)>,
    pub reports: Vec<JobReport>,
    /// Requests that came without `x-patchwarden-protocol: 1`.
    pub missing_version: usize,
}

impl Fake {
    fn reported(&self) -> BTreeSet<i64> {
        self.reports.iter().map(|report| report.job_id).collect()
    }
}

type Shared = Arc<Mutex<Fake>>;

/// A running fake; it stops when dropped.
pub struct FakeServer {
    pub url: String,
    shared: Shared,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeServer {
    /// A plain-HTTP fake on 127.0.0.1.
    pub fn http(fake: Fake) -> Self {
        Self::start(fake, None)
    }

    /// An HTTPS fake on 127.0.0.1 presenting `[leaf, CA]` from `ca`, and serving `served_ca`
    /// (normally the same CA) at `/api/v1/agent/ca.pem`.
    pub fn https(mut fake: Fake, ca: &TestCa, served_ca: &TestCa) -> Self {
        fake.ca_pem = Some(served_ca.pem.clone());
        Self::start(fake, Some(ca.server_config()))
    }

    fn start(fake: Fake, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let shared: Shared = Arc::new(Mutex::new(fake));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let app = router(shared.clone());
        let url = match tls {
            None => {
                runtime.spawn(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(listener, app).await.unwrap();
                });
                format!("http://{address}")
            }
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let _context = runtime.enter();
                let server = axum_server::from_tcp_rustls(listener, config).unwrap();
                runtime.spawn(async move {
                    server.serve(app.into_make_service()).await.unwrap();
                });
                format!("https://{address}")
            }
        };
        FakeServer { url, shared, runtime: Some(runtime) }
    }

    pub fn state(&self) -> MutexGuard<'_, Fake> {
        self.shared.lock().unwrap()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/agent/ca.pem", get(ca_pem))
        .route("/api/v1/agent/enrol", post(enrol))
        .route("/api/v1/agent/check-in", post(check_in))
        .route("/api/v1/agent/inventory", put(inventory))
        .route("/api/v1/agent/jobs/{id}/report", post(report))
        .with_state(shared)
}

/// A refused request, answered as the server's JSON error.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        }});
        (self.status, Json(body)).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Refusal {
    Refusal { status, code, message: message.to_owned() }
}

/// The protocol header; a request without it is counted and refused.
fn versioned(fake: &mut Fake, headers: &HeaderMap) -> Result<(), Refusal> {
    let version = headers.get(VERSION_HEADER).and_then(|value| value.to_str().ok());
    if version != Some(&PROTOCOL_VERSION.to_string()) {
        fake.missing_version += 1;
        return Err(refuse(StatusCode::BAD_REQUEST, "protocol", "protocol version 1 expected"));
    }
    Ok(())
}

/// Version and bearer credential.
fn authorised(fake: &mut Fake, headers: &HeaderMap) -> Result<(), Refusal> {
    versioned(fake, headers)?;
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer != Some(fake.credential.as_str()) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unknown endpoint credential",
        ));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Refusal> {
    serde_json::from_str(body)
        .map_err(|err| refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &err.to_string()))
}

async fn ca_pem(State(shared): State<Shared>, headers: HeaderMap) -> Result<String, Refusal> {
    let mut fake = shared.lock().unwrap();
    versioned(&mut fake, &headers)?;
    fake.ca_pem
        .clone()
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "not-found", "no CA on plain HTTP"))
}

async fn enrol(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<EnrolAnswer>, Refusal> {
    let mut fake = shared.lock().unwrap();
    versioned(&mut fake, &headers)?;
    let request: EnrolRequest = parse(&body)?;
    fake.enrolments.push(request.clone());
    match fake.tokens.get(&request.token).copied() {
        None => Err(refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "unknown enrolment token")),
        Some(true) => {
            Err(refuse(StatusCode::CONFLICT, "conflict", "this enrolment token was used already"))
        }
        Some(false) => {
            fake.tokens.insert(request.token, true);
            Ok(Json(EnrolAnswer {
                endpoint_id: fake.endpoint_id,
                credential: fake.credential.clone(),
                signing_key: fake.signing_key.clone(),
                system: fake.system.clone(),
                environment: Environment::Test,
                server_time: system_clock(),
            }))
        }
    }
}

async fn check_in(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<CheckInAnswer>, Refusal> {
    let mut fake = shared.lock().unwrap();
    authorised(&mut fake, &headers)?;
    let check_in: CheckIn = parse(&body)?;
    let send_inventory = fake.held_hash.as_deref() != Some(check_in.inventory_hash.as_str());
    fake.check_ins.push(check_in);
    let reported = fake.reported();
    let jobs = fake
        .jobs
        .iter()
        .filter(|job| job.peek().is_none_or(|(id, _)| !reported.contains(&id)))
        .cloned()
        .collect();
    Ok(Json(CheckInAnswer {
        send_inventory,
        jobs,
        server_time: system_clock(),
        interval_seconds: fake.interval_seconds,
    }))
}

#[derive(serde::Deserialize)]
struct Upload {
    hash: String,
    inventory: Inventory,
}

async fn inventory(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<StatusCode, Refusal> {
    let mut fake = shared.lock().unwrap();
    authorised(&mut fake, &headers)?;
    if let Some(status) = fake.refuse_inventory {
        return Err(refuse(status, "invalid", "the fake refuses inventories"));
    }
    let upload: Upload = parse(&body)?;
    if upload.inventory.hash() != upload.hash {
        return Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "the hash does not match"));
    }
    fake.held_hash = Some(upload.hash.clone());
    fake.inventories.push((upload.hash, upload.inventory));
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(shared): State<Shared>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<serde_json::Value>, Refusal> {
    let mut fake = shared.lock().unwrap();
    authorised(&mut fake, &headers)?;
    if fake.fail_reports {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the fake is down"));
    }
    let report: JobReport = parse(&body)?;
    if report.job_id != id {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "job id differs from the path",
        ));
    }
    let recorded = if fake.reported().contains(&id) { "already" } else { "new" };
    fake.reports.push(report);
    Ok(Json(json!({ "recorded": recorded })))
}

/// A test CA, and server certificates for 127.0.0.1 issued by it.
pub struct TestCa {
    pub pem: String,
    pub der: Vec<u8>,
    pub fingerprint: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let certificate = params.self_signed(&key).unwrap();
        let der = certificate.der().to_vec();
        TestCa {
            pem: certificate.pem(),
            fingerprint: hex::encode(Sha256::digest(&der)),
            der,
            issuer: Issuer::new(ca_params(name), key),
        }
    }

    /// A server configuration presenting `[leaf for 127.0.0.1, this CA]`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![leaf.der().clone(), CertificateDer::from(self.der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Arc::new(config)
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut distinguished = DistinguishedName::new();
    distinguished.push(DnType::OrganizationName, "Patchwarden tests");
    distinguished.push(DnType::CommonName, name);
    params.distinguished_name = distinguished;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}
