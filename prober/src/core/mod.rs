//! The sans-I/O core of the prober.

pub mod config;
pub mod event;
mod link;
mod prober;
mod quality;
mod round;
pub mod window;

#[cfg(test)]
mod tests;

pub use config::{Initial, Method, ProbeConfig, ProbeConfigError};
pub use event::{Event, EventRing, Logged, PublishedState};
pub use link::{WanStatus, MAX_OPEN_ROUNDS};
pub use prober::{ProbeRequest, Prober, UnknownWan};
pub use window::{Figures, Sample, Window};
