//! How the engine reaches its backend: the URLs and their https rule, the proxy and the
//! hosts reached directly, the extra trust anchors of `ca-file`, the API key's shape.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use serde_json::Value;
use url::{Host, Url};

use super::values::{checked_hosts, split_hosts, string_list, text};
use super::{show, ConfigError};

/// How backend calls reach a remote backend (a loopback one is always reached directly).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProxyConfig {
    /// The proxy: from `proxy`, else the environment; `None` is direct.
    pub url: Option<Url>,
    /// Hosts, domains and CIDRs reached directly: from `no-proxy`, else the environment.
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// The proxy as it may be logged: scheme, host and port, never its credentials.
    pub fn shown(&self) -> String {
        match &self.url {
            None => "none".into(),
            Some(u) => redacted(u),
        }
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.shown())
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// A proxy URL without its credentials.
fn redacted(u: &Url) -> String {
    let host = u.host_str().unwrap_or("");
    match u.port_or_known_default() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    }
}

/// Proxy schemes accepted: a CONNECT proxy over plain or TLS, or SOCKS5 resolving names
/// at the proxy (inside a corporate network the engine's host often cannot resolve them).
const PROXY_SCHEMES: [&str; 3] = ["http", "https", "socks5h"];

/// `proxy`'s value: `"none"` (direct), or a proxy URL.
pub(super) fn proxy(v: &Value, key: &str) -> Result<Option<Url>, ConfigError> {
    let p = text(v, key)?;
    if p.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_proxy(p.trim())
        .map(Some)
        .map_err(|m| ConfigError::new(key, m))
}

/// The proxy when the config sets none: the environment's (`name`, `value`). A bad one
/// is ignored with a WARN, not refused: it is not the operator's license config, and
/// reqwest would ignore it too.
pub(super) fn proxy_from_env(
    from_env: Option<(&'static str, String)>,
    warnings: &mut Vec<String>,
) -> Option<Url> {
    let (name, v) = from_env?;
    parse_proxy(&v)
        .map_err(|m| warnings.push(format!("{name}: {m}; ignored, backend calls go direct")))
        .ok()
}

/// `no-proxy` when the config sets none: the environment's, held to the same rule.
pub(super) fn no_proxy_from_env(
    from_env: Option<(&'static str, String)>,
    key: &str,
) -> Result<Vec<String>, ConfigError> {
    checked_hosts(
        from_env.map(|(_, v)| split_hosts(&v)).unwrap_or_default(),
        key,
    )
}

/// A proxy URL: one of [`PROXY_SCHEMES`] with a host. Errors never echo the URL whole
/// (it may carry a password).
fn parse_proxy(s: &str) -> Result<Url, String> {
    let u = Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !PROXY_SCHEMES.contains(&u.scheme()) {
        return Err(format!(
            "scheme `{}` is not one of http, https, socks5h",
            show(u.scheme())
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(u)
}

/// A backend key's value (`api-url`, `relay-url`): one URL or a list of at most 8, each
/// under the https rule.
pub(super) fn backend_urls(v: &Value, key: &str) -> Result<Vec<Url>, ConfigError> {
    let given: Vec<String> = match v {
        Value::Array(_) => {
            let list: Vec<String> = string_list(v, key)?
                .into_iter()
                .filter(|u| !u.is_empty())
                .collect();
            if list.is_empty() {
                return Err(ConfigError::new(key, "the list names no URL"));
            }
            if list.len() > 8 {
                return Err(ConfigError::new(key, "at most 8 URLs"));
            }
            list
        }
        _ => vec![text(v, key)?],
    };
    given
        .iter()
        .map(|s| {
            let url = Url::parse(s.trim())
                .map_err(|e| ConfigError::new(key, format!("`{}` is not a URL: {e}", show(s))))?;
            check_backend_url(&url).map_err(|m| ConfigError::new(key, m))?;
            Ok(url)
        })
        .collect()
}

/// Largest `ca-file` read (a bundle of every public root is about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The certificates of a PEM file, read at init so that a wrong path is an error then,
/// not a failed handshake hours later.
pub(super) fn ca_file(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    let shown = show(&path.display().to_string());
    let meta =
        std::fs::metadata(path).map_err(|e| ConfigError::new(key, format!("`{shown}`: {e}")))?;
    // A regular file of bounded size: `/dev/zero` or a FIFO would hold init forever.
    if !meta.is_file() || meta.len() > MAX_CA_FILE_BYTES {
        return Err(ConfigError::new(
            key,
            format!("`{shown}` is not a regular file of at most 1 MiB"),
        ));
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read;
            f.take(MAX_CA_FILE_BYTES).read_to_end(&mut pem)
        })
        .map_err(|e| ConfigError::new(key, format!("`{shown}`: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(key, format!("`{shown}`: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("`{shown}` holds no PEM CERTIFICATE"),
        ));
    }
    Ok(certs)
}

/// A `ca-file` read: the file, and the trust anchors it holds (DER).
pub type CaFile = (PathBuf, Vec<CertificateDer<'static>>);

/// Checks an API key's shape: `sk-` and at least one more printable ASCII character.
pub fn validate_api_key(k: &str) -> Result<(), String> {
    let Some(rest) = k.strip_prefix("sk-") else {
        return Err("must start with `sk-`".into());
    };
    if rest.is_empty() {
        return Err("must have at least one character after `sk-`".into());
    }
    if k.len() > 1024 {
        return Err("is longer than 1024 characters".into());
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// The https rule: `https`, or `http` on a loopback host only.
pub fn check_backend_url(url: &Url) -> Result<(), String> {
    let shown = show_url(url.as_str());
    let host = url.host().ok_or_else(|| format!("`{shown}` has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "`{shown}` must use https (plain http is allowed only on loopback)"
        )),
        other => Err(format!("`{shown}`: scheme `{}` is not https", show(other))),
    }
}

/// A URL as echoed in an error: cleaned, and a long one cut after its first 40
/// characters (scheme and host are what an operator needs to see).
fn show_url(u: &str) -> String {
    let c = crate::log::clean(u);
    if c.chars().count() > 120 {
        let mut head: String = c.chars().take(40).collect();
        head.push('…');
        head
    } else {
        c
    }
}

/// Whether `url` names a loopback host: its traffic never leaves this machine, so it
/// may be plain http and is never sent through a proxy.
pub fn is_loopback_url(url: &Url) -> bool {
    url.host().is_some_and(|h| is_loopback(&h))
}

/// `127.0.0.0/8`, `::1` and `localhost` exactly: `localhost.` is a name for DNS to
/// resolve, which may answer anything.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rule() {
        let ok = |s: &str| check_backend_url(&Url::parse(s).unwrap());
        assert!(ok("https://license.example.com").is_ok());
        assert!(ok("http://127.0.0.1:8700").is_ok());
        assert!(ok("http://127.9.9.9").is_ok());
        assert!(ok("http://[::1]:80").is_ok());
        assert!(ok("http://LOCALHOST:1").is_ok());
        assert!(ok("http://localhost.:1").is_err(), "a name DNS resolves");
        assert!(ok("http://localhost.example.com").is_err());
        assert!(ok("http://license.example.com").is_err());
        assert!(ok("http://10.0.0.1").is_err());
        assert!(ok("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn api_key_shape() {
        assert!(validate_api_key("sk-x").is_ok());
        assert!(validate_api_key("sk-").is_err());
        assert!(validate_api_key("pk-abc").is_err());
        assert!(validate_api_key("sk-a b").is_err());
        assert!(validate_api_key("sk-a\nb").is_err());
    }

    #[test]
    fn a_proxy_never_shows_its_password() {
        let p = proxy(&Value::from("http://user:secret@proxy.corp:3128"), "proxy").unwrap();
        let shown = ProxyConfig {
            url: p,
            no_proxy: vec![],
        };
        assert_eq!(shown.shown(), "http://proxy.corp:3128");
        assert!(!format!("{shown:?}").contains("secret"));
        assert_eq!(proxy(&Value::from(" NONE "), "proxy"), Ok(None));
        let e = proxy(&Value::from("ftp://user:secret@x"), "proxy").unwrap_err();
        assert!(!e.message.contains("secret"), "{e}");
    }
}
