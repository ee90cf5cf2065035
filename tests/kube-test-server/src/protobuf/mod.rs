//! Request bodies in `application/vnd.kubernetes.protobuf`, turned into the
//! JSON objects the rest of the server handles.
//!
//! kubectl's typed clients (`kubectl create namespace|deployment|configmap|
//! secret|service`) send built-in kinds as protobuf, and client-go never
//! retries one with JSON after a 415 (its 415 fallback covers CBOR only), so
//! the server has to read them. The wire format is `k8s\0` followed by a
//! `runtime.Unknown` whose `raw` is the object's message; `k8s-pb` (prost)
//! decodes both, and [`kinds`] maps each message to its JSON field names.
//!
//! Only the kinds and fields those commands send are mapped. Anything else
//! set in a protobuf body is answered 415 naming the field, never dropped.

mod kinds;

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};

/// The media type client-go sends protobuf bodies with.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// The built-in kinds whose protobuf bodies are decoded.
const KINDS: &str = "v1 Namespace, v1 ConfigMap, v1 Secret, v1 Service, apps/v1 Deployment";

/// Whether a `Content-Type` header names the protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes a protobuf request body into the object's JSON form, with
/// `apiVersion` and `kind` from its envelope.
///
/// ```ignore
/// let obj = protobuf::decode(&body)?; // {"apiVersion": "v1", "kind": "Namespace", ...}
/// ```
pub fn decode(body: &[u8]) -> Result<Value> {
    let inner = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::BadRequest("protobuf body does not start with the k8s\\0 prefix".into())
    })?;
    let envelope = Unknown::decode(inner).map_err(bad_protobuf)?;
    if envelope
        .content_encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "protobuf content encoding {:?} is not supported",
            envelope.content_encoding.unwrap_or_default()
        )));
    }
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = envelope.raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => convert::<k8s_pb::api::core::v1::Namespace>(&raw)?,
        ("v1", "ConfigMap") => convert::<k8s_pb::api::core::v1::ConfigMap>(&raw)?,
        ("v1", "Secret") => convert::<k8s_pb::api::core::v1::Secret>(&raw)?,
        ("v1", "Service") => convert::<k8s_pb::api::core::v1::Service>(&raw)?,
        ("apps/v1", "Deployment") => convert::<k8s_pb::api::apps::v1::Deployment>(&raw)?,
        _ => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "kube-test-server decodes protobuf only for {KINDS} (got {api_version} {kind}); \
                 send {api_version} {kind} as application/json"
            )))
        }
    };
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

fn convert<M: Message + Default + ToJson>(raw: &[u8]) -> Result<Value> {
    M::decode(raw).map_err(bad_protobuf)?.to_json("")
}

fn bad_protobuf(e: prost::DecodeError) -> ApiError {
    ApiError::BadRequest(format!("error decoding protobuf body: {e}"))
}

/// A field that is set but has no JSON mapping here: refused, not dropped.
fn unsupported(path: &str, field: &str) -> ApiError {
    ApiError::UnsupportedMediaType(format!(
        "kube-test-server does not decode {} from protobuf (only what kubectl create sets); \
         send the object as application/json, e.g. with kubectl apply -f",
        join(path, field)
    ))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// A decoded protobuf value in its Kubernetes JSON form.
trait ToJson {
    /// The JSON value; `path` (e.g. `spec.ports[0]`) names it in errors.
    fn to_json(self, path: &str) -> Result<Value>;
}

/// Sets a field as Go's `omitempty` would: protobuf carries Go's zero values
/// of non-pointer fields (`""`, `0`, `false`, empty messages), which JSON
/// leaves out. `keep` is for pointer fields, where a zero was set on purpose
/// (`replicas: 0`, `allocateLoadBalancerNodePorts: false`).
fn put(map: &mut Map<String, Value>, name: &str, value: Value, keep: bool) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => !keep && n.as_f64() == Some(0.0),
        Value::Bool(b) => !keep && !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    if !empty {
        map.insert(name.to_string(), value);
    }
}

/// Whether a field differs from its default (unset) value.
fn is_set<T: Default + PartialEq>(value: &T) -> bool {
    *value != T::default()
}

/// Maps a k8s-pb message to JSON, naming each field's JSON key. Fields listed
/// under `unsupported` must be unset. The destructuring has no `..`, so a
/// field that a new k8s-pb adds fails the build until it is placed here.
macro_rules! message {
    ($ty:ty {
        $($field:ident: $json:literal $($keep:ident)?),* $(,)?
    } unsupported {
        $($skip:ident: $skip_json:literal),* $(,)?
    }) => {
        impl $crate::protobuf::ToJson for $ty {
            fn to_json(self, path: &str) -> $crate::error::Result<serde_json::Value> {
                let Self { $($field,)* $($skip,)* } = self;
                $(
                    if $crate::protobuf::is_set(&$skip) {
                        return Err($crate::protobuf::unsupported(path, $skip_json));
                    }
                )*
                #[allow(unused_mut)]
                let mut map = serde_json::Map::new();
                $(
                    let keep = stringify!($($keep)?) == "keep";
                    let value = $field.to_json(&$crate::protobuf::join(path, $json))?;
                    $crate::protobuf::put(&mut map, $json, value, keep);
                )*
                Ok(serde_json::Value::Object(map))
            }
        }
    };
}
use message;

impl ToJson for String {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(Value::String(self))
    }
}

impl ToJson for bool {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(Value::Bool(self))
    }
}

impl ToJson for i32 {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(json!(self))
    }
}

impl ToJson for i64 {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(json!(self))
    }
}

/// `bytes` fields (Secret `data`) are base64 in JSON.
impl ToJson for Vec<u8> {
    fn to_json(self, _: &str) -> Result<Value> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(self, path: &str) -> Result<Value> {
        self.map_or(Ok(Value::Null), |v| v.to_json(path))
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(self, path: &str) -> Result<Value> {
        self.into_iter()
            .enumerate()
            .map(|(i, v)| v.to_json(&format!("{path}[{i}]")))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array)
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(self, path: &str) -> Result<Value> {
        self.into_iter()
            .map(|(k, v)| {
                let value = v.to_json(&format!("{path}[{k}]"))?;
                Ok((k, value))
            })
            .collect::<Result<Map<_, _>>>()
            .map(Value::Object)
    }
}

#[cfg(test)]
mod tests;
