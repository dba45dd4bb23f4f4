//! Corporate networks (`docs/how-to/proxies-and-private-ca.md`): `proxy`, `no-proxy`, `ca-file` and `api-url` as a list,
//! from the config or the environment, with errors that name the key and never echo a
//! proxy password. (The proxy and the private CA for real: `server/tests/field.rs`.)

use lic4es::Config;
use serde_json::{json, Value};

fn with_env(v: Value, env: &[(&str, &str)]) -> Result<Config, lic4es::ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_json_with_env(&v.to_string(), &move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

fn parse(v: Value) -> Result<Config, lic4es::ConfigError> {
    with_env(v, &[])
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBeTCCAR+gAwIBAgIUBz6y0m8P0b6b1b0M7Y2r2Y5dY3kwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdCBjYTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAw
MDBaMBIxEDAOBgNVBAMMB3Rlc3QgY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAQ=
-----END CERTIFICATE-----
";

#[test]
fn the_proxy_comes_from_the_config_else_the_environment_and_none_turns_it_off() {
    let c = parse(json!({})).unwrap();
    assert_eq!(c.proxy.url, None);
    let env = [
        ("HTTPS_PROXY", "http://corp-proxy:3128"),
        ("NO_PROXY", "localhost, .corp.example,10.0.0.0/8"),
    ];
    let c = with_env(json!({}), &env).unwrap();
    assert_eq!(
        c.proxy.url.as_ref().unwrap().as_str(),
        "http://corp-proxy:3128/"
    );
    assert_eq!(
        c.proxy.no_proxy,
        ["localhost", ".corp.example", "10.0.0.0/8"]
    );
    let c = with_env(json!({"proxy": "none"}), &env).unwrap();
    assert_eq!(c.proxy.url, None, "\"none\" turns the environment's off");
    let c = with_env(
        json!({"proxy": "socks5h://u:p@socks.corp:1080", "no-proxy": ["license.corp"]}),
        &env,
    )
    .unwrap();
    assert_eq!(c.proxy.url.as_ref().unwrap().scheme(), "socks5h");
    assert_eq!(c.proxy.no_proxy, ["license.corp"], "the config's list wins");
    // ALL_PROXY when HTTPS_PROXY is absent; the lower-case forms too.
    let c = with_env(json!({}), &[("all_proxy", "https://p.corp:443")]).unwrap();
    assert_eq!(c.proxy.url.as_ref().unwrap().host_str(), Some("p.corp"));
}

#[test]
fn a_proxy_password_is_never_shown() {
    let c = parse(json!({"proxy": "http://alice:hunter2@proxy.corp:8080"})).unwrap();
    assert_eq!(c.proxy.shown(), "http://proxy.corp:8080");
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "not in the config's Debug either"
    );
    let e = parse(json!({"proxy": "ftp://alice:hunter2@proxy.corp"})).unwrap_err();
    assert_eq!(e.key, "proxy");
    assert!(e.message.contains("http, https, socks5h"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = parse(json!({"proxy": "not a url :hunter2"})).unwrap_err();
    assert_eq!(e.key, "proxy");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn a_bad_proxy_in_the_environment_is_ignored_with_a_warning() {
    let c = with_env(json!({}), &[("HTTPS_PROXY", "gopher://x:secret@old-proxy")]).unwrap();
    assert_eq!(c.proxy.url, None);
    assert!(
        c.warnings.iter().any(|w| w.starts_with("HTTPS_PROXY:")),
        "{:?}",
        c.warnings
    );
    assert!(!c.warnings.join(" ").contains("secret"));
}

#[test]
fn no_proxy_takes_a_list_or_a_comma_separated_string() {
    let c = parse(json!({"no-proxy": "a.corp, .b.corp ,, 192.168.0.0/16"})).unwrap();
    assert_eq!(c.proxy.no_proxy, ["a.corp", ".b.corp", "192.168.0.0/16"]);
    assert_eq!(parse(json!({"no-proxy": 5})).unwrap_err().key, "no-proxy");
    assert_eq!(
        parse(json!({"no-proxy": ["a b"]})).unwrap_err().key,
        "no-proxy"
    );
    assert_eq!(parse(json!({"no-proxy": [1]})).unwrap_err().key, "no-proxy");
}

#[test]
fn api_url_may_be_an_ordered_list_each_under_the_https_rule() {
    let c = parse(json!({"api-url": ["https://eu.license.example", "https://us.license.example"]}))
        .unwrap();
    let hosts: Vec<_> = c
        .api_urls
        .iter()
        .map(|u| u.host_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["eu.license.example", "us.license.example"]);
    assert_eq!(parse(json!({"api-url": []})).unwrap_err().key, "api-url");
    let e = parse(json!({"api-url": ["https://a.example", "http://b.example"]})).unwrap_err();
    assert_eq!(e.key, "api-url");
    assert!(e.message.contains("must use https"), "{e}");
    assert_eq!(parse(json!({"api-url": [1]})).unwrap_err().key, "api-url");
    let nine: Vec<String> = (0..9).map(|i| format!("https://h{i}.example")).collect();
    assert_eq!(parse(json!({"api-url": nine})).unwrap_err().key, "api-url");
}

#[test]
fn ca_file_must_be_a_readable_pem_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let e =
        parse(json!({"ca-file": dir.path().join("missing.pem").to_str().unwrap()})).unwrap_err();
    assert_eq!(e.key, "ca-file");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let e = parse(json!({"ca-file": empty.to_str().unwrap()})).unwrap_err();
    assert!(e.message.contains("no PEM CERTIFICATE"), "{e}");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, CA_PEM).unwrap();
    let c = parse(json!({"ca-file": ca.to_str().unwrap()})).unwrap();
    let (path, certs) = c.ca_file.unwrap();
    assert_eq!((path, certs.len()), (ca, 1));
    assert_eq!(parse(json!({"ca-file": 3})).unwrap_err().key, "ca-file");
    #[cfg(unix)]
    {
        let e = parse(json!({"ca-file": "/dev/zero"})).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
    }
}
