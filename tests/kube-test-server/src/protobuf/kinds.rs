//! The JSON names of the decoded kinds' fields, as the Go types' `json` tags
//! spell them. `keep` marks pointer fields, whose zero value is meaningful.

use serde_json::{json, Value};

use k8s_pb::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    RollingUpdateDeployment,
};
use k8s_pb::api::core::v1::{
    ClientIpConfig, ConfigMap, Container, ContainerPort, EnvVar, LoadBalancerIngress,
    LoadBalancerStatus, LocalObjectReference, Namespace, NamespaceCondition, NamespaceSpec,
    NamespaceStatus, PodSpec, PodTemplateSpec, PortStatus, ResourceRequirements, Secret, Service,
    ServicePort, ServiceSpec, ServiceStatus, SessionAffinityConfig, Toleration,
};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Time,
};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;

use super::{message, ToJson};
use crate::error::{ApiError, Result};

/// RFC 3339 in UTC, seconds precision, as `metav1.Time` marshals; the zero
/// time (what Go sends for an unset `creationTimestamp`) is absent.
impl ToJson for Time {
    fn to_json(self, path: &str) -> Result<Value> {
        let seconds = self.seconds.unwrap_or(0);
        if seconds == 0 && self.nanos.unwrap_or(0) == 0 {
            return Ok(Value::Null);
        }
        let t = jiff::Timestamp::from_second(seconds)
            .map_err(|e| ApiError::BadRequest(format!("{path}: {e}")))?;
        Ok(json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
    }
}

/// `type` 1 is a string, anything else an int.
impl ToJson for IntOrString {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(match self.r#type {
            Some(1) => json!(self.str_val.unwrap_or_default()),
            _ => json!(self.int_val.unwrap_or(0)),
        })
    }
}

impl ToJson for Quantity {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(json!(self.string.unwrap_or_default()))
    }
}

message!(ObjectMeta {
    name: "name",
    generate_name: "generateName",
    namespace: "namespace",
    self_link: "selfLink",
    uid: "uid",
    resource_version: "resourceVersion",
    generation: "generation",
    creation_timestamp: "creationTimestamp",
    deletion_timestamp: "deletionTimestamp",
    deletion_grace_period_seconds: "deletionGracePeriodSeconds" keep,
    labels: "labels",
    annotations: "annotations",
    owner_references: "ownerReferences",
    finalizers: "finalizers",
} unsupported {
    managed_fields: "managedFields",
});

message!(OwnerReference {
    api_version: "apiVersion",
    kind: "kind",
    name: "name",
    uid: "uid",
    controller: "controller" keep,
    block_owner_deletion: "blockOwnerDeletion" keep,
} unsupported {});

message!(LabelSelector {
    match_labels: "matchLabels",
    match_expressions: "matchExpressions",
} unsupported {});

message!(LabelSelectorRequirement {
    key: "key",
    operator: "operator",
    values: "values",
} unsupported {});

message!(Namespace {
    metadata: "metadata",
    spec: "spec",
    status: "status",
} unsupported {});

message!(NamespaceSpec { finalizers: "finalizers" } unsupported {});

message!(NamespaceStatus {
    phase: "phase",
    conditions: "conditions",
} unsupported {});

message!(NamespaceCondition {
    r#type: "type",
    status: "status",
    last_transition_time: "lastTransitionTime",
    reason: "reason",
    message: "message",
} unsupported {});

message!(Condition {
    r#type: "type",
    status: "status",
    observed_generation: "observedGeneration",
    last_transition_time: "lastTransitionTime",
    reason: "reason",
    message: "message",
} unsupported {});

message!(ConfigMap {
    metadata: "metadata",
    immutable: "immutable" keep,
    data: "data",
    binary_data: "binaryData",
} unsupported {});

message!(Secret {
    metadata: "metadata",
    immutable: "immutable" keep,
    data: "data",
    string_data: "stringData",
    r#type: "type",
} unsupported {});

message!(Service {
    metadata: "metadata",
    spec: "spec",
    status: "status",
} unsupported {});

message!(ServiceSpec {
    ports: "ports",
    selector: "selector",
    cluster_ip: "clusterIP",
    cluster_ips: "clusterIPs",
    r#type: "type",
    external_ips: "externalIPs",
    session_affinity: "sessionAffinity",
    load_balancer_ip: "loadBalancerIP",
    load_balancer_source_ranges: "loadBalancerSourceRanges",
    external_name: "externalName",
    external_traffic_policy: "externalTrafficPolicy",
    health_check_node_port: "healthCheckNodePort",
    publish_not_ready_addresses: "publishNotReadyAddresses",
    session_affinity_config: "sessionAffinityConfig",
    ip_families: "ipFamilies",
    ip_family_policy: "ipFamilyPolicy",
    allocate_load_balancer_node_ports: "allocateLoadBalancerNodePorts" keep,
    load_balancer_class: "loadBalancerClass",
    internal_traffic_policy: "internalTrafficPolicy",
    traffic_distribution: "trafficDistribution",
} unsupported {});

message!(ServicePort {
    name: "name",
    protocol: "protocol",
    app_protocol: "appProtocol",
    port: "port",
    target_port: "targetPort",
    node_port: "nodePort",
} unsupported {});

message!(SessionAffinityConfig { client_ip: "clientIP" } unsupported {});

message!(ClientIpConfig { timeout_seconds: "timeoutSeconds" keep } unsupported {});

message!(ServiceStatus {
    load_balancer: "loadBalancer",
    conditions: "conditions",
} unsupported {});

message!(LoadBalancerStatus { ingress: "ingress" } unsupported {});

message!(LoadBalancerIngress {
    ip: "ip",
    hostname: "hostname",
    ip_mode: "ipMode",
    ports: "ports",
} unsupported {});

message!(PortStatus {
    port: "port",
    protocol: "protocol",
    error: "error",
} unsupported {});

message!(Deployment {
    metadata: "metadata",
    spec: "spec",
    status: "status",
} unsupported {});

message!(DeploymentSpec {
    replicas: "replicas" keep,
    selector: "selector",
    template: "template",
    strategy: "strategy",
    min_ready_seconds: "minReadySeconds",
    revision_history_limit: "revisionHistoryLimit" keep,
    paused: "paused",
    progress_deadline_seconds: "progressDeadlineSeconds" keep,
} unsupported {});

message!(DeploymentStrategy {
    r#type: "type",
    rolling_update: "rollingUpdate",
} unsupported {});

message!(RollingUpdateDeployment {
    max_unavailable: "maxUnavailable" keep,
    max_surge: "maxSurge" keep,
} unsupported {});

message!(DeploymentStatus {
    observed_generation: "observedGeneration",
    replicas: "replicas",
    updated_replicas: "updatedReplicas",
    ready_replicas: "readyReplicas",
    available_replicas: "availableReplicas",
    unavailable_replicas: "unavailableReplicas",
    terminating_replicas: "terminatingReplicas" keep,
    conditions: "conditions",
    collision_count: "collisionCount" keep,
} unsupported {});

message!(DeploymentCondition {
    r#type: "type",
    status: "status",
    last_update_time: "lastUpdateTime",
    last_transition_time: "lastTransitionTime",
    reason: "reason",
    message: "message",
} unsupported {});

message!(PodTemplateSpec {
    metadata: "metadata",
    spec: "spec",
} unsupported {});

message!(PodSpec {
    init_containers: "initContainers",
    containers: "containers",
    restart_policy: "restartPolicy",
    termination_grace_period_seconds: "terminationGracePeriodSeconds" keep,
    active_deadline_seconds: "activeDeadlineSeconds" keep,
    dns_policy: "dnsPolicy",
    node_selector: "nodeSelector",
    service_account_name: "serviceAccountName",
    service_account: "serviceAccount",
    automount_service_account_token: "automountServiceAccountToken" keep,
    node_name: "nodeName",
    host_network: "hostNetwork",
    host_pid: "hostPID",
    host_ipc: "hostIPC",
    share_process_namespace: "shareProcessNamespace" keep,
    image_pull_secrets: "imagePullSecrets",
    hostname: "hostname",
    subdomain: "subdomain",
    scheduler_name: "schedulerName",
    tolerations: "tolerations",
    priority_class_name: "priorityClassName",
    priority: "priority" keep,
    runtime_class_name: "runtimeClassName",
    enable_service_links: "enableServiceLinks" keep,
    preemption_policy: "preemptionPolicy",
    set_hostname_as_fqdn: "setHostnameAsFQDN" keep,
    host_users: "hostUsers" keep,
    hostname_override: "hostnameOverride",
} unsupported {
    volumes: "volumes",
    ephemeral_containers: "ephemeralContainers",
    security_context: "securityContext",
    affinity: "affinity",
    host_aliases: "hostAliases",
    dns_config: "dnsConfig",
    readiness_gates: "readinessGates",
    overhead: "overhead",
    topology_spread_constraints: "topologySpreadConstraints",
    os: "os",
    scheduling_gates: "schedulingGates",
    resource_claims: "resourceClaims",
    resources: "resources",
    workload_ref: "workloadRef",
});

message!(Container {
    name: "name",
    image: "image",
    command: "command",
    args: "args",
    working_dir: "workingDir",
    ports: "ports",
    env: "env",
    resources: "resources",
    restart_policy: "restartPolicy",
    termination_message_path: "terminationMessagePath",
    termination_message_policy: "terminationMessagePolicy",
    image_pull_policy: "imagePullPolicy",
    stdin: "stdin",
    stdin_once: "stdinOnce",
    tty: "tty",
} unsupported {
    env_from: "envFrom",
    resize_policy: "resizePolicy",
    restart_policy_rules: "restartPolicyRules",
    volume_mounts: "volumeMounts",
    volume_devices: "volumeDevices",
    liveness_probe: "livenessProbe",
    readiness_probe: "readinessProbe",
    startup_probe: "startupProbe",
    lifecycle: "lifecycle",
    security_context: "securityContext",
});

message!(ContainerPort {
    name: "name",
    host_port: "hostPort",
    container_port: "containerPort",
    protocol: "protocol",
    host_ip: "hostIP",
} unsupported {});

message!(EnvVar {
    name: "name",
    value: "value",
} unsupported {
    value_from: "valueFrom",
});

message!(ResourceRequirements {
    limits: "limits",
    requests: "requests",
} unsupported {
    claims: "claims",
});

message!(LocalObjectReference { name: "name" } unsupported {});

message!(Toleration {
    key: "key",
    operator: "operator",
    value: "value",
    effect: "effect",
    toleration_seconds: "tolerationSeconds" keep,
} unsupported {});
