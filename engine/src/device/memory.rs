//! An in-memory [`Device`] for tests and benchmarks: frames are queued in with
//! [`MemoryDevice::inject`] and collected with [`MemoryDevice::take_sent`]. It stands for every
//! interface at once: each frame carries the interface id it arrived on or leaves by.

use std::collections::VecDeque;
use std::io;

use super::{Batch, Device, Medium};

/// A sent frame: the interface it left by and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentFrame {
    pub iface: u8,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct MemoryDevice {
    medium: Medium,
    mtu: usize,
    rx: VecDeque<(u8, Vec<u8>)>,
    tx: Vec<SentFrame>,
    /// Accept at most this many frames per `send` call (to test full queues).
    pub tx_limit: usize,
}

impl MemoryDevice {
    pub fn new(medium: Medium) -> MemoryDevice {
        MemoryDevice {
            medium,
            mtu: 1500,
            rx: VecDeque::new(),
            tx: Vec::new(),
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

    pub fn pending(&self) -> usize {
        self.rx.len()
    }
}

impl Device for MemoryDevice {
    fn medium(&self) -> Medium {
        self.medium
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn recv(&mut self, batch: &mut Batch) -> io::Result<usize> {
        let mut n = 0;
        for frame in batch.all_frames_mut() {
            let Some((iface, bytes)) = self.rx.pop_front() else {
                break;
            };
            if !frame.fill(&bytes, iface) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame larger than buffer",
                ));
            }
            n += 1;
        }
        batch.set_len(n);
        Ok(n)
    }

    fn send(&mut self, batch: &Batch, indices: &[u16]) -> io::Result<usize> {
        let mut sent = 0;
        for &i in indices.iter().take(self.tx_limit) {
            if let Some(frame) = batch.frames().get(usize::from(i)) {
                self.tx.push(SentFrame {
                    iface: frame.iface,
                    bytes: frame.data().to_vec(),
                });
                sent += 1;
            }
        }
        Ok(sent)
    }
}
