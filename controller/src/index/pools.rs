//! The index's side for IPAddressPools and L2Advertisements: feeding the
//! allocator on pool edits (with evictions) and computing their statuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_crds::conditions::{self, TYPE_ADVERTISED, TYPE_POOLS_SELECTED, TYPE_VALID};
use ferrolb_crds::{IPAddressPool, IPAddressPoolStatus, L2Advertisement, L2AdvertisementStatus};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::{service, Event, Index, Update, Write};
use crate::config;

/// Whether a pool edit can change allocation (spec or labels changed);
/// our own status writes come back as edits that do not.
fn same_config(a: &IPAddressPool, b: &IPAddressPool) -> bool {
    a.spec == b.spec
        && a.metadata.labels == b.metadata.labels
        && a.metadata.creation_timestamp == b.metadata.creation_timestamp
}

impl Index {
    /// A pool was added or changed.
    pub fn apply_pool(&mut self, pool: IPAddressPool) {
        let name = pool.name_any();
        if self.pool_in_flight.get(&name) == pool.status.as_ref() {
            self.pool_in_flight.remove(&name);
        }
        let changed = self
            .pools
            .get(&name)
            .is_none_or(|old| !same_config(old, &pool));
        self.pools.insert(name, Arc::new(pool));
        if changed {
            self.reconfigure();
        }
    }

    /// A pool was deleted: its holders are evicted.
    pub fn delete_pool(&mut self, pool: &IPAddressPool) {
        let name = pool.name_any();
        self.pool_in_flight.remove(&name);
        if self.pools.remove(&name).is_some() {
            self.reconfigure();
        }
    }

    /// The complete list of pools after a (re)list.
    pub fn reset_pools(&mut self, list: Vec<IPAddressPool>) {
        let fresh: BTreeMap<String, Arc<IPAddressPool>> = list
            .into_iter()
            .map(|p| (p.name_any(), Arc::new(p)))
            .collect();
        let changed = fresh.len() != self.pools.len()
            || fresh
                .iter()
                .any(|(n, p)| self.pools.get(n).is_none_or(|old| !same_config(old, p)));
        self.pool_in_flight
            .retain(|n, s| fresh.get(n).is_some_and(|p| p.status.as_ref() != Some(s)));
        self.pools = fresh;
        if changed {
            self.reconfigure();
        }
    }

    /// An advertisement was added or changed.
    pub fn apply_advertisement(&mut self, ad: L2Advertisement) {
        let name = ad.name_any();
        if self.ad_in_flight.get(&name) == ad.status.as_ref() {
            self.ad_in_flight.remove(&name);
        }
        self.ads.insert(name, Arc::new(ad));
    }

    /// An advertisement was deleted.
    pub fn delete_advertisement(&mut self, ad: &L2Advertisement) {
        let name = ad.name_any();
        self.ads.remove(&name);
        self.ad_in_flight.remove(&name);
        self.ad_warnings.remove(&name);
    }

    /// The complete list of advertisements after a (re)list.
    pub fn reset_advertisements(&mut self, list: Vec<L2Advertisement>) {
        self.ads = list
            .into_iter()
            .map(|a| (a.name_any(), Arc::new(a)))
            .collect();
        let ads = &self.ads;
        self.ad_in_flight
            .retain(|n, s| ads.get(n).is_some_and(|a| a.status.as_ref() != Some(s)));
        self.ad_warnings.retain(|n, _| ads.contains_key(n));
    }

    /// Gives the allocator the current pools; Services whose IPs became
    /// illegal get a `ClearAssignment` Event and a new IP or none.
    fn reconfigure(&mut self) {
        let Some(alloc) = self.alloc.as_mut() else {
            return;
        };
        let evictions = alloc.set_pools(config::pools(self.pools.values().map(|p| &**p)));
        self.retry_pending = true;
        for eviction in evictions {
            let key = eviction.service;
            tracing::info!(
                service = %key,
                pool = %eviction.assignment.pool,
                reason = eviction.reason.reason(),
                "assignment no longer allowed by the pools"
            );
            if let Some(svc) = self.services.get(&key).cloned() {
                let note = service::cleared_note(&key, &eviction.reason);
                self.emit_service_event(&key, &svc, true, service::REASON_CLEAR_ASSIGNMENT, note);
                self.evaluate_with(&key, false);
            }
        }
    }

    /// Whether an L2Advertisement selects `pool`.
    pub(super) fn pool_advertised(&self, pool: &str) -> bool {
        let labels: BTreeMap<String, BTreeMap<String, String>> = self
            .pools
            .get(pool)
            .map(|p| (pool.to_owned(), p.labels().clone()))
            .into_iter()
            .collect();
        let now = Timestamp::UNIX_EPOCH;
        config::advertisements(self.ads.values().map(|a| &**a), &labels, now)
            .values()
            .any(|s| s.pools.iter().any(|p| p == pool))
    }

    /// Queues the pool and advertisement statuses that differ from what
    /// the objects show (or what is already on its way).
    pub(super) fn pool_and_ad_statuses(&mut self, now: Timestamp) {
        let Some(alloc) = &self.alloc else {
            return;
        };
        let labels: BTreeMap<String, BTreeMap<String, String>> = self
            .pools
            .iter()
            .map(|(n, p)| (n.clone(), p.labels().clone()))
            .collect();
        let selections = config::advertisements(self.ads.values().map(|a| &**a), &labels, now);
        let mut advertisers: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (ad, selection) in &selections {
            for pool in &selection.pools {
                advertisers
                    .entry(pool.as_str())
                    .or_default()
                    .insert(ad.clone());
            }
        }
        let none = BTreeSet::new();
        let mut updates = Vec::new();
        for (name, pool) in &self.pools {
            let (Some(validity), Some(counts)) = (alloc.validity(name), alloc.counts(name)) else {
                continue;
            };
            let base = self.pool_in_flight.get(name).or(pool.status.as_ref());
            let status = config::pool_status(
                base,
                counts,
                validity,
                advertisers.get(name.as_str()).unwrap_or(&none),
                pool.metadata.generation,
                now,
            );
            // A pool that stops being advertised gets one Warning, on the
            // pool: its Services are not warned one by one.
            let not_advertised = |s: Option<&IPAddressPoolStatus>| {
                s.and_then(|s| conditions::find(&s.conditions, TYPE_ADVERTISED))
                    .is_some_and(|c| c.status == conditions::STATUS_FALSE)
            };
            if not_advertised(Some(&status)) && !not_advertised(base) {
                if let Some(c) = conditions::find(&status.conditions, TYPE_ADVERTISED) {
                    updates.push(Update::Event(Event {
                        regarding: pool.object_ref(&()),
                        warning: true,
                        reason: conditions::REASON_NOT_ADVERTISED,
                        note: c.message.clone(),
                    }));
                }
            }
            if Some(&status) == pool.status.as_ref() {
                self.pool_in_flight.remove(name);
            } else if self.pool_in_flight.get(name) != Some(&status) {
                self.pool_in_flight.insert(name.clone(), status.clone());
                updates.push(Update::Write(Write::Pool {
                    name: name.clone(),
                    namespace: pool.namespace().unwrap_or_default(),
                    status,
                }));
            }
        }
        for (name, selection) in selections {
            let Some(ad) = self.ads.get(&name).cloned() else {
                continue;
            };
            match selection.warning {
                Some(warning) if self.ad_warnings.get(&name) != Some(&warning) => {
                    updates.push(Update::Event(Event {
                        regarding: ad.object_ref(&()),
                        warning: true,
                        reason: warning.0,
                        note: warning.1.clone(),
                    }));
                    self.ad_warnings.insert(name.clone(), warning);
                }
                Some(_) => {}
                None => {
                    self.ad_warnings.remove(&name);
                }
            }
            let mut status: L2AdvertisementStatus = self
                .ad_in_flight
                .get(&name)
                .or(ad.status.as_ref())
                .cloned()
                .unwrap_or_default();
            for condition in selection.status.conditions {
                if condition.type_ == TYPE_VALID || condition.type_ == TYPE_POOLS_SELECTED {
                    conditions::set(&mut status.conditions, condition);
                }
            }
            if Some(&status) == ad.status.as_ref() {
                self.ad_in_flight.remove(&name);
            } else if self.ad_in_flight.get(&name) != Some(&status) {
                self.ad_in_flight.insert(name.clone(), status.clone());
                updates.push(Update::Write(Write::Advertisement {
                    name: name.clone(),
                    namespace: ad.namespace().unwrap_or_default(),
                    status,
                }));
            }
        }
        self.out.extend(updates);
    }
}
