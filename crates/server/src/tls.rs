//! The Patchwarden CA and the server's TLS certificate.
//!
//! The CA is created on first start in the data directory's `keys` folder
//! (`ca.pem`, and `ca-key.pem` readable by its owner only). Every server start
//! issues a fresh server certificate from that CA, so several servers given
//! the same keys folder each present a certificate that agents and the CLI
//! trust by pinning the one CA.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use keys folder '{path}': {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the CA in '{path}' cannot be read: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("the key in '{path}' cannot be read: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot issue the server certificate: {0}")]
    Issue(String),
}

/// The CA and a server configuration presenting a certificate it issued.
#[derive(Clone)]
pub struct Keys {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// SHA-256 of the CA certificate's DER, lowercase hex: what clients pin.
    pub ca_fingerprint: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("ca_path", &self.ca_path)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Patchwarden");
    name.push(DnType::CommonName, "Patchwarden CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    let io = |source| TlsError::Io { path: path.to_owned(), source };
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Loads the CA from `dir`, creating it there first if it is missing, and
/// issues a server certificate for `names` (DNS names or IP addresses).
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Keys, TlsError> {
    let io = |source| TlsError::Io { path: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(io)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca-key.pem");
    let bad = |reason: String| TlsError::BadCa { path: cert_path.clone(), reason };

    if !key_path.exists() {
        let key = KeyPair::generate().map_err(|e| TlsError::Issue(e.to_string()))?;
        let cert = ca_params().self_signed(&key).map_err(|e| TlsError::Issue(e.to_string()))?;
        write_private(&key_path, &key.serialize_pem())?;
        fs::write(&cert_path, cert.pem())
            .map_err(|source| TlsError::Io { path: cert_path.clone(), source })?;
        tracing::info!(path = %cert_path.display(), "created the Patchwarden CA");
    }
    let key_pem = fs::read_to_string(&key_path)
        .map_err(|source| TlsError::Io { path: key_path.clone(), source })?;
    let ca_pem = fs::read_to_string(&cert_path)
        .map_err(|source| TlsError::Io { path: cert_path.clone(), source })?;
    let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| bad(e.to_string()))?;
    let ca_der = pem_to_der(&ca_pem).ok_or_else(|| bad("not a PEM certificate".to_owned()))?;
    let ca_fingerprint = hex::encode(Sha256::digest(&ca_der));

    let server_key = KeyPair::generate().map_err(|e| TlsError::Issue(e.to_string()))?;
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| TlsError::Issue(e.to_string()))?;
    params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca_params(), ca_key);
    let server_cert =
        params.signed_by(&server_key, &issuer).map_err(|e| TlsError::Issue(e.to_string()))?;

    let chain = vec![server_cert.der().clone(), CertificateDer::from(ca_der)];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Issue(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| TlsError::Issue(e.to_string()))?;
    Ok(Keys { ca_pem, ca_path: cert_path, ca_fingerprint, server: Arc::new(server) })
}

/// The DER bytes of the first certificate in a PEM text.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = load_or_create(&keys, &["localhost".to_owned()]).unwrap();
        let again = load_or_create(&keys, &["localhost".to_owned()]).unwrap();
        assert_eq!(first.ca_fingerprint, again.ca_fingerprint);
        assert_eq!(first.ca_fingerprint.len(), 64);
        let mode = fs::metadata(keys.join("ca-key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
