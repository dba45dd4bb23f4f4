//! What the engine reads from `cache-dir`: `state.json` (parsed, then claimed and saved
//! into as an engine does, then sealed, written back, read again and verified), the cached token's text
//! and the instance id. Nothing may panic, and what is written must read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lic4es::seat::SeatMemory;
use lic4es::state::{claim_in, save_in, Seal, SlotOwners, StateDoc};

const NOW: i64 = 1_795_354_152_000;

/// Slots whose id has an even length run elsewhere.
struct Half;

impl SlotOwners for Half {
    fn take(&mut self, id: &str) -> bool {
        id.len() % 2 == 1
    }
    fn held(&mut self, id: &str) -> bool {
        id.len() % 2 == 0
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut doc) = StateDoc::parse(text) {
        let _ = doc.mark();
        let ((slot, mem), _, _) = claim_in(&mut doc, 7, NOW, &mut Half);
        let mem = SeatMemory {
            offline_cycles: mem.offline_cycles.into_iter().chain([NOW - 1000]).collect(),
            ..mem
        };
        let _ = save_in(&mut doc, &slot, 7, &mem, NOW, &mut Half);
        let seal = Seal::new("hw-fuzz");
        seal.seal(&mut doc);
        let written = serde_json::to_string_pretty(&doc).unwrap();
        let back = StateDoc::parse(&written).expect("written state reads back");
        assert!(seal.verify(&back).is_ok(), "a sealed state verifies");
        assert!(
            Seal::new("hw-other").verify(&back).is_err(),
            "and only on its machine"
        );
    }
    // The cached token and the instance id are plain text files.
    let _ = lic4es::log::clean(text.trim());
    let _ = uuid::Uuid::parse_str(text.trim());
});
