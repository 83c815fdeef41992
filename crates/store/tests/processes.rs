//! Concurrent transitions of one request from separate operating-system
//! processes, as several servers sharing one database would make them: exactly
//! one wins, the others are refused, and the log's chain does not fork.
//!
//! The test binary runs itself as the workers: when `PW_WORKER_URL` is set, the
//! same test function acts as one worker instead of as the coordinator.

mod common;

use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use common::*;
use patchwarden_core::lifecycle::Command;
use patchwarden_core::{RefusalKind, RequestId, State};
use patchwarden_store::{Create, LogFilter, Store, StoreError};

const WORKERS: usize = 6;

/// One worker: wait for the go file, approve, say how it went on stdout.
async fn work(url: &str, request: i64, go: &Path) {
    let store = Store::open(url, Create::Never).await.unwrap();
    while !go.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let result = store
        .apply(OWNER, RequestId(request), Command::Approve { comment: None }, at_hours(2))
        .await;
    let line = match result {
        Ok(_) => "worker-result: approved".to_owned(),
        Err(StoreError::Refused(r)) if r.kind == RefusalKind::Conflict => {
            format!("worker-result: refused: {}", r.message)
        }
        Err(StoreError::Contended(message)) => format!("worker-result: refused: {message}"),
        Err(other) => format!("worker-result: error: {other}"),
    };
    println!("{line}");
}

async fn coordinate(db: TestDb, test_name: &str) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    walk(&store, id, 1).await;
    let before = store.log_entries(&LogFilter::default()).await.unwrap().len();

    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            Process::new(&exe)
                .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
                .env("PW_WORKER_URL", &db.url)
                .env("PW_WORKER_REQUEST", id.0.to_string())
                .env("PW_WORKER_GO", &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Give every worker time to connect, then release them together.
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(&go, b"go").unwrap();

    let mut results = Vec::new();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line =
            stdout.lines().find_map(|l| l.find("worker-result: ").map(|at| l[at..].to_owned()));
        let line = line.unwrap_or_else(|| {
            panic!("worker said nothing: {stdout} {}", String::from_utf8_lossy(&out.stderr))
        });
        results.push(line);
    }
    let approved = results.iter().filter(|l| l.ends_with(": approved")).count();
    let refused = results.iter().filter(|l| l.contains(": refused: ")).count();
    assert_eq!((approved, refused), (1, WORKERS - 1), "{results:#?}");

    let entries = store.log_entries(&LogFilter::default()).await.unwrap();
    assert_eq!(entries.len(), before + 1);
    assert_eq!(entries.iter().filter(|e| e.action == "approve").count(), 1);
    assert!(store.verify_log().await.unwrap().is_intact());
    assert_eq!(store.request(id).await.unwrap().state, State::Approved);
}

/// Runs as a worker when the coordinator started this process, else coordinates.
async fn worker_or_coordinator(db: impl std::future::Future<Output = Option<TestDb>>, name: &str) {
    if let Ok(url) = std::env::var("PW_WORKER_URL") {
        let request = std::env::var("PW_WORKER_REQUEST").unwrap().parse().unwrap();
        let go = std::env::var("PW_WORKER_GO").unwrap();
        work(&url, request, Path::new(&go)).await;
        return;
    }
    if let Some(db) = db.await {
        coordinate(db, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transitions_from_separate_processes_give_one_success() {
    worker_or_coordinator(
        TestDb::postgres(),
        "postgres_transitions_from_separate_processes_give_one_success",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transitions_from_separate_processes_give_one_success() {
    worker_or_coordinator(
        async { Some(TestDb::sqlite()) },
        "sqlite_transitions_from_separate_processes_give_one_success",
    )
    .await;
}
