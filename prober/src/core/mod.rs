//! The sans-I/O core of the prober.

pub mod config;
pub mod event;
pub mod window;

pub use config::{Initial, Method, ProbeConfig, ProbeConfigError};
pub use event::{Event, EventRing, Logged, PublishedState};
pub use window::{Figures, Sample, Window};
