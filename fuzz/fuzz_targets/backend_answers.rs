//! Every backend answer body the engine reads (token, acquire/reconnect, heartbeat, and
//! error bodies for every status), through the engine's own parsing. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    lic4es::backend::parse_any_answer(kind, body);
});
