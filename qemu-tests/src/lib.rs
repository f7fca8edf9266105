//! QEMU harness (stub; being written).
