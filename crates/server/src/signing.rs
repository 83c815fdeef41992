//! The job-signing key: Ed25519, created on first start in the keys folder
//! beside the CA, readable by its owner only. Several servers given the same
//! keys folder sign with the same key, so an agent trusts any of them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use patchwarden_protocol::JobKey;

use crate::tls::{TlsError, write_private};

const FILE: &str = "job-signing.key";

/// Loads the job-signing key from `dir`, creating it first if it is missing.
pub fn load_or_create(dir: &Path) -> Result<JobKey, TlsError> {
    let io = |source| TlsError::Io { path: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(io)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    let path = dir.join(FILE);
    if !path.exists() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| TlsError::Issue(e.to_string()))?;
        write_private(&path, &format!("{}\n", hex::encode(secret)))?;
        tracing::info!(path = %path.display(), "created the job-signing key");
    }
    let text =
        fs::read_to_string(&path).map_err(|source| TlsError::Io { path: path.clone(), source })?;
    let secret: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| TlsError::BadKey {
            path: path.clone(),
            reason: "the job-signing key is not 64 hexadecimal digits".to_owned(),
        })?;
    Ok(JobKey::from_bytes(&secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = load_or_create(&keys).unwrap();
        let again = load_or_create(&keys).unwrap();
        assert_eq!(first.public(), again.public());
        let mode = fs::metadata(keys.join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
