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
//!   ([`service_pool`]), the advertisements covering it (those selecting
//!   the pool whose `serviceSelectors` match it), the nodes they select
//!   and the scores their `preferredNodeSelectors` give, then one
//!   [`election::owner_preferring`] under the Service's first IP; the
//!   owner announces every IP on the union of those advertisements'
//!   interfaces.

pub mod interfaces;
pub mod model;
pub mod world;

use crate::election::{self, NoCandidate, NodeInfo, Rules, Scores, TrafficPolicy};
use crate::ownership::{self, Effective, Member, Message, Node};
use interfaces::{Excludes, HostInterface, LinkProblem};
use model::{AdInfo, ObjectKey, PoolInfo, ServiceInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
pub use world::{Changed, Changes, World};

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
    /// The speaker-wide switches of the election (`--ignore-exclude-lb`).
    pub rules: Rules,
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
    /// L2Advertisements select the pool, but each has `serviceSelectors`
    /// and none matches the Service's labels.
    NoMatchingAdvertisement {
        /// The pool.
        pool: String,
    },
    /// The Service carries an allow-shared-ip annotation and an
    /// L2Advertisement that applies to it has `serviceSelectors`. Services
    /// sharing an IP can match different advertisements and so elect
    /// different owners, and two nodes would answer for one IP; MetalLB
    /// refuses this combination the same way (its issue 3025).
    SharedWithServiceSelectors {
        /// The first such advertisement, by key.
        advertisement: ObjectKey,
    },
    /// The election found no candidate.
    NoCandidate(NoCandidate),
    /// Sticky ownership: this speaker has just started and listens for
    /// its peers' claims before deciding anything (at most
    /// `--ownership-listen`).
    Undecided,
    /// Sticky ownership, after every speaker restarted: the Service's
    /// ServiceL2Status record names `node`, whose speaker is not back yet;
    /// nobody announces it until it is, or the cold start ends.
    Reserved {
        /// The recorded owner.
        node: String,
    },
}

impl Unannounced {
    /// A CamelCase reason for Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoPool { .. } => "NoIPAddressPool",
            Self::NoAdvertisement { .. } => "NoL2Advertisement",
            Self::NoMatchingAdvertisement { .. } => "NoMatchingL2Advertisement",
            Self::SharedWithServiceSelectors { .. } => "SharedIPWithServiceSelectors",
            Self::NoCandidate(why) => why.reason(),
            Self::Undecided => "OwnerUndecided",
            Self::Reserved { .. } => "ReservedForRecordedOwner",
        }
    }

    /// Whether this is a passing state of sticky ownership
    /// ([`Unannounced::Undecided`], [`Unannounced::Reserved`]) rather
    /// than a fact about the Service or the cluster: not worth an Event,
    /// and no reason to delete the Service's record.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Undecided | Self::Reserved { .. })
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
            Self::NoMatchingAdvertisement { pool } => write!(
                f,
                "every L2Advertisement selecting pool {pool:?} has serviceSelectors and none matches the service's labels"
            ),
            Self::SharedWithServiceSelectors { advertisement } => write!(
                f,
                "the service has an allow-shared-ip annotation and L2Advertisement {advertisement}, which applies to it, has serviceSelectors: services sharing an IP could be announced from different nodes, so its IPs are not announced; remove the serviceSelectors or the annotation"
            ),
            Self::NoCandidate(why) => why.fmt(f),
            Self::Undecided => write!(
                f,
                "this speaker has just started and waits for its peers' ownership claims before deciding"
            ),
            Self::Reserved { node } => write!(
                f,
                "every speaker restarted and the service's ServiceL2Status record names node {node:?}, whose speaker is not back yet: the IP waits for it (at most --ownership-settle)"
            ),
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
    /// Whether every Service was decided again (the first update, a pool
    /// change, a new `me` or [`Rules`], or a world whose change log this
    /// engine fell behind).
    pub all: bool,
    /// Sticky ownership is still listening ([`Owners::ready`]): nothing
    /// was decided, the changes wait for the first decision, and
    /// [`Engine::desired`] is what it was.
    pub waiting: bool,
}

impl Delta {
    /// Whether the announced pairs changed.
    pub fn announce_changed(&self) -> bool {
        !self.announced.is_empty() || !self.withdrawn.is_empty()
    }
}

/// Sticky ownership as the engine consults it ([`Engine::update_owned`]):
/// the engine tells it each Service's candidates, asks it to decide, and
/// reads each owner. [`Polled`] implements it over an
/// [`ownership::Member`].
pub trait Owners {
    /// The candidates of `key` under the current view (`None`: it left
    /// the world or nobody may announce it).
    fn set_service(&mut self, key: &ObjectKey, service: Option<ownership::Service>);
    /// Decides with what was set; the Services whose owner changed since
    /// the last call.
    fn decide(&mut self) -> BTreeSet<ObjectKey>;
    /// Whether decisions are made yet (a started speaker listens first).
    fn ready(&self) -> bool;
    /// Who announces `key`.
    fn effective(&self, key: &ObjectKey) -> Effective<'_>;
}

/// An [`ownership::Member`] polled at `now`, what it sends going to
/// `send`: the [`Owners`] the speaker hands the engine.
pub struct Polled<'a> {
    /// The member.
    pub member: &'a mut Member<ObjectKey>,
    /// The time, as the member counts it.
    pub now: Duration,
    /// Where its messages go.
    pub send: &'a mut dyn FnMut(&Node, Message<ObjectKey>),
    /// When to poll the member again at the latest (set by
    /// [`Owners::decide`]).
    pub next: Option<Duration>,
}

impl fmt::Debug for Polled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Polled")
            .field("me", self.member.me())
            .field("now", &self.now)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Owners for Polled<'_> {
    fn set_service(&mut self, key: &ObjectKey, service: Option<ownership::Service>) {
        self.member.set_service(key, service);
    }

    fn decide(&mut self) -> BTreeSet<ObjectKey> {
        self.next = Some(self.member.poll(self.now, self.send));
        self.member.take_changed()
    }

    fn ready(&self) -> bool {
        self.member.phase() != ownership::Phase::Listening
    }

    fn effective(&self, key: &ObjectKey) -> Effective<'_> {
        self.member.effective(key)
    }
}

/// How [`Engine::verdict`] chooses the owner.
enum Pick<'o> {
    /// MetalLB's hash ([`election::owner_preferring`]).
    Hash,
    /// Sticky, first pass: tell the owners the candidates.
    Prepare(&'o mut dyn Owners),
    /// Sticky, second pass: read the owners' decision.
    Final(&'o dyn Owners),
}

/// The announce decision, kept up to date change by change.
///
/// Deciding one Service hashes every candidate node per IP: 10,000
/// Services on 100 nodes take hundreds of milliseconds from scratch
/// (`cargo bench -p ferrolb-core --bench announce_compute`). So the engine
/// reads the [`World`]'s change log and decides again only the Services
/// that changed (a Service, or one of its EndpointSlices) and those a
/// node, advertisement, membership or interface change can affect (see
/// `decide_scoped`: for a node, the Services it owns, those it now
/// outranks the owner of, the `Local` ones it holds a ready endpoint of,
/// and those without a candidate); only a pool
/// change decides every Service again. Pure: the result always equals
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
    /// Whether the last update was sticky ([`Engine::update_owned`]).
    sticky: bool,
    /// Sticky: Services changed while the owners listened, decided at the
    /// first decision (`waiting_all`: every Service).
    waiting: BTreeSet<ObjectKey>,
    waiting_all: bool,
    /// Sticky: the nodes by name and the candidate lists handed out, so
    /// Services with the same candidates share one list.
    names: HashMap<String, Node>,
    lists: HashSet<Arc<[Node]>>,
    no_scores: Arc<Scores>,
    /// Counts updates: what [`Candidates`] are valid for.
    epoch: u64,
}

#[derive(Debug, PartialEq)]
struct LocalSeen {
    me: String,
    rules: Rules,
    live: BTreeSet<String>,
    ad_links: AdLinks,
}

/// What the advertisements of one pool make of its Services.
#[derive(Debug)]
struct PoolPlan {
    /// The advertisements selecting the pool.
    applying: Vec<ObjectKey>,
    /// The nodes any of them selects: every Service's candidates when
    /// `shape` is `None`.
    selected: BTreeSet<String>,
    /// Set when an applying advertisement has `serviceSelectors` or
    /// `preferredNodeSelectors`: Services of the pool may then differ in
    /// advertisements, candidates and scores.
    shape: Option<Shape>,
    /// Sticky, unshaped: the candidates of its `Cluster` Services.
    cluster: Candidates,
}

/// Per set of applying advertisements that some Service matches (indices
/// into [`PoolPlan::applying`]), the nodes they select and their scores,
/// computed on first use: Services usually fall into a few such sets, so
/// each costs one pass over the nodes, not one per Service.
#[derive(Debug, Default)]
struct Shape {
    variants: HashMap<Vec<u32>, Variant>,
}

#[derive(Debug)]
struct Variant {
    selected: BTreeSet<String>,
    scores: Arc<Scores>,
    cluster: Candidates,
}

/// Sticky: the candidates every `Cluster` Service with an endpoint has
/// under one plan or variant, computed once per update (the update's
/// number, and the list or why there is none).
type Candidates = std::cell::RefCell<Option<(u64, Result<Arc<[Node]>, NoCandidate>)>>;

impl Engine {
    /// The current decision.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Brings [`Engine::desired`] up to date with `world` and `local`, and
    /// says what changed; owners by MetalLB's hash.
    pub fn update(&mut self, world: &World, local: &Local<'_>) -> Delta {
        self.update_with(world, local, None)
    }

    /// The same with sticky ownership: each Service's owner is what
    /// `owners` decides among the candidates the hash would choose from.
    /// Call it also when the owners' decision may have changed (a message
    /// or a timer of the [`ownership::Member`]) with nothing else new.
    pub fn update_owned(
        &mut self,
        world: &World,
        local: &Local<'_>,
        owners: &mut dyn Owners,
    ) -> Delta {
        self.update_with(world, local, Some(owners))
    }

    fn update_with(
        &mut self,
        world: &World,
        local: &Local<'_>,
        owners: Option<&mut dyn Owners>,
    ) -> Delta {
        let mut delta = Delta::default();
        self.epoch += 1;
        // Candidate lists and names only the interner still holds (their
        // Services left or changed) go, so the interner stays as large as
        // what is in use however endpoints churn.
        self.lists.retain(|l| Arc::strong_count(l) > 1);
        self.names.retain(|_, n| Arc::strong_count(n) > 1);
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
        let sticky = owners.is_some();
        let me_same = self.sticky == sticky
            && self
                .local
                .as_ref()
                .is_some_and(|l| l.me == local.me && l.rules == local.rules);
        if !me_same {
            self.waiting.clear();
            self.waiting_all = false;
        }
        self.sticky = sticky;
        let local_same = me_same
            && self
                .local
                .as_ref()
                .is_some_and(|l| &l.live == local.live && l.ad_links == ad_links);
        let changes = if same_world && me_same {
            world.changes_since(since)
        } else {
            Changes::All
        };
        self.seen = Some((world.id(), world.seq()));
        let before = if local_same {
            None
        } else {
            self.local.replace(LocalSeen {
                me: local.me.to_owned(),
                rules: local.rules,
                live: local.live.clone(),
                ad_links,
            })
        };
        let (all, mut keys) = match changes {
            Changes::All => {
                self.plans.clear();
                self.nodes = node_infos(world, local);
                self.names.clear();
                self.lists.clear();
                (true, Vec::new())
            }
            Changes::None if local_same => (false, Vec::new()),
            Changes::None => (
                false,
                self.scoped(world, local, Changed::default(), before, sticky),
            ),
            Changes::Some(changed) => (false, self.scoped(world, local, changed, before, sticky)),
        };
        let Some(owners) = owners else {
            if all {
                self.decide_all(world, local, &mut delta, Pick::Hash);
            } else {
                for key in &keys {
                    self.decide(world, local, key, &mut delta, false, Pick::Hash);
                }
                settle(&mut delta);
            }
            return delta;
        };
        // Sticky: candidates first, then one decision, then the verdicts
        // of what changed and of what the decision moved.
        if all {
            let every = world.services().keys().chain(self.desired.services.keys());
            keys = every
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
        }
        for key in &keys {
            self.prepare(world, local, key, owners);
        }
        let moved = owners.decide();
        if !owners.ready() {
            self.waiting.extend(keys);
            self.waiting_all |= all;
            delta.waiting = true;
            return delta;
        }
        if all || std::mem::take(&mut self.waiting_all) {
            self.waiting.clear();
            self.decide_all(world, local, &mut delta, Pick::Final(owners));
            return delta;
        }
        let mut keys: BTreeSet<ObjectKey> = keys.into_iter().collect();
        keys.append(&mut self.waiting);
        keys.extend(moved);
        for key in &keys {
            self.decide(world, local, key, &mut delta, false, Pick::Final(owners));
        }
        settle(&mut delta);
        delta
    }

    /// Sticky, first pass: hands `owners` the candidates of `key`.
    fn prepare(
        &mut self,
        world: &World,
        local: &Local<'_>,
        key: &ObjectKey,
        owners: &mut dyn Owners,
    ) {
        let Some(svc) = world.services().get(key) else {
            owners.set_service(key, None);
            return;
        };
        if let Verdict::Unannounced(why) = self.verdict(world, local, svc, Pick::Prepare(owners)) {
            if !why.is_transient() {
                owners.set_service(key, None);
            }
        }
    }

    /// Decides every Service again.
    fn decide_all(&mut self, world: &World, local: &Local<'_>, delta: &mut Delta, pick: Pick<'_>) {
        delta.all = true;
        let gone: Vec<ObjectKey> = self
            .desired
            .services
            .keys()
            .filter(|k| !world.services().contains_key(*k))
            .cloned()
            .collect();
        // Who "me" is may have changed too: the pairs are counted again
        // from every decision, and the delta is the difference of the sets.
        let before = std::mem::take(&mut self.desired.announce);
        self.refs.clear();
        let mut pick = pick;
        for key in gone.iter().chain(world.services().keys()) {
            self.decide(world, local, key, delta, true, pick.reborrow());
        }
        delta.announced = self.desired.announce.difference(&before).cloned().collect();
        delta.withdrawn = before.difference(&self.desired.announce).cloned().collect();
    }

    /// Decides again the Services `changed` names and those that the node,
    /// advertisement, membership and interface changes can affect.
    /// `before`: what the previous update took from [`Local`], when that
    /// changed (same `me`).
    ///
    /// A change to node N (its labels or conditions, its speaker joining
    /// or leaving, an advertisement starting or ceasing to select it) can
    /// only make N eligible or ineligible, so it changes the decision of a
    /// Service only when N owns it, when N could now outrank its owner in
    /// hash order (one hash per Service), when the Service is `Local` and
    /// N holds a ready endpoint of it (a ready node beats an owner whose
    /// Pod only drains, whatever the hash order), or when the Service had
    /// no candidate at all. An advertisement that starts or stops applying to
    /// a pool decides that pool's Services again; one whose interfaces on
    /// this node changed, the Services this node owns in the pools it
    /// applies to.
    ///
    /// In a pool whose advertisements have `serviceSelectors` or
    /// `preferredNodeSelectors` (a shaped pool), a change to node N can
    /// also change N's score or make it a candidate of some Services and
    /// not others; the rule stays the same, with "outrank" read as "has a
    /// higher score, or an equal score and a lower hash" under the
    /// Service's own advertisements (a node's score only depends on its
    /// labels and those advertisements, so only N's can have moved). Any
    /// change to an advertisement applying to a shaped pool decides that
    /// pool's Services again.
    ///
    /// With sticky ownership a node change can move any Service the node
    /// is a candidate of (claims and loads decide, not the hash), so every
    /// Service is prepared again: the owners decide what moves.
    ///
    /// Returns the Services to decide again.
    fn scoped(
        &mut self,
        world: &World,
        local: &Local<'_>,
        changed: Changed<'_>,
        before: Option<LocalSeen>,
        sticky: bool,
    ) -> Vec<ObjectKey> {
        // Nodes whose eligibility may have changed, and those of them
        // that may have become eligible.
        let mut touched: BTreeSet<&str> = changed.nodes.clone();
        let mut gained: BTreeSet<&str> = changed.nodes.clone();
        let mut relinked: BTreeSet<&ObjectKey> = BTreeSet::new();
        let now = self.local.as_ref();
        if let (Some(before), Some(now)) = (&before, now) {
            touched.extend(
                before
                    .live
                    .symmetric_difference(&now.live)
                    .map(String::as_str),
            );
            gained.extend(now.live.difference(&before.live).map(String::as_str));
            relinked.extend(
                before
                    .ad_links
                    .keys()
                    .chain(now.ad_links.keys())
                    .filter(|k| before.ad_links.get(*k) != now.ad_links.get(*k)),
            );
        }
        if !changed.nodes.is_empty() {
            self.nodes = node_infos(world, local);
        } else if before.as_ref().is_some_and(|b| &b.live != local.live) {
            for n in &mut self.nodes {
                n.live = local.live.contains(&n.name);
            }
        }
        let mut dirty_pools: BTreeSet<String> = BTreeSet::new();
        let mut selection: BTreeSet<String> = BTreeSet::new();
        let mut selection_gained: BTreeSet<String> = BTreeSet::new();
        if !changed.nodes.is_empty() || !changed.ads.is_empty() {
            for (pool, plan) in &mut self.plans {
                let new = PoolPlan::new(world, pool);
                let reshaped = (plan.shape.is_some() || new.shape.is_some())
                    && plan
                        .applying
                        .iter()
                        .chain(&new.applying)
                        .any(|k| changed.ads.contains(k));
                if new.applying != plan.applying || reshaped {
                    dirty_pools.insert(pool.clone());
                } else {
                    selection.extend(plan.selected.symmetric_difference(&new.selected).cloned());
                    selection_gained.extend(new.selected.difference(&plan.selected).cloned());
                }
                *plan = new;
            }
        }
        touched.extend(selection.iter().map(String::as_str));
        gained.extend(selection_gained.iter().map(String::as_str));

        let mut extra: Vec<ObjectKey> = Vec::new();
        if !touched.is_empty() || !dirty_pools.is_empty() || !relinked.is_empty() {
            let shaped = self.plans.values().any(|p| p.shape.is_some());
            let by_pool = !dirty_pools.is_empty() || !relinked.is_empty() || shaped;
            for (key, decision) in &self.desired.services {
                if changed.services.contains(key) {
                    continue;
                }
                let Some(svc) = world.services().get(key) else {
                    continue;
                };
                let pool = if by_pool {
                    service_pool(world.pools(), svc)
                } else {
                    None
                };
                let redo = sticky
                    || pool.is_some_and(|p| dirty_pools.contains(p))
                    || match &decision.verdict {
                        Verdict::Unannounced(Unannounced::NoCandidate(_)) => !touched.is_empty(),
                        Verdict::Unannounced(_) => false,
                        Verdict::Owner { node, .. } => {
                            let plan = pool.and_then(|p| self.plans.get(p));
                            let shaped = plan.filter(|p| p.shape.is_some());
                            touched.contains(node.as_str())
                                || election::service_key(&decision.ips).is_some_and(|ip| {
                                    gained.iter().any(|g| match shaped {
                                        None => election::outranks(g, node, ip),
                                        Some(plan) => {
                                            let score = |n: &str| plan.score(world, svc, n);
                                            let scores = Scores::from([
                                                (g.to_string(), score(g)),
                                                (node.clone(), score(node)),
                                            ]);
                                            election::outranks_preferring(g, node, ip, &scores)
                                        }
                                    })
                                })
                                || (node == local.me
                                    && plan.is_some_and(|plan| {
                                        plan.applying.iter().any(|a| relinked.contains(a))
                                    }))
                                // With `Local`, a node holding a ready
                                // endpoint beats an owner whose Pod only
                                // drains, whatever the hash order says.
                                || (svc.local
                                    && world.slices_of(key).any(|s| {
                                        s.ready_nodes.iter().any(|n| gained.contains(&**n))
                                    }))
                        }
                    };
                if redo {
                    extra.push(key.clone());
                }
            }
        }
        changed.services.into_iter().cloned().chain(extra).collect()
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
        pick: Pick<'_>,
    ) {
        let after = world.services().get(key).map(|svc| Decision {
            ips: svc.ips.clone(),
            verdict: self.verdict(world, local, svc, pick),
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

    fn verdict(
        &mut self,
        world: &World,
        local: &Local<'_>,
        svc: &ServiceInfo,
        pick: Pick<'_>,
    ) -> Verdict {
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
        // No key allocated per Service once the plan exists.
        if !self.plans.contains_key(pool) {
            self.plans
                .insert(pool.to_owned(), PoolPlan::new(world, pool));
        }
        let Some(plan) = self.plans.get_mut(pool) else {
            return Verdict::Unannounced(Unannounced::NoAdvertisement {
                pool: pool.to_string(),
            });
        };
        if plan.applying.is_empty() {
            return Verdict::Unannounced(Unannounced::NoAdvertisement {
                pool: pool.to_string(),
            });
        }
        // The advertisements covering this Service, and the nodes and
        // scores they give.
        // `None`: every applying advertisement (no allocation per Service
        // in the common, unshaped pool).
        let mut matching_keys: Option<Vec<&ObjectKey>> = None;
        let (selected, scores, cluster) = match &mut plan.shape {
            None => (&plan.selected, &self.no_scores, &plan.cluster),
            Some(shape) => {
                let matching: Vec<(u32, &AdInfo)> = plan
                    .applying
                    .iter()
                    .zip(0u32..)
                    .filter_map(|(k, i)| world.ads().get(k).map(|ad| (i, ad)))
                    .filter(|(_, ad)| ad.selects_service(&svc.labels))
                    .collect();
                if matching.is_empty() {
                    return Verdict::Unannounced(Unannounced::NoMatchingAdvertisement {
                        pool: pool.to_string(),
                    });
                }
                if svc.allows_sharing {
                    if let Some((_, ad)) = matching
                        .iter()
                        .find(|(_, ad)| !ad.service_selectors.is_empty())
                    {
                        return Verdict::Unannounced(Unannounced::SharedWithServiceSelectors {
                            advertisement: ad.key.clone(),
                        });
                    }
                }
                let ids: Vec<u32> = matching.iter().map(|(i, _)| *i).collect();
                let variant = shape
                    .variants
                    .entry(ids)
                    .or_insert_with(|| Variant::new(world, matching.iter().map(|&(_, ad)| ad)));
                matching_keys = Some(matching.iter().map(|&(_, ad)| &ad.key).collect());
                (&variant.selected, &variant.scores, &variant.cluster)
            }
        };
        let policy = model::traffic_policy(svc.local, world.slices_of(&svc.key));
        let rules = local.rules;
        // Sticky: the candidates, shared by every `Cluster` Service with
        // an endpoint under this plan or variant within one update.
        let mut candidates = || -> Result<Arc<[Node]>, NoCandidate> {
            let compute = |names: &mut HashMap<String, Node>, lists: &mut HashSet<Arc<[Node]>>| {
                election::candidates_with(&self.nodes, selected, &policy, rules)
                    .map(|found| intern(names, lists, &found))
            };
            if policy != (TrafficPolicy::Cluster { has_endpoint: true }) {
                return compute(&mut self.names, &mut self.lists);
            }
            let mut slot = cluster.borrow_mut();
            if let Some((epoch, found)) = slot.as_ref() {
                if *epoch == self.epoch {
                    return found.clone();
                }
            }
            let found = compute(&mut self.names, &mut self.lists);
            *slot = Some((self.epoch, found.clone()));
            found
        };
        let node = match pick {
            Pick::Hash => {
                match election::owner_preferring(key, &self.nodes, selected, &policy, scores, rules)
                {
                    Ok(node) => node.to_owned(),
                    Err(why) => return Verdict::Unannounced(Unannounced::NoCandidate(why)),
                }
            }
            Pick::Prepare(owners) => {
                let list = match candidates() {
                    Ok(list) => list,
                    Err(why) => return Verdict::Unannounced(Unannounced::NoCandidate(why)),
                };
                let service = ownership::Service::new(key, list)
                    .with_scores(Arc::clone(scores))
                    .with_rebalance(svc.rebalance);
                owners.set_service(&svc.key, Some(service));
                return Verdict::Unannounced(Unannounced::Undecided);
            }
            Pick::Final(owners) => {
                // The candidates decide whether anyone may announce it.
                if let Err(why) = candidates() {
                    return Verdict::Unannounced(Unannounced::NoCandidate(why));
                }
                match owners.effective(&svc.key) {
                    Effective::Owner(node) => node.to_string(),
                    Effective::Reserved(node) => {
                        return Verdict::Unannounced(Unannounced::Reserved {
                            node: node.to_string(),
                        })
                    }
                    // A Service the owners have not seen yet (it cannot
                    // happen once they decided with its candidates).
                    Effective::Nobody | Effective::Undecided => {
                        return Verdict::Unannounced(Unannounced::Undecided)
                    }
                }
            }
        };
        let interfaces = if node == local.me {
            let ad_links = self.local.as_ref().map(|l| &l.ad_links);
            match matching_keys {
                Some(keys) => interfaces_of(keys, ad_links),
                None => interfaces_of(&plan.applying, ad_links),
            }
        } else {
            Vec::new()
        };
        Verdict::Owner { node, interfaces }
    }
}

impl<'o> Pick<'o> {
    /// The same pick for one more call.
    fn reborrow(&mut self) -> Pick<'_> {
        match self {
            Pick::Hash => Pick::Hash,
            Pick::Prepare(o) => Pick::Prepare(&mut **o),
            Pick::Final(o) => Pick::Final(&**o),
        }
    }
}

/// The shared candidate list for `names` (sorted, as
/// [`election::candidates_with`] returns them).
fn intern(
    nodes: &mut HashMap<String, Node>,
    lists: &mut HashSet<Arc<[Node]>>,
    names: &[&str],
) -> Arc<[Node]> {
    let list: Vec<Node> = names
        .iter()
        .map(|n| {
            if let Some(node) = nodes.get(*n) {
                return Arc::clone(node);
            }
            let node: Node = Arc::from(*n);
            nodes.insert((*n).to_owned(), Arc::clone(&node));
            node
        })
        .collect();
    if let Some(shared) = lists.get(list.as_slice()) {
        return Arc::clone(shared);
    }
    let shared: Arc<[Node]> = list.into();
    lists.insert(Arc::clone(&shared));
    shared
}

/// The union, sorted, of the interfaces the advertisements `keys` use on
/// this node.
fn interfaces_of<'a>(
    keys: impl IntoIterator<Item = &'a ObjectKey>,
    ad_links: Option<&AdLinks>,
) -> Vec<String> {
    let set: BTreeSet<&String> = keys
        .into_iter()
        .filter_map(|k| ad_links.and_then(|l| l.get(k)).and_then(Option::as_ref))
        .flatten()
        .collect();
    set.into_iter().cloned().collect()
}

/// Nets out pairs that one update both withdrew and announced (a
/// Service that moved from interfaces (eth0, eth2) to (eth2) releases
/// both, then holds eth2 again; a shared IP handed from one Service to
/// another): each list keeps, once, the pairs whose state really changed.
fn settle(delta: &mut Delta) {
    if delta.announced.is_empty() || delta.withdrawn.is_empty() {
        return;
    }
    let mut net: HashMap<(IpAddr, String), i32> = HashMap::new();
    for pair in &delta.announced {
        *net.entry(pair.clone()).or_default() += 1;
    }
    for pair in &delta.withdrawn {
        *net.entry(pair.clone()).or_default() -= 1;
    }
    let mut keep = |list: &mut Vec<(IpAddr, String)>, sign: i32| {
        list.retain(|pair| match net.get_mut(pair) {
            Some(n) if n.signum() == sign => {
                *n = 0;
                true
            }
            _ => false,
        });
    };
    keep(&mut delta.announced, 1);
    keep(&mut delta.withdrawn, -1);
}

/// The nodes as elections take them.
fn node_infos(world: &World, local: &Local<'_>) -> Vec<NodeInfo> {
    world
        .nodes()
        .values()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            labels: n.labels.clone(),
            live: local.live.contains(&n.name),
            network_unavailable: n.network_unavailable,
        })
        .collect()
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
        let shape = applying
            .iter()
            .any(|(_, ad)| ad.shapes())
            .then(Shape::default);
        Self {
            applying: applying.into_iter().map(|(k, _)| k.clone()).collect(),
            selected,
            shape,
            cluster: Candidates::default(),
        }
    }

    /// What `node` scores for `svc`: the weights of the preferences it
    /// matches, over the applying advertisements that cover `svc`.
    fn score(&self, world: &World, svc: &ServiceInfo, node: &str) -> u64 {
        let Some(labels) = world.nodes().get(node).map(|n| &n.labels) else {
            return 0;
        };
        self.applying
            .iter()
            .filter_map(|k| world.ads().get(k))
            .filter(|ad| ad.selects_service(&svc.labels))
            .map(|ad| ad.score(labels))
            .sum()
    }
}

impl Variant {
    /// The nodes any of `ads` selects, and the scores of those that match
    /// a preference.
    fn new<'a>(world: &World, ads: impl Iterator<Item = &'a AdInfo> + Clone) -> Self {
        let mut selected = BTreeSet::new();
        let mut scores = Scores::new();
        for n in world.nodes().values() {
            if !ads.clone().any(|ad| ad.selects_node(&n.labels)) {
                continue;
            }
            selected.insert(n.name.clone());
            let score: u64 = ads.clone().map(|ad| ad.score(&n.labels)).sum();
            if score > 0 {
                scores.insert(n.name.clone(), score);
            }
        }
        Self {
            selected,
            scores: Arc::new(scores),
            cluster: Candidates::default(),
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
