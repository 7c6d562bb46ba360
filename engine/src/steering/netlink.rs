//! A small synchronous rtnetlink client over a `netlink-sys` socket: one request at a time,
//! replies matched by sequence number, every wait bounded by [`REPLY_TIMEOUT`]. Requests ask
//! for an ACK and extended ACKs, so a refusal carries the kernel's errno and, where the
//! kernel gives one, its reason ("Nexthop device is not up").

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long to wait for the kernel's answer to one request (it answers at once; this only
/// bounds the wait should it not).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

const HEADER_LEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extended ACK's human-readable reason.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A failed netlink exchange: the OS error (the kernel's errno for a refused request) and
/// the kernel's extended-ACK reason when it gave one.
#[derive(Debug)]
pub struct NetlinkError {
    io: io::Error,
    reason: Option<String>,
}

impl NetlinkError {
    /// The errno, when the failure is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io.raw_os_error()
    }

    /// The object was not there (no such rule, route or device): what a delete of
    /// something already gone reports.
    pub fn is_absent(&self) -> bool {
        matches!(
            self.raw_os_error(),
            Some(libc::ENOENT | libc::ESRCH | libc::ENODEV)
        )
    }

    /// The object is there already: what an add of something present reports.
    pub fn is_present(&self) -> bool {
        self.raw_os_error() == Some(libc::EEXIST)
    }

    /// The route's device is down (or gone): what adding a route through it reports.
    pub fn is_device_down(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::ENETDOWN | libc::ENODEV))
    }
}

impl From<io::Error> for NetlinkError {
    fn from(io: io::Error) -> Self {
        NetlinkError { io, reason: None }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{} ({r})", self.io),
            None => write!(f, "{}", self.io),
        }
    }
}

impl std::error::Error for NetlinkError {}

type Result<T> = std::result::Result<T, NetlinkError>;

/// An open NETLINK_ROUTE socket.
pub struct Netlink {
    socket: Socket,
    poll: Poll,
    events: Events,
    seq: u32,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish()
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_non_blocking(true)?;
        // Both are optional niceties (reasons in errors, short ACKs): ignore refusals.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )?;
        Ok(Netlink {
            socket,
            poll,
            events: Events::with_capacity(4),
            seq: 0,
        })
    }

    /// Sends a request that changes something and waits for its ACK. `flags` are added to
    /// `NLM_F_REQUEST | NLM_F_ACK`.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.collect(seq, false)
    }

    /// Sends a dump request and returns every message of the dump.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        self.collect(seq, true)
    }

    /// The index of interface `name` and whether it is administratively up.
    pub fn link(&mut self, name: &str) -> Result<(u32, bool)> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    Some((l.header.index, l.header.flags.contains(LinkFlags::Up)))
                }
                _ => None,
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV).into())
    }

    /// Sets interface `index` administratively up or down.
    pub fn link_set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Unspec;
        msg.header.index = index;
        msg.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    pub fn route_add(&mut self, msg: RouteMessage) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    pub fn route_del(&mut self, msg: RouteMessage) -> Result<()> {
        self.request(RouteNetlinkMessage::DelRoute(msg), 0)
            .map(drop)
    }

    pub fn rule_add(&mut self, msg: RuleMessage) -> Result<()> {
        self.request(RouteNetlinkMessage::NewRule(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    pub fn rule_del(&mut self, msg: RuleMessage) -> Result<()> {
        self.request(RouteNetlinkMessage::DelRule(msg), 0).map(drop)
    }

    /// Every IPv4 rule.
    pub fn rule_dump(&mut self) -> Result<Vec<RuleMessage>> {
        let mut msg = RuleMessage::default();
        msg.header.family = AddressFamily::Inet;
        let all = self.dump(RouteNetlinkMessage::GetRule(msg))?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) if r.header.family == AddressFamily::Inet => {
                    Some(r)
                }
                _ => None,
            })
            .collect())
    }

    /// Every IPv4 route of every table.
    pub fn route_dump(&mut self) -> Result<Vec<RouteMessage>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let all = self.dump(RouteNetlinkMessage::GetRoute(msg))?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.address_family == AddressFamily::Inet =>
                {
                    Some(r)
                }
                _ => None,
            })
            .collect())
    }

    fn send(&mut self, inner: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        let sent = self.socket.send(&buf, 0)?;
        if sent != buf.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send").into());
        }
        Ok(self.seq)
    }

    /// Reads replies to request `seq` until its ACK (a request) or its end (a dump).
    fn collect(&mut self, seq: u32, dump: bool) -> Result<Vec<RouteNetlinkMessage>> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut out = Vec::new();
        loop {
            let datagram = self.recv_datagram(deadline)?;
            let mut offset = 0;
            while offset + HEADER_LEN <= datagram.len() {
                let len = read_u32(&datagram, offset) as usize;
                if len < HEADER_LEN || offset + len > datagram.len() {
                    return Err(invalid("truncated netlink message"));
                }
                let bytes = &datagram[offset..offset + len];
                offset += align4(len);
                if read_u32(bytes, 8) != seq {
                    continue; // a late answer to an earlier request
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| invalid(&format!("undecodable netlink reply: {e}")))?;
                let flags = msg.header.flags;
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(NetlinkError {
                                io: e.to_io(),
                                reason: ext_ack_reason(flags, &e.header),
                            }),
                        };
                    }
                    NetlinkPayload::Done(d) if dump => {
                        return if d.code < 0 {
                            Err(io::Error::from_raw_os_error(-d.code).into())
                        } else {
                            Ok(out)
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// One whole datagram, waiting at most until `deadline`.
    fn recv_datagram(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        loop {
            let mut probe = Vec::new();
            match self
                .socket
                .recv_from(&mut probe, libc::MSG_PEEK | libc::MSG_TRUNC)
            {
                Ok((len, _)) => {
                    let mut buf = Vec::with_capacity(len.max(HEADER_LEN));
                    self.socket.recv_from(&mut buf, 0)?;
                    return Ok(buf);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the kernel (netlink)",
                        )
                        .into());
                    }
                    match self.poll.poll(&mut self.events, Some(left)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn invalid(what: &str) -> NetlinkError {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string()).into()
}

/// The extended ACK's reason string, from an error message's payload after its code: the
/// original request's header (or the whole request, when not capped), then attributes.
pub fn ext_ack_reason(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < HEADER_LEN {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        read_u32(payload, 0) as usize
    };
    let mut offset = align4(request_len);
    while offset + 4 <= payload.len() {
        let len = usize::from(u16::from_ne_bytes([payload[offset], payload[offset + 1]]));
        let kind = u16::from_ne_bytes([payload[offset + 2], payload[offset + 3]]) & 0x3fff;
        if len < 4 || offset + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &payload[offset + 4..offset + len];
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            return (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned());
        }
        offset += align4(len);
    }
    None
}
