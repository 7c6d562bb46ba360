//! The prober's parsers of what WANs send back: ICMP echo replies, DNS responses, HTTP
//! status lines. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prober::net::{dns_wire, http_wire, icmp_wire};

fuzz_target!(|data: &[u8]| {
    let _ = icmp_wire::parse_echo_reply(data);
    let id = data.first().map_or(0, |&b| u16::from(b) << 8 | 0x5a);
    let _ = dns_wire::check_response(id, data);
    let _ = http_wire::status_line(data);
});
