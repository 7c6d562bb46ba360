//! Idle timeouts, the timeout classes sessions are filed under, and the table's time unit.
//!
//! Time inside the table is a `u64` count of nanoseconds since the caller's origin (584 years of
//! range; larger values saturate). A session of class `c` is expired at `now` when
//! `last_seen + timeout(c) <= now`: exactly at its timeout, never before. Whole seconds are
//! counted from the same origin ([`SECOND`]): a session moves in its class list at most once
//! per whole second (see `shard.rs`).

use std::time::Duration;

/// Idle timeouts per kind of flow. Defaults follow RFC 4787 / 5382 / 5508 / 7857.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// UDP (default 300 s).
    pub udp: Duration,
    /// ICMP echo (default 60 s).
    pub icmp: Duration,
    /// TCP established (default 7440 s).
    pub tcp_established: Duration,
    /// TCP opening or closing (default 240 s).
    pub tcp_transitory: Duration,
    /// TCP after a RST (default 240 s: RFC 7857 section 2.2 keeps a reset connection's state
    /// four minutes, so that its late segments still find it and its port is not handed to
    /// another host meanwhile).
    pub tcp_closed: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            udp: Duration::from_secs(300),
            icmp: Duration::from_secs(60),
            tcp_established: Duration::from_secs(7440),
            tcp_transitory: Duration::from_secs(240),
            tcp_closed: Duration::from_secs(240),
        }
    }
}

/// Timeout class. Every session of a class has the same timeout, so each class keeps its own
/// list per shard, in order of last packet to within one second: the tail expires less than a
/// second after any session behind it, at the latest (see `shard.rs` for the discipline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Class {
    Udp = 0,
    Icmp = 1,
    TcpTransitory = 2,
    TcpEstablished = 3,
    TcpClosed = 4,
}

/// Number of classes.
pub(crate) const CLASS_COUNT: usize = 5;

impl Class {
    pub(crate) const ALL: [Class; CLASS_COUNT] = [
        Class::Udp,
        Class::Icmp,
        Class::TcpTransitory,
        Class::TcpEstablished,
        Class::TcpClosed,
    ];

    #[inline]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Timeouts in table time units, indexed by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeoutsNs([u64; CLASS_COUNT]);

impl TimeoutsNs {
    pub(crate) fn new(t: &Timeouts) -> TimeoutsNs {
        TimeoutsNs([
            nanos(t.udp),
            nanos(t.icmp),
            nanos(t.tcp_transitory),
            nanos(t.tcp_established),
            nanos(t.tcp_closed),
        ])
    }

    #[inline]
    pub(crate) fn get(&self, class: Class) -> u64 {
        self.0[class.index()]
    }

    /// Whether a session of `class` last seen at `last_seen` is expired at `now`.
    #[inline]
    pub(crate) fn expired(&self, class: Class, last_seen: u64, now: u64) -> bool {
        last_seen.saturating_add(self.get(class)) <= now
    }
}

/// One second in table time units.
pub(crate) const SECOND: u64 = 1_000_000_000;

/// The start of the whole second `now` (table units) lies in: a time `t <= now` is in the same
/// second as `now` exactly when `t >= second_start(now)` (one division instead of two).
#[inline]
pub(crate) fn second_start(now: u64) -> u64 {
    now - now % SECOND
}

/// A duration in table time units (nanoseconds, saturating).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(SECOND)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// Table time units back to a duration.
#[inline]
pub(crate) fn duration(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_rfcs() {
        let t = Timeouts::default();
        assert_eq!(t.udp, Duration::from_secs(300));
        assert_eq!(t.icmp, Duration::from_secs(60));
        assert_eq!(t.tcp_established, Duration::from_secs(7440));
        assert_eq!(t.tcp_transitory, Duration::from_secs(240));
        assert_eq!(t.tcp_closed, Duration::from_secs(240));
    }

    #[test]
    fn classes_map_to_their_timeouts() {
        let t = TimeoutsNs::new(&Timeouts::default());
        assert_eq!(t.get(Class::Udp), 300_000_000_000);
        assert_eq!(t.get(Class::Icmp), 60_000_000_000);
        assert_eq!(t.get(Class::TcpEstablished), 7_440_000_000_000);
        assert_eq!(t.get(Class::TcpTransitory), 240_000_000_000);
        assert_eq!(t.get(Class::TcpClosed), 240_000_000_000);
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn expiry_is_exactly_at_the_timeout() {
        let t = TimeoutsNs::new(&Timeouts::default());
        let last = nanos(Duration::from_secs(5));
        let at = last + t.get(Class::Udp);
        assert!(!t.expired(Class::Udp, last, at - 1));
        assert!(t.expired(Class::Udp, last, at));
        assert!(t.expired(Class::Udp, last, at + 1));
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        let t = TimeoutsNs::new(&Timeouts {
            udp: Duration::MAX,
            ..Timeouts::default()
        });
        assert!(!t.expired(Class::Udp, 10, u64::MAX - 1));
        assert_eq!(duration(1_500_000_000), Duration::from_millis(1500));
    }
}
