//! `hearth`, the host-side builder, as a library (the binary is a thin CLI over it).

pub mod debian;
pub mod qemu;
