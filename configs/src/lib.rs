//! The appliance config (stub; being written).
