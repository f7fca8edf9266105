//! QEMU command lines (being written).
