//! The TUN backend: one multi-queue TUN device per plan interface, one queue of each per
//! worker. The kernel keeps L2, ARP and routing; the steering rules (see [`crate::steering`])
//! route into a TUN what fwd must handle on that interface, and route what fwd writes into a
//! TUN onwards (out of the WAN, to the LAN host, or to the box itself).
//!
//! Frames are raw IPv4 packets (no packet-information header, [`Medium::Ip`]). A frame read
//! from the TUN of interface `i` gets `iface = i`; a frame sent with `iface = i` is written
//! into interface `i`'s TUN. Frames the pipeline hands to the kernel keep their ingress
//! interface, so writing them back into the TUN they came from delivers them to the kernel's
//! local table.
//!
//! TTL: a packet that goes through fwd crosses the kernel's forwarding twice (into the TUN
//! and out of it), and each crossing takes one off its TTL. So that fwd counts as one hop, as
//! a router should, the device undoes both: it adds one to the TTL of every packet it reads
//! (the pipeline sees the TTL the packet arrived with, decides expiry and takes its one off)
//! and adds one to every packet it forwards (the kernel's second decrement takes it back).
//! A TTL-1 packet still expires at the kernel's first crossing, answered from the router's
//! address on that interface, so traceroute shows the router once.
//!
//! The devices are created non-persistent: when fwd's last queue closes (also when it is
//! killed) the kernel removes them, and with them every route that points into them.
//!
//! Frames live in the worker's [`FramePool`]: a packet is read into a chunk after its
//! headroom, rewritten there, and written out from there (the TTL steps are made in place);
//! the chunk goes back to the pool as soon as the write returns.
//!
//! This file is the only place in the engine that calls `ioctl`; each `unsafe` block says why
//! it is sound.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::{Batch, Capabilities, Device, FramePool, Medium};
use crate::packet::rewrite::step_ttl;

/// Longest interface name the kernel accepts (IFNAMSIZ − 1).
pub const MAX_NAME_LEN: usize = 15;

/// The MTU of the TUN devices (the kernel's default for TUN).
pub const TUN_MTU: usize = 1500;

/// Opens one queue of the multi-queue TUN device `name`, creating the device if it does not
/// exist yet. The queue is non-blocking.
pub fn open_queue(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains(['/', ' ', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad TUN device name {name:?} (1 to {MAX_NAME_LEN} characters, no '/')"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;
    set_iff(&file, name)?;
    Ok(file)
}

/// TUNSETIFF: attaches `file` as a queue of TUN device `name` (IFF_TUN | IFF_NO_PI |
/// IFF_MULTI_QUEUE).
#[allow(unsafe_code)]
fn set_iff(file: &File, name: &str) -> io::Result<()> {
    // SAFETY: `ifreq` is a plain C struct (arrays of integers and a union of plain data); the
    // all-zero bit pattern is a valid value of every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    // The name was checked to be at most 15 bytes, so `ifr_name[15]` stays the terminating 0.
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as i16;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq` through the pointer, which points
    // to a live, properly aligned `ifreq` owned by this frame for the whole call; the fd is
    // open for the call's duration (borrowed from `file`).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TUNSETIFF {name}: {e} (needs CAP_NET_ADMIN)"),
        ));
    }
    Ok(())
}

/// One worker's view of the TUN devices: its queue of every interface's TUN, indexed by plan
/// interface id, a readiness poller over them, and the worker's frame buffers.
#[derive(Debug)]
pub struct TunDevice<'m> {
    queues: Vec<File>,
    poll: Poll,
    events: Events,
    /// Queue to read first on the next `recv` (rotates, so no interface starves the others).
    next: usize,
    pool: FramePool<'m>,
    /// The MTU of each plan interface's real device (what the kernel will send the packet
    /// out of), for the pipeline to check: the kernel's own check would answer a packet fwd
    /// translated to the WAN's address, and so never reach the sender.
    mtus: Vec<u16>,
}

impl<'m> TunDevice<'m> {
    /// Takes one queue per interface (index = plan interface id), the pool its frames come
    /// from, and the MTU of each interface's real device (empty: fwd checks none).
    pub fn new(
        queues: Vec<File>,
        pool: FramePool<'m>,
        mtus: Vec<u16>,
    ) -> io::Result<TunDevice<'m>> {
        if queues.len() > usize::from(u8::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more than 255 interfaces",
            ));
        }
        let poll = Poll::new()?;
        for (i, q) in queues.iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&q.as_raw_fd()),
                Token(i),
                Interest::READABLE,
            )?;
        }
        Ok(TunDevice {
            events: Events::with_capacity(queues.len().max(1)),
            queues,
            poll,
            next: 0,
            pool,
            mtus,
        })
    }

    /// Writes every frame of `frames` into its interface's TUN with its TTL one step up
    /// (forwarded: `up`) or down (given back to the kernel: undoes `recv`'s step), in place,
    /// and puts the frames back into the pool. Returns how many the kernel took (a full queue
    /// or a refused packet is not counted).
    fn write_all(&mut self, frames: &mut Batch<'m>, up: bool) -> usize {
        let mut written = 0;
        for mut frame in frames.drain() {
            if let Some(mut q) = self.queues.get(usize::from(frame.iface)) {
                let len = frame.len();
                let out = frame.data_mut();
                step_ttl(out, up);
                if matches!(q.write(out), Ok(n) if n == len) {
                    written += 1;
                }
            }
            // a frame of another memory is not ours to keep
            let _ = self.pool.put(frame);
        }
        written
    }
}

impl<'m> Device<'m> for TunDevice<'m> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: Medium::Ip,
            mtu: TUN_MTU,
            headroom: self.pool.memory().headroom(),
            batch_size: self.pool.memory().chunks(),
        }
    }

    /// Reads round robin, one packet per queue per turn, until the batch is full, the pool is
    /// empty or every queue is empty. A read error other than "empty" (e.g. the device
    /// vanished) is returned.
    fn recv(&mut self, rx: &mut Batch<'m>) -> io::Result<usize> {
        let n_queues = self.queues.len();
        let mut got = 0;
        // Bit i set: queue i still may hold packets this call.
        let mut live: u128 = if n_queues >= 128 {
            u128::MAX
        } else {
            (1u128 << n_queues) - 1
        };
        let mut turn = self.next;
        let mut spare = self.pool.take();
        while rx.spare() > 0 && live != 0 {
            let q = turn % n_queues.max(1);
            turn = turn.wrapping_add(1);
            if live & (1u128 << (q % 128)) == 0 {
                continue;
            }
            let Some(frame) = spare.as_mut() else {
                break;
            };
            match (&self.queues[q]).read(frame.receive_room()) {
                Ok(0) => live &= !(1u128 << (q % 128)),
                Ok(len) => {
                    frame.set_len(len);
                    step_ttl(frame.data_mut(), true);
                    frame.iface = q as u8;
                    if let Some(full) = spare.take() {
                        if let Err(back) = rx.push(full) {
                            spare = Some(back);
                            break;
                        }
                    }
                    got += 1;
                    spare = self.pool.take();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    live &= !(1u128 << (q % 128));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(frame) = spare {
                        let _ = self.pool.put(frame);
                    }
                    return Err(e);
                }
            }
        }
        if let Some(frame) = spare {
            let _ = self.pool.put(frame);
        }
        self.next = self.next.wrapping_add(1) % n_queues.max(1);
        Ok(got)
    }

    /// Writes each frame into the TUN of its `iface`, its TTL raised in place.
    fn send(&mut self, frames: &mut Batch<'m>) -> io::Result<usize> {
        Ok(self.write_all(frames, true))
    }

    /// Writes each frame back into the TUN it came from (the kernel delivers it locally or
    /// routes it by its main table), with the TTL it arrived with.
    fn to_kernel(&mut self, frames: &mut Batch<'m>) -> usize {
        self.write_all(frames, false)
    }

    fn release(&mut self, frames: &mut Batch<'m>) {
        for frame in frames.drain() {
            let _ = self.pool.put(frame);
        }
    }

    fn interface_mtu(&self, iface: u8) -> Option<u16> {
        self.mtus.get(usize::from(iface)).copied()
    }

    /// Blocks until a queue may be readable or `timeout` passes. Readiness is edge-triggered.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for name in ["", "a/b", "sixteen-chars-xx", "nul\0"] {
            let e = open_queue(name).expect_err(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
