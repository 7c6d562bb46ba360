//! Kernel steering (placeholder; being written).
