//! Enrolment and check-ins: how an endpoint gets its credential, and what it
//! says each time it calls in.
//!
//! An enrolment token is single-use and expiring. Its text carries, after
//! the secret, the SHA-256 fingerprint of the Patchwarden CA, so an agent
//! reaching the server over HTTPS for the first time knows which CA to pin
//! without trusting anything else.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The prefix of an enrolment token's secret.
pub const ENROLMENT_PREFIX: &str = "pwe_";
/// The prefix of an endpoint's own credential.
pub const CREDENTIAL_PREFIX: &str = "pwa_";

/// An enrolment token as handed to the person installing the agent:
/// `pwe_SECRET` or, for an HTTPS server, `pwe_SECRET.CA_FINGERPRINT`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    pub secret: String,
    /// Lowercase hex SHA-256 of the CA certificate's DER; `None` for plain HTTP.
    pub ca_fingerprint: Option<String>,
}

impl std::fmt::Debug for EnrolmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentToken")
            .field("secret", &"<redacted>")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

impl EnrolmentToken {
    /// Reads a token's text; says what is wrong with a malformed one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (secret, fingerprint) = match text.split_once('.') {
            Some((secret, fingerprint)) => (secret, Some(fingerprint)),
            None => (text, None),
        };
        let body = secret.strip_prefix(ENROLMENT_PREFIX).ok_or_else(|| {
            format!("an enrolment token starts with '{ENROLMENT_PREFIX}'; this one does not")
        })?;
        let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if body.len() < 16 || !body.chars().all(url_safe) {
            return Err("the enrolment token's secret is malformed".to_owned());
        }
        let ca_fingerprint = match fingerprint {
            None => None,
            Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Some(hex.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(
                    "the enrolment token's CA fingerprint is not 64 hexadecimal digits".to_owned()
                );
            }
        };
        Ok(Self { secret: secret.to_owned(), ca_fingerprint })
    }

    /// The token's text, as `parse` reads it.
    pub fn to_text(&self) -> String {
        match &self.ca_fingerprint {
            Some(fingerprint) => format!("{}.{fingerprint}", self.secret),
            None => self.secret.clone(),
        }
    }
}

/// `POST /api/v1/agent/enrol`: the token's secret and what the endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub protocol: u32,
    pub token: String,
    /// The machine's host name, to show people.
    pub hostname: String,
    /// `/etc/machine-id` where there is one: tells a re-installed agent from a new machine.
    pub machine_id: Option<String>,
}

/// The server's answer: the endpoint's own credential and the job-signing key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolAnswer {
    pub endpoint_id: i64,
    /// Shown once; the server keeps only its hash.
    pub credential: String,
    /// The server's Ed25519 job-signing public key, 32 bytes as lowercase hex.
    pub signing_key: String,
    pub system: String,
    pub environment: crate::Environment,
    pub server_time: Timestamp,
}

impl std::fmt::Debug for EnrolAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolAnswer")
            .field("endpoint_id", &self.endpoint_id)
            .field("credential", &"<redacted>")
            .field("signing_key", &self.signing_key)
            .field("system", &self.system)
            .field("environment", &self.environment)
            .finish()
    }
}

/// `POST /api/v1/agent/check-in`: sent on every interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub protocol: u32,
    /// The hash of the agent's current inventory (lowercase hex SHA-256).
    pub inventory_hash: String,
    /// The agent's clock when it sent this, for the clock offset.
    pub agent_time: Timestamp,
    /// The highest job sequence number the agent has finished and reported.
    pub last_job_sequence: u64,
}

/// What the server answers a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInAnswer {
    /// The server does not hold the inventory with that hash: send it.
    pub send_inventory: bool,
    /// Jobs not yet reported, oldest first.
    pub jobs: Vec<crate::SignedJob>,
    pub server_time: Timestamp,
    /// Seconds until the next check-in, before jitter.
    pub interval_seconds: u32,
}

#[cfg(test)]
mod tests {
    use super::EnrolmentToken;

    #[test]
    fn a_token_reads_back_with_and_without_a_fingerprint() {
        let fingerprint = "ab".repeat(32);
        let text = format!("pwe_abcdefghijklmnopqrstuv.{fingerprint}");
        let token = EnrolmentToken::parse(&text).unwrap();
        assert_eq!(token.secret, "pwe_abcdefghijklmnopqrstuv");
        assert_eq!(token.ca_fingerprint.as_deref(), Some(fingerprint.as_str()));
        assert_eq!(token.to_text(), text);
        let plain = EnrolmentToken::parse("pwe_abcdefghijklmnopqrstuv").unwrap();
        assert_eq!(plain.ca_fingerprint, None);
    }

    #[test]
    fn a_malformed_token_says_what_is_wrong() {
        let cases = [
            ("pwt_abcdefghijklmnopqrstuv", "starts with 'pwe_'"),
            ("pwe_short", "malformed"),
            ("pwe_abcdefghijklmnopqrstuv.xyz", "64 hexadecimal digits"),
            ("pwe_abc defghijklmnopqrstuv", "malformed"),
        ];
        for (text, part) in cases {
            let err = EnrolmentToken::parse(text).unwrap_err();
            assert!(err.contains(part), "{text}: {err}");
        }
    }
}
