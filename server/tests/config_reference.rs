//! The server's configuration reference (`docs/reference/server.md`, its TOML example) and
//! `ServerConfig` name the same keys: a key added to the code without its line in the
//! reference, or a documented key the server would refuse, fails here. The code's list
//! is serde's own: the error for an unknown key names every key it expects.

use std::collections::BTreeSet;

use license_server::config::{ServerConfig, TierPolicy};

/// The keys serde expects of `T`, from its answer to a key it does not know.
fn expected_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> BTreeSet<String> {
    let err = toml::from_str::<T>(body).unwrap_err().to_string();
    let list = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde names the keys it expects: {err}"))
        .1;
    list.split(',')
        .map(|k| k.trim().trim_matches(|c| c == '`' || c == '\n').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The reference's TOML example, and the keys set in it (commented-out ones included),
/// before and after its first `[table]`.
fn documented() -> (String, BTreeSet<String>, BTreeSet<String>) {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/reference/server.md"
    ))
    .unwrap();
    let start = page.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let block = &page[start..start + page[start..].find("```").unwrap()];
    let (mut top, mut tier) = (BTreeSet::new(), BTreeSet::new());
    let mut in_tier = false;
    for line in block.lines() {
        let line = line.trim_start_matches("# ").trim();
        if line.starts_with("[tiers.") {
            in_tier = true;
            top.insert("tiers".to_string());
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            if in_tier { &mut tier } else { &mut top }.insert(key.to_string());
        }
    }
    (block.to_string(), top, tier)
}

#[test]
fn the_reference_names_every_server_key_and_only_those() {
    let (block, top, tier) = documented();
    let want = expected_keys::<ServerConfig>("no-such-key = 1");
    assert!(want.len() > 30, "{want:?}");
    assert_eq!(
        top, want,
        "docs/reference/server.md's TOML example and ServerConfig differ"
    );
    let want = expected_keys::<TierPolicy>("features = []\nno-such-key = 1");
    assert_eq!(
        tier, want,
        "docs/reference/server.md's [tiers.pro] and TierPolicy differ"
    );
    // The example as written (its commented lines aside) is a config the server takes.
    toml::from_str::<ServerConfig>(&block.replace("\"...\"", "\"x\""))
        .unwrap_or_else(|e| panic!("the example does not parse: {e}"));
}

#[path = "../../tests/common/synopsis.rs"]
mod synopsis;

/// The commands' synopsis of the same page names only commands and flags the binary has.
#[test]
fn the_reference_names_the_commands_and_flags_the_binary_has() {
    let page = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/reference/server.md"
    ));
    let bin = || std::process::Command::new(env!("CARGO_BIN_EXE_license-server"));
    let checked = synopsis::check_synopsis(page, bin, "license-server");
    assert!(checked >= 20, "checked {checked} lines");
}
