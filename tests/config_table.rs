//! The configuration reference's table of engine config keys
//! (`docs/reference/engine-config.md`) is the key table itself (`lic4es::config::KEYS`),
//! rendered: a key added, renamed or given another default in the code and not in the
//! reference fails here, with the table to paste.

const START: &str = "<!-- config-keys: generated from lic4es::config::KEYS -->\n";
const END: &str = "<!-- /config-keys -->";

#[test]
fn the_config_reference_lists_every_config_key_as_the_code_has_it() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/engine-config.md"
    ))
    .unwrap();
    let start = readme
        .find(START)
        .expect("the reference marks the config table")
        + START.len();
    let end = start + readme[start..].find(END).expect("the table's end marker");
    let want = lic4es::config::keys_markdown();
    assert!(
        readme[start..end] == want,
        "docs/reference/engine-config.md's table is not current; between the markers put:\n\n{want}"
    );
    for k in lic4es::config::KEYS {
        assert!(!k.doc.trim().is_empty(), "{} has no description", k.name);
    }
}
