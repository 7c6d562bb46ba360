//! TCP connection tracking: states, transitions, and the timeout class of each state.
//!
//! The state machine reads flags, one packet at a time, from the *original* direction (the
//! side that opened the session: on the LAN, or for a port forward's session the Internet
//! client, see [`Dir::tracked`]) or the *reply* direction. Sequence numbers are
//! `window.rs`'s: a segment reaches the state machine only once it is found in its
//! connection's window (or, for a SYN that recycles a TimeWait or Closed session, opens a new
//! one), so an off-path host cannot move a connection's state. "O" and "R" below name the direction, `+` joins flags that must be set, and
//! "non-SYN" means SYN is clear. RST is checked first, from any state.
//!
//! | state        | packet                          | next                                   |
//! |--------------|---------------------------------|----------------------------------------|
//! | any but Closed | RST either way                | Closed (counted as `closed_by_rst`)    |
//! | SynSent      | R: SYN (+ACK, or simultaneous open) | SynReceived                        |
//! | SynSent      | O: non-SYN ACK (data after SYN; the only way a hairpin session, which never sees its replies, gets established) | Established |
//! | SynSent, SynReceived, Established | O: FIN     | FinWait (first FIN from O)             |
//! | SynSent, SynReceived, Established | R: FIN     | CloseWait (first FIN from R)           |
//! | SynReceived  | non-SYN ACK either way (the final handshake ACK, or data) | Established  |
//! | FinWait      | R: FIN                          | LastAck (awaits O's ACK)               |
//! | CloseWait    | O: FIN                          | LastAck (awaits R's ACK)               |
//! | LastAck      | ACK without FIN/SYN from the side that sent the first FIN | TimeWait     |
//! | TimeWait, Closed | O: SYN without ACK          | *recycle*: the session is removed and the lookup misses, so the slow path creates a fresh one |
//! | anything else | —                              | unchanged                              |
//!
//! A reply-direction SYN on a TimeWait or Closed session does not recycle it (the opener's
//! side alone opens sessions); the packet is forwarded and the state is unchanged.
//!
//! A session starts from the packet that creates it: SYN without ACK → SynSent, any other
//! packet → Established (the engine only creates TCP sessions from SYNs; anything else is
//! assumed to be mid-stream).
//!
//! Timeout classes: Established → `tcp_established`; Closed → `tcp_closed`; every other state
//! (SynSent, SynReceived, FinWait, CloseWait, LastAck, TimeWait) → `tcp_transitory`.

use crate::timeouts::Class;

/// FIN flag bit of the TCP flags byte.
pub const TCP_FIN: u8 = 0x01;
/// SYN flag bit.
pub const TCP_SYN: u8 = 0x02;
/// RST flag bit.
pub const TCP_RST: u8 = 0x04;
/// PSH flag bit.
pub const TCP_PSH: u8 = 0x08;
/// ACK flag bit.
pub const TCP_ACK: u8 = 0x10;

/// State of a tracked TCP connection (see the module documentation for the transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// SYN seen from the original side.
    SynSent = 0,
    /// SYN(+ACK) seen from the reply side.
    SynReceived = 1,
    /// Handshake completed (or the session was created mid-stream).
    Established = 2,
    /// The original side sent the first FIN.
    FinWait = 3,
    /// The reply side sent the first FIN.
    CloseWait = 4,
    /// Both sides sent FIN; waiting for the last ACK.
    LastAck = 5,
    /// Both FINs acknowledged.
    TimeWait = 6,
    /// Reset by either side.
    Closed = 7,
}

impl TcpState {
    /// Lower-case name, as `fwdctl flows` shows it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::SynSent => "syn_sent",
            TcpState::SynReceived => "syn_received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::TimeWait => "time_wait",
            TcpState::Closed => "closed",
        }
    }

    /// The timeout class of this state.
    #[inline]
    pub(crate) fn class(self) -> Class {
        match self {
            TcpState::Established => Class::TcpEstablished,
            TcpState::Closed => Class::TcpClosed,
            _ => Class::TcpTransitory,
        }
    }

    fn from_bits(b: u8) -> TcpState {
        match b & STATE_MASK {
            0 => TcpState::SynSent,
            1 => TcpState::SynReceived,
            2 => TcpState::Established,
            3 => TcpState::FinWait,
            4 => TcpState::CloseWait,
            5 => TcpState::LastAck,
            6 => TcpState::TimeWait,
            _ => TcpState::Closed,
        }
    }
}

/// Direction of a packet relative to the session. The table names directions by the
/// canonical key (`Original`: from the LAN side, `Reply`: to it); the state machine and
/// `window.rs` by who opened the connection (`Original`: from the opener). They agree except
/// for a port forward's session, opened from the Internet: [`Dir::tracked`] turns one into
/// the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// From the side that opened the session (for the table: the LAN side).
    Original,
    /// From the other side.
    Reply,
}

impl Dir {
    /// The direction the tracker sees for a packet the table sees travelling in `self`: the
    /// same, except for a session `opened_by_reply` (a port forward's, opened by an Internet
    /// client; not the target's side of a hairpin through a forward, which sees the LAN side
    /// only), whose opener is the reply side.
    #[inline]
    pub(crate) fn tracked(self, opened_by_reply: bool) -> Dir {
        match (self, opened_by_reply) {
            (d, false) => d,
            (Dir::Original, true) => Dir::Reply,
            (Dir::Reply, true) => Dir::Original,
        }
    }
}

const STATE_MASK: u8 = 0x07;
/// Set when the first FIN came from the reply side.
const FIRST_FIN_REPLY: u8 = 0x80;

/// Per-session TCP tracking state packed in one byte: the state, and which side sent the
/// first FIN (needed to recognise the last ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct TcpTrack(u8);

/// Result of feeding one packet to the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep the session, with this tracking state. `reset`: this packet closed it with a RST.
    Keep { track: TcpTrack, reset: bool },
    /// Remove the session and miss (SYN on a TimeWait/Closed session).
    Recycle,
}

impl TcpTrack {
    /// Tracking state of a session created by a packet with these flags.
    pub(crate) fn initial(flags: u8) -> TcpTrack {
        if flags & TCP_SYN != 0 && flags & (TCP_ACK | TCP_RST) == 0 {
            TcpTrack::with_state(TcpState::SynSent)
        } else {
            TcpTrack::with_state(TcpState::Established)
        }
    }

    pub(crate) fn with_state(state: TcpState) -> TcpTrack {
        TcpTrack(state as u8)
    }

    /// The packed byte (see [`TcpTrack::from_bits`]).
    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// The tracker whose packed byte is `bits` (any byte gives a valid tracker).
    pub(crate) fn from_bits(bits: u8) -> TcpTrack {
        TcpTrack(bits)
    }

    #[inline]
    pub(crate) fn state(self) -> TcpState {
        TcpState::from_bits(self.0)
    }

    fn first_fin(dir: Dir, state: TcpState) -> TcpTrack {
        match dir {
            Dir::Original => TcpTrack(state as u8),
            Dir::Reply => TcpTrack(state as u8 | FIRST_FIN_REPLY),
        }
    }

    fn moved(self, state: TcpState) -> TcpTrack {
        TcpTrack((self.0 & !STATE_MASK) | state as u8)
    }

    fn first_fin_dir(self) -> Dir {
        if self.0 & FIRST_FIN_REPLY != 0 {
            Dir::Reply
        } else {
            Dir::Original
        }
    }

    /// Whether a packet with `flags` travelling in `dir` leaves the tracker as it is (no state
    /// change, no reset, no recycling): what [`step`](Self::step) says, answered without it for
    /// the common case, an established connection's segment without FIN or RST.
    #[inline]
    pub(crate) fn unchanged_by(self, dir: Dir, flags: u8) -> bool {
        if self.0 == TcpState::Established as u8 && flags & (TCP_FIN | TCP_RST) == 0 {
            return true;
        }
        matches!(self.step(dir, flags), Step::Keep { track, reset: false } if track == self)
    }

    /// Feeds one packet with TCP flags `flags` travelling in direction `dir`.
    pub(crate) fn step(self, dir: Dir, flags: u8) -> Step {
        let syn = flags & TCP_SYN != 0;
        let ack = flags & TCP_ACK != 0;
        let fin = flags & TCP_FIN != 0;
        let rst = flags & TCP_RST != 0;
        let state = self.state();
        let keep = |track| Step::Keep {
            track,
            reset: false,
        };
        if rst {
            return match state {
                TcpState::Closed => keep(self),
                _ => Step::Keep {
                    track: self.moved(TcpState::Closed),
                    reset: true,
                },
            };
        }
        match state {
            TcpState::TimeWait | TcpState::Closed => {
                if dir == Dir::Original && syn && !ack {
                    Step::Recycle
                } else {
                    keep(self)
                }
            }
            TcpState::SynSent => {
                if syn {
                    match dir {
                        Dir::Reply => keep(self.moved(TcpState::SynReceived)),
                        Dir::Original => keep(self),
                    }
                } else if fin {
                    keep(Self::fin_first(dir))
                } else if ack && dir == Dir::Original {
                    keep(self.moved(TcpState::Established))
                } else {
                    keep(self)
                }
            }
            TcpState::SynReceived => {
                if syn {
                    keep(self)
                } else if fin {
                    keep(Self::fin_first(dir))
                } else if ack {
                    keep(self.moved(TcpState::Established))
                } else {
                    keep(self)
                }
            }
            TcpState::Established => {
                if fin && !syn {
                    keep(Self::fin_first(dir))
                } else {
                    keep(self)
                }
            }
            TcpState::FinWait => {
                if fin && dir == Dir::Reply {
                    keep(self.moved(TcpState::LastAck))
                } else {
                    keep(self)
                }
            }
            TcpState::CloseWait => {
                if fin && dir == Dir::Original {
                    keep(self.moved(TcpState::LastAck))
                } else {
                    keep(self)
                }
            }
            TcpState::LastAck => {
                if ack && !fin && !syn && dir == self.first_fin_dir() {
                    keep(self.moved(TcpState::TimeWait))
                } else {
                    keep(self)
                }
            }
        }
    }

    fn fin_first(dir: Dir) -> TcpTrack {
        match dir {
            Dir::Original => Self::first_fin(dir, TcpState::FinWait),
            Dir::Reply => Self::first_fin(dir, TcpState::CloseWait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dir::{Original as O, Reply as R};

    const SYN: u8 = TCP_SYN;
    const SYNACK: u8 = TCP_SYN | TCP_ACK;
    const ACK: u8 = TCP_ACK;
    const FINACK: u8 = TCP_FIN | TCP_ACK;
    const DATA: u8 = TCP_PSH | TCP_ACK;

    /// Runs packets through the tracker from the state a SYN creates; returns every state.
    fn run(first: u8, packets: &[(Dir, u8)]) -> Vec<TcpState> {
        let mut t = TcpTrack::initial(first);
        let mut out = vec![t.state()];
        for &(dir, flags) in packets {
            match t.step(dir, flags) {
                Step::Keep { track, .. } => t = track,
                Step::Recycle => panic!("unexpected recycle"),
            }
            out.push(t.state());
        }
        out
    }

    use TcpState::*;

    /// The shortcut agrees with the state machine for every tracker byte, direction and flags.
    #[test]
    fn unchanged_by_agrees_with_step() {
        for bits in 0..=u8::MAX {
            let t = TcpTrack::from_bits(bits);
            for dir in [O, R] {
                for flags in 0..=u8::MAX {
                    let by_step = matches!(t.step(dir, flags), Step::Keep { track, reset: false } if track == t);
                    assert_eq!(
                        t.unchanged_by(dir, flags),
                        by_step,
                        "{bits:#x} {dir:?} {flags:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn initial_state_follows_the_first_packet() {
        assert_eq!(TcpTrack::initial(SYN).state(), SynSent);
        assert_eq!(TcpTrack::initial(SYNACK).state(), Established);
        assert_eq!(TcpTrack::initial(ACK).state(), Established);
        assert_eq!(TcpTrack::initial(0).state(), Established);
    }

    #[test]
    fn three_way_handshake() {
        let s = run(
            SYN,
            &[(O, SYN), (R, SYNACK), (R, SYNACK), (O, ACK), (O, DATA)],
        );
        assert_eq!(
            s,
            [
                SynSent,
                SynSent,
                SynReceived,
                SynReceived,
                Established,
                Established
            ]
        );
    }

    #[test]
    fn data_from_the_reply_side_after_syn_ack_establishes() {
        assert_eq!(
            run(SYN, &[(R, SYNACK), (R, DATA)]),
            [SynSent, SynReceived, Established]
        );
    }

    #[test]
    fn reply_ack_without_syn_ack_does_not_establish() {
        assert_eq!(run(SYN, &[(R, ACK)]), [SynSent, SynSent]);
    }

    #[test]
    fn simultaneous_open() {
        assert_eq!(
            run(SYN, &[(R, SYN), (O, ACK)]),
            [SynSent, SynReceived, Established]
        );
    }

    #[test]
    fn hairpin_session_establishes_from_its_original_side_alone() {
        assert_eq!(
            run(SYN, &[(O, ACK), (O, DATA)]),
            [SynSent, Established, Established]
        );
    }

    #[test]
    fn original_side_closes_first() {
        let s = run(
            SYN,
            &[
                (R, SYNACK),
                (O, ACK),
                (O, FINACK),
                (R, ACK),
                (R, FINACK),
                (R, ACK),
                (O, ACK),
            ],
        );
        assert_eq!(
            s,
            [
                SynSent,
                SynReceived,
                Established,
                FinWait,
                FinWait,
                LastAck,
                LastAck,
                TimeWait
            ]
        );
    }

    #[test]
    fn reply_side_closes_first() {
        let s = run(
            SYN,
            &[
                (R, SYNACK),
                (O, ACK),
                (R, FINACK),
                (O, DATA),
                (O, FINACK),
                (O, ACK),
                (R, ACK),
            ],
        );
        assert_eq!(
            s,
            [
                SynSent,
                SynReceived,
                Established,
                CloseWait,
                CloseWait,
                LastAck,
                LastAck,
                TimeWait
            ]
        );
    }

    #[test]
    fn simultaneous_close() {
        let s = run(ACK, &[(O, FINACK), (R, FINACK), (O, ACK)]);
        assert_eq!(s, [Established, FinWait, LastAck, TimeWait]);
    }

    #[test]
    fn rst_from_either_side_closes_and_is_reported_once() {
        for dir in [O, R] {
            let t = TcpTrack::initial(ACK);
            let Step::Keep { track, reset } = t.step(dir, TCP_RST | TCP_ACK) else {
                panic!("rst recycled");
            };
            assert!(reset);
            assert_eq!(track.state(), Closed);
            assert_eq!(
                track.step(dir, TCP_RST),
                Step::Keep {
                    track,
                    reset: false
                }
            );
        }
        assert_eq!(run(SYN, &[(R, TCP_RST | TCP_ACK)]), [SynSent, Closed]);
    }

    #[test]
    fn syn_recycles_time_wait_and_closed_from_the_original_side_only() {
        let tw = TcpTrack::with_state(TimeWait);
        let closed = TcpTrack::with_state(Closed);
        for t in [tw, closed] {
            assert_eq!(t.step(O, SYN), Step::Recycle);
            assert_ne!(t.step(O, SYNACK), Step::Recycle);
            assert_ne!(t.step(R, SYN), Step::Recycle);
            assert_ne!(t.step(O, ACK), Step::Recycle);
        }
        // and nowhere else
        for s in [
            SynSent,
            SynReceived,
            Established,
            FinWait,
            CloseWait,
            LastAck,
        ] {
            assert_ne!(TcpTrack::with_state(s).step(O, SYN), Step::Recycle, "{s:?}");
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Established.class(), Class::TcpEstablished);
        assert_eq!(Closed.class(), Class::TcpClosed);
        for s in [SynSent, SynReceived, FinWait, CloseWait, LastAck, TimeWait] {
            assert_eq!(s.class(), Class::TcpTransitory);
        }
    }

    #[test]
    fn state_bits_round_trip() {
        for s in [
            SynSent,
            SynReceived,
            Established,
            FinWait,
            CloseWait,
            LastAck,
            TimeWait,
            Closed,
        ] {
            assert_eq!(TcpTrack::with_state(s).state(), s);
            assert_eq!(TcpTrack::first_fin(R, s).state(), s);
        }
    }
}
