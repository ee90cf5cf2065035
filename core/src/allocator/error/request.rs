//! Why a Service's spec or annotations do not make a request: the user
//! must fix the Service.

use crate::range::Family;

/// A malformed Service: its `Display` text quotes the offending annotation
/// or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An annotation holds an IP address that does not parse.
    #[error("annotation {annotation:?} has value {value:?}, and {item:?} is not an IP address")]
    AnnotationBadIp {
        /// Annotation name.
        annotation: String,
        /// Full annotation value.
        value: String,
        /// The offending element.
        item: String,
    },
    /// An annotation asks for two addresses of one family.
    #[error(
        "annotation {annotation:?} has value {value:?}, which names more than one {family} address"
    )]
    AnnotationSameFamilyTwice {
        /// Annotation name.
        annotation: String,
        /// Full annotation value.
        value: String,
        /// The repeated family.
        family: Family,
    },
    /// The same setting is spelled with two annotation names that disagree.
    #[error(
        "annotations {first:?} (value {first_value:?}) and {second:?} (value {second_value:?}) disagree; remove one"
    )]
    AnnotationsDisagree {
        /// First annotation name.
        first: String,
        /// Its value.
        first_value: String,
        /// Second annotation name.
        second: String,
        /// Its value.
        second_value: String,
    },
    /// `spec.loadBalancerIP` does not parse.
    #[error("spec.loadBalancerIP {value:?} is not an IP address")]
    BadLoadBalancerIp {
        /// The field value.
        value: String,
    },
    /// `spec.loadBalancerIP` and the loadBalancerIPs annotation disagree.
    #[error("spec.loadBalancerIP {spec:?} disagrees with annotation {annotation:?} (value {value:?}); set only one")]
    LoadBalancerIpDisagrees {
        /// The field value.
        spec: String,
        /// Annotation name.
        annotation: String,
        /// Annotation value.
        value: String,
    },
    /// A port uses a protocol Kubernetes does not know.
    #[error("port {port} has unknown protocol {protocol:?} (expected TCP, UDP or SCTP)")]
    UnknownProtocol {
        /// The protocol string.
        protocol: String,
        /// The port number.
        port: u16,
    },
    /// `spec.ipFamilies` holds an unknown or repeated value.
    #[error(
        "spec.ipFamilies value {value:?} is not usable (expected IPv4 and/or IPv6, each once)"
    )]
    UnknownIpFamily {
        /// The offending value.
        value: String,
    },
    /// `spec.ipFamilyPolicy` holds an unknown value.
    #[error(
        "spec.ipFamilyPolicy {value:?} is unknown (expected SingleStack, PreferDualStack or RequireDualStack)"
    )]
    UnknownIpFamilyPolicy {
        /// The offending value.
        value: String,
    },
    /// `spec.externalTrafficPolicy` holds an unknown value.
    #[error("spec.externalTrafficPolicy {value:?} is unknown (expected Cluster or Local)")]
    UnknownTrafficPolicy {
        /// The offending value.
        value: String,
    },
}

impl RequestError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::AnnotationBadIp { .. } => "malformed_annotation",
            RequestError::AnnotationSameFamilyTwice { .. } => "annotation_same_family_twice",
            RequestError::AnnotationsDisagree { .. } => "annotations_disagree",
            RequestError::BadLoadBalancerIp { .. } => "invalid_load_balancer_ip",
            RequestError::LoadBalancerIpDisagrees { .. } => "load_balancer_ip_disagrees",
            RequestError::UnknownProtocol { .. } => "unknown_protocol",
            RequestError::UnknownIpFamily { .. } => "unknown_ip_family",
            RequestError::UnknownIpFamilyPolicy { .. } => "unknown_ip_family_policy",
            RequestError::UnknownTrafficPolicy { .. } => "unknown_traffic_policy",
        }
    }
}
