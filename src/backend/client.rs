//! The HTTP clients the backend is called with: bounded (timeouts, no redirects), each
//! with its own rustls provider, through the configured proxy or direct, trusting the
//! platform's roots (loaded on the first handshake), `ca-file`'s, or only the build's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::BackendError;
use crate::config::ProxyConfig;

/// The platform's certificate verifier, built on the first TLS handshake: loading the
/// system's roots costs milliseconds, which a loopback `http` backend (and a host that
/// never refreshes) should not pay at `lic_init`. Held by the client, not a static.
#[derive(Debug)]
pub(super) struct LazyVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `ca-file`'s anchors, trusted beside the platform's roots.
    extra_roots: Vec<CertificateDer<'static>>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl LazyVerifier {
    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let provider = self.provider.clone();
                if self.extra_roots.is_empty() {
                    rustls_platform_verifier::Verifier::new(provider)
                } else {
                    rustls_platform_verifier::Verifier::new_with_extra_roots(
                        self.extra_roots.clone(),
                        provider,
                    )
                }
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(format!("certificate verifier: {e}")))
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP client as every backend call uses: rustls with the platform's roots (its own
/// provider, nothing installed process-wide), no redirects, connect and read timeouts,
/// and the whole exchange bounded by their sum so a peer dripping bytes cannot hold it.
/// This one follows the environment's proxy settings as reqwest reads them; the engine's
/// own clients take theirs from the config ([`Backend::new`]).
pub fn http_client(connect: Duration, read: Duration) -> Result<reqwest::Client, BackendError> {
    client_builder(connect, read, &Trust::Platform(Vec::new()))?
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

/// Which certificates the backend's TLS is checked against.
#[derive(Debug, Clone)]
pub(super) enum Trust {
    /// The platform's roots, and `ca-file`'s beside them.
    Platform(Vec<CertificateDer<'static>>),
    /// These alone: a vendor's build pinned its license server's CA.
    Only(Vec<CertificateDer<'static>>),
}

/// The engine's client for remote backends: through `proxy` (or direct without one),
/// under `trust`.
pub(super) fn remote_client(
    connect: Duration,
    read: Duration,
    proxy: &ProxyConfig,
    trust: &Trust,
) -> Result<reqwest::Client, BackendError> {
    let builder = client_builder(connect, read, trust)?;
    let builder = match &proxy.url {
        // An explicit proxy replaces the environment's (already read into the config).
        Some(url) => {
            // The error would name the URL, credentials and all: say which key instead.
            let p = reqwest::Proxy::all(url.as_str())
                .map_err(|_| BackendError::Setup(format!("proxy {} unusable", proxy.shown())))?
                .no_proxy(reqwest::NoProxy::from_string(&proxy.no_proxy.join(",")));
            builder.proxy(p)
        }
        None => builder.no_proxy(),
    };
    builder
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

/// A client that never uses a proxy: for loopback backends, whose plain http is allowed
/// only because it never leaves the machine (a proxy would carry the API key off it).
pub(super) fn direct_client(
    connect: Duration,
    read: Duration,
    trust: &Trust,
) -> Result<reqwest::Client, BackendError> {
    client_builder(connect, read, trust)?
        .no_proxy()
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

pub(super) fn client_builder(
    connect: Duration,
    read: Duration,
    trust: &Trust,
) -> Result<reqwest::ClientBuilder, BackendError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Platform(extra_roots) => Arc::new(LazyVerifier {
            provider: provider.clone(),
            extra_roots: extra_roots.clone(),
            inner: OnceLock::new(),
        }),
        Trust::Only(anchors) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in anchors {
                roots
                    .add(c.clone())
                    .map_err(|e| BackendError::Setup(format!("pinned CA: {e}")))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| BackendError::Setup(format!("pinned CA: {e}")))?
        }
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .read_timeout(read)
        .timeout(connect + read)
        .user_agent(concat!("lic4es/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_verifier_is_built_on_the_first_handshake_and_refuses_garbage() {
        let v = LazyVerifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            extra_roots: Vec::new(),
            inner: OnceLock::new(),
        };
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.inner.get().is_none(), "nothing loaded before a handshake");
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let name = ServerName::try_from("license.example.com").unwrap();
        let r = v.verify_server_cert(&garbage, &[], &name, &[], UnixTime::now());
        assert!(r.is_err());
        assert!(v.inner.get().is_some(), "built on first use");
    }
}
