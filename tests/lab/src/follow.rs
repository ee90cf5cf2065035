//! Following one kind through a reflector, as the lab's stand-ins for
//! kube-proxy ([`crate::proxy`]) and the EndpointSlice controller
//! ([`crate::endpoints`]) do.
//!
//! kube-runtime's reflector buffers a relist (`Init`, `InitApply`...) and
//! swaps it into the store only at `InitDone`. Reading the store on each
//! touched object (`touched_objects`) therefore reads the old state during
//! a relist and nothing after the swap: a Service that changed while the
//! watch was down stayed unseen until its next event.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Whether the store shows something new after `event`: each Apply and
/// Delete, and the end of a relist. Not `Init` or `InitApply`, whose
/// objects are still buffered.
pub fn store_changed<K>(event: &watcher::Event<K>) -> bool {
    matches!(
        event,
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
    )
}

/// Every object of the kind, each time the store changes (watch errors are
/// retried with kube-runtime's default backoff).
pub fn states<K>(api: Api<K>) -> impl Stream<Item = Vec<Arc<K>>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .filter_map(move |event| {
            let state = match event {
                Ok(event) if store_changed(&event) => Some(reader.state()),
                _ => None,
            };
            std::future::ready(state)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::runtime::watcher::Event;

    fn svc(name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s
    }

    #[test]
    fn a_relist_is_readable_only_at_its_end_and_that_is_when_the_state_is_read() {
        let (reader, mut writer) = reflector::store::<Service>();
        let events = [
            Event::Init,
            Event::InitApply(svc("web")),
            Event::InitDone,
            Event::Init,
            Event::InitApply(svc("later")),
            Event::InitDone,
        ];
        let mut seen = Vec::new();
        for event in &events {
            writer.apply_watcher_event(event);
            if store_changed(event) {
                let mut names: Vec<String> = reader
                    .state()
                    .iter()
                    .map(|s| s.metadata.name.clone().unwrap_or_default())
                    .collect();
                names.sort();
                seen.push(names);
            }
        }
        // During the second relist the store still shows web; reading on
        // InitApply would have reported it, and nothing after the swap.
        assert_eq!(
            seen,
            vec![vec!["web".to_string()], vec!["later".to_string()]]
        );
    }

    #[test]
    fn applies_and_deletes_change_the_store_at_once() {
        assert!(store_changed(&Event::Apply(svc("a"))));
        assert!(store_changed(&Event::Delete(svc("a"))));
        assert!(store_changed(&Event::<Service>::InitDone));
        assert!(!store_changed(&Event::<Service>::Init));
        assert!(!store_changed(&Event::InitApply(svc("a"))));
    }
}
