//! A constant-rate UDP stream for failover measurements: a sender (in a LAN host) sends
//! numbered datagrams from one socket, so the router sees one flow; a receiver (in the
//! internet namespace) records when each arrived and from which address, so it can tell
//! which WAN carried it (ISPs do not NAT) and how long nothing arrived while a WAN failed.
//! The receiver never `connect`s: a flow that moves to another WAN arrives from another
//! source address and is still counted (iperf3's UDP server would ignore it).
//!
//! `udp-stream send|recv` (the binary) runs these; [`Report`] is what `recv` prints as JSON.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// First bytes of every datagram of the stream.
const MAGIC: [u8; 4] = *b"fwdS";
/// Datagram size: magic + sequence number + padding.
const DATAGRAM: usize = 64;

/// One datagram as received.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Time since the receiver started.
    pub at: Duration,
    pub seq: u64,
    pub from: Ipv4Addr,
}

/// A change of the source address the stream arrived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// Milliseconds since the receiver started.
    pub at_ms: f64,
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
}

/// What the receiver saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub received: u64,
    /// Highest sequence number seen + 1 (what the sender had sent by its last arrival).
    pub sent_at_least: u64,
    /// Datagrams per source address.
    pub sources: BTreeMap<Ipv4Addr, u64>,
    /// Longest time between two consecutive arrivals, in milliseconds.
    pub max_gap_ms: f64,
    /// When that gap began (the arrival before it), milliseconds since the start.
    pub max_gap_at_ms: f64,
    /// Source address changes in arrival order.
    pub switches: Vec<Switch>,
}

/// Summarizes arrivals (in arrival order).
pub fn analyze(arrivals: &[Arrival]) -> Report {
    let mut sources = BTreeMap::new();
    let mut switches = Vec::new();
    let mut max_gap = Duration::ZERO;
    let mut max_gap_at = Duration::ZERO;
    let mut sent = 0;
    for (i, a) in arrivals.iter().enumerate() {
        *sources.entry(a.from).or_insert(0) += 1;
        sent = sent.max(a.seq + 1);
        if let Some(prev) = i.checked_sub(1).and_then(|p| arrivals.get(p)) {
            let gap = a.at.saturating_sub(prev.at);
            if gap > max_gap {
                max_gap = gap;
                max_gap_at = prev.at;
            }
            if prev.from != a.from {
                switches.push(Switch {
                    at_ms: ms(a.at),
                    from: prev.from,
                    to: a.from,
                });
            }
        }
    }
    Report {
        received: arrivals.len() as u64,
        sent_at_least: sent,
        sources,
        max_gap_ms: ms(max_gap),
        max_gap_at_ms: ms(max_gap_at),
        switches,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends `pps` datagrams per second to `dst` for `duration`, from one socket. Returns the
/// number sent (send errors, e.g. "network unreachable" while a route is gone, are skipped).
pub fn send(dst: SocketAddrV4, pps: u32, duration: Duration) -> std::io::Result<u64> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    let period = Duration::from_secs(1) / pps.max(1);
    let start = Instant::now();
    let mut buf = [0u8; DATAGRAM];
    buf[..4].copy_from_slice(&MAGIC);
    let mut seq = 0u64;
    while start.elapsed() < duration {
        buf[4..12].copy_from_slice(&seq.to_be_bytes());
        let _ = socket.send_to(&buf, dst);
        seq += 1;
        // Paced against the start, so a late wake-up does not lower the rate.
        let next = period * u32::try_from(seq).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(seq)
}

/// Receives on `bind` until `duration` has passed, or `idle` passed without a datagram once
/// the first one arrived. Foreign datagrams (without the magic) are ignored.
pub fn receive(
    bind: SocketAddrV4,
    duration: Duration,
    idle: Duration,
) -> std::io::Result<Vec<Arrival>> {
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 2048];
    while start.elapsed() < duration {
        match socket.recv_from(&mut buf) {
            Ok((n, std::net::SocketAddr::V4(from))) if n >= 12 && buf[..4] == MAGIC => {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&buf[4..12]);
                arrivals.push(Arrival {
                    at: start.elapsed(),
                    seq: u64::from_be_bytes(seq),
                    from: *from.ip(),
                });
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
        if let Some(last) = arrivals.last() {
            if start.elapsed().saturating_sub(last.at) > idle {
                break;
            }
        }
    }
    Ok(arrivals)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a(ms: u64, seq: u64, from: [u8; 4]) -> Arrival {
        Arrival {
            at: Duration::from_millis(ms),
            seq,
            from: Ipv4Addr::from(from),
        }
    }

    #[test]
    fn gap_switches_and_sources() {
        let r = analyze(&[
            a(0, 0, [10, 1, 0, 2]),
            a(10, 1, [10, 1, 0, 2]),
            a(20, 2, [10, 1, 0, 2]),
            a(470, 47, [10, 2, 0, 2]),
            a(480, 48, [10, 2, 0, 2]),
        ]);
        assert_eq!(r.received, 5);
        assert_eq!(r.sent_at_least, 49);
        assert_eq!(r.max_gap_ms, 450.0);
        assert_eq!(r.max_gap_at_ms, 20.0);
        assert_eq!(
            r.switches,
            vec![Switch {
                at_ms: 470.0,
                from: Ipv4Addr::new(10, 1, 0, 2),
                to: Ipv4Addr::new(10, 2, 0, 2)
            }]
        );
        assert_eq!(r.sources.get(&Ipv4Addr::new(10, 1, 0, 2)), Some(&3));
        let empty = analyze(&[]);
        assert_eq!((empty.received, empty.max_gap_ms), (0, 0.0));
    }

    #[test]
    fn a_stream_over_loopback_arrives_in_order() {
        let port = {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            s.local_addr().unwrap().port()
        };
        let bind = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let receiver = std::thread::spawn(move || {
            receive(bind, Duration::from_secs(3), Duration::from_millis(300)).unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        let sent = send(bind, 200, Duration::from_millis(300)).unwrap();
        let arrivals = receiver.join().unwrap();
        let r = analyze(&arrivals);
        assert!(sent >= 50, "sent {sent}");
        assert_eq!(r.received, sent, "loopback loses nothing");
        assert!(arrivals.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(r.switches.is_empty());
    }
}
