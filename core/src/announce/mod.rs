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
//! - [`compute`] / [`compute_cached`]: for each Service, its pool
//!   ([`service_pool`]), the advertisements covering it, the nodes they
//!   select, then one [`election::owner`] under the Service's first IP;
//!   the owner announces every IP on the union of those advertisements'
//!   interfaces.

pub mod interfaces;
pub mod model;

use crate::election::{self, NoCandidate, NodeInfo, TrafficPolicy};
use interfaces::{Excludes, HostInterface, LinkProblem};
use model::{AdInfo, NodeFacts, ObjectKey, PoolInfo, ServiceInfo, SliceInfo};
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// The cluster objects the speaker watches, already converted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// LoadBalancer Services with ingress IPs.
    pub services: BTreeMap<ObjectKey, ServiceInfo>,
    /// EndpointSlices, by their own key.
    pub slices: BTreeMap<ObjectKey, SliceInfo>,
    /// Nodes, by name.
    pub nodes: BTreeMap<String, NodeFacts>,
    /// IPAddressPools of the speaker's namespace, by name.
    pub pools: BTreeMap<String, PoolInfo>,
    /// L2Advertisements of the speaker's namespace.
    pub ads: BTreeMap<ObjectKey, AdInfo>,
}

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

/// Computes from scratch. The daemon uses [`compute_cached`], which
/// returns the same result.
pub fn compute(world: &World, local: &Local<'_>) -> Desired {
    compute_cached(world, local, &mut Cache::default())
}

/// Verdicts of the previous computation, so a change to one Service or
/// its EndpointSlices re-elects that Service only. An election hashes
/// every candidate node per IP: 1,000 Services on 100 nodes take about
/// 34 ms to decide from scratch (`cargo bench -p ferrolb-core --bench announce_compute`),
/// and the speaker recomputes after every watched change.
#[derive(Debug, Default)]
pub struct Cache {
    globals: Option<Globals>,
    services: HashMap<ObjectKey, Cached>,
}

/// Everything a verdict depends on besides its Service and slices; when
/// any of it changes, every Service is decided again.
#[derive(Debug, PartialEq)]
struct Globals {
    me: String,
    nodes: BTreeMap<String, NodeFacts>,
    pools: BTreeMap<String, PoolInfo>,
    ads: BTreeMap<ObjectKey, AdInfo>,
    live: BTreeSet<String>,
    ad_links: BTreeMap<ObjectKey, Option<Vec<String>>>,
}

impl Globals {
    fn matches(
        &self,
        world: &World,
        local: &Local<'_>,
        ad_links: &BTreeMap<&ObjectKey, Option<Vec<String>>>,
    ) -> bool {
        self.me == local.me
            && self.nodes == world.nodes
            && self.pools == world.pools
            && self.ads == world.ads
            && &self.live == local.live
            && self
                .ad_links
                .iter()
                .eq(ad_links.iter().map(|(k, v)| (*k, v)))
    }
}

#[derive(Debug)]
struct Cached {
    svc: ServiceInfo,
    /// What the verdict took from the Service's EndpointSlices.
    policy: TrafficPolicy,
    verdict: Verdict,
}

/// What this node announces, and every Service's verdict; verdicts whose
/// inputs are unchanged since the previous call with the same `cache` are
/// reused (pure: the cache only saves work, the result equals
/// [`compute`]'s).
pub fn compute_cached(world: &World, local: &Local<'_>, cache: &mut Cache) -> Desired {
    let mut out = Desired::default();
    let me_labels = world.nodes.get(local.me).map(|n| &n.labels);
    // Per advertisement, the interfaces it uses on this node (None: it does
    // not select this node).
    let mut ad_links: BTreeMap<&ObjectKey, Option<Vec<String>>> = BTreeMap::new();
    for (key, ad) in &world.ads {
        let here = me_labels.is_some_and(|l| ad.selects_node(l));
        let chosen = here.then(|| {
            let sel = interfaces::select(local.links, &ad.interfaces, local.excludes);
            for p in sel.problems {
                out.link_problems.insert((key.clone(), p));
            }
            sel.names
        });
        if let Some(names) = &chosen {
            out.interfaces.extend(names.iter().cloned());
        }
        ad_links.insert(key, chosen);
    }
    if !cache
        .globals
        .as_ref()
        .is_some_and(|g| g.matches(world, local, &ad_links))
    {
        cache.services.clear();
        cache.globals = Some(Globals {
            me: local.me.to_owned(),
            nodes: world.nodes.clone(),
            pools: world.pools.clone(),
            ads: world.ads.clone(),
            live: local.live.clone(),
            ad_links: ad_links
                .iter()
                .map(|(k, v)| ((*k).clone(), v.clone()))
                .collect(),
        });
    }
    let nodes: Vec<NodeInfo> = world
        .nodes
        .values()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            labels: n.labels.clone(),
            live: local.live.contains(&n.name),
            network_unavailable: n.network_unavailable,
        })
        .collect();
    let mut slices: BTreeMap<&ObjectKey, Vec<&SliceInfo>> = BTreeMap::new();
    for s in world.slices.values() {
        if let Some(svc) = &s.service {
            slices.entry(svc).or_default().push(s);
        }
    }
    let mut next = HashMap::with_capacity(world.services.len());
    for (key, svc) in &world.services {
        let own: &[&SliceInfo] = slices.get(key).map_or(&[], Vec::as_slice);
        let policy = model::traffic_policy(svc.local, own.iter().copied());
        let entry = match cache.services.remove(key) {
            Some(c) if c.svc == *svc && c.policy == policy => c,
            _ => Cached {
                verdict: decide_service(world, local, svc, &nodes, &policy, &ad_links),
                svc: svc.clone(),
                policy,
            },
        };
        if let Verdict::Owner { node, interfaces } = &entry.verdict {
            if node == local.me {
                for ip in &svc.ips {
                    for i in interfaces {
                        out.announce.insert((*ip, i.clone()));
                    }
                }
            }
        }
        out.services.insert(
            key.clone(),
            Decision {
                ips: svc.ips.clone(),
                verdict: entry.verdict.clone(),
            },
        );
        next.insert(key.clone(), entry);
    }
    cache.services = next;
    out
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

fn decide_service(
    world: &World,
    local: &Local<'_>,
    svc: &ServiceInfo,
    nodes: &[NodeInfo],
    policy: &TrafficPolicy,
    ad_links: &BTreeMap<&ObjectKey, Option<Vec<String>>>,
) -> Verdict {
    // `ServiceInfo` always holds an IP; one built without any has nothing
    // to place in a pool or to announce.
    let Some(key) = election::service_key(&svc.ips) else {
        return Verdict::Unannounced(Unannounced::NoPool { ips: Vec::new() });
    };
    let Some(pool) = service_pool(&world.pools, svc) else {
        return Verdict::Unannounced(Unannounced::NoPool {
            ips: svc.ips.clone(),
        });
    };
    let pool_labels = world.pools.get(pool).map(|p| &p.labels);
    let applying: Vec<(&ObjectKey, &AdInfo)> = world
        .ads
        .iter()
        .filter(|(_, ad)| ad.selects_pool(pool, pool_labels))
        .collect();
    if applying.is_empty() {
        return Verdict::Unannounced(Unannounced::NoAdvertisement {
            pool: pool.to_string(),
        });
    }
    let selected: BTreeSet<String> = world
        .nodes
        .values()
        .filter(|n| applying.iter().any(|(_, ad)| ad.selects_node(&n.labels)))
        .map(|n| n.name.clone())
        .collect();
    let node = match election::owner(key, nodes, &selected, policy) {
        Ok(node) => node.to_owned(),
        Err(why) => return Verdict::Unannounced(Unannounced::NoCandidate(why)),
    };
    let interfaces = if node == local.me {
        let set: BTreeSet<&String> = applying
            .iter()
            .filter_map(|(k, _)| ad_links.get(k).and_then(Option::as_ref))
            .flatten()
            .collect();
        set.into_iter().cloned().collect()
    } else {
        Vec::new()
    };
    Verdict::Owner { node, interfaces }
}

#[cfg(test)]
mod tests;
