//! The `guestctld` binary: logging, readiness, then serve the control port forever.

use std::time::Duration;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    hearth_agent::logging::init("guestctld");
    let port = guestctld::port::wait_for_port(
        &guestctld::port::SysRoots::real(),
        guestctld::port::CONTROL_PORT_NAME,
        Duration::from_secs(10),
    )
    .context("finding the control port")?;
    log::info!("serving on {}", port.display());
    let mut server = guestctld::server::Server::new(port);
    server.open().context("opening the control port")?;
    hearth_agent::ready::notify().context("reporting readiness")?;
    server.run()
}
