//! The config loader on arbitrary text: a config or every error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = engine::config::Config::from_toml_str(text);
    }
});
