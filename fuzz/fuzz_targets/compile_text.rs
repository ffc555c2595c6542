//! Arbitrary bytes → (if UTF-8) the whole front half: parse, elaborate, check, and
//! lowering of every model that checked. Nothing may panic, abort, hang or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        cnnc_fuzz::compile_all(text);
    }
});
