//! Air-gapped activation through the real processes: a site's `lic4es activate-offline`,
//! the vendor's `license-server offline activate` against a running server, the site's
//! `lic4es install`, the engine on its paid tier from that file alone, the seat counted by
//! the server (across a restart), and `deactivate-offline` freeing it. Every site command
//! runs in an empty network namespace (`unshare --map-root-user --net`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::{
    acquire_as, api_key, cli, engine_config, lic4es_cli, listing, request, vendor, ServerProcess,
    Vendor,
};
use common::ADMIN;
use serde_json::{json, Value};

/// `lic4es ARGS` as the air-gapped site runs it: in a network namespace of its own (in a
/// user namespace, so no root is needed), where not even loopback is up: nothing it does
/// can reach anything.
fn lic4es(args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--map-root-user", "--net"])
        .arg(lic4es_cli())
        .args(args)
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
        .output()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An engine config of a site with no route to the vendor: keys and a cache, nothing else.
fn site(dir: &Path, name: &str, jwks: &Value) -> PathBuf {
    engine_config(dir, name, jwks, json!({}))
}

/// `lic4es activate-offline` of the site `config` for `license`: the request's one line.
fn activate_offline(config: &Path, license: &str, extra: &[&str]) -> String {
    let config = config.to_str().unwrap();
    let args = ["activate-offline", "--config", config, "--license", license];
    ok(lic4es(&[&args[..], extra].concat()), "activate-offline")
}

fn status(config: &Path) -> Value {
    let out = lic4es(&["status", "--config", config.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "status: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// An acquire of one seat of the license with its API key: the HTTP status.
fn acquire(port: u16, key: &str, n: u32) -> u16 {
    acquire_as(port, key, &format!("hw-online-{n}"), n)
}

#[test]
fn an_air_gapped_site_runs_from_its_response_holds_a_seat_and_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let Vendor { port, config, jwks } = vendor(dir.path());
    // A Team license of one seat whose own terms allow 30-day activations (Team's policy
    // allows none), and a Pro one that keeps its tier's: none.
    let key = api_key(
        &config,
        "team",
        "org-site",
        365,
        &["--seats", "1", "--offline-activation-days", "30"],
    );
    cli(
        &config,
        &[
            "api-key", "create", "--tier", "pro", "--sub", "org-pro", "--days", "365",
        ],
    );
    let mut server = ServerProcess::start(&config);
    let url = format!("http://127.0.0.1:{port}");

    // The site writes its request; the vendor answers it.
    let site_a = site(dir.path(), "a", &jwks);
    let out = dir.path().join("request.json");
    let line = activate_offline(&site_a, "org-site", &["--out", out.to_str().unwrap()]);
    assert!(!line.contains(['{', '\n', ' ']), "one line: {line}");
    let req_file = dir.path().join("request.txt");
    std::fs::write(&req_file, &line).unwrap();
    let response = dir.path().join("response.jwt");
    let activate = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .args(["--config", config.to_str().unwrap(), "offline", "activate"])
        .arg(&req_file)
        .args(["--url", &url, "--out", response.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&activate.stderr);
    assert!(activate.status.success(), "{said}");
    assert!(said.contains("holding a seat"), "{said}");
    // The JSON form of the same request is answered too: not here, the seat is taken.
    let (code, refused) = request(
        port,
        "POST",
        "/admin/offline-activations",
        ADMIN,
        &serde_json::from_str(&std::fs::read_to_string(dir.path().join("request.json")).unwrap())
            .unwrap(),
    );
    common::refused(code, &refused, 403, "no_seats_available");

    // Installed, the site runs Team from that file alone: no API key, no server.
    let installed = ok(
        lic4es(&[
            "install",
            "--config",
            site_a.to_str().unwrap(),
            response.to_str().unwrap(),
        ]),
        "install",
    );
    assert!(
        installed.starts_with("installed: org-site team until "),
        "{installed}"
    );
    let s = status(&site_a);
    assert_eq!(s["tier"], "team", "{s}");
    assert_eq!(s["source"], "offline", "{s}");
    assert_eq!(s["mode"], "offline_activation", "{s}");

    // The server counts it, also after a restart (its seats are in memory).
    assert_eq!(
        acquire(port, &key, 1),
        403,
        "the one seat is the activation's"
    );
    server.kill();
    let server = ServerProcess::start(&config);
    assert_eq!(acquire(port, &key, 2), 403, "held again after the restart");
    let sessions = listing(port, "sessions", "org-site");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert!(sessions[0]["session_id"]
        .as_str()
        .unwrap()
        .starts_with("off-"));

    // Another machine cannot use the response: not installed over its own request, and
    // not as its token cache either.
    let site_b = site(dir.path(), "b", &jwks);
    activate_offline(&site_b, "org-site", &[]);
    let out = lic4es(&[
        "install",
        "--config",
        site_b.to_str().unwrap(),
        response.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another machine"), "{err}");
    std::fs::copy(&response, dir.path().join("b-cache/license-cache.jwt")).unwrap();
    assert_eq!(status(&site_b)["tier"], "community");

    // A request cut short in the copying is told as such; a license whose policy allows
    // no activation says so.
    let (code, body) = request(
        port,
        "POST",
        "/admin/offline-activations",
        ADMIN,
        &json!({ "request": &line[..line.len() / 2] }),
    );
    common::refused(code, &body, 400, "invalid_request");
    let pro_site = site(dir.path(), "pro", &jwks);
    let pro_line = activate_offline(&pro_site, "org-pro", &[]);
    let (code, body) = request(
        port,
        "POST",
        "/admin/offline-activations",
        ADMIN,
        &json!({ "request": pro_line }),
    );
    common::refused(code, &body, 403, "offline_activation_not_allowed");

    // Deactivated: the file is gone, the engine is Community, the code frees the seat once.
    let code = ok(
        lic4es(&["deactivate-offline", "--config", site_a.to_str().unwrap()]),
        "deactivate-offline",
    );
    assert_eq!(status(&site_a)["tier"], "community");
    let freed = cli(&config, &["offline", "deactivate", &code, "--url", &url]);
    assert!(freed.contains("deactivated, its seat freed"), "{freed}");
    assert_eq!(acquire(port, &key, 3), 200, "the seat is free again");
    let again = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "offline",
            "deactivate",
            &code,
        ])
        .args(["--url", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("deactivated"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let audit = listing(port, "audit", "org-site");
    let kinds: Vec<&str> = common::strings(&audit, "type");
    for k in ["offline_activate", "offline_deactivate"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}: {audit}");
    }
    drop(server);
}
