//! Annotation names ferrolb reads from and writes to Services.
//!
//! ferrolb answers to its own `ferrolb.io/` spelling and to both MetalLB
//! spellings (`metallb.universe.tf/`, the original, and `metallb.io/`, used by
//! newer MetalLB releases), so Services annotated for MetalLB keep working.
//! When several spellings are present, readers should prefer the ferrolb one,
//! then `metallb.io/`, then `metallb.universe.tf/`: [`ADDRESS_POOL_KEYS`] and
//! friends list them in that order.

/// Name of the [`IPAddressPool`](crate::IPAddressPool) (in the controller's
/// namespace) a Service must be allocated from.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// MetalLB's current spelling of [`ADDRESS_POOL`].
pub const METALLB_IO_ADDRESS_POOL: &str = "metallb.io/address-pool";
/// MetalLB's original spelling of [`ADDRESS_POOL`].
pub const METALLB_UNIVERSE_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";

/// Comma-separated IPs a Service asks for, at most one per address family
/// (for example `198.51.100.7,2001:db8::7`).
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// MetalLB's current spelling of [`LOAD_BALANCER_IPS`].
pub const METALLB_IO_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// MetalLB's original spelling of [`LOAD_BALANCER_IPS`].
pub const METALLB_UNIVERSE_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";

/// Sharing key: Services with the same key may share an IP when their ports
/// do not clash.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// MetalLB's current spelling of [`ALLOW_SHARED_IP`].
pub const METALLB_IO_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// MetalLB's original spelling of [`ALLOW_SHARED_IP`].
pub const METALLB_UNIVERSE_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";

/// Written by the controller on a Service: the pool its IPs came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "ferrolb.io/ip-allocated-from-pool";

/// Every accepted spelling of [`ADDRESS_POOL`], most preferred first.
pub const ADDRESS_POOL_KEYS: [&str; 3] = [
    ADDRESS_POOL,
    METALLB_IO_ADDRESS_POOL,
    METALLB_UNIVERSE_ADDRESS_POOL,
];
/// Every accepted spelling of [`LOAD_BALANCER_IPS`], most preferred first.
pub const LOAD_BALANCER_IPS_KEYS: [&str; 3] = [
    LOAD_BALANCER_IPS,
    METALLB_IO_LOAD_BALANCER_IPS,
    METALLB_UNIVERSE_LOAD_BALANCER_IPS,
];
/// Every accepted spelling of [`ALLOW_SHARED_IP`], most preferred first.
pub const ALLOW_SHARED_IP_KEYS: [&str; 3] = [
    ALLOW_SHARED_IP,
    METALLB_IO_ALLOW_SHARED_IP,
    METALLB_UNIVERSE_ALLOW_SHARED_IP,
];

/// The value of the first annotation in `keys` (ordered most preferred
/// first) that is present.
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrolb_crds::annotations::{first_present, ADDRESS_POOL_KEYS};
///
/// let annotations = BTreeMap::from([
///     ("metallb.universe.tf/address-pool".to_string(), "old".to_string()),
///     ("ferrolb.io/address-pool".to_string(), "new".to_string()),
/// ]);
/// assert_eq!(first_present(&annotations, &ADDRESS_POOL_KEYS), Some("new"));
/// ```
pub fn first_present<'a>(
    annotations: &'a std::collections::BTreeMap<String, String>,
    keys: &[&str],
) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| annotations.get(*key))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn metallb_spellings_share_the_suffix_of_ours() {
        for keys in [
            ADDRESS_POOL_KEYS,
            LOAD_BALANCER_IPS_KEYS,
            ALLOW_SHARED_IP_KEYS,
        ] {
            let suffixes: Vec<_> = keys
                .iter()
                .map(|k| k.split_once('/').map(|(_, s)| s))
                .collect();
            assert!(suffixes.iter().all(|s| *s == suffixes[0]), "{keys:?}");
            assert!(keys[0].starts_with("ferrolb.io/"));
            assert!(keys[1].starts_with("metallb.io/"));
            assert!(keys[2].starts_with("metallb.universe.tf/"));
        }
    }

    #[test]
    fn first_present_falls_back_to_metallb_spellings_in_order() {
        let mut annotations = BTreeMap::new();
        assert_eq!(first_present(&annotations, &ALLOW_SHARED_IP_KEYS), None);
        annotations.insert(
            METALLB_UNIVERSE_ALLOW_SHARED_IP.to_string(),
            "a".to_string(),
        );
        assert_eq!(
            first_present(&annotations, &ALLOW_SHARED_IP_KEYS),
            Some("a")
        );
        annotations.insert(METALLB_IO_ALLOW_SHARED_IP.to_string(), "b".to_string());
        assert_eq!(
            first_present(&annotations, &ALLOW_SHARED_IP_KEYS),
            Some("b")
        );
        annotations.insert(ALLOW_SHARED_IP.to_string(), "c".to_string());
        assert_eq!(
            first_present(&annotations, &ALLOW_SHARED_IP_KEYS),
            Some("c")
        );
    }
}
