//! TCP sequence-window tracking: which segments of a tracked connection are plausible, so that
//! an off-path host that knows a connection's addresses and ports but not its sequence numbers
//! cannot reset, close or disturb it.
//!
//! The check is the one stateful packet filters have used since Guido van Rooij's "Real
//! Stateful TCP Packet Filtering in IP Filter" (2000), as Linux conntrack (`tcp_in_window`)
//! and pf apply it. Each side of a connection keeps:
//! - `end`: the highest sequence number it has sent, plus one (`seq + payload + SYN + FIN`);
//! - `maxend`: the highest sequence number it may send: the other side's highest
//!   acknowledgement plus the window it advertised with it;
//! - `maxwin`: the largest window it has advertised (scaled);
//! - `scale`: its window scale shift, in force only when both SYNs offered one (RFC 7323).
//!
//! A segment from side S to side R, with `end = seq + payload (+1 for SYN, +1 for FIN)`, is
//! in the window when
//! 1. `seq ≤ S.maxend` (it starts no further than R allowed);
//! 2. `end ≥ S.end − R.maxwin` (it is no older than a window of R's: a retransmission);
//! 3. `ack ≤ R.end` (it acknowledges nothing R has not sent);
//! 4. `ack ≥ R.end − W`, W = S.maxwin, or 66000 before S advertised any (not an ancient ack).
//!
//! A segment without ACK is taken to acknowledge `R.end`, as is a RST+ACK whose ack is 0 (old
//! stacks send those). A segment that carries no payload, SYN or FIN and is not a RST has its
//! sequence number taken as `S.end` (pure ACKs' sequence numbers prove nothing); a RST's is
//! checked, so a reset is accepted only in the window. A RST with sequence number 0 answering a
//! SYN (state SynSent) is taken as `S.end` too.
//!
//! A segment in the window advances `S.end`, `S.maxwin`, and `R.maxend` to `ack + window`; one
//! outside it changes nothing (the caller counts and drops it). Until both sides have sent a
//! segment there is nothing to check against: segments are accepted and set up their sender's
//! side (a SYN: `end = maxend = seq + 1 + payload`, its window unscaled, its scale option
//! noted; anything else: the connection is taken up in the middle, `maxend = end + window`). A
//! SYN that moves `end` forward while the connection is opening (SynSent, SynReceived) sets its
//! side up again: a restarted handshake. Hairpin sessions, which see one side only, are never
//! checked.
//!
//! # Storage and concurrency
//!
//! A [`WindowCell`] is 32 bytes beside its session's 64-byte cell (in a slab of the shard's,
//! slot for slot): four words, two per direction, each holding what *that direction's*
//! packets write: `sent[d] = end_d | maxend_{other} << 32` and `meta[d] = maxwin_d | scale_d
//! << 32 | flags_d << 40`. A hit under the shard's lock stores the words that changed. A
//! lock-free hit (see `shard.rs`) may write only its own direction's two words, and does so
//! by compare-and-swap from the values it read: a swap that fails (the slot was reused, or
//! another packet of the same direction got there first) sends the packet to the locked path,
//! so a lock-free hit never stores over a newer state. A race that remains is a locked write of
//! one direction against a lock-free write of the other, which touch different words.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::tcp::{Dir, TcpState, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// What window tracking needs of a TCP segment besides its flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK set).
    pub ack: u32,
    /// Window field as on the wire (before scaling).
    pub window: u16,
    /// Payload bytes in the packet. For the first fragment of a fragmented segment, those of
    /// the fragment (see `truncated`).
    pub payload: u16,
    /// The window scale option's shift count, for a SYN carrying one.
    pub wscale: Option<u8>,
    /// The packet is the first fragment of its segment: the segment's length is not known.
    /// Its end is taken as far as the window allows (`S.maxend`).
    pub truncated: bool,
}

/// Largest window scale shift (RFC 7323 2.3); larger values are taken as 14.
const MAX_SCALE: u8 = 14;

/// `meta` flag: this side has sent a segment (its words are set up).
const SEEN: u64 = 1 << 40;
/// `meta` flag: this side's SYN offered window scaling.
const OFFERS_SCALE: u64 = 1 << 41;

/// `a` is before `b` in sequence space (RFC 1982 serial arithmetic on 32 bits).
#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is after `b` in sequence space.
#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// Whether a segment from side S spanning `seq..end` and acknowledging `ack` is in the
/// window: the four conditions of the module docs, given S's end, maxend and maxwin and the
/// receiver R's end and maxwin.
#[inline(always)]
fn in_window(
    (seq, end, ack): (u32, u32, u32),
    (s_end, s_maxend, s_maxwin): (u32, u32, u32),
    (r_end, r_maxwin): (u32, u32),
) -> bool {
    !after(seq, s_maxend)
        && !before(end, s_end.wrapping_sub(r_maxwin))
        && !after(ack, r_end)
        && !before(ack, r_end.wrapping_sub(s_maxwin))
}

/// The later of two sequence numbers.
#[inline(always)]
fn latest(a: u32, b: u32) -> u32 {
    if after(a, b) {
        a
    } else {
        b
    }
}

/// R's maxend once S acknowledged `ack` advertising `window` (scaled): as far as that
/// acknowledgement lets R send (one byte past a zero window, for window probes), never back.
#[inline(always)]
fn acked_maxend(r_maxend: u32, ack: u32, window: u32) -> u32 {
    let reach = ack
        .wrapping_add(window)
        .wrapping_add(u32::from(window == 0));
    latest(reach, r_maxend)
}

/// One side's window state, unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Side {
    end: u32,
    maxend: u32,
    maxwin: u32,
    scale: u8,
    seen: bool,
    offers_scale: bool,
}

/// Both sides' window state, unpacked from a [`WindowCell`] (index: `Dir as usize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Window {
    sides: [Side; 2],
}

/// Index of a direction's side.
#[inline]
fn ix(dir: Dir) -> usize {
    match dir {
        Dir::Original => 0,
        Dir::Reply => 1,
    }
}

impl Window {
    /// The words of the cell holding this state (`[sent0, sent1, meta0, meta1]`).
    fn pack(&self) -> [u64; 4] {
        let [a, b] = self.sides;
        let meta = |s: Side| {
            u64::from(s.maxwin)
                | u64::from(s.scale) << 32
                | if s.seen { SEEN } else { 0 }
                | if s.offers_scale { OFFERS_SCALE } else { 0 }
        };
        [
            u64::from(a.end) | u64::from(b.maxend) << 32,
            u64::from(b.end) | u64::from(a.maxend) << 32,
            meta(a),
            meta(b),
        ]
    }

    fn unpack([s0, s1, m0, m1]: [u64; 4]) -> Window {
        let side = |sent: u64, other_sent: u64, meta: u64| Side {
            end: sent as u32,
            maxend: (other_sent >> 32) as u32,
            maxwin: meta as u32,
            scale: (meta >> 32) as u8,
            seen: meta & SEEN != 0,
            offers_scale: meta & OFFERS_SCALE != 0,
        };
        Window {
            sides: [side(s0, s1, m0), side(s1, s0, m1)],
        }
    }

    /// Whether the segment `seg` with TCP `flags`, travelling in `dir` on a connection in
    /// `state`, is in the window (see the module docs); if so, applies it. Out of the window,
    /// nothing changes.
    pub(crate) fn segment(&mut self, dir: Dir, flags: u8, seg: &Segment, state: TcpState) -> bool {
        let (si, ri) = (ix(dir), 1 - ix(dir));
        let mut s = self.sides[si];
        let mut r = self.sides[ri];
        let syn = flags & TCP_SYN != 0;
        let has_ack = flags & TCP_ACK != 0;
        let rst = flags & TCP_RST != 0;
        let mut seq = seg.seq;
        let mut end = seg
            .seq
            .wrapping_add(u32::from(seg.payload))
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(flags & TCP_FIN != 0));
        let opening = matches!(state, TcpState::SynSent | TcpState::SynReceived);
        if !s.seen || (syn && opening && after(end, s.end)) {
            s = set_up(s, &mut r, flags, seg, end);
        }
        if !r.seen {
            // Nothing to check against yet: the sender's side is all there is.
            self.sides[si] = s;
            self.sides[ri] = r;
            return true;
        }
        let mut ack = seg.ack;
        if !has_ack || (rst && ack == 0) {
            ack = r.end;
        }
        let window = if syn {
            u32::from(seg.window)
        } else {
            u32::from(seg.window) << s.scale
        };
        if (seq == end && !rst) || (rst && seq == 0 && state == TcpState::SynSent) {
            seq = s.end;
            end = s.end;
        }
        if seg.truncated && after(s.maxend, end) {
            end = s.maxend;
        }
        if !in_window(
            (seq, end, ack),
            (s.end, s.maxend, s.maxwin),
            (r.end, r.maxwin),
        ) {
            return false;
        }
        s.maxwin = s.maxwin.max(window);
        s.end = latest(end, s.end);
        if has_ack {
            r.maxend = acked_maxend(r.maxend, ack, window);
        }
        self.sides[si] = s;
        self.sides[ri] = r;
        true
    }
}

/// Sets up side `s` from its first segment (or a restarted SYN): `end` is the segment's end.
/// A SYN+ACK that finds the other side's SYN without the scale option turns scaling off both
/// ways (RFC 7323: both SYNs must offer it).
fn set_up(s: Side, r: &mut Side, flags: u8, seg: &Segment, end: u32) -> Side {
    let mut s = Side { seen: true, ..s };
    if flags & TCP_SYN != 0 {
        s.end = end;
        s.maxend = end;
        s.maxwin = u32::from(seg.window).max(1);
        s.offers_scale = seg.wscale.is_some();
        s.scale = seg.wscale.unwrap_or(0).min(MAX_SCALE);
        if r.seen && !(s.offers_scale && r.offers_scale) {
            s.scale = 0;
            r.scale = 0;
        }
    } else {
        // Taken up mid-connection: the segment's own window is all that is known.
        let window = (u32::from(seg.window) << s.scale).max(1);
        s.end = end;
        s.maxwin = window;
        s.maxend = end.wrapping_add(window);
    }
    s
}

/// A session's window state in its shard's window slab: 32 bytes, two to a cache line (see the
/// module docs for the words and who writes them).
#[derive(Debug, Default)]
#[repr(C, align(32))]
pub(crate) struct WindowCell {
    sent: [AtomicU64; 2],
    meta: [AtomicU64; 2],
}

impl WindowCell {
    /// The four words, as [`step_lock_free`](Self::step_lock_free) takes them.
    #[inline]
    pub(crate) fn words(&self) -> [u64; 4] {
        [
            self.sent[0].load(Relaxed),
            self.sent[1].load(Relaxed),
            self.meta[0].load(Relaxed),
            self.meta[1].load(Relaxed),
        ]
    }

    /// The state held.
    pub(crate) fn load(&self) -> Window {
        Window::unpack(self.words())
    }

    /// Stores `w`, writing only the words that differ from what is held. Lock holder only.
    pub(crate) fn store(&self, w: &Window) {
        let new = w.pack();
        let old = self.words();
        let cells = [&self.sent[0], &self.sent[1], &self.meta[0], &self.meta[1]];
        for ((cell, n), o) in cells.into_iter().zip(new).zip(old) {
            if n != o {
                cell.store(n, Relaxed);
            }
        }
    }

    /// The lock-free part of a hit: checks the segment (as [`Window::segment`]) against `old`,
    /// the cell's words as read with its session (under the shard's sequence number), and, in
    /// the window, stores what changed of the direction's own words by compare-and-swap from
    /// `old`. `false` when the segment is out of the window, when it would change the other
    /// direction's words, or when a swap fails (the slot has changed hands, or another packet
    /// got there first): the caller then takes the shard's lock and decides there.
    #[inline(always)]
    pub(crate) fn step_lock_free(
        &self,
        old: [u64; 4],
        dir: Dir,
        flags: u8,
        seg: &Segment,
        state: TcpState,
    ) -> bool {
        let Some(new) = own_words(old, dir, flags, seg, state) else {
            return false;
        };
        let d = ix(dir);
        swap(&self.meta[d], old[2 + d], new[2 + d]) && swap(&self.sent[d], old[d], new[d])
    }
}

/// The cell's words after the segment, as [`Window::segment`] makes them, when it is in the
/// window and changes no word of the other direction's; `None` otherwise. The common
/// segment (both sides seen, no SYN, FIN or RST, not a fragment: data and acks of an open
/// connection) is decided on the words themselves, without unpacking both sides; anything
/// else goes through [`Window::segment`].
#[inline(always)]
fn own_words(
    old: [u64; 4],
    dir: Dir,
    flags: u8,
    seg: &Segment,
    state: TcpState,
) -> Option<[u64; 4]> {
    let d = ix(dir);
    let (own_sent, other_sent, own_meta, other_meta) = (old[d], old[1 - d], old[2 + d], old[3 - d]);
    if flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 || own_meta & SEEN == 0 || seg.truncated {
        return general_words(old, dir, flags, seg, state);
    }
    if other_meta & SEEN == 0 {
        // one side seen: nothing to check against, and nothing changes
        return Some(old);
    }
    let (s_end, r_maxend) = (own_sent as u32, (own_sent >> 32) as u32);
    let (r_end, s_maxend) = (other_sent as u32, (other_sent >> 32) as u32);
    let (s_maxwin, s_scale, r_maxwin) =
        (own_meta as u32, (own_meta >> 32) as u8, other_meta as u32);
    let has_ack = flags & TCP_ACK != 0;
    let ack = if has_ack { seg.ack } else { r_end };
    let window = u32::from(seg.window) << s_scale;
    let (mut seq, mut end) = (seg.seq, seg.seq.wrapping_add(u32::from(seg.payload)));
    if seq == end {
        (seq, end) = (s_end, s_end);
    }
    if !in_window(
        (seq, end, ack),
        (s_end, s_maxend, s_maxwin),
        (r_end, r_maxwin),
    ) {
        return None;
    }
    let end = latest(end, s_end);
    let maxend = if has_ack {
        acked_maxend(r_maxend, ack, window)
    } else {
        r_maxend
    };
    let mut new = old;
    new[d] = u64::from(end) | u64::from(maxend) << 32;
    new[2 + d] = (own_meta & !0xffff_ffff) | u64::from(s_maxwin.max(window));
    Some(new)
}

/// [`own_words`] through [`Window::segment`]: the reference for every segment.
#[cold]
fn general_words(
    old: [u64; 4],
    dir: Dir,
    flags: u8,
    seg: &Segment,
    state: TcpState,
) -> Option<[u64; 4]> {
    let mut w = Window::unpack(old);
    if !w.segment(dir, flags, seg, state) {
        return None;
    }
    let new = w.pack();
    let d = ix(dir);
    let other = [1 - d, 3 - d];
    other.iter().all(|&i| new[i] == old[i]).then_some(new)
}

/// Stores `new` in `cell` if it still holds `old` (nothing to do when they are equal).
#[inline]
fn swap(cell: &AtomicU64, old: u64, new: u64) -> bool {
    old == new || cell.compare_exchange(old, new, Relaxed, Relaxed).is_ok()
}

#[cfg(test)]
mod tests;
