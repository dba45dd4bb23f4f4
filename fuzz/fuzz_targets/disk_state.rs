//! What the engine reads from `cache-dir`: `state.json` (parsed, then claimed and saved
//! into as an engine does, then written back and read again), the cached token's text
//! and the instance id. Nothing may panic, and what is written must read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lic4es::seat::SeatMemory;
use lic4es::state::{claim_in, save_in, StateDoc};

const NOW: i64 = 1_795_354_152_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut doc) = StateDoc::parse(text) {
        let _ = doc.mark();
        let alive = |pid: u32| pid % 2 == 0;
        let ((slot, mem), _) = claim_in(&mut doc, 7, NOW, &alive);
        let mem = SeatMemory {
            offline_cycles: mem.offline_cycles.into_iter().chain([NOW - 1000]).collect(),
            ..mem
        };
        save_in(&mut doc, &slot, 7, &mem, NOW, &alive);
        let written = serde_json::to_string_pretty(&doc).unwrap();
        assert!(
            StateDoc::parse(&written).is_ok(),
            "written state reads back"
        );
    }
    // The cached token and the instance id are plain text files.
    let _ = lic4es::log::clean(text.trim());
    let _ = uuid::Uuid::parse_str(text.trim());
});
