//! The real [`LinkOps`]: rtnetlink requests, one per [`LinkWrite`], each traced and
//! each reply checked.
//!
//! rtnetlink is async; netd's reconcile is a short sequence of dependent requests, so
//! this wrapper owns a current-thread tokio runtime and blocks on each request. That
//! keeps the trait synchronous, which keeps the fake and the rollback logic simple.
//!
//! Cost: a link message is big (addresses, per-family config, statistics) and parsing
//! it dominates a reconcile on a slow machine. So [`LinkOps::links`] does not use
//! rtnetlink's typed dump: it reads the link and address tables over a plain blocking
//! socket and picks out only the attributes netd uses ([`crate::link_dump`]), without
//! statistics (`RTEXT_FILTER_SKIP_STATS`). Names are resolved to indices from a
//! cache filled by every [`LinkOps::links`] dump (which starts every apply) and kept
//! up to date by this wrapper's own creates and deletes, so a write costs one request,
//! not a lookup plus the request. A write that finds its cached index gone
//! (`ENODEV`: the link vanished or was renamed by someone else) drops the cache entry
//! and retries once with a fresh lookup.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{LinkExtentMask, LinkMessage};
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVlan, RouteMessageBuilder};

use crate::link::{LinkError, LinkOps, LinkState, LinkWrite, Route, OWNER_ALIAS, RTPROT_HEARTH};
use crate::link_dump::Dumper;

/// rtnetlink in the caller's network namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    /// name → index, see the module docs.
    indices: std::cell::RefCell<HashMap<String, u32>>,
    /// The blocking socket link reads go through ([`crate::link_dump`]).
    dumper: Dumper,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

impl Netlink {
    /// Open a netlink socket.
    pub fn open() -> Result<Self, LinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(LinkError::Connect)?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(handle)
        });
        let handle = handle.map_err(LinkError::Connect)?;
        Ok(Self {
            rt,
            handle,
            indices: Default::default(),
            dumper: Dumper::open()?,
        })
    }

    /// Create a veth pair `name` ↔ `peer` (the benchmark's stand-in NICs; netd itself
    /// never creates NICs).
    pub fn add_veth(&mut self, name: &str, peer: &str) -> Result<(), LinkError> {
        let h = self.handle.clone();
        let msg = LinkVeth::new(name, peer).build();
        self.rt
            .block_on(async move { h.link().add(msg).execute().await })
            .map_err(|e| LinkError::Refused {
                write: LinkWrite::CreateBridge {
                    name: name.to_owned(),
                },
                message: format!("creating veth pair {name}/{peer}: {e}"),
            })
    }

    fn index(&self, name: &str, write: &LinkWrite) -> Result<u32, LinkError> {
        if let Some(i) = self.indices.borrow().get(name) {
            return Ok(*i);
        }
        let h = self.handle.clone();
        let found = self.rt.block_on(async move {
            h.link()
                .get()
                .match_name(name.to_owned())
                .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
                .execute()
                .try_next()
                .await
        });
        match found {
            Ok(Some(m)) => {
                self.indices
                    .borrow_mut()
                    .insert(name.to_owned(), m.header.index);
                Ok(m.header.index)
            }
            Ok(None) | Err(_) => Err(LinkError::NoSuchLink {
                write: write.clone(),
                name: name.to_owned(),
            }),
        }
    }

    fn set(&self, msg: LinkMessage, write: &LinkWrite) -> Result<(), LinkError> {
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.link().set(msg).execute().await })
            .map_err(|e| refused(write, e))
    }

    fn create(&self, msg: LinkMessage, name: &str, write: &LinkWrite) -> Result<(), LinkError> {
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.link().add(msg).execute().await })
            .map_err(|e| refused(write, e))?;
        // The kernel ignores IFLA_IFALIAS when creating a link: mark ownership with a
        // second request, and never leave an unmarked link of ours behind.
        let index = self.index(name, write)?;
        let marked = self.set(
            LinkUnspec::new_with_index(index).alias(OWNER_ALIAS).build(),
            write,
        );
        if let Err(e) = marked {
            self.indices.borrow_mut().remove(name);
            let h = self.handle.clone();
            let _ = self
                .rt
                .block_on(async move { h.link().del(index).execute().await });
            return Err(e);
        }
        Ok(())
    }

    fn address_message(
        &self,
        index: u32,
        address: Ipv4Net,
    ) -> Result<Option<AddressMessage>, rtnetlink::Error> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut s = h
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(IpAddr::V4(address.addr()))
                .set_prefix_length_filter(address.prefix_len())
                .execute();
            s.try_next().await
        })
    }

    /// rtnetlink's typed link dump: no longer how links are read (see
    /// [`crate::link_dump`]), kept so `netd bench` can show the difference.
    pub(crate) fn dump_links(&self) -> Result<Vec<LinkMessage>, rtnetlink::Error> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            h.link()
                .get()
                .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
                .execute()
                .try_collect()
                .await
        })
    }

    /// rtnetlink's typed address dump, for `netd bench` like [`Self::dump_links`].
    pub(crate) fn dump_addresses(&self) -> Result<Vec<AddressMessage>, rtnetlink::Error> {
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.address().get().execute().try_collect().await })
    }
}

/// The main-table message for one of netd's static routes.
fn static_route(r: &Route) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.destination.addr(), r.destination.prefix_len())
        .gateway(r.gateway)
        .protocol(RouteProtocol::from(RTPROT_HEARTH))
        .build()
}

fn refused(write: &LinkWrite, e: rtnetlink::Error) -> LinkError {
    LinkError::Refused {
        write: write.clone(),
        message: e.to_string(),
    }
}

impl LinkOps for Netlink {
    fn links(&mut self) -> Result<Vec<LinkState>, LinkError> {
        let links = self.dumper.links()?;
        *self.indices.borrow_mut() = links.iter().map(|l| (l.name.clone(), l.index)).collect();
        Ok(links)
    }

    fn default_route(&mut self) -> Result<Option<Ipv4Addr>, LinkError> {
        self.dumper.default_route()
    }

    fn owned_routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.dumper.owned_routes()
    }

    fn write(&mut self, w: &LinkWrite) -> Result<(), LinkError> {
        log::trace!("rtnetlink: {w}");
        match self.write_once(w) {
            Err(LinkError::Refused { message, .. }) if message.contains("No such device") => {
                // A cached index went stale: look everything up afresh, once.
                self.indices.borrow_mut().clear();
                self.write_once(w)
            }
            other => other,
        }
    }
}

impl Netlink {
    fn write_once(&mut self, w: &LinkWrite) -> Result<(), LinkError> {
        match w {
            LinkWrite::CreateBridge { name } => self.create(LinkBridge::new(name).build(), name, w),
            LinkWrite::CreateVlan { name, parent, id } => {
                let p = self.index(parent, w)?;
                self.create(LinkVlan::new(name, p, *id).build(), name, w)
            }
            LinkWrite::Delete { name } => {
                let i = self.index(name, w)?;
                let h = self.handle.clone();
                self.rt
                    .block_on(async move { h.link().del(i).execute().await })
                    .map_err(|e| refused(w, e))?;
                // VLANs on it go with it; forget them all rather than guess.
                self.indices.borrow_mut().clear();
                Ok(())
            }
            LinkWrite::SetMaster { link, master } => {
                let i = self.index(link, w)?;
                let b = LinkUnspec::new_with_index(i);
                let msg = match master {
                    Some(m) => b.controller(self.index(m, w)?).build(),
                    None => b.nocontroller().build(),
                };
                self.set(msg, w)
            }
            LinkWrite::SetMtu { link, mtu } => {
                let i = self.index(link, w)?;
                self.set(LinkUnspec::new_with_index(i).mtu(*mtu).build(), w)
            }
            LinkWrite::SetUp { link, up } => {
                let i = self.index(link, w)?;
                let b = LinkUnspec::new_with_index(i);
                self.set(if *up { b.up() } else { b.down() }.build(), w)
            }
            LinkWrite::AddAddress { link, address } => {
                let i = self.index(link, w)?;
                let h = self.handle.clone();
                let a = *address;
                self.rt
                    .block_on(async move {
                        h.address()
                            .add(i, IpAddr::V4(a.addr()), a.prefix_len())
                            .execute()
                            .await
                    })
                    .map_err(|e| refused(w, e))
            }
            LinkWrite::DelAddress { link, address } => {
                let i = self.index(link, w)?;
                let msg = self
                    .address_message(i, *address)
                    .map_err(|e| refused(w, e))?
                    .ok_or_else(|| LinkError::Refused {
                        write: w.clone(),
                        message: "no such address".into(),
                    })?;
                let h = self.handle.clone();
                self.rt
                    .block_on(async move { h.address().del(msg).execute().await })
                    .map_err(|e| refused(w, e))
            }
            LinkWrite::SetDefaultRoute { gateway } => {
                let h = self.handle.clone();
                match gateway {
                    Some(g) => {
                        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(*g).build();
                        self.rt
                            .block_on(async move { h.route().add(route).replace().execute().await })
                            .map_err(|e| refused(w, e))
                    }
                    None => {
                        let route = RouteMessageBuilder::<Ipv4Addr>::new().build();
                        self.rt
                            .block_on(async move { h.route().del(route).execute().await })
                            .map_err(|e| refused(w, e))
                    }
                }
            }
            LinkWrite::AddRoute { route } => {
                // No NLM_F_REPLACE: a destination someone else routes stays theirs.
                let msg = static_route(route);
                let h = self.handle.clone();
                self.rt
                    .block_on(async move { h.route().add(msg).execute().await })
                    .map_err(|e| refused(w, e))
            }
            LinkWrite::DelRoute { route } => {
                // The kernel matches rtm_protocol when it is set: only netd's route.
                let msg = static_route(route);
                let h = self.handle.clone();
                self.rt
                    .block_on(async move { h.route().del(msg).execute().await })
                    .map_err(|e| refused(w, e))
            }
        }
    }
}
