//! Watch events -> allocator -> the writes the status task must make.
//!
//! The [`Index`] is the controller's memory: the objects it watches (its
//! cache), and, once seeded, the [`Allocator`]. Watches feed it with
//! `apply`/`delete`/`reset` per kind; a relist is a `reset` with the
//! complete list, so objects deleted while the watch was down are deleted
//! here too. It performs no I/O: decisions come out as [`Update`]s for the
//! one status writer, plus the numbers for metrics, from [`Index::flush`].
//!
//! Before it is [`seeded`](Index::seed) (caches not synced yet, or this
//! replica is the standby) it only keeps the cache. Seeding rebuilds every
//! assignment from the Services' `status.loadBalancer.ingress`, already
//! assigned Services first, and only then assigns IPs to the others, so a
//! restart or a leader change never moves or duplicates an IP.
//!
//! Writes are level-based: the index compares what it wants with what the
//! cached object shows, and remembers what it has asked for and not yet
//! seen come back (`in_flight`), so a stale watch event does not cause a
//! second identical write and an object edited by someone else is fixed.

mod outcome;
mod pools;
pub mod service;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_crds::{IPAddressPool, IPAddressPoolStatus, L2Advertisement, L2AdvertisementStatus};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use ferrolb_core::allocator::{self, Allocator, Assignment, PoolCounts, ServiceKey};
use service::{Observed, View};

/// What the index is configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--lb-class`: handle only Services of this class; `None` handles
    /// Services without a class.
    pub lb_class: Option<String>,
}

/// What the index hands the status task, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// State: written (retried), and handed back to
    /// [`Index::write_failed`] if that fails for good.
    Write(Write),
    /// Publish an Event. Not state: published once, beside the writes.
    Event(Event),
}

/// A state write for the status task.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Bring a Service's annotation and `status.loadBalancer` to this.
    Service(ServiceWrite),
    /// Replace a pool's status.
    Pool {
        /// Pool name (in the pools' namespace).
        name: String,
        /// Pool namespace.
        namespace: String,
        /// The whole status.
        status: IPAddressPoolStatus,
    },
    /// Replace an advertisement's status.
    Advertisement {
        /// Name.
        name: String,
        /// Namespace.
        namespace: String,
        /// The whole status.
        status: L2AdvertisementStatus,
    },
}

/// The desired state of the parts of a Service we own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceWrite {
    /// Which Service.
    pub key: ServiceKey,
    /// `Some`: set the ingress IPs and the pool annotation; `None`: clear
    /// the ingress and remove the annotation.
    pub assignment: Option<Assignment>,
}

/// An Event about an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The object it is about.
    pub regarding: ObjectReference,
    /// Warning (else Normal).
    pub warning: bool,
    /// Reason, e.g. `IPAllocated`.
    pub reason: &'static str,
    /// The message.
    pub note: String,
}

/// What one [`Index::flush`] produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Writes, in order.
    pub updates: Vec<Update>,
    /// Reasons ([`ferrolb_core::allocator::Error::reason`]) of new allocation
    /// failures, for the failure counter.
    pub failures: Vec<&'static str>,
    /// Counts of every current pool (empty until seeded).
    pub pools: Vec<(String, PoolCounts)>,
    /// Pools that disappeared since the last flush.
    pub removed_pools: Vec<String>,
}

/// The controller's cache and allocation state. See the module docs.
#[derive(Debug, Default)]
pub struct Index {
    settings: Settings,
    services: BTreeMap<ServiceKey, Arc<View>>,
    /// Labels per namespace, shared by every request of the namespace.
    namespaces: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    pools: BTreeMap<String, Arc<IPAddressPool>>,
    ads: BTreeMap<String, Arc<L2Advertisement>>,
    /// Kinds whose first list has completed.
    synced: BTreeSet<&'static str>,
    /// `Some` once seeded (this replica leads).
    alloc: Option<Allocator>,
    in_flight: BTreeMap<ServiceKey, Option<Assignment>>,
    pool_in_flight: BTreeMap<String, IPAddressPoolStatus>,
    ad_in_flight: BTreeMap<String, L2AdvertisementStatus>,
    /// The last Event per Service, to emit on change only.
    /// (reason, hash of the message): a note per Service would cost more
    /// than the Service itself at 10,000 Services.
    last_event: BTreeMap<ServiceKey, (&'static str, u64)>,
    /// The last warning per advertisement, to emit on change only.
    ad_warnings: BTreeMap<String, (&'static str, String)>,
    /// Services that are ours and hold nothing: retried when IPs free up.
    pending: BTreeSet<ServiceKey>,
    retry_pending: bool,
    reported_pools: BTreeSet<String>,
    out: Vec<Update>,
    failures: Vec<&'static str>,
}

/// Kind names for [`Index::mark_synced`].
pub const KINDS: [&str; 4] = ["Service", "Namespace", "IPAddressPool", "L2Advertisement"];

impl Index {
    /// An empty, unseeded index.
    pub fn new(settings: Settings) -> Self {
        Index {
            settings,
            ..Default::default()
        }
    }

    /// Records that the first list of `kind` completed.
    pub fn mark_synced(&mut self, kind: &'static str) {
        self.synced.insert(kind);
    }

    /// Whether every kind has been listed once.
    pub fn is_synced(&self) -> bool {
        KINDS.iter().all(|k| self.synced.contains(k))
    }

    /// Whether the allocator is live (this replica leads and has seeded).
    pub fn is_seeded(&self) -> bool {
        self.alloc.is_some()
    }

    /// Number of Services in the cache.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// What the allocator holds for a Service (tests and diagnostics).
    pub fn assignment(&self, key: &ServiceKey) -> Option<&Assignment> {
        self.alloc.as_ref()?.assignment(key)
    }

    // ----- Services -----

    /// A Service was added or changed.
    pub fn apply_service(&mut self, svc: Service) {
        self.apply_view(View::of(&svc));
    }

    /// A Service was added or changed, as read at the watch edge.
    pub fn apply_view(&mut self, view: View) {
        // Nothing the controller reads changed: no allocator work, no
        // API call.
        if self
            .services
            .get(&view.key)
            .is_some_and(|held| **held == view)
        {
            return;
        }
        let key = view.key.clone();
        let terms_changed = self
            .services
            .get(&key)
            .is_some_and(|held| !held.same_sharing_terms(&view));
        self.services.insert(key.clone(), Arc::new(view));
        self.evaluate(&key);
        // A Service waiting to share an IP this one holds may fit now.
        if terms_changed && self.assignment(&key).is_some() {
            self.retry_pending = true;
        }
    }

    /// A Service was deleted: its IPs are free again.
    pub fn delete_service(&mut self, svc: &Service) {
        self.forget_service(&service::key(svc));
    }

    /// The Service `key` was deleted.
    pub fn delete_view(&mut self, key: &ServiceKey) {
        self.forget_service(key);
    }

    fn forget_service(&mut self, key: &ServiceKey) {
        self.services.remove(key);
        self.in_flight.remove(key);
        self.last_event.remove(key);
        self.pending.remove(key);
        if let Some(alloc) = self.alloc.as_mut() {
            if alloc.release(key).is_some() {
                self.retry_pending = true;
            }
        }
    }

    /// The complete list of Services after a (re)list.
    pub fn reset_services(&mut self, list: Vec<Service>) {
        self.reset_views(list.iter().map(View::of).collect());
    }

    /// The complete list of Services after a (re)list, as read at the
    /// watch edge.
    pub fn reset_views(&mut self, list: Vec<View>) {
        let fresh: BTreeMap<ServiceKey, Arc<View>> = list
            .into_iter()
            .map(|v| (v.key.clone(), Arc::new(v)))
            .collect();
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in &gone {
            self.forget_service(key);
        }
        self.services = fresh;
        if self.alloc.is_some() {
            self.evaluate_all();
        }
    }

    // ----- Namespaces -----

    /// A Namespace was added or changed; its labels feed namespaceSelectors.
    pub fn apply_namespace(&mut self, ns: &Namespace) {
        let name = ns.name_any();
        let labels = Arc::new(ns.labels().clone());
        if self.namespaces.get(&name) != Some(&labels) {
            self.namespaces.insert(name.clone(), labels);
            self.reevaluate_namespace(&name);
        }
    }

    /// A Namespace was deleted.
    pub fn delete_namespace(&mut self, ns: &Namespace) {
        self.namespaces.remove(&ns.name_any());
    }

    /// The complete list of Namespaces after a (re)list.
    pub fn reset_namespaces(&mut self, list: &[Namespace]) {
        let fresh: BTreeMap<String, Arc<BTreeMap<String, String>>> = list
            .iter()
            .map(|ns| (ns.name_any(), Arc::new(ns.labels().clone())))
            .collect();
        let changed: Vec<String> = fresh
            .iter()
            .filter(|(n, l)| self.namespaces.get(*n) != Some(*l))
            .map(|(n, _)| n.clone())
            .collect();
        self.namespaces = fresh;
        for name in changed {
            self.reevaluate_namespace(&name);
        }
    }

    fn reevaluate_namespace(&mut self, namespace: &str) {
        if self.alloc.is_none() {
            return;
        }
        let keys: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in keys {
            self.evaluate(&key);
        }
    }

    // ----- seeding -----

    /// Builds the allocator from the cache: pools, then every Service that
    /// already shows IPs (restored, never moved), then every other Service.
    /// Call once the caches are synced and this replica leads.
    pub fn seed(&mut self) {
        let mut alloc = Allocator::new();
        alloc.set_pools(crate::config::pools(self.pools.values().map(|p| &**p)));
        self.alloc = Some(alloc);
        self.in_flight.clear();
        self.pool_in_flight.clear();
        self.ad_in_flight.clear();
        self.last_event.clear();
        self.ad_warnings.clear();
        self.pending.clear();
        self.evaluate_all();
    }

    /// Forgets the allocator (leadership lost): another replica writes now,
    /// and this one re-seeds from what it wrote if it leads again.
    pub fn unseed(&mut self) {
        self.alloc = None;
        self.in_flight.clear();
        self.pool_in_flight.clear();
        self.ad_in_flight.clear();
        self.pending.clear();
        self.out.clear();
    }

    /// Restores every Service showing IPs, then evaluates every Service.
    /// The restore pass only reserves: nothing is allocated until every
    /// existing assignment is back, so no Service can take another's IP.
    fn evaluate_all(&mut self) {
        let Some(alloc) = self.alloc.as_mut() else {
            return;
        };
        for (key, svc) in &self.services {
            if alloc.assignment(key).is_some()
                || !svc.load_balancer
                || !svc.class_is(self.settings.lb_class.as_deref())
            {
                continue;
            }
            let observed = &svc.observed;
            if observed.ips.is_empty() {
                continue;
            }
            let ns_labels = self.namespaces.get(&key.namespace).unwrap_or(&EMPTY_LABELS);
            let request = service::request(svc, ns_labels)
                .or_else(|_| service::lenient_request(svc, ns_labels));
            if let Ok(request) = request {
                // A refusal is reported by `evaluate` below, which tries again.
                let _ = alloc.restore(key, &request, &observed.ips);
            }
        }
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            self.evaluate(&key);
        }
    }

    // ----- evaluation -----

    fn emit_service_event(
        &mut self,
        key: &ServiceKey,
        svc: &View,
        warning: bool,
        reason: &'static str,
        note: String,
    ) -> bool {
        let entry = (reason, note_hash(&note));
        if self.last_event.get(key) == Some(&entry) {
            return false;
        }
        self.out.push(Update::Event(Event {
            regarding: svc.reference(),
            warning,
            reason,
            note,
        }));
        self.last_event.insert(key.clone(), entry);
        true
    }

    /// Decides a Service's IPs and queues what must be written.
    fn evaluate(&mut self, key: &ServiceKey) {
        self.evaluate_with(key, true);
    }

    /// As [`Index::evaluate`]; `may_restore` is false right after an
    /// eviction, whose IPs the object still shows but must not get back.
    fn evaluate_with(&mut self, key: &ServiceKey, may_restore: bool) {
        if self.alloc.is_none() {
            return;
        }
        let Some(svc) = self.services.get(key).cloned() else {
            return;
        };
        let observed = svc.observed.clone();
        let class_ours = svc.class_is(self.settings.lb_class.as_deref());
        if !class_ours || !svc.load_balancer {
            self.pending.remove(key);
            let held = self.alloc.as_mut().and_then(|a| a.release(key)).is_some();
            self.retry_pending |= held;
            // Clear only what we wrote: a Service of another class is never
            // touched, and a former LoadBalancer only if it shows our work.
            if class_ours && (observed.pool.is_some() || (held && !observed.ips.is_empty())) {
                self.write(key, &observed, None);
            } else {
                self.in_flight.remove(key);
            }
            return;
        }
        let ns_labels = self.namespaces.get(&key.namespace).unwrap_or(&EMPTY_LABELS);
        let request = match service::request(&svc, ns_labels) {
            Ok(request) => request,
            Err(err) => {
                let err = allocator::Error::from(err);
                // The user must fix the Service; keep what it holds (or
                // showed) so a typo never costs it its address.
                if self
                    .alloc
                    .as_ref()
                    .and_then(|a| a.assignment(key))
                    .is_none()
                    && !observed.ips.is_empty()
                {
                    if let Ok(lenient) = service::lenient_request(&svc, ns_labels) {
                        if let Some(alloc) = self.alloc.as_mut() {
                            let _ = alloc.restore(key, &lenient, &observed.ips);
                        }
                    }
                }
                let note = service::failed_note(key, &err);
                if self.emit_service_event(key, &svc, true, service::REASON_ALLOCATION_FAILED, note)
                {
                    self.failures.push(err.reason());
                }
                return;
            }
        };
        let Some(alloc) = self.alloc.as_mut() else {
            return;
        };
        let mut cleared = None;
        if let Some(held) = alloc.assignment(key).cloned() {
            // What it holds must still be legal for the Service as it is now
            // (a namespace or Service relabel can take a pool away), exactly
            // as a restore would judge it; if not, the IP is cleared with an
            // Event before a new choice is made, as MetalLB does.
            if let Err(err) = alloc.restore(key, &request, &held.ips) {
                cleared = Some(err);
                self.retry_pending = true;
            }
        } else if may_restore
            && !observed.ips.is_empty()
            // While a write is on its way the object's IPs are stale: what we
            // decided stands.
            && !self.in_flight.contains_key(key)
        {
            if let Err(err) = alloc.restore(key, &request, &observed.ips) {
                cleared = Some(err);
            }
        }
        let before = alloc.assignment(key).cloned();
        let result = alloc.allocate(key, &request);
        if let Some(err) = cleared {
            let note = service::cleared_note(key, &err);
            self.emit_service_event(key, &svc, true, service::REASON_CLEAR_ASSIGNMENT, note);
        }
        let desired = self.settle(key, &svc, &request, before, result);
        self.write(key, &observed, desired);
    }

    /// Queues a write unless the object already shows `desired` or the
    /// same write is on its way.
    fn write(&mut self, key: &ServiceKey, observed: &Observed, desired: Option<Assignment>) {
        if observed.shows(desired.as_ref()) {
            self.in_flight.remove(key);
            return;
        }
        if self.in_flight.get(key) == Some(&desired) {
            return;
        }
        self.in_flight.insert(key.clone(), desired.clone());
        self.out.push(Update::Write(Write::Service(ServiceWrite {
            key: key.clone(),
            assignment: desired,
        })));
    }

    /// The status writer gave up on `write`: forget that it is on its way
    /// and decide again from the cached object.
    pub fn write_failed(&mut self, write: &Write) {
        match write {
            Write::Service(write) => {
                self.in_flight.remove(&write.key);
                self.evaluate(&write.key);
            }
            Write::Pool { name, .. } => {
                self.pool_in_flight.remove(name);
            }
            Write::Advertisement { name, .. } => {
                self.ad_in_flight.remove(name);
            }
        }
    }

    /// Retries pending Services if IPs were freed, recomputes pool and
    /// advertisement statuses, and hands out everything queued.
    pub fn flush(&mut self, now: Timestamp) -> Output {
        if self.alloc.is_some() && std::mem::take(&mut self.retry_pending) {
            let pending: Vec<ServiceKey> = self.pending.iter().cloned().collect();
            for key in pending {
                self.evaluate(&key);
            }
        }
        let mut output = Output::default();
        if self.alloc.is_some() {
            self.pool_and_ad_statuses(now);
            if let Some(alloc) = &self.alloc {
                output.pools = alloc
                    .pool_names()
                    .filter_map(|n| Some((n.to_string(), alloc.counts(n)?)))
                    .collect();
            }
        }
        let current: BTreeSet<String> = output.pools.iter().map(|(n, _)| n.clone()).collect();
        output.removed_pools = self.reported_pools.difference(&current).cloned().collect();
        self.reported_pools = current;
        output.updates = std::mem::take(&mut self.out);
        output.failures = std::mem::take(&mut self.failures);
        output
    }
}

/// A message's hash, to tell a repeat from a new message without keeping
/// the message.
fn note_hash(note: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut h);
    h.finish()
}

static EMPTY_LABELS: std::sync::LazyLock<Arc<BTreeMap<String, String>>> =
    std::sync::LazyLock::new(Arc::default);

#[cfg(test)]
mod tests;
