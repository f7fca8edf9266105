//! Converging the kernel's links to a [`Plan`]: diff, apply, and roll back on failure.
//!
//! The diff is computed from one read of the link table, as a list of steps grouped
//! by the object they belong to (the bridge, a port, the WAN, a VLAN, a removal).
//! Nothing is written when nothing differs, which is what makes a second apply report
//! [`Change::Unchanged`] everywhere.
//!
//! Ownership: links netd creates carry the alias [`crate::link::OWNER_ALIAS`]. Only those are ever
//! deleted or have stray addresses removed; a link with a wanted name that netd does
//! not own is a conflict and is left alone. NICs are only configured (master, MTU, up,
//! addresses the config names), never created or deleted. Static routes netd adds
//! carry the route protocol [`crate::link::RTPROT_HEARTH`]; only those are read back,
//! changed or removed, and a destination someone else already routes is a failed
//! step (the add is refused), never overwritten.
//!
//! Failure: when a step fails, the remaining steps of its object (and of objects that
//! need it, e.g. VLANs on a bridge that could not be created) are skipped, other
//! objects still run so that every error is found, then every write this apply made is
//! undone in reverse order. The result names every failed step and every failed undo.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::link::{LinkError, LinkOps, LinkState, LinkWrite, Route};
use crate::plan::Plan;

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It did not exist and now does.
    Created,
    /// It existed and was modified.
    Changed,
    /// Already as wanted: no writes.
    Unchanged,
    /// It existed and was deleted.
    Removed,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Changed => "changed",
            Self::Unchanged => "unchanged",
            Self::Removed => "removed",
        })
    }
}

/// The outcome of a successful link reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkReport {
    /// (object, change) in apply order, e.g. (`bridge br-lan`, Created).
    pub objects: Vec<(String, Change)>,
    /// Every write made.
    pub writes: Vec<LinkWrite>,
    /// The writes that undo this reconcile, in the order to run them ([`rollback`]),
    /// for when a later step of the apply (the firewall) fails.
    pub undo: Vec<LinkWrite>,
}

impl LinkReport {
    /// True when nothing was written.
    pub fn unchanged(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Why a reconcile failed; everything it wrote has been undone (except what
/// `rollback` lists).
#[derive(Debug, thiserror::Error)]
pub struct ReconcileError {
    /// Every step that failed (or every conflict found before writing).
    pub errors: Vec<LinkError>,
    /// Undo steps that failed in turn.
    pub rollback: Vec<LinkError>,
    /// Writes that were made and undone.
    pub undone: usize,
}

impl fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} link step(s) failed", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        if self.rollback.is_empty() {
            write!(f, "\n  rolled back {} write(s)", self.undone)?;
        } else {
            write!(f, "\n  rollback incomplete:")?;
            for e in &self.rollback {
                write!(f, "\n  rollback: {e}")?;
            }
        }
        Ok(())
    }
}

/// Steps for one object.
struct Group {
    object: String,
    /// Objects (by name) that must have succeeded first.
    needs: Vec<String>,
    /// The change this group makes when all of it runs.
    change: Change,
    writes: Vec<LinkWrite>,
}

/// Converge the links to `plan`.
pub fn reconcile(ops: &mut dyn LinkOps, plan: &Plan) -> Result<LinkReport, ReconcileError> {
    let fail = |e| ReconcileError {
        errors: vec![e],
        rollback: Vec::new(),
        undone: 0,
    };
    let links = ops.links().map_err(fail)?;
    reconcile_from(ops, plan, &links)
}

/// [`reconcile`] from a link table the caller just read (saves a second dump).
pub fn reconcile_from(
    ops: &mut dyn LinkOps,
    plan: &Plan,
    links: &[LinkState],
) -> Result<LinkReport, ReconcileError> {
    let read_failed = |e| ReconcileError {
        errors: vec![e],
        rollback: Vec::new(),
        undone: 0,
    };
    let gateway = ops.default_route().map_err(read_failed)?;
    let routes = ops.owned_routes().map_err(read_failed)?;
    let mut groups = diff(plan, links, gateway)?;
    // Routes go after the links they need exist and before stale links are deleted
    // (which would take routes through them along).
    let first_removal = (groups.iter())
        .position(|g| g.change == Change::Removed)
        .unwrap_or(groups.len());
    let removals = groups.split_off(first_removal);
    groups.extend(diff_routes(plan, &routes));
    groups.extend(removals);
    run(ops, links, gateway, groups)
}

/// The steps that take netd's routes (`owned`) to the plan's. A route is needed by
/// the object whose network holds its gateway, so a failed bridge skips its routes.
fn diff_routes(plan: &Plan, owned: &[Route]) -> Vec<Group> {
    let mut groups = Vec::new();
    let connected = |gw: Ipv4Addr| -> Vec<String> {
        let mut needs = Vec::new();
        if plan.bridge_address.contains(&gw) {
            needs.push(format!("bridge {}", plan.bridge));
        }
        for v in plan.vlans.iter().filter(|v| v.address.contains(&gw)) {
            needs.push(format!("vlan {}", v.name));
        }
        if let Some(w) = plan
            .wan
            .as_ref()
            .filter(|w| w.address.is_some_and(|a| a.contains(&gw)))
        {
            needs.push(format!("wan {}", w.name));
        }
        needs
    };
    for r in &plan.routes {
        let have = owned.iter().find(|o| o.destination == r.destination);
        let (change, writes) = match have {
            Some(h) if h == r => (Change::Unchanged, Vec::new()),
            Some(h) => (
                Change::Changed,
                vec![
                    LinkWrite::DelRoute { route: *h },
                    LinkWrite::AddRoute { route: *r },
                ],
            ),
            None => (Change::Created, vec![LinkWrite::AddRoute { route: *r }]),
        };
        groups.push(Group {
            object: format!("route {}", r.destination),
            needs: connected(r.gateway),
            change,
            writes,
        });
    }
    for o in owned {
        if !plan.routes.iter().any(|r| r.destination == o.destination) {
            groups.push(Group {
                object: format!("route {}", o.destination),
                needs: Vec::new(),
                change: Change::Removed,
                writes: vec![LinkWrite::DelRoute { route: *o }],
            });
        }
    }
    groups
}

fn find<'a>(links: &'a [LinkState], name: &str) -> Option<&'a LinkState> {
    links.iter().find(|l| l.name == name)
}

/// The steps that take `links` to `plan`.
fn diff(
    plan: &Plan,
    links: &[LinkState],
    gateway: Option<Ipv4Addr>,
) -> Result<Vec<Group>, ReconcileError> {
    let mut conflicts = Vec::new();
    let mut groups = Vec::new();
    let bridge = &plan.bridge;

    // A virtual link we own: created when missing, recreated when its kind is wrong.
    let mut owned = |object: String,
                     name: &str,
                     create: LinkWrite,
                     matches: &dyn Fn(&LinkState) -> bool,
                     address: ipnet::Ipv4Net,
                     needs: Vec<String>| {
        let mut writes = Vec::new();
        let change;
        let state = match find(links, name) {
            Some(l) if !l.owned() => {
                conflicts.push(LinkError::NotOwned {
                    name: name.to_owned(),
                });
                return;
            }
            Some(l) if matches(l) => {
                change = Change::Changed;
                Some(l)
            }
            Some(_) => {
                writes.push(LinkWrite::Delete {
                    name: name.to_owned(),
                });
                change = Change::Changed;
                None
            }
            None => {
                change = Change::Created;
                None
            }
        };
        if state.is_none() {
            writes.push(create);
        }
        if !state.is_some_and(|l| l.up) {
            writes.push(LinkWrite::SetUp {
                link: name.to_owned(),
                up: true,
            });
        }
        let have = state.map(|l| l.addresses.as_slice()).unwrap_or_default();
        for a in have.iter().filter(|a| **a != address) {
            writes.push(LinkWrite::DelAddress {
                link: name.to_owned(),
                address: *a,
            });
        }
        if !have.contains(&address) {
            writes.push(LinkWrite::AddAddress {
                link: name.to_owned(),
                address,
            });
        }
        groups.push(Group {
            object,
            needs,
            change: if writes.is_empty() {
                Change::Unchanged
            } else {
                change
            },
            writes,
        });
    };

    owned(
        format!("bridge {bridge}"),
        bridge,
        LinkWrite::CreateBridge {
            name: bridge.clone(),
        },
        &|l| l.kind.as_deref() == Some("bridge"),
        plan.bridge_address,
        Vec::new(),
    );
    for v in &plan.vlans {
        let want = (bridge.clone(), v.id);
        owned(
            format!("vlan {}", v.name),
            &v.name,
            LinkWrite::CreateVlan {
                name: v.name.clone(),
                parent: bridge.clone(),
                id: v.id,
            },
            &|l| l.kind.as_deref() == Some("vlan") && l.vlan.as_ref() == Some(&want),
            v.address,
            vec![format!("bridge {bridge}")],
        );
    }

    // NICs: configured, never created or deleted.
    let nic = |name: &str, mtu: Option<u32>, master: Option<&str>| {
        let mut writes = Vec::new();
        let l = find(links, name);
        if let Some(m) = master {
            if l.and_then(|l| l.master.as_deref()) != Some(m) {
                writes.push(LinkWrite::SetMaster {
                    link: name.to_owned(),
                    master: Some(m.to_owned()),
                });
            }
        }
        if let Some(mtu) = mtu {
            if l.map(|l| l.mtu) != Some(mtu) {
                writes.push(LinkWrite::SetMtu {
                    link: name.to_owned(),
                    mtu,
                });
            }
        }
        if !l.is_some_and(|l| l.up) {
            writes.push(LinkWrite::SetUp {
                link: name.to_owned(),
                up: true,
            });
        }
        writes
    };
    for p in &plan.ports {
        let writes = nic(&p.name, p.mtu, Some(bridge));
        groups.push(Group {
            object: format!("port {}", p.name),
            needs: vec![format!("bridge {bridge}")],
            change: if writes.is_empty() {
                Change::Unchanged
            } else {
                Change::Changed
            },
            writes,
        });
    }
    if let Some(w) = &plan.wan {
        let mut writes = nic(&w.name, w.mtu, None);
        if let Some(address) = w.address {
            if !find(links, &w.name).is_some_and(|l| l.addresses.contains(&address)) {
                writes.push(LinkWrite::AddAddress {
                    link: w.name.clone(),
                    address,
                });
            }
        }
        if w.gateway.is_some() && w.gateway != gateway {
            writes.push(LinkWrite::SetDefaultRoute { gateway: w.gateway });
        }
        groups.push(Group {
            object: format!("wan {}", w.name),
            needs: Vec::new(),
            change: if writes.is_empty() {
                Change::Unchanged
            } else {
                Change::Changed
            },
            writes,
        });
    }

    // NICs no longer wanted in our bridge leave it (the NIC itself stays as it is).
    let ports: HashSet<&str> = plan.ports.iter().map(|p| p.name.as_str()).collect();
    for l in links {
        if l.master.as_deref() == Some(bridge.as_str()) && !ports.contains(l.name.as_str()) {
            groups.push(Group {
                object: format!("port {}", l.name),
                needs: Vec::new(),
                change: Change::Removed,
                writes: vec![LinkWrite::SetMaster {
                    link: l.name.clone(),
                    master: None,
                }],
            });
        }
    }

    // What we created and the plan no longer has: VLANs first, then bridges.
    let wanted: HashSet<&str> = std::iter::once(bridge.as_str())
        .chain(plan.vlans.iter().map(|v| v.name.as_str()))
        .collect();
    let mut stale: Vec<&LinkState> = links
        .iter()
        .filter(|l| l.owned() && !wanted.contains(l.name.as_str()))
        .collect();
    stale.sort_by_key(|l| l.kind.as_deref() != Some("vlan"));
    for l in stale {
        groups.push(Group {
            object: format!("{} {}", l.kind.as_deref().unwrap_or("link"), l.name),
            needs: Vec::new(),
            change: Change::Removed,
            writes: vec![LinkWrite::Delete {
                name: l.name.clone(),
            }],
        });
    }

    if conflicts.is_empty() {
        Ok(groups)
    } else {
        Err(ReconcileError {
            errors: conflicts,
            rollback: Vec::new(),
            undone: 0,
        })
    }
}

/// The writes that undo `w`, given the state before it.
fn inverse(w: &LinkWrite, before: &[LinkState], gateway: Option<Ipv4Addr>) -> Vec<LinkWrite> {
    let prev = |name: &str| find(before, name);
    match w {
        LinkWrite::CreateBridge { name } | LinkWrite::CreateVlan { name, .. } => {
            vec![LinkWrite::Delete { name: name.clone() }]
        }
        LinkWrite::Delete { name } => {
            // Only owned links are deleted: recreate them as they were.
            let Some(l) = prev(name) else {
                return Vec::new();
            };
            let mut out = vec![match &l.vlan {
                Some((parent, id)) => LinkWrite::CreateVlan {
                    name: name.clone(),
                    parent: parent.clone(),
                    id: *id,
                },
                None => LinkWrite::CreateBridge { name: name.clone() },
            }];
            out.extend(l.addresses.iter().map(|a| LinkWrite::AddAddress {
                link: name.clone(),
                address: *a,
            }));
            if l.up {
                out.push(LinkWrite::SetUp {
                    link: name.clone(),
                    up: true,
                });
            }
            out
        }
        LinkWrite::SetMaster { link, .. } => vec![LinkWrite::SetMaster {
            link: link.clone(),
            master: prev(link).and_then(|l| l.master.clone()),
        }],
        LinkWrite::SetMtu { link, .. } => prev(link)
            .map(|l| LinkWrite::SetMtu {
                link: link.clone(),
                mtu: l.mtu,
            })
            .into_iter()
            .collect(),
        LinkWrite::SetUp { link, up } => vec![LinkWrite::SetUp {
            link: link.clone(),
            up: !up,
        }],
        LinkWrite::AddAddress { link, address } => vec![LinkWrite::DelAddress {
            link: link.clone(),
            address: *address,
        }],
        LinkWrite::DelAddress { link, address } => vec![LinkWrite::AddAddress {
            link: link.clone(),
            address: *address,
        }],
        LinkWrite::SetDefaultRoute { .. } => vec![LinkWrite::SetDefaultRoute { gateway }],
        LinkWrite::AddRoute { route } => vec![LinkWrite::DelRoute { route: *route }],
        LinkWrite::DelRoute { route } => vec![LinkWrite::AddRoute { route: *route }],
    }
}

fn run(
    ops: &mut dyn LinkOps,
    before: &[LinkState],
    gateway: Option<Ipv4Addr>,
    groups: Vec<Group>,
) -> Result<LinkReport, ReconcileError> {
    let mut report = LinkReport::default();
    let mut errors = Vec::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut undo: Vec<LinkWrite> = Vec::new();
    for g in groups {
        if g.needs.iter().any(|n| failed.contains(n)) {
            failed.insert(g.object);
            continue;
        }
        for w in &g.writes {
            log::trace!("netlink: {w}");
            match ops.write(w) {
                Ok(()) => {
                    undo.extend(inverse(w, before, gateway).into_iter().rev());
                    report.writes.push(w.clone());
                }
                Err(e) => {
                    errors.push(e);
                    failed.insert(g.object.clone());
                    break;
                }
            }
        }
        if !failed.contains(&g.object) {
            report.objects.push((g.object, g.change));
        }
    }
    if errors.is_empty() {
        undo.reverse();
        report.undo = undo;
        return Ok(report);
    }
    let undone = report.writes.len();
    undo.reverse();
    let rollback = rollback(ops, &undo);
    Err(ReconcileError {
        errors,
        rollback,
        undone,
    })
}

/// Run `undo` (a [`LinkReport::undo`]); returns the steps that failed. A link deleted
/// by the undo takes its later state with it, so undo steps on links that no longer
/// exist are skipped, not errors.
pub fn rollback(ops: &mut dyn LinkOps, undo: &[LinkWrite]) -> Vec<LinkError> {
    let mut failed = Vec::new();
    let mut gone: HashSet<String> = HashSet::new();
    for w in undo {
        let target = match w {
            LinkWrite::SetMaster { link, .. }
            | LinkWrite::SetMtu { link, .. }
            | LinkWrite::SetUp { link, .. }
            | LinkWrite::AddAddress { link, .. }
            | LinkWrite::DelAddress { link, .. } => Some(link),
            _ => None,
        };
        if target.is_some_and(|t| gone.contains(t)) {
            continue;
        }
        log::trace!("netlink (rollback): {w}");
        match ops.write(w) {
            Ok(()) => {
                if let LinkWrite::Delete { name } = w {
                    gone.insert(name.clone());
                }
            }
            Err(e) => failed.push(e),
        }
    }
    failed
}
