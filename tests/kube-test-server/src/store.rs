//! The object store: one global resourceVersion counter (as etcd's revision),
//! objects per resource in key order, a bounded event history for watches
//! that resume from a version, and the broadcast that fans events out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::{ApiError, Result};
use crate::meta::metadata_mut;
use crate::resources::{GroupResource, Registry};
use crate::services::ServiceAllocator;

/// `(namespace, name)`; namespace is "" for cluster-scoped objects. Ordered
/// as etcd orders `/registry/<resource>/<namespace>/<name>` keys.
pub type ObjKey = (String, String);

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED.
    Added,
    /// MODIFIED.
    Modified,
    /// DELETED.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history and broadcast to watchers.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Which resource changed.
    pub gr: GroupResource,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (the last state for DELETED).
    pub object: Arc<Value>,
    /// The object before the change, for MODIFIED (selector transitions).
    pub old: Option<Arc<Value>>,
}

/// Store configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many events the history keeps before older versions expire.
    pub history_limit: usize,
    /// Broadcast buffer per watcher; a watcher that falls further behind is
    /// closed and resumes from its last version.
    pub broadcast_capacity: usize,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

/// Everything behind the store lock.
#[derive(Debug)]
pub struct Inner {
    rv: u64,
    /// Served resources (built-ins plus CRDs).
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    compacted: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
    /// ClusterIP and NodePort allocations.
    pub services: ServiceAllocator,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<Arc<Value>>,
    /// The list's resourceVersion.
    pub rv: u64,
    /// Continue token when more items remain.
    pub continue_token: Option<String>,
    /// Items left after this page.
    pub remaining: usize,
}

/// What a new watch starts with.
#[derive(Debug)]
pub struct WatchStart {
    /// Events to send first (history replay or synthetic ADDED).
    pub initial: Vec<Arc<WatchEvent>>,
    /// Live events after `rv`.
    pub rx: broadcast::Receiver<Arc<WatchEvent>>,
    /// The store version when the watch started.
    pub rv: u64,
}

impl Store {
    /// An empty store with the built-in resources registered.
    pub fn new(config: &StoreConfig, services: ServiceAllocator) -> Self {
        let (events, _) = broadcast::channel(config.broadcast_capacity.max(16));
        Store {
            inner: Mutex::new(Inner {
                rv: 0,
                registry: Registry::default(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_limit: config.history_limit.max(1),
                compacted: 0,
                events,
                services,
            }),
        }
    }

    /// Locks the store. Handlers hold it only for in-memory work.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps behind (every
        // mutation is a single insert/remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key_of(obj: &Value) -> ObjKey {
    (
        crate::meta::meta_str(obj, "namespace").to_string(),
        crate::meta::meta_str(obj, "name").to_string(),
    )
}

/// Parses a resourceVersion string.
pub fn parse_rv(s: &str) -> Result<u64> {
    s.parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {s:?}")))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{}/{}\u{0}", key.0, key.1),
    };
    let raw = serde_json::to_vec(&token).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, ObjKey)> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = t.start.strip_suffix('\u{0}').ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((t.rv, (ns.to_string(), name.to_string())))
}

impl Inner {
    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource (in one namespace when `ns` is given), in key order.
    pub fn iter<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        let map = self.objects.get(gr);
        let range: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match (map, ns) {
            (None, _) => Box::new(std::iter::empty()),
            (Some(m), None) => Box::new(m.iter()),
            (Some(m), Some(ns)) => Box::new(
                m.range((ns.to_string(), String::new())..)
                    .take_while(move |(k, _)| k.0 == ns),
            ),
        };
        range
    }

    /// Whether any namespaced object of any resource lives in `ns`.
    pub fn namespace_is_empty(&self, ns: &str) -> bool {
        self.registry
            .all()
            .filter(|d| d.namespaced)
            .all(|d| self.iter(&d.store_gr(), Some(ns)).next().is_none())
    }

    fn record(
        &mut self,
        gr: &GroupResource,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            gr: gr.clone(),
            kind,
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn stamp(&mut self, obj: &mut Value) -> u64 {
        let rv = self.next_rv();
        metadata_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
        rv
    }

    /// Stores a new object under a fresh resourceVersion (ADDED).
    pub fn insert(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        self.stamp(&mut obj);
        let obj = Arc::new(obj);
        self.objects
            .entry(gr.clone())
            .or_default()
            .insert(key_of(&obj), obj.clone());
        self.record(gr, EventType::Added, obj.clone(), None);
        obj
    }

    /// Replaces an existing object under a fresh resourceVersion (MODIFIED).
    pub fn replace(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        self.stamp(&mut obj);
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key_of(&obj), obj.clone());
        self.record(gr, EventType::Modified, obj.clone(), old);
        obj
    }

    /// Removes an object; the DELETED event carries the deletion's version.
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(gr)?
            .remove(&(ns.to_string(), name.to_string()))?;
        let mut last = (*old).clone();
        self.stamp(&mut last);
        let last = Arc::new(last);
        self.record(gr, EventType::Deleted, last.clone(), None);
        Some(last)
    }

    /// Drops every object of a resource without events (CRD removal, after
    /// its objects were deleted one by one).
    pub fn forget_resource(&mut self, gr: &GroupResource) {
        self.objects.remove(gr);
    }

    /// Forgets the whole event history, as an etcd compaction does: watches
    /// from any older version get 410 Expired.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// A page of a list. `limit` 0 means everything.
    pub fn list(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        filter: &dyn Fn(&Value) -> bool,
        limit: usize,
        continue_token: Option<&str>,
    ) -> Result<ListPage> {
        let (rv, after) = match continue_token {
            Some(t) => {
                let (rv, key) = decode_continue(t)?;
                if rv < self.compacted {
                    return Err(ApiError::Expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    ));
                }
                (rv, Some(key))
            }
            None => (self.rv, None),
        };
        let mut items = Vec::new();
        let mut remaining = 0;
        let mut last_key = None;
        for (key, obj) in self.iter(gr, ns) {
            if after.as_ref().is_some_and(|a| key <= a) || !filter(obj) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            last_key = Some(key.clone());
            items.push(obj.clone());
        }
        let continue_token = match (remaining, last_key) {
            (r, Some(k)) if r > 0 => Some(encode_continue(rv, &k)),
            _ => None,
        };
        Ok(ListPage {
            items,
            rv,
            continue_token,
            remaining,
        })
    }

    /// Starts a watch. `from` None starts with synthetic ADDED events for
    /// every current object; Some(rv) replays history after `rv`, or fails
    /// with 410 Expired when that part of the history is gone.
    pub fn watch(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart> {
        let rx = self.events.subscribe();
        let initial = match from {
            None => self
                .iter(gr, ns)
                .map(|(_, obj)| {
                    Arc::new(WatchEvent {
                        rv: self.rv,
                        gr: gr.clone(),
                        kind: EventType::Added,
                        object: obj.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(rv) if rv < self.compacted => {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted + 1
                )));
            }
            Some(rv) if rv > self.rv => {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {rv}, current: {}",
                    self.rv
                )));
            }
            Some(rv) => {
                let start = self.history.partition_point(|e| e.rv <= rv);
                self.history
                    .range(start..)
                    .filter(|e| e.gr == *gr)
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            initial,
            rx,
            rv: self.rv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceAllocator;

    fn store(history: usize) -> Store {
        Store::new(
            &StoreConfig {
                history_limit: history,
                broadcast_capacity: 64,
            },
            ServiceAllocator::default(),
        )
    }

    fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn every_write_takes_the_next_global_resource_version() {
        let s = store(100);
        let mut g = s.lock();
        let a = g.insert(&GroupResource::new("", "configmaps"), cm("a", "x"));
        let b = g.insert(&GroupResource::new("", "secrets"), cm("a", "y"));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        let gone = g
            .remove(&GroupResource::new("", "configmaps"), "a", "x")
            .unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn lists_page_in_key_order_with_continue_tokens() {
        let s = store(100);
        let mut g = s.lock();
        let gr = GroupResource::new("", "configmaps");
        for (ns, n) in [("b", "1"), ("a", "2"), ("a", "1")] {
            g.insert(&gr, cm(ns, n));
        }
        let p1 = g.list(&gr, None, &|_| true, 2, None).unwrap();
        let names: Vec<_> = p1.items.iter().map(|o| key_of(o)).collect();
        assert_eq!(
            names,
            vec![("a".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert_eq!(p1.remaining, 1);
        let p2 = g
            .list(&gr, None, &|_| true, 2, p1.continue_token.as_deref())
            .unwrap();
        assert_eq!(p2.items.len(), 1);
        assert!(p2.continue_token.is_none());
        assert_eq!(p2.rv, p1.rv);
    }

    #[test]
    fn watching_from_a_compacted_version_is_expired() {
        let s = store(2);
        let mut g = s.lock();
        let gr = GroupResource::new("", "configmaps");
        for n in ["1", "2", "3", "4"] {
            g.insert(&gr, cm("a", n));
        }
        assert!(matches!(
            g.watch(&gr, None, Some(1)),
            Err(ApiError::Expired(_))
        ));
        let w = g.watch(&gr, None, Some(2)).unwrap();
        assert_eq!(
            w.initial.iter().map(|e| e.rv).collect::<Vec<_>>(),
            vec![3, 4]
        );
        g.compact();
        assert!(matches!(
            g.watch(&gr, None, Some(3)),
            Err(ApiError::Expired(_))
        ));
        assert!(g.watch(&gr, None, Some(4)).unwrap().initial.is_empty());
    }
}
