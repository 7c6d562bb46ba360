//! DNS on the wire: an `A` query for a name, and the verdict on what comes back.
//!
//! Invariants: the response check takes untrusted bytes and never panics; it looks only at
//! the 12-byte header (id, QR, RCODE, ANCOUNT): a response that is not to our query is
//! ignored, one to our query is good only with RCODE 0 and at least one answer.

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// Recursion desired.
const FLAG_RD: u16 = 0x0100;
const FLAG_QR: u16 = 0x8000;

/// What a datagram received on the query's socket says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsVerdict {
    /// A response to the query with RCODE 0 and at least one answer.
    Good,
    /// A response to the query that is an error or empty: the probe failed.
    Bad(String),
    /// Not a response to this query (another id, not a response, too short): ignore it.
    NotOurs,
}

/// A recursive `A`/`IN` query for `name` with id `id`; `None` if `name` is not a DNS name
/// (see [`crate::core::config::check_dns_name`]).
pub fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    crate::core::config::check_dns_name(name).ok()?;
    let mut msg = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&FLAG_RD.to_be_bytes());
    // QDCOUNT 1, ANCOUNT, NSCOUNT, ARCOUNT 0.
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        msg.push(u8::try_from(label.len()).ok()?);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&TYPE_A.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(msg)
}

/// The verdict on `datagram` as a response to the query with id `id`.
pub fn check_response(id: u16, datagram: &[u8]) -> DnsVerdict {
    let Some(header) = datagram.get(..HEADER_LEN) else {
        return DnsVerdict::NotOurs;
    };
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let flags = word(2);
    if word(0) != id || flags & FLAG_QR == 0 {
        return DnsVerdict::NotOurs;
    }
    let rcode = flags & 0x000f;
    if rcode != 0 {
        return DnsVerdict::Bad(format!("dns rcode {rcode}"));
    }
    if word(6) == 0 {
        return DnsVerdict::Bad("dns response without an answer".into());
    }
    DnsVerdict::Good
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn query_layout() {
        let q = query(0xabcd, "example.com.").expect("valid name");
        let expected: &[u8] = &[
            0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
        ];
        assert_eq!(q, expected);
        assert_eq!(query(0xabcd, "example.com"), Some(q));
        assert_eq!(query(1, "bad..name"), None);
        assert_eq!(query(1, ""), None);
    }

    /// A response to 0xabcd for example.com with one A record (93.184.216.34).
    fn response() -> Vec<u8> {
        let mut r = query(0xabcd, "example.com").expect("valid");
        r[2] = 0x81; // QR, RD
        r[3] = 0x80; // RA, RCODE 0
        r[7] = 1; // ANCOUNT 1
        r.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
        r
    }

    #[test]
    fn verdicts() {
        let r = response();
        assert_eq!(check_response(0xabcd, &r), DnsVerdict::Good);
        assert_eq!(check_response(0xabce, &r), DnsVerdict::NotOurs);
        let mut nx = r.clone();
        nx[3] = 0x83; // NXDOMAIN
        assert_eq!(
            check_response(0xabcd, &nx),
            DnsVerdict::Bad("dns rcode 3".into())
        );
        let mut empty = r.clone();
        empty[7] = 0;
        assert_eq!(
            check_response(0xabcd, &empty),
            DnsVerdict::Bad("dns response without an answer".into())
        );
        let q = query(0xabcd, "example.com").expect("valid");
        assert_eq!(check_response(0xabcd, &q), DnsVerdict::NotOurs); // not a response
        assert_eq!(check_response(0xabcd, &r[..11]), DnsVerdict::NotOurs);
        assert_eq!(check_response(0xabcd, &[]), DnsVerdict::NotOurs);
        // The header alone decides: a truncated body with a good header is good.
        assert_eq!(check_response(0xabcd, &r[..12]), DnsVerdict::Good);
    }

    proptest! {
        #[test]
        fn never_panics(id in any::<u16>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = check_response(id, &bytes);
        }
    }
}
