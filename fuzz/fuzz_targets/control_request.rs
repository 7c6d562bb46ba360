//! A control request line on arbitrary bytes: a request or an error, never a panic; a
//! request read back from its own encoding is the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ctl::protocol::Request::from_json(data) {
        let line = serde_json::to_vec(&request).expect("a request encodes");
        assert_eq!(ctl::protocol::Request::from_json(&line).ok(), Some(request));
    }
});
