//! Secrets: API tokens, invitation codes and passwords.
//!
//! Tokens and codes are 256 random bits, shown once and stored as SHA-256;
//! passwords are stored as argon2id hashes. Nothing here logs or formats a
//! secret: `Secret`'s `Debug` is redacted.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A secret value that never shows in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// A fresh random secret with a prefix that says what it is.
pub fn generate(prefix: &str) -> Result<Secret, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))))
}

pub const TOKEN_PREFIX: &str = "pwt_";
pub const INVITATION_PREFIX: &str = "pwi_";

/// The stored form of a token or invitation code.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password's length; returns what is wrong.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("password must have at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("password must have at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// An argon2id hash of `password` in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let hash: PasswordHash =
        Argon2::default().hash_password(password.as_bytes()).map_err(|err| err.to_string())?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_redacted() {
        let a = generate(TOKEN_PREFIX).unwrap();
        let b = generate(TOKEN_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("pwt_"));
        assert_eq!(a.expose().len(), 4 + 43);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_password("short").unwrap_err().contains("at least 12"));
        assert!(check_password("long enough password").is_ok());
    }
}
