//! What a Service asks for, in our own types, and how to build it from the
//! parts of a Service object.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use crate::range::Family;

use super::error::RequestError;
use super::selector::Labels;

/// Annotations naming the pool to allocate from, ours first.
pub const ADDRESS_POOL_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/address-pool",
    "metallb.universe.tf/address-pool",
    "metallb.io/address-pool",
];

/// Annotations listing the requested IPs (comma-separated), ours first.
pub const LOAD_BALANCER_IPS_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
];

/// Annotations carrying the sharing key, ours first.
pub const SHARING_KEY_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
    "metallb.io/allow-shared-ip",
];

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One protocol/port pair a Service exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl Port {
    /// A TCP port.
    pub fn tcp(port: u16) -> Self {
        Port {
            protocol: Protocol::Tcp,
            port,
        }
    }

    /// A UDP port.
    pub fn udp(port: u16) -> Self {
        Port {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FamilyPolicy {
    /// One address, of the first family.
    #[default]
    SingleStack,
    /// Both families when possible, else one.
    PreferDualStack,
    /// Both families or nothing.
    RequireDualStack,
}

impl FromStr for FamilyPolicy {
    type Err = RequestError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "SingleStack" => Ok(FamilyPolicy::SingleStack),
            "PreferDualStack" => Ok(FamilyPolicy::PreferDualStack),
            "RequireDualStack" => Ok(FamilyPolicy::RequireDualStack),
            _ => Err(RequestError::UnknownIpFamilyPolicy {
                value: value.to_string(),
            }),
        }
    }
}

/// What a Service asks of the allocator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocRequest {
    /// `spec.ipFamilies` in order; empty means IPv4.
    pub families: Vec<Family>,
    /// `spec.ipFamilyPolicy`.
    pub family_policy: FamilyPolicy,
    /// Requested IPs, at most one per family. When set they decide the
    /// families.
    pub requested_ips: Vec<IpAddr>,
    /// Requested pool name.
    pub requested_pool: Option<String>,
    /// Sharing key; `None` means the Service never shares its IP.
    pub sharing_key: Option<String>,
    /// Protocol/port pairs, used to detect clashes on a shared IP.
    pub ports: Vec<Port>,
    /// `externalTrafficPolicy: Local`.
    pub external_traffic_local: bool,
    /// `spec.selector`, kept only with `externalTrafficPolicy: Local`, the
    /// one case that compares it (Local Services share an IP only with the
    /// same selector); empty otherwise, which saves a map per Service.
    pub selector: Labels,
    /// The Service's labels.
    pub labels: Labels,
    /// The labels of the Service's namespace, shared by every request of
    /// that namespace.
    pub namespace_labels: Arc<Labels>,
}

impl AllocRequest {
    /// The families to allocate when no IPs are requested, in order of
    /// preference: `spec.ipFamilies` (IPv4 when empty), cut to one for
    /// SingleStack and completed with the other family for
    /// RequireDualStack. PreferDualStack keeps the list as given: on a
    /// single-stack cluster the API server lists one family only.
    pub fn wanted_families(&self) -> Vec<Family> {
        let mut families = if self.families.is_empty() {
            vec![Family::V4]
        } else {
            self.families.clone()
        };
        match self.family_policy {
            FamilyPolicy::SingleStack => families.truncate(1),
            FamilyPolicy::PreferDualStack => families.truncate(2),
            FamilyPolicy::RequireDualStack => {
                families.truncate(2);
                if families.len() == 1 {
                    families.push(families[0].other());
                }
            }
        }
        families
    }
}

/// The parts of a Service the allocator looks at, as plain values; the
/// Kubernetes object is converted into this at the edge.
#[derive(Debug, Clone, Copy)]
pub struct ServiceParts<'a> {
    /// `metadata.annotations`.
    pub annotations: &'a BTreeMap<String, String>,
    /// `spec.loadBalancerIP`.
    pub load_balancer_ip: Option<&'a str>,
    /// `spec.ipFamilies`.
    pub ip_families: &'a [String],
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: Option<&'a str>,
    /// `spec.ports[*]` as (protocol, port); an empty protocol means TCP, the
    /// API default.
    pub ports: &'a [(String, u16)],
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: Option<&'a str>,
    /// `spec.selector`.
    pub selector: &'a BTreeMap<String, String>,
    /// `metadata.labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// The labels of the Service's namespace.
    pub namespace_labels: &'a Arc<Labels>,
}

static EMPTY_MAP: BTreeMap<String, String> = BTreeMap::new();
static EMPTY_LABELS: LazyLock<Arc<Labels>> = LazyLock::new(Arc::default);

impl Default for ServiceParts<'_> {
    fn default() -> Self {
        ServiceParts {
            annotations: &EMPTY_MAP,
            load_balancer_ip: None,
            ip_families: &[],
            ip_family_policy: None,
            ports: &[],
            external_traffic_policy: None,
            selector: &EMPTY_MAP,
            labels: &EMPTY_MAP,
            namespace_labels: &EMPTY_LABELS,
        }
    }
}

impl AllocRequest {
    /// Builds the request from a Service's parts.
    ///
    /// Fails, quoting the offending annotation or field, when an IP does not
    /// parse, two IPs share a family, two spellings of one annotation
    /// disagree, `spec.loadBalancerIP` disagrees with the annotation, or a
    /// protocol, family, family policy or traffic policy is unknown. Empty
    /// annotation values count as absent.
    pub fn from_service(parts: &ServiceParts<'_>) -> Result<AllocRequest, RequestError> {
        let families = parse_families(parts.ip_families)?;
        let family_policy = match parts.ip_family_policy {
            None | Some("") => FamilyPolicy::SingleStack,
            Some(value) => value.parse()?,
        };
        let requested_ips = requested_ips(parts)?;
        let requested_pool = single_string(parts.annotations, &ADDRESS_POOL_ANNOTATIONS)?;
        let sharing_key = single_string(parts.annotations, &SHARING_KEY_ANNOTATIONS)?;
        let ports = parts
            .ports
            .iter()
            .map(|(protocol, port)| parse_port(protocol, *port))
            .collect::<Result<Vec<_>, _>>()?;
        let external_traffic_local = match parts.external_traffic_policy {
            None | Some("") | Some("Cluster") => false,
            Some("Local") => true,
            Some(other) => {
                return Err(RequestError::UnknownTrafficPolicy {
                    value: other.to_string(),
                })
            }
        };
        Ok(AllocRequest {
            families,
            family_policy,
            requested_ips,
            requested_pool,
            sharing_key,
            ports,
            external_traffic_local,
            selector: if external_traffic_local {
                parts.selector.clone()
            } else {
                Labels::new()
            },
            labels: parts.labels.clone(),
            namespace_labels: parts.namespace_labels.clone(),
        })
    }
}

fn parse_families(values: &[String]) -> Result<Vec<Family>, RequestError> {
    let mut families = Vec::with_capacity(values.len());
    for value in values {
        let family = match value.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            _ => {
                return Err(RequestError::UnknownIpFamily {
                    value: value.clone(),
                })
            }
        };
        if families.contains(&family) {
            return Err(RequestError::UnknownIpFamily {
                value: value.clone(),
            });
        }
        families.push(family);
    }
    Ok(families)
}

fn parse_port(protocol: &str, port: u16) -> Result<Port, RequestError> {
    let protocol = match protocol {
        "" | "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => {
            return Err(RequestError::UnknownProtocol {
                protocol: other.to_string(),
                port,
            })
        }
    };
    Ok(Port { protocol, port })
}

/// The non-empty values of the spellings of one annotation, in order.
fn present<'a>(
    annotations: &'a BTreeMap<String, String>,
    names: &[&'static str],
) -> Vec<(&'static str, &'a str)> {
    names
        .iter()
        .filter_map(|name| {
            let value = annotations.get(*name)?.trim();
            (!value.is_empty()).then_some((*name, value))
        })
        .collect()
}

fn disagree(first: (&str, &str), second: (&str, &str)) -> RequestError {
    RequestError::AnnotationsDisagree {
        first: first.0.to_string(),
        first_value: first.1.to_string(),
        second: second.0.to_string(),
        second_value: second.1.to_string(),
    }
}

fn single_string(
    annotations: &BTreeMap<String, String>,
    names: &[&'static str],
) -> Result<Option<String>, RequestError> {
    let values = present(annotations, names);
    let Some(&first) = values.first() else {
        return Ok(None);
    };
    if let Some(&other) = values.iter().find(|(_, v)| *v != first.1) {
        return Err(disagree(first, other));
    }
    Ok(Some(first.1.to_string()))
}

/// Parses a comma-separated IP list: every element an IP, at most one per
/// family.
fn parse_ip_list(annotation: &str, value: &str) -> Result<Vec<IpAddr>, RequestError> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for item in value.split(',') {
        let ip = IpAddr::from_str(item.trim()).map_err(|_| RequestError::AnnotationBadIp {
            annotation: annotation.to_string(),
            value: value.to_string(),
            item: item.trim().to_string(),
        })?;
        let family = Family::of(ip);
        if ips.iter().any(|known| Family::of(*known) == family) {
            return Err(RequestError::AnnotationSameFamilyTwice {
                annotation: annotation.to_string(),
                value: value.to_string(),
                family,
            });
        }
        ips.push(ip);
    }
    Ok(ips)
}

fn sorted(ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = ips.to_vec();
    ips.sort();
    ips
}

fn requested_ips(parts: &ServiceParts<'_>) -> Result<Vec<IpAddr>, RequestError> {
    let values = present(parts.annotations, &LOAD_BALANCER_IPS_ANNOTATIONS);
    let mut from_annotation: Option<((&str, &str), Vec<IpAddr>)> = None;
    for (name, value) in values {
        let ips = parse_ip_list(name, value)?;
        match &from_annotation {
            None => from_annotation = Some(((name, value), ips)),
            Some((first, known)) => {
                if sorted(known) != sorted(&ips) {
                    return Err(disagree(*first, (name, value)));
                }
            }
        }
    }
    let spec = match parts.load_balancer_ip.map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            Some(
                IpAddr::from_str(text).map_err(|_| RequestError::BadLoadBalancerIp {
                    value: text.to_string(),
                })?,
            )
        }
    };
    match (from_annotation, spec) {
        (None, None) => Ok(Vec::new()),
        (None, Some(ip)) => Ok(vec![ip]),
        (Some((_, ips)), None) => Ok(ips),
        // Both set is tolerated only when they say the same thing: a
        // Service migrated from the deprecated field often keeps both.
        (Some(((name, value), ips)), Some(ip)) => {
            if ips == [ip] {
                Ok(ips)
            } else {
                Err(RequestError::LoadBalancerIpDisagrees {
                    spec: ip.to_string(),
                    annotation: name.to_string(),
                    value: value.to_string(),
                })
            }
        }
    }
}
