//! A recording, in-memory [`LinkOps`]: the kernel's link table as a `Vec`, every write
//! recorded, and writes that can be told to fail (a VLAN the kernel refuses, a NIC
//! that vanishes). It models what reconcile relies on — ports follow their master,
//! deleting a link deletes its VLANs and addresses — and nothing else.

use std::net::Ipv4Addr;

use crate::link::{LinkError, LinkOps, LinkState, LinkWrite, Route, OWNER_ALIAS, RTPROT_HEARTH};

type FailRule = Box<dyn Fn(&LinkWrite) -> bool + Send>;

/// The fake kernel.
#[derive(Default)]
pub struct FakeLinks {
    /// Current links.
    pub links: Vec<LinkState>,
    /// Current default route gateway.
    pub gateway: Option<Ipv4Addr>,
    /// The main table's other routes as (route, protocol); netd's carry
    /// [`RTPROT_HEARTH`], anything else is someone else's.
    pub routes: Vec<(Route, u8)>,
    /// Every write that succeeded, in order.
    pub writes: Vec<LinkWrite>,
    fail: Vec<FailRule>,
    next_index: u32,
}

impl std::fmt::Debug for FakeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLinks")
            .field("links", &self.links)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl FakeLinks {
    /// A kernel with `lo` and the given NICs (name, MAC), all down, MTU 1500.
    pub fn with_nics(nics: &[(&str, [u8; 6])]) -> Self {
        let mut fake = Self {
            next_index: 1,
            ..Self::default()
        };
        fake.push("lo", None, None);
        for (name, mac) in nics {
            fake.push(name, Some(*mac), None);
        }
        fake
    }

    /// Make every write for which `rule` returns true fail with "refused by the fake".
    pub fn fail_when(&mut self, rule: impl Fn(&LinkWrite) -> bool + Send + 'static) {
        self.fail.push(Box::new(rule));
    }

    /// Stop failing.
    pub fn clear_failures(&mut self) {
        self.fail.clear();
    }

    /// A NIC appears (hot-plug, a late driver), down, MTU 1500.
    pub fn add_nic(&mut self, name: &str, mac: [u8; 6]) {
        self.push(name, Some(mac), None);
    }

    /// A NIC vanishes (unplugged); ports of it and VLANs on it go with it.
    pub fn remove_nic(&mut self, name: &str) {
        self.links
            .retain(|l| l.name != name && l.vlan.as_ref().is_none_or(|v| v.0 != name));
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }

    fn push(&mut self, name: &str, mac: Option<[u8; 6]>, kind: Option<&str>) -> &mut LinkState {
        self.next_index = self.next_index.max(1);
        let index = self.next_index;
        self.next_index += 1;
        self.links.push(LinkState {
            index,
            name: name.to_owned(),
            mac,
            mtu: if name == "lo" { 65536 } else { 1500 },
            up: false,
            carrier: false,
            kind: kind.map(str::to_owned),
            master: None,
            alias: None,
            vlan: None,
            addresses: Vec::new(),
        });
        self.links.last_mut().expect("just pushed")
    }

    fn get_mut(&mut self, name: &str, write: &LinkWrite) -> Result<&mut LinkState, LinkError> {
        self.links
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| LinkError::NoSuchLink {
                write: write.clone(),
                name: name.to_owned(),
            })
    }

    fn exists(&self, name: &str, write: &LinkWrite) -> Result<(), LinkError> {
        match self.link(name) {
            Some(_) => Ok(()),
            None => Err(LinkError::NoSuchLink {
                write: write.clone(),
                name: name.to_owned(),
            }),
        }
    }

    fn refuse(write: &LinkWrite, message: &str) -> LinkError {
        LinkError::Refused {
            write: write.clone(),
            message: message.to_owned(),
        }
    }

    fn apply(&mut self, w: &LinkWrite) -> Result<(), LinkError> {
        match w {
            LinkWrite::CreateBridge { name } => {
                if self.link(name).is_some() {
                    return Err(Self::refuse(w, "File exists"));
                }
                let mac = [0x02, 0, 0, 0, 0, self.next_index as u8];
                let l = self.push(name, Some(mac), Some("bridge"));
                l.alias = Some(OWNER_ALIAS.to_owned());
            }
            LinkWrite::CreateVlan { name, parent, id } => {
                if self.link(name).is_some() {
                    return Err(Self::refuse(w, "File exists"));
                }
                self.exists(parent, w)?;
                let mac = self.link(parent).and_then(|p| p.mac);
                let l = self.push(name, mac, Some("vlan"));
                l.alias = Some(OWNER_ALIAS.to_owned());
                l.vlan = Some((parent.clone(), *id));
            }
            LinkWrite::Delete { name } => {
                self.exists(name, w)?;
                let gone: Vec<String> = self
                    .links
                    .iter()
                    .filter(|l| l.name == *name || l.vlan.as_ref().is_some_and(|v| v.0 == *name))
                    .map(|l| l.name.clone())
                    .collect();
                self.links.retain(|l| !gone.contains(&l.name));
                for l in &mut self.links {
                    if l.master.as_ref().is_some_and(|m| gone.contains(m)) {
                        l.master = None;
                    }
                }
            }
            LinkWrite::SetMaster { link, master } => {
                if let Some(m) = master {
                    self.exists(m, w)?;
                }
                self.get_mut(link, w)?.master = master.clone();
            }
            LinkWrite::SetMtu { link, mtu } => self.get_mut(link, w)?.mtu = *mtu,
            LinkWrite::SetUp { link, up } => {
                // The fake's cables are always in: carrier follows the admin state.
                let l = self.get_mut(link, w)?;
                l.up = *up;
                l.carrier = *up;
            }
            LinkWrite::AddAddress { link, address } => {
                let l = self.get_mut(link, w)?;
                if l.addresses.contains(address) {
                    return Err(Self::refuse(w, "File exists"));
                }
                l.addresses.push(*address);
            }
            LinkWrite::DelAddress { link, address } => {
                let l = self.get_mut(link, w)?;
                let before = l.addresses.len();
                l.addresses.retain(|a| a != address);
                if l.addresses.len() == before {
                    return Err(Self::refuse(w, "Cannot assign requested address"));
                }
            }
            LinkWrite::SetDefaultRoute { gateway } => self.gateway = *gateway,
            LinkWrite::AddRoute { route } => {
                // Like the kernel without NLM_F_REPLACE: one route per destination.
                if self
                    .routes
                    .iter()
                    .any(|(r, _)| r.destination == route.destination)
                {
                    return Err(Self::refuse(w, "File exists"));
                }
                self.routes.push((*route, RTPROT_HEARTH));
            }
            LinkWrite::DelRoute { route } => {
                // The kernel matches the protocol too: only netd's route goes.
                let before = self.routes.len();
                self.routes.retain(|e| *e != (*route, RTPROT_HEARTH));
                if self.routes.len() == before {
                    return Err(Self::refuse(w, "No such process"));
                }
            }
        }
        Ok(())
    }
}

impl LinkOps for FakeLinks {
    fn links(&mut self) -> Result<Vec<LinkState>, LinkError> {
        Ok(self.links.clone())
    }

    fn default_route(&mut self) -> Result<Option<Ipv4Addr>, LinkError> {
        Ok(self.gateway)
    }

    fn owned_routes(&mut self) -> Result<Vec<Route>, LinkError> {
        Ok((self.routes.iter())
            .filter(|(_, proto)| *proto == RTPROT_HEARTH)
            .map(|(r, _)| *r)
            .collect())
    }

    fn write(&mut self, write: &LinkWrite) -> Result<(), LinkError> {
        if self.fail.iter().any(|rule| rule(write)) {
            return Err(Self::refuse(write, "refused by the fake"));
        }
        self.apply(write)?;
        self.writes.push(write.clone());
        Ok(())
    }
}
