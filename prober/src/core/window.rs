//! The rolling window of one WAN's probe results and the figures computed over it.
//!
//! Samples are appended in the order probes resolve (answer, failure or timeout), for all
//! targets of the WAN together; the oldest is dropped once `capacity` are held.
//!
//! - **latency**: mean RTT of the answered samples (`None` if none answered);
//! - **jitter**: mean absolute difference between the RTTs of consecutive answered samples
//!   *of the same target* (lost samples in between are skipped; `None` without such a
//!   pair). dpinger computes it per target; pairing samples of different targets would
//!   count the targets' distance from each other as jitter;
//! - **loss**: lost samples × 100 / samples held (0 when empty).

use std::collections::VecDeque;
use std::time::Duration;

/// One resolved probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Index of the target in the WAN's `targets`.
    pub target: usize,
    /// The RTT, or `None` if the probe was lost (timeout or failure).
    pub rtt: Option<Duration>,
}

/// Latency, jitter and loss over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Mean RTT of the answered samples.
    pub latency: Option<Duration>,
    /// Mean RTT difference of consecutive answered samples of the same target.
    pub jitter: Option<Duration>,
    /// Lost samples in percent of the samples held.
    pub loss_pct: f64,
    /// Samples the figures were computed from.
    pub samples: usize,
}

/// A fixed-capacity window of samples.
#[derive(Clone, Debug)]
pub struct Window {
    samples: VecDeque<Sample>,
    capacity: usize,
    targets: usize,
}

impl Window {
    /// An empty window keeping `capacity` (≥ 1) samples of `targets` targets.
    pub fn new(capacity: usize, targets: usize) -> Window {
        let capacity = capacity.max(1);
        Window {
            samples: VecDeque::with_capacity(capacity),
            capacity,
            targets,
        }
    }

    /// Appends `sample`, dropping the oldest when full.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Whether `capacity` samples are held (quality thresholds apply only then).
    pub fn is_full(&self) -> bool {
        self.samples.len() == self.capacity
    }

    /// Most samples held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// Latency, jitter and loss over the samples held.
    pub fn figures(&self) -> Figures {
        let mut rtt_sum = Duration::ZERO;
        let mut answered = 0u32;
        let mut diff_sum = Duration::ZERO;
        let mut pairs = 0u32;
        let mut last: Vec<Option<Duration>> = vec![None; self.targets];
        for s in &self.samples {
            let Some(rtt) = s.rtt else { continue };
            rtt_sum += rtt;
            answered += 1;
            if let Some(slot) = last.get_mut(s.target) {
                if let Some(prev) = *slot {
                    diff_sum += rtt.abs_diff(prev);
                    pairs += 1;
                }
                *slot = Some(rtt);
            }
        }
        let total = self.samples.len();
        let lost = total - answered as usize;
        Figures {
            latency: (answered > 0).then(|| rtt_sum / answered),
            jitter: (pairs > 0).then(|| diff_sum / pairs),
            loss_pct: if total == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / total as f64
            },
            samples: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn ok(target: usize, rtt: u64) -> Sample {
        Sample {
            target,
            rtt: Some(ms(rtt)),
        }
    }

    fn lost(target: usize) -> Sample {
        Sample { target, rtt: None }
    }

    #[test]
    fn empty_window() {
        let w = Window::new(4, 1);
        let f = w.figures();
        assert_eq!(f.latency, None);
        assert_eq!(f.jitter, None);
        assert_eq!(f.loss_pct, 0.0);
        assert_eq!(f.samples, 0);
        assert!(!w.is_full());
    }

    #[test]
    fn average_jitter_loss_one_target() {
        let mut w = Window::new(10, 1);
        for s in [ok(0, 10), ok(0, 14), lost(0), ok(0, 12), ok(0, 20)] {
            w.push(s);
        }
        let f = w.figures();
        // (10 + 14 + 12 + 20) / 4
        assert_eq!(f.latency, Some(ms(14)));
        // |14-10| + |12-14| (the loss is skipped) + |20-12| = 4 + 2 + 8 over 3 pairs:
        // 14 ms / 3, truncated to the nanosecond like every Duration division.
        assert_eq!(f.jitter, Some(Duration::from_nanos(4_666_666)));
        assert_eq!(f.loss_pct, 20.0);
        assert_eq!(f.samples, 5);
    }

    #[test]
    fn jitter_pairs_samples_of_the_same_target() {
        let mut w = Window::new(10, 2);
        // Target 0 at 10 ms, target 1 at 50 ms, interleaved: no jitter at all.
        for _ in 0..3 {
            w.push(ok(0, 10));
            w.push(ok(1, 50));
        }
        let f = w.figures();
        assert_eq!(f.latency, Some(ms(30)));
        assert_eq!(f.jitter, Some(Duration::ZERO));
        assert_eq!(f.loss_pct, 0.0);
    }

    #[test]
    fn window_wraps_and_forgets_the_oldest() {
        let mut w = Window::new(4, 1);
        for s in [
            lost(0),
            lost(0),
            ok(0, 100),
            ok(0, 10),
            ok(0, 20),
            ok(0, 30),
        ] {
            w.push(s);
        }
        // Held: 100, 10, 20, 30 (both losses dropped).
        assert!(w.is_full());
        assert_eq!(w.len(), 4);
        let f = w.figures();
        assert_eq!(f.loss_pct, 0.0);
        assert_eq!(f.latency, Some(ms(40)));
        // |10-100| + |20-10| + |30-20| = 110 over 3
        assert_eq!(f.jitter, Some(Duration::from_nanos(36_666_666)));
        w.push(lost(0));
        w.push(lost(0));
        // Held: 20, 30, lost, lost.
        let f = w.figures();
        assert_eq!(f.loss_pct, 50.0);
        assert_eq!(f.latency, Some(ms(25)));
        assert_eq!(f.jitter, Some(ms(10)));
    }

    #[test]
    fn all_lost() {
        let mut w = Window::new(3, 2);
        for _ in 0..5 {
            w.push(lost(1));
        }
        let f = w.figures();
        assert_eq!(f.latency, None);
        assert_eq!(f.jitter, None);
        assert_eq!(f.loss_pct, 100.0);
        assert_eq!(f.samples, 3);
    }
}
