//! `[update]`: where signed updates come from and the key that signs them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::value::{PublicKey, Url};

/// `[update]`. Absent: the appliance does not look for updates.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Base URL of the update channel.
    pub channel: Url,
    /// ed25519 public key (base64 of 32 bytes) that update bundles must be signed with.
    pub public_key: PublicKey,
}
