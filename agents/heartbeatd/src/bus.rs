//! heartbeatd on the system bus: the proof that the D-Bus control plane works end to
//! end in an image (Debian's `dbus-daemon` started by init as agent `dbus`, its
//! policy from `/etc/dbus-1/system.d/org.hearth.conf`, a zbus service in a static musl
//! agent).
//!
//! It owns the well-known name [`BUS_NAME`] and serves [`OBJECT_PATH`] with interface
//! `org.hearth.Heartbeat1`: a read-only property `Count` (heartbeats so far, with
//! `PropertiesChanged` on every beat) and a method `Ping() -> s`. The object is
//! registered before the name is requested, so whoever sees the name can call it.

use zbus::connection::Builder;
use zbus::{interface, Connection};

/// The name heartbeatd owns.
pub const BUS_NAME: &str = "org.hearth.Heartbeat1";
/// Its one object.
pub const OBJECT_PATH: &str = "/org/hearth/Heartbeat1";
/// The system bus in a Hearth image (`dbus-daemon --system`).
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// What `Ping` answers.
pub const PONG: &str = "pong";

/// The `org.hearth.Heartbeat1` interface.
#[derive(Debug, Default)]
pub struct Heartbeat {
    count: u64,
}

#[interface(name = "org.hearth.Heartbeat1")]
impl Heartbeat {
    /// Heartbeats so far.
    #[zbus(property)]
    fn count(&self) -> u64 {
        self.count
    }

    /// Liveness check for clients: answers [`PONG`].
    fn ping(&self) -> String {
        PONG.to_string()
    }
}

/// Errors on the bus, with the address or name concerned.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connecting to {address} and requesting {BUS_NAME}")]
    Register {
        address: String,
        #[source]
        source: zbus::Error,
    },
    #[error("publishing Count on {OBJECT_PATH}")]
    Publish(#[source] zbus::Error),
}

/// Connect to the bus at `address`, serve the object and own [`BUS_NAME`]; returns
/// once the name is ours (the bus refused it = an error).
pub async fn register(address: &str) -> Result<Connection, BusError> {
    let err = |source| BusError::Register {
        address: address.to_string(),
        source,
    };
    // Builders collect errors (a bad address, path or name) and report them here.
    Builder::address(address)
        .serve_at(OBJECT_PATH, Heartbeat::default())
        .name(BUS_NAME)
        .build()
        .await
        .map_err(err)
}

/// Set `Count` and announce it (`PropertiesChanged`).
pub async fn publish(conn: &Connection, count: u64) -> Result<(), BusError> {
    let iface = conn
        .object_server()
        .interface::<_, Heartbeat>(OBJECT_PATH)
        .await
        .map_err(BusError::Publish)?;
    let mut heartbeat = iface.get_mut().await;
    heartbeat.count = count;
    heartbeat
        .count_changed(iface.signal_emitter())
        .await
        .map_err(BusError::Publish)
}
