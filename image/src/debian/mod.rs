//! Debian package fetching (being written).
