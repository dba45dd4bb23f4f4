//! Air-gapped activation on the engine's side (`docs/how-to/air-gapped.md`): the request
//! waiting in `cache-dir`, what `install` takes and refuses, the resolution step that
//! uses the installed activation on its machine only and with no grace, the places an
//! activation's token is refused, and the deactivation code. The whole exchange through
//! the real processes is `server/tests/airgap.rs`.

mod common;

use common::*;
use lic4es::config::Config;
use lic4es::engine::airgap::{self, AirgapError, OFFLINE_LICENSE_FILE, OFFLINE_REQUEST_FILE};
use lic4es::log::Level;
use lic4es::offline::{ActivationRequest, DeactivationCode};
use lic4es::{Source, Tier};
use serde_json::{json, Value};

const HWID: &str = "hw-site-1";

fn config(f: &Fixture, extra: Value) -> Config {
    let mut c = f.config(json!({ "seat.hardware-id": HWID }));
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    Config::from_json_with_env(&c.to_string(), &|_| None).unwrap()
}

/// The vendor's answer to `req`, as the server signs it, edited by `edit`.
fn response(req: &ActivationRequest, exp: i64, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims("team", exp);
    c["sub"] = json!(req.license_id);
    c["src"] = json!("offline");
    c["hwid"] = json!(req.hardware_id);
    c["nonce"] = json!(req.nonce);
    c["jti"] = json!("off-1");
    c["grace_days"] = json!(0);
    edit(&mut c);
    mint(&c)
}

#[test]
fn a_request_waits_for_its_response_which_installs_only_here() {
    let f = Fixture::new();
    let cfg = config(&f, json!({}));
    let req = airgap::request(&cfg, "org-site", Some(MACHINE_ID), NOW).unwrap();
    assert_eq!(
        (req.license_id.as_str(), req.hardware_id.as_str()),
        ("org-site", HWID)
    );
    let waiting = std::fs::read_to_string(f.cache_dir().join(OFFLINE_REQUEST_FILE)).unwrap();
    assert_eq!(ActivationRequest::parse(&waiting).unwrap(), req);
    // A bad license id is refused before anything is written for it.
    assert!(matches!(
        airgap::request(&cfg, "", Some(MACHINE_ID), NOW),
        Err(AirgapError::Request(_))
    ));

    // Refused: each says why, and nothing is installed.
    let cases: [(&str, String); 6] = [
        (
            "another machine",
            response(&req, NOW + 30 * DAY, |c| c["hwid"] = json!("hw-other")),
        ),
        (
            "another activation request",
            response(&req, NOW + 30 * DAY, |c| {
                c["nonce"] = json!("ffffffffffffffffffffffffffffffff")
            }),
        ),
        (
            "not issued as one",
            response(&req, NOW + 30 * DAY, |c| c["src"] = json!("static")),
        ),
        ("expired", response(&req, NOW - 2 * DAY, |_| {})),
        ("signature", {
            let t = response(&req, NOW + 30 * DAY, |_| {});
            format!("{}x", &t[..t.len() - 1])
        }),
        ("not a well-formed JWT", "garbage".into()),
    ];
    for (why, token) in cases {
        let e = airgap::install(&cfg, &token, Some(MACHINE_ID), NOW).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert!(!f.cache_dir().join(OFFLINE_LICENSE_FILE).exists(), "{why}");
    }
    let claims = airgap::install(
        &cfg,
        &format!("\n{}\n", response(&req, NOW + 30 * DAY, |_| {})),
        Some(MACHINE_ID),
        NOW,
    )
    .unwrap();
    assert_eq!((claims.sub.as_str(), claims.tier), ("org-site", Tier::Team));
    assert!(
        !f.cache_dir().join(OFFLINE_REQUEST_FILE).exists(),
        "the request is answered"
    );
    // A second response has no request to answer.
    assert!(matches!(
        airgap::install(
            &cfg,
            &response(&req, NOW + DAY, |_| {}),
            Some(MACHINE_ID),
            NOW
        ),
        Err(AirgapError::NoRequest(_))
    ));
}

#[test]
fn the_installed_activation_is_the_tier_on_its_machine_until_its_exp_and_no_longer() {
    let f = Fixture::new();
    let cfg = config(&f, json!({}));
    let req = airgap::request(&cfg, "org-site", Some(MACHINE_ID), NOW).unwrap();
    let token = response(&req, NOW + 30 * DAY, |_| {});
    airgap::install(&cfg, &token, Some(MACHINE_ID), NOW).unwrap();

    // No API key, no server: the activation alone.
    let e = f.start(json!({ "seat.hardware-id": HWID }));
    assert_eq!(e.tier(), Tier::Team, "{}", f.logs.dump());
    let s = e.status();
    assert_eq!(s.source, Source::Offline);
    assert_eq!(s.mode, "offline_activation");
    drop(e);

    // Copied to another machine (another hardware id), the file is refused.
    let other = Fixture::new();
    std::fs::create_dir_all(other.cache_dir()).unwrap();
    std::fs::copy(
        f.cache_dir().join(OFFLINE_LICENSE_FILE),
        other.cache_dir().join(OFFLINE_LICENSE_FILE),
    )
    .unwrap();
    let e = other.start(json!({ "seat.hardware-id": "hw-other" }));
    assert_eq!(e.tier(), Tier::Community);
    other.logs.expect(Level::Warn, "another machine");
    drop(e);

    // A day after its exp, with the config's 14-day grace: no grace for an activation.
    f.clock.advance_millis(31 * DAY * 1000);
    let e = f.start(json!({ "seat.hardware-id": HWID, "grace-period": "14d" }));
    assert_eq!(e.tier(), Tier::Community);
    f.logs.expect(Level::Warn, "an activation has no grace");
    assert!(
        f.cache_dir().join(OFFLINE_LICENSE_FILE).exists(),
        "kept: its deactivation code is still wanted"
    );
}

#[test]
fn an_activation_s_token_is_refused_as_key_and_as_the_token_cache() {
    let f = Fixture::new();
    let cfg = config(&f, json!({}));
    let req = airgap::request(&cfg, "org-site", Some(MACHINE_ID), NOW).unwrap();
    let token = response(&req, NOW + 30 * DAY, |_| {});
    let e = f.start(json!({ "seat.hardware-id": HWID, "key": token }));
    assert_eq!(e.tier(), Tier::Community);
    f.logs.expect(Level::Warn, "air-gapped activation's token");
    drop(e);
    let f = Fixture::new();
    f.write_cache(&token);
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Community, "{}", f.logs.dump());
    f.logs.expect(Level::Warn, "air-gapped activation's token");
}

#[test]
fn deactivation_deletes_the_activation_and_prints_a_code_only_its_nonce_verifies() {
    let f = Fixture::new();
    let cfg = config(&f, json!({}));
    assert!(matches!(
        airgap::deactivate(&cfg),
        Err(AirgapError::NotInstalled(_))
    ));
    let req = airgap::request(&cfg, "org-site", Some(MACHINE_ID), NOW).unwrap();
    airgap::install(
        &cfg,
        &response(&req, NOW + 30 * DAY, |_| {}),
        Some(MACHINE_ID),
        NOW,
    )
    .unwrap();
    let code = airgap::deactivate(&cfg).unwrap();
    assert!(!f.cache_dir().join(OFFLINE_LICENSE_FILE).exists());
    let read = DeactivationCode::parse(&code.to_line()).unwrap();
    assert_eq!((read.jti.as_str(), read.hwid.as_str()), ("off-1", HWID));
    assert!(read.verifies(&req.nonce));
    assert!(!read.verifies("ffffffffffffffffffffffffffffffff"));
    let e = f.start(json!({ "seat.hardware-id": HWID }));
    assert_eq!(e.tier(), Tier::Community);
}
