//! Config parsing (`docs/reference/engine-config.md`): any text as the JSON given to lic_init. Errors are fine;
//! a panic, or an error message echoing a long value, is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lic4es::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_json_with_env(text, &|_| None) {
        Ok(_) => {}
        Err(e) => {
            // What reaches lic_last_error stays short, whatever was pasted in.
            assert!(e.to_string().len() < 2048, "{}", e.to_string().len());
        }
    }
});
