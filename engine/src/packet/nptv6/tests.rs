//! NPTv6 translation against RFC 6296's worked example and hand-computed cases, and its
//! properties over random prefix pairs: round trip, checksum neutrality, the word the RFC
//! names as the only one changed outside the prefix, refusals, and no panics.

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use proptest::prelude::*;

use super::*;

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn map(internal: &str, external: &str) -> Nptv6Map {
    Nptv6Map::new(net(internal), net(external)).unwrap()
}

/// RFC 6296 section 3.6 (/48 Prefix Mapping Example), figures as printed there, with the
/// reply address as corrected by erratum 3033: "The one's complement checksum of
/// FD01:0203:0405 is 0xFCF5. The one's complement checksum of 2001:0DB8:0001 is 0xD245.
/// Using one's complement arithmetic, 0xD245 - 0xFCF5 = 0xD54F. [...] 0x0001 + 0xD54F =
/// 0xD550 [...] resulting in a mapped external address of 2001:0DB8:0001:D550::1234."
#[test]
fn rfc6296_section_3_6_example() {
    let m = map("fd01:203:405::/48", "2001:db8:1::/48");
    // The checksums are the complements of the sums.
    assert_eq!(!word_sum(addr("fd01:203:405::")), 0xFCF5);
    assert_eq!(!word_sum(addr("2001:db8:1::")), 0xD245);
    assert_eq!(m.adjustment(), 0xD54F);
    assert_eq!(
        m.to_external(addr("fd01:203:405:1::1234")),
        Some(addr("2001:db8:1:d550::1234"))
    );
    assert_eq!(
        m.to_internal(addr("2001:db8:1:d550::1234")),
        Some(addr("fd01:203:405:1::1234"))
    );
}

/// (internal prefix, external prefix, internal address, external address): each pair
/// translates both ways. Figures computed by hand (the arithmetic is in the comments) and
/// cross-checked with an independent script.
const GOLDEN: &[(&str, &str, &str, &str)] = &[
    // The RFC example.
    (
        "fd01:203:405::/48",
        "2001:db8:1::/48",
        "fd01:203:405:1::1234",
        "2001:db8:1:d550::1234",
    ),
    // /48, subnet 0: 0x0000 + 0xD54F = 0xD54F.
    (
        "fd01:203:405::/48",
        "2001:db8:1::/48",
        "fd01:203:405::1",
        "2001:db8:1:d54f::1",
    ),
    // /48, 0x2AB0 + 0xD54F = 0xFFFF, written as 0x0000. Back: 0x0000 - 0xD54F =
    // 0x0000 + 0x2AB0 = 0x2AB0.
    (
        "fd01:203:405::/48",
        "2001:db8:1::/48",
        "fd01:203:405:2ab0::1",
        "2001:db8:1::1",
    ),
    // /48, 0x2AB1 + 0xD54F = 0x10000 -> 0x0000 + 1 = 0x0001 (end-around carry).
    (
        "fd01:203:405::/48",
        "2001:db8:1::/48",
        "fd01:203:405:2ab1:a:b:c:d",
        "2001:db8:1:1:a:b:c:d",
    ),
    // /56: internal FD01 + 0203 = 0xFF04, + 0405 = 0x10309 -> 0x030A, + 0100 = 0x040A.
    // External 2001 + 0DB8 + 0001 = 0x2DBA, + AB00 = 0xD8BA. Adjustment 0x040A - 0xD8BA = 0x040A + 0x2745 = 0x2B4F. The subnet's low byte
    // (0xA5) is outside the prefix and kept; the adjusted word is bits 64..79:
    // 0x0005 + 0x2B4F = 0x2B54.
    (
        "fd01:203:405:100::/56",
        "2001:db8:1:ab00::/56",
        "fd01:203:405:1a5:5:6:7:8",
        "2001:db8:1:aba5:2b54:6:7:8",
    ),
    // /56 with bits 64..79 = 0xFFFF: RFC 6296 3.5 moves on to bits 80..95:
    // 0x0006 + 0x2B4F = 0x2B55.
    (
        "fd01:203:405:100::/56",
        "2001:db8:1:ab00::/56",
        "fd01:203:405:1a5:ffff:6:7:8",
        "2001:db8:1:aba5:ffff:2b55:7:8",
    ),
    // /56, bits 64..111 all 0xFFFF: the last word, bits 112..127: 0x0008 + 0x2B4F = 0x2B57.
    (
        "fd01:203:405:100::/56",
        "2001:db8:1:ab00::/56",
        "fd01:203:405:1a5:ffff:ffff:ffff:8",
        "2001:db8:1:aba5:ffff:ffff:ffff:2b57",
    ),
    // /64: internal sum 0x030A + 0x0001 = 0x030B, external 0x2DBA + 0x0002 = 0x2DBC.
    // Adjustment 0x030B + 0xD243 = 0xD54E, added to bits 64..79: 0x1111 + 0xD54E = 0xE65F.
    (
        "fd01:203:405:1::/64",
        "2001:db8:1:2::/64",
        "fd01:203:405:1:1111:2222:3333:4444",
        "2001:db8:1:2:e65f:2222:3333:4444",
    ),
    // /64, an all-zeros IID translates like any other: 0x0000 + 0xD54E = 0xD54E.
    (
        "fd01:203:405:1::/64",
        "2001:db8:1:2::/64",
        "fd01:203:405:1::",
        "2001:db8:1:2:d54e::",
    ),
    // /32: internal FD00 + ABCD = 0x1A8CD -> 0xA8CE, external 2001 + 0DB8 = 0x2DB9.
    // Adjustment 0xA8CE + 0xD246 = 0x17B14 -> 0x7B15. Bits 32..47 (0x1234) are outside the
    // prefix and kept; bits 48..63: 0x5678 + 0x7B15 = 0xD18D.
    (
        "fd00:abcd::/32",
        "2001:db8::/32",
        "fd00:abcd:1234:5678::9",
        "2001:db8:1234:d18d::9",
    ),
];

#[test]
fn golden_table() {
    for &(internal, external, inside, outside) in GOLDEN {
        let m = map(internal, external);
        assert_eq!(
            m.to_external(addr(inside)),
            Some(addr(outside)),
            "{internal} -> {external}: {inside}"
        );
        assert_eq!(
            m.to_internal(addr(outside)),
            Some(addr(inside)),
            "{external} -> {internal}: {outside}"
        );
        assert!(ones_equal(word_sum(addr(inside)), word_sum(addr(outside))));
    }
}

#[test]
fn hand_computed_adjustments() {
    assert_eq!(
        map("fd01:203:405:100::/56", "2001:db8:1:ab00::/56").adjustment(),
        0x2B4F
    );
    assert_eq!(
        map("fd01:203:405:1::/64", "2001:db8:1:2::/64").adjustment(),
        0xD54E
    );
    assert_eq!(map("fd00:abcd::/32", "2001:db8::/32").adjustment(), 0x7B15);
}

#[test]
fn refusals() {
    let m48 = map("fd01:203:405::/48", "2001:db8:1::/48");
    // Subnet 0xFFFF, either side: no word to adjust.
    assert_eq!(m48.to_external(addr("fd01:203:405:ffff::1")), None);
    assert_eq!(m48.to_internal(addr("2001:db8:1:ffff::1")), None);
    // Outside the source prefix (including the other side's prefix).
    assert_eq!(m48.to_external(addr("fd01:203:406:1::1")), None);
    assert_eq!(m48.to_external(addr("2001:db8:1:1::1")), None);
    assert_eq!(m48.to_internal(addr("2001:db8:2:1::1")), None);
    assert_eq!(m48.to_internal(addr("fd01:203:405:1::1")), None);

    let m64 = map("fd01:203:405:1::/64", "2001:db8:1:2::/64");
    // An all-ones IID: no word to adjust (RFC 6296 3.5, 3.7).
    let ones = "ffff:ffff:ffff:ffff";
    assert_eq!(
        m64.to_external(addr(&format!("fd01:203:405:1:{ones}"))),
        None
    );
    assert_eq!(m64.to_internal(addr(&format!("2001:db8:1:2:{ones}"))), None);
    // A /64 does not look at bits 48..63 for 0xFFFF: they are the prefix.
    let m = map("fd01:203:405:ffff::/64", "2001:db8:1:ffff::/64");
    assert!(m.to_external(addr("fd01:203:405:ffff::1")).is_some());
}

#[test]
fn equal_prefixes_are_the_identity() {
    let m = map("2001:db8:1::/48", "2001:db8:1::/48");
    for a in [
        "2001:db8:1::1",
        "2001:db8:1:1234:5678::",
        "2001:db8:1:fffe::ffff",
    ] {
        assert_eq!(m.to_external(addr(a)), Some(addr(a)));
        assert_eq!(m.to_internal(addr(a)), Some(addr(a)));
    }
}

#[test]
fn constructor_rules() {
    assert_eq!(
        Nptv6Map::new(net("fd01::/48"), net("2001:db8::/56")),
        Err(Nptv6Error::LengthMismatch {
            internal: 48,
            external: 56
        })
    );
    assert_eq!(
        Nptv6Map::new(net("fd01::/65"), net("2001:db8::/65")),
        Err(Nptv6Error::TooLong { len: 65 })
    );
    assert_eq!(
        Nptv6Map::new(net("fd01::/128"), net("2001:db8::/128")),
        Err(Nptv6Error::TooLong { len: 128 })
    );
    // Host bits of the given prefixes are ignored.
    let m = map("fd01:203:405:1::1/48", "2001:db8:1:d550::9/48");
    assert_eq!(m, map("fd01:203:405::/48", "2001:db8:1::/48"));
    assert_eq!(m.internal(), net("fd01:203:405::/48"));
    assert_eq!(m.external(), net("2001:db8:1::/48"));
    // /64 and /0 are accepted.
    assert!(Nptv6Map::new(net("fd01::/64"), net("2001:db8::/64")).is_ok());
    assert!(Nptv6Map::new(net("::/0"), net("::/0")).is_ok());
}

#[test]
fn error_messages() {
    let mismatch = Nptv6Error::LengthMismatch {
        internal: 48,
        external: 56,
    };
    assert_eq!(
        mismatch.to_string(),
        "NPTv6 prefixes must have the same length: internal /48, external /56"
    );
    assert_eq!(
        Nptv6Error::TooLong { len: 72 }.to_string(),
        "NPTv6 prefix /72 is too long: at most /64 (RFC 6296 translates prefixes up to /64)"
    );
}

#[test]
fn ones_complement_edges() {
    assert_eq!(ones_add(0xFFFE, 0x0001), 0x0000);
    assert_eq!(ones_add(0x0000, 0xFFFF), 0x0000);
    assert_eq!(ones_add(0xFFFF, 0x0001), 0x0001);
    assert_eq!(ones_add(0x8000, 0x8000), 0x0001);
    assert_eq!(ones_sub(0x1234, 0x1234), 0xFFFF);
    assert_eq!(ones_sub(0x0000, 0x0001), 0xFFFE);
    assert_eq!(
        word_sum(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        0xFFFF
    );
    assert_eq!(word_sum(Ipv6Addr::UNSPECIFIED), 0);
}

/// Equality of one's-complement values: 0x0000 and 0xFFFF are both zero.
fn ones_equal(a: u16, b: u16) -> bool {
    a % 0xFFFF == b % 0xFFFF
}

/// The word RFC 6296 3.4 and 3.5 adjust, written out independently of the module: bits 48..63
/// for a /48 or shorter; for a /49 to /64, the first of bits 64..79, 80..95, 96..111, 112..127
/// that is not 0xFFFF (none for an all-ones IID).
fn rfc_word(len: u8, a: Ipv6Addr) -> Option<usize> {
    let w = a.segments();
    if len <= 48 {
        if w[3] == 0xFFFF {
            None
        } else {
            Some(3)
        }
    } else {
        [4, 5, 6, 7].into_iter().find(|&i| w[i] != 0xFFFF)
    }
}

/// A 16-bit word that is often one of the interesting values.
fn word() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => any::<u16>(),
        2 => Just(0xFFFF),
        1 => Just(0x0000),
    ]
}

/// A mapping between two random prefixes of the same length (16..=64), and a random address
/// in its internal prefix whose words are often 0xFFFF or 0x0000.
fn map_and_inside() -> impl Strategy<Value = (Nptv6Map, Ipv6Addr)> {
    (
        16u8..=64,
        any::<u128>(),
        any::<u128>(),
        proptest::array::uniform8(word()),
    )
        .prop_map(|(len, internal, external, words)| {
            let m = Nptv6Map::new(
                Ipv6Net::new(internal.into(), len).unwrap(),
                Ipv6Net::new(external.into(), len).unwrap(),
            )
            .unwrap();
            let host = u128::from(m.internal().hostmask());
            let inside =
                u128::from(m.internal().network()) | (u128::from(Ipv6Addr::from(words)) & host);
            (m, Ipv6Addr::from(inside))
        })
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(1024)
}

proptest! {
    #![proptest_config(config())]

    /// Outward: the result lies in the external prefix, maps back to the original, keeps the
    /// one's-complement sum of the eight words, and differs from the plain prefix swap in the
    /// RFC's word only; it is refused exactly when that word does not exist.
    #[test]
    fn outward((m, a) in map_and_inside()) {
        let len = m.internal().prefix_len();
        let e = m.to_external(a);
        prop_assert_eq!(e.is_none(), rfc_word(len, a).is_none());
        if let (Some(e), Some(i)) = (e, rfc_word(len, a)) {
            prop_assert!(m.external().contains(&e));
            prop_assert_eq!(m.to_internal(e), Some(a));
            prop_assert!(ones_equal(word_sum(a), word_sum(e)));
            let host = u128::from(m.internal().hostmask());
            let swapped = Ipv6Addr::from(
                (u128::from(a) & host) | u128::from(m.external().network()),
            )
            .segments();
            let out = e.segments();
            for j in 0..8 {
                if j != i {
                    prop_assert_eq!(out[j], swapped[j], "word {} changed", j);
                }
            }
            prop_assert_ne!(out[i], 0xFFFF);
        }
    }

    /// Inward, from any address in the external prefix: refused exactly when the RFC's word
    /// does not exist; otherwise the result lies in the internal prefix, keeps the sum, and
    /// maps back out to the same address.
    #[test]
    fn inward((m, a) in map_and_inside()) {
        // Reuse the random address's host bits under the external prefix.
        let host = u128::from(m.external().hostmask());
        let e = Ipv6Addr::from((u128::from(a) & host) | u128::from(m.external().network()));
        let len = m.external().prefix_len();
        let i = m.to_internal(e);
        prop_assert_eq!(i.is_none(), rfc_word(len, e).is_none());
        if let Some(i) = i {
            prop_assert!(m.internal().contains(&i));
            prop_assert!(ones_equal(word_sum(i), word_sum(e)));
            prop_assert_eq!(m.to_external(i), Some(e));
        }
    }

    /// Addresses outside the source prefix (one prefix bit flipped) are refused both ways.
    #[test]
    fn outside_is_refused((m, a) in map_and_inside(), bit in 0u8..64) {
        let len = m.internal().prefix_len();
        let flip = 1u128 << (127 - u32::from(bit % len));
        let outside = Ipv6Addr::from(u128::from(a) ^ flip);
        prop_assert_eq!(m.to_external(outside), None);
        let host = u128::from(m.external().hostmask());
        let e = (u128::from(a) & host) | u128::from(m.external().network());
        prop_assert_eq!(m.to_internal(Ipv6Addr::from(e ^ flip)), None);
    }

    /// No input panics: any prefixes (lengths 0..=128, often equal, host bits set), any
    /// addresses.
    #[test]
    fn never_panics(
        internal in any::<u128>(),
        internal_len in 0u8..=128,
        external in any::<u128>(),
        external_len in 0u8..=128,
        same_len in any::<bool>(),
        a in any::<u128>(),
    ) {
        let external_len = if same_len { internal_len } else { external_len };
        let internal = Ipv6Net::new(internal.into(), internal_len).unwrap();
        let external = Ipv6Net::new(external.into(), external_len).unwrap();
        match Nptv6Map::new(internal, external) {
            Ok(m) => {
                let _ = m.to_external(a.into());
                let _ = m.to_internal(a.into());
                let _ = m.to_external(internal.addr());
                let _ = m.to_internal(external.addr());
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
    }
}
