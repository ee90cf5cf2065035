//! [`World`]: the cluster objects the speaker watches, already converted,
//! and a log of what changed, so [`super::Engine`] decides again only
//! what a change can affect.
//!
//! Every change goes through a setter, which returns whether anything
//! changed: setting an object to what it already is costs one comparison
//! and wakes nobody (a Service annotation or a Node heartbeat that alters
//! no field the decision reads).
//!
//! The log records, per change, which Service, Node or L2Advertisement it
//! concerns, or that it was *global* (a pool: which pool holds a Service
//! depends on every pool's ranges).
//! It keeps at most [`LOG_MIN`] or twice the number of Services entries;
//! a reader that fell further behind decides everything again.

use super::model::{AdInfo, NodeFacts, ObjectKey, PoolInfo, ServiceInfo, SliceInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries the change log keeps at least.
pub const LOG_MIN: usize = 4096;

/// Each world gets its own id, so an engine fed two worlds (or a clone)
/// notices and decides everything again.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The cluster objects the speaker watches, already converted.
#[derive(Debug)]
pub struct World {
    id: u64,
    services: BTreeMap<ObjectKey, ServiceInfo>,
    slices: HashMap<ObjectKey, SliceInfo>,
    /// Service -> the keys of its EndpointSlices (usually one or two: a
    /// vector, not a set).
    slices_of: HashMap<ObjectKey, Vec<ObjectKey>>,
    nodes: BTreeMap<String, NodeFacts>,
    pools: BTreeMap<String, PoolInfo>,
    ads: BTreeMap<ObjectKey, AdInfo>,
    log: Log,
}

impl Default for World {
    fn default() -> Self {
        Self {
            id: next_id(),
            services: BTreeMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            ads: BTreeMap::new(),
            log: Log::default(),
        }
    }
}

/// A clone is a new world: an engine that saw the original decides the
/// clone from scratch.
impl Clone for World {
    fn clone(&self) -> Self {
        Self {
            id: next_id(),
            services: self.services.clone(),
            slices: self.slices.clone(),
            slices_of: self.slices_of.clone(),
            nodes: self.nodes.clone(),
            pools: self.pools.clone(),
            ads: self.ads.clone(),
            log: self.log.clone(),
        }
    }
}

/// Worlds are equal when they hold the same objects.
impl PartialEq for World {
    fn eq(&self, other: &Self) -> bool {
        self.services == other.services
            && self.slices == other.slices
            && self.nodes == other.nodes
            && self.pools == other.pools
            && self.ads == other.ads
    }
}

impl Eq for World {}

#[derive(Debug, Clone, Default)]
struct Log {
    /// The number of the last change.
    seq: u64,
    /// Changes after this one are all in `entries` or counted in `global`.
    kept_after: u64,
    /// The last global change (a pool).
    global: u64,
    /// (change number, what it concerned) in order.
    entries: VecDeque<(u64, Entry)>,
}

/// What one logged change concerned.
#[derive(Debug, Clone)]
enum Entry {
    /// A Service or one of its EndpointSlices.
    Service(ObjectKey),
    /// A node's labels or conditions, or the node came or went.
    Node(String),
    /// An L2Advertisement.
    Ad(ObjectKey),
}

/// What changed since a reader last looked ([`World::changes_since`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Changes<'a> {
    /// Nothing.
    None,
    /// Only these objects.
    Some(Changed<'a>),
    /// Anything (a pool changed, or the reader fell behind the log):
    /// decide every Service again.
    All,
}

/// The objects that changed ([`Changes::Some`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed<'a> {
    /// Services, or their EndpointSlices.
    pub services: BTreeSet<&'a ObjectKey>,
    /// Nodes whose labels or `NetworkUnavailable` changed, or that came or
    /// went.
    pub nodes: BTreeSet<&'a str>,
    /// L2Advertisements that changed, came or went.
    pub ads: BTreeSet<&'a ObjectKey>,
}

impl World {
    /// The number of the last change (0: none yet).
    pub fn seq(&self) -> u64 {
        self.log.seq
    }

    /// This world's identity (see [`Clone`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What changed after change number `seen` of this world.
    pub fn changes_since(&self, seen: u64) -> Changes<'_> {
        let log = &self.log;
        if seen >= log.seq {
            return Changes::None;
        }
        if seen < log.kept_after || log.global > seen {
            return Changes::All;
        }
        let first = log.entries.partition_point(|(n, _)| *n <= seen);
        let mut changed = Changed::default();
        for (_, entry) in log.entries.range(first..) {
            match entry {
                Entry::Service(k) => {
                    changed.services.insert(k);
                }
                Entry::Node(n) => {
                    changed.nodes.insert(n);
                }
                Entry::Ad(k) => {
                    changed.ads.insert(k);
                }
            }
        }
        Changes::Some(changed)
    }

    fn log(&mut self, entry: Entry) {
        self.log.seq += 1;
        self.log.entries.push_back((self.log.seq, entry));
        let cap = LOG_MIN.max(2 * self.services.len());
        while self.log.entries.len() > cap {
            if let Some((n, _)) = self.log.entries.pop_front() {
                self.log.kept_after = n;
            }
        }
    }

    fn touch(&mut self, service: &ObjectKey) {
        self.log(Entry::Service(service.clone()));
    }

    fn touch_all(&mut self) {
        self.log.seq += 1;
        self.log.global = self.log.seq;
    }

    /// LoadBalancer Services with ingress IPs.
    pub fn services(&self) -> &BTreeMap<ObjectKey, ServiceInfo> {
        &self.services
    }

    /// The EndpointSlices of the Service `key`.
    pub fn slices_of<'a>(
        &'a self,
        key: &ObjectKey,
    ) -> impl Iterator<Item = &'a SliceInfo> + Clone + 'a {
        self.slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
    }

    /// Every EndpointSlice, by its own key.
    pub fn slices(&self) -> &HashMap<ObjectKey, SliceInfo> {
        &self.slices
    }

    /// Nodes, by name.
    pub fn nodes(&self) -> &BTreeMap<String, NodeFacts> {
        &self.nodes
    }

    /// IPAddressPools of the speaker's namespace, by name.
    pub fn pools(&self) -> &BTreeMap<String, PoolInfo> {
        &self.pools
    }

    /// L2Advertisements of the speaker's namespace.
    pub fn ads(&self) -> &BTreeMap<ObjectKey, AdInfo> {
        &self.ads
    }

    /// Adds or replaces a Service; false if it was already so.
    pub fn set_service(&mut self, info: ServiceInfo) -> bool {
        if self.services.get(&info.key) == Some(&info) {
            return false;
        }
        let key = info.key.clone();
        self.services.insert(key.clone(), info);
        self.touch(&key);
        true
    }

    /// Changes the Service `key` in place with `f`; false if there is no
    /// such Service or `f` changed nothing.
    pub fn edit_service(&mut self, key: &ObjectKey, f: impl FnOnce(&mut ServiceInfo)) -> bool {
        let Some(mut info) = self.services.get(key).cloned() else {
            return false;
        };
        f(&mut info);
        self.set_service(info)
    }

    /// Removes a Service; false if there was none.
    pub fn remove_service(&mut self, key: &ObjectKey) -> bool {
        if self.services.remove(key).is_none() {
            return false;
        }
        self.touch(key);
        true
    }

    /// Adds or replaces the EndpointSlice `key`; false if it was already so.
    pub fn set_slice(&mut self, key: ObjectKey, info: SliceInfo) -> bool {
        if self.slices.get(&key) == Some(&info) {
            return false;
        }
        let new_service = info.service.clone();
        if let Some(old) = self.slices.insert(key.clone(), info) {
            self.unlink(&key, old.service.as_ref());
        }
        if let Some(svc) = new_service {
            let of = self.slices_of.entry(svc.clone()).or_default();
            if !of.contains(&key) {
                of.push(key);
            }
            self.touch(&svc);
        }
        true
    }

    /// Changes the EndpointSlice `key` in place with `f`; false if there is
    /// no such slice or `f` changed nothing.
    pub fn edit_slice(&mut self, key: &ObjectKey, f: impl FnOnce(&mut SliceInfo)) -> bool {
        let Some(mut info) = self.slices.get(key).cloned() else {
            return false;
        };
        f(&mut info);
        self.set_slice(key.clone(), info)
    }

    /// Removes the EndpointSlice `key`; false if there was none.
    pub fn remove_slice(&mut self, key: &ObjectKey) -> bool {
        let Some(old) = self.slices.remove(key) else {
            return false;
        };
        self.unlink(key, old.service.as_ref());
        true
    }

    fn unlink(&mut self, slice: &ObjectKey, service: Option<&ObjectKey>) {
        let Some(svc) = service else { return };
        if let Some(set) = self.slices_of.get_mut(svc) {
            set.retain(|k| k != slice);
            if set.is_empty() {
                self.slices_of.remove(svc);
            }
        }
        self.touch(svc);
    }

    /// Adds or replaces a Node; false if it was already so. Only a change
    /// to what an election reads (labels, `NetworkUnavailable`) is logged
    /// as a change of the node.
    pub fn set_node(&mut self, facts: NodeFacts) -> bool {
        let decisive = match self.nodes.get(&facts.name) {
            Some(old) if *old == facts => return false,
            Some(old) => {
                old.labels != facts.labels || old.network_unavailable != facts.network_unavailable
            }
            None => true,
        };
        let name = facts.name.clone();
        self.nodes.insert(facts.name.clone(), facts);
        if decisive {
            self.log(Entry::Node(name));
        } else {
            // Readiness and addresses feed liveness, not the decision:
            // numbered, so readers see the world moved, with nothing to
            // decide again.
            self.log.seq += 1;
        }
        true
    }

    /// Changes the Node `name` in place with `f`; false if there is no such
    /// Node or `f` changed nothing.
    pub fn edit_node(&mut self, name: &str, f: impl FnOnce(&mut NodeFacts)) -> bool {
        let Some(mut facts) = self.nodes.get(name).cloned() else {
            return false;
        };
        f(&mut facts);
        self.set_node(facts)
    }

    /// Removes a Node; false if there was none.
    pub fn remove_node(&mut self, name: &str) -> bool {
        if self.nodes.remove(name).is_none() {
            return false;
        }
        self.log(Entry::Node(name.to_owned()));
        true
    }

    /// Adds or replaces a pool; false if it was already so.
    pub fn set_pool(&mut self, info: PoolInfo) -> bool {
        if self.pools.get(&info.name) == Some(&info) {
            return false;
        }
        self.pools.insert(info.name.clone(), info);
        self.touch_all();
        true
    }

    /// Removes a pool; false if there was none.
    pub fn remove_pool(&mut self, name: &str) -> bool {
        if self.pools.remove(name).is_none() {
            return false;
        }
        self.touch_all();
        true
    }

    /// Adds or replaces an advertisement; false if it was already so.
    pub fn set_ad(&mut self, info: AdInfo) -> bool {
        if self.ads.get(&info.key) == Some(&info) {
            return false;
        }
        let key = info.key.clone();
        self.ads.insert(info.key.clone(), info);
        self.log(Entry::Ad(key));
        true
    }

    /// Changes the advertisement `key` in place with `f`; false if there is
    /// no such advertisement or `f` changed nothing.
    pub fn edit_ad(&mut self, key: &ObjectKey, f: impl FnOnce(&mut AdInfo)) -> bool {
        let Some(mut info) = self.ads.get(key).cloned() else {
            return false;
        };
        f(&mut info);
        self.set_ad(info)
    }

    /// Removes an advertisement; false if there was none.
    pub fn remove_ad(&mut self, key: &ObjectKey) -> bool {
        if self.ads.remove(key).is_none() {
            return false;
        }
        self.log(Entry::Ad(key.clone()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, last: u8) -> ServiceInfo {
        ServiceInfo {
            key: ObjectKey::new("default", name),
            ips: vec![std::net::IpAddr::from([192, 0, 2, last])],
            pool: None,
            local: false,
            uid: None,
            ..Default::default()
        }
    }

    fn keys<'a>(c: Changes<'a>) -> Vec<&'a str> {
        match c {
            Changes::Some(c) if c.nodes.is_empty() && c.ads.is_empty() => {
                c.services.into_iter().map(|k| &*k.name).collect()
            }
            other => panic!("expected Services only, got {other:?}"),
        }
    }

    #[test]
    fn setting_what_is_already_there_changes_nothing() {
        let mut w = World::default();
        assert!(w.set_service(svc("a", 1)));
        let seen = w.seq();
        assert!(!w.set_service(svc("a", 1)));
        assert_eq!(w.seq(), seen);
        assert_eq!(w.changes_since(seen), Changes::None);
        assert!(!w.remove_service(&ObjectKey::new("default", "b")));
    }

    #[test]
    fn a_reader_sees_only_the_services_changed_since_it_looked() {
        let mut w = World::default();
        w.set_service(svc("a", 1));
        w.set_service(svc("b", 2));
        let seen = w.seq();
        w.set_service(svc("b", 3));
        w.set_slice(
            ObjectKey::new("default", "c-x"),
            SliceInfo {
                service: Some(ObjectKey::new("default", "c")),
                ..SliceInfo::default()
            },
        );
        assert_eq!(keys(w.changes_since(seen)), ["b", "c"]);
        assert_eq!(keys(w.changes_since(0)), ["a", "b", "c"]);
    }

    #[test]
    fn a_slice_that_moves_between_services_touches_both() {
        let mut w = World::default();
        let slice = |svc: &str| SliceInfo {
            service: Some(ObjectKey::new("default", svc)),
            ready: 1,
            ..SliceInfo::default()
        };
        let key = ObjectKey::new("default", "s");
        w.set_slice(key.clone(), slice("a"));
        let seen = w.seq();
        w.set_slice(key.clone(), slice("b"));
        assert_eq!(keys(w.changes_since(seen)), ["a", "b"]);
        let a = ObjectKey::new("default", "a");
        let b = ObjectKey::new("default", "b");
        assert_eq!(w.slices_of(&a).count(), 0);
        assert_eq!(w.slices_of(&b).count(), 1);
        let seen = w.seq();
        assert!(w.remove_slice(&key));
        assert_eq!(keys(w.changes_since(seen)), ["b"]);
        assert_eq!(w.slices_of(&b).count(), 0);
    }

    #[test]
    fn a_node_heartbeat_is_no_decision_change_but_a_label_is() {
        let mut w = World::default();
        let node = NodeFacts {
            name: "n".into(),
            ready: true,
            ..NodeFacts::default()
        };
        w.set_node(node.clone());
        let seen = w.seq();
        assert!(w.set_node(NodeFacts {
            ready: false,
            ..node.clone()
        }));
        assert_eq!(w.changes_since(seen), Changes::Some(Changed::default()));
        let mut labelled = node;
        labelled.labels.insert("zone".into(), "a".into());
        assert!(w.set_node(labelled));
        let Changes::Some(c) = w.changes_since(seen) else {
            panic!("a node change is logged by name");
        };
        assert_eq!(c.nodes, ["n"].into());
        assert!(w.remove_node("n"));
        assert!(w.set_ad(AdInfo {
            key: ObjectKey::new("ferrolb-system", "l2"),
            ..AdInfo::default()
        }));
        let Changes::Some(c) = w.changes_since(seen) else {
            panic!("node and advertisement changes are logged by name");
        };
        assert_eq!(c.nodes, ["n"].into());
        assert_eq!(c.ads.len(), 1);
        assert!(c.services.is_empty());
        // A pool decides which pool holds each Service: everything.
        assert!(w.set_pool(PoolInfo {
            name: "p".into(),
            ..PoolInfo::default()
        }));
        assert_eq!(w.changes_since(seen), Changes::All);
    }

    #[test]
    fn a_reader_too_far_behind_decides_everything() {
        let mut w = World::default();
        w.set_service(svc("a", 1));
        let seen = w.seq();
        for i in 0..=LOG_MIN {
            w.set_service(svc("b", (i % 200) as u8));
        }
        assert_eq!(w.changes_since(seen), Changes::All);
        assert!(matches!(w.changes_since(w.seq() - 1), Changes::Some(_)));
    }

    #[test]
    fn clones_are_new_worlds() {
        let w = World::default();
        let c = w.clone();
        assert_ne!(w.id(), c.id());
        assert_eq!(w, c);
    }
}
