use proptest::prelude::*;

use super::*;
use crate::tcp::{TCP_PSH, TCP_RST};
use Dir::{Original as O, Reply as R};

const SYN: u8 = TCP_SYN;
const SYNACK: u8 = TCP_SYN | TCP_ACK;
const ACK: u8 = TCP_ACK;
const DATA: u8 = TCP_PSH | TCP_ACK;
const FINACK: u8 = TCP_FIN | TCP_ACK;
const RSTACK: u8 = TCP_RST | TCP_ACK;

fn seg(seq: u32, ack: u32, window: u16, payload: u16) -> Segment {
    Segment {
        seq,
        ack,
        window,
        payload,
        ..Segment::default()
    }
}

fn syn_seg(seq: u32, ack: u32, window: u16, wscale: Option<u8>) -> Segment {
    Segment {
        wscale,
        ..seg(seq, ack, window, 0)
    }
}

/// A connection after its handshake: client ISN 1000, server ISN 5000, windows 64240 and
/// 65160 with scale 7 both ways. Returns the window and the next sequence numbers.
fn established() -> (Window, u32, u32) {
    let mut w = Window::default();
    assert!(w.segment(O, SYN, &syn_seg(1000, 0, 64240, Some(7)), TcpState::SynSent));
    assert!(w.segment(
        R,
        SYNACK,
        &syn_seg(5000, 1001, 65160, Some(7)),
        TcpState::SynSent
    ));
    assert!(w.segment(O, ACK, &seg(1001, 5001, 502, 0), TcpState::SynReceived));
    (w, 1001, 5001)
}

#[test]
fn a_handshake_data_and_close_are_in_the_window() {
    let (mut w, c, s) = established();
    let e = TcpState::Established;
    assert!(w.segment(O, DATA, &seg(c, s, 502, 100), e));
    assert!(w.segment(R, DATA, &seg(s, c + 100, 509, 1400), e));
    assert!(w.segment(O, ACK, &seg(c + 100, s + 1400, 502, 0), e));
    assert!(w.segment(R, FINACK, &seg(s + 1400, c + 100, 509, 0), e));
    assert!(w.segment(
        O,
        FINACK,
        &seg(c + 100, s + 1401, 502, 0),
        TcpState::CloseWait
    ));
    assert!(w.segment(R, ACK, &seg(s + 1401, c + 101, 509, 0), TcpState::LastAck));
}

#[test]
fn a_reset_is_accepted_in_the_window_only() {
    let (w, c, s) = established();
    let e = TcpState::Established;
    // off-path guesses: far from the sequence numbers in use
    for bad_seq in [s + 10_000_000, s.wrapping_sub(10_000_000), s + 0x8000_0000] {
        let mut t = w;
        assert!(
            !t.segment(R, TCP_RST, &seg(bad_seq, 0, 0, 0), e),
            "{bad_seq}"
        );
        assert_eq!(t, w, "an out-of-window reset changes nothing");
        assert!(!t.segment(R, RSTACK, &seg(bad_seq, c, 0, 0), e));
    }
    // the server's own reset, at its next sequence number
    let mut t = w;
    assert!(t.segment(R, RSTACK, &seg(s, c, 0, 0), e));
    // a reset ahead of the next byte but inside the window the client allows
    let mut t = w;
    assert!(t.segment(R, TCP_RST, &seg(s + 30_000, 0, 0, 0), e));
}

#[test]
fn a_fin_or_data_out_of_the_window_changes_nothing() {
    let (w, c, s) = established();
    let e = TcpState::Established;
    let mut t = w;
    assert!(!t.segment(R, FINACK, &seg(s + 50_000_000, c, 509, 0), e));
    assert!(!t.segment(R, DATA, &seg(s + 50_000_000, c, 509, 100), e));
    assert_eq!(t, w);
}

#[test]
fn an_ack_of_bytes_never_sent_is_out_of_the_window() {
    let (w, c, s) = established();
    let mut t = w;
    assert!(!t.segment(R, ACK, &seg(s, c + 5000, 509, 0), TcpState::Established));
    // acks lagging by more than the acking side's largest window
    assert!(!t.segment(
        R,
        ACK,
        &seg(s, c.wrapping_sub(20_000_000), 509, 0),
        TcpState::Established
    ));
    assert_eq!(t, w);
}

#[test]
fn retransmissions_and_duplicate_acks_are_in_the_window() {
    let (mut w, c, s) = established();
    let e = TcpState::Established;
    assert!(w.segment(R, DATA, &seg(s, c, 509, 1400), e));
    assert!(w.segment(R, DATA, &seg(s + 1400, c, 509, 1400), e));
    // the first one again, and the client's duplicate acks
    assert!(w.segment(R, DATA, &seg(s, c, 509, 1400), e));
    assert!(w.segment(O, ACK, &seg(c, s + 1400, 502, 0), e));
    assert!(w.segment(O, ACK, &seg(c, s + 1400, 502, 0), e));
    assert!(w.segment(O, ACK, &seg(c, s + 2800, 502, 0), e));
}

#[test]
fn scaled_windows_let_a_side_send_far_ahead() {
    let (mut w, c, s) = established();
    let e = TcpState::Established;
    // the client advertises 502 << 7 = 64256 bytes; 60000 ahead is in the window
    assert!(w.segment(O, ACK, &seg(c, s, 502, 0), e));
    assert!(w.segment(R, DATA, &seg(s + 60_000, c, 509, 1000), e));
    // unscaled, 502 bytes would have been the limit
    let mut u = Window::default();
    assert!(u.segment(O, SYN, &syn_seg(1000, 0, 64240, None), TcpState::SynSent));
    assert!(u.segment(
        R,
        SYNACK,
        &syn_seg(5000, 1001, 65160, Some(7)),
        TcpState::SynSent
    ));
    assert_eq!(
        u.sides.map(|s| s.scale),
        [0, 0],
        "both SYNs must offer scaling"
    );
    assert!(u.segment(O, ACK, &seg(1001, 5001, 502, 0), TcpState::SynReceived));
    assert!(!u.segment(R, DATA, &seg(5001 + 60_000, 1001, 509, 1000), e));
}

#[test]
fn sequence_numbers_wrap() {
    let mut w = Window::default();
    let (c, s) = (u32::MAX - 10, u32::MAX - 100);
    assert!(w.segment(O, SYN, &syn_seg(c, 0, 64240, None), TcpState::SynSent));
    assert!(w.segment(
        R,
        SYNACK,
        &syn_seg(s, c.wrapping_add(1), 65160, None),
        TcpState::SynSent
    ));
    let (c, s) = (c.wrapping_add(1), s.wrapping_add(1));
    let e = TcpState::Established;
    assert!(w.segment(O, DATA, &seg(c, s, 64240, 1000), e));
    assert!(w.segment(R, DATA, &seg(s, c.wrapping_add(1000), 65160, 1000), e));
    assert!(w.segment(
        O,
        ACK,
        &seg(c.wrapping_add(1000), s.wrapping_add(1000), 64240, 0),
        e
    ));
    assert!(!w.segment(R, TCP_RST, &seg(s.wrapping_add(0x4000_0000), 0, 0, 0), e));
}

#[test]
fn a_refused_connection_resets_with_the_right_ack_only() {
    let mut w = Window::default();
    assert!(w.segment(O, SYN, &syn_seg(1000, 0, 64240, None), TcpState::SynSent));
    let mut t = w;
    assert!(!t.segment(R, RSTACK, &seg(0, 77_777, 0, 0), TcpState::SynSent));
    assert_eq!(t, w);
    assert!(t.segment(R, RSTACK, &seg(0, 1001, 0, 0), TcpState::SynSent));
}

#[test]
fn a_restarted_handshake_sets_its_side_up_again() {
    let mut w = Window::default();
    assert!(w.segment(O, SYN, &syn_seg(1000, 0, 64240, None), TcpState::SynSent));
    assert!(w.segment(O, SYN, &syn_seg(900_000, 0, 64240, None), TcpState::SynSent));
    assert!(w.segment(
        R,
        SYNACK,
        &syn_seg(5000, 900_001, 65160, None),
        TcpState::SynSent
    ));
}

#[test]
fn one_sided_flows_are_never_checked() {
    let mut w = Window::default();
    assert!(w.segment(O, SYN, &syn_seg(1000, 0, 64240, None), TcpState::SynSent));
    for (i, seq) in [1001, 50_000_000, 7].into_iter().enumerate() {
        assert!(
            w.segment(O, DATA, &seg(seq, 123, 100, 10), TcpState::Established),
            "{i}"
        );
    }
}

#[test]
fn a_first_fragment_reaches_as_far_as_the_window() {
    let (mut w, c, s) = established();
    let e = TcpState::Established;
    let first = Segment {
        truncated: true,
        ..seg(s, c, 509, 1000)
    };
    assert!(w.segment(R, DATA, &first, e));
    // the client acknowledges the whole segment (3000 bytes, most in later fragments)
    assert!(w.segment(O, ACK, &seg(c, s + 3000, 502, 0), e));
}

#[test]
fn packs_and_unpacks() {
    let (w, _, _) = established();
    assert_eq!(Window::unpack(w.pack()), w);
    let cell = WindowCell::default();
    cell.store(&w);
    assert_eq!(cell.load(), w);
    cell.store(&Window::default());
    assert_eq!(cell.words(), [0; 4]);
}

#[test]
fn the_lock_free_step_writes_its_own_direction_only() {
    let (w, c, s) = established();
    let cell = WindowCell::default();
    cell.store(&w);
    let e = TcpState::Established;
    assert!(cell.step_lock_free(cell.words(), R, DATA, &seg(s, c, 509, 1400), e));
    assert_eq!(cell.load().sides[1].end, s + 1400);
    // out of the window: refused, nothing written
    let before = cell.load();
    assert!(!cell.step_lock_free(cell.words(), R, TCP_RST, &seg(s + 90_000_000, 0, 0, 0), e));
    assert_eq!(cell.load(), before);
    // a handshake step that sets up the other side is left to the locked path
    let fresh = WindowCell::default();
    fresh.store(&{
        let mut w = Window::default();
        assert!(w.segment(O, SYN, &syn_seg(1000, 0, 64240, Some(7)), TcpState::SynSent));
        w
    });
    let held = fresh.load();
    assert!(!fresh.step_lock_free(
        fresh.words(),
        R,
        SYNACK,
        &syn_seg(5000, 1001, 65160, None),
        TcpState::SynSent
    ));
    assert_eq!(fresh.load(), held);
}

/// One endpoint of a simulated connection: what it has sent and what it has received.
#[derive(Clone, Copy, Debug)]
struct Peer {
    /// Next sequence number to send.
    next: u32,
    /// Highest acknowledged by the other side.
    acked: u32,
    /// Next sequence number expected from the other side.
    rcv: u32,
    /// Window it advertises (unscaled field).
    window: u16,
    scale: u8,
}

proptest! {
    /// Any conversation two well-behaved TCP endpoints can have (data both ways within the
    /// windows they advertise, retransmissions, repeated and changing windows, a close) is in
    /// the window throughout, wherever the sequence numbers start; and after it, resets at a
    /// sequence number at least a window's reach (2^31 away) from the one in use never are.
    #[test]
    fn well_behaved_conversations_stay_in_the_window(
        isn_c in any::<u32>(),
        isn_s in any::<u32>(),
        scales in (0u8..=14, 0u8..=14),
        offers in (any::<bool>(), any::<bool>()),
        steps in prop::collection::vec((any::<bool>(), 0u16..1500, 1u16..u16::MAX, 0u8..4), 1..200),
        spoof in 0x4000_0000u32..0xC000_0000,
    ) {
        let mut w = Window::default();
        let (sc, ss) = (offers.0.then_some(scales.0), offers.1.then_some(scales.1));
        let scaled = offers.0 && offers.1;
        prop_assert!(w.segment(O, SYN, &syn_seg(isn_c, 0, 64240, sc), TcpState::SynSent));
        prop_assert!(w.segment(R, SYNACK, &syn_seg(isn_s, isn_c.wrapping_add(1), 65160, ss), TcpState::SynSent));
        let mut peers = [
            Peer { next: isn_c.wrapping_add(1), acked: isn_c.wrapping_add(1), rcv: isn_s.wrapping_add(1), window: 64240, scale: if scaled { scales.0 } else { 0 } },
            Peer { next: isn_s.wrapping_add(1), acked: isn_s.wrapping_add(1), rcv: isn_c.wrapping_add(1), window: 65160, scale: if scaled { scales.1 } else { 0 } },
        ];
        // the client's handshake ack, with its first scaled window
        prop_assert!(w.segment(O, ACK, &seg(peers[0].next, peers[0].rcv, peers[0].window, 0), TcpState::SynReceived));
        // and the server's first scaled window (its SYN's was unscaled)
        prop_assert!(w.segment(R, ACK, &seg(peers[1].next, peers[1].rcv, peers[1].window, 0), TcpState::Established));
        let e = TcpState::Established;
        for (from_server, len, window, kind) in steps {
            let (si, ri) = if from_server { (1, 0) } else { (0, 1) };
            let dir = if from_server { R } else { O };
            let (s, r) = (peers[si], peers[ri]);
            // what the receiver allows: up to its advertised window past what it acked
            let limit = s.acked.wrapping_add(u32::from(r.window) << r.scale);
            let room = limit.wrapping_sub(s.next);
            let len = if (room as i32) <= 0 { 0 } else { u32::from(len).min(room) as u16 };
            match kind {
                // new data
                0 | 1 => {
                    prop_assert!(w.segment(dir, DATA, &seg(s.next, s.rcv, s.window, len), e), "data {:?}", peers);
                    peers[si].next = s.next.wrapping_add(u32::from(len));
                }
                // retransmission of the oldest unacknowledged bytes
                2 => {
                    let old = s.next.wrapping_sub(s.acked).min(u32::from(len)) as u16;
                    prop_assert!(w.segment(dir, DATA, &seg(s.acked, s.rcv, s.window, old), e), "retransmission {:?}", peers);
                }
                // the receiver catches up and acknowledges everything, with a new window
                _ => {
                    peers[ri].rcv = s.next;
                    peers[ri].window = window;
                    peers[si].acked = s.next;
                    let r = peers[ri];
                    let rdir = if from_server { O } else { R };
                    prop_assert!(w.segment(rdir, ACK, &seg(r.next, r.rcv, r.window, 0), e), "ack {:?}", peers);
                }
            }
        }
        let s = peers[1];
        let mut t = w;
        prop_assert!(!t.segment(R, TCP_RST, &seg(s.next.wrapping_add(spoof), 0, 0, 0), e));
        prop_assert_eq!(t, w);
        prop_assert!(w.segment(R, RSTACK, &seg(s.next, s.rcv, 0, 0), e));
    }
}

proptest! {
    /// The lock-free shortcut decides every segment as the general path does, words and all,
    /// from any state two sides in the window could be in.
    #[test]
    fn the_lock_free_shortcut_agrees_with_the_general_path(
        words in any::<[u64; 4]>(),
        seen in (any::<bool>(), any::<bool>()),
        from_reply in any::<bool>(),
        flags in any::<u8>(),
        seq in any::<u32>(),
        ack in any::<u32>(),
        window in any::<u16>(),
        payload in 0u16..2000,
        near in any::<bool>(),
    ) {
        // scales at most 14, the seen bits as drawn, no other flag bits
        let meta = |m: u64, seen: bool| (m & 0xffff_ffff) | ((m >> 32) % 15) << 32 | if seen { SEEN } else { 0 };
        let old = [words[0], words[1], meta(words[2], seen.0), meta(words[3], seen.1)];
        let dir = if from_reply { R } else { O };
        let d = ix(dir);
        // half the segments near the numbers in use, so that both outcomes are common
        let (seq, ack) = if near {
            ((old[d] as u32).wrapping_add(seq % 4096), (old[1 - d] as u32).wrapping_sub(ack % 4096))
        } else {
            (seq, ack)
        };
        let seg = Segment { seq, ack, window, payload, wscale: None, truncated: false };
        for state in [TcpState::Established, TcpState::FinWait, TcpState::SynSent] {
            prop_assert_eq!(
                own_words(old, dir, flags, &seg, state),
                general_words(old, dir, flags, &seg, state)
            );
        }
    }
}
