//! `inspect`: why a token is or is not accepted.

use std::process::ExitCode;

use lic4es::clock::{rfc3339, Clock, SystemClock};
use lic4es::token::{decode_unverified, Claims, GracePhase, KeySet, Policy, Standing};

use crate::input::read_arg;

/// `inspect`: nothing wrong found, but without `--keys` the signature was not checked.
const EXIT_UNVERIFIED: u8 = 4;

pub(crate) fn inspect(
    spec: &str,
    keys: Option<&str>,
    issuer: String,
    grace_days: i64,
) -> Result<ExitCode, String> {
    let token = read_arg(spec)?.trim().to_string();
    let keys = match keys {
        Some(k) => Some(
            KeySet::from_json_str(&read_arg(&format!("@{k}"))?)
                .map_err(|e| format!("--keys: {e}"))?,
        ),
        None => None,
    };

    let (header, payload) = decode_unverified(&token).map_err(|e| {
        let bare = !spec.starts_with('@') && spec != "-";
        if bare && std::path::Path::new(spec).is_file() {
            format!("not a token: {e}\n`{spec}` is a file: pass @{spec} to read the token from it")
        } else {
            format!("not a token: {e}")
        }
    })?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("header: {}", pretty(&header));
    println!("claims: {}", pretty(&payload));

    let now = SystemClock.now_secs();
    let policy = Policy {
        keys: keys.clone().unwrap_or_default(),
        issuer,
        skew_secs: 60,
        grace_secs: grace_days.saturating_mul(86_400),
    };
    let mut problems = Vec::new();
    let claims = match &keys {
        Some(ks) => match ks.verify(&token) {
            Ok(c) => {
                println!(
                    "signature: ok (kid {})",
                    header["kid"].as_str().unwrap_or("?")
                );
                Some(c)
            }
            Err(e) => {
                println!("signature: FAILED: {e}");
                problems.push(format!("signature: {e}"));
                Claims::from_json(&payload).ok()
            }
        },
        None => {
            println!("signature: not checked (no --keys)");
            Claims::from_json(&payload).ok()
        }
    };
    let Some(claims) = claims else {
        let e = Claims::from_json(&payload).unwrap_err();
        println!("claims: FAILED: {e}");
        println!("verdict: rejected");
        return Ok(ExitCode::from(1));
    };
    if claims.iss == policy.issuer {
        println!("issuer: ok ({})", claims.iss);
    } else {
        println!(
            "issuer: FAILED: `{}` is not the expected `{}`",
            claims.iss, policy.issuer
        );
    }
    match policy.standing(&claims, now) {
        Ok(Standing::Valid) => println!(
            "expiry: valid until {} ({} days left)",
            rfc3339(claims.exp),
            (claims.exp - now).max(0) / 86_400
        ),
        Ok(Standing::Grace {
            phase,
            days_ago,
            days_left,
        }) => println!(
            "expiry: expired {days_ago} days ago, in {} grace; Community in {days_left} days",
            if phase == GracePhase::Early {
                "early"
            } else {
                "mid"
            }
        ),
        Err(e) => {
            println!("expiry/issuer: FAILED: {e}");
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() && keys.is_none() {
        println!(
            "verdict: nothing wrong in the claims, issuer or expiry ({}); signature not \
             checked (no --keys)",
            claims.tier
        );
        Ok(ExitCode::from(EXIT_UNVERIFIED))
    } else if problems.is_empty() {
        println!("verdict: accepted as {}", claims.tier);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("verdict: rejected ({})", problems.join("; "));
        Ok(ExitCode::from(1))
    }
}
