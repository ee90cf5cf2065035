//! What this node announces: a pure function of the cluster as the
//! speaker's watches last saw it ([`World`]), the live speakers and this
//! node's interfaces ([`Local`]). The speaker's daemon recomputes it on
//! every change and hands the result to its raw sockets, Events and
//! metrics.
//!
//! - [`model`]: the domain types the speaker converts Kubernetes objects
//!   into at its watch edge.
//! - [`interfaces`]: which of the host's interfaces an L2Advertisement
//!   announces on.
//! - [`world`]: the converted objects and the log of what changed.
//! - [`compute`] / [`Engine`]: for each Service, its pool
//!   ([`service_pool`]), the advertisements covering it, the nodes they
//!   select, then one [`election::owner`] under the Service's first IP;
//!   the owner announces every IP on the union of those advertisements'
//!   interfaces.

pub mod interfaces;
pub mod model;
pub mod world;

use crate::election::{self, NoCandidate, NodeInfo};
use interfaces::{Excludes, HostInterface, LinkProblem};
use model::{AdInfo, ObjectKey, PoolInfo, ServiceInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
pub use world::{Changes, World};

/// What only this node knows.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// This node's name.
    pub me: &'a str,
    /// Nodes whose speaker is alive (membership).
    pub live: &'a BTreeSet<String>,
    /// This node's interfaces.
    pub links: &'a [HostInterface],
    /// `--exclude-interfaces`.
    pub excludes: &'a Excludes,
}

/// Why a Service's IPs are announced by nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unannounced {
    /// No one IPAddressPool holds every IP of the Service, and no
    /// `ferrolb.io/ip-allocated-from-pool` annotation names a pool (see
    /// [`service_pool`]).
    NoPool {
        /// The Service's IPs.
        ips: Vec<IpAddr>,
    },
    /// No L2Advertisement selects the Service's pool.
    NoAdvertisement {
        /// The pool, as [`service_pool`] found it.
        pool: String,
    },
    /// The election found no candidate.
    NoCandidate(NoCandidate),
}

impl Unannounced {
    /// A CamelCase reason for Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoPool { .. } => "NoIPAddressPool",
            Self::NoAdvertisement { .. } => "NoL2Advertisement",
            Self::NoCandidate(why) => why.reason(),
        }
    }
}

impl fmt::Display for Unannounced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPool { ips } => {
                let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                write!(
                    f,
                    "the service's IPs ({}) are in no IPAddressPool (no one pool holds them all) and no annotation ferrolb.io/ip-allocated-from-pool names a pool",
                    ips.join(", ")
                )
            }
            Self::NoAdvertisement { pool } => {
                write!(f, "no L2Advertisement selects pool {pool:?}")
            }
            Self::NoCandidate(why) => why.fmt(f),
        }
    }
}

/// The election's answer for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `node` announces every IP of the Service.
    Owner {
        /// The owner.
        node: String,
        /// When this node is the owner, the interfaces it announces on
        /// (empty: none usable, which is logged and reported); otherwise
        /// empty.
        interfaces: Vec<String>,
    },
    /// Nobody announces the Service's IPs.
    Unannounced(Unannounced),
}

/// The decision for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The Service's IPs, all owned by the same node.
    pub ips: Vec<IpAddr>,
    /// Who announces them.
    pub verdict: Verdict,
}

impl Decision {
    /// The owner's name, if any.
    pub fn owner(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Owner { node, .. } => Some(node),
            Verdict::Unannounced(_) => None,
        }
    }
}

/// The result of [`compute`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// (IP, interface) pairs this node answers for.
    pub announce: BTreeSet<(IpAddr, String)>,
    /// Every Service with IPs, and who announces them.
    pub services: BTreeMap<ObjectKey, Decision>,
    /// Every interface an advertisement selecting this node uses here:
    /// where raw sockets must be open, independent of which Services this
    /// node currently owns.
    pub interfaces: BTreeSet<String>,
    /// Interfaces named by advertisements selecting this node that cannot
    /// be used here.
    pub link_problems: BTreeSet<(ObjectKey, LinkProblem)>,
}

impl Desired {
    /// [`Desired::announce`] in the form the transport takes.
    pub fn announce_list(&self) -> Vec<(IpAddr, String)> {
        self.announce.iter().cloned().collect()
    }
}

/// Computes from scratch. The daemon keeps an [`Engine`], which returns
/// the same result while deciding only what changed.
pub fn compute(world: &World, local: &Local<'_>) -> Desired {
    let mut engine = Engine::default();
    engine.update(world, local);
    engine.desired
}

/// One Service whose decision changed ([`Delta::services`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChange {
    /// The Service.
    pub key: ObjectKey,
    /// Its decision before (`None`: it was not in the world).
    pub before: Option<Decision>,
    /// Its decision now (`None`: it left the world).
    pub after: Option<Decision>,
}

/// What one [`Engine::update`] changed in [`Engine::desired`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Services whose decision changed, by key.
    pub services: Vec<ServiceChange>,
    /// (IP, interface) pairs this node starts answering for.
    pub announced: Vec<(IpAddr, String)>,
    /// Pairs it stops answering for.
    pub withdrawn: Vec<(IpAddr, String)>,
    /// Whether [`Desired::interfaces`] changed.
    pub interfaces_changed: bool,
    /// Interface problems that were not there before.
    pub new_link_problems: Vec<(ObjectKey, LinkProblem)>,
    /// Whether every Service was decided again (first update, or a node,
    /// pool, advertisement, joining speaker or interface change).
    pub all: bool,
}

impl Delta {
    /// Whether the announced pairs changed.
    pub fn announce_changed(&self) -> bool {
        !self.announced.is_empty() || !self.withdrawn.is_empty()
    }
}

/// The announce decision, kept up to date change by change.
///
/// Deciding one Service hashes every candidate node per IP: 10,000
/// Services on 100 nodes take hundreds of milliseconds from scratch
/// (`cargo bench -p ferrolb-core --bench announce_compute`). So the engine
/// reads the [`World`]'s change log and decides again only the Services
/// that changed (a Service, or one of its EndpointSlices); speakers
/// leaving the live set decide again only what they owned and what had no
/// candidate; a change to a node, pool or advertisement, a speaker joining
/// or a change to this node's interfaces decides every Service again. Pure: the result always equals
/// [`compute`]'s for the same inputs (a property test checks it).
#[derive(Debug, Default)]
pub struct Engine {
    /// (world id, last change seen).
    seen: Option<(u64, u64)>,
    /// What the previous update took from [`Local`].
    local: Option<LocalSeen>,
    /// The nodes as elections take them.
    nodes: Vec<NodeInfo>,
    /// Per pool, the advertisements selecting it and the nodes they select.
    plans: HashMap<String, PoolPlan>,
    desired: Desired,
    /// How many Services announce each pair (IPs can be shared).
    refs: HashMap<(IpAddr, String), u32>,
}

#[derive(Debug, PartialEq)]
struct LocalSeen {
    me: String,
    live: BTreeSet<String>,
    ad_links: AdLinks,
}

#[derive(Debug)]
struct PoolPlan {
    applying: Vec<ObjectKey>,
    selected: BTreeSet<String>,
}

impl Engine {
    /// The current decision.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Brings [`Engine::desired`] up to date with `world` and `local`, and
    /// says what changed.
    pub fn update(&mut self, world: &World, local: &Local<'_>) -> Delta {
        let mut delta = Delta::default();
        let (ad_links, interfaces, problems) = read_local(world, local);
        if interfaces != self.desired.interfaces {
            delta.interfaces_changed = true;
            self.desired.interfaces = interfaces;
        }
        delta.new_link_problems = problems
            .difference(&self.desired.link_problems)
            .cloned()
            .collect();
        self.desired.link_problems = problems;
        let same_world = self.seen.is_some_and(|(id, _)| id == world.id());
        let since = self.seen.map_or(0, |(_, seq)| seq);
        let local_same = self
            .local
            .as_ref()
            .is_some_and(|l| l.me == local.me && &l.live == local.live && l.ad_links == ad_links);
        // Speakers that died or left, when that is the only change on this
        // node's side (the failover path), change only the Services they
        // owned (the next candidate in hash order takes over; the owner of
        // every other Service still ranks first) and those without a
        // candidate (the reason may change).
        let departed: Option<Vec<String>> = self.local.as_ref().and_then(|l| {
            let only_departures =
                l.me == local.me && l.ad_links == ad_links && local.live.is_subset(&l.live);
            only_departures.then(|| l.live.difference(local.live).cloned().collect())
        });
        let mut extra: Vec<ObjectKey> = Vec::new();
        let changes = match (same_world, local_same, departed) {
            (true, true, _) => world.changes_since(since),
            (true, false, Some(departed)) => match world.changes_since(since) {
                Changes::All => Changes::All,
                changed => {
                    for n in &mut self.nodes {
                        if departed.contains(&n.name) {
                            n.live = false;
                        }
                    }
                    extra = self
                        .desired
                        .services
                        .iter()
                        .filter(|(_, d)| match &d.verdict {
                            Verdict::Owner { node, .. } => departed.contains(node),
                            Verdict::Unannounced(Unannounced::NoCandidate(_)) => true,
                            Verdict::Unannounced(_) => false,
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    changed
                }
            },
            _ => Changes::All,
        };
        self.seen = Some((world.id(), world.seq()));
        if !local_same {
            self.local = Some(LocalSeen {
                me: local.me.to_owned(),
                live: local.live.clone(),
                ad_links,
            });
        }
        match changes {
            Changes::None => {
                for key in &extra {
                    self.decide(world, local, key, &mut delta, false);
                }
            }
            Changes::Services(mut keys) => {
                keys.extend(extra.iter());
                for key in keys {
                    self.decide(world, local, key, &mut delta, false);
                }
            }
            Changes::All => {
                delta.all = true;
                self.plans.clear();
                self.nodes = world
                    .nodes()
                    .values()
                    .map(|n| NodeInfo {
                        name: n.name.clone(),
                        labels: n.labels.clone(),
                        live: local.live.contains(&n.name),
                        network_unavailable: n.network_unavailable,
                    })
                    .collect();
                let gone: Vec<ObjectKey> = self
                    .desired
                    .services
                    .keys()
                    .filter(|k| !world.services().contains_key(*k))
                    .cloned()
                    .collect();
                // Who "me" is may have changed too: the pairs are counted
                // again from every decision, and the delta is the
                // difference of the sets.
                let before = std::mem::take(&mut self.desired.announce);
                self.refs.clear();
                for key in gone.iter().chain(world.services().keys()) {
                    self.decide(world, local, key, &mut delta, true);
                }
                delta.announced = self.desired.announce.difference(&before).cloned().collect();
                delta.withdrawn = before.difference(&self.desired.announce).cloned().collect();
            }
        }
        delta
    }

    /// Decides `key` again and records the change, if any. `recount`: the
    /// pairs are being counted from scratch, so every decision holds its
    /// pairs whether or not it changed.
    fn decide(
        &mut self,
        world: &World,
        local: &Local<'_>,
        key: &ObjectKey,
        delta: &mut Delta,
        recount: bool,
    ) {
        let after = world.services().get(key).map(|svc| Decision {
            ips: svc.ips.clone(),
            verdict: self.verdict(world, local, svc),
        });
        if recount {
            for (ip, iface) in pairs(after.as_ref(), local.me) {
                self.hold(ip, iface, None);
            }
        }
        let before = self.desired.services.get(key);
        if before == after.as_ref() {
            return;
        }
        let before = match &after {
            Some(d) => self.desired.services.insert(key.clone(), d.clone()),
            None => self.desired.services.remove(key),
        };
        if !recount {
            for (ip, iface) in pairs(before.as_ref(), local.me) {
                self.release(ip, iface, delta);
            }
            for (ip, iface) in pairs(after.as_ref(), local.me) {
                self.hold(ip, iface, Some(&mut *delta));
            }
        }
        delta.services.push(ServiceChange {
            key: key.clone(),
            before,
            after,
        });
    }

    fn hold(&mut self, ip: IpAddr, iface: &str, delta: Option<&mut Delta>) {
        let pair = (ip, iface.to_owned());
        let n = self.refs.entry(pair.clone()).or_default();
        *n += 1;
        if *n == 1 {
            self.desired.announce.insert(pair.clone());
            if let Some(delta) = delta {
                delta.announced.push(pair);
            }
        }
    }

    fn release(&mut self, ip: IpAddr, iface: &str, delta: &mut Delta) {
        let pair = (ip, iface.to_owned());
        let Some(n) = self.refs.get_mut(&pair) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.refs.remove(&pair);
            self.desired.announce.remove(&pair);
            delta.withdrawn.push(pair);
        }
    }

    fn verdict(&mut self, world: &World, local: &Local<'_>, svc: &ServiceInfo) -> Verdict {
        // `ServiceInfo` always holds an IP; one built without any has
        // nothing to place in a pool or to announce.
        let Some(key) = election::service_key(&svc.ips) else {
            return Verdict::Unannounced(Unannounced::NoPool { ips: Vec::new() });
        };
        let Some(pool) = service_pool(world.pools(), svc) else {
            return Verdict::Unannounced(Unannounced::NoPool {
                ips: svc.ips.clone(),
            });
        };
        let plan = self
            .plans
            .entry(pool.to_owned())
            .or_insert_with(|| PoolPlan::new(world, pool));
        if plan.applying.is_empty() {
            return Verdict::Unannounced(Unannounced::NoAdvertisement {
                pool: pool.to_string(),
            });
        }
        let policy = model::traffic_policy(svc.local, world.slices_of(&svc.key));
        let node = match election::owner(key, &self.nodes, &plan.selected, &policy) {
            Ok(node) => node.to_owned(),
            Err(why) => return Verdict::Unannounced(Unannounced::NoCandidate(why)),
        };
        let interfaces = if node == local.me {
            let ad_links = self.local.as_ref().map(|l| &l.ad_links);
            let set: BTreeSet<&String> = plan
                .applying
                .iter()
                .filter_map(|k| ad_links.and_then(|l| l.get(k)).and_then(Option::as_ref))
                .flatten()
                .collect();
            set.into_iter().cloned().collect()
        } else {
            Vec::new()
        };
        Verdict::Owner { node, interfaces }
    }
}

impl PoolPlan {
    fn new(world: &World, pool: &str) -> Self {
        let labels = world.pools().get(pool).map(|p| &p.labels);
        let applying: Vec<(&ObjectKey, &AdInfo)> = world
            .ads()
            .iter()
            .filter(|(_, ad)| ad.selects_pool(pool, labels))
            .collect();
        let selected = world
            .nodes()
            .values()
            .filter(|n| applying.iter().any(|(_, ad)| ad.selects_node(&n.labels)))
            .map(|n| n.name.clone())
            .collect();
        Self {
            applying: applying.into_iter().map(|(k, _)| k.clone()).collect(),
            selected,
        }
    }
}

/// The (IP, interface) pairs `decision` makes `me` announce.
fn pairs<'a>(
    decision: Option<&'a Decision>,
    me: &'a str,
) -> impl Iterator<Item = (IpAddr, &'a str)> + 'a {
    decision
        .and_then(|d| match &d.verdict {
            Verdict::Owner { node, interfaces } if node == me => Some((d, interfaces)),
            _ => None,
        })
        .into_iter()
        .flat_map(|(d, ifaces)| {
            d.ips
                .iter()
                .flat_map(move |ip| ifaces.iter().map(move |i| (*ip, i.as_str())))
        })
}

/// Per advertisement, the interfaces it uses on this node (None: it does
/// not select this node).
type AdLinks = BTreeMap<ObjectKey, Option<Vec<String>>>;

/// Per advertisement, the interfaces it uses here; the interfaces to open
/// and the problems with them.
fn read_local(
    world: &World,
    local: &Local<'_>,
) -> (
    AdLinks,
    BTreeSet<String>,
    BTreeSet<(ObjectKey, LinkProblem)>,
) {
    let me_labels = world.nodes().get(local.me).map(|n| &n.labels);
    let mut interfaces = BTreeSet::new();
    let mut problems = BTreeSet::new();
    let mut ad_links = BTreeMap::new();
    for (key, ad) in world.ads() {
        let here = me_labels.is_some_and(|l| ad.selects_node(l));
        let chosen = here.then(|| {
            let sel = interfaces::select(local.links, &ad.interfaces, local.excludes);
            for p in sel.problems {
                problems.insert((key.clone(), p));
            }
            sel.names
        });
        if let Some(names) = &chosen {
            interfaces.extend(names.iter().cloned());
        }
        ad_links.insert(key.clone(), chosen);
    }
    (ad_links, interfaces, problems)
}

/// The pool of a Service, found from its IPs as MetalLB's speaker does
/// (`poolFor`), so that a missing or stale annotation does not silently
/// stop announcements:
///
/// 1. among the pools whose ranges hold **every** IP of the Service, the
///    one the `ferrolb.io/ip-allocated-from-pool` annotation names, if it
///    is among them, otherwise the first by name (pools cannot legitimately
///    overlap: the controller marks the later of two overlapping pools
///    invalid, so there is normally at most one);
/// 2. if no pool holds them all, the annotation's pool, whether or not it
///    exists: the controller will soon clear or move such IPs, and
///    announcing meanwhile is better than flapping while it does;
/// 3. otherwise `None`: the Service is unannounced with
///    [`Unannounced::NoPool`].
///
/// Cost: O(pools x ranges x IPs) per Service; pools have few ranges.
pub fn service_pool<'a>(
    pools: &'a BTreeMap<String, PoolInfo>,
    svc: &'a ServiceInfo,
) -> Option<&'a str> {
    let holds_all = |p: &PoolInfo| !svc.ips.is_empty() && svc.ips.iter().all(|ip| p.contains(*ip));
    let annotated = svc.pool.as_deref();
    if let Some(named) = annotated.filter(|a| pools.get(*a).is_some_and(holds_all)) {
        return Some(named);
    }
    pools
        .iter()
        .find(|(_, p)| holds_all(p))
        .map(|(name, _)| name.as_str())
        .or(annotated)
}

#[cfg(test)]
mod tests;
