//! TCP connect and HTTP GET probes: one non-blocking connection per probe, leaving from the
//! WAN's device and address.
//!
//! - TCP: a completed handshake or a reset (connection refused) both prove the path works;
//!   any other error is a failure.
//! - HTTP: after the handshake the request is written and the status line read; the probe
//!   is good only if the status is the expected one. A reset, a close before the status
//!   line, another status or a malformed line is a failure.
//!
//! Invariants: [`ProbeConn::on_ready`] never blocks and never panics on what the peer
//! sends; it reads at most [`super::http_wire::MAX_STATUS_LINE`] + 1 bytes; once it has
//! returned a final [`Progress`] the caller drops the connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};

use mio::net::TcpStream;
use socket2::{Protocol, SockAddr, Type};

use super::http_wire::{status_line, StatusLine, MAX_STATUS_LINE};
use super::{bound_socket, WanLink};

/// Where a probe stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the network.
    Pending,
    /// The probe is answered.
    Good,
    /// The probe failed, and why.
    Failed(String),
}

/// What the connection is for.
#[derive(Clone, Debug)]
enum Purpose {
    Tcp,
    Http {
        request: Vec<u8>,
        written: usize,
        expect: u16,
        received: Vec<u8>,
    },
}

/// One probe connection.
#[derive(Debug)]
pub struct ProbeConn {
    stream: TcpStream,
    purpose: Purpose,
    connected: bool,
}

impl ProbeConn {
    /// Starts a TCP connect probe to `target` from `link`.
    pub fn tcp(link: &WanLink, target: SocketAddrV4) -> io::Result<ProbeConn> {
        Self::open(link, target, Purpose::Tcp)
    }

    /// Starts an HTTP probe: `request` is written once connected, and the response must
    /// carry status `expect`.
    pub fn http(
        link: &WanLink,
        target: SocketAddrV4,
        request: Vec<u8>,
        expect: u16,
    ) -> io::Result<ProbeConn> {
        Self::open(
            link,
            target,
            Purpose::Http {
                request,
                written: 0,
                expect,
                received: Vec::new(),
            },
        )
    }

    fn open(link: &WanLink, target: SocketAddrV4, purpose: Purpose) -> io::Result<ProbeConn> {
        let socket = bound_socket(link, Type::STREAM, Protocol::TCP)?;
        match socket.connect(&SockAddr::from(target)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket));
        Ok(ProbeConn {
            stream,
            purpose,
            connected: false,
        })
    }

    /// The stream, to register with a `mio::Poll` (readable and writable).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Advances the probe after a readiness event (spurious ones are harmless).
    pub fn on_ready(&mut self) -> Progress {
        if !self.connected {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.connect_failed(&e),
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Progress::Pending,
                Err(e) => return self.connect_failed(&e),
            }
        }
        match &mut self.purpose {
            Purpose::Tcp => {
                let _ = self.stream.shutdown(Shutdown::Both);
                Progress::Good
            }
            Purpose::Http {
                request,
                written,
                expect,
                received,
            } => http_progress(&mut self.stream, request, written, *expect, received),
        }
    }

    fn connect_failed(&self, e: &io::Error) -> Progress {
        let refused = e.raw_os_error() == Some(libc::ECONNREFUSED);
        match (&self.purpose, refused) {
            // A reset answers a TCP probe: the target is reachable.
            (Purpose::Tcp, true) => Progress::Good,
            _ => Progress::Failed(format!("connect: {e}")),
        }
    }
}

/// Writes what is left of the request, then reads up to the status line.
fn http_progress(
    stream: &mut TcpStream,
    request: &[u8],
    written: &mut usize,
    expect: u16,
    received: &mut Vec<u8>,
) -> Progress {
    while *written < request.len() {
        match stream.write(request.get(*written..).unwrap_or_default()) {
            Ok(0) => return Progress::Failed("connection closed while sending".into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Progress::Failed(format!("send: {e}")),
        }
    }
    let mut buf = [0u8; 512];
    loop {
        match status_line(received) {
            StatusLine::Status(s) if s == expect => return Progress::Good,
            StatusLine::Status(s) => {
                return Progress::Failed(format!("http status {s}, expected {expect}"))
            }
            StatusLine::Malformed => return Progress::Failed("malformed http response".into()),
            StatusLine::Incomplete => {}
        }
        let room = (MAX_STATUS_LINE + 1)
            .saturating_sub(received.len())
            .min(buf.len());
        match stream.read(buf.get_mut(..room).unwrap_or_default()) {
            Ok(0) => return Progress::Failed("connection closed before the status line".into()),
            Ok(n) => received.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Progress::Failed(format!("receive: {e}")),
        }
    }
}
