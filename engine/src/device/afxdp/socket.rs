//! One AF_XDP socket bound to one (interface, queue), with its four rings, over a worker's
//! UMEM: the thin layer fwd keeps over the kernel's interface (`linux/if_xdp.h`).
//!
//! The first socket of a UMEM registers it (`XDP_UMEM_REG`) and is bound with the worker's
//! mode (zero-copy or copy, and `XDP_USE_NEED_WAKEUP`); every other socket of the worker is
//! bound with `XDP_SHARED_UMEM` and the first one's descriptor, and inherits its mode (the
//! kernel refuses mode flags on a shared bind). Every socket, shared or not, has its own fill
//! and completion rings: the kernel keeps one buffer pool per (interface, queue).
//!
//! Why fwd has its own layer rather than xsk-rs (the crate DESIGN names): xsk-rs allocates
//! its UMEM itself and keeps a descriptor's address private, so a frame could neither live in
//! fwd's `FrameMemory` nor start anywhere but at its chunk's fixed data offset (no ICMP
//! error grown into the headroom), and it builds libxdp and libbpf from C. xdpilone, the pure
//! Rust alternative, is EUPL-1.2. The kernel interface is four setsockopts, one getsockopt,
//! four mmaps and a bind.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::ring::{Offsets, Ring};
use crate::device::FrameMemory;

/// How long a bind that finds its queue taken (EBUSY) is retried.
const BUSY_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A descriptor on the RX and TX rings.
pub type Desc = libc::xdp_desc;

/// How the owner socket of a UMEM moves frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyMode {
    /// The driver DMAs into the UMEM (a driver that offers it, native XDP).
    ZeroCopy,
    /// The kernel copies frames into and out of the UMEM.
    Copy,
}

impl CopyMode {
    pub fn name(self) -> &'static str {
        match self {
            CopyMode::ZeroCopy => "zero-copy",
            CopyMode::Copy => "copy",
        }
    }
}

/// The kernel's counters of one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// An AF_XDP socket and its rings.
#[derive(Debug)]
pub struct XskSocket {
    pub fill: Ring<u64>,
    pub completion: Ring<u64>,
    pub rx: Ring<Desc>,
    pub tx: Ring<Desc>,
    fd: OwnedFd,
    pub ifindex: u32,
    pub queue: u32,
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `setsockopt(fd, SOL_XDP, name, value)`; the error is the OS error as it came.
#[allow(unsafe_code)]
fn set<T>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` for the call, and the length passed is its size;
    // the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `e` with what was being done.
fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `getsockopt(fd, SOL_XDP, name)` into a zeroed `T`.
#[allow(unsafe_code)]
fn get<T: Copy>(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<T> {
    // SAFETY: `T` is one of the kernel's plain structs of integers (`xdp_mmap_offsets`,
    // `xdp_statistics`, `xdp_options`): all zeros is a value of it.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

impl XskSocket {
    /// Opens a socket on (`ifindex`, `queue`) with rings of `ring_size` entries. `owner`:
    /// `None` registers `memory` as a new UMEM on this socket and binds it in `mode`;
    /// `Some(fd)` shares the UMEM registered on `fd`.
    #[allow(unsafe_code)]
    pub fn open(
        memory: &FrameMemory,
        ifindex: u32,
        queue: u32,
        ring_size: u32,
        owner: Option<BorrowedFd<'_>>,
        mode: CopyMode,
    ) -> io::Result<XskSocket> {
        // SAFETY: plain socket(2); the descriptor it returns is owned below.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("AF_XDP socket: {e}")));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if owner.is_none() {
            let reg = libc::xdp_umem_reg {
                addr: memory.base() as u64,
                len: memory.len() as u64,
                chunk_size: memory.chunk_size() as u32,
                headroom: memory.headroom() as u32,
                flags: 0,
                tx_metadata_len: 0,
            };
            set(fd.as_fd(), libc::XDP_UMEM_REG, &reg).map_err(|e| {
                let locked = matches!(
                    e.raw_os_error(),
                    Some(libc::ENOBUFS | libc::ENOMEM | libc::EPERM)
                );
                let hint = if locked {
                    format!(
                        ": {} MiB of UMEM must be locked in memory; fwd needs CAP_IPC_LOCK, \
                         or a memlock limit (ulimit -l) above that, or a smaller \
                         [dataplane] umem_frames",
                        memory.len() >> 20
                    )
                } else {
                    String::new()
                };
                io::Error::new(e.kind(), format!("registering the UMEM: {e}{hint}"))
            })?;
        }
        let size = ring_size;
        set(fd.as_fd(), libc::XDP_UMEM_FILL_RING, &size).map_err(context("fill ring"))?;
        set(fd.as_fd(), libc::XDP_UMEM_COMPLETION_RING, &size)
            .map_err(context("completion ring"))?;
        set(fd.as_fd(), libc::XDP_RX_RING, &size).map_err(context("RX ring"))?;
        set(fd.as_fd(), libc::XDP_TX_RING, &size).map_err(context("TX ring"))?;
        let offsets: libc::xdp_mmap_offsets =
            get(fd.as_fd(), libc::XDP_MMAP_OFFSETS).map_err(context("ring offsets"))?;
        let fill = Ring::map(
            fd.as_fd(),
            libc::XDP_UMEM_PGOFF_FILL_RING,
            size,
            Offsets::from(offsets.fr),
        )?;
        let completion = Ring::map(
            fd.as_fd(),
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            size,
            Offsets::from(offsets.cr),
        )?;
        let rx = Ring::map(
            fd.as_fd(),
            libc::XDP_PGOFF_RX_RING as u64,
            size,
            Offsets::from(offsets.rx),
        )?;
        let tx = Ring::map(
            fd.as_fd(),
            libc::XDP_PGOFF_TX_RING as u64,
            size,
            Offsets::from(offsets.tx),
        )?;
        let (flags, shared_fd) = match owner {
            None => (
                libc::XDP_USE_NEED_WAKEUP
                    | match mode {
                        CopyMode::ZeroCopy => libc::XDP_ZEROCOPY,
                        CopyMode::Copy => libc::XDP_COPY,
                    },
                0,
            ),
            Some(owner) => (libc::XDP_SHARED_UMEM, owner.as_raw_fd() as u32),
        };
        let address = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // A queue whose socket was just closed (fwd's own probe, a fwd restarted at once)
        // stays taken until the kernel's deferred release of its pool has run: EBUSY is
        // retried for a while before it counts as another owner.
        let deadline = std::time::Instant::now() + BUSY_QUEUE_WAIT;
        loop {
            // SAFETY: `address` is a valid `sockaddr_xdp` living for the call, its size
            // passed.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&address as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            return Err(io::Error::new(
                e.kind(),
                format!("binding the AF_XDP socket to queue {queue}: {e}"),
            ));
        }
        Ok(XskSocket {
            fill,
            completion,
            rx,
            tx,
            fd,
            ifindex,
            queue,
        })
    }

    /// Whether the socket moves frames without copies.
    pub fn zero_copy(&self) -> bool {
        get::<libc::xdp_options>(self.fd.as_fd(), libc::XDP_OPTIONS)
            .is_ok_and(|o| o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> SocketStats {
        match get::<libc::xdp_statistics>(self.fd.as_fd(), libc::XDP_STATISTICS) {
            Ok(s) => SocketStats {
                rx_dropped: s.rx_dropped,
                rx_invalid_descs: s.rx_invalid_descs,
                tx_invalid_descs: s.tx_invalid_descs,
                rx_ring_full: s.rx_ring_full,
                rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
                tx_ring_empty: s.tx_ring_empty_descs,
            },
            Err(_) => SocketStats::default(),
        }
    }

    /// Asks the kernel to send what the TX ring holds (`sendto` with no data). False when
    /// it could not take more now (a transient condition: the ring is tried again later).
    #[allow(unsafe_code)]
    pub fn kick_tx(&self) -> bool {
        // SAFETY: a zero-length sendto with no buffer and no address: the kernel reads
        // nothing from user memory.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        rc >= 0
    }

    /// Asks the kernel to refill from the fill ring (`recvfrom` with no buffer), when the
    /// fill ring says it needs it.
    #[allow(unsafe_code)]
    pub fn kick_fill(&self) {
        // SAFETY: a zero-length recvfrom with no buffer and no address: the kernel writes
        // nothing to user memory.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
}
