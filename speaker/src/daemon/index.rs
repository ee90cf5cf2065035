//! The watches' view of the cluster: each kind converts its objects into
//! the [`World`] with `apply`, `delete` and `reset`.
//!
//! A relist is a `reset` carrying the complete list, so objects deleted
//! while a watch was down disappear too. Nothing here ever clears the
//! world on an error: if the API server goes away, the speaker keeps
//! announcing what it last knew.

use super::convert;
use ferrolb_core::announce::World;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// A kind the speaker watches and how it lands in the [`World`].
pub trait Indexed:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The kind's name, for logs and metric labels.
    const KIND: &'static str;

    /// Adds or replaces `obj`.
    fn apply(world: &mut World, obj: &Self);

    /// Removes `obj`.
    fn delete(world: &mut World, obj: &Self);

    /// Forgets every object of this kind.
    fn clear(world: &mut World);

    /// Replaces every object of this kind with `objs` (a relist).
    fn reset(world: &mut World, objs: &[Self]) {
        Self::clear(world);
        for obj in objs {
            Self::apply(world, obj);
        }
    }
}

impl Indexed for Service {
    const KIND: &'static str = "Service";

    fn apply(world: &mut World, obj: &Self) {
        // A Service that stops being a LoadBalancer or loses its IPs must
        // leave the world, not linger with stale IPs.
        match convert::service(obj) {
            Some(info) => world.services.insert(info.key.clone(), info),
            None => world.services.remove(&convert::key(obj)),
        };
    }

    fn delete(world: &mut World, obj: &Self) {
        world.services.remove(&convert::key(obj));
    }

    fn clear(world: &mut World) {
        world.services.clear();
    }
}

impl Indexed for EndpointSlice {
    const KIND: &'static str = "EndpointSlice";

    fn apply(world: &mut World, obj: &Self) {
        world.slices.insert(convert::key(obj), convert::slice(obj));
    }

    fn delete(world: &mut World, obj: &Self) {
        world.slices.remove(&convert::key(obj));
    }

    fn clear(world: &mut World) {
        world.slices.clear();
    }
}

impl Indexed for Node {
    const KIND: &'static str = "Node";

    fn apply(world: &mut World, obj: &Self) {
        world.nodes.insert(obj.name_any(), convert::node(obj));
    }

    fn delete(world: &mut World, obj: &Self) {
        world.nodes.remove(&obj.name_any());
    }

    fn clear(world: &mut World) {
        world.nodes.clear();
    }
}

impl Indexed for IPAddressPool {
    const KIND: &'static str = "IPAddressPool";

    fn apply(world: &mut World, obj: &Self) {
        world.pools.insert(obj.name_any(), convert::pool(obj));
    }

    fn delete(world: &mut World, obj: &Self) {
        world.pools.remove(&obj.name_any());
    }

    fn clear(world: &mut World) {
        world.pools.clear();
    }
}

impl Indexed for L2Advertisement {
    const KIND: &'static str = "L2Advertisement";

    fn apply(world: &mut World, obj: &Self) {
        world
            .ads
            .insert(convert::key(obj), convert::advertisement(obj));
    }

    fn delete(world: &mut World, obj: &Self) {
        world.ads.remove(&convert::key(obj));
    }

    fn clear(world: &mut World) {
        world.ads.clear();
    }
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
        Service::apply(&mut w, &lb("a", Some("192.0.2.1"), "LoadBalancer"));
        Service::apply(&mut w, &lb("b", Some("192.0.2.2"), "LoadBalancer"));
        Service::reset(&mut w, &[lb("b", Some("192.0.2.2"), "LoadBalancer")]);
        let names: Vec<_> = w.services.keys().map(|k| k.name.clone()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn only_load_balancers_with_ingress_ips_are_indexed() {
        let mut w = World::default();
        Service::apply(&mut w, &lb("cluster-ip", Some("192.0.2.1"), "ClusterIP"));
        Service::apply(&mut w, &lb("pending", None, "LoadBalancer"));
        assert!(w.services.is_empty());
        Service::apply(&mut w, &lb("web", Some("192.0.2.3"), "LoadBalancer"));
        assert_eq!(w.services.len(), 1);
        // Turned back into a ClusterIP Service: gone.
        Service::apply(&mut w, &lb("web", Some("192.0.2.3"), "ClusterIP"));
        assert!(w.services.is_empty());
    }

    #[test]
    fn delete_removes_only_that_object() {
        let mut w = World::default();
        Service::apply(&mut w, &lb("a", Some("192.0.2.1"), "LoadBalancer"));
        Service::apply(&mut w, &lb("b", Some("192.0.2.2"), "LoadBalancer"));
        Service::delete(&mut w, &lb("a", None, "LoadBalancer"));
        assert_eq!(w.services.len(), 1);
    }
}
