//! The watches' view of the cluster: each kind converts its objects into
//! the [`World`] with `apply`, `delete` and `reset`.
//!
//! A relist is a `reset` carrying the complete list, so objects deleted
//! while a watch was down disappear too. Nothing here ever clears the
//! world on an error: if the API server goes away, the speaker keeps
//! announcing what it last knew.

use super::convert;
use super::partial::EndpointSlice;
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::World;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// A kind the speaker watches and how it lands in the [`World`]: each
/// object is converted into its compact form as it arrives, and the
/// Kubernetes object is dropped.
pub trait Indexed:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The kind's name, for logs and metric labels.
    const KIND: &'static str;

    /// How the world keys objects of this kind.
    type Key: Ord + Clone + Send + Sync + 'static;

    /// The compact form the world keeps.
    type Info: Send + Sync + 'static;

    /// The object's key.
    fn key(obj: &Self) -> Self::Key;

    /// The compact form, or `None` when the object counts as absent (a
    /// Service that is not a LoadBalancer with IPs).
    fn convert(obj: &Self) -> Option<Self::Info>;

    /// Sets or (with `None`) removes `key`; false if nothing changed.
    fn set(world: &mut World, key: &Self::Key, info: Option<Self::Info>) -> bool;

    /// Every key of this kind in the world.
    fn keys(world: &World) -> Vec<Self::Key>;

    /// Replaces every object of this kind with `objs` (a relist); false if
    /// nothing changed.
    fn reset(world: &mut World, objs: Vec<(Self::Key, Self::Info)>) -> bool {
        let listed: BTreeSet<&Self::Key> = objs.iter().map(|(k, _)| k).collect();
        let gone: Vec<Self::Key> = Self::keys(world)
            .into_iter()
            .filter(|k| !listed.contains(k))
            .collect();
        let mut changed = false;
        for key in &gone {
            changed |= Self::set(world, key, None);
        }
        for (key, info) in objs {
            changed |= Self::set(world, &key, Some(info));
        }
        changed
    }
}

impl Indexed for Service {
    const KIND: &'static str = "Service";
    type Key = ObjectKey;
    type Info = ferrolb_core::announce::model::ServiceInfo;

    fn key(obj: &Self) -> ObjectKey {
        convert::key(obj)
    }

    // A Service that stops being a LoadBalancer or loses its IPs leaves
    // the world rather than lingering with stale IPs.
    fn convert(obj: &Self) -> Option<Self::Info> {
        convert::service(obj)
    }

    fn set(world: &mut World, key: &ObjectKey, info: Option<Self::Info>) -> bool {
        match info {
            Some(info) => world.set_service(info),
            None => world.remove_service(key),
        }
    }

    fn keys(world: &World) -> Vec<ObjectKey> {
        world.services().keys().cloned().collect()
    }
}

impl Indexed for EndpointSlice {
    const KIND: &'static str = "EndpointSlice";
    type Key = ObjectKey;
    type Info = ferrolb_core::announce::model::SliceInfo;

    fn key(obj: &Self) -> ObjectKey {
        convert::key(obj)
    }

    fn convert(obj: &Self) -> Option<Self::Info> {
        Some(convert::slice(obj))
    }

    fn set(world: &mut World, key: &ObjectKey, info: Option<Self::Info>) -> bool {
        match info {
            Some(info) => world.set_slice(key.clone(), info),
            None => world.remove_slice(key),
        }
    }

    fn keys(world: &World) -> Vec<ObjectKey> {
        world.slices().keys().cloned().collect()
    }
}

impl Indexed for Node {
    const KIND: &'static str = "Node";
    type Key = String;
    type Info = ferrolb_core::announce::model::NodeFacts;

    fn key(obj: &Self) -> String {
        obj.name_any()
    }

    fn convert(obj: &Self) -> Option<Self::Info> {
        Some(convert::node(obj))
    }

    fn set(world: &mut World, key: &String, info: Option<Self::Info>) -> bool {
        match info {
            Some(info) => world.set_node(info),
            None => world.remove_node(key),
        }
    }

    fn keys(world: &World) -> Vec<String> {
        world.nodes().keys().cloned().collect()
    }
}

impl Indexed for IPAddressPool {
    const KIND: &'static str = "IPAddressPool";
    type Key = String;
    type Info = ferrolb_core::announce::model::PoolInfo;

    fn key(obj: &Self) -> String {
        obj.name_any()
    }

    fn convert(obj: &Self) -> Option<Self::Info> {
        Some(convert::pool(obj))
    }

    fn set(world: &mut World, key: &String, info: Option<Self::Info>) -> bool {
        match info {
            Some(info) => world.set_pool(info),
            None => world.remove_pool(key),
        }
    }

    fn keys(world: &World) -> Vec<String> {
        world.pools().keys().cloned().collect()
    }
}

impl Indexed for L2Advertisement {
    const KIND: &'static str = "L2Advertisement";
    type Key = ObjectKey;
    type Info = ferrolb_core::announce::model::AdInfo;

    fn key(obj: &Self) -> ObjectKey {
        convert::key(obj)
    }

    fn convert(obj: &Self) -> Option<Self::Info> {
        Some(convert::advertisement(obj))
    }

    fn set(world: &mut World, key: &ObjectKey, info: Option<Self::Info>) -> bool {
        match info {
            Some(info) => world.set_ad(info),
            None => world.remove_ad(key),
        }
    }

    fn keys(world: &World) -> Vec<ObjectKey> {
        world.ads().keys().cloned().collect()
    }
}

#[cfg(test)]
/// Applies `obj` (added or changed) to the world; false if nothing the
/// world keeps changed.
pub fn apply<K: Indexed>(world: &mut World, obj: &K) -> bool {
    K::set(world, &K::key(obj), K::convert(obj))
}

#[cfg(test)]
/// Removes `obj` from the world; false if it was not there.
pub fn delete<K: Indexed>(world: &mut World, obj: &K) -> bool {
    K::set(world, &K::key(obj), None)
}

#[cfg(test)]
/// Replaces every object of `K` with `objs`; false if nothing changed.
pub fn reset<K: Indexed>(world: &mut World, objs: &[K]) -> bool {
    K::reset(
        world,
        objs.iter()
            .filter_map(|o| Some((K::key(o), K::convert(o)?)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    fn lb(name: &str, ip: Option<&str>, type_: &str) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ip.into_iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_relist_drops_objects_deleted_while_the_watch_was_down() {
        let mut w = World::default();
        apply(&mut w, &lb("a", Some("192.0.2.1"), "LoadBalancer"));
        apply(&mut w, &lb("b", Some("192.0.2.2"), "LoadBalancer"));
        reset(&mut w, &[lb("b", Some("192.0.2.2"), "LoadBalancer")]);
        let names: Vec<_> = w.services().keys().map(|k| k.name.to_string()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn only_load_balancers_with_ingress_ips_are_indexed() {
        let mut w = World::default();
        apply(&mut w, &lb("cluster-ip", Some("192.0.2.1"), "ClusterIP"));
        apply(&mut w, &lb("pending", None, "LoadBalancer"));
        assert!(w.services().is_empty());
        apply(&mut w, &lb("web", Some("192.0.2.3"), "LoadBalancer"));
        assert_eq!(w.services().len(), 1);
        // Turned back into a ClusterIP Service: gone.
        apply(&mut w, &lb("web", Some("192.0.2.3"), "ClusterIP"));
        assert!(w.services().is_empty());
    }

    #[test]
    fn delete_removes_only_that_object() {
        let mut w = World::default();
        apply(&mut w, &lb("a", Some("192.0.2.1"), "LoadBalancer"));
        apply(&mut w, &lb("b", Some("192.0.2.2"), "LoadBalancer"));
        delete(&mut w, &lb("a", None, "LoadBalancer"));
        assert_eq!(w.services().len(), 1);
    }

    #[test]
    fn a_change_the_decision_does_not_read_leaves_the_world_as_it_was() {
        let mut w = World::default();
        let svc = lb("web", Some("192.0.2.1"), "LoadBalancer");
        assert!(apply(&mut w, &svc));
        let seq = w.seq();
        let mut annotated = svc.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("example.com/touched".into(), "1".into());
        annotated.metadata.resource_version = Some("42".into());
        assert!(
            !apply(&mut w, &annotated),
            "nothing the speaker keeps changed"
        );
        assert_eq!(w.seq(), seq);
        assert!(
            !reset(&mut w, &[annotated]),
            "nor does a relist of the same"
        );
    }
}
