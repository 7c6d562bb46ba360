//! What becomes of a frame: its [`Fate`] inside the pipeline (the one result every stage
//! returns), its [`Verdict`] when it leaves, and a batch's verdicts grouped by where the
//! frames go next.

use super::counters::DropReason;

/// What becomes of a packet, as every stage of the pipeline returns it (parsing's errors,
/// the express lane, the fast and slow paths, the answers the router sends); the pipeline's
/// last step turns it into the frame's [`Verdict`] and counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Forwarded: the Ethernet header still needs the egress and next-hop MACs.
    Forward {
        egress: u8,
    },
    /// The frame now holds an ICMP error for the sender (link header already swapped); the
    /// original packet counts as dropped for `dropped`.
    Reply {
        egress: u8,
        dropped: DropReason,
    },
    /// The frame now holds a TCP reset for the sender (link header already swapped): its
    /// connection's WAN went down (`wan_down`), or it has no connection (`tcp_not_syn`); the
    /// original packet counts as dropped for `dropped`.
    Reset {
        egress: u8,
        dropped: DropReason,
    },
    Kernel,
    Drop(DropReason),
    /// Larger than the MTU of the egress interface its session names (the frame is not
    /// rewritten yet): answered before the frame leaves the pipeline.
    TooBig {
        mtu: u16,
    },
}

/// The fate of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it out of this interface (the frame was rewritten in place).
    Forward(u8),
    /// Hand it to the kernel unchanged: traffic for the box itself, main-table routing, ARP.
    Kernel,
    /// Dropped, and counted under this reason.
    Drop(DropReason),
}

/// Verdicts of a batch and frame indices grouped by egress. Preallocated for a batch size and
/// an interface count; filling it never allocates.
#[derive(Debug)]
pub struct Output {
    verdicts: Vec<Verdict>,
    egress: Vec<Vec<u16>>,
    kernel: Vec<u16>,
}

impl Output {
    pub fn new(batch_size: usize, interfaces: usize) -> Output {
        Output {
            verdicts: Vec::with_capacity(batch_size),
            egress: (0..interfaces)
                .map(|_| Vec::with_capacity(batch_size))
                .collect(),
            kernel: Vec::with_capacity(batch_size),
        }
    }

    pub fn clear(&mut self) {
        self.verdicts.clear();
        self.egress.iter_mut().for_each(Vec::clear);
        self.kernel.clear();
    }

    /// Records the verdict of the next frame. A forward to an interface this output was not
    /// sized for becomes a drop (it cannot happen with a plan-sized output): returns false then.
    #[inline]
    pub fn push(&mut self, verdict: Verdict) -> bool {
        let index = u16::try_from(self.verdicts.len()).unwrap_or(u16::MAX);
        let (verdict, as_given) = match verdict {
            Verdict::Forward(iface) => match self.egress.get_mut(usize::from(iface)) {
                Some(list) => {
                    list.push(index);
                    (verdict, true)
                }
                None => (Verdict::Drop(DropReason::UnknownInterface), false),
            },
            Verdict::Kernel => {
                self.kernel.push(index);
                (verdict, true)
            }
            Verdict::Drop(_) => (verdict, true),
        };
        self.verdicts.push(verdict);
        as_given
    }

    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// Indices of frames to send out of `iface`.
    pub fn egress(&self, iface: u8) -> &[u16] {
        self.egress
            .get(usize::from(iface))
            .map_or(&[], Vec::as_slice)
    }

    /// Interfaces with frames to send, and those frames.
    pub fn egress_lists(&self) -> impl Iterator<Item = (u8, &[u16])> {
        self.egress
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| (u8::try_from(i).unwrap_or(u8::MAX), l.as_slice()))
    }

    /// Indices of frames for the kernel.
    pub fn kernel(&self) -> &[u16] {
        &self.kernel
    }
}
