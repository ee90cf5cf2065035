use k8s_pb::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_pb::api::core::v1::{
    Container, Pod, PodSpec, PodTemplateSpec, Secret, Service, ServicePort, ServiceSpec, Volume,
};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::{decode, is_protobuf};

/// What `kubectl create namespace demo` (v1.33) sends, byte for byte.
const KUBECTL_CREATE_NAMESPACE: &[u8] = &[
    0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x4e, 0x61, 0x6d, 0x65,
    0x73, 0x70, 0x61, 0x63, 0x65, 0x12, 0x1c, 0x0a, 0x14, 0x0a, 0x04, 0x64, 0x65, 0x6d, 0x6f, 0x12,
    0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x00, 0x1a,
    0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
];

/// What `kubectl create deployment web --image=nginx --port 8080 -n demo`
/// (v1.33) sends, byte for byte.
const KUBECTL_CREATE_DEPLOYMENT: &[u8] = &[
    0x6b, 0x38, 0x73, 0x00, 0x0a, 0x15, 0x0a, 0x07, 0x61, 0x70, 0x70, 0x73, 0x2f, 0x76, 0x31, 0x12,
    0x0a, 0x44, 0x65, 0x70, 0x6c, 0x6f, 0x79, 0x6d, 0x65, 0x6e, 0x74, 0x12, 0xbd, 0x01, 0x0a, 0x23,
    0x0a, 0x03, 0x77, 0x65, 0x62, 0x12, 0x00, 0x1a, 0x04, 0x64, 0x65, 0x6d, 0x6f, 0x22, 0x00, 0x2a,
    0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x5a, 0x0a, 0x0a, 0x03, 0x61, 0x70, 0x70, 0x12, 0x03,
    0x77, 0x65, 0x62, 0x12, 0x87, 0x01, 0x08, 0x01, 0x12, 0x0c, 0x0a, 0x0a, 0x0a, 0x03, 0x61, 0x70,
    0x70, 0x12, 0x03, 0x77, 0x65, 0x62, 0x1a, 0x6d, 0x0a, 0x1c, 0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00,
    0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x5a, 0x0a, 0x0a, 0x03, 0x61, 0x70,
    0x70, 0x12, 0x03, 0x77, 0x65, 0x62, 0x12, 0x4d, 0x12, 0x2f, 0x0a, 0x05, 0x6e, 0x67, 0x69, 0x6e,
    0x78, 0x12, 0x05, 0x6e, 0x67, 0x69, 0x6e, 0x78, 0x2a, 0x00, 0x32, 0x0b, 0x0a, 0x00, 0x10, 0x00,
    0x18, 0x90, 0x3f, 0x22, 0x00, 0x2a, 0x00, 0x42, 0x00, 0x6a, 0x00, 0x72, 0x00, 0x80, 0x01, 0x00,
    0x88, 0x01, 0x00, 0x90, 0x01, 0x00, 0xa2, 0x01, 0x00, 0x1a, 0x00, 0x32, 0x00, 0x42, 0x00, 0x4a,
    0x00, 0x52, 0x00, 0x58, 0x00, 0x60, 0x00, 0x68, 0x00, 0x82, 0x01, 0x00, 0x8a, 0x01, 0x00, 0x9a,
    0x01, 0x00, 0xc2, 0x01, 0x00, 0x22, 0x02, 0x0a, 0x00, 0x28, 0x00, 0x38, 0x00, 0x1a, 0x0c, 0x08,
    0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00, 0x28, 0x00, 0x38, 0x00, 0x1a, 0x00, 0x22, 0x00,
];

/// The envelope client-go writes around a message.
fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(message.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn meta(name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name: Some(name.into()),
        // Go sends its zero values for non-pointer fields.
        generate_name: Some(String::new()),
        generation: Some(0),
        ..Default::default()
    })
}

#[test]
fn kubectl_create_namespace_decodes_to_the_namespace_json() {
    assert_eq!(
        decode(KUBECTL_CREATE_NAMESPACE).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    );
}

#[test]
fn kubectl_create_deployment_decodes_to_the_deployment_json() {
    assert_eq!(
        decode(KUBECTL_CREATE_DEPLOYMENT).unwrap(),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 8080}],
                    }]},
                },
            },
        })
    );
}

#[test]
fn zero_values_of_pointer_fields_are_kept_and_others_left_out() {
    let deployment = Deployment {
        metadata: meta("idle"),
        spec: Some(DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let obj = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(obj["spec"], json!({"replicas": 0}));
    assert!(obj.get("status").is_none(), "{obj}");

    let service = Service {
        metadata: meta("lb"),
        spec: Some(ServiceSpec {
            r#type: Some("LoadBalancer".into()),
            cluster_ip: Some(String::new()),
            allocate_load_balancer_node_ports: Some(false),
            ports: vec![
                ServicePort {
                    port: Some(80),
                    node_port: Some(0),
                    target_port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("http".into()),
                    }),
                    ..Default::default()
                },
                ServicePort {
                    port: Some(443),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8443),
                        str_val: Some(String::new()),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        status: None,
    };
    let obj = decode(&envelope("v1", "Service", &service)).unwrap();
    assert_eq!(
        obj["spec"],
        json!({
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "targetPort": "http"}, {"port": 443, "targetPort": 8443}],
        })
    );
}

#[test]
fn secret_bytes_become_base64() {
    let secret = Secret {
        metadata: meta("s"),
        data: [("key".to_string(), b"value".to_vec())].into(),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    let obj = decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(obj["data"], json!({"key": "dmFsdWU="}));
    assert_eq!(obj["type"], "Opaque");
}

#[test]
fn a_field_without_a_mapping_is_refused_with_its_path_not_dropped() {
    let deployment = Deployment {
        metadata: meta("web"),
        spec: Some(DeploymentSpec {
            template: Some(PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: Some("c".into()),
                        ..Default::default()
                    }],
                    volumes: vec![Volume {
                        name: Some("data".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let err = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap_err();
    assert_eq!(err.code(), 415);
    assert!(
        err.to_string().contains("spec.template.spec.volumes"),
        "{err}"
    );
}

#[test]
fn a_kind_without_a_mapping_is_415_naming_the_decoded_kinds() {
    let pod = Pod {
        metadata: meta("p"),
        ..Default::default()
    };
    let err = decode(&envelope("v1", "Pod", &pod)).unwrap_err();
    assert_eq!(err.code(), 415);
    let status = err.to_status();
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert!(
        err.to_string().contains("v1 Namespace") && err.to_string().contains("v1 Pod"),
        "{err}"
    );
}

#[test]
fn a_body_that_is_not_kubernetes_protobuf_is_a_bad_request() {
    assert_eq!(decode(b"{\"kind\":\"Namespace\"}").unwrap_err().code(), 400);
    assert_eq!(decode(b"k8s\0\xff\xff\xff").unwrap_err().code(), 400);
}

#[test]
fn the_protobuf_media_type_is_recognised_with_or_without_parameters() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=binary"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf(""));
}
