//! Bounded waiting: poll a condition every 20 ms until a deadline; and whether a socket
//! listens in a namespace (read from `/proc/PID/net/{tcp,udp}` of a process inside it).

use crate::error::{Error, Result};
use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

/// Poll interval of [`wait_until`].
pub const POLL: Duration = Duration::from_millis(20);

/// Calls `check` every [`POLL`] until it returns `Ok(true)` or `timeout` passes. An `Err`
/// from `check` ends the wait at once. Error on timeout: `timed out after T waiting for WHAT`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::new(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        thread::sleep(POLL);
    }
}

/// Transport of a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `/proc/PID/net/tcp`, listening sockets only.
    Tcp,
    /// `/proc/PID/net/udp`, any bound socket.
    Udp,
}

/// Whether the network namespace of process `pid` has a socket on `addr:port` (TCP: in
/// LISTEN state; UDP: bound). `0.0.0.0` sockets count for any address.
pub fn is_listening(pid: u32, proto: Proto, addr: Ipv4Addr, port: u16) -> Result<bool> {
    let file = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let path = format!("/proc/{pid}/net/{file}");
    let table = std::fs::read_to_string(&path)
        .map_err(|e| Error::new(format!("cannot read {path}: {e}")))?;
    Ok(socket_table_has(&table, proto, addr, port))
}

/// Whether a `/proc/net/{tcp,udp}` text lists a matching socket (see [`is_listening`]).
pub fn socket_table_has(table: &str, proto: Proto, addr: Ipv4Addr, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (Some(local), Some(_remote), Some(state)) = (f.nth(1), f.next(), f.next()) else {
            return false;
        };
        let Some((a, p)) = local.split_once(':') else {
            return false;
        };
        let (Ok(a), Ok(p)) = (u32::from_str_radix(a, 16), u16::from_str_radix(p, 16)) else {
            return false;
        };
        // The kernel prints the address's in-memory (network order) bytes as a native u32.
        let a = Ipv4Addr::from(a.to_ne_bytes());
        let state_ok = proto == Proto::Udp || state == "0A";
        state_ok && p == port && (a == addr || a.is_unspecified())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_tcp_socket() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 0A7100CB:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
        let server = Ipv4Addr::new(203, 0, 113, 10);
        if cfg!(target_endian = "little") {
            assert!(socket_table_has(table, Proto::Tcp, server, 80));
            assert!(!socket_table_has(table, Proto::Tcp, server, 81));
        }
        let established = table.replace(" 0A ", " 01 ");
        assert!(!socket_table_has(&established, Proto::Tcp, server, 80));
    }

    #[test]
    fn wait_until_times_out_with_a_message() {
        let e = wait_until("nothing", Duration::from_millis(50), || Ok(false)).unwrap_err();
        assert!(e.message().contains("waiting for nothing"), "{e}");
        let mut n = 0;
        wait_until("third call", Duration::from_secs(5), || {
            n += 1;
            Ok(n == 3)
        })
        .unwrap();
    }
}
