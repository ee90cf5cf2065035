//! Test support: a small stand-in for the API server's validation of custom
//! resources (OpenAPI keywords plus CEL rules via kube-cel), so tests can
//! show that the generated schema accepts good objects and rejects bad ones.
#![allow(dead_code)] // each test binary uses a different subset

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The `openAPIV3Schema` of a CRD's only version, as JSON.
pub fn openapi(crd: &CustomResourceDefinition) -> Value {
    assert_eq!(crd.spec.versions.len(), 1, "one served version expected");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Every YAML document in `text`, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(doc).expect("valid YAML");
            serde_json::to_value(value).expect("YAML maps to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Everything the API server would reject `object` for, one line each:
/// OpenAPI keyword violations, fields the schema does not know (which the
/// server would prune or, with strict field validation, refuse) and failed
/// CEL rules.
pub fn rejections(crd: &CustomResourceDefinition, object: &Value) -> Vec<String> {
    let schema = openapi(crd);
    let mut problems = Vec::new();
    let Some(fields) = object.as_object() else {
        return vec!["object is not a map".into()];
    };
    let properties = schema["properties"]
        .as_object()
        .expect("root has properties");
    for (key, value) in fields {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match properties.get(key) {
            Some(sub) => openapi_check(sub, value, key, &mut problems),
            None => problems.push(format!("{key}: unknown field")),
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().expect("required names are strings");
        if !fields.contains_key(required) {
            problems.push(format!("{required}: required"));
        }
    }
    if let Err(errors) = kube_cel::Validator::new().validate(&schema, object, None) {
        for e in errors.as_slice() {
            problems.push(format!("{}: {}", e.field_path, e.message));
        }
    }
    problems
}

fn openapi_check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) {
            problems.push(format!("{path}: must not be null"));
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !type_ok {
        problems.push(format!("{path}: must be of type {}", schema["type"]));
        return;
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|max| len > max) {
            problems.push(format!("{path}: longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|min| len < min) {
            problems.push(format!("{path}: shorter than {}", schema["minLength"]));
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            let re = regex::Regex::new(pattern).expect("schema pattern compiles");
            if !re.is_match(s) {
                problems.push(format!("{path}: {s:?} does not match {pattern}"));
            }
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            problems.push(format!("{path}: less than {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            problems.push(format!("{path}: greater than {}", schema["maximum"]));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if schema["maxItems"].as_u64().is_some_and(|max| len > max) {
            problems.push(format!("{path}: more than {} items", schema["maxItems"]));
        }
        if schema["minItems"].as_u64().is_some_and(|min| len < min) {
            problems.push(format!("{path}: fewer than {} items", schema["minItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            openapi_check(&schema["items"], item, &format!("{path}[{i}]"), problems);
        }
    }
    if let Some(fields) = value.as_object() {
        for (key, sub) in fields {
            let sub_path = format!("{path}.{key}");
            if let Some(sub_schema) = schema["properties"].get(key) {
                openapi_check(sub_schema, sub, &sub_path, problems);
            } else if schema["additionalProperties"].is_object() {
                openapi_check(&schema["additionalProperties"], sub, &sub_path, problems);
            } else {
                problems.push(format!("{sub_path}: unknown field"));
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().expect("required names are strings");
            if !fields.contains_key(required) {
                problems.push(format!("{path}.{required}: required"));
            }
        }
    }
}
