//! When two Services may hold the same IP.

use std::net::IpAddr;

use super::error::AllocationError;
use super::key::ServiceKey;
use super::request::AllocRequest;

/// Checks that `new` may hold `ip` next to `other`, which already holds it.
///
/// Two Services may share an IP only when all of these hold:
/// 1. both carry a sharing key, and it is not empty (an absent or empty
///    `allow-shared-ip` annotation means "never share");
/// 2. the keys are equal;
/// 3. no protocol/port pair is used by both (same protocol **and** same
///    port; TCP/53 and UDP/53 can share);
/// 4. if either has `externalTrafficPolicy: Local`, both do, and their
///    `spec.selector`s are identical: the speaker elects the announcing
///    node from the Service's endpoints, and Services with different
///    endpoints could elect different nodes for the one IP (MetalLB's
///    "backend key").
///
/// A Service alone on its IP is not checked against itself, so it may
/// change its sharing key in place; the caller skips `new == other`.
///
/// Refusals for rules 1 and 2 are [`AllocationError::IpInUse`]; refusals
/// for rules 3 and 4 (same key, still incompatible) are
/// [`AllocationError::SharingConflict`].
/// Both name `other`.
pub(crate) fn check(
    ip: IpAddr,
    new_key: &ServiceKey,
    new: &AllocRequest,
    other_key: &ServiceKey,
    other: &AllocRequest,
) -> Result<(), AllocationError> {
    let in_use = |detail: String| AllocationError::IpInUse {
        ip,
        other: other_key.clone(),
        detail,
    };
    let conflict = |detail: String| AllocationError::SharingConflict {
        ip,
        other: other_key.clone(),
        detail,
    };
    let other_sharing = other.sharing_key.as_deref().filter(|k| !k.is_empty());
    let new_sharing = new.sharing_key.as_deref().filter(|k| !k.is_empty());
    let Some(other_sharing) = other_sharing else {
        return Err(in_use(format!("{other_key} has no sharing key")));
    };
    let Some(new_sharing) = new_sharing else {
        return Err(in_use(format!("{new_key} has no sharing key")));
    };
    if other_sharing != new_sharing {
        return Err(in_use(format!(
            "{new_key} has sharing key {new_sharing:?} but {other_key} has {other_sharing:?}"
        )));
    }
    if let Some(port) = new.ports.iter().find(|p| other.ports.contains(p)) {
        return Err(conflict(format!("both use {port}")));
    }
    match (new.external_traffic_local, other.external_traffic_local) {
        (false, false) => Ok(()),
        (true, true) if new.selector == other.selector => Ok(()),
        (true, true) => Err(conflict(format!(
            "both have externalTrafficPolicy Local but {new_key} and {other_key} have different selectors"
        ))),
        (new_local, _) => {
            let (local, cluster) = if new_local {
                (new_key, other_key)
            } else {
                (other_key, new_key)
            };
            Err(conflict(format!(
                "{local} has externalTrafficPolicy Local and {cluster} has Cluster; Services sharing an IP must use the same policy"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::request::Port;

    fn ip() -> IpAddr {
        "198.51.100.5".parse().unwrap()
    }

    fn req(key: Option<&str>, ports: &[Port]) -> AllocRequest {
        AllocRequest {
            sharing_key: key.map(str::to_string),
            ports: ports.to_vec(),
            ..Default::default()
        }
    }

    fn check_pair(a: &AllocRequest, b: &AllocRequest) -> Result<(), AllocationError> {
        check(
            ip(),
            &ServiceKey::new("default", "new"),
            a,
            &ServiceKey::new("default", "web"),
            b,
        )
    }

    #[test]
    fn equal_keys_and_distinct_ports_share() {
        let a = req(Some("k"), &[Port::tcp(80)]);
        let b = req(Some("k"), &[Port::tcp(443)]);
        assert_eq!(check_pair(&a, &b), Ok(()));
    }

    #[test]
    fn same_port_number_on_other_protocol_shares() {
        let a = req(Some("k"), &[Port::tcp(53)]);
        let b = req(Some("k"), &[Port::udp(53)]);
        assert_eq!(check_pair(&a, &b), Ok(()));
    }

    #[test]
    fn a_holder_without_key_refuses_sharing_and_is_named() {
        let err = check_pair(&req(Some("k"), &[]), &req(None, &[])).unwrap_err();
        assert_eq!(err.reason(), "ip_in_use");
        assert_eq!(
            err.to_string(),
            "IP 198.51.100.5 is already used by default/web and sharing is not allowed: default/web has no sharing key"
        );
    }

    #[test]
    fn a_newcomer_without_key_cannot_share() {
        let err = check_pair(&req(None, &[]), &req(Some("k"), &[])).unwrap_err();
        assert!(
            err.to_string().contains("default/new has no sharing key"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_key_counts_as_no_key() {
        let err = check_pair(&req(Some(""), &[]), &req(Some(""), &[])).unwrap_err();
        assert_eq!(err.reason(), "ip_in_use");
    }

    #[test]
    fn different_keys_cannot_share() {
        let err = check_pair(&req(Some("a"), &[]), &req(Some("b"), &[])).unwrap_err();
        assert_eq!(err.reason(), "ip_in_use");
        assert!(err.to_string().contains("\"a\""), "{err}");
    }

    #[test]
    fn a_port_clash_is_a_sharing_conflict_naming_the_port() {
        let a = req(Some("k"), &[Port::tcp(80)]);
        let b = req(Some("k"), &[Port::tcp(80)]);
        let err = check_pair(&a, &b).unwrap_err();
        assert_eq!(err.reason(), "sharing_conflict");
        assert!(err.to_string().contains("both use TCP/80"), "{err}");
        assert!(err.to_string().contains("default/web"), "{err}");
    }

    #[test]
    fn local_and_cluster_cannot_share() {
        let mut a = req(Some("k"), &[]);
        a.external_traffic_local = true;
        let b = req(Some("k"), &[]);
        let err = check_pair(&a, &b).unwrap_err();
        assert_eq!(err.reason(), "sharing_conflict");
        assert!(err
            .to_string()
            .contains("default/new has externalTrafficPolicy Local"));
        let err = check_pair(&b, &a).unwrap_err();
        assert!(err
            .to_string()
            .contains("default/web has externalTrafficPolicy Local"));
    }

    #[test]
    fn local_services_share_only_with_identical_selectors() {
        let mut a = req(Some("k"), &[]);
        a.external_traffic_local = true;
        a.selector.insert("app".into(), "dns".into());
        let mut b = a.clone();
        assert_eq!(check_pair(&a, &b), Ok(()));
        b.selector.insert("app".into(), "other".into());
        let err = check_pair(&a, &b).unwrap_err();
        assert!(err.to_string().contains("different selectors"), "{err}");
    }
}
