//! The client side: a blocking connection to the daemon's control socket, one request and
//! one response at a time, with a timeout on each read and write.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{Request, Response};

/// How long [`Client::request`] waits for the daemon unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket path (missing, or a stale file).
    #[error("fwd is not running (no control socket at {})", path.display())]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
    },
    /// The socket exists but could not be connected to (e.g. permission denied).
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The daemon did not answer in time.
    #[error("fwd did not answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// Reading or writing the connection failed.
    #[error("control connection failed: {0}")]
    Io(#[from] io::Error),
    /// The daemon's answer was not a valid response.
    #[error("bad response from fwd: {0}")]
    Protocol(String),
}

impl ClientError {
    /// True when the daemon could not be reached at all (not running, or no permission).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::NotRunning { .. } | ClientError::Connect { .. }
        )
    }
}

/// A connection to the daemon. Several requests may go over one connection, one after the
/// other. After any error other than a [`Response::Error`] the connection's state is
/// unknown (a late answer may still arrive): drop it and connect again.
#[derive(Debug)]
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Client {
    /// Connects to the control socket at `path` with [`DEFAULT_TIMEOUT`].
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning {
                path: path.to_owned(),
            },
            _ => ClientError::Connect {
                path: path.to_owned(),
                source,
            },
        })?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut client = Client {
            writer: stream,
            reader,
            timeout: DEFAULT_TIMEOUT,
        };
        client.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(client)
    }

    /// Sets how long one read or write may block (zero is taken as one millisecond).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))?;
        self.timeout = timeout;
        Ok(())
    }

    /// Sends `request` and waits for its response. A [`Response::Error`] from the daemon
    /// is a successful exchange and is returned as `Ok`.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut line = serde_json::to_vec(request)
            .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .and_then(|()| self.writer.flush())
            .map_err(|e| self.io_error(e))?;
        let mut answer = Vec::new();
        self.reader
            .read_until(b'\n', &mut answer)
            .map_err(|e| self.io_error(e))?;
        if answer.last() != Some(&b'\n') {
            return Err(ClientError::Protocol(if answer.is_empty() {
                "connection closed without an answer".to_owned()
            } else {
                "connection closed in the middle of an answer".to_owned()
            }));
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn io_error(&self, e: io::Error) -> ClientError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ClientError::Timeout(self.timeout),
            _ => ClientError::Io(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::server::tests::TempDir;
    use std::io::Read;

    #[test]
    fn missing_or_stale_socket_means_not_running() {
        let dir = TempDir::new("client-missing");
        let err = Client::connect(&dir.sock()).unwrap_err();
        assert!(err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "fwd is not running (no control socket at {})",
                dir.sock().display()
            )
        );
        drop(std::os::unix::net::UnixListener::bind(dir.sock()).unwrap());
        assert!(matches!(
            Client::connect(&dir.sock()),
            Err(ClientError::NotRunning { .. })
        ));
    }

    /// A fake daemon that reads one request and answers `answer` (then closes).
    fn fake(answer: &'static [u8], dir: &TempDir) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(dir.sock()).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut byte = [0u8; 1];
            while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {}
            stream.write_all(answer).unwrap();
            if answer.is_empty() {
                return;
            }
            // Hold the connection a little so the client sees a timeout, not EOF.
            std::thread::sleep(Duration::from_millis(500));
        })
    }

    #[test]
    fn bad_answers_are_protocol_errors() {
        for (answer, expect) in [
            (&b"not json\n"[..], "bad response"),
            (&b"{\"ok\":{\"kind\":\"nope\"}}\n"[..], "bad response"),
            (&b""[..], "closed without an answer"),
        ] {
            let dir = TempDir::new("client-bad");
            let daemon = fake(answer, &dir);
            let mut client = Client::connect(&dir.sock()).unwrap();
            let err = client.request(&Request::Status).unwrap_err();
            assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
            assert!(err.to_string().contains(expect), "{err}");
            daemon.join().unwrap();
        }
    }

    #[test]
    fn silence_is_a_timeout() {
        let dir = TempDir::new("client-timeout");
        let daemon = fake(b"{\"error\":", &dir);
        let mut client = Client::connect(&dir.sock()).unwrap();
        client.set_timeout(Duration::from_millis(100)).unwrap();
        let err = client.request(&Request::Status).unwrap_err();
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
        assert_eq!(err.to_string(), "fwd did not answer within 0.1 s");
        daemon.join().unwrap();
    }
}
