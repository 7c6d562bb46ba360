//! Internet checksum arithmetic: incremental updates (RFC 1624, eqn. 3) for the rewrite path,
//! and full computation (through etherparse) for building packets and for tests.
//!
//! Every changed field is 16-bit aligned relative to the start of the area its checksum
//! covers (addresses, ports, the TTL/protocol word, embedded headers at even offsets), so an
//! update is expressed as "these old 16-bit words became these new ones".

use etherparse::checksum::Sum16BitWords;

/// A pending checksum adjustment: the sum of (new - old) over changed 16-bit words, each
/// difference taken as `!old + new`. Kept unfolded in 64 bits (a 32-bit word counts as its two
/// 16-bit halves: 2^16 = 1 modulo 0xffff), folded once, when applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    pub const ZERO: Delta = Delta(0);

    /// Records that the 16-bit word `old` became `new`.
    #[inline]
    pub fn word(self, old: u16, new: u16) -> Delta {
        Delta(self.0 + u64::from(!old) + u64::from(new))
    }

    /// Records that two adjacent 16-bit words (`old` as one big-endian 32-bit value, e.g. an
    /// IPv4 address or a port pair) became `new`.
    #[inline]
    pub fn words(self, old: u32, new: u32) -> Delta {
        Delta(self.0 + u64::from(!old) + u64::from(new))
    }

    /// Records that a 32-bit value (an IPv4 address) changed.
    #[inline]
    pub fn addr(self, old: [u8; 4], new: [u8; 4]) -> Delta {
        self.words(u32::from_be_bytes(old), u32::from_be_bytes(new))
    }

    /// The adjustment that a checksum-covered field moving from `old` to `new` causes in a
    /// checksum that covers that field (e.g. an embedded header's checksum inside ICMP).
    #[inline]
    pub fn of_checksum_change(old: u16, new: u16) -> Delta {
        Delta::ZERO.word(old, new)
    }

    /// Applies the adjustment to a checksum as stored in the packet: HC' = ~(~HC + ~m + m').
    #[inline]
    pub fn apply(self, checksum: u16) -> u16 {
        !fold(u64::from(!checksum) + self.0)
    }

    /// As [`Delta::apply`] for UDP: 0 means "no checksum" and stays 0; a computed 0 is sent as
    /// 0xffff (RFC 768).
    #[inline]
    pub fn apply_udp(self, checksum: u16) -> u16 {
        if checksum == 0 {
            return 0;
        }
        match self.apply(checksum) {
            0 => 0xffff,
            c => c,
        }
    }
}

impl std::ops::Add for Delta {
    type Output = Delta;

    /// Combines two adjustments.
    #[inline]
    fn add(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }
}

/// Folds a one's complement sum to 16 bits with end-around carries: the two 32-bit halves
/// added with their carry (which cannot carry again), then the two 16-bit halves, whose sum
/// with its carry is the top half of `s + rotl(s, 16)` (as Linux's `csum_fold`).
#[inline]
fn fold(sum: u64) -> u16 {
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(carry);
    (s.wrapping_add(s.rotate_left(16)) >> 16) as u16
}

/// Whether an IPv4 header (`header`: its `ihl * 4` bytes, a multiple of 4) carries a correct
/// checksum: its 16-bit words sum to 0xffff. Summed four bytes at a time in native order
/// (RFC 1071 2(B): the sum is byte-order independent, and all ones is all ones either way);
/// on the per-packet path, so cheaper than [`full`]'s general loop.
#[inline]
pub fn ipv4_header_is_valid(header: &[u8]) -> bool {
    let word = |c: &[u8; 4]| u64::from(u32::from_ne_bytes(*c));
    let sum: u64 = match header.first_chunk::<20>() {
        // The usual header, without options: five words, no loop.
        Some(h) if header.len() == 20 => {
            let w = |i: usize| word(&[h[i], h[i + 1], h[i + 2], h[i + 3]]);
            w(0) + w(4) + w(8) + w(12) + w(16)
        }
        _ => header
            .chunks_exact(4)
            .map(|c| word(&[c[0], c[1], c[2], c[3]]))
            .sum(),
    };
    fold(sum) == 0xffff
}

/// Full Internet checksum of `data` (as stored in a header: one's complement of the sum).
pub fn full(data: &[u8]) -> u16 {
    wire_order(Sum16BitWords::new().add_slice(data).ones_complement())
}

/// etherparse sums 16-bit words in native byte order (RFC 1071 2(B)); the result is the
/// checksum's bytes in native order. Reads them back as the big-endian value on the wire.
#[inline]
fn wire_order(native: u16) -> u16 {
    u16::from_be_bytes(native.to_ne_bytes())
}

/// Full TCP/UDP checksum over the IPv4 pseudo-header and the whole L4 segment (with its
/// checksum field included as stored). A correct packet sums to 0.
pub fn l4_verify_sum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    let sum = Sum16BitWords::new()
        .add_4bytes(src)
        .add_4bytes(dst)
        .add_2bytes([0, proto])
        .add_2bytes(len.to_be_bytes())
        .add_slice(segment)
        .ones_complement();
    wire_order(sum)
}

/// Full TCP, UDP or ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 8.1: addresses,
/// 32-bit upper-layer length, three zero bytes, next header) and the whole upper-layer
/// `segment` (with its checksum field included as stored). A correct packet sums to 0.
pub fn l4_verify_sum_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    let sum = Sum16BitWords::new()
        .add_16bytes(src)
        .add_16bytes(dst)
        .add_4bytes(len.to_be_bytes())
        .add_4bytes([0, 0, 0, next_header])
        .add_slice(segment)
        .ones_complement();
    wire_order(sum)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1624 section 4 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(Delta::ZERO.word(0x5555, 0x3285).apply(0xDD2F), 0x0000);
    }

    #[test]
    fn udp_zero_stays_zero_and_computed_zero_becomes_ffff() {
        assert_eq!(Delta::ZERO.word(1, 2).apply_udp(0), 0);
        let d = Delta::ZERO.word(0x5555, 0x3285);
        assert_eq!(d.apply_udp(0xDD2F), 0xffff);
    }

    /// The reference fold: 16 bits at a time, carries added back until none is left.
    fn fold_slowly(mut sum: u64) -> u16 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn fold_edges() {
        for sum in [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
            u64::MAX - 1,
            0xffff_0000_ffff,
        ] {
            assert_eq!(fold(sum), fold_slowly(sum), "{sum:#x}");
        }
    }

    proptest! {
        #[test]
        fn fold_matches_the_reference(sum in any::<u64>()) {
            prop_assert_eq!(fold(sum), fold_slowly(sum));
        }

        /// The header check agrees with a full computation, valid or not.
        #[test]
        fn header_check_matches_full(words in proptest::collection::vec(any::<[u8; 4]>(), 5..16usize),
                                     fix in any::<bool>()) {
            let mut header: Vec<u8> = words.concat();
            if fix {
                header[10..12].fill(0);
                let sum = full(&header);
                header[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_is_valid(&header), full(&header) == 0);
            if fix {
                prop_assert!(ipv4_header_is_valid(&header));
            }
        }

        /// Updating words incrementally gives the same checksum as recomputing it.
        #[test]
        fn incremental_matches_full(mut data in proptest::collection::vec(any::<u8>(), 2..64usize),
                                    changes in proptest::collection::vec((any::<usize>(), any::<u16>()), 1..6)) {
            if data.len() % 2 == 1 { data.pop(); }
            let mut check = full(&data);
            for (at, new) in changes {
                let i = (at % (data.len() / 2)) * 2;
                let old = u16::from_be_bytes([data[i], data[i + 1]]);
                data[i..i + 2].copy_from_slice(&new.to_be_bytes());
                check = Delta::ZERO.word(old, new).apply(check);
            }
            // Checksums are equal modulo the two representations of zero.
            let expect = full(&data);
            prop_assert!(check == expect || (check == 0xffff && expect == 0) || (check == 0 && expect == 0xffff));
        }
    }
}
