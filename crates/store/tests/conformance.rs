//! The store's conformance suite: every test here runs on SQLite and on
//! PostgreSQL and asserts the same behaviour of both backends.

mod common;

use std::sync::Arc;

use common::*;
use patchwarden_core::lifecycle::Command;
use patchwarden_core::policy::PolicyChange;
use patchwarden_core::text::Text;
use patchwarden_core::{PolicySettings, RefusalKind, RequestId, State};
use patchwarden_store::{Create, FaultPoint, LogFilter, Store, StoreError};

async fn log_len(store: &Store) -> usize {
    store.log_entries(&LogFilter::default()).await.unwrap().len()
}

async fn a_request_walks_from_draft_to_closed_and_the_log_verifies(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    walk(&store, id, steps_to_closed().len()).await;

    let request = store.request(id).await.unwrap();
    assert_eq!(request.state, State::Closed);
    assert_eq!(request.documentation_revision, Some(1));
    let revisions = store.documentation_revisions(cast.system.id).await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].request, Some(id));
    assert_eq!(store.system(cast.system.id).await.unwrap().documentation_revision, 1);

    let entries =
        store.log_entries(&LogFilter { request: Some(id.0), ..Default::default() }).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.first(), Some(&"create"));
    assert_eq!(actions.last(), Some(&"close"));
    assert_eq!(entries.len(), steps_to_closed().len() + 1);
    assert!(entries.iter().all(|e| e.policy_version == 1));

    let verification = store.verify_log().await.unwrap();
    assert!(verification.is_intact(), "{verification:?}");
    assert_eq!(verification.summary.entries as usize, log_len(&store).await);
}

async fn a_refused_command_writes_nothing(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    let before = log_len(&store).await;
    let err = store.apply(OWNER, id, Command::Approve { comment: None }, at_hours(1)).await;
    match err {
        Err(StoreError::Refused(refusal)) => {
            assert_eq!(refusal.kind, RefusalKind::Conflict);
            assert!(refusal.message.contains("it is draft"), "{}", refusal.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(log_len(&store).await, before);
    assert_eq!(store.request(id).await.unwrap().state, State::Draft);
}

async fn a_fault_between_the_state_change_and_its_log_entry_leaves_neither(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    let before = log_len(&store).await;

    store.inject_fault(FaultPoint::BeforeLogAppend);
    let err = store.apply(OFFICER, id, Command::Submit, at_hours(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::InjectedFault(_)), "{err:?}");
    assert_eq!(store.request(id).await.unwrap().state, State::Draft);
    assert_eq!(log_len(&store).await, before);

    // The same for a request being created and for a documentation revision.
    store.inject_fault(FaultPoint::BeforeLogAppend);
    let fields = complete_fields(&store).await;
    assert!(store.create_request(OFFICER, cast.system.id, fields, t0()).await.is_err());
    assert_eq!(store.requests(&Default::default()).await.unwrap().len(), 1);

    walk(&store, id, 12).await;
    store.inject_fault(FaultPoint::BeforeLogAppend);
    let document = Command::Document { summary: Text::parse("summary", "runbook").unwrap() };
    assert!(store.apply(OPERATOR, id, document, at_hours(200)).await.is_err());
    assert_eq!(store.request(id).await.unwrap().state, State::ProdPassed);
    assert!(store.documentation_revisions(cast.system.id).await.unwrap().is_empty());
    assert_eq!(store.system(cast.system.id).await.unwrap().documentation_revision, 0);

    // The fault fired once; the next write succeeds and the chain is whole.
    walk_from(&store, id, 12).await;
    assert_eq!(store.request(id).await.unwrap().state, State::Closed);
    assert!(store.verify_log().await.unwrap().is_intact());
}

async fn walk_from(store: &Store, id: RequestId, skip: usize) {
    for (actor, command, hour) in steps_to_closed().into_iter().skip(skip) {
        store.apply(actor, id, command, at_hours(hour)).await.unwrap();
    }
}

/// Runs `n` approvals of the same request, each through its own store and so
/// its own connections, released together.
async fn concurrent_approvals(db: &TestDb, id: RequestId, n: usize) -> Vec<Result<(), StoreError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let store = Store::open(&db.url, Create::Never).await.unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let result =
                store.apply(OWNER, id, Command::Approve { comment: None }, at_hours(2)).await;
            store.close().await;
            result.map(|_| ())
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn concurrent_transitions_give_one_success_and_the_chain_does_not_fork(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    walk(&store, id, 1).await;
    let before = log_len(&store).await;

    let results = concurrent_approvals(&db, id, 8).await;
    let successes = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(successes, 1, "{results:?}");
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        let refused = matches!(result, StoreError::Refused(r) if r.kind == RefusalKind::Conflict)
            || matches!(result, StoreError::Contended(_));
        assert!(refused, "a losing transition must be refused, got {result:?}");
    }
    assert_eq!(log_len(&store).await, before + 1);
    let verification = store.verify_log().await.unwrap();
    assert!(verification.is_intact(), "{verification:?}");
    assert_eq!(store.request(id).await.unwrap().state, State::Approved);
}

async fn the_log_cannot_be_changed_through_the_database(db: TestDb) {
    let store = db.open().await;
    let _cast = cast(&store).await;
    let sql = [
        "UPDATE control_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM control_log WHERE seq = 2",
    ];
    for statement in sql {
        let result = match db.kind {
            Kind::Postgres => psql(&db.url, statement),
            Kind::Sqlite => sqlite3(&db.url, statement),
        };
        let err = result.expect_err(statement);
        assert!(err.contains("append-only"), "{statement}: {err}");
    }
    assert!(store.verify_log().await.unwrap().is_intact());
}

fn sqlite3(url: &str, sql: &str) -> Result<(), String> {
    let path = url.trim_start_matches("sqlite:");
    let out = std::process::Command::new("sqlite3")
        .args([path, sql])
        .output()
        .map_err(|err| format!("cannot run sqlite3: {err}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if out.status.success() && stderr.is_empty() { Ok(()) } else { Err(stderr) }
}

async fn a_request_state_that_disagrees_with_its_log_is_reported(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let id = file_request(&store, &cast).await;
    let statement = format!("UPDATE requests SET state = 'approved' WHERE id = {}", id.0);
    match db.kind {
        Kind::Postgres => psql(&db.url, &statement).unwrap(),
        Kind::Sqlite => sqlite3(&db.url, &statement).unwrap(),
    }
    let verification = store.verify_log().await.unwrap();
    assert!(verification.chain_break.is_none());
    assert_eq!(
        verification.request_mismatches,
        vec![format!("request {} is stored as 'approved' but its log leaves it 'draft'", id.0)]
    );
}

async fn a_policy_change_makes_a_new_version_that_later_entries_record(db: TestDb) {
    let store = db.open().await;
    let cast = cast(&store).await;
    let change = |settings: PolicySettings| PolicyChange {
        author_name: "Dana Reyes".to_owned(),
        author_position: "CISO".to_owned(),
        reason: Text::parse("reason", "users asked for two days' notice").unwrap(),
        effective: at_hours(1),
        settings,
    };
    let longer = PolicySettings { notice_hours: 48, ..PolicySettings::default() };
    let version = store.change_policy(ADMIN, change(longer.clone()), at_hours(1)).await.unwrap();
    assert_eq!(version.number, 2);
    let err = store.change_policy(ADMIN, change(longer), at_hours(2)).await.unwrap_err();
    assert!(err.to_string().contains("those of version 2 already"), "{err}");

    let history = store.policy_history().await.unwrap();
    assert_eq!(history.iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(history[1].author_position, "CISO");
    assert_eq!(store.policy().await.unwrap().settings.notice_hours, 48);

    let id = file_request(&store, &cast).await;
    let entries =
        store.log_entries(&LogFilter { request: Some(id.0), ..Default::default() }).await.unwrap();
    assert_eq!(entries[0].policy_version, 2);
}

async fn names_are_unique_and_a_refused_create_logs_nothing(db: TestDb) {
    let store = db.open().await;
    let _cast = cast(&store).await;
    let before = log_len(&store).await;
    let new = patchwarden_store::NewAccount {
        name: patchwarden_core::AccountName::parse(OWNER).unwrap(),
        email: None,
        position: None,
        roles: patchwarden_core::Roles::parse_list("operator").unwrap(),
    };
    let err = store.create_account(ADMIN, new, t0()).await.unwrap_err();
    assert_eq!(err.to_string(), "account name 'oscar' is taken");
    assert_eq!(log_len(&store).await, before);
}

async fn reopening_a_database_migrates_nothing_twice(db: TestDb) {
    let store = db.open().await;
    let _cast = cast(&store).await;
    store.close().await;
    let again = db.open().await;
    assert_eq!(again.accounts().await.unwrap().len(), 7);
    assert_eq!(again.policy_history().await.unwrap().len(), 1);
    assert!(again.verify_log().await.unwrap().is_intact());
}

on_both_backends!(
    a_request_walks_from_draft_to_closed_and_the_log_verifies,
    a_refused_command_writes_nothing,
    a_fault_between_the_state_change_and_its_log_entry_leaves_neither,
    concurrent_transitions_give_one_success_and_the_chain_does_not_fork,
    the_log_cannot_be_changed_through_the_database,
    a_request_state_that_disagrees_with_its_log_is_reported,
    a_policy_change_makes_a_new_version_that_later_entries_record,
    names_are_unique_and_a_refused_create_logs_nothing,
    reopening_a_database_migrates_nothing_twice,
);

#[tokio::test]
async fn an_unknown_scheme_is_refused_and_no_file_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw.db");
    let err =
        Store::open(&format!("mysql://{}", path.display()), Create::IfMissing).await.unwrap_err();
    assert!(err.to_string().contains("unknown database URL scheme 'mysql'"), "{err}");
    let err = Store::open(&path.display().to_string(), Create::IfMissing).await.unwrap_err();
    assert!(err.to_string().contains("has no scheme"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn opening_a_missing_sqlite_file_without_create_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let err = Store::open(&format!("sqlite:{}", path.display()), Create::Never).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!path.exists());
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let _cast = cast(&store).await;
    let path = db.url.trim_start_matches("sqlite:");
    let out =
        std::process::Command::new("sqlite3").args([path, "PRAGMA journal_mode"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "wal");
    // A system whose owner does not exist is refused by the foreign key even
    // when the store's own check is bypassed.
    let err = sqlite3(
        &db.url,
        "PRAGMA foreign_keys = ON; INSERT INTO systems (name, owner_id, stakeholders, notify, time_zone, created_at) VALUES ('x', 999, '[]', '[]', 'UTC', 0)",
    )
    .unwrap_err();
    assert!(err.contains("FOREIGN KEY"), "{err}");
}

#[tokio::test]
async fn opening_as_is_changes_nothing_in_the_file() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let _cast = cast(&store).await;
    store.close().await;
    let path = std::path::PathBuf::from(db.url.trim_start_matches("sqlite:"));
    let wal = path.with_extension("db-wal");
    let _ = std::fs::remove_file(&wal);
    let before = std::fs::read(&path).unwrap();

    let reader = Store::open_as_is(&db.url).await.unwrap();
    assert!(reader.verify_log().await.unwrap().is_intact());
    reader.close().await;
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A file that is not a Patchwarden database stays as it was too.
    let empty = path.with_file_name("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let reader = Store::open_as_is(&format!("sqlite:{}", empty.display())).await.unwrap();
    assert!(reader.verify_log().await.is_err());
    reader.close().await;
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_at_once_with_its_cause() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let err = Store::open("postgres://postgres@127.0.0.1:1/postgres", Create::IfMissing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused") || err.contains("Connection"), "{err}");
    assert!(!err.contains("pool timed out"), "{err}");
}
