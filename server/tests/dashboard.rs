//! The admin dashboard (`GET /admin/`) in a real headless Chromium, driven over WebDriver:
//! sign in, watch a session appear when an engine acquires, turn offline when it lapses,
//! a license get flagged for offline abuse, and customer text shown as text. The page
//! refreshes itself; after signing in, nothing is clicked to see those changes.

mod common;

use std::ffi::CString;

use common::webdriver::Browser;
use common::*;
use lic4es::ffi::*;
use license_server::usage::HourUsage;
use serde_json::{json, Value};

const TTL: i64 = 2 * 300 + 60;
const DAY: i64 = 86_400;
const HOSTILE_HW: &str =
    "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">";
const HOSTILE_ORG: &str = "<b>Acme</b><script>document.title='pwned'</script>";

/// Where the screenshot goes: the workspace's `target/test-artifacts/`.
fn artifact(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
#[cfg_attr(lic4es_no_chromium, ignore = "needs chromium-driver")]
fn the_dashboard_shows_sessions_lapses_abuse_and_escapes_customer_text() {
    // The engine below checks its seat token against the system clock: the server issues
    // it at the real time.
    let s = Server::on_wall_time();
    let (license, key) = s.license(
        "pro",
        json!({"id": "org.acme", "seats": 3, "offline_grace_days": 7, "org_name": HOSTILE_ORG}),
    );
    let (shared, shared_key) = s.license(
        "pro",
        json!({"id": "org-shared", "seats": 1, "offline_grace_days": 7, "org_name": "Turns Ltd"}),
    );
    // Ids are customer input too, but outside `[A-Za-z0-9._-]` they are refused outright.
    let (status_code, _) = s.admin(
        "POST",
        "/admin/licenses",
        json!({"id": "<script>", "tier": "pro", "days": 30}),
    );
    assert_eq!(status_code, 400);

    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(profile.path());
    let base = format!("http://127.0.0.1:{}", s.port);
    b.goto(&format!("{base}/admin"));
    assert_eq!(b.run("return document.title"), "lic4es license server");

    // A wrong token is refused and not kept.
    b.type_into("#token", "not-the-token");
    b.click("#login");
    b.wait_text("#login-error", "the refusal", |t| {
        t.contains("Wrong admin token")
    });
    assert_eq!(
        b.run("return sessionStorage.length + localStorage.length"),
        0
    );
    b.type_into("#token", ADMIN);
    b.click("#login");
    b.wait_text("#sessions", "an empty list", |t| t.contains("no sessions"));
    assert_eq!(
        b.run("return [sessionStorage.getItem('lic4es-admin-token'), localStorage.length, location.href]"),
        json!([ADMIN, 0, format!("{base}/admin/")]),
        "the token stays in the tab's session, out of the URL"
    );

    // An engine acquires a seat: its session appears, online.
    let cache = tempfile::tempdir().unwrap();
    let config = json!({
        "api-key": key,
        "api-url": base,
        "public-keys": s.state.key.public_jwks(),
        "cache-dir": cache.path().to_str().unwrap(),
        "seat": {"enabled": true},
    });
    let config = CString::new(config.to_string()).unwrap();
    assert_eq!(lic_init(config.as_ptr()), lic_result::LIC_OK);
    let st = engine_status();
    let sid = st["seat"]["session_id"].as_str().unwrap().to_string();
    let row = |t: &str, needle: &str| -> Option<String> {
        t.lines().find(|l| l.contains(needle)).map(str::to_string)
    };
    let seen = b.wait_text("#sessions", "the engine's session online", |t| {
        row(t, &sid).is_some_and(|r| r.contains("online"))
    });
    assert!(row(&seen, &sid).unwrap().contains(&license));
    b.wait_text("#licenses", "a seat in use", |t| {
        row(t, &license).is_some_and(|r| r.contains("1 / 3"))
    });

    // A customer's hardware id with markup in it.
    let (code, v) = s.acquire(
        &key,
        json!({"hardware_id": HOSTILE_HW, "instance_id": "i-2", "version": "1", "nonce": NONCE}),
    );
    assert_eq!(code, 200, "{v}");
    let shown = b.wait_text("#sessions", "the hostile hardware id as text", |t| {
        t.contains(HOSTILE_HW)
    });
    assert!(shown.contains(HOSTILE_HW));
    b.wait_text("#licenses", "the organisation as text", |t| {
        t.contains(HOSTILE_ORG)
    });

    // The engine goes quiet past its TTL (the server's clock moves): offline, with the
    // grace left.
    s.advance(TTL + 60);
    let seen = b.wait_text("#sessions", "the engine's session offline", |t| {
        row(t, &sid).is_some_and(|r| r.contains("offline"))
    });
    let r = row(&seen, &sid).unwrap();
    assert!(r.contains("2m 0s"), "offline for TTL + 60 s: {r}");
    assert!(r.contains("6d 23h"), "grace left: {r}");
    b.wait_text("#count-offline", "two offline", |t| t == "2");

    // Six machines take turns on one seat, each coming back after four days offline
    // from its cached token (no session left to end: the acquire reports the period).
    for i in 0..6 {
        let (code, v) = s.acquire(
            &shared_key,
            json!({"hardware_id": format!("turns-{i}"), "instance_id": "t", "version": "1",
                   "nonce": NONCE, "offline_cycles_30d": 1,
                   "offline_since": lic4es::clock::rfc3339(s.state.now() - 4 * DAY)}),
        );
        assert_eq!(code, 200, "{v}");
        let (code, _) = s.release(&shared_key, json!({"session_id": v["session_id"]}));
        assert_eq!(code, 204);
    }
    let abuse = b.wait_text("#abuse", "the flagged license", |t| {
        row(t, &shared).is_some_and(|r| r.contains("yes"))
    });
    assert!(row(&abuse, &shared).unwrap().contains("6"), "{abuse}");
    b.wait_text("#count-flagged", "one flagged", |t| t == "1");

    // The audit trail, live, then filtered to one license.
    b.wait_text("#audit", "the lapse", |t| t.contains("lapse"));
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = artifact("admin-dashboard.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    b.type_into("#audit-license", &shared);
    b.click("#audit-apply");
    let trail = b.wait_text("#audit", "the shared license's trail", |t| {
        t.contains("release") && !t.contains("lapse")
    });
    assert!(trail
        .lines()
        .skip(1)
        .all(|l| l.contains(&shared) || l.contains("no entries")));

    // Nothing customer-supplied ran or became markup.
    assert_eq!(b.run("return document.title"), "lic4es license server");
    assert_eq!(
        b.run("return document.querySelectorAll('main img, main script, main b').length"),
        0
    );

    // The license's seat usage over the last 30 days, drawn by the page: its highest
    // point is the API's peak, on the API's day, against the license's seats.
    let day = s.state.now() - s.state.now().rem_euclid(DAY);
    s.state
        .store
        .add_usage(&[
            HourUsage::sample(&license, day - 10 * DAY + 5 * 3600, 2, 0),
            HourUsage::sample(&license, day - 3 * DAY + 5 * 3600, 3, 1),
            HourUsage::refusal(&license, day - 3 * DAY + 5 * 3600, 3),
        ])
        .unwrap();
    b.type_into("#usage-license", &license);
    b.click("#usage-show");
    b.wait_text("#usage-summary", "the usage chart", |t| {
        t.contains("refusals")
    });
    let (code, report) = s.admin(
        "GET",
        &format!("/admin/usage?license={license}&bucket=day"),
        Value::Null,
    );
    assert_eq!(code, 200, "{report}");
    let rows = report["rows"].as_array().unwrap();
    let top = rows
        .iter()
        .max_by_key(|r| r["peak"].as_u64().unwrap())
        .unwrap();
    assert_eq!(top["peak"], 3, "{report}");
    let drawn = b.run(
        "const p = document.querySelector('#usage-chart svg #usage-peak'); \
         return p && [p.dataset.value, p.dataset.day, \
           document.querySelectorAll('#usage-chart svg circle').length, \
           document.querySelector('#usage-limit').dataset.value]",
    );
    assert_eq!(
        drawn,
        json!(["3", &top["start"].as_str().unwrap()[..10], rows.len(), "3"]),
        "the chart's peak point and limit line"
    );
    let png = b.screenshot();
    std::fs::write(artifact("admin-usage.png"), &png).unwrap();

    // Signing out forgets the token.
    b.click("#logout");
    b.wait_text("#login-form", "the sign-in form", |t| {
        t.contains("Admin token")
    });
    assert_eq!(b.run("return sessionStorage.length"), 0);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}

#[test]
fn the_page_is_served_with_a_strict_content_security_policy() {
    let s = Server::start();
    for (path, ty) in [
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let head = common::http::exchange(
            s.port,
            &format!("GET {path} HTTP/1.1"),
            &[],
            b"",
            std::time::Duration::from_secs(10),
        )
        .expect("an answer")
        .head;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {ty}")),
            "{path}: {head}"
        );
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"));
    }
    // The page holds no secret and needs no token; the API behind it does.
    let (code, _) = s.json("GET", "/admin/sessions", None, Value::Null);
    assert_eq!(code, 401);
    let (code, _) = s.call("GET", "/admin", None, b"");
    assert_eq!(code, 308);
    // No inline script or handler the policy would have to allow.
    let page = String::from_utf8(s.call("GET", "/admin/", None, b"").1).unwrap();
    assert!(!page.contains("<script>") && !page.contains("onclick"));
    let script = String::from_utf8(s.call("GET", "/admin/app.js", None, b"").1).unwrap();
    assert!(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML"));
}

/// The claims of a JWT, unverified (the engine's checks are tested elsewhere).
fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
#[cfg_attr(lic4es_no_chromium, ignore = "needs chromium-driver")]
fn the_dashboard_answers_air_gapped_sites_and_relays_and_takes_a_deactivation_code() {
    use lic4es::offline::{ActivationRequest, DeactivationCode};

    let s = Server::on_wall_time();
    let (license, _) = s.license(
        "team",
        json!({"id": "org-site", "seats": 1, "offline_activation_days": 30,
               "relay_grant_days": 30}),
    );
    let request = |hw: &str| ActivationRequest {
        license_id: license.clone(),
        hardware_id: hw.into(),
        instance_id: "i-site".into(),
        version: "1".into(),
        nonce: NONCE.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(profile.path());
    b.goto(&format!("http://127.0.0.1:{}/admin/", s.port));
    b.type_into("#token", ADMIN);
    b.click("#login");
    b.wait_text("#sessions", "an empty list", |t| t.contains("no sessions"));

    // The site's one line pasted: answered, the response shown and offered as a file.
    b.type_into("#activate-request", &request("hw-site").to_line());
    b.click("#activate");
    let said = b.wait_text("#activate-result", "the answer", |t| !t.is_empty());
    assert!(
        said.contains("of org-site until") && said.contains("holding a seat"),
        "{said}"
    );
    let token = b.run("return document.getElementById('activate-response').value");
    let c = claims(token.as_str().unwrap());
    assert_eq!(
        (&c["src"], &c["hwid"], &c["nonce"], &c["sub"]),
        (
            &json!("offline"),
            &json!("hw-site"),
            &json!(NONCE),
            &json!("org-site")
        ),
        "{c}"
    );
    let href = b.run("return document.getElementById('activate-download').href");
    assert!(href.as_str().unwrap().starts_with("blob:"), "{href}");
    b.wait_text("#sessions", "the activation's seat", |t| {
        t.contains(c["jti"].as_str().unwrap())
    });

    // Its JSON pasted for another machine: the one seat is taken, and the page says so.
    b.run("document.getElementById('activate-request').value = ''");
    let json_form = serde_json::to_string(&request("hw-other")).unwrap();
    b.type_into("#activate-request", &json_form);
    b.click("#activate");
    let refused = b.wait_text("#activate-result", "the refusal", |t| {
        t.starts_with("Not answered")
    });
    assert!(refused.contains("seats"), "{refused}");
    assert!(b.run("return document.getElementById('activate-answer').hidden") == json!(true));

    // The deactivation code frees the seat, once.
    let code = DeactivationCode::new(c["jti"].as_str().unwrap(), "hw-site", NONCE).to_line();
    b.type_into("#deactivate-code", &code);
    b.click("#deactivate");
    let freed = b.wait_text("#deactivate-result", "the deactivation", |t| !t.is_empty());
    assert!(freed.contains("deactivated; its seat is free"), "{freed}");
    b.wait_text("#sessions", "the seat gone", |t| t.contains("no sessions"));
    b.type_into("#deactivate-code", &code);
    b.click("#deactivate");
    let again = b.wait_text("#deactivate-result", "the second try", |t| {
        t.starts_with("Not taken")
    });
    assert!(again.contains("deactivated"), "{again}");

    // An on-site relay's request: the grant, its one seat held.
    let relay_keys: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/keys/jwks-other.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let grant_request = lic4es::offline::GrantRequest {
        license_id: license.clone(),
        seats: 1,
        hardware_id: "relay-hw".into(),
        public_key: relay_keys["keys"][0].clone(),
        nonce: NONCE.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        usage: None,
    };
    b.type_into("#grant-request", &grant_request.to_line());
    b.click("#grant");
    let granted = b.wait_text("#grant-result", "the grant", |t| !t.is_empty());
    assert!(
        granted.contains("of 1 seats of org-site") && granted.contains("its seats held"),
        "{granted}"
    );
    let grant = b.run("return document.getElementById('grant-response').value");
    let g = claims(grant.as_str().unwrap());
    assert_eq!(
        (&g["src"], &g["seats"]),
        (&json!("relay_grant"), &json!(1)),
        "{g}"
    );
    assert_eq!(g["cnf"]["jwk"], relay_keys["keys"][0]);
    b.wait_text("#sessions", "the relay's seat", |t| t.contains("rel-"));

    // Signing out takes the responses off the page.
    b.click("#logout");
    assert_eq!(
        b.run("return [document.getElementById('activate-response').value, document.getElementById('grant-response').value]"),
        json!(["", ""])
    );
}
