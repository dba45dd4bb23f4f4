//! What a vendor's build of the library fixes, so that its customers cannot choose it
//! (`docs/how-to/pinned-build.md`): the license server (`LIC4ES_API_URL`, one URL or a comma-separated list)
//! and the only trust anchors of that server's TLS (`LIC4ES_API_CA_FILE`, PEM), read at
//! build time like the public keys (`LIC4ES_PUBLIC_KEYS_FILE`, [`crate::token::KeySet`]).
//!
//! With the server pinned, `api-url` in the config is ignored (WARN) and a static token's
//! `refresh_url` must have the pinned server's origin. With its CA pinned, that server's
//! certificate must chain to it alone: `ca-file`, `SSL_CERT_FILE` and the platform's roots
//! do not apply, so a TLS-inspecting proxy of the customer's (with a CA of theirs that
//! the host trusts) can drop the traffic but never read, answer or change it. A proxy that
//! tunnels (`CONNECT`) still works: the TLS session runs end to end through it.

use rustls::pki_types::CertificateDer;
use url::Url;

const BUILTIN_API_URL: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_api_url.txt"));
const BUILTIN_API_CA: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_api_ca.pem"));

/// The pins of a build: each `None` when the build leaves it to the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pins {
    /// The license server's base URLs.
    pub api_urls: Option<Vec<Url>>,
    /// The only trust anchors of the license server's TLS.
    pub ca: Option<Vec<CertificateDer<'static>>>,
}

impl Pins {
    /// The pins this library was built with.
    pub fn builtin() -> Result<Pins, String> {
        Self::parse(BUILTIN_API_URL, BUILTIN_API_CA)
    }

    /// Pins from the texts a build reads: `api_url` (blank: none), and `ca_pem` (blank:
    /// none). What would be refused in `api-url` is refused here too.
    pub fn parse(api_url: &str, ca_pem: &str) -> Result<Pins, String> {
        let api_urls = if api_url.trim().is_empty() {
            None
        } else {
            let urls = api_url
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| {
                    let url = Url::parse(u)
                        .map_err(|e| format!("LIC4ES_API_URL `{}`: {e}", crate::log::echo(u)))?;
                    crate::config::check_backend_url(&url)
                        .map_err(|m| format!("LIC4ES_API_URL: {m}"))?;
                    Ok(url)
                })
                .collect::<Result<Vec<_>, String>>()?;
            Some(urls)
        };
        let ca = if ca_pem.trim().is_empty() {
            None
        } else {
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
                .map(|c| c.map(|c| c.into_owned()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("LIC4ES_API_CA_FILE: {e}"))?;
            if certs.is_empty() {
                return Err("LIC4ES_API_CA_FILE holds no PEM CERTIFICATE".into());
            }
            Some(certs)
        };
        Ok(Pins { api_urls, ca })
    }

    /// Whether `url` may be reached as a static token's `refresh_url`: anything without
    /// a pinned server, else only the pinned server's origin.
    pub fn allows_refresh_url(&self, url: &Url) -> bool {
        match &self.api_urls {
            None => true,
            Some(bases) => bases.iter().any(|b| b.origin() == url.origin()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_from_the_build_s_texts() {
        assert_eq!(Pins::parse("", "").unwrap(), Pins::default());
        let p = Pins::parse(
            " https://license.vendor.example , https://eu.vendor.example/ ",
            "",
        )
        .unwrap();
        let urls = p.api_urls.clone().unwrap();
        assert_eq!(urls.len(), 2);
        assert!(p.allows_refresh_url(
            &Url::parse("https://eu.vendor.example/api/v1/licenses/refresh").unwrap()
        ));
        assert!(
            !p.allows_refresh_url(&Url::parse("https://license.vendor.example.evil/r").unwrap())
        );
        assert!(!p.allows_refresh_url(&Url::parse("http://license.vendor.example/r").unwrap()));
        // What api-url refuses: http off loopback, nonsense.
        assert!(Pins::parse("http://license.vendor.example", "").is_err());
        assert!(Pins::parse("not a url", "").is_err());
        assert!(Pins::parse("", "-----BEGIN NOTHING-----").is_err());
        assert!(Pins::default().allows_refresh_url(&Url::parse("https://x.example/").unwrap()));
    }
}
