//! The on-site relay (`license-server relay`, `docs/how-to/relay.md`): it serves engines
//! that reach only it the seats of the vendor's grant and no more, renews its grant with
//! its usage, which reaches the vendor's report, and stops serving when the grant ends.

mod common;

use std::sync::Arc;

use common::process::{
    acquire_as, api_key, cli, engine_config, lic4es_status, request, vendor, ServerProcess, Vendor,
};
use common::{free_port, Server};
use lic4es::protocol::paths;
use lic4es::Tier;
use license_server::relay::{self, GrantError, Relay, RelayConfig, RelayError};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn relay_config(dir: &std::path::Path, key: &str, upstream: Option<u16>) -> RelayConfig {
    let up = upstream.map_or(String::new(), |p| {
        format!("upstream = \"http://127.0.0.1:{p}\"\n")
    });
    RelayConfig::parse(&format!(
        "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\napi-key = {key:?}\n{up}",
        dir.join("relay").to_str().unwrap()
    ))
    .unwrap()
}

/// A relay in this process on `clock`, serving on a loopback port until dropped.
struct RelayServer {
    relay: Arc<Relay>,
    port: u16,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RelayServer {
    fn open(
        config: RelayConfig,
        clock: Arc<dyn lic4es::clock::Clock>,
    ) -> Result<RelayServer, RelayError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let relay = rt.block_on(Relay::open(config, clock))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(license_server::serve(
            listener,
            relay.state().clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(RelayServer {
            relay,
            port,
            rt,
            stop: Some(stop),
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn maintain(&self) -> Result<Option<String>, RelayError> {
        self.rt.block_on(self.relay.maintain())
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }
}

#[test]
fn a_relay_serves_its_grant_s_seats_renews_with_its_usage_and_stops_at_the_grant_s_end() {
    let s = Server::on_wall_time();
    let (license, key) = s.license(
        "enterprise",
        json!({"id": "org-site", "seats": 3, "days": 365}),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = relay_config(dir.path(), &key, Some(s.port));

    // The relay's first grant, online: two of the license's three seats.
    let req = relay::request(&config, &license, 2, s.state.now()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(relay::send(&config, &req)).unwrap();
    let key_file = config.key_path();
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&config.grant_path()), 0o600);
    assert_eq!(mode(key_file.parent().unwrap()), 0o700);

    // The vendor holds the grant's two seats: one is left.
    assert_eq!(acquire_as(s.port, &key, "hw-vendor-1", 1), 200);
    assert_eq!(acquire_as(s.port, &key, "hw-vendor-2", 2), 403);

    let r = RelayServer::open(config.clone(), s.clock.clone()).unwrap();
    let g = r.relay.grant();
    assert_eq!((g.seats, g.tier.as_str()), (2, "enterprise"));

    // Engines that reach only the relay, trusting only the vendor's keys: two run
    // Enterprise on the relay's tokens, the third is refused a seat.
    let on_relay = json!({"api-url": r.url(), "seat.enabled": true});
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, logs_a) = common::engine::engine(&s, dirs[0].path(), &key, on_relay.clone());
    let (b, _) = common::engine::engine(&s, dirs[1].path(), &key, on_relay.clone());
    assert_eq!(a.tier(), Tier::Enterprise, "{}", logs_a.dump());
    assert_eq!(b.tier(), Tier::Enterprise);
    let st = common::engine::status(&a);
    assert_eq!(st["relay"]["seats"], 2, "{st}");
    assert_eq!(st["relay"]["key_id"], json!(g_kid(&g.jwt)), "{st}");
    let (c, logs_c) = common::engine::engine(&s, dirs[2].path(), &key, on_relay.clone());
    assert_eq!(c.tier(), Tier::Community, "{}", logs_c.dump());
    assert!(logs_c.has("All seats in use (2/2)"), "{}", logs_c.dump());
    for e in [a, b, c] {
        e.shutdown().unwrap();
    }
    // The relay's API is the license's: another key is refused.
    assert_eq!(
        acquire_as(r.port, "lic_not-this-license-key", "hw-x", 9),
        401
    );

    // Half the grant's life later the relay renews it, reporting its usage: the vendor's
    // report for that hour gains the site's refusal (beside the vendor's own, above).
    let started = g.issued_at;
    let hour = started - started.rem_euclid(3_600);
    let vendor_hour = || {
        let (status, report) = s.admin(
            "GET",
            &format!(
                "/admin/usage?license={license}&bucket=hour&from={}&to={}",
                lic4es::clock::rfc3339(hour),
                lic4es::clock::rfc3339(hour + 3_600)
            ),
            Value::Null,
        );
        assert_eq!(status, 200, "{report}");
        report["rows"][0].clone()
    };
    let before = vendor_hour();
    assert_eq!(before["refusals"], 1, "the vendor's own: {before}");
    s.advance(16 * DAY);
    let said = r.maintain().unwrap().expect("a renewal");
    assert!(said.contains("1 hours of usage reported"), "{said}");
    let renewed = r.relay.grant();
    assert_eq!(renewed.issued_at, started + 16 * DAY);
    assert_ne!(renewed.id, g.id);
    assert_eq!(r.maintain().unwrap(), None, "the new grant is not due");
    let after = vendor_hour();
    assert_eq!(after["refusals"], 2, "{after}");
    let (_, audit) = s.admin(
        "GET",
        &format!("/admin/audit?license={license}"),
        Value::Null,
    );
    assert!(
        audit
            .to_string()
            .contains("the site reported 1 hours of use, peak 2 seats, 1 refusals"),
        "{audit}"
    );
    // The renewal took over the grant's seats: still one left at the vendor (its first
    // session lapsed meanwhile).
    assert_eq!(acquire_as(s.port, &key, "hw-vendor-3", 3), 200);
    assert_eq!(acquire_as(s.port, &key, "hw-vendor-4", 4), 403);

    // An answer to a carried request dropped into the grant file (an air-gapped
    // renewal) is served at the relay's next look, without a restart.
    let req = relay::request(&config, &license, 2, s.state.now()).unwrap();
    let (status, answer) = s.admin(
        "POST",
        "/admin/relay-grants",
        json!({"request": req.to_line()}),
    );
    assert_eq!(status, 201, "{answer}");
    std::fs::write(config.grant_path(), answer["grant"].as_str().unwrap()).unwrap();
    let said = r.maintain().unwrap().expect("the dropped grant");
    let dropped = r.relay.grant();
    assert_eq!(json!(dropped.id), answer["grant_id"], "{said}");
    assert_eq!(r.maintain().unwrap(), None);

    // Past the renewed grant's end the relay serves nothing, and a relay that cannot ask
    // the vendor does not start on it.
    s.advance(31 * DAY);
    assert_eq!(acquire_as(r.port, &key, "hw-late", 10), 403);
    drop(r);
    let offline = relay_config(dir.path(), &key, None);
    match RelayServer::open(offline, s.clock.clone()) {
        Err(RelayError::Grant(_, GrantError::Ended(end))) => {
            assert_eq!(end, dropped.expires_at)
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a relay started on a grant that ended"),
    }
}

/// The `kid` of the relay key a grant confirms.
fn g_kid(grant: &str) -> String {
    use base64::Engine as _;
    let payload = grant.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["cnf"]["jwk"]["kid"].as_str().unwrap().to_string()
}

/// The relay as an operator runs it, on a site the vendor never hears from: its grant
/// request carried to the vendor's CLI and the answer carried back; `license-server relay`
/// serves its seats to `lic4es`, and refuses the one past them.
#[test]
fn an_air_gapped_relay_is_granted_by_request_and_response_and_serves_lic4es() {
    let dir = tempfile::tempdir().unwrap();
    let Vendor {
        port,
        config: server_config,
        jwks,
    } = vendor(dir.path());
    let key = api_key(
        &server_config,
        "enterprise",
        "org-plant",
        365,
        &["--seats", "2"],
    );
    let vendor = ServerProcess::start(&server_config);

    let relay_port = free_port();
    let relay_toml = dir.path().join("relay.toml");
    std::fs::write(
        &relay_toml,
        format!(
            "listen = \"127.0.0.1:{relay_port}\"\ndata-dir = {:?}\napi-key = {key:?}\n",
            dir.path().join("relay-data").to_str().unwrap()
        ),
    )
    .unwrap();
    // Unknown keys are errors, as for `serve`.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("api-key = {key:?}\nupstrem = \"x\"\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
        .args(["--config", bad.to_str().unwrap(), "relay"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstrem"));

    // Request, carried to the vendor, answered, carried back.
    let request_file = dir.path().join("grant-request.json");
    let line = cli(
        &relay_toml,
        &[
            "relay",
            "request",
            "--license",
            "org-plant",
            "--seats",
            "2",
            "--out",
            request_file.to_str().unwrap(),
        ],
    );
    assert!(!line.contains('{'), "one line: {line}");
    let grant_file = dir.path().join("relay-data/grant.jwt");
    cli(
        &server_config,
        &[
            "offline",
            "grant",
            request_file.to_str().unwrap(),
            "--out",
            grant_file.to_str().unwrap(),
        ],
    );
    // The vendor counts the grant's seats: none left.
    assert_eq!(acquire_as(port, &key, "hw-vendor", 1), 403);
    vendor.stop();

    let relay = ServerProcess::start_args(&relay_toml, &["relay"], |_| {});
    assert_eq!(relay.port, relay_port);

    // `lic4es` on the relay alone: Enterprise, from the relay through the vendor's grant.
    let url = format!("http://127.0.0.1:{relay_port}");
    let seat = json!({"api-url": url, "api-key": key, "seat.enabled": true});
    let engine = engine_config(dir.path(), "engine", &jwks, seat);
    let st = lic4es_status(&engine);
    assert_eq!(st["tier"], "enterprise", "{st}");
    assert_eq!(st["relay"]["seats"], 2, "{st}");

    // Its two seats and no more.
    assert_eq!(acquire_as(relay_port, &key, "hw-1", 1), 200);
    assert_eq!(acquire_as(relay_port, &key, "hw-2", 2), 200);
    let body = json!({"hardware_id": "hw-3", "instance_id": "i-3", "version": "1",
                      "nonce": format!("{:032x}", 3)});
    let (status, refused) = request(relay_port, "POST", paths::ACQUIRE, &key, &body);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "no_seats_available", "{refused}");
    relay.stop();

    // Over the site's network the relay speaks TLS with the site's own CA, which the
    // engines are given as `ca-file` (plain HTTP they speak only on loopback).
    let ca = common::tls::TestCa::new("plant CA");
    let (cert, tls_key) = ca.issue("relay", &["localhost"]);
    let mut toml = std::fs::read_to_string(&relay_toml).unwrap();
    toml.push_str(&format!("tls-cert = {cert:?}\ntls-key = {tls_key:?}\n"));
    std::fs::write(&relay_toml, toml).unwrap();
    let relay = ServerProcess::start_args(&relay_toml, &["relay"], |_| {});
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&engine).unwrap()).unwrap();
    config["api-url"] = json!(format!("https://localhost:{relay_port}"));
    config["ca-file"] = json!(ca.ca_file.to_str().unwrap());
    config["cache-dir"] = json!(dir.path().join("tls-engine-cache").to_str().unwrap());
    std::fs::write(&engine, config.to_string()).unwrap();
    let st = lic4es_status(&engine);
    assert_eq!(st["tier"], "enterprise", "{st}");
    assert_eq!(st["seat"]["state"], "online", "{st}");
    assert_eq!(st["relay"]["seats"], 2, "{st}");
    relay.stop();
}
