//! HTTPS on the listener (`docs/how-to/tls.md`): the configured certificate, a private CA the test
//! makes, a certificate rotated under the running server by SIGHUP, and what a
//! handshake costs per new connection.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::tls::{client_config, https_get, TestCa};
use common::ADMIN;
use serde_json::Value;

fn config(dir: &Path, tls: Option<(&Path, &Path)>) -> PathBuf {
    let data = dir.join(format!("data-{}", tls.is_some()));
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\ndata-dir = {data:?}\nmetrics-listen = \"none\"\n\
         admin-token = {ADMIN:?}\n"
    );
    if let Some((cert, key)) = tls {
        text.push_str(&format!("tls-cert = {cert:?}\ntls-key = {key:?}\n"));
    }
    let path = dir.join(format!("server-{}.toml", tls.is_some()));
    std::fs::write(&path, text).unwrap();
    path
}

fn der_of(pem: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(pem)
        .unwrap()
        .to_vec()
}

fn sighup(server: &ServerProcess) {
    // SAFETY: signals a child of this process.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
}

#[test]
fn the_listener_speaks_https_and_takes_a_renewed_certificate_on_sighup() {
    let ca = TestCa::new("lic4es test CA");
    let (cert, key) = ca.issue("server", &["license.test", "127.0.0.1"]);
    let server = ServerProcess::start(&config(ca.dir(), Some((&cert, &key))));
    let trusting = client_config(&ca.ca_file);

    let seen = https_get(server.port, &trusting, "license.test", "/healthz").unwrap();
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.leaf, der_of(&cert), "the configured certificate");
    let seen = https_get(
        server.port,
        &trusting,
        "127.0.0.1",
        "/.well-known/jwks.json",
    )
    .unwrap();
    assert_eq!(seen.status, 200);

    // A client that trusts another CA, or asks for a name the certificate lacks, is
    // refused in the handshake; plain HTTP gets no answer.
    let stranger = TestCa::new("another CA");
    let e = https_get(
        server.port,
        &client_config(&stranger.ca_file),
        "license.test",
        "/healthz",
    )
    .err()
    .expect("refused");
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    assert!(https_get(server.port, &trusting, "other.test", "/healthz").is_err());
    let (status, _) = common::process::request(server.port, "GET", "/healthz", ADMIN, &Value::Null);
    assert_ne!(status, 200, "plain HTTP is not served on an HTTPS listener");

    // Renewed on disk: new connections keep the old certificate until SIGHUP.
    ca.issue_into(&cert, &key, &["license.test", "127.0.0.1"]);
    let renewed = der_of(&cert);
    let seen = https_get(server.port, &trusting, "license.test", "/healthz").unwrap();
    assert_ne!(seen.leaf, renewed);
    sighup(&server);
    server.expect("tls-cert and tls-key read again");
    let seen = https_get(server.port, &trusting, "license.test", "/healthz").unwrap();
    assert_eq!(
        seen.leaf, renewed,
        "the renewed certificate, without a restart"
    );

    // A broken renewal keeps the certificate in use.
    std::fs::write(&cert, "-----BEGIN NOTHING-----\n").unwrap();
    sighup(&server);
    let lines = server.expect("the certificate in use stays");
    assert!(lines.iter().any(|l| l.contains("ERROR")), "{lines:?}");
    let seen = https_get(server.port, &trusting, "license.test", "/healthz").unwrap();
    assert_eq!((seen.status, seen.leaf), (200, renewed));
    server.stop();
}

#[test]
fn half_a_certificate_pair_or_a_bad_file_keeps_the_server_from_starting() {
    let ca = TestCa::new("lic4es test CA");
    let (cert, key) = ca.issue("server", &["license.test"]);
    let cases = [
        (
            format!("tls-cert = {cert:?}\n"),
            "tls-cert and tls-key go together",
        ),
        (
            format!(
                "tls-cert = {cert:?}\ntls-key = {:?}\n",
                ca.dir().join("missing.key")
            ),
            "tls-key `",
        ),
        (
            format!("tls-cert = {key:?}\ntls-key = {key:?}\n"),
            "tls-cert `",
        ),
    ];
    for (extra, want) in cases {
        let path = common::process::server_toml(
            ca.dir(),
            &format!("listen = \"127.0.0.1:0\"\nmetrics-listen = \"none\"\n{extra}"),
        );
        let err = common::process::refused_to_serve(&path);
        assert!(err.contains(want), "{extra}: {err}");
        assert!(!err.contains("listening on"), "{err}");
    }
}

/// Not a timing goal: the figure for the notes, printed (`--nocapture`).
#[test]
fn a_new_connection_costs_a_handshake_measured_against_plain_http() {
    let ca = TestCa::new("lic4es test CA");
    let (cert, key) = ca.issue("server", &["license.test"]);
    let tls = ServerProcess::start(&config(ca.dir(), Some((&cert, &key))));
    let plain = ServerProcess::start(&config(ca.dir(), None));
    let trusting = client_config(&ca.ca_file);
    let n = 200;
    let rate = |f: &dyn Fn() -> u16| {
        let start = Instant::now();
        for _ in 0..n {
            assert_eq!(f(), 200);
        }
        n as f64 / start.elapsed().max(Duration::from_micros(1)).as_secs_f64()
    };
    let over_tls = rate(&|| {
        https_get(tls.port, &trusting, "license.test", "/healthz")
            .unwrap()
            .status
    });
    let over_plain =
        rate(&|| common::process::request(plain.port, "GET", "/healthz", ADMIN, &Value::Null).0);
    eprintln!(
        "new connection per request, GET /healthz, {n} in a row: HTTPS {over_tls:.0}/s, \
         plain {over_plain:.0}/s (HTTPS at {:.2}x plain)",
        over_tls / over_plain
    );
    tls.stop();
    plain.stop();
}
