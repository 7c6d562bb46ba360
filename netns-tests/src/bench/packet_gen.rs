//! A 64-byte UDP load generator over AF_PACKET: Ethernet frames built once (one per flow,
//! flows differ in source address and port), sent round robin with `sendmmsg` on a
//! `PACKET_QDISC_BYPASS` socket, so one core sends about a million frames a second on these
//! machines (FINDINGS.md), more than any router here forwards.
//!
//! The frames carry full IPv4 and UDP checksums and go straight to the router's MAC; the
//! kernel's stack on the sending host sees none of them (no socket, no route, no neighbour
//! entry), so the generator measures the router and not the host. Flows: flow `i` is
//! source `base + i / PORTS_PER_ADDRESS`, source port `FIRST_PORT + i % PORTS_PER_ADDRESS`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;

/// Source ports used per source address.
pub const PORTS_PER_ADDRESS: u32 = 50_000;
/// The first source port.
pub const FIRST_PORT: u16 = 10_000;
/// Frames handed to the kernel per `sendmmsg`.
const BATCH: usize = 64;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Source address of flow 0.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    /// UDP payload bytes.
    pub payload: usize,
    /// Number of flows (at least 1).
    pub flows: u32,
}

/// The source address and port of flow `i`.
pub fn flow_source(base: Ipv4Addr, i: u32) -> (Ipv4Addr, u16) {
    let ip = Ipv4Addr::from(u32::from(base).wrapping_add(i / PORTS_PER_ADDRESS));
    // The remainder is below PORTS_PER_ADDRESS, which fits with FIRST_PORT in a u16.
    let port = FIRST_PORT + (i % PORTS_PER_ADDRESS) as u16;
    (ip, port)
}

/// The Ethernet frame of flow `i` (etherparse fills in lengths and checksums; the IP
/// identification is the flow's number, DF clear).
pub fn build_frame(spec: &FrameSpec, i: u32) -> Result<Vec<u8>> {
    use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};
    let (src, sport) = flow_source(spec.src, i);
    let payload: Vec<u8> = (0..spec.payload).map(|k| k as u8).collect();
    let too_big = |e: &dyn std::fmt::Display| Error::new(format!("frame of flow {i}: {e}"));
    let ip = Ipv4Header {
        identification: i as u16,
        dont_fragment: false,
        ..Ipv4Header::new(0, 64, IpNumber::UDP, src.octets(), spec.dst.octets())
            .map_err(|e| too_big(&e))?
    };
    let builder = PacketBuilder::ethernet2(spec.src_mac, spec.dst_mac)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .udp(sport, spec.dst_port);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, &payload)
        .map_err(|e| too_big(&e))?;
    Ok(frame)
}

/// What [`send`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    /// Frames the kernel took.
    pub packets: u64,
    /// `sendmmsg` calls that failed (ENOBUFS and the like).
    pub errors: u64,
    pub seconds: f64,
}

/// An AF_PACKET socket bound to one interface, with the qdisc bypassed.
struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

// The bind and send calls are the generator's I/O layer (socket and options: `crate::sys`).
#[allow(unsafe_code)]
impl PacketSocket {
    fn open(interface: &str) -> Result<PacketSocket> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| Error::new(format!("bad interface name {interface:?}")))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(sys::last_error(&format!("no interface {interface}")));
        }
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0, "AF_PACKET socket")?;
        let one: libc::c_int = 1;
        sys::set_option(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one,
            "PACKET_QDISC_BYPASS",
        )?;
        let sock = PacketSocket { fd };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value to fill in.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                sock.raw(),
                std::ptr::from_ref(&addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sys::last_error(&format!("bind to {interface}")));
        }
        Ok(sock)
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }
}

/// Sends the frames of `spec` round robin out of `interface` for `seconds`.
#[allow(unsafe_code)]
pub fn send(interface: &str, spec: &FrameSpec, seconds: f64) -> Result<Sent> {
    let flows = spec.flows.max(1);
    let frames: Vec<Vec<u8>> = (0..flows)
        .map(|i| build_frame(spec, i))
        .collect::<Result<_>>()?;
    let sock = PacketSocket::open(interface)?;
    // SAFETY: iovec and mmsghdr are plain data; all-zero values are filled in below.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let duration = Duration::from_secs_f64(seconds.max(0.1));
    let (mut packets, mut errors, mut next) = (0u64, 0u64, 0usize);
    let start = Instant::now();
    while start.elapsed() < duration {
        for _ in 0..64 {
            for (v, m) in iov.iter_mut().zip(msgs.iter_mut()) {
                let frame = &frames[next];
                next = (next + 1) % frames.len();
                v.iov_base = frame.as_ptr().cast_mut().cast();
                v.iov_len = frame.len();
                m.msg_hdr.msg_iov = std::ptr::from_mut(v);
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every message points at one iovec of `iov`, each at a frame of
            // `frames`; all outlive the call, and the kernel only reads them.
            let n = unsafe { libc::sendmmsg(sock.raw(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n < 0 {
                errors += 1;
            } else {
                packets += n as u64;
            }
        }
    }
    Ok(Sent {
        packets,
        errors,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// An interface's MAC address from sysfs (in the caller's network namespace).
pub fn interface_mac(interface: &str) -> Result<[u8; 6]> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path)?;
    parse_mac(text.trim()).ok_or_else(|| Error::new(format!("bad MAC in {path}: {text}")))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The Internet checksum of `data` (RFC 1071), folded, not inverted: an independent
    /// check of the frames' checksums.
    fn sum16(data: &[u8], mut acc: u32) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            acc += u32::from(*last) << 8;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc
    }

    fn spec(flows: u32) -> FrameSpec {
        FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: Ipv4Addr::new(192, 168, 1, 10),
            dst: Ipv4Addr::new(203, 0, 113, 10),
            dst_port: 9,
            payload: 4,
            flows,
        }
    }

    /// A frame checked against hand-computed bytes (checksums worked out with the RFC 1071
    /// sum over the header and the UDP pseudo-header).
    #[test]
    fn golden_frame() {
        let f = build_frame(&spec(1), 0).unwrap();
        let expected: [u8; 46] = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0x7d, 0x10, 192, 168, 1, 10, 203, 0, 113,
            10, // IPv4
            0x27, 0x10, 0, 9, 0, 12, 0xd8, 0xfb, // UDP
            0, 1, 2, 3, // payload
        ];
        assert_eq!(f, expected);
    }

    #[test]
    fn checksums_verify() {
        for i in [0, 1, 49_999, 50_000, 99_999] {
            let f = build_frame(&spec(100_000), i).unwrap();
            assert_eq!(sum16(&f[14..34], 0), 0xffff, "IPv4 header of flow {i}");
            let mut acc = sum16(&f[26..34], 0);
            acc = sum16(&[0, 17], acc);
            acc = sum16(&f[38..40], acc);
            assert_eq!(sum16(&f[34..], acc), 0xffff, "UDP of flow {i}");
        }
    }

    #[test]
    fn flows_spread_over_addresses_and_ports() {
        let base = Ipv4Addr::new(192, 168, 1, 10);
        assert_eq!(flow_source(base, 0), (base, FIRST_PORT));
        assert_eq!(flow_source(base, 49_999), (base, FIRST_PORT + 49_999));
        assert_eq!(
            flow_source(base, 50_000),
            (Ipv4Addr::new(192, 168, 1, 11), FIRST_PORT)
        );
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
    }
}
