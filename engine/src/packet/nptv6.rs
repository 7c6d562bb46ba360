//! NPTv6 (RFC 6296): stateless, checksum-neutral IPv6-to-IPv6 network prefix translation
//! between an internal prefix (a ULA, say `fd01:203:405::/48`) and a WAN's external prefix.
//!
//! Layer: packet. Pure address arithmetic: no state beyond the precomputed [`Nptv6Map`], no
//! I/O, no allocation, no packet bytes (rewriting a header's addresses is the caller's job).
//!
//! The RFC rules applied:
//!
//! - Both prefixes have the same length, at most /64 ([`Nptv6Error`] otherwise; RFC 6296 3.1
//!   zero-extends a shorter prefix, fwd asks for equal lengths instead). The host bits of the
//!   configured prefixes are ignored.
//! - The adjustment (3.1, used by 3.2 and 3.3) is the one's-complement sum of the internal
//!   prefix's 16-bit words minus that of the external prefix's (each zero-extended to /64),
//!   computed once. Going out (3.2) the internal prefix is overwritten with the external one
//!   and the adjustment is added, in one's-complement arithmetic, to one 16-bit word outside
//!   the prefix; coming in (3.3) the external prefix is overwritten with the internal one and
//!   the adjustment is subtracted from the same word.
//! - A result of 0xFFFF in the adjusted word is written as 0x0000, in both directions (as the
//!   worked example in 3.6 puts it, "Since 0xD550 != 0xFFFF, it is not changed to 0x0000"),
//!   so an adjusted word never holds the one's-complement negative zero.
//! - Which word (3.4, 3.5): for a /48 or shorter, bits 48..63 (the subnet ID). For a /49 to
//!   /64, "one of the words in bits 64..79, 80..95, 96..111, or 112..127 [...] these words MUST
//!   be inspected in that sequence and the first that is not initially 0xFFFF chosen": the
//!   interface identifier's first word unless it is 0xFFFF, then the next, and so on.
//! - When there is no usable word the address is refused (`None`: the caller drops the packet;
//!   3.7 suggests an ICMPv6 Parameter Problem): for a /48 or shorter, a subnet ID of 0xFFFF
//!   (the one's-complement twin of subnet 0x0000, which the mapping could not tell apart going
//!   back); for a /49 to /64, an all-ones interface identifier (3.7: the reserved anycast
//!   identifier of RFC 2526, the only IID with no word to adjust). The published 3.7 says "an
//!   IID of all-zeros" in its drop sentence, right after naming the all-ones IID as the
//!   problem; that reads as a slip (erratum 8757 reports it; Linux's ip6t_NPT also refuses
//!   the all-ones IID only), and an all-zeros IID translates and maps back like any other.
//!
//! The invariant: the translation is checksum-neutral (RFC 6296 2.6, 3.1). The
//! one's-complement sum of the address's eight 16-bit words is the same before and after, so
//! the pseudo-header sum is unchanged and the TCP, UDP and ICMPv6 checksums need no update.
//! Addresses that translate map back exactly: `to_internal(to_external(a)) == Some(a)`.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use thiserror::Error;

/// The longest prefix this mapping supports (RFC 6296 3.5 and 3.7 cover /49 to /64).
pub const MAX_PREFIX_LEN: u8 = 64;

/// Why a prefix pair cannot be an NPTv6 mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Nptv6Error {
    /// The internal and external prefixes differ in length.
    #[error(
        "NPTv6 prefixes must have the same length: internal /{internal}, external /{external}"
    )]
    LengthMismatch { internal: u8, external: u8 },
    /// The prefixes are longer than /64.
    #[error(
        "NPTv6 prefix /{len} is too long: at most /{MAX_PREFIX_LEN} (RFC 6296 translates \
         prefixes up to /64)"
    )]
    TooLong { len: u8 },
}

/// One NPTv6 translation between an internal and an external prefix of the same length,
/// with its adjustment precomputed. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nptv6Map {
    internal: Ipv6Net,
    external: Ipv6Net,
    /// Added going out: the one's-complement internal prefix sum minus the external one.
    outbound: u16,
    /// Added coming in: the one's-complement negation of `outbound` (i.e. it subtracts it).
    inbound: u16,
}

impl Nptv6Map {
    /// The mapping between `internal` and `external` (host bits ignored). Refuses prefixes of
    /// different lengths or longer than /64.
    pub fn new(internal: Ipv6Net, external: Ipv6Net) -> Result<Nptv6Map, Nptv6Error> {
        let (internal, external) = (internal.trunc(), external.trunc());
        let len = internal.prefix_len();
        if len != external.prefix_len() {
            return Err(Nptv6Error::LengthMismatch {
                internal: len,
                external: external.prefix_len(),
            });
        }
        if len > MAX_PREFIX_LEN {
            return Err(Nptv6Error::TooLong { len });
        }
        // The prefixes are truncated, so their words past the prefix are zero: the sums are
        // those of the prefixes zero-extended to /64 (RFC 6296 3.1).
        let outbound = ones_sub(word_sum(internal.network()), word_sum(external.network()));
        Ok(Nptv6Map {
            internal,
            external,
            outbound,
            inbound: !outbound,
        })
    }

    /// The internal prefix (host bits cleared).
    pub fn internal(&self) -> Ipv6Net {
        self.internal
    }

    /// The external prefix (host bits cleared).
    pub fn external(&self) -> Ipv6Net {
        self.external
    }

    /// The adjustment added going out (RFC 6296 3.1): the one's-complement sum of the internal
    /// prefix's words minus that of the external prefix's.
    pub fn adjustment(&self) -> u16 {
        self.outbound
    }

    /// The external address for `internal_addr` (RFC 6296 3.2), or `None` when it is not in
    /// the internal prefix or cannot be translated (its adjustable word is 0xFFFF: the /48
    /// subnet 0xFFFF, or an all-ones IID for a longer prefix); the packet is then dropped.
    pub fn to_external(&self, internal_addr: Ipv6Addr) -> Option<Ipv6Addr> {
        translate(
            internal_addr,
            self.internal,
            self.external.network(),
            self.outbound,
        )
    }

    /// The internal address for `external_addr` (RFC 6296 3.3), or `None` when it is not in
    /// the external prefix or cannot be translated (as for [`Nptv6Map::to_external`]; no
    /// address [`Nptv6Map::to_external`] produces is refused here).
    pub fn to_internal(&self, external_addr: Ipv6Addr) -> Option<Ipv6Addr> {
        translate(
            external_addr,
            self.external,
            self.internal.network(),
            self.inbound,
        )
    }
}

/// Overwrites `from`'s prefix in `addr` with `to_prefix` (same length, host bits clear) and
/// adds `adjustment` to the RFC's word.
#[inline]
fn translate(
    addr: Ipv6Addr,
    from: Ipv6Net,
    to_prefix: Ipv6Addr,
    adjustment: u16,
) -> Option<Ipv6Addr> {
    if !from.contains(&addr) {
        return None;
    }
    let i = adjusted_word(from.prefix_len(), &addr.segments())?;
    let host_mask = u128::from(from.hostmask());
    let mut words =
        Ipv6Addr::from((u128::from(addr) & host_mask) | u128::from(to_prefix)).segments();
    words[i] = ones_add(words[i], adjustment);
    Some(Ipv6Addr::from(words))
}

/// The index (0..8) of the 16-bit word that takes the adjustment for a prefix of `len` bits
/// (at most 64), or `None` when there is none (RFC 6296 3.4, 3.5, 3.7). The words considered
/// lie wholly outside the prefix, so the choice is the same before and after the prefix is
/// overwritten, and, as an adjusted word is never 0xFFFF, the same in both directions.
#[inline]
fn adjusted_word(len: u8, words: &[u16; 8]) -> Option<usize> {
    if len <= 48 {
        (words[3] != 0xFFFF).then_some(3)
    } else {
        (4..8).find(|&i| words[i] != 0xFFFF)
    }
}

/// One's-complement sum of an address's eight 16-bit words, folded to 16 bits.
fn word_sum(addr: Ipv6Addr) -> u16 {
    let sum: u32 = addr.segments().iter().map(|&w| u32::from(w)).sum();
    // At most 8 * 0xFFFF < 2^19: two folds leave 16 bits.
    let sum = (sum & 0xFFFF) + (sum >> 16);
    let sum = (sum & 0xFFFF) + (sum >> 16);
    sum as u16
}

/// `a - b` in one's-complement arithmetic (adds the complement).
#[inline]
fn ones_sub(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(!b);
    s + u16::from(carry)
}

/// `word + adjustment` in one's-complement arithmetic (end-around carry), with a result of
/// 0xFFFF written as 0x0000 (RFC 6296 3.6 spells the rule out in its example).
#[inline]
fn ones_add(word: u16, adjustment: u16) -> u16 {
    let (s, carry) = word.overflowing_add(adjustment);
    // s + carry cannot overflow: with a carry, s is at most 0xFFFE.
    match s + u16::from(carry) {
        0xFFFF => 0,
        r => r,
    }
}

#[cfg(test)]
mod tests;
