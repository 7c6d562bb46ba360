//! HTTP/1.0 on the wire: the probe's `GET` request and the status line of the response.
//!
//! Invariants: the status parser takes untrusted bytes and never panics; it reads only the
//! first line, which must be `HTTP/<digit>.<digit> <3 digits>` followed by a space or the
//! line end; a first line longer than [`MAX_STATUS_LINE`] is malformed.

use std::net::Ipv4Addr;

/// Longest first line read before giving up on a response.
pub const MAX_STATUS_LINE: usize = 1024;

/// The status line read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusLine {
    /// More bytes are needed.
    Incomplete,
    /// A well-formed status line with this status.
    Status(u16),
    /// Not an HTTP/1.x status line.
    Malformed,
}

/// `GET path HTTP/1.0` to `host` (`path` starts with `/`, validated by the config).
pub fn request(path: &str, host: Ipv4Addr) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: fwd-prober\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The status of the response that starts with `received`.
pub fn status_line(received: &[u8]) -> StatusLine {
    let Some(end) = received.iter().position(|&b| b == b'\n') else {
        return if received.len() > MAX_STATUS_LINE {
            StatusLine::Malformed
        } else {
            StatusLine::Incomplete
        };
    };
    let line = &received[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digit = |i: usize| line.get(i).filter(|b| b.is_ascii_digit()).copied();
    let well_formed = line.starts_with(b"HTTP/")
        && digit(5).is_some()
        && line.get(6) == Some(&b'.')
        && digit(7).is_some()
        && line.get(8) == Some(&b' ')
        && matches!(line.get(12), None | Some(b' '));
    match (well_formed, digit(9), digit(10), digit(11)) {
        (true, Some(a), Some(b), Some(c)) => StatusLine::Status(
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
        ),
        _ => StatusLine::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_text() {
        assert_eq!(
            request("/generate_204", Ipv4Addr::new(192, 0, 2, 1)),
            b"GET /generate_204 HTTP/1.0\r\nHost: 192.0.2.1\r\nUser-Agent: fwd-prober\r\n\
              Connection: close\r\n\r\n"
                .to_vec()
        );
    }

    #[test]
    fn status_lines() {
        use StatusLine::*;
        assert_eq!(status_line(b"HTTP/1.1 204 No Content\r\n"), Status(204));
        assert_eq!(status_line(b"HTTP/1.0 200\r\nServer: x\r\n"), Status(200));
        assert_eq!(status_line(b"HTTP/1.1 301 Moved\n"), Status(301));
        assert_eq!(status_line(b"HTTP/1.1 20"), Incomplete);
        assert_eq!(status_line(b""), Incomplete);
        assert_eq!(status_line(b"HTTP/1.1 2x4 Oops\r\n"), Malformed);
        assert_eq!(status_line(b"HTTP/1.1 2040\r\n"), Malformed);
        assert_eq!(status_line(b"SSH-2.0-OpenSSH\r\n"), Malformed);
        assert_eq!(status_line(b"\r\n"), Malformed);
        assert_eq!(status_line(&[b'a'; MAX_STATUS_LINE + 1]), Malformed);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = status_line(&bytes);
        }
    }
}
