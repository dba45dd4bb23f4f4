//! Every request body the reference server reads (token, refresh, acquire, reconnect,
//! heartbeat, release, admin), through the handlers' own parsing and checks. Nothing may
//! panic: bad input is a 4xx, never a 500.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    license_server::http::check_any_body(data);
});
