//! Off-path TCP segments: what an attacker who knows a connection's addresses and ports, but
//! not its sequence numbers, can send. Run through the `tcp-spoof` binary inside a topology's
//! namespace, on the server's side of a connection: it watches the connection's segments
//! arrive (a raw TCP socket sees a copy of each), so that it can pick sequence numbers that
//! are surely wrong (at least 2^30 from the ones in use, beyond any TCP window), then sends
//! resets and FINs with them. Each segment is built whole (etherparse computes the
//! checksums: only the sequence numbers are wrong) and sent from a raw IPv4 socket
//! (`IPPROTO_RAW`: the header is ours).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;

/// Which control flag a spoofed segment carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoofed {
    /// RST, no ACK.
    Reset,
    /// FIN+ACK.
    Fin,
}

/// How far from the sequence number in use the spoofed segments' are: 2^31 and ±1.5 × 2^30,
/// each more than the largest TCP window (65535 << 14, just under 2^30) away.
pub const OFFSETS: [u32; 3] = [0x8000_0000, 0x6000_0000, 0xA000_0000];

/// One segment from `src` to `dst` with sequence number `seq` (and acknowledgement `ack`
/// for a FIN): the IPv4 packet's bytes.
pub fn segment(src: SocketAddrV4, dst: SocketAddrV4, kind: Spoofed, seq: u32, ack: u32) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64).tcp(
        src.port(),
        dst.port(),
        seq,
        502,
    );
    b = match kind {
        Spoofed::Reset => b.rst(),
        Spoofed::Fin => b.fin().ack(ack),
    };
    let mut out = Vec::with_capacity(b.size(0));
    // writing into a Vec cannot fail
    let _ = b.write(&mut out, &[]);
    out
}

/// The peers of connections to `local` and the last (sequence, acknowledgement) numbers each
/// sent, from the segments that arrive within `listen`.
pub fn sniff(local: SocketAddrV4, listen: Duration) -> Result<BTreeMap<SocketAddrV4, (u32, u32)>> {
    let socket = RawSocket::open(libc::IPPROTO_TCP)?;
    socket.set_receive_timeout(Duration::from_millis(50))?;
    let mut peers = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + listen;
    while Instant::now() < deadline {
        let Some(len) = socket.receive(&mut buf)? else {
            continue;
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        let Ok(p) = etherparse::SlicedPacket::from_ip(packet) else {
            continue;
        };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
            (p.net, p.transport)
        else {
            continue;
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        if dst == *local.ip() && t.destination_port() == local.port() && t.ack() {
            let peer = SocketAddrV4::new(src, t.source_port());
            peers.insert(peer, (t.sequence_number(), t.acknowledgment_number()));
        }
    }
    Ok(peers)
}

/// Sends every peer a reset and a FIN from `local` at each of [`OFFSETS`] from the sequence
/// number it expects next (the acknowledgement it sent), the FIN acknowledging what the peer
/// really sent. Returns how many segments were sent.
pub fn attack(local: SocketAddrV4, peers: &BTreeMap<SocketAddrV4, (u32, u32)>) -> Result<u32> {
    let socket = RawSocket::open(libc::IPPROTO_RAW)?;
    let mut sent = 0;
    for (&peer, &(their_seq, their_ack)) in peers {
        for offset in OFFSETS {
            let seq = their_ack.wrapping_add(offset);
            for kind in [Spoofed::Reset, Spoofed::Fin] {
                socket.send_to(&segment(local, peer, kind, seq, their_seq), peer)?;
                sent += 1;
            }
        }
    }
    Ok(sent)
}

struct RawSocket {
    fd: std::os::fd::OwnedFd,
}

// The receive and send calls are the spoofer's I/O layer (socket and options: `crate::sys`).
#[allow(unsafe_code)]
impl RawSocket {
    /// A raw IPv4 socket of `protocol`: `IPPROTO_RAW` sends packets whose header is ours,
    /// `IPPROTO_TCP` receives a copy of every TCP segment that arrives.
    fn open(protocol: libc::c_int) -> Result<RawSocket> {
        let fd = sys::socket(libc::AF_INET, libc::SOCK_RAW, protocol, "raw IPv4 socket")?;
        Ok(RawSocket { fd })
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    fn set_receive_timeout(&self, timeout: Duration) -> Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        sys::set_option(
            &self.fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "SO_RCVTIMEO",
        )
    }

    /// One packet into `buf`: its length, or `None` when the receive timeout passed first.
    fn receive(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let n = unsafe { libc::recv(self.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(Error::new(format!("raw TCP receive: {e}"))),
        }
    }

    fn send_to(&self, packet: &[u8], dst: SocketAddrV4) -> Result<()> {
        // SAFETY: sockaddr_in is plain data; all-zero is a valid value to fill in.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(*dst.ip()).to_be();
        // SAFETY: `packet` and `addr` are valid for the lengths given and outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.raw(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                std::ptr::from_ref(&addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(sys::last_error(&format!("sendto {dst}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_carry_the_flags_and_numbers_asked_for() {
        let src = SocketAddrV4::new(std::net::Ipv4Addr::new(203, 0, 113, 10), 5201);
        let dst = SocketAddrV4::new(std::net::Ipv4Addr::new(198, 51, 100, 2), 40000);
        for (kind, rst, fin) in [(Spoofed::Reset, true, false), (Spoofed::Fin, false, true)] {
            let bytes = segment(src, dst, kind, 77, 88);
            let p = etherparse::SlicedPacket::from_ip(&bytes).unwrap_or_else(|e| panic!("{e}"));
            let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
                panic!("not TCP");
            };
            assert_eq!((t.rst(), t.fin(), t.sequence_number()), (rst, fin, 77));
            assert_eq!((t.source_port(), t.destination_port()), (5201, 40000));
        }
    }

    #[test]
    fn the_offsets_are_beyond_any_window() {
        let largest_window = 65535u32 << 14;
        for o in OFFSETS {
            assert!(o.min(o.wrapping_neg()) > largest_window, "{o:#x}");
        }
    }
}
