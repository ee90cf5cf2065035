//! Patch flavours: JSON patch, JSON merge patch, strategic merge patch (for
//! the built-in types, with list merge keys), and an approximation of
//! server-side apply that merges the applied fields.

use serde_json::{Map, Value};

use crate::error::{ApiError, Result};
use crate::resources::{ResourceDef, Special};

/// The patch type, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

const ACCEPTED: &str = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

impl PatchKind {
    /// Parses a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// How a list merges under strategic merge patch / apply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListRule {
    /// The patch's list replaces the object's (atomic).
    Replace,
    /// Items are matched by these key fields and merged.
    MergeKey(Vec<String>),
    /// A set of scalars: union.
    Union,
}

/// Strategic merge rules of the built-in types ferrolb patches, by field
/// path without indices (upstream's `patchStrategy`/`patchMergeKey` tags).
fn builtin_rule(resource: &str, path: &str) -> ListRule {
    let key = |k: &str| ListRule::MergeKey(vec![k.to_string()]);
    match (resource, path) {
        (_, "metadata.finalizers") => ListRule::Union,
        (_, "metadata.ownerReferences") => key("uid"),
        ("services", "spec.ports") => key("port"),
        ("services" | "nodes" | "pods" | "namespaces", "status.conditions") => key("type"),
        ("nodes", "status.addresses") => key("type"),
        ("nodes", "spec.taints") => key("key"),
        ("nodes", "spec.podCIDRs") => ListRule::Union,
        ("pods", "spec.containers" | "spec.initContainers" | "spec.volumes") => key("name"),
        ("pods", "spec.containers.env" | "spec.initContainers.env") => key("name"),
        ("pods", "spec.containers.ports" | "spec.initContainers.ports") => key("containerPort"),
        ("pods", "spec.containers.volumeMounts") => key("mountPath"),
        ("pods", "status.podIPs") => key("ip"),
        _ => ListRule::Replace,
    }
}

/// List rules from a CRD schema (`x-kubernetes-list-type`), for apply.
fn schema_rule(schema: Option<&Value>, path: &str) -> ListRule {
    let mut node = match schema {
        Some(s) => s,
        None => return ListRule::Replace,
    };
    for part in path.split('.') {
        // Walk through arrays' items on the way down.
        while node.get("items").is_some() && node.get("properties").is_none() {
            node = &node["items"];
        }
        node = match node
            .get("properties")
            .and_then(|p| p.get(part))
            .or_else(|| node.get("additionalProperties"))
        {
            Some(n) => n,
            None => return ListRule::Replace,
        };
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => ListRule::MergeKey(
            node["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
        ),
        Some("set") => ListRule::Union,
        _ => ListRule::Replace,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Strips SMP directives and nulls from a value being inserted fresh.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| v.get("$patch").is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `target`.
fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    rule: &dyn Fn(&str) -> ListRule,
) -> Result<()> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = clean(&Value::Object(patch.clone()))
            .as_object()
            .cloned()
            .unwrap_or_default();
        return Ok(());
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                v.as_array(),
            ) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let p = join(path, k);
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(k);
                    continue;
                }
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                merge_map(entry.as_object_mut().expect("object"), pm, &p, rule)?;
            }
            Value::Array(pl) => {
                let current = target
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                target.insert(k.clone(), Value::Array(merge_list(current, pl, &p, rule)?));
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        target.retain(|k, _| retain.iter().any(|r| r == k));
    }
    Ok(())
}

fn merge_list(
    mut current: Vec<Value>,
    patch: &[Value],
    path: &str,
    rule: &dyn Fn(&str) -> ListRule,
) -> Result<Vec<Value>> {
    if patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .map(clean)
            .collect());
    }
    match rule(path) {
        ListRule::Replace => Ok(patch.iter().map(clean).collect()),
        ListRule::Union => {
            for v in patch {
                if !current.contains(v) {
                    current.push(v.clone());
                }
            }
            Ok(current)
        }
        ListRule::MergeKey(keys) => {
            for item in patch {
                let Some(pm) = item.as_object() else {
                    return Err(ApiError::BadRequest(format!(
                        "unable to find api field in struct for the list item at {path}: expected an object"
                    )));
                };
                let matches = |c: &Value| {
                    keys.iter().all(|k| {
                        c.get(k) == pm.get(k) || (c.get(k).is_none() && pm.get(k).is_none())
                    })
                };
                let pos = current.iter().position(matches);
                let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        current.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        if let Some(m) = current[i].as_object_mut() {
                            merge_map(m, pm, path, rule)?;
                        }
                    }
                    (None, false) => current.push(clean(item)),
                }
            }
            Ok(current)
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
}

/// Parses a YAML or JSON document (JSON is YAML).
pub fn parse_yaml(body: &[u8]) -> Result<Value> {
    serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
}

/// Strategic-merges `patch` into `target` with the rules of `def`.
pub fn strategic_merge(
    def: &ResourceDef,
    version: &str,
    target: &mut Value,
    patch: &Value,
) -> Result<()> {
    let schema = def.version(version).and_then(|v| v.schema.as_ref());
    let rule = |p: &str| {
        if def.special == Special::Custom {
            schema_rule(schema, p)
        } else {
            builtin_rule(&def.plural, p)
        }
    };
    let Some(pm) = patch.as_object() else {
        return Err(ApiError::BadRequest(
            "the patch must be a JSON object".into(),
        ));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    merge_map(target.as_object_mut().expect("object"), pm, "", &rule)
}

/// Applies a JSON, merge or strategic patch to `current`.
pub fn apply_patch(
    kind: PatchKind,
    def: &ResourceDef,
    version: &str,
    current: &Value,
    body: &[u8],
) -> Result<Value> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        }
        PatchKind::Merge => {
            let p = parse_json(body)?;
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Strategic => {
            if def.special == Special::Custom {
                return Err(ApiError::UnsupportedMediaType(ACCEPTED.into()));
            }
            strategic_merge(def, version, &mut doc, &parse_json(body)?)?;
        }
        PatchKind::Apply => {
            // Server-side apply approximation: merge the applied fields.
            strategic_merge(def, version, &mut doc, &parse_yaml(body)?)?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{builtins, Registry};
    use serde_json::json;

    fn def(plural: &str) -> ResourceDef {
        builtins().into_iter().find(|d| d.plural == plural).unwrap()
    }

    #[test]
    fn service_ports_merge_by_port_and_ingress_is_replaced_whole() {
        let svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}]}}});
        let patch = json!({"spec": {"ports": [{"port": 443, "name": "tls"}, {"port": 8080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}});
        let out = apply_patch(
            PatchKind::Strategic,
            &def("services"),
            "v1",
            &svc,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http"}, {"port": 443, "name": "tls"}, {"port": 8080}])
        );
        assert_eq!(
            out["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "192.0.2.9"}])
        );
    }

    #[test]
    fn node_conditions_merge_by_type_and_delete_directives_remove_items() {
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "$patch": "delete"}]}});
        let out = apply_patch(
            PatchKind::Strategic,
            &def("nodes"),
            "v1",
            &node,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn null_removes_a_label_and_finalizers_merge_as_a_set() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]}});
        let out = apply_patch(
            PatchKind::Strategic,
            &def("nodes"),
            "v1",
            &obj,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            out["metadata"],
            json!({"labels": {"b": "2"}, "finalizers": ["y"]})
        );
    }

    #[test]
    fn strategic_merge_is_refused_for_custom_resources() {
        let mut d = def("services");
        d.special = Special::Custom;
        let err = apply_patch(PatchKind::Strategic, &d, "v1", &json!({}), b"{}").unwrap_err();
        assert_eq!(err.code(), 415);
        let _ = Registry::default();
    }

    #[test]
    fn a_json_patch_test_that_fails_is_unprocessable() {
        let body = br#"[{"op": "test", "path": "/a", "value": 2}, {"op": "replace", "path": "/a", "value": 3}]"#;
        let err = apply_patch(
            PatchKind::Json,
            &def("configmaps"),
            "v1",
            &json!({"a": 1}),
            body,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        let ok = br#"[{"op": "replace", "path": "/a", "value": 3}]"#;
        assert_eq!(
            apply_patch(
                PatchKind::Json,
                &def("configmaps"),
                "v1",
                &json!({"a": 1}),
                ok
            )
            .unwrap(),
            json!({"a": 3})
        );
    }

    #[test]
    fn custom_resource_lists_follow_their_list_map_keys_under_apply() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}}}}});
        assert_eq!(
            schema_rule(Some(&schema), "spec.items"),
            ListRule::MergeKey(vec!["name".into()])
        );
        assert_eq!(schema_rule(Some(&schema), "spec.other"), ListRule::Replace);
    }
}
