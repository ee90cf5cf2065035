//! The speaker's small domain types: what the announce decision needs of
//! Services, EndpointSlices, Nodes, IPAddressPools and L2Advertisements.
//! The speaker converts the Kubernetes objects into these at its watch
//! edge (`ferrolb_speaker::daemon::convert`), so nothing here sees
//! `k8s_openapi`.

use crate::election::TrafficPolicy;
use crate::range::AddressRange;
use crate::selector::{LabelSelector, LabelSource};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// `namespace/name` of a namespaced object (cluster-scoped: empty
/// namespace). Shared strings: the world keeps a key in several places
/// (the object, its index entries, the change log, the decision), and a
/// copy is two reference counts, not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl Default for ObjectKey {
    fn default() -> Self {
        Self::new("", "")
    }
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A LoadBalancer Service with at least one ingress IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its key.
    pub key: ObjectKey,
    /// `status.loadBalancer.ingress[].ip`, in order.
    pub ips: Vec<IpAddr>,
    /// The pool named by `ferrolb.io/ip-allocated-from-pool`. Only a hint:
    /// the pool whose addresses hold the IPs wins (see
    /// [`super::service_pool`]), since `kubectl replace`, a GitOps tool or
    /// a migration can remove the annotation or leave it naming the wrong
    /// pool.
    pub pool: Option<String>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// `metadata.uid`, for Event references (`kubectl describe` selects
    /// Events by it).
    pub uid: Option<String>,
    /// `metadata.labels`, for the `serviceSelectors` of L2Advertisements.
    pub labels: ServiceLabels,
    /// It carries an allow-shared-ip annotation (any spelling): it may
    /// share its IPs with other Services, so no advertisement with
    /// `serviceSelectors` may announce it ([`Unannounced::SharedWithServiceSelectors`](super::Unannounced::SharedWithServiceSelectors)).
    pub allows_sharing: bool,
    /// It carries the `ferrolb.io/rebalance` annotation: with sticky
    /// ownership its IP may move when that evens the load (rule 6 of
    /// `docs/speaker-ownership.md`).
    pub rebalance: bool,
}

/// A Service's labels, compact and shared: the sorted `(key, value)` pairs
/// in one reference-counted slice, nothing at all for a Service without
/// labels. The world keeps one per Service and clones it on every edit, so
/// a clone is a reference count, and matching is a binary search.
///
/// ```
/// use ferrolb_core::announce::model::ServiceLabels;
/// use ferrolb_core::selector::LabelSource;
///
/// let labels = ServiceLabels::new([("tier", "web"), ("app", "shop")]);
/// assert_eq!(labels.label("app"), Some("shop"));
/// assert_eq!(labels.label("zone"), None);
/// assert!(ServiceLabels::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceLabels(Option<Arc<[Label]>>);

/// One label of [`ServiceLabels`]: key and value.
type Label = (Box<str>, Box<str>);

impl ServiceLabels {
    /// Labels from `(key, value)` pairs, in any order; of two pairs with
    /// one key, the first is kept (the API never sends both).
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(k, v)| (Box::from(k.as_ref()), Box::from(v.as_ref())))
            .collect();
        if v.is_empty() {
            return Self(None);
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, first| later.0 == first.0);
        Self(Some(v.into()))
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The labels, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|pairs| pairs.iter().map(|(k, v)| (&**k, &**v)))
    }
}

impl LabelSource for ServiceLabels {
    fn label(&self, key: &str) -> Option<&str> {
        let pairs = self.0.as_deref()?;
        pairs
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*pairs[i].1)
    }
}

/// The endpoints of one EndpointSlice that kube-proxy would send to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service it belongs to.
    pub service: Option<ObjectKey>,
    /// Ready endpoints on any node, including those without `nodeName`.
    pub ready: usize,
    /// Nodes holding at least one ready endpoint, sorted, each once
    /// ([`SliceInfo::nodes`] builds it so): a vector of shared names, as
    /// 10,000 slices of a few nodes each are kept.
    pub ready_nodes: Vec<Arc<str>>,
    /// Endpoints that are terminating but still serving (`ready: false,
    /// serving: true, terminating: true`): what kube-proxy falls back to
    /// when a Service has no ready endpoint.
    pub terminating: usize,
    /// Nodes holding at least one such endpoint, built like `ready_nodes`.
    pub terminating_nodes: Vec<Arc<str>>,
}

impl SliceInfo {
    /// `ready_nodes` from any list of names: sorted, each once.
    pub fn nodes<S: Into<Arc<str>>>(names: impl IntoIterator<Item = S>) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = names.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A Node's name, labels and the conditions the speaker reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `Ready` is `True`.
    pub ready: bool,
    /// `NetworkUnavailable` is `True`.
    pub network_unavailable: bool,
    /// The first `InternalIP` address: where its speaker gossips.
    pub internal_ip: Option<IpAddr>,
}

/// An IPAddressPool's identity, labels (for `ipAddressPoolSelectors`) and
/// addresses (to find the pool holding a Service's IPs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The entries of `spec.addresses` that parse, in order. Entries that
    /// do not parse are skipped: the controller reports them on the pool's
    /// `Valid` condition, and the rest of the pool still holds the IPs it
    /// handed out before the bad entry appeared.
    pub ranges: Vec<AddressRange>,
}

impl PoolInfo {
    /// A pool from its name, labels and `spec.addresses`, read by
    /// [`AddressRange::parse`], the controller's own parser.
    ///
    /// ```
    /// use ferrolb_core::announce::model::PoolInfo;
    ///
    /// let pool = PoolInfo::new("a", Default::default(), &["192.0.2.0/28", "192.0.2.300"]);
    /// assert_eq!(pool.ranges.len(), 1, "the bad entry is skipped");
    /// assert!(pool.contains("192.0.2.15".parse().unwrap()));
    /// ```
    pub fn new<S: AsRef<str>>(
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        addresses: &[S],
    ) -> Self {
        Self {
            name: name.into(),
            labels,
            ranges: addresses
                .iter()
                .filter_map(|a| AddressRange::parse(a.as_ref()).ok())
                .collect(),
        }
    }

    /// Whether one of the pool's ranges holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
}

/// An L2Advertisement's selection rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdInfo {
    /// Its key, for logs and Events.
    pub key: ObjectKey,
    /// `ipAddressPools`.
    pub pools: Vec<String>,
    /// `ipAddressPoolSelectors`. An invalid one (unknown operator, `In`
    /// or `NotIn` without values, ...) matches nothing, as in the
    /// controller, which reports it on the advertisement; a typo never
    /// widens a selection ([`LabelSelector::valid_or_nothing`]).
    pub pool_selectors: Vec<LabelSelector>,
    /// `nodeSelectors`, read the same way.
    pub node_selectors: Vec<LabelSelector>,
    /// `interfaces`.
    pub interfaces: Vec<String>,
    /// `metadata.uid`, for Event references.
    pub uid: Option<String>,
    /// `serviceSelectors`, read like the pool selectors: empty applies to
    /// every Service, an invalid one matches none.
    pub service_selectors: Vec<LabelSelector>,
    /// `preferredNodeSelectors`.
    pub preferences: Vec<Preference>,
}

/// One `preferredNodeSelectors` entry: nodes matching `selector` score
/// `weight`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Preference {
    /// 1 to 100 (the CRD and the controller reject anything else; the
    /// watch edge drops such an entry).
    pub weight: u32,
    /// The preferred nodes. Invalid: matches none, as everywhere.
    pub selector: LabelSelector,
}

impl AdInfo {
    /// Whether it announces `pool`: named, or matched by a selector, or
    /// every pool when it has neither.
    pub fn selects_pool(&self, pool: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.pools.is_empty() && self.pool_selectors.is_empty() {
            return true;
        }
        self.pools.iter().any(|p| p == pool)
            || labels.is_some_and(|l| self.pool_selectors.iter().any(|s| s.matches(l)))
    }

    /// Whether it lets `node` announce: every node without selectors,
    /// otherwise a node matching any selector.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(labels))
    }

    /// Whether it applies to a Service with these labels: every Service
    /// without `serviceSelectors`, otherwise one matching any selector.
    pub fn selects_service(&self, labels: &ServiceLabels) -> bool {
        self.service_selectors.is_empty()
            || self.service_selectors.iter().any(|s| s.matches(labels))
    }

    /// What a node with these labels scores from this advertisement: the
    /// sum of the weights of the preferences it matches, and 0 for a node
    /// the advertisement does not select (its preferences rank only its
    /// own nodes, as in MetalLB).
    pub fn score(&self, labels: &BTreeMap<String, String>) -> u64 {
        if self.preferences.is_empty() || !self.selects_node(labels) {
            return 0;
        }
        self.preferences
            .iter()
            .filter(|p| p.selector.matches(labels))
            .map(|p| u64::from(p.weight))
            .sum()
    }

    /// Whether the advertisement can make two Services of one pool differ
    /// in candidates or ranking: it has `serviceSelectors` or preferences.
    pub fn shapes(&self) -> bool {
        !self.service_selectors.is_empty() || !self.preferences.is_empty()
    }
}

/// The endpoint facts of a Service, summed over its slices, as the
/// election wants them, by kube-proxy's rule: ready endpoints; when there
/// is none, terminating endpoints that still serve (a rolling update whose
/// old Pod drains before the new one is ready keeps its IP announced).
///
/// With `Local`, eligible nodes holding a ready endpoint are preferred over
/// those whose endpoints only drain: the IP moves to a node with a ready
/// Pod as soon as there is one, rather than staying on (or moving onto) a
/// node whose Pod is leaving. MetalLB counts a serving endpoint like a
/// ready one.
pub fn traffic_policy<'a>(
    local: bool,
    slices: impl IntoIterator<Item = &'a SliceInfo> + Clone,
) -> TrafficPolicy {
    // Node names are collected only where the policy needs them.
    if local {
        let collect = |of: fn(&SliceInfo) -> &Vec<Arc<str>>| -> BTreeSet<String> {
            slices
                .clone()
                .into_iter()
                .flat_map(|s| of(s).iter().map(|n| n.to_string()))
                .collect()
        };
        TrafficPolicy::Local {
            ready: collect(|s| &s.ready_nodes),
            draining: collect(|s| &s.terminating_nodes),
        }
    } else {
        TrafficPolicy::Cluster {
            has_endpoint: slices.into_iter().any(|s| s.ready > 0 || s.terminating > 0),
        }
    }
}
