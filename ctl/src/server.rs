//! The daemon side: a Unix stream socket serving JSON lines, driven by mio, one round per
//! [`ControlServer::poll`] call, on the daemon's control thread.
//!
//! Per client the server keeps an input buffer (bytes up to the next newline, never more
//! than [`MAX_REQUEST_BYTES`] plus one read) and an output buffer (responses not yet written).
//! While a client's output buffer is non-empty the server neither parses its next request
//! nor reads from it, so a client that sends without reading is held back by its socket
//! buffer instead of growing the daemon's memory; a client is also served at most
//! [`REQUESTS_PER_ROUND`] requests per round so it cannot starve the others.
//!
//! Failures stay with the client that caused them: a malformed line gets an error response,
//! an oversize line an error response and a close, a read or write error drops that client
//! alone. Only a failure of the poller itself is returned from `poll`.
//!
//! Who may do what: every client that can open the socket (mode 0660: its owner and its
//! group, see [`ControlServer::set_group`]) may read; requests that change the daemon
//! ([`Request::changes_state`]: reload, WAN admin) need a peer (by `SO_PEERCRED` and
//! `SO_PEERGROUPS`) that is root or in the admin group ([`ControlServer::set_admin_group`]),
//! and are refused with an error otherwise.
//!
//! Idle clients cannot hold the socket: a client that has made no progress (nothing read,
//! nothing written) for [`DEFAULT_IDLE_TIMEOUT`], or whose unfinished request line is older
//! than [`DEFAULT_PARTIAL_LINE_TIMEOUT`], is closed; and when every slot is taken, a new
//! client takes the slot of the longest-idle one if that one has been idle for
//! [`EVICTABLE_AFTER`] (only when all are busy is the newcomer refused).

use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::protocol::{Request, Response, MAX_REQUEST_BYTES};

/// Clients served at once unless [`ControlServer::set_max_clients`] says otherwise. A
/// client over the cap gets one error line and is closed.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// A client that made no progress for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A client whose request line stays unfinished for this long is closed.
pub const DEFAULT_PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// With every slot taken, a client idle for this long gives its slot to a new one.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// Requests served per client per round before the other clients get their turn.
pub const REQUESTS_PER_ROUND: usize = 32;

/// Mode of the socket file: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Mode of the socket's directory when the server creates it.
pub const DIR_MODE: u32 = 0o750;

const LISTENER: Token = Token(0);
const READ_CHUNK: usize = 16 * 1024;

/// Why [`ControlServer::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live process answers on the socket.
    #[error("another fwd is running on {}", .0.display())]
    InUse(PathBuf),
    /// Something other than a socket is at the path; it is left alone.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// The socket's directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An existing socket could not be checked or removed.
    #[error("cannot replace existing socket {}: {source}", path.display())]
    Stale {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Binding, setting the mode or registering with the poller failed.
    #[error("cannot bind control socket {}: {source}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// One connected client.
#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    /// Received bytes not yet parsed (no complete line left after a round).
    input: Vec<u8>,
    /// Encoded responses not yet written; `written` bytes of it already went out.
    output: Vec<u8>,
    written: usize,
    /// Interest currently registered with the poller.
    interest: Interest,
    /// The peer closed its side: answer what is buffered, then drop.
    eof: bool,
    /// Close once the output is flushed (after an oversize line).
    closing: bool,
    /// The request budget ran out with work left: serve again next round without an event.
    backlog: bool,
    /// When the client last made progress: connected, or bytes read or written.
    active: Instant,
    /// Since when `input` holds the start of a line with no newline yet.
    partial_since: Option<Instant>,
    /// Whether the peer may change the daemon.
    admin: bool,
}

/// The credentials of a connected peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    /// The peer of a connected Unix stream socket (`SO_PEERCRED`, `SO_PEERGROUPS`); `None`
    /// when the kernel does not say. (Two getsockopts: the socket layer's only unsafe code.)
    #[allow(unsafe_code)]
    pub fn of(fd: std::os::fd::BorrowedFd<'_>) -> Option<Peer> {
        use std::os::fd::AsRawFd;
        // SAFETY: `ucred` is plain data; all-zero is a valid value for the kernel to fill.
        let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: the buffer is a `ucred` of the length given, both live across the call.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                std::ptr::from_mut(&mut cred).cast(),
                &mut len,
            )
        };
        if rc != 0 || len as usize != std::mem::size_of::<libc::ucred>() {
            return None;
        }
        let mut groups = [0 as libc::gid_t; MAX_PEER_GROUPS];
        let mut len = std::mem::size_of_val(&groups) as libc::socklen_t;
        // SAFETY: the buffer holds MAX_PEER_GROUPS gids, its byte length given; the kernel
        // writes at most that many bytes and says how many in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        // More groups than the buffer holds (ERANGE): judged by the primary group alone.
        let n = if rc == 0 {
            len as usize / std::mem::size_of::<libc::gid_t>()
        } else {
            0
        };
        Some(Peer {
            uid: cred.uid,
            gid: cred.gid,
            groups: groups.get(..n).unwrap_or_default().to_vec(),
        })
    }

    /// Whether this peer may change the daemon: root, or a member of `admin_group`.
    pub fn is_admin(&self, admin_group: Option<u32>) -> bool {
        self.uid == 0 || admin_group.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }
}

/// Supplementary groups read of a peer; one with more is judged by its primary group.
const MAX_PEER_GROUPS: usize = 256;

/// What to do with a client after serving it.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Drop,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            interest: Interest::READABLE,
            eof: false,
            closing: false,
            backlog: false,
            active: Instant::now(),
            partial_since: None,
            admin: false,
        }
    }

    fn pending_output(&self) -> bool {
        self.written < self.output.len()
    }

    fn queue(&mut self, response: &Response) {
        if !self.pending_output() {
            self.output.clear();
            self.written = 0;
        }
        encode_line(response, &mut self.output);
    }

    /// Writes buffered output until done or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.pending_output() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.active = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(())
    }

    /// Takes the next complete line out of the input (without its newline), or at EOF what
    /// is left. `Err(())` when the line is too long.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, ()> {
        match self.input.iter().position(|&b| b == b'\n') {
            Some(pos) if pos > MAX_REQUEST_BYTES => Err(()),
            Some(pos) => {
                let mut line: Vec<u8> = self.input.drain(..=pos).collect();
                line.pop();
                Ok(Some(line))
            }
            None if self.input.len() > MAX_REQUEST_BYTES => Err(()),
            None if self.eof && !self.input.is_empty() => Ok(Some(std::mem::take(&mut self.input))),
            None => Ok(None),
        }
    }

    /// Serves this client as far as its socket allows: writes pending output, answers
    /// complete lines, reads more. Returns whether to keep it.
    fn serve(&mut self, handler: &mut dyn FnMut(Request) -> Response) -> Next {
        let mut budget = REQUESTS_PER_ROUND;
        self.backlog = false;
        loop {
            if self.flush().is_err() {
                return Next::Drop;
            }
            if self.pending_output() {
                return Next::Keep; // wait for WRITABLE
            }
            if self.closing {
                return Next::Drop;
            }
            if budget == 0 {
                self.backlog = true; // maybe more to do: come again next round
                return Next::Keep;
            }
            match self.next_line() {
                Err(()) => {
                    self.queue(&Response::error(format!(
                        "request too long: a request line may have at most \
                         {MAX_REQUEST_BYTES} bytes; closing the connection"
                    )));
                    self.input = Vec::new();
                    self.closing = true;
                    continue;
                }
                Ok(Some(line)) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue; // blank lines are not requests
                    }
                    budget -= 1;
                    let response = match Request::from_json(&line) {
                        Ok(request) if request.changes_state() && !self.admin => {
                            Response::error(format!(
                                "{} needs root or the admin group ([control] admin_group \
                                 in fwd's config)",
                                request.name()
                            ))
                        }
                        Ok(request) => handler(request),
                        Err(e) => Response::error(format!("malformed request: {e}")),
                    };
                    self.queue(&response);
                    continue;
                }
                Ok(None) => {}
            }
            if self.eof {
                return Next::Drop;
            }
            let old_len = self.input.len();
            self.input.resize(old_len + READ_CHUNK, 0);
            let result = self.stream.read(&mut self.input[old_len..]);
            let got = *result.as_ref().unwrap_or(&0);
            self.input.truncate(old_len + got);
            match result {
                Ok(0) => self.eof = true,
                Ok(_) => {
                    self.active = Instant::now();
                    // the line the input ends in, if it has no newline yet, started with
                    // this read unless it was all there was
                    self.partial_since = if self.input.last() == Some(&b'\n') {
                        None
                    } else if self.input.contains(&b'\n') {
                        Some(self.active)
                    } else {
                        Some(self.partial_since.unwrap_or(self.active))
                    };
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(_) => return Next::Drop,
            }
        }
    }
}

/// Appends `response` as one JSON line.
fn encode_line(response: &Response, out: &mut Vec<u8>) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, response).is_err() {
        // Not reachable with the protocol types (no maps with non-string keys); answer
        // something well-formed anyway.
        out.truncate(start);
        out.extend_from_slice(
            br#"{"error":{"message":"internal error: cannot encode the response"}}"#,
        );
    }
    out.push(b'\n');
}

/// The control socket of the daemon. Bind it once, then call [`ControlServer::poll`] in a
/// loop (or [`ControlServer::run`]); dropping it removes the socket file if it is still ours.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    /// (device, inode) of the socket file we bound, to remove only that one on drop.
    identity: (u64, u64),
    listener: UnixListener,
    poll: Poll,
    events: Events,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    max_clients: usize,
    idle_timeout: Duration,
    partial_line_timeout: Duration,
    admin_group: Option<u32>,
    /// The socket's directory, when `bind` created it.
    created_dir: Option<PathBuf>,
}

impl ControlServer {
    /// Binds the control socket at `path`: creates its directory (mode 0750) if missing,
    /// replaces a stale socket left by a dead process, refuses a live one
    /// ([`BindError::InUse`]) or anything that is not a socket ([`BindError::NotASocket`]),
    /// and sets the socket's mode to 0660.
    pub fn bind(path: &Path) -> Result<ControlServer, BindError> {
        let mut created_dir = None;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                created_dir = Some(dir.to_owned());
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(|source| BindError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
            }
        }
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BindError::Stale {
                    path: path.to_owned(),
                    source,
                })
            }
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket(path.to_owned()))
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(BindError::InUse(path.to_owned())),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    fs::remove_file(path).map_err(|source| BindError::Stale {
                        path: path.to_owned(),
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(BindError::Stale {
                        path: path.to_owned(),
                        source,
                    })
                }
            },
        }
        let bind_err = |source| BindError::Bind {
            path: path.to_owned(),
            source,
        };
        let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
        // From here on a failure must not leave the file behind.
        let setup = move || -> io::Result<(UnixListener, Poll, (u64, u64))> {
            fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))?;
            let meta = fs::symlink_metadata(path)?;
            std_listener.set_nonblocking(true)?;
            let mut listener = UnixListener::from_std(std_listener);
            let poll = Poll::new()?;
            poll.registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
            Ok((listener, poll, (meta.dev(), meta.ino())))
        };
        match setup() {
            Ok((listener, poll, identity)) => Ok(ControlServer {
                path: path.to_owned(),
                identity,
                listener,
                poll,
                events: Events::with_capacity(128),
                conns: HashMap::new(),
                next_token: 1,
                max_clients: DEFAULT_MAX_CLIENTS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                partial_line_timeout: DEFAULT_PARTIAL_LINE_TIMEOUT,
                admin_group: None,
                created_dir,
            }),
            Err(source) => {
                let _ = fs::remove_file(path);
                Err(bind_err(source))
            }
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clients currently connected.
    pub fn client_count(&self) -> usize {
        self.conns.len()
    }

    /// Sets how many clients are served at once (at least 1).
    pub fn set_max_clients(&mut self, max: usize) {
        self.max_clients = max.max(1);
    }

    /// Gives the socket (and its directory, when `bind` created it) to group `gid`: its
    /// members may connect (mode 0660, directory 0750) and read.
    pub fn set_group(&self, gid: u32) -> io::Result<()> {
        if let Some(dir) = &self.created_dir {
            std::os::unix::fs::chown(dir, None, Some(gid))?;
        }
        std::os::unix::fs::chown(&self.path, None, Some(gid))
    }

    /// Lets members of group `gid` (besides root) send the requests that change the daemon.
    pub fn set_admin_group(&mut self, gid: Option<u32>) {
        self.admin_group = gid;
    }

    /// Sets how long a client may make no progress, and how long a request line may stay
    /// unfinished, before it is closed.
    pub fn set_timeouts(&mut self, idle: Duration, partial_line: Duration) {
        self.idle_timeout = idle;
        self.partial_line_timeout = partial_line;
    }

    /// One round: waits up to `timeout` for activity (not at all if a client has requests
    /// left over from the previous round), accepts new clients, reads requests, calls
    /// `handler` once per complete request line and queues its response, writes what the
    /// sockets take. Errors of one client drop that client; only a poller failure is
    /// returned.
    pub fn poll(
        &mut self,
        timeout: Duration,
        handler: &mut dyn FnMut(Request) -> Response,
    ) -> io::Result<()> {
        let timeout = if self.conns.values().any(|c| c.backlog) {
            Duration::ZERO
        } else {
            timeout
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut ready: Vec<Token> = Vec::new();
        let mut accept = false;
        for event in &self.events {
            if event.token() == LISTENER {
                accept = true;
            } else {
                ready.push(event.token());
            }
        }
        if accept {
            self.accept();
        }
        ready.extend(
            self.conns
                .iter()
                .filter(|(_, c)| c.backlog)
                .map(|(token, _)| *token),
        );
        ready.sort_unstable();
        ready.dedup();
        for token in ready {
            self.serve(token, handler);
        }
        self.close_stalled(Instant::now());
        Ok(())
    }

    /// Closes the clients idle past the idle timeout, or with a request line unfinished
    /// past the partial-line timeout.
    fn close_stalled(&mut self, now: Instant) {
        let (idle, partial) = (self.idle_timeout, self.partial_line_timeout);
        let stalled: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                now.saturating_duration_since(c.active) >= idle
                    || c.partial_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= partial)
            })
            .map(|(token, _)| *token)
            .collect();
        for token in stalled {
            self.drop_client(token);
        }
    }

    fn drop_client(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    /// The longest-idle client, if it has been idle for [`EVICTABLE_AFTER`].
    fn evictable(&self, now: Instant) -> Option<Token> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.pending_output() && !c.backlog)
            .min_by_key(|(_, c)| c.active)
            .filter(|(_, c)| now.saturating_duration_since(c.active) >= EVICTABLE_AFTER)
            .map(|(token, _)| *token)
    }

    /// Calls [`ControlServer::poll`] with `tick` as timeout until `stop` is set.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        tick: Duration,
        handler: &mut dyn FnMut(Request) -> Response,
    ) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll(tick, handler)?;
        }
        Ok(())
    }

    /// Accepts every pending connection.
    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                // Out of descriptors or memory: leave the rest queued for a later round.
                Err(_) => return,
            };
            if self.conns.len() >= self.max_clients {
                if let Some(idle) = self.evictable(Instant::now()) {
                    self.drop_client(idle);
                }
            }
            if self.conns.len() >= self.max_clients {
                let mut line = Vec::new();
                encode_line(
                    &Response::error(format!(
                        "too many control clients (at most {}); try again later",
                        self.max_clients
                    )),
                    &mut line,
                );
                // Best effort: a fresh socket's buffer takes one short line.
                let _ = stream.write(&line);
                continue;
            }
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(1);
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
                .is_ok()
            {
                let mut conn = Conn::new(stream);
                conn.admin = {
                    use std::os::fd::AsFd;
                    Peer::of(conn.stream.as_fd()).is_some_and(|p| p.is_admin(self.admin_group))
                };
                self.conns.insert(token, conn);
                // Requests may already be waiting; the registration's first event reports
                // them, so nothing else to do here.
            }
        }
    }

    /// Serves one client and updates its registration, or drops it.
    fn serve(&mut self, token: Token, handler: &mut dyn FnMut(Request) -> Response) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return; // an event for a client dropped earlier this round
        };
        let keep = conn.serve(handler) == Next::Keep && {
            let wanted = if conn.pending_output() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            wanted == conn.interest
                || self
                    .poll
                    .registry()
                    .reregister(&mut conn.stream, token, wanted)
                    .map(|()| conn.interest = wanted)
                    .is_ok()
        };
        if !keep {
            self.drop_client(token);
        }
    }
}

impl Drop for ControlServer {
    /// Removes the socket file, unless another process has replaced it since we bound it.
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::client::{Client, ClientError};
    use crate::protocol::tests::{sample_flow, sample_status};
    use crate::protocol::{FlowsReply, Reply};
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Instant;

    /// A unique temporary directory, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "fwd-ctl-{}-{}-{}",
                std::process::id(),
                name,
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub(crate) fn sock(&self) -> PathBuf {
            self.0.join("fwd.sock")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// The handler of the tests: status and flows answer canned replies (flows with `limit`
    /// copies of one flow), everything else is an error naming the command.
    pub(crate) fn test_handler(request: Request) -> Response {
        match request {
            Request::Status => Response::Ok(Reply::Status(sample_status())),
            Request::Flows { limit, .. } => {
                // uncapped (unlike the daemon's): a large reply tests partial writes
                let n = limit.unwrap_or(crate::protocol::DEFAULT_FLOW_LIMIT);
                Response::Ok(Reply::Flows(FlowsReply {
                    total: u64::from(n) + 1,
                    offset: 0,
                    flows: vec![sample_flow(); n as usize],
                }))
            }
            other => Response::error(format!("{} not supported here", other.name())),
        }
    }

    /// A server polled by a thread until dropped (or for 30 s at most).
    pub(crate) struct Running {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<ControlServer>>,
    }

    impl Running {
        pub(crate) fn start(server: ControlServer) -> Running {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let mut server = server;
                let deadline = Instant::now() + Duration::from_secs(30);
                while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                    server
                        .poll(Duration::from_millis(10), &mut test_handler)
                        .unwrap();
                }
                server
            });
            Running {
                stop,
                thread: Some(thread),
            }
        }

        /// Stops the thread and gives the server back.
        pub(crate) fn stop(mut self) -> ControlServer {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.take().unwrap().join().unwrap()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn raw(
        path: &Path,
    ) -> (
        std::os::unix::net::UnixStream,
        BufReader<std::os::unix::net::UnixStream>,
    ) {
        let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    fn read_response(reader: &mut BufReader<std::os::unix::net::UnixStream>) -> Response {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "no full line: {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    /// True when the server closed the connection (EOF, or a reset because it left input
    /// unread).
    fn closed(reader: &mut BufReader<std::os::unix::net::UnixStream>) -> bool {
        let mut rest = Vec::new();
        match reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }

    fn error_message(response: Response) -> String {
        match response {
            Response::Error { message } => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn answers_requests_several_per_connection() {
        let dir = TempDir::new("basic");
        let running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let mut client = Client::connect(&dir.sock()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                client.request(&Request::Status).unwrap(),
                Response::Ok(Reply::Status(sample_status()))
            );
            let flows = client
                .request(&Request::Flows {
                    wan: None,
                    limit: Some(2),
                    offset: None,
                })
                .unwrap();
            let Response::Ok(Reply::Flows(flows)) = flows else {
                panic!("{flows:?}")
            };
            assert_eq!((flows.total, flows.flows.len()), (3, 2));
            assert_eq!(
                error_message(client.request(&Request::Reload).unwrap()),
                "reload not supported here"
            );
        }
        drop(running);
    }

    #[test]
    fn pipelined_requests_are_all_answered_in_order() {
        let dir = TempDir::new("pipeline");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let (mut stream, mut reader) = raw(&dir.sock());
        let mut batch = String::new();
        for i in 0..200 {
            batch.push_str(&format!("{{\"cmd\":\"flows\",\"limit\":{}}}\n", i % 3));
            batch.push('\n'); // blank lines are skipped
        }
        stream.write_all(batch.as_bytes()).unwrap();
        for i in 0..200u64 {
            let Response::Ok(Reply::Flows(flows)) = read_response(&mut reader) else {
                panic!("not flows")
            };
            assert_eq!(flows.total, i % 3 + 1);
        }
    }

    #[test]
    fn large_responses_are_written_across_rounds() {
        let dir = TempDir::new("large");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let mut client = Client::connect(&dir.sock()).unwrap();
        for _ in 0..2 {
            // About 10 MB of JSON: many partial writes.
            let response = client
                .request(&Request::Flows {
                    wan: None,
                    limit: Some(40_000),
                    offset: None,
                })
                .unwrap();
            let Response::Ok(Reply::Flows(flows)) = response else {
                panic!("not flows")
            };
            assert_eq!(flows.flows.len(), 40_000);
            assert!(flows.flows.iter().all(|f| *f == sample_flow()));
        }
    }

    #[test]
    fn malformed_line_gets_error_and_connection_stays_open() {
        let dir = TempDir::new("malformed");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let (mut stream, mut reader) = raw(&dir.sock());
        for bad in [
            "not json",
            "{}",
            r#"{"cmd":"nope"}"#,
            r#"{"cmd":"flows","limit":"x"}"#,
            "\u{fffd}\u{0}",
        ] {
            stream.write_all(format!("{bad}\n").as_bytes()).unwrap();
            let message = error_message(read_response(&mut reader));
            assert!(message.starts_with("malformed request: "), "{message}");
        }
        stream.write_all(&[0xff, 0xfe, b'\n']).unwrap();
        assert!(error_message(read_response(&mut reader)).starts_with("malformed request"));
        // CRLF line ends are fine ("\r" is JSON whitespace).
        stream.write_all(b"{\"cmd\":\"status\"}\r\n").unwrap();
        assert_eq!(
            read_response(&mut reader),
            Response::Ok(Reply::Status(sample_status()))
        );
        stream.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        assert_eq!(
            read_response(&mut reader),
            Response::Ok(Reply::Status(sample_status()))
        );
    }

    #[test]
    fn request_without_newline_is_answered_at_eof() {
        let dir = TempDir::new("eof");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let (mut stream, mut reader) = raw(&dir.sock());
        stream.write_all(br#"{"cmd":"status"}"#).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(
            read_response(&mut reader),
            Response::Ok(Reply::Status(sample_status()))
        );
        assert!(closed(&mut reader));
    }

    #[test]
    fn oversize_line_closes_only_that_connection() {
        let dir = TempDir::new("oversize");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let mut other = Client::connect(&dir.sock()).unwrap();
        let (mut stream, mut reader) = raw(&dir.sock());
        let mut huge = vec![b' '; MAX_REQUEST_BYTES + 10];
        huge.push(b'\n');
        stream.write_all(&huge).unwrap();
        let message = error_message(read_response(&mut reader));
        assert!(message.starts_with("request too long"), "{message}");
        assert!(closed(&mut reader));
        // The same without a newline at all.
        let (mut stream, mut reader) = raw(&dir.sock());
        stream.write_all(&vec![b'a'; 100 * 1024]).unwrap();
        assert!(error_message(read_response(&mut reader)).starts_with("request too long"));
        assert!(closed(&mut reader));
        // A line of exactly the limit is read (and is malformed, not too long).
        let (mut stream, mut reader) = raw(&dir.sock());
        let mut max = vec![b'x'; MAX_REQUEST_BYTES];
        max.push(b'\n');
        stream.write_all(&max).unwrap();
        assert!(error_message(read_response(&mut reader)).starts_with("malformed request"));

        assert_eq!(
            other.request(&Request::Status).unwrap(),
            Response::Ok(Reply::Status(sample_status()))
        );
    }

    #[test]
    fn clients_over_the_cap_are_refused_with_a_message() {
        let dir = TempDir::new("cap");
        let mut server = ControlServer::bind(&dir.sock()).unwrap();
        server.set_max_clients(2);
        let running = Running::start(server);
        let mut first = Client::connect(&dir.sock()).unwrap();
        let mut second = Client::connect(&dir.sock()).unwrap();
        first.request(&Request::Status).unwrap();
        second.request(&Request::Status).unwrap();
        let (_stream, mut reader) = raw(&dir.sock());
        let message = error_message(read_response(&mut reader));
        assert!(message.starts_with("too many control clients"), "{message}");
        assert!(closed(&mut reader));
        drop(first);
        // The slot frees once the server sees the first client's EOF.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut third = Client::connect(&dir.sock()).unwrap();
            if let Ok(Response::Ok(_)) = third.request(&Request::Status) {
                break;
            }
            assert!(Instant::now() < deadline, "slot never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
        second.request(&Request::Status).unwrap();
        let server = running.stop();
        assert!(server.client_count() <= 2);
    }

    #[test]
    fn idle_clients_give_their_slot_to_a_new_one() {
        let dir = TempDir::new("idle-full");
        let mut server = ControlServer::bind(&dir.sock()).unwrap();
        server.set_max_clients(4);
        let running = Running::start(server);
        let idle: Vec<_> = (0..4).map(|_| raw(&dir.sock())).collect();
        std::thread::sleep(EVICTABLE_AFTER + Duration::from_millis(200));
        let mut client = Client::connect(&dir.sock()).unwrap();
        assert_eq!(
            client.request(&Request::Status).unwrap(),
            Response::Ok(Reply::Status(sample_status()))
        );
        let server = running.stop();
        assert_eq!(server.client_count(), 4, "one idle client made room");
        drop(idle);
    }

    #[test]
    fn stalled_clients_are_closed() {
        let dir = TempDir::new("stalled");
        let mut server = ControlServer::bind(&dir.sock()).unwrap();
        server.set_timeouts(Duration::from_millis(600), Duration::from_millis(200));
        let running = Running::start(server);
        // half a request, never finished
        let (mut partial, mut partial_reader) = raw(&dir.sock());
        partial.write_all(b"{\"cmd\":").unwrap();
        // connected and silent
        let (_silent, mut silent_reader) = raw(&dir.sock());
        // busy: a request now and then, each well within the idle timeout
        let mut busy = Client::connect(&dir.sock()).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1000) {
            busy.request(&Request::Status).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(closed(&mut partial_reader), "partial line");
        assert!(closed(&mut silent_reader), "idle");
        busy.request(&Request::Status).unwrap();
        let server = running.stop();
        assert_eq!(server.client_count(), 1);
    }

    #[test]
    fn peers_and_who_may_change_the_daemon() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = Peer::of(std::os::fd::AsFd::as_fd(&a)).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| -> u32 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        assert_eq!((me.uid, me.gid), (field("Uid:"), field("Gid:")));
        let user = |uid, gid, groups: &[u32]| Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert!(user(0, 0, &[]).is_admin(None), "root");
        assert!(!user(1000, 1000, &[]).is_admin(None));
        assert!(!user(1000, 1000, &[27]).is_admin(Some(50)));
        assert!(user(1000, 50, &[]).is_admin(Some(50)), "primary group");
        assert!(
            user(1000, 1000, &[27, 50]).is_admin(Some(50)),
            "supplementary"
        );
        assert!(Request::Reload.changes_state());
        assert!(!Request::Status.changes_state());
    }

    #[test]
    fn clients_that_vanish_are_dropped() {
        let dir = TempDir::new("vanish");
        let mut server = ControlServer::bind(&dir.sock()).unwrap();
        let mut handler = test_handler;
        {
            let (mut stream, _reader) = raw(&dir.sock());
            // Asks for a big reply and leaves without reading it.
            stream
                .write_all(b"{\"cmd\":\"flows\",\"limit\":20000}\n")
                .unwrap();
            server
                .poll(Duration::from_millis(100), &mut handler)
                .unwrap();
            server
                .poll(Duration::from_millis(100), &mut handler)
                .unwrap();
            assert_eq!(server.client_count(), 1);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.client_count() > 0 {
            assert!(Instant::now() < deadline, "client never dropped");
            server
                .poll(Duration::from_millis(10), &mut handler)
                .unwrap();
        }
    }

    #[test]
    fn bind_refuses_a_live_server() {
        let dir = TempDir::new("live");
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        let err = ControlServer::bind(&dir.sock()).unwrap_err();
        assert!(matches!(err, BindError::InUse(ref p) if *p == dir.sock()));
        assert_eq!(
            err.to_string(),
            format!("another fwd is running on {}", dir.sock().display())
        );
        // The live server is unharmed.
        Client::connect(&dir.sock())
            .unwrap()
            .request(&Request::Status)
            .unwrap();
    }

    #[test]
    fn bind_replaces_a_stale_socket() {
        let dir = TempDir::new("stale");
        drop(std::os::unix::net::UnixListener::bind(dir.sock()).unwrap());
        assert!(dir.sock().exists());
        let _running = Running::start(ControlServer::bind(&dir.sock()).unwrap());
        Client::connect(&dir.sock())
            .unwrap()
            .request(&Request::Status)
            .unwrap();
    }

    #[test]
    fn bind_never_deletes_a_regular_file() {
        let dir = TempDir::new("regular");
        fs::write(dir.sock(), b"precious").unwrap();
        let err = ControlServer::bind(&dir.sock()).unwrap_err();
        assert!(matches!(err, BindError::NotASocket(_)), "{err}");
        assert!(err.to_string().contains("is not a socket"));
        assert_eq!(fs::read(dir.sock()).unwrap(), b"precious");
        fs::create_dir(dir.0.join("d")).unwrap();
        assert!(matches!(
            ControlServer::bind(&dir.0.join("d")),
            Err(BindError::NotASocket(_))
        ));
    }

    #[test]
    fn socket_mode_and_directory_are_created() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("run").join("fwd").join("fwd.sock");
        let server = ControlServer::bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        // The umask may only take bits away.
        assert_eq!(dir_mode & !DIR_MODE, 0, "{dir_mode:o}");
        assert_eq!(server.path(), path);
    }

    #[test]
    fn drop_removes_only_our_socket() {
        let dir = TempDir::new("drop");
        let server = ControlServer::bind(&dir.sock()).unwrap();
        drop(server);
        assert!(!dir.sock().exists());
        assert!(matches!(
            Client::connect(&dir.sock()),
            Err(ClientError::NotRunning { .. })
        ));

        // A second instance replaced our file: dropping the first leaves it alone.
        let first = ControlServer::bind(&dir.sock()).unwrap();
        fs::remove_file(dir.sock()).unwrap();
        let second = ControlServer::bind(&dir.sock()).unwrap();
        drop(first);
        assert!(dir.sock().exists());
        drop(second);
        assert!(!dir.sock().exists());
    }
}
