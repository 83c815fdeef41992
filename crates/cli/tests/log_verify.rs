//! The `patchwarden` binary against databases the store made and an attacker
//! then changed behind the server's back: each tamper drops the triggers that
//! keep the log append-only, as an attacker with the database's credentials
//! would, changes rows with `sqlite3` or `psql`, and asserts that `log verify`
//! exits 1 and names the first entry that no longer matches. Also: the exit
//! codes for a good log and for databases that cannot be opened, `log show`,
//! and `demo`.

mod common;

use common::*;
use patchwarden_core::{ChainHead, LogDraft, LogEntry};
use serde_json::{Value, json};

/// Asserts that `log verify` finds the log broken with entry `seq` first, after
/// `verified` good entries, in text and in JSON.
fn assert_broken_at(db: &TestDb, seq: i64, verified: i64, reason: &str) -> Run {
    let run = verify(db, false);
    assert_eq!(run.code, Some(1), "{run:?}");
    let first = run.stdout.lines().next().unwrap_or_default();
    let expected = format!("log broken: entry {seq} is the first that does not match: ");
    assert!(first.starts_with(&expected), "expected {expected:?}, got {run:?}");
    assert!(first.contains(reason), "expected the reason to say {reason:?}, got {first:?}");
    assert!(run.stderr.is_empty(), "{run:?}");

    let json = verify(db, true);
    assert_eq!(json.code, Some(1), "{json:?}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["intact"], json!(false));
    assert_eq!(report["first_break"]["seq"], json!(seq), "{report}");
    assert_eq!(report["entries"], json!(verified), "{report}");
    assert_eq!(report["head_seq"], json!(verified), "{report}");
    run
}

async fn an_untouched_log_verifies_with_the_success_line(db: TestDb) {
    let built = build_log(&db).await;
    let last = built.last();

    let run = verify(&db, false);
    assert_eq!(run.code, Some(0), "{run:?}");
    let n = built.entries.len();
    assert_eq!(run.stdout, format!("log intact: {n} entries, head {} {}\n", last.seq, last.hash));
    assert!(run.stderr.is_empty(), "{run:?}");

    let json = verify(&db, true);
    assert_eq!(json.code, Some(0), "{json:?}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        report,
        json!({
            "intact": true,
            "entries": n,
            "head_seq": last.seq,
            "head_hash": last.hash,
            "first_break": null,
            "head_mismatch": null,
            "request_mismatches": [],
        })
    );
}

/// Tamper: entry k's actor is changed from the owner to someone else.
async fn an_edited_actor_names_that_entry(db: TestDb) {
    let built = build_log(&db).await;
    let k = built.seq_of("approve");
    db.tamper(&format!("UPDATE control_log SET actor = 'mallory' WHERE seq = {k}"));
    assert_broken_at(&db, k, k - 1, "the entry was changed");
}

/// Tamper: entry k's details say the test failed where it passed.
async fn edited_details_name_that_entry(db: TestDb) {
    let built = build_log(&db).await;
    let k = built.seq_of("record-test");
    assert!(built.entry(k).details.contains("\"passed\":true"));
    db.tamper(&format!(
        "UPDATE control_log SET details = replace(details, '\"passed\":true', '\"passed\":false') \
         WHERE seq = {k}"
    ));
    assert_broken_at(&db, k, k - 1, "the entry was changed");
}

/// Tamper: entry k, in the middle of the log, is deleted.
async fn a_deleted_middle_entry_names_the_entry_after_the_gap(db: TestDb) {
    let built = build_log(&db).await;
    let k = built.seq_of("acknowledge-test");
    db.tamper(&format!("DELETE FROM control_log WHERE seq = {k}"));
    assert_broken_at(&db, k + 1, k - 1, &format!("expected entry {k} here"));
}

/// Moves entries k and later one place up, leaving seq k free.
fn shift_up_from(k: i64) -> String {
    format!(
        "UPDATE control_log SET seq = -seq - 1 WHERE seq >= {k}; \
         UPDATE control_log SET seq = -seq WHERE seq < 0;"
    )
}

/// A forged approval sealed after entry `k - 1`, as if it had been entry k.
fn forged_approval(built: &Built, k: i64) -> LogEntry {
    let before = built.entry(k - 1);
    let original = built.entry(k);
    let draft = LogDraft {
        at: original.at,
        actor: OWNER.to_owned(),
        action: "approve".to_owned(),
        request: original.request,
        system: original.system,
        state_before: original.state_before,
        state_after: original.state_after,
        details: json!({ "comment": "approved by phone" }),
        policy_version: original.policy_version,
    };
    LogEntry::seal(draft, &ChainHead { seq: before.seq, hash: before.hash.clone() })
}

/// Tamper: later entries shift up one and a forged entry takes seq k, with the
/// right prev_hash and a hash of the right shape copied from a real entry.
async fn an_inserted_entry_with_a_plausible_hash_is_named(db: TestDb) {
    let built = build_log(&db).await;
    let k = built.seq_of("approve");
    let mut forged = forged_approval(&built, k);
    forged.hash = built.entry(k).hash.clone();
    db.tamper(&format!("{} {}", shift_up_from(k), insert_sql(&forged)));
    assert_broken_at(&db, k, k - 1, "the entry was changed");
}

/// Tamper: as above, but the attacker seals the forged entry correctly (the
/// encoding is public). The forged entry then checks out on its own; the first
/// entry that does not match is the genuine one after it, which no longer
/// follows from its predecessor.
async fn an_inserted_entry_with_a_correct_hash_breaks_the_chain_right_after_it(db: TestDb) {
    let built = build_log(&db).await;
    let k = built.seq_of("approve");
    let forged = forged_approval(&built, k);
    assert_eq!(forged.hash, forged.compute_hash());
    db.tamper(&format!("{} {}", shift_up_from(k), insert_sql(&forged)));
    assert_broken_at(&db, k + 1, k, "does not match the hash");
}

/// Exchanges everything but seq between the rows of entries `i` and `j`.
fn swap_contents(i: i64, j: i64) -> String {
    let columns = "format, at, actor, action, request_id, system_id, state_before, state_after, \
                   details, policy_version, prev_hash, hash";
    format!(
        "CREATE TEMP TABLE saved AS SELECT * FROM control_log WHERE seq IN ({i}, {j}); \
         UPDATE control_log SET ({columns}) = (SELECT {columns} FROM saved \
         WHERE saved.seq = CASE control_log.seq WHEN {i} THEN {j} ELSE {i} END) \
         WHERE seq IN ({i}, {j});"
    )
}

/// Tamper: two neighbouring entries' rows exchange their contents, seqs kept.
async fn swapped_row_contents_name_the_first_moved_entry(db: TestDb) {
    let built = build_log(&db).await;
    let i = built.seq_of("start-test");
    db.tamper(&swap_contents(i, i + 1));
    let moved = db.sql(&format!("SELECT action FROM control_log WHERE seq = {i}")).unwrap();
    assert_eq!(moved.trim(), "record-test");
    assert_broken_at(&db, i, i - 1, "does not match the hash");
}

/// Tamper: two entries three apart exchange their seqs.
async fn swapped_seqs_name_the_first_moved_entry(db: TestDb) {
    let built = build_log(&db).await;
    let i = built.seq_of("acknowledge-test");
    let j = i + 3;
    db.tamper(&format!(
        "UPDATE control_log SET seq = -seq WHERE seq IN ({i}, {j}); \
         UPDATE control_log SET seq = CASE seq WHEN -{i} THEN {j} ELSE {i} END WHERE seq < 0;"
    ));
    assert_broken_at(&db, i, i - 1, "does not match the hash");
}

/// Tamper: the newest entry is cut off; the chain that is left verifies, so the
/// head row is what gives it away.
async fn a_cut_tail_is_caught_by_the_head_row(db: TestDb) {
    let built = build_log(&db).await;
    let last = built.last().seq;
    db.tamper(&format!("DELETE FROM control_log WHERE seq = {last}"));

    let run = verify(&db, false);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.starts_with("log broken: the chain verifies"), "{run:?}");
    let head_line = format!("head row: the head row says entry {last}");
    assert!(run.stdout.contains(&head_line), "{run:?}");
    let report: Value = serde_json::from_str(&verify(&db, true).stdout).unwrap();
    assert_eq!(report["first_break"], Value::Null);
    assert_eq!(report["head_seq"], json!(last - 1));
    assert!(report["head_mismatch"].as_str().unwrap().contains(&format!("entry {last}")));
}

/// Tamper: a request's stored state is moved without a log entry (no trigger
/// guards the requests table).
async fn a_request_state_changed_behind_the_log_is_reported(db: TestDb) {
    let built = build_log(&db).await;
    let id = built.request.0;
    db.sql(&format!("UPDATE requests SET state = 'documented' WHERE id = {id}")).unwrap();

    let run = verify(&db, false);
    assert_eq!(run.code, Some(1), "{run:?}");
    let line = format!(
        "request state: request {id} is stored as 'documented' but its log leaves it 'closed'"
    );
    assert!(run.stdout.lines().any(|l| l == line), "{run:?}");
}

async fn log_show_lists_the_entries_in_order(db: TestDb) {
    let built = build_log(&db).await;
    let run = patchwarden(&["log", "show", "--database", &db.url]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut lines = run.stdout.lines();
    assert!(lines.next().unwrap().trim_start().starts_with("SEQ  TIME"), "{run:?}");
    let shown: Vec<(i64, String)> = lines
        .map(|line| {
            let mut words = line.split_whitespace();
            let seq = words.next().unwrap().parse().unwrap();
            let _time = words.next();
            let _actor = words.next();
            (seq, words.next().unwrap().to_owned())
        })
        .collect();
    let stored: Vec<(i64, String)> =
        built.entries.iter().map(|entry| (entry.seq, entry.action.clone())).collect();
    assert_eq!(shown, stored);

    // One request's entries, as JSON: from its creation to its closing.
    let id = built.request.to_string();
    let args = ["log", "show", "--database", &db.url, "--request", &id, "--output", "json"];
    let run = patchwarden(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    let entries: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "submit",
            "approve",
            "start-test",
            "record-test",
            "acknowledge-test",
            "propose-plan",
            "accept-plan",
            "accept-plan",
            "approve-plan",
            "confirm-presence",
            "start-production",
            "record-production",
            "document",
            "close",
        ]
    );
    let approve = &entries[2];
    assert_eq!(approve["actor"], json!(OWNER));
    assert_eq!(approve["state_before"], json!("submitted"));
    assert_eq!(approve["state_after"], json!("approved"));
    assert_eq!(approve["at"], json!("2026-03-02T11:00:00.000000Z"));
    assert_eq!(approve["details"], json!({ "comment": null }));
}

on_both_backends!(
    an_untouched_log_verifies_with_the_success_line,
    an_edited_actor_names_that_entry,
    edited_details_name_that_entry,
    a_deleted_middle_entry_names_the_entry_after_the_gap,
    an_inserted_entry_with_a_plausible_hash_is_named,
    an_inserted_entry_with_a_correct_hash_breaks_the_chain_right_after_it,
    swapped_row_contents_name_the_first_moved_entry,
    swapped_seqs_name_the_first_moved_entry,
    a_cut_tail_is_caught_by_the_head_row,
    a_request_state_changed_behind_the_log_is_reported,
    log_show_lists_the_entries_in_order,
);

/// Input: `sqlite:` naming a file that does not exist.
#[test]
fn a_missing_sqlite_file_exits_2_and_creates_nothing() {
    let db = TestDb::sqlite();
    for command in ["verify", "show"] {
        let run = patchwarden(&["log", command, "--database", &db.url]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        let expected = format!("database file '{}' does not exist", db.path().display());
        assert!(run.stderr.contains(&expected), "{run:?}");
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
    assert_eq!(std::fs::read_dir(db.dir().unwrap()).unwrap().count(), 0);
}

/// Input: a `mysql://` URL.
#[test]
fn an_unknown_scheme_exits_2_naming_it() {
    let run = patchwarden(&["log", "verify", "--database", "mysql://127.0.0.1/patchwarden"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("unknown database URL scheme 'mysql'"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line, no backtrace: {run:?}");
}

/// Input: a SQLite file that holds some other program's tables.
#[test]
fn a_database_without_the_schema_exits_2() {
    let db = TestDb::sqlite();
    sqlite3(&db.path(), "CREATE TABLE notes (body TEXT)").unwrap();
    let run = verify(&db, false);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no such table: control_log"), "{run:?}");
    assert!(run.stderr.contains("is this a Patchwarden database?"), "{run:?}");
}

/// Input: no --database and no API token for the server, or an --output that does not exist.
#[test]
fn usage_errors_exit_2() {
    let run = patchwarden(&["log", "verify", "--server", "http://127.0.0.1:9"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("PATCHWARDEN_TOKEN"), "{run:?}");
    let run = patchwarden(&["log", "verify", "--database", "sqlite:x.db", "--output", "yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("yaml"), "{run:?}");
}

#[test]
fn demo_runs_twice_on_one_sqlite_file_and_the_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // In a folder that does not exist yet, as a newcomer might name it.
    let url = format!("sqlite:{}", dir.path().join("data/demo.db").display());

    let first = patchwarden(&["demo", "--database", &url]);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stdout.contains("Created the database"), "{}", first.stdout);
    for step in
        ["create: -> draft", "approve: submitted -> approved", "close: documented -> closed"]
    {
        assert!(first.stdout.contains(step), "{step:?} missing from:\n{}", first.stdout);
    }
    let intact = first.stdout.lines().find(|l| l.trim_start().starts_with("log intact: "));
    let intact = intact.unwrap_or_else(|| panic!("no verdict in:\n{}", first.stdout)).trim();

    let second = patchwarden(&["demo", "--database", &url]);
    assert_eq!(second.code, Some(0), "{second:?}");
    assert!(second.stdout.contains("already holds the demo"), "{}", second.stdout);
    assert!(second.stdout.contains("request 1 is closed"), "{}", second.stdout);
    assert!(second.stdout.contains(intact), "the second run added entries:\n{}", second.stdout);

    let run = patchwarden(&["log", "verify", "--database", &url]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout.trim(), intact);

    // The steps are dated from one reading of the clock, never going back.
    let run = patchwarden(&["log", "show", "--database", &url, "--output", "json"]);
    let entries: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.is_sorted(), "{times:#?}");
}

#[test]
fn demo_creates_a_missing_postgres_database() {
    let Some(db) = TestDb::postgres_name() else { return };
    let run = patchwarden(&["demo", "--database", &db.url]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("Created the database"), "{}", run.stdout);
    let run = verify(&db, false);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("log intact: 22 entries, head 22 "), "{run:?}");
}
