//! TLS to PostgreSQL over rustls, as `database-url` asks with libpq's words: `sslmode`
//! and `sslrootcert` are read here (the `postgres` crate knows neither `verify-full` nor
//! `sslrootcert`) and taken out of the URL before it is parsed.
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | absent, `disable` | no | — |
//! | `prefer`, `allow` | when the server offers it | as `require` |
//! | `require` | yes | against `sslrootcert` when given (chain only), else not at all (libpq's meaning) |
//! | `verify-ca` | yes | chain, against `sslrootcert` or the platform's roots |
//! | `verify-full` | yes | chain and host name, against `sslrootcert` or the platform's roots |
//!
//! `sslrootcert=system` names the platform's roots explicitly (as libpq 16 does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What `database-url` says about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    /// The `postgres` crate's mode (it knows disable, prefer, require).
    pub mode: SslMode,
    /// How much of the certificate is checked.
    pub check: Check,
    /// `sslrootcert`: a PEM file; `None` is the platform's roots.
    pub root_cert: Option<PathBuf>,
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (`require` without `sslrootcert`): encrypted against eavesdroppers only.
    Nothing,
    /// The chain up to a trusted root, not the name.
    Chain,
    /// The chain and the host name.
    Full,
}

/// `url` without `sslmode` and `sslrootcert`, and the TLS they ask for. Both URL
/// (`postgres://…?sslmode=…`) and key-value (`host=… sslmode=…`) forms are read.
pub fn split(url: &str) -> Result<(String, PgTls), String> {
    let mut mode = None;
    let mut root = None;
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // `%2F` and the like in a path given as `sslrootcert`.
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "sslmode" => mode = Some(v),
                "sslrootcert" => root = Some(v),
                _ => kept.push(pair),
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some(("sslmode", v)) => mode = Some(v.to_string()),
                Some(("sslrootcert", v)) => root = Some(v.to_string()),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let root_cert = match root.as_deref() {
        None | Some("") | Some("system") => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    let tls = match mode.as_deref().unwrap_or("disable") {
        "disable" => PgTls {
            mode: SslMode::Disable,
            check: Check::Nothing,
            root_cert: None,
        },
        m @ ("allow" | "prefer" | "require") => PgTls {
            mode: if m == "require" {
                SslMode::Require
            } else {
                SslMode::Prefer
            },
            check: if root_cert.is_some() {
                Check::Chain
            } else {
                Check::Nothing
            },
            root_cert,
        },
        "verify-ca" => PgTls {
            mode: SslMode::Require,
            check: Check::Chain,
            root_cert,
        },
        "verify-full" => PgTls {
            mode: SslMode::Require,
            check: Check::Full,
            root_cert,
        },
        other => {
            return Err(format!(
            "sslmode `{}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
            lic4es::log::echo(other)
        ))
        }
    };
    Ok((rest, tls))
}

/// The connector for `tls` (never used when the mode is `disable`).
pub fn connector(tls: &PgTls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.check, &tls.root_cert) {
        (Check::Nothing, _) => Arc::new(Relaxed {
            chain: None,
            provider: provider.clone(),
        }),
        (check, root_cert) => {
            let inner: Arc<dyn ServerCertVerifier> = match root_cert {
                Some(path) => WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots_of(path)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?,
                None => Arc::new(
                    rustls_platform_verifier::Verifier::new(provider.clone())
                        .map_err(|e| format!("the platform's roots: {e}"))?,
                ),
            };
            if check == Check::Full {
                inner
            } else {
                Arc::new(Relaxed {
                    chain: Some(inner),
                    provider: provider.clone(),
                })
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn roots_of(path: &Path) -> Result<rustls::RootCertStore, String> {
    let shown = path.display();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {shown}: {e}"))? {
        roots
            .add(c.map_err(|e| format!("sslrootcert {shown}: {e}"))?)
            .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {shown}: no PEM CERTIFICATE"));
    }
    Ok(roots)
}

/// What libpq's weaker modes accept. `verify-ca` (`chain` set): the chain is checked, a
/// certificate for another name is accepted. `require` without `sslrootcert` (no
/// `chain`): any certificate (libpq's meaning of the mode). Either way the handshake's
/// signatures are checked, so the session key is the server's.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<dyn ServerCertVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_read_and_taken_out_of_the_url() {
        let cases = [
            (
                "postgres://u@db/x",
                "postgres://u@db/x",
                SslMode::Disable,
                Check::Nothing,
                None,
            ),
            (
                "postgres://u@db/x?sslmode=require&application_name=ls",
                "postgres://u@db/x?application_name=ls",
                SslMode::Require,
                Check::Nothing,
                None,
            ),
            (
                "postgres://u@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
                "postgres://u@db/x",
                SslMode::Require,
                Check::Full,
                Some("/etc/ca.pem"),
            ),
            (
                "postgresql://u@db/x?sslrootcert=/ca.pem&sslmode=require",
                "postgresql://u@db/x",
                SslMode::Require,
                Check::Chain,
                Some("/ca.pem"),
            ),
            (
                "postgres://u@db/x?sslmode=verify-ca&sslrootcert=system",
                "postgres://u@db/x",
                SslMode::Require,
                Check::Chain,
                None,
            ),
            (
                "host=db user=u sslmode=prefer dbname=x",
                "host=db user=u dbname=x",
                SslMode::Prefer,
                Check::Nothing,
                None,
            ),
        ];
        for (url, rest, mode, check, root) in cases {
            let (r, tls) = split(url).unwrap();
            assert_eq!(r, rest, "{url}");
            assert_eq!((tls.mode, tls.check), (mode, check), "{url}");
            assert_eq!(tls.root_cert.as_deref(), root.map(Path::new), "{url}");
        }
        let e = split("postgres://u@db/x?sslmode=verify-everything").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
    }
}
