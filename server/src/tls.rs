//! HTTPS on the main listener (`tls-cert`, `tls-key`): rustls with its own ring provider,
//! HTTP/1.1 only. The files are read at start and again on SIGHUP, so a renewed
//! certificate (cert-manager, certbot) applies to new connections without a restart; a
//! reload that fails keeps the certificate in use and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `tls-cert` and `tls-key` is set.
    #[error("tls-cert and tls-key go together: set both (HTTPS) or neither (plain HTTP)")]
    Half,
    /// A file could not be read or holds no PEM item of the kind wanted.
    #[error("{key} `{path}`: {reason}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, …).
    #[error("tls-cert and tls-key cannot be used together: {0}")]
    Config(String),
}

/// The certificate files and the acceptor built from them, replaced on reload.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// HTTPS when both files are given, plain HTTP when neither is.
    pub fn from_files(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Tls>, TlsError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let acceptor = acceptor(cert, key)?;
                Ok(Some(Tls {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    acceptor: RwLock::new(acceptor),
                }))
            }
            _ => Err(TlsError::Half),
        }
    }

    /// The listener's TLS as the config sets it (`tls-cert`, `tls-key`).
    pub fn of_config(config: &crate::config::ServerConfig) -> Result<Option<Arc<Tls>>, TlsError> {
        Ok(Self::from_files(config.tls_cert.as_deref(), config.tls_key.as_deref())?.map(Arc::new))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again; on failure the acceptor in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor(&self.cert, &self.key)?;
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

fn file_error(key: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error("tls-cert", cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("tls-cert", cert, e))?;
    if chain.is_empty() {
        return Err(file_error("tls-cert", cert, "no CERTIFICATE in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("tls-key", key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_pair_and_unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        assert!(matches!(
            Tls::from_files(Some(&cert), None),
            Err(TlsError::Half)
        ));
        assert!(Tls::from_files(None, None).unwrap().is_none());
        let e = Tls::from_files(Some(&cert), Some(&key)).err().unwrap();
        assert!(e.to_string().starts_with("tls-cert `"), "{e}");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = Tls::from_files(Some(&cert), Some(&key)).err().unwrap();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    }
}
