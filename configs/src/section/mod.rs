//! The config's sections, one module each: the types (what the TOML looks like,
//! defaults included) and that section's cross-field rules (`check`).

pub mod dhcp;
pub mod dns;
pub mod image;
pub mod monitoring;
pub mod network;
pub mod services;
pub mod storage;
pub mod system;
pub mod update;
