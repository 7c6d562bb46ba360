//! An in-memory [`Device`] for tests and benchmarks: frames are queued in with
//! [`MemoryDevice::inject`] and collected with [`MemoryDevice::take_sent`] and
//! [`MemoryDevice::take_to_kernel`]. It stands for every interface at once: each frame carries
//! the interface id it arrived on or leaves by. Its frames live in a [`FramePool`] of its own,
//! as a real backend's do; [`MemoryDevice::outstanding`] tells how many are out with the
//! engine, so a test can check that every frame came back.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use super::{Batch, Capabilities, Device, FramePool, Medium};

/// A sent frame: the interface it left by and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentFrame {
    pub iface: u8,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct MemoryDevice<'m> {
    medium: Medium,
    mtu: usize,
    pool: FramePool<'m>,
    rx: VecDeque<(u8, Vec<u8>)>,
    tx: Vec<SentFrame>,
    kernel: Vec<SentFrame>,
    /// Accept at most this many frames per `send` call (to test full queues).
    pub tx_limit: usize,
}

impl<'m> MemoryDevice<'m> {
    pub fn new(medium: Medium, pool: FramePool<'m>) -> MemoryDevice<'m> {
        MemoryDevice {
            medium,
            mtu: 1500,
            pool,
            rx: VecDeque::new(),
            tx: Vec::new(),
            kernel: Vec::new(),
            tx_limit: usize::MAX,
        }
    }

    /// Queues a frame as if it arrived on `iface`.
    pub fn inject(&mut self, iface: u8, bytes: &[u8]) {
        self.rx.push_back((iface, bytes.to_vec()));
    }

    /// Frames sent so far, oldest first; clears the list.
    pub fn take_sent(&mut self) -> Vec<SentFrame> {
        std::mem::take(&mut self.tx)
    }

    /// Frames handed to the kernel so far (with the interface they arrived on); clears the
    /// list.
    pub fn take_to_kernel(&mut self) -> Vec<SentFrame> {
        std::mem::take(&mut self.kernel)
    }

    /// Frames injected and not received yet.
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Frames out of the device's pool (received and not yet sent, handed over or released).
    pub fn outstanding(&self) -> usize {
        self.pool.outstanding()
    }

    fn give_back(&mut self, frame: super::Frame<'m>) {
        // a frame of another memory is not ours to keep
        let _ = self.pool.put(frame);
    }
}

impl<'m> Device<'m> for MemoryDevice<'m> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: self.medium,
            mtu: self.mtu,
            headroom: self.pool.memory().headroom(),
            batch_size: self.pool.memory().chunks(),
        }
    }

    fn recv(&mut self, rx: &mut Batch<'m>) -> io::Result<usize> {
        let mut n = 0;
        while rx.spare() > 0 {
            let Some((iface, bytes)) = self.rx.front() else {
                break;
            };
            let Some(mut frame) = self.pool.take() else {
                break;
            };
            if !frame.fill(bytes, *iface) {
                self.give_back(frame);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame larger than buffer",
                ));
            }
            self.rx.pop_front();
            if let Err(frame) = rx.push(frame) {
                self.give_back(frame);
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, frames: &mut Batch<'m>) -> io::Result<usize> {
        let mut sent = 0;
        for frame in frames.drain() {
            if sent < self.tx_limit {
                self.tx.push(SentFrame {
                    iface: frame.iface,
                    bytes: frame.data().to_vec(),
                });
                sent += 1;
            }
            self.give_back(frame);
        }
        Ok(sent)
    }

    fn to_kernel(&mut self, frames: &mut Batch<'m>) -> usize {
        let mut n = 0;
        for frame in frames.drain() {
            self.kernel.push(SentFrame {
                iface: frame.iface,
                bytes: frame.data().to_vec(),
            });
            self.give_back(frame);
            n += 1;
        }
        n
    }

    fn release(&mut self, frames: &mut Batch<'m>) {
        for frame in frames.drain() {
            self.give_back(frame);
        }
    }

    fn wait(&mut self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }
}
