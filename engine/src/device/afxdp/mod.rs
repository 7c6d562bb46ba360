//! The AF_XDP backend: fwd's XDP program ([`program`]) steers data-plane frames into AF_XDP
//! sockets ([`socket`], over the rings of [`ring`]); one worker's sockets, on every queue it
//! serves of every interface, share one UMEM, the worker's [`FrameMemory`]. A frame received
//! on one socket is rewritten in place and its descriptor goes onto the egress socket's TX
//! ring: no copy in fwd.
//!
//! A chunk's life: free in the worker's [`FramePool`] → lent to a fill ring → filled by the
//! kernel and popped from an RX ring as a [`Frame`] → rewritten → its descriptor pushed on a
//! TX ring (sent) or the frame handed back (dropped, refused by a full ring, or given to the
//! kernel sink) → popped from the completion ring of the socket that sent it → free again.
//! Completions land on the sending socket's ring; every poll returns them to the pool, from
//! which every fill ring is topped up, so one-way traffic cannot starve a fill ring.
//!
//! The kernel sink is a TUN device per interface (`fwd` writes the frame's IP packet into
//! it, and the kernel takes it as arriving there): frames fwd decides belong to the kernel
//! (a main-table rule, a later fragment of the router's own datagram) reach it without
//! leaving the box.

pub mod program;
pub mod ring;
pub mod socket;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket::{CopyMode, Desc, SocketStats, XskSocket};

use super::{Batch, Capabilities, Device, Frame, FrameMemory, FramePool, Medium, QueueCounter};

/// Descriptors the kernel sends per TX wake-up in copy mode: wake once per this many.
const TX_PER_WAKEUP: u32 = 32;

/// One queue of one interface that a worker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    /// The plan's interface id (frames received here carry it; frames sent with it leave
    /// here).
    pub iface: u8,
    pub ifindex: u32,
    pub queue: u32,
}

/// Counters of one socket: what fwd saw, and the kernel's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketCounters {
    pub iface: u8,
    pub queue: u32,
    pub received: u64,
    pub sent: u64,
    /// Frames refused because the TX ring was full.
    pub tx_ring_full: u64,
    /// Times the fill ring could not be topped up: no free chunk.
    pub fill_starved: u64,
    /// RX or completion descriptors that named no chunk of the UMEM.
    pub invalid_descs: u64,
    pub wakeups: u64,
    pub kernel: SocketStats,
}

/// A worker's AF_XDP sockets, its UMEM's pool, and its kernel sink.
#[derive(Debug)]
pub struct AfXdpDevice<'m> {
    pool: FramePool<'m>,
    sockets: Vec<XskSocket>,
    /// Each socket's counters, with its plan interface and queue.
    counters: Vec<SocketCounters>,
    /// TX socket of each plan interface (index into `sockets`).
    tx_socket: Vec<Option<usize>>,
    /// Descriptors pushed on each socket's TX ring since its last wake-up.
    unkicked: Vec<u32>,
    /// Kernel sink TUN queue of each plan interface.
    sinks: Vec<Option<File>>,
    /// Chunks each fill ring is kept stocked with.
    fill_target: u32,
    next_rx: usize,
    poll_fds: Vec<libc::pollfd>,
    mode: CopyMode,
    /// The MTU of each plan interface.
    mtus: Vec<u16>,
}

impl<'m> AfXdpDevice<'m> {
    /// Opens a socket on every queue of `queues` over `pool`'s memory (the first registers
    /// it as the UMEM), with rings of `ring_size` entries; zero-copy when `zero_copy` and
    /// the driver takes it, copy mode otherwise. `sinks[i]` is the kernel sink of plan
    /// interface `i`, `mtus[i]` its MTU.
    pub fn open(
        pool: FramePool<'m>,
        queues: &[QueueSpec],
        ring_size: u32,
        zero_copy: bool,
        sinks: Vec<Option<File>>,
        mtus: Vec<u16>,
    ) -> io::Result<AfXdpDevice<'m>> {
        if queues.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an AF_XDP worker needs at least one queue",
            ));
        }
        let memory: &FrameMemory = pool.memory();
        let modes: &[CopyMode] = if zero_copy {
            &[CopyMode::ZeroCopy, CopyMode::Copy]
        } else {
            &[CopyMode::Copy]
        };
        let mut last = None;
        let mut opened = None;
        for &mode in modes {
            match open_all(memory, queues, ring_size, mode) {
                Ok(sockets) => {
                    opened = Some((sockets, mode));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((sockets, mode)) = opened else {
            return Err(last.unwrap_or_else(|| io::Error::other("no AF_XDP mode to try")));
        };
        let interfaces = queues
            .iter()
            .map(|q| usize::from(q.iface) + 1)
            .max()
            .unwrap_or(0)
            .max(sinks.len());
        let mut tx_socket = vec![None; interfaces];
        for (i, q) in queues.iter().enumerate() {
            if let Some(slot) = tx_socket.get_mut(usize::from(q.iface)) {
                slot.get_or_insert(i);
            }
        }
        let sockets_n = sockets.len();
        // Half the UMEM stocks the fill rings; the rest covers frames in flight on RX, in
        // the engine and on TX rings.
        let fill_target = (memory.chunks() / 2 / sockets_n.max(1)).min(ring_size as usize) as u32;
        let mut device = AfXdpDevice {
            pool,
            poll_fds: sockets
                .iter()
                .map(|s| libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
            counters: queues
                .iter()
                .map(|q| SocketCounters {
                    iface: q.iface,
                    queue: q.queue,
                    ..SocketCounters::default()
                })
                .collect(),
            sockets,
            tx_socket,
            unkicked: vec![0; sockets_n],
            sinks,
            fill_target,
            next_rx: 0,
            mode,
            mtus,
        };
        device.refill();
        Ok(device)
    }

    /// The sockets, for putting them into the XDP program's map.
    pub fn sockets(&self) -> &[XskSocket] {
        &self.sockets
    }

    pub fn mode(&self) -> CopyMode {
        self.mode
    }

    /// Counters of every socket, with the kernel's read now.
    pub fn counters(&self) -> Vec<SocketCounters> {
        self.counters
            .iter()
            .zip(&self.sockets)
            .map(|(c, s)| SocketCounters {
                kernel: s.stats(),
                ..*c
            })
            .collect()
    }

    /// Chunks out of the pool (on rings, or held by the engine).
    pub fn outstanding(&self) -> usize {
        self.pool.outstanding()
    }

    /// Returns the chunks every socket finished sending to the pool.
    #[allow(unsafe_code)]
    fn reclaim(&mut self) {
        for (socket, counters) in self.sockets.iter_mut().zip(&mut self.counters) {
            while let Some(address) = socket.completion.pop() {
                // SAFETY: the completion ring gives back a chunk the kernel held (lent on a
                // TX ring) and will not touch again.
                if !unsafe { self.pool.free_from_kernel(address) } {
                    counters.invalid_descs += 1;
                }
            }
            socket.completion.release();
        }
    }

    /// Tops every fill ring up to the target from the free chunks.
    fn refill(&mut self) {
        for (socket, counters) in self.sockets.iter_mut().zip(&mut self.counters) {
            let stocked = socket.fill.in_flight();
            let mut wanted = self.fill_target.saturating_sub(stocked);
            wanted = wanted.min(socket.fill.free(wanted));
            let mut pushed = 0;
            while pushed < wanted {
                let Some(address) = self.pool.lend_free() else {
                    counters.fill_starved += 1;
                    break;
                };
                if !socket.fill.push(address) {
                    // SAFETY: the chunk was just taken from the pool and never reached the
                    // ring (the push refused it), so nothing else holds it.
                    #[allow(unsafe_code)]
                    unsafe {
                        self.pool.free_from_kernel(address);
                    }
                    break;
                }
                pushed += 1;
            }
            if pushed > 0 {
                socket.fill.submit();
                if socket.fill.needs_wakeup() {
                    socket.kick_fill();
                    counters.wakeups += 1;
                }
            }
        }
    }

    /// Wakes each socket's TX side: once per [`TX_PER_WAKEUP`] descriptors pushed since its
    /// last wake-up, and for descriptors still waiting when the kernel asks.
    fn kick(&mut self) {
        for (i, socket) in self.sockets.iter_mut().enumerate() {
            let unkicked = self.unkicked.get(i).copied().unwrap_or(0);
            let waiting = if unkicked > 0 {
                unkicked
            } else {
                socket.tx.in_flight()
            };
            if waiting == 0 || !socket.tx.needs_wakeup() {
                if let Some(u) = self.unkicked.get_mut(i) {
                    *u = 0;
                }
                continue;
            }
            for _ in 0..waiting.div_ceil(TX_PER_WAKEUP) {
                if let Some(c) = self.counters.get_mut(i) {
                    c.wakeups += 1;
                }
                if !socket.kick_tx() {
                    break;
                }
            }
            if let Some(u) = self.unkicked.get_mut(i) {
                *u = 0;
            }
        }
    }
}

/// Opens the sockets of every queue in `mode`: the first owns the UMEM, the rest share it.
fn open_all(
    memory: &FrameMemory,
    queues: &[QueueSpec],
    ring_size: u32,
    mode: CopyMode,
) -> io::Result<Vec<XskSocket>> {
    let mut sockets: Vec<XskSocket> = Vec::with_capacity(queues.len());
    for q in queues {
        let owner = sockets.first().map(AsFd::as_fd);
        let socket =
            XskSocket::open(memory, q.ifindex, q.queue, ring_size, owner, mode).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "interface {} queue {} ({}): {e}",
                        q.ifindex,
                        q.queue,
                        mode.name()
                    ),
                )
            })?;
        sockets.push(socket);
    }
    Ok(sockets)
}

impl<'m> Device<'m> for AfXdpDevice<'m> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: Medium::Ethernet,
            mtu: usize::from(self.mtus.iter().copied().min().unwrap_or(1500)),
            headroom: self.pool.memory().headroom(),
            batch_size: self.fill_target.max(1) as usize,
        }
    }

    /// Returns completed chunks to the pool, tops the fill rings up, wakes TX rings the
    /// kernel left waiting, then takes frames from the RX rings, socket after socket
    /// (starting at a rotating one), until `rx` is full or they are empty.
    #[allow(unsafe_code)]
    fn recv(&mut self, rx: &mut Batch<'m>) -> io::Result<usize> {
        self.reclaim();
        self.refill();
        self.kick();
        let n = self.sockets.len();
        let mut got = 0;
        for k in 0..n {
            let i = (self.next_rx + k) % n;
            let (Some(socket), Some(counters)) =
                (self.sockets.get_mut(i), self.counters.get_mut(i))
            else {
                continue;
            };
            let iface = counters.iface;
            while rx.spare() > 0 {
                let Some(desc) = socket.rx.pop() else {
                    break;
                };
                // SAFETY: the RX ring hands over a chunk the kernel filled (it was lent on a
                // fill ring) and no longer touches.
                match unsafe { self.pool.from_kernel(desc.addr, desc.len, iface) } {
                    Some(frame) => match rx.push(frame) {
                        Ok(()) => {
                            counters.received += 1;
                            got += 1;
                        }
                        Err(frame) => {
                            let _ = self.pool.put(frame);
                        }
                    },
                    None => counters.invalid_descs += 1,
                }
            }
            socket.rx.release();
            if rx.spare() == 0 {
                break;
            }
        }
        self.next_rx = (self.next_rx + 1) % n.max(1);
        Ok(got)
    }

    /// Pushes each frame's descriptor on the TX ring of its interface's socket; a full ring
    /// (or an interface without a socket) gives the frame back to the pool. Then wakes the
    /// rings.
    fn send(&mut self, frames: &mut Batch<'m>) -> io::Result<usize> {
        let mut sent = 0;
        for frame in frames.drain() {
            let target = self
                .tx_socket
                .get(usize::from(frame.iface))
                .copied()
                .flatten();
            let Some((i, socket)) = target.and_then(|i| Some((i, self.sockets.get_mut(i)?))) else {
                let _ = self.pool.put(frame);
                continue;
            };
            if socket.tx.free(1) == 0 {
                if let Some(c) = self.counters.get_mut(i) {
                    c.tx_ring_full += 1;
                }
                let _ = self.pool.put(frame);
                continue;
            }
            match self.pool.to_kernel(frame) {
                Ok((addr, len)) => {
                    // room was checked above
                    socket.tx.push(Desc {
                        addr,
                        len,
                        options: 0,
                    });
                    if let Some(u) = self.unkicked.get_mut(i) {
                        *u += 1;
                    }
                    if let Some(c) = self.counters.get_mut(i) {
                        c.sent += 1;
                    }
                    sent += 1;
                }
                // not of this memory: not ours to send, nor to keep
                Err(_foreign) => {}
            }
        }
        for (socket, &unkicked) in self.sockets.iter_mut().zip(&self.unkicked) {
            if unkicked > 0 {
                socket.tx.submit();
            }
        }
        self.kick();
        Ok(sent)
    }

    /// Writes each frame's IP packet into the kernel sink of the interface it arrived on.
    fn to_kernel(&mut self, frames: &mut Batch<'m>) -> usize {
        let mut taken = 0;
        for frame in frames.drain() {
            if write_ip_packet(&frame, self.sinks.get(usize::from(frame.iface))) {
                taken += 1;
            }
            let _ = self.pool.put(frame);
        }
        taken
    }

    fn release(&mut self, frames: &mut Batch<'m>) {
        for frame in frames.drain() {
            let _ = self.pool.put(frame);
        }
    }

    fn interface_mtu(&self, iface: u8) -> Option<u16> {
        self.mtus.get(usize::from(iface)).copied()
    }

    fn queue_counters(&self, out: &mut Vec<QueueCounter>) {
        let zero_copy = self.mode == CopyMode::ZeroCopy;
        for c in self.counters() {
            for (name, value) in c.named(zero_copy) {
                out.push(QueueCounter {
                    iface: c.iface,
                    queue: c.queue,
                    name,
                    value,
                });
            }
        }
    }

    /// Sleeps in `poll` on every socket until one has a frame or `timeout` passes.
    #[allow(unsafe_code)]
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `poll_fds` is a live array of `len` pollfds, each naming a socket this
        // device owns; the kernel writes only their `revents`.
        let rc = unsafe {
            libc::poll(
                self.poll_fds.as_mut_ptr(),
                self.poll_fds.len() as libc::nfds_t,
                ms,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl SocketCounters {
    /// The counters by name, as `fwdctl counters` shows them.
    pub fn named(&self, zero_copy: bool) -> [(&'static str, u64); 12] {
        let k = &self.kernel;
        [
            ("received", self.received),
            ("sent", self.sent),
            ("tx_ring_full", self.tx_ring_full),
            ("fill_starved", self.fill_starved),
            ("invalid_descs", self.invalid_descs),
            ("wakeups", self.wakeups),
            ("kernel_rx_dropped", k.rx_dropped),
            ("kernel_rx_ring_full", k.rx_ring_full),
            ("kernel_fill_ring_empty", k.rx_fill_ring_empty),
            ("kernel_rx_invalid_descs", k.rx_invalid_descs),
            ("kernel_tx_invalid_descs", k.tx_invalid_descs),
            ("zero_copy", u64::from(zero_copy)),
        ]
    }
}

/// Writes the IPv4 packet of an Ethernet frame into `sink`; false when there is no sink, the
/// frame holds no IPv4 packet, or the kernel refused it.
fn write_ip_packet(frame: &Frame<'_>, sink: Option<&Option<File>>) -> bool {
    let Some(Some(mut sink)) = sink.map(Option::as_ref) else {
        return false;
    };
    let data = frame.data();
    match (data.get(12..14), data.get(14..)) {
        (Some([0x08, 0x00]), Some(packet)) => {
            matches!(sink.write(packet), Ok(n) if n == packet.len())
        }
        _ => false,
    }
}
