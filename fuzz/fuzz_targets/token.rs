//! Token parsing and verification: any text as a token through the key set and the policy
//! (form, header, algorithm whitelist, kid, signature), and any payload through the
//! claims parser and the time and binding rules. Nothing may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lic4es::token::{decode_unverified, Claims, KeySet, Policy};

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy {
        keys: KeySet::from_json_str(include_str!("../../tests/keys/jwks.json")).unwrap(),
        issuer: "https://license.softclient4es.com".into(),
        skew_secs: 60,
        grace_secs: 14 * 86_400,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let p = policy();
    if mode & 1 == 0 {
        // The whole text as a token.
        let _ = p.check(text, 1_795_354_152);
        if let Ok((_, payload)) = decode_unverified(text) {
            let _ = Claims::from_json(&payload);
        }
    } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        // The text as a payload: what the claims parser does after a good signature.
        if let Ok(c) = Claims::from_json(&v) {
            for now in [i64::MIN, -1, 0, 1_795_354_152, i64::MAX] {
                let _ = p.standing(&c, now);
            }
            let _ = p.end_of_grace(&c);
            let _ = p.grace_for(&c);
            let _ = c.check_binding(None);
            let _ = c.check_binding(Some("hw"));
        }
    }
});
