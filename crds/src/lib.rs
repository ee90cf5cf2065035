//! ferrolb's custom resources, in API group `ferrolb.io`, version `v1beta1`.
//!
//! - [`IPAddressPool`]: addresses the controller may hand to LoadBalancer Services.
//! - [`L2Advertisement`]: which pools the speakers announce, from which nodes
//!   and on which interfaces.
//! - [`ServiceL2Status`]: which node announces a Service, on which
//!   interfaces (written by the speakers, read with `kubectl get`).
//!
//! [`selector`] evaluates their label selectors and [`range`] parses a
//! pool's addresses; both live in the pure `ferrolb-core` crate (re-exported
//! here), which the controller and the speakers share so they always select
//! the same objects and agree on which addresses a pool owns.
//!
//! Field names, defaults and meanings match MetalLB's `metallb.io/v1beta1`
//! kinds, so a MetalLB manifest works after changing only its `apiVersion`.
//! The CRD manifests under `deploy/crds/` are generated from these types by
//! the `crdgen` binary (see [`generate`]).
//!
//! ```
//! use ferrolb_crds::{IPAddressPool, IPAddressPoolSpec};
//!
//! let pool = IPAddressPool::new("public", IPAddressPoolSpec {
//!     addresses: vec!["198.51.100.0/24".into()],
//!     ..Default::default()
//! });
//! assert!(pool.spec.auto_assign);
//! assert!(!pool.spec.avoid_buggy_ips);
//! ```
#![forbid(unsafe_code)]

pub mod annotations;
pub mod conditions;
pub mod generate;
mod ip_address_pool;
mod l2_advertisement;
pub mod memberlist;
pub use ferrolb_core::range;
mod schema;
pub mod selector;
pub mod service;
pub mod service_l2_status;

pub use ip_address_pool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation,
};
pub use l2_advertisement::{
    L2Advertisement, L2AdvertisementSpec, L2AdvertisementStatus, PreferredNodeSelector,
};
pub use service_l2_status::{
    InterfaceInfo, ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
};

/// The API group of every ferrolb custom resource.
pub const GROUP: &str = "ferrolb.io";

/// The API version of ferrolb's custom resources.
pub const VERSION: &str = "v1beta1";

/// `apiVersion` as written in manifests: `ferrolb.io/v1beta1`.
pub const API_VERSION: &str = "ferrolb.io/v1beta1";

/// The `kubectl get` category every kind belongs to (`kubectl get ferrolb`).
pub const CATEGORY: &str = "ferrolb";

/// The MetalLB API group whose kinds ours mirror field for field.
pub const METALLB_GROUP: &str = "metallb.io";
