//! The control log's entries, their canonical encoding and the chain check.
//!
//! An entry's hash is SHA-256 over its canonical encoding (format 1, described
//! in ARCHITECTURE.md), which includes the previous entry's hash; sequence
//! numbers start at 1 and have no gaps. `verify_chain` names the first entry
//! that breaks any of this. The encoding is versioned by `format`: a new
//! encoding gets a new number and the old one stays verifiable.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::State;

/// The encoding format new entries are written in.
pub const LOG_FORMAT: u32 = 1;

/// The `prev_hash` of the first entry: 32 zero bytes, hex-encoded.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The newest entry of a chain, or the genesis before the first entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_HASH.to_owned() }
    }
}

/// What the caller knows of an entry before it is placed in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDraft {
    pub at: Timestamp,
    /// The account name of the actor, or `patchwarden` for the product itself.
    pub actor: String,
    pub action: String,
    pub request: Option<i64>,
    pub system: Option<i64>,
    pub state_before: Option<State>,
    pub state_after: Option<State>,
    pub details: serde_json::Value,
    pub policy_version: u32,
}

/// One sealed entry of the control log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: i64,
    pub format: u32,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub request: Option<i64>,
    pub system: Option<i64>,
    pub state_before: Option<State>,
    pub state_after: Option<State>,
    /// Canonical JSON text: keys sorted, no insignificant white space.
    pub details: String,
    pub policy_version: u32,
    pub prev_hash: String,
    pub hash: String,
}

impl LogEntry {
    /// Seals `draft` as the entry after `head`.
    pub fn seal(draft: LogDraft, head: &ChainHead) -> LogEntry {
        let mut entry = LogEntry {
            seq: head.seq + 1,
            format: LOG_FORMAT,
            at: truncate_to_micros(draft.at),
            actor: draft.actor,
            action: draft.action,
            request: draft.request,
            system: draft.system,
            state_before: draft.state_before,
            state_after: draft.state_after,
            details: canonical_json(&draft.details),
            policy_version: draft.policy_version,
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }

    /// This entry as the head of its chain.
    pub fn head(&self) -> ChainHead {
        ChainHead { seq: self.seq, hash: self.hash.clone() }
    }

    /// The canonical encoding that the hash covers.
    ///
    /// Format 1: the line `patchwarden-log 1`, then one line per field in a fixed
    /// order, each `name:length:value` with the value's length in bytes, so no
    /// value can be mistaken for a field boundary.
    pub fn canonical_encoding(&self) -> Vec<u8> {
        let state = |state: Option<State>| state.map(State::as_str).unwrap_or("").to_owned();
        let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let fields: [(&str, String); 12] = [
            ("seq", self.seq.to_string()),
            ("format", self.format.to_string()),
            ("at", format_instant(self.at)),
            ("actor", self.actor.clone()),
            ("action", self.action.clone()),
            ("request", number(self.request)),
            ("system", number(self.system)),
            ("state_before", state(self.state_before)),
            ("state_after", state(self.state_after)),
            ("details", self.details.clone()),
            ("policy_version", self.policy_version.to_string()),
            ("prev_hash", self.prev_hash.clone()),
        ];
        let mut out = format!("patchwarden-log {}\n", self.format).into_bytes();
        for (name, value) in fields {
            out.extend_from_slice(format!("{name}:{}:", value.len()).as_bytes());
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        out
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_encoding()))
    }
}

/// Instants in the log carry microseconds; finer parts are dropped when sealed.
pub fn truncate_to_micros(at: Timestamp) -> Timestamp {
    let micros = at.as_microsecond();
    Timestamp::from_microsecond(micros).unwrap_or(at)
}

/// RFC 3339 in UTC with exactly six fractional digits.
pub fn format_instant(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// JSON with object keys sorted and no white space between tokens.
pub fn canonical_json(value: &serde_json::Value) -> String {
    // serde_json's map keeps keys sorted unless `preserve_order` is enabled,
    // which this crate never enables; sorting again makes that independent.
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Where and why the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The sequence number of the first entry that does not match (as stored).
    pub seq: i64,
    pub reason: String,
}

/// What a verification read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    pub entries: u64,
    pub head: ChainHead,
}

/// Checks entries in the order they are stored (by sequence number).
#[derive(Debug, Default)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: Option<String>,
    entries: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self { expected_seq: 1, prev_hash: None, entries: 0 }
    }

    /// Checks the next entry; the first failure names the entry.
    pub fn check(&mut self, entry: &LogEntry) -> Result<(), ChainBreak> {
        let fail = |reason: String| Err(ChainBreak { seq: entry.seq, reason });
        if entry.seq != self.expected_seq {
            let seen = if entry.seq < self.expected_seq { "repeats or goes back" } else { "skips" };
            return fail(format!(
                "sequence {seen}: expected entry {} here (an entry was removed, inserted or moved)",
                self.expected_seq
            ));
        }
        if entry.format != LOG_FORMAT {
            return fail(format!("unknown encoding format {}", entry.format));
        }
        let expected_prev = self.prev_hash.as_deref().unwrap_or(GENESIS_HASH);
        if entry.prev_hash != expected_prev {
            return fail(format!(
                "prev_hash {} does not match the hash {} of the entry before it",
                entry.prev_hash, expected_prev
            ));
        }
        let recomputed = entry.compute_hash();
        if entry.hash != recomputed {
            return fail(format!(
                "stored hash {} does not match its content (recomputed {recomputed}): the entry was changed",
                entry.hash
            ));
        }
        self.expected_seq += 1;
        self.prev_hash = Some(entry.hash.clone());
        self.entries += 1;
        Ok(())
    }

    pub fn finish(self) -> ChainSummary {
        let hash = self.prev_hash.unwrap_or_else(|| GENESIS_HASH.to_owned());
        ChainSummary { entries: self.entries, head: ChainHead { seq: self.expected_seq - 1, hash } }
    }
}

/// Checks a whole chain given in stored order.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
) -> Result<ChainSummary, ChainBreak> {
    let mut verifier = ChainVerifier::new();
    for entry in entries {
        verifier.check(entry)?;
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(action: &str, second: i64) -> LogDraft {
        LogDraft {
            at: Timestamp::from_second(1_800_000_000 + second).unwrap(),
            actor: "alice".to_owned(),
            action: action.to_owned(),
            request: Some(1),
            system: Some(1),
            state_before: Some(State::Draft),
            state_after: Some(State::Submitted),
            details: json!({ "b": 1, "a": [ { "z": 1, "y": 2 } ] }),
            policy_version: 1,
        }
    }

    fn chain(n: i64) -> Vec<LogEntry> {
        let mut out: Vec<LogEntry> = Vec::new();
        let mut head = ChainHead::genesis();
        for i in 0..n {
            let entry = LogEntry::seal(draft("submit", i), &head);
            head = entry.head();
            out.push(entry);
        }
        out
    }

    #[test]
    fn canonical_encoding_format_1_is_stable() {
        let entry = LogEntry::seal(draft("submit", 0), &ChainHead::genesis());
        let text = String::from_utf8(entry.canonical_encoding()).unwrap();
        let expected = "patchwarden-log 1\nseq:1:1\nformat:1:1\nat:27:2027-01-15T08:00:00.000000Z\nactor:5:alice\naction:6:submit\nrequest:1:1\nsystem:1:1\nstate_before:5:draft\nstate_after:9:submitted\ndetails:27:{\"a\":[{\"y\":2,\"z\":1}],\"b\":1}\npolicy_version:1:1\nprev_hash:64:0000000000000000000000000000000000000000000000000000000000000000\n";
        assert_eq!(text, expected);
        // Pinned so that a change to the encoding cannot pass unnoticed.
        assert_eq!(entry.hash, hex::encode(Sha256::digest(expected.as_bytes())));
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let entries = chain(5);
        let summary = verify_chain(&entries).unwrap();
        assert_eq!(summary.entries, 5);
        assert_eq!(summary.head.seq, 5);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain(5);
        entries[2].actor = "mallory".to_owned();
        let err = verify_chain(&entries).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("was changed"), "{}", err.reason);
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(2);
        let err = verify_chain(&entries).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.reason.contains("expected entry 3"), "{}", err.reason);
    }

    #[test]
    fn swapped_entries_are_caught() {
        let mut entries = chain(5);
        entries.swap(1, 2);
        let (a, b) = (entries[1].seq, entries[2].seq);
        entries[1].seq = b;
        entries[2].seq = a;
        let err = verify_chain(&entries).unwrap_err();
        assert_eq!(err.seq, 2);
    }

    #[test]
    fn instants_are_kept_to_the_microsecond() {
        let at = Timestamp::from_nanosecond(1_800_000_000_123_456_789).unwrap();
        assert_eq!(format_instant(truncate_to_micros(at)), "2027-01-15T08:00:00.123456Z");
    }
}
