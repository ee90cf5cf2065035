//! Counting Events: which ones a phase created and which series it
//! extended, per reporting component and reason. core/v1 and
//! events.k8s.io/v1 Events are one resource in the API test server (as in
//! a real one), so listing core/v1 Events sees both.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::Api;
use serde_json::{json, Value};

use crate::cluster::Cluster;

/// One Event as counted: who reported it, why, and how many occurrences
/// its series holds (1 without a series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counted {
    component: String,
    reason: String,
    occurrences: u64,
}

/// Every Event by `(namespace, name)`.
pub(super) type Snapshot = HashMap<(String, String), Counted>;

fn counted(e: &Event) -> Counted {
    let component = e
        .reporting_component
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| e.source.as_ref().and_then(|s| s.component.clone()))
        .unwrap_or_default();
    let series = e.series.as_ref().and_then(|s| s.count);
    let occurrences = series.or(e.count).unwrap_or(1).max(1);
    Counted {
        component,
        reason: e.reason.clone().unwrap_or_default(),
        occurrences: u64::try_from(occurrences).unwrap_or(1),
    }
}

/// Every Event in the API server now.
pub(super) async fn snapshot(c: &Cluster) -> anyhow::Result<Snapshot> {
    let api: Api<Event> = Api::all(c.kube());
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|e| {
            let key = (
                e.metadata.namespace.clone().unwrap_or_default(),
                e.metadata.name.clone().unwrap_or_default(),
            );
            (key, counted(e))
        })
        .collect())
}

/// What happened between two snapshots, per (component, reason): Events
/// created (`new`) and occurrences added to series (`series_increments`;
/// a new Event's own first occurrence is not one). Sorted by component,
/// then reason; JSON rows for the report.
pub(super) fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Value> {
    let mut rows: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (key, now) in after {
        let (new, earlier) = match before.get(key) {
            Some(b) => (0, b.occurrences),
            None => (1, 1),
        };
        let repeats = now.occurrences.saturating_sub(earlier);
        if new == 0 && repeats == 0 {
            continue;
        }
        let row = rows.entry((&now.component, &now.reason)).or_default();
        row.0 += new;
        row.1 += repeats;
    }
    rows.into_iter()
        .map(|((component, reason), (new, repeats))| {
            json!({"component": component, "reason": reason, "new": new, "series_increments": repeats})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(v: Value) -> Counted {
        counted(&serde_json::from_value(v).unwrap())
    }

    fn key(name: &str) -> (String, String) {
        ("default".into(), name.into())
    }

    #[test]
    fn events_count_by_reporter_and_reason_with_their_series() {
        let plain = event(json!({"metadata": {}, "involvedObject": {},
            "reportingComponent": "ferrolb-controller", "reason": "IPAllocated"}));
        assert_eq!(plain.occurrences, 1);
        assert_eq!(plain.component, "ferrolb-controller");
        let series = event(json!({"metadata": {}, "involvedObject": {},
            "source": {"component": "ferrolb-speaker"}, "reason": "nodeAssigned",
            "series": {"count": 4, "lastObservedTime": "2026-12-02T10:00:00.000000Z"}}));
        assert_eq!(series.occurrences, 4);
        assert_eq!(series.component, "ferrolb-speaker");
    }

    #[test]
    fn a_diff_counts_new_events_and_series_growth_only() {
        let ev = |component: &str, reason: &str, occurrences| Counted {
            component: component.into(),
            reason: reason.into(),
            occurrences,
        };
        let before = Snapshot::from([
            (key("a"), ev("ctl", "IPAllocated", 1)),
            (key("b"), ev("spk", "nodeAssigned", 2)),
        ]);
        let mut after = before.clone();
        after.insert(key("b"), ev("spk", "nodeAssigned", 5));
        after.insert(key("c"), ev("spk", "nodeAssigned", 2));
        after.insert(key("d"), ev("ctl", "IPAllocated", 1));
        let rows = diff(&before, &after);
        assert_eq!(
            rows,
            vec![
                json!({"component": "ctl", "reason": "IPAllocated", "new": 1, "series_increments": 0}),
                json!({"component": "spk", "reason": "nodeAssigned", "new": 1, "series_increments": 4}),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }
}
