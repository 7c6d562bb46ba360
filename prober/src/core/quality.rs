//! Quality thresholds: what a WAN's window figures say about it (up, degraded or down) and
//! why, in words for events (`loss 45% > 40%`, `latency 250ms > 200ms`).
//!
//! Invariants: a threshold applies only to a full window (a handful of samples says
//! nothing); a figure must be strictly above a threshold to cross it; the verdict is the
//! worst level crossed, and its reason lists every threshold crossed at that level.

use balancer::LinkState;

use super::config::ProbeConfig;
use super::event::{fmt_ms, fmt_pct};
use super::window::Figures;

/// The level the figures call for, with the thresholds crossed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Assessment {
    pub level: LinkState,
    /// Empty for `Up`.
    pub reason: String,
}

/// Orders link states from best (0) to worst (2).
pub(crate) fn rank(state: LinkState) -> u8 {
    match state {
        LinkState::Up => 0,
        LinkState::Degraded => 1,
        LinkState::Down => 2,
    }
}

/// Assesses `figures` against the thresholds of `config`; `Up` unless `window_full`.
pub(crate) fn assess(config: &ProbeConfig, figures: &Figures, window_full: bool) -> Assessment {
    if window_full {
        let down = crossed(figures, config.latency_down, config.loss_down_pct);
        if !down.is_empty() {
            return Assessment {
                level: LinkState::Down,
                reason: down.join(", "),
            };
        }
        let degraded = crossed(figures, config.latency_degraded, config.loss_degraded_pct);
        if !degraded.is_empty() {
            return Assessment {
                level: LinkState::Degraded,
                reason: degraded.join(", "),
            };
        }
    }
    Assessment {
        level: LinkState::Up,
        reason: String::new(),
    }
}

/// The thresholds of one level that `figures` are above, as `latency 250ms > 200ms`,
/// `loss 45% > 40%`. A window without an answer has no latency, so only its loss counts.
fn crossed(
    figures: &Figures,
    latency: Option<std::time::Duration>,
    loss_pct: Option<f64>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if let (Some(limit), Some(value)) = (latency, figures.latency) {
        if value > limit {
            reasons.push(format!("latency {} > {}", fmt_ms(value), fmt_ms(limit)));
        }
    }
    if let Some(limit) = loss_pct {
        if figures.loss_pct > limit {
            reasons.push(format!(
                "loss {} > {}",
                fmt_pct(figures.loss_pct),
                fmt_pct(limit)
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Method;
    use std::time::Duration;

    fn config() -> ProbeConfig {
        let mut c = ProbeConfig::new("isp1", vec![[192, 0, 2, 1].into()], Method::Icmp);
        c.latency_degraded = Some(Duration::from_millis(100));
        c.latency_down = Some(Duration::from_millis(200));
        c.loss_degraded_pct = Some(20.0);
        c.loss_down_pct = Some(40.0);
        c
    }

    fn figures(latency_ms: u64, loss_pct: f64) -> Figures {
        Figures {
            latency: Some(Duration::from_millis(latency_ms)),
            jitter: None,
            loss_pct,
            samples: 20,
        }
    }

    #[test]
    fn levels_and_reasons() {
        let c = config();
        let a = |l, p| assess(&c, &figures(l, p), true);
        assert_eq!(a(50, 0.0).level, LinkState::Up);
        assert_eq!(a(50, 0.0).reason, "");
        // At a threshold is not above it.
        assert_eq!(a(100, 20.0).level, LinkState::Up);
        assert_eq!(a(101, 0.0).level, LinkState::Degraded);
        assert_eq!(a(101, 0.0).reason, "latency 101ms > 100ms");
        assert_eq!(a(50, 25.0).reason, "loss 25% > 20%");
        assert_eq!(a(250, 45.0).level, LinkState::Down);
        assert_eq!(a(250, 45.0).reason, "latency 250ms > 200ms, loss 45% > 40%");
        // The worst level wins; its reason names only its own thresholds.
        assert_eq!(a(150, 45.0).reason, "loss 45% > 40%");
        // Not full: no verdict.
        assert_eq!(assess(&c, &figures(250, 45.0), false).level, LinkState::Up);
    }

    #[test]
    fn no_thresholds_no_latency() {
        let plain = ProbeConfig::new("isp1", vec![[192, 0, 2, 1].into()], Method::Icmp);
        assert_eq!(
            assess(&plain, &figures(5000, 99.0), true).level,
            LinkState::Up
        );
        let all_lost = Figures {
            latency: None,
            jitter: None,
            loss_pct: 100.0,
            samples: 20,
        };
        let a = assess(&config(), &all_lost, true);
        assert_eq!(a.level, LinkState::Down);
        assert_eq!(a.reason, "loss 100% > 40%");
        assert!(rank(LinkState::Up) < rank(LinkState::Degraded));
        assert!(rank(LinkState::Degraded) < rank(LinkState::Down));
    }
}
