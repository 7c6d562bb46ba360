//! Parsing and validation of received frames into [`Ipv4Packet`] and [`Ipv6Packet`]: where
//! each header starts, the addresses, ports and flags the pipeline needs, and for ICMP and
//! ICMPv6 errors the same facts about the embedded packet ([`Embedded`], [`Embedded6`]).
//! Read through the checked views of [`super::wire`]; nothing is copied.
//!
//! Validation is what a router must do before touching a packet (RFC 1812 5.2.2): version,
//! header length, total length against the frame, the header checksum; for IPv6 the payload
//! length and the extension headers up to the upper layer (RFC 8200 4); for the transport the
//! header must be present in full. Payload checksums are not verified (the incremental rewrite
//! keeps a bad checksum bad, so the end host still rejects it).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{
    ethernet, icmpv4, icmpv6, ip_proto, EthernetFrame, Icmpv4Message, Icmpv6Message,
    Ipv4Packet as Ipv4View, Ipv6Packet as Ipv6View, TcpSegment, UdpDatagram,
};

/// What kind of link-layer framing a device delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// Ethernet II frames (AF_XDP, in-memory Ethernet tests).
    Ethernet,
    /// Bare IP packets (TUN).
    Ip,
}

pub const ETHERNET_HEADER_LEN: usize = ethernet::HEADER_LEN;
pub const IPPROTO_ICMP: u8 = ip_proto::ICMP;
pub const IPPROTO_TCP: u8 = ip_proto::TCP;
pub const IPPROTO_UDP: u8 = ip_proto::UDP;

/// Why a frame is not an IPv4 packet the pipeline can handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than an Ethernet header.
    TruncatedL2,
    /// An IPv6 packet: [`parse_ipv6`] reads it.
    Ipv6,
    /// ARP: the kernel's business, never the data plane's.
    Arp,
    /// Another EtherType (VLAN tags, MPLS, ...).
    OtherEtherType,
    /// IP header invalid: version, header length, total length.
    BadIpv4Header,
    /// IPv4 header checksum wrong.
    BadIpv4Checksum,
    /// TCP/UDP/ICMP header missing or inconsistent.
    BadTransport,
    /// ICMP error whose embedded packet cannot be read.
    BadIcmpError,
    /// IPv6 header or extension headers invalid, or the upper-layer header missing or
    /// inconsistent.
    BadIpv6,
}

/// Where the IPv4 packet of a frame starts, per medium. Ethernet: after the 14-byte header
/// (EtherType IPv4); IP medium: at 0, version 4. An IPv6 packet is reported as
/// [`ParseError::Ipv6`]; it starts at the same offset.
pub fn l3_offset(medium: Medium, frame: &[u8]) -> Result<usize, ParseError> {
    match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).map_err(|_| ParseError::TruncatedL2)?;
            match eth.ether_type() {
                ethernet::ether_type::IPV4 => Ok(ETHERNET_HEADER_LEN),
                ethernet::ether_type::IPV6 => Err(ParseError::Ipv6),
                ethernet::ether_type::ARP => Err(ParseError::Arp),
                _ => Err(ParseError::OtherEtherType),
            }
        }
        Medium::Ip => match frame.first().map(|b| b >> 4) {
            Some(4) => Ok(0),
            Some(6) => Err(ParseError::Ipv6),
            _ => Err(ParseError::BadIpv4Header),
        },
    }
}

/// Fragment position of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram.
    Whole,
    /// Offset 0 with more-fragments set: carries the transport header.
    First,
    /// Offset > 0: no transport header; follows the first fragment's translation.
    Later,
}

/// The transport-level facts of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMP echo request (`request`) or reply; the identifier plays the port's part.
    IcmpEcho {
        id: u16,
        request: bool,
    },
    /// ICMP destination unreachable, time exceeded or parameter problem. The quoted packet
    /// was validated; [`Ipv4Packet::embedded`] reads it.
    IcmpError,
    /// Any other ICMP message (redirect, timestamp, ...): not forwarded.
    IcmpOther,
    /// Another IP protocol (GRE, ESP, SCTP...): not handled yet.
    OtherProtocol,
    /// A later fragment: no transport header in this packet.
    None,
}

/// The packet quoted inside an ICMP error: the head of a packet that went the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// Offset of the embedded IPv4 header in the frame.
    pub l3: usize,
    pub header_len: usize,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// TCP/UDP ports, or for ICMP echo the identifier in the port of the side that sent it.
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes of the embedded transport header present in the frame (at least 8).
    pub l4_len: usize,
}

impl Embedded {
    /// Offset of the embedded transport header in the frame.
    pub fn l4(&self) -> usize {
        self.l3 + self.header_len
    }
}

/// A validated IPv4 packet inside a frame, by offsets into that frame. Kept small (it is
/// built for every packet): offsets are 16-bit, an ICMP error's quote is read on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet {
    l3: u16,
    header_len: u8,
    total_len: u16,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub id: u16,
    pub fragment: Fragment,
    pub transport: Transport,
}

impl Ipv4Packet {
    /// Offset of the IPv4 header in the frame.
    #[inline]
    pub fn l3(&self) -> usize {
        usize::from(self.l3)
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.header_len)
    }

    /// IP total length (the frame may carry padding after it).
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(self.total_len)
    }

    /// Offset of the transport header in the frame.
    #[inline]
    pub fn l4(&self) -> usize {
        self.l3() + self.header_len()
    }

    /// End of the IP packet in the frame.
    #[inline]
    pub fn end(&self) -> usize {
        self.l3() + self.total_len()
    }

    /// The packet an ICMP error quotes (`None` for other packets, or if `frame` is not the
    /// frame this packet was parsed from).
    pub fn embedded(&self, frame: &[u8]) -> Option<Embedded> {
        if self.transport != Transport::IcmpError {
            return None;
        }
        let quote = self.l4() + 8;
        parse_embedded(frame.get(quote..self.end())?, quote).ok()
    }
}

/// Parses the IPv4 packet starting at `l3` in `frame`.
#[inline(always)]
pub fn parse_ipv4(frame: &[u8], l3: usize) -> Result<Ipv4Packet, ParseError> {
    let l3_offset = u16::try_from(l3).map_err(|_| ParseError::BadIpv4Header)?;
    let bytes = frame.get(l3..).ok_or(ParseError::BadIpv4Header)?;
    let ip = Ipv4View::new_checked(bytes).map_err(|_| ParseError::BadIpv4Header)?;
    if !ip.verify_checksum() {
        return Err(ParseError::BadIpv4Checksum);
    }
    let fragment = match (ip.fragment_offset(), ip.more_fragments()) {
        (0, false) => Fragment::Whole,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    let header_len = ip.header_len();
    let transport = if fragment == Fragment::Later {
        Transport::None
    } else {
        parse_transport(ip.protocol(), ip.payload(), l3 + header_len, fragment)?
    };
    Ok(Ipv4Packet {
        l3: l3_offset,
        // At most 60 (ihl is 4 bits) and 65535 (a 16-bit field).
        header_len: header_len as u8,
        total_len: ip.total_len() as u16,
        proto: ip.protocol(),
        src: ip.src(),
        dst: ip.dst(),
        ttl: ip.ttl(),
        id: ip.ident(),
        fragment,
        transport,
    })
}

#[inline(always)]
fn parse_transport(
    proto: u8,
    payload: &[u8],
    l4: usize,
    fragment: Fragment,
) -> Result<Transport, ParseError> {
    match proto {
        IPPROTO_TCP => {
            let tcp = TcpSegment::new_checked(payload).map_err(|_| ParseError::BadTransport)?;
            Ok(Transport::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                flags: tcp.flags(),
            })
        }
        IPPROTO_UDP => {
            let udp = UdpDatagram::new_checked(payload).map_err(|_| ParseError::BadTransport)?;
            // A whole datagram's UDP length must fit the IP payload; a first fragment's
            // covers fragments still to come.
            if fragment == Fragment::Whole && !udp.is_whole() {
                return Err(ParseError::BadTransport);
            }
            Ok(Transport::Udp {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
            })
        }
        IPPROTO_ICMP => parse_icmp(payload, l4, fragment),
        _ => Ok(Transport::OtherProtocol),
    }
}

fn parse_icmp(payload: &[u8], l4: usize, fragment: Fragment) -> Result<Transport, ParseError> {
    let icmp = Icmpv4Message::new_checked(payload).map_err(|_| ParseError::BadTransport)?;
    if icmp.is_echo() {
        return Ok(Transport::IcmpEcho {
            id: icmp.echo_ident(),
            request: icmp.msg_type() == icmpv4::msg_type::ECHO_REQUEST,
        });
    }
    if !icmp.is_error() {
        return Ok(Transport::IcmpOther);
    }
    // An error about a fragment of an error makes no sense to translate.
    if fragment != Fragment::Whole {
        return Err(ParseError::BadIcmpError);
    }
    parse_embedded(icmp.data(), l4 + icmpv4::HEADER_LEN).map(|_| Transport::IcmpError)
}

fn parse_embedded(quoted: &[u8], l3: usize) -> Result<Embedded, ParseError> {
    let ip = Ipv4View::new_checked_quote(quoted).map_err(|_| ParseError::BadIcmpError)?;
    let header_len = ip.header_len();
    let l4 = quoted.get(header_len..).unwrap_or_default();
    // RFC 792: the error quotes the IP header and at least 8 bytes of what followed it.
    // Only a first (or whole) fragment carries the ports we need.
    if l4.len() < 8 || ip.fragment_offset() != 0 {
        return Err(ParseError::BadIcmpError);
    }
    let (src_port, dst_port) = quoted_ports(ip.protocol(), l4)?;
    Ok(Embedded {
        l3,
        header_len,
        proto: ip.protocol(),
        src: ip.src(),
        dst: ip.dst(),
        src_port,
        dst_port,
        l4_len: l4.len(),
    })
}

/// A validated IPv6 packet inside a frame, by offsets into that frame: its fixed header, the
/// extension headers walked to the upper-layer header (RFC 8200 4), and that header checked
/// as for IPv4. fwd does not forward IPv6 yet; the pipeline reads these facts to hand
/// neighbour discovery and link-scoped traffic to the kernel and to count the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet {
    l3: u16,
    l4: u16,
    end: u16,
    /// The upper-layer protocol (for a later fragment, the fragment header's next header).
    pub proto: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub fragment: Fragment,
    /// The fragment header's identification (0 for a whole datagram).
    pub fragment_id: u32,
    pub transport: Transport,
    /// For ICMPv6, the message type (`transport` classes it as for ICMP).
    pub icmp_type: Option<u8>,
}

impl Ipv6Packet {
    /// The packet an ICMPv6 error quotes (`None` for other packets, or if `frame` is not the
    /// frame this packet was parsed from).
    pub fn embedded(&self, frame: &[u8]) -> Option<Embedded6> {
        if self.transport != Transport::IcmpError {
            return None;
        }
        let quote = self.l4() + icmpv6::HEADER_LEN;
        parse_embedded_v6(frame.get(quote..self.end())?, quote).ok()
    }

    /// Offset of the IPv6 header in the frame.
    pub fn l3(&self) -> usize {
        usize::from(self.l3)
    }

    /// Offset of the upper-layer header in the frame (after every extension header).
    pub fn l4(&self) -> usize {
        usize::from(self.l4)
    }

    /// End of the IPv6 packet in the frame (padding after it excluded).
    pub fn end(&self) -> usize {
        usize::from(self.end)
    }

    /// Whether this is neighbour discovery (RFC 4861: router and neighbour solicitations and
    /// advertisements, redirects): the kernel's, like ARP for IPv4.
    pub fn is_neighbor_discovery(&self) -> bool {
        self.icmp_type
            .is_some_and(icmpv6::msg_type::is_neighbor_discovery)
    }

    /// Whether the destination is link-local or multicast (DHCPv6 and MLD among them):
    /// traffic of the link, never forwarded.
    pub fn is_link_scoped(&self) -> bool {
        self.dst.is_multicast() || self.dst.is_unicast_link_local()
    }
}

/// Parses the IPv6 packet starting at `l3` in `frame`: the fixed header, the extension
/// headers (at most eight; hop-by-hop only first), and the upper-layer header of a whole
/// datagram or first fragment.
pub fn parse_ipv6(frame: &[u8], l3: usize) -> Result<Ipv6Packet, ParseError> {
    let bytes = frame.get(l3..).ok_or(ParseError::BadIpv6)?;
    let ip = Ipv6View::new_checked(bytes).map_err(|_| ParseError::BadIpv6)?;
    let upper = ip.upper_layer().map_err(|_| ParseError::BadIpv6)?;
    let end = l3 + ip.total_len();
    let l4 = l3 + upper.offset;
    let (fragment, fragment_id) = match upper.fragment {
        None => (Fragment::Whole, 0),
        Some(f) if f.offset == 0 && f.more => (Fragment::First, f.ident),
        // offset 0 without more fragments: an atomic fragment (RFC 6946), a whole datagram
        Some(f) if f.offset == 0 => (Fragment::Whole, f.ident),
        Some(f) => (Fragment::Later, f.ident),
    };
    let payload = frame.get(l4..end).ok_or(ParseError::BadIpv6)?;
    let (transport, icmp_type) = match (fragment, upper.protocol) {
        (Fragment::Later, _) => (Transport::None, None),
        (_, ip_proto::ICMPV6) => parse_icmpv6(payload, fragment)?,
        (_, IPPROTO_TCP | IPPROTO_UDP) => (
            parse_transport(upper.protocol, payload, l4, fragment)
                .map_err(|_| ParseError::BadIpv6)?,
            None,
        ),
        _ => (Transport::OtherProtocol, None),
    };
    let offset = |at: usize| u16::try_from(at).map_err(|_| ParseError::BadIpv6);
    Ok(Ipv6Packet {
        l3: offset(l3)?,
        l4: offset(l4)?,
        end: offset(end)?,
        proto: upper.protocol,
        src: ip.src(),
        dst: ip.dst(),
        hop_limit: ip.hop_limit(),
        fragment,
        fragment_id,
        transport,
        icmp_type,
    })
}

/// An ICMPv6 message (RFC 4443): echo, an error (its quote must hold the IPv6 header and
/// 8 bytes of what followed it, as RFC 4443 2.4 (c) asks of a sender that can), or another
/// message (neighbour discovery among them).
fn parse_icmpv6(payload: &[u8], fragment: Fragment) -> Result<(Transport, Option<u8>), ParseError> {
    let icmp = Icmpv6Message::new_checked(payload).map_err(|_| ParseError::BadIpv6)?;
    let kind = icmp.msg_type();
    let transport = match kind {
        icmpv6::msg_type::ECHO_REQUEST | icmpv6::msg_type::ECHO_REPLY if icmp.code() == 0 => {
            Transport::IcmpEcho {
                id: icmp.echo_ident(),
                request: kind == icmpv6::msg_type::ECHO_REQUEST,
            }
        }
        icmpv6::msg_type::DST_UNREACHABLE
        | icmpv6::msg_type::PACKET_TOO_BIG
        | icmpv6::msg_type::TIME_EXCEEDED
        | icmpv6::msg_type::PARAM_PROBLEM => {
            // An error about a fragment of an error makes no sense to translate.
            if fragment != Fragment::Whole {
                return Err(ParseError::BadIcmpError);
            }
            parse_embedded_v6(icmp.data(), 0)?;
            Transport::IcmpError
        }
        _ => Transport::IcmpOther,
    };
    Ok((transport, Some(kind)))
}

/// The packet quoted inside an ICMPv6 error: the head of a packet that went the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded6 {
    /// Offset of the embedded IPv6 header in the frame.
    pub l3: usize,
    /// Offset of its upper-layer header in the frame (after any extension headers).
    pub l4: usize,
    pub proto: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// TCP/UDP ports, or for an echo the identifier in the port of the side that sent it.
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes of the embedded upper-layer header present in the frame (at least 8).
    pub l4_len: usize,
}

/// Reads the packet an ICMPv6 error quotes (`quoted`, found at `l3` in the frame): an IPv6
/// header, its extension headers as far as the quote holds them, and at least 8 bytes of a
/// TCP, UDP or ICMPv6 echo header of a first (or whole) fragment.
fn parse_embedded_v6(quoted: &[u8], l3: usize) -> Result<Embedded6, ParseError> {
    let ip = Ipv6View::new_checked_quote(quoted).map_err(|_| ParseError::BadIcmpError)?;
    let upper = ip.upper_layer().map_err(|_| ParseError::BadIcmpError)?;
    if upper.fragment.is_some_and(|f| !f.is_first()) {
        return Err(ParseError::BadIcmpError);
    }
    let l4 = quoted.get(upper.offset..).unwrap_or_default();
    if l4.len() < 8 {
        return Err(ParseError::BadIcmpError);
    }
    let (src_port, dst_port) = quoted_ports(upper.protocol, l4)?;
    Ok(Embedded6 {
        l3,
        l4: l3 + upper.offset,
        proto: upper.protocol,
        src: ip.src(),
        dst: ip.dst(),
        src_port,
        dst_port,
        l4_len: l4.len(),
    })
}

/// The ports of a quoted packet's upper-layer header `l4` (at least 8 bytes) of protocol
/// `proto`: a TCP or UDP header's, or for an ICMP or ICMPv6 echo its identifier, in the
/// port of the host that sent the echo (the requester's side of a request, the other of a
/// reply).
fn quoted_ports(proto: u8, l4: &[u8]) -> Result<(u16, u16), ParseError> {
    let echo = Icmpv4Message::new_unchecked(l4); // ICMPv6's echo has the same layout
    match (proto, echo.msg_type()) {
        (IPPROTO_TCP, _) => {
            let tcp = TcpSegment::new_unchecked(l4);
            Ok((tcp.src_port(), tcp.dst_port()))
        }
        (IPPROTO_UDP, _) => {
            let udp = UdpDatagram::new_unchecked(l4);
            Ok((udp.src_port(), udp.dst_port()))
        }
        (IPPROTO_ICMP, icmpv4::msg_type::ECHO_REQUEST)
        | (ip_proto::ICMPV6, icmpv6::msg_type::ECHO_REQUEST) => Ok((echo.echo_ident(), 0)),
        (IPPROTO_ICMP, icmpv4::msg_type::ECHO_REPLY)
        | (ip_proto::ICMPV6, icmpv6::msg_type::ECHO_REPLY) => Ok((0, echo.echo_ident())),
        _ => Err(ParseError::BadIcmpError),
    }
}
