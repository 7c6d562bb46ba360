//! Keeps fwd's routes in place while the daemon runs: once a second it asks the steering
//! ([`Installed::restore_routes`]) to put back any route the kernel dropped, which it does
//! when a route's device is set administratively down. Without this a WAN device that went
//! down and up (an operator's `ip link set`, a driver reset) would leave its WAN without a
//! route until fwd restarted. Each route put back is logged; a failure of another kind is
//! logged once, not every second, until it stops failing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::steering::Installed;

/// How often the routes are checked: the kernel drops them at once, and the WAN's probes
/// need their route back before they can bring the WAN up again.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The daemon's route keeper (see the module docs).
#[derive(Debug)]
pub struct RouteKeeper<'a> {
    installed: &'a mut Installed,
    next: Instant,
    /// Failures logged and still failing, by message.
    reported: BTreeSet<String>,
}

impl<'a> RouteKeeper<'a> {
    pub fn new(installed: &'a mut Installed, now: Instant) -> RouteKeeper<'a> {
        RouteKeeper {
            installed,
            next: now + CHECK_EVERY,
            reported: BTreeSet::new(),
        }
    }

    /// The steering it keeps, for the daemon's other changes to it.
    pub fn steering(&mut self) -> &mut Installed {
        self.installed
    }

    /// Checks the routes if a check is due at `now`.
    pub fn tick(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + CHECK_EVERY;
        let repair = self.installed.restore_routes();
        for line in &repair.restored {
            log::warn!(
                "steering: put back `{line}`: the kernel had dropped it (its device went down)"
            );
        }
        let failing: BTreeSet<String> = repair.failed.iter().map(ToString::to_string).collect();
        for message in failing.difference(&self.reported) {
            log::error!("steering: cannot put back a route: {message}");
        }
        self.reported = failing;
    }
}
