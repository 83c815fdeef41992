//! Check-in load: a real `patchwarden serve` on SQLite over plain HTTP on
//! loopback, 1,000 enrolled endpoints each authenticated with its own
//! credential, and an open-loop load generator in this process that sends
//! check-ins with unchanged inventories at a fixed rate over keep-alive
//! connections, sharing the machine's cores with the server. Latency is
//! measured from each request's scheduled send time, so a server that falls
//! behind shows it in the tail instead of slowing the generator down.
//!
//! The same run measures a bare axum handler that does nothing (this binary
//! started again with `--bare-server`), so the ratio to the HTTP stack alone
//! is known, and the server time of ingesting a changed 2,000-package
//! inventory.
//!
//! `cargo bench -p patchwarden --bench checkin [-- RATE SECONDS ENDPOINTS]`

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patchwarden_protocol::inventory::{
    Facts, InstalledPackage, Inventory, OperatingSystem, PackageManager, PackageState, RebootStatus,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOOTSTRAP: &str = "pwt_bench-bootstrap-token-0123456789abcdef";
const CONNECTIONS: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--bare-server") {
        bare_server();
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let rate = number(0, 10_000);
    let seconds = number(1, 10);
    let endpoints = number(2, 1_000) as usize;

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(run(rate, seconds, endpoints));
}

/// An axum server with one handler that does nothing, on 127.0.0.1:0; prints its port.
fn bare_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/api/v1/agent/check-in",
            axum::routing::post(|| async { axum::Json(json!({})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_patchwarden() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("bench.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwarden"))
        .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--database", &database])
        .env("PATCHWARDEN_DATA_DIR", dir.path())
        .env("PATCHWARDEN_BOOTSTRAP_TOKEN", BOOTSTRAP)
        .env("PATCHWARDEN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let url = first.strip_prefix("Patchwarden is listening on http://").unwrap().to_owned();
    Server { child, addr: url.parse().unwrap(), _dir: Some(dir) }
}

fn start_bare() -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--bare-server")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap().parse().unwrap();
    Server { child, addr, _dir: None }
}

async fn api(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .json(&body)
        .header("x-patchwarden-protocol", "1");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn inventory(packages: usize, bump: usize) -> Inventory {
    let packages = (0..packages)
        .map(|i| InstalledPackage {
            name: format!("package-{i:04}"),
            architecture: "amd64".into(),
            version: if i == 0 { format!("1.0-{bump}") } else { format!("{}.{}-1", i % 7, i % 13) },
            source_name: format!("source-{:04}", i / 3),
            source_version: "1.0-1".into(),
            state: PackageState::Installed,
            held: false,
        })
        .collect();
    let facts = Facts {
        os: OperatingSystem {
            id: "debian".into(),
            id_like: vec![],
            name: "Debian GNU/Linux".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            release: "12".into(),
        },
        architecture: "x86_64".into(),
        running_kernel: "6.1.0-27-amd64".into(),
        newest_installed_kernel: None,
        boot_id: "6e2b1c1e-0000-4000-8000-000000000001".into(),
        reboot: RebootStatus { required: false, reasons: vec![] },
        competing_updaters: vec![],
    };
    Inventory::new(PackageManager::Dpkg, packages, facts, vec![])
}

/// Enrols `count` endpoints, each with a small inventory; returns their credentials and hash.
async fn enrol(base: &str, count: usize) -> (Vec<String>, String) {
    let client = reqwest::Client::new();
    let admin = Some(BOOTSTRAP);
    let created = api(
        &client,
        base,
        admin,
        reqwest::Method::POST,
        "/api/v1/accounts",
        json!({ "name": "officer", "roles": ["security-officer"] }),
    )
    .await;
    let owner = api(
        &client,
        base,
        admin,
        reqwest::Method::POST,
        "/api/v1/accounts",
        json!({ "name": "owner", "roles": ["owner"] }),
    )
    .await;
    let _ = owner;
    let code = created["invitation"]["code"].as_str().unwrap();
    let redeemed = api(
        &client,
        base,
        None,
        reqwest::Method::POST,
        "/api/v1/invitations/redeem",
        json!({ "code": code, "password": "a long enough password" }),
    )
    .await;
    let officer = redeemed["token"].as_str().unwrap().to_owned();
    api(
        &client,
        base,
        Some(&officer),
        reqwest::Method::POST,
        "/api/v1/systems",
        json!({ "name": "fleet", "owner": "owner" }),
    )
    .await;

    let small = inventory(50, 0);
    let hash = small.hash();
    let mut credentials = Vec::with_capacity(count);
    for i in 0..count {
        let token = api(
            &client,
            base,
            Some(&officer),
            reqwest::Method::POST,
            "/api/v1/endpoints/enrolment-tokens",
            json!({ "system": "fleet", "environment": "prod" }),
        )
        .await;
        let enrolled = api(&client, base, None, reqwest::Method::POST, "/api/v1/agent/enrol", json!({ "protocol": 1, "token": token["token"], "hostname": format!("host-{i}"), "machine_id": null })).await;
        let credential = enrolled["credential"].as_str().unwrap().to_owned();
        api(
            &client,
            base,
            Some(&credential),
            reqwest::Method::PUT,
            "/api/v1/agent/inventory",
            json!({ "hash": hash, "inventory": small }),
        )
        .await;
        credentials.push(credential);
    }
    (credentials, hash)
}

fn check_in_bytes(addr: SocketAddr, credential: &str, hash: &str) -> Vec<u8> {
    let body = json!({ "protocol": 1, "inventory_hash": hash, "agent_time": "2026-12-04T12:00:00Z", "last_job_sequence": 0 }).to_string();
    format!(
        "POST /api/v1/agent/check-in HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {credential}\r\nx-patchwarden-protocol: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 response; returns its status.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<u16> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).ok()?;
            let status: u16 = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            if buffer.len() >= total {
                buffer.drain(..total);
                return Some(status);
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

struct Run {
    sent: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

/// Sends `rate` requests a second for `seconds`, each at its scheduled time, over
/// `CONNECTIONS` keep-alive connections; request `i` uses `requests[i % len]`.
async fn open_loop(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, rate: u64, seconds: u64) -> Run {
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buffer = Vec::new();
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = connection;
            while i < total {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let request = &requests[i % requests.len()];
                let ok = stream.write_all(request).await.is_ok()
                    && read_response(&mut stream, &mut buffer).await == Some(200);
                if ok {
                    latencies.push(due.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                    stream = TcpStream::connect(addr).await.unwrap();
                    buffer.clear();
                }
                i += CONNECTIONS;
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        let (latencies, failed) = task.await.unwrap();
        latencies_us.extend(latencies);
        errors += failed;
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Run { sent: total, errors, elapsed, latencies_us }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn report(name: &str, run: &Run) {
    let done = run.latencies_us.len();
    println!(
        "{name}: {} requests in {:.2} s = {:.0}/s achieved, {} errors; latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        run.sent,
        run.elapsed.as_secs_f64(),
        done as f64 / run.elapsed.as_secs_f64(),
        run.errors,
        percentile(&run.latencies_us, 0.50),
        percentile(&run.latencies_us, 0.99),
        percentile(&run.latencies_us, 0.999),
        percentile(&run.latencies_us, 1.0),
    );
}

async fn inventory_ingest(base: &str, credential: &str) {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for bump in 1..=40 {
        let inventory = inventory(2_000, bump);
        let body = serde_json::to_vec(&json!({ "hash": inventory.hash(), "inventory": inventory }))
            .unwrap();
        let started = Instant::now();
        let response = client
            .put(format!("{base}/api/v1/agent/inventory"))
            .bearer_auth(credential)
            .header("x-patchwarden-protocol", "1")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status().as_u16(), 204);
        times.push(elapsed.as_micros() as u64);
    }
    times.sort_unstable();
    println!(
        "inventory ingest (2,000 packages, one changed each time, round trip on loopback): median {:.2} ms, p90 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.9)
    );
}

async fn run(rate: u64, seconds: u64, endpoints: usize) {
    println!(
        "check-in bench: {rate}/s for {seconds} s, {endpoints} endpoints, {CONNECTIONS} keep-alive connections, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let bare = start_bare();
    let request = format!(
        "POST /api/v1/agent/check-in HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
        bare.addr
    );
    let bare_run = open_loop(bare.addr, Arc::new(vec![request.into_bytes()]), rate, seconds).await;
    drop(bare);

    let server = start_patchwarden();
    let base = format!("http://{}", server.addr);
    let (credentials, hash) = enrol(&base, endpoints).await;
    let requests: Vec<Vec<u8>> =
        credentials.iter().map(|c| check_in_bytes(server.addr, c, &hash)).collect();
    let requests = Arc::new(requests);
    // A short warm-up fills the credential cache as a running fleet would have.
    open_loop(server.addr, requests.clone(), rate.min(2_000), 1).await;
    let checkin_run = open_loop(server.addr, requests, rate, seconds).await;

    report("bare axum handler      ", &bare_run);
    report("patchwarden check-in   ", &checkin_run);
    let ratio =
        percentile(&checkin_run.latencies_us, 0.99) / percentile(&bare_run.latencies_us, 0.99);
    println!("p99 ratio check-in / bare: {ratio:.2}");
    inventory_ingest(&base, &credentials[0]).await;
}
