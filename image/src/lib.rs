//! `hearth`, the host-side builder, as a library (the binary is a thin CLI over it).
//!
//! A build runs in this order, one module per step:
//!
//! 1. [`profile`]: load and validate the config, keep what the build needs.
//! 2. [`debian`]: resolve, download, verify and extract the Debian packages.
//! 3. [`musl`]: `cargo build` init and the agents as static musl binaries.
//! 4. [`layout`]: place every file per the README's image-layout contract, with
//!    [`kmod`] (modules and `modules.dep`), [`module_set`] (which modules),
//!    [`manifest`] (`agents.toml`), [`accounts`] (`passwd`/`group`) and [`shlibs`]
//!    (shared libraries), into an in-memory [`rootfs::Tree`].
//! 5. [`newc`]: write the tree as a reproducible cpio archive, zstd-compressed
//!    ([`assemble`] runs the steps and writes the outputs and [`buildinfo`]).
//!
//! [`vm`], [`serial`] and [`qemu`] boot the result; [`commands`] is the CLI.

pub mod accounts;
pub mod assemble;
pub mod buildinfo;
pub mod commands;
pub mod debian;
pub mod kmod;
pub mod layout;
pub mod manifest;
pub mod module_set;
pub mod musl;
pub mod newc;
pub mod profile;
pub mod progress;
pub mod qemu;
pub mod rootfs;
pub mod serial;
pub mod shlibs;
pub mod vm;
