//! Control protocol of fwd (placeholder until the ctl crate lands).
