//! Property tests for the control protocol's parsers, the part of fwd a local client feeds
//! arbitrary bytes: the daemon's strict request parser ([`Request::from_json`]) and the
//! client's response parser. Fixed malformed cases live beside the types
//! (`protocol.rs`); here random and mutated lines show that no input panics, that whatever
//! the client can encode the server reads back as the same request, and that a request with
//! a field its command does not have is refused.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use ctl::protocol::{Proto, Request, Response};
use proptest::prelude::*;

/// Names as operators write them, plus anything JSON can carry (quotes, escapes, control
/// characters, non-ASCII).
fn wan_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9_-]{0,14}", any::<String>()]
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Tcp), Just(Proto::Udp), Just(Proto::Icmp)]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Status),
        (
            proptest::option::of(wan_name()),
            any::<Option<u32>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(wan, limit, offset)| Request::Flows { wan, limit, offset }),
        Just(Request::Rules),
        Just(Request::Counters),
        (
            any::<u32>(),
            any::<u32>(),
            proto(),
            any::<Option<u16>>(),
            any::<Option<u16>>()
        )
            .prop_map(|(src, dst, proto, sport, dport)| Request::Explain {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                proto,
                sport,
                dport,
            }),
        Just(Request::Reload),
        Just(Request::Wans),
        (wan_name(), any::<bool>()).prop_map(|(wan, enabled)| Request::WanAdmin { wan, enabled }),
        any::<u64>().prop_map(|after| Request::Events { after }),
    ]
}

/// One edit of a line: a byte replaced, a range cut out, or bytes put in.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Cut(usize, usize),
    Insert(usize, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        (any::<usize>(), 1..8usize).prop_map(|(at, len)| Edit::Cut(at, len)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..6),
                // JSON's own punctuation, so that edits also make well-formed documents.
                proptest::collection::vec(
                    prop_oneof![
                        Just(b'{'),
                        Just(b'}'),
                        Just(b'"'),
                        Just(b','),
                        Just(b':'),
                        Just(b'\\')
                    ],
                    1..4
                ),
            ]
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
    ]
}

fn apply(line: &mut Vec<u8>, edit: &Edit) {
    if line.is_empty() {
        return;
    }
    match edit {
        Edit::Replace(at, byte) => {
            let at = at % line.len();
            line[at] = *byte;
        }
        Edit::Cut(at, len) => {
            let at = at % line.len();
            let end = (at + len).min(line.len());
            line.drain(at..end);
        }
        Edit::Insert(at, bytes) => {
            let at = at % (line.len() + 1);
            line.splice(at..at, bytes.iter().copied());
        }
    }
}

/// The keys a request of this command may carry besides `cmd`.
fn fields_of(request: &Request) -> &'static [&'static str] {
    match request {
        Request::Flows { .. } => &["wan", "limit"],
        Request::Explain { .. } => &["src", "dst", "proto", "sport", "dport"],
        Request::WanAdmin { .. } => &["wan", "enabled"],
        Request::Events { .. } => &["after"],
        _ => &[],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::from_json(&bytes);
        let _ = serde_json::from_slice::<Response>(&bytes);
    }

    #[test]
    fn what_the_client_encodes_the_server_reads_back(request in request()) {
        let line = serde_json::to_vec(&request).unwrap();
        prop_assert!(!line.contains(&b'\n'), "a request is one line");
        let back = Request::from_json(&line);
        prop_assert_eq!(back.ok(), Some(request));
    }

    #[test]
    fn edited_requests_are_refused_or_read_consistently(
        request in request(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut line = serde_json::to_vec(&request).unwrap();
        for edit in &edits {
            apply(&mut line, edit);
        }
        // Whatever the edits made, the parser answers without panicking; what it accepts
        // is a request it reads back the same from its own encoding.
        if let Ok(parsed) = Request::from_json(&line) {
            let again = serde_json::to_vec(&parsed).unwrap();
            prop_assert_eq!(Request::from_json(&again).ok(), Some(parsed));
        }
    }

    #[test]
    fn a_field_the_command_lacks_is_refused(
        request in request(),
        key in "[a-z_]{1,10}",
        value in prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            "[a-z0-9]{0,8}".prop_map(serde_json::Value::from),
        ],
    ) {
        prop_assume!(key != "cmd" && !fields_of(&request).contains(&key.as_str()));
        let mut object = serde_json::to_value(&request).unwrap();
        object.as_object_mut().unwrap().insert(key.clone(), value);
        let line = serde_json::to_vec(&object).unwrap();
        match Request::from_json(&line) {
            Ok(accepted) => prop_assert!(false, "accepted an unknown field `{}`: {:?}", key, accepted),
            Err(refused) => {
                let message = refused.to_string();
                prop_assert!(message.contains(&key), "the error names the field: {}", message);
            }
        }
    }
}
