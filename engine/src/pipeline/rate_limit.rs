//! A token bucket for ICMP errors the router generates (like Linux's icmp_msgs_per_sec and
//! icmp_msgs_burst), so a flood of expiring or unroutable packets cannot make fwd a flood
//! source. Time comes in as an argument.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    per_second: u64,
    burst: u64,
    /// Tokens in thousandths, so refills at any rate stay exact.
    milli_tokens: u64,
    last: Duration,
}

impl TokenBucket {
    pub fn new(per_second: u64, burst: u64) -> TokenBucket {
        TokenBucket {
            per_second,
            burst,
            milli_tokens: burst * 1000,
            last: Duration::ZERO,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn take(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        let refill = (elapsed.as_micros() as u64).saturating_mul(self.per_second) / 1000;
        self.milli_tokens = (self.milli_tokens.saturating_add(refill)).min(self.burst * 1000);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(1000, 5);
        let t0 = Duration::from_secs(1);
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 5);
        // 3 ms later three more tokens.
        let t1 = t0 + Duration::from_millis(3);
        assert_eq!((0..10).filter(|_| b.take(t1)).count(), 3);
        // Time going backwards refills nothing.
        assert!(!b.take(t0));
    }
}
