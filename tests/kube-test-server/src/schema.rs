//! Structural OpenAPI v3 schemas of CRDs: pruning, defaulting and validation
//! with the field paths and messages the real server produces.
//!
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{render_value, Cause};

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes fields the schema does not declare, as the real server does for
/// structural schemas, and nulls in fields that are not `nullable`. At the
/// root, `apiVersion`, `kind` and `metadata` are kept.
pub fn prune(schema: &Value, value: &mut Value, root: bool) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_meta = root || embedded;
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if keep_meta && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) => {
                        let v = map.get_mut(&key).expect("key exists");
                        if v.is_null() && !flag(sub, "nullable") {
                            map.remove(&key);
                        } else {
                            prune(sub, v, false);
                        }
                    }
                    None if preserve => {}
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    prune(sub, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Fills `default` values for missing properties, outermost first.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    if !map.contains_key(key) {
                        if let Some(d) = sub.get("default") {
                            map.insert(key.clone(), d.clone());
                        }
                    }
                    if let Some(v) = map.get_mut(key) {
                        apply_defaults(sub, v);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(add, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    apply_defaults(sub, item);
                }
            }
        }
        _ => {}
    }
}

fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `s` satisfies a Kubernetes-supported `format`; unknown formats pass.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.parse::<ipnet::IpNet>().is_ok(),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
        }
        "uuid" | "uuid3" | "uuid4" | "uuid5" => {
            let re = compiled(
                "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
            );
            re.is_some_and(|r| r.is_match(s))
        }
        "hostname" => {
            let re = compiled(
                r"^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$",
            );
            s.len() <= 253 && re.is_some_and(|r| r.is_match(s))
        }
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "email" => s.contains('@') && !s.starts_with('@') && !s.ends_with('@'),
        "uri" => s.contains(':'),
        "ip" => s.parse::<IpAddr>().is_ok(),
        _ => true,
    }
}

/// Validates `value` against `schema`, appending causes under `path`.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            let ty = schema["type"].as_str().unwrap_or("");
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {shown} in body must be of type {ty}: \"null\""),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(is_integer(value) || value.is_string()) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {shown} in body must be of type integer-or-string: {:?}",
                    render_value(value),
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(ty, value) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {:?}: {shown} in body must be of type {ty}: {:?}",
                    type_name(value),
                    type_name(value)
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(render_value).collect();
            causes.push(Cause::new(
                "FieldValueNotSupported",
                path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    render_value(value),
                    list.join(", ")
                ),
            ));
        }
    }
    let invalid = |causes: &mut Vec<Cause>, detail: String| {
        causes.push(Cause::invalid(path, value, detail));
    };
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    causes.push(Cause::new(
                        "FieldValueTooLong",
                        path,
                        format!("Too long: may not be more than {max} bytes"),
                    ));
                }
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    invalid(
                        causes,
                        format!("{shown} in body should be at least {min} chars long"),
                    );
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if compiled(p).is_some_and(|re| !re.is_match(s)) {
                    invalid(causes, format!("{shown} in body should match '{p}'"));
                }
            }
            if let Some(f) = schema.get("format").and_then(Value::as_str) {
                if !format_ok(f, s) {
                    invalid(
                        causes,
                        format!("{shown} in body must be of type {f}: {s:?}"),
                    );
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let excl_min = flag(schema, "exclusiveMinimum");
            let excl_max = flag(schema, "exclusiveMaximum");
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if x < min || (excl_min && x == min) {
                    let op = if excl_min {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    invalid(
                        causes,
                        format!("{shown} in body should be {op} {}", schema["minimum"]),
                    );
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if x > max || (excl_max && x == max) {
                    let op = if excl_max {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    invalid(
                        causes,
                        format!("{shown} in body should be {op} {}", schema["maximum"]),
                    );
                }
            }
            if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64) {
                if m != 0.0 && (x / m).fract() != 0.0 {
                    invalid(
                        causes,
                        format!(
                            "{shown} in body should be a multiple of {}",
                            schema["multipleOf"]
                        ),
                    );
                }
            }
            if let Some(f) = schema.get("format").and_then(Value::as_str) {
                let ok = match f {
                    "int32" => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    "int64" => n.as_i64().is_some(),
                    _ => true,
                };
                if !ok {
                    invalid(
                        causes,
                        format!("{shown} in body must be of type {f}: {n:?}"),
                    );
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if len > max {
                    causes.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {len}: must have at most {max} items"),
                    ));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if len < min {
                    invalid(
                        causes,
                        format!("{shown} in body should have at least {min} items"),
                    );
                }
            }
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(sub, item, &format!("{path}[{i}]"), causes);
                }
            }
            validate_list_type(schema, items, path, causes);
        }
        Value::Object(map) => validate_object(schema, map, path, causes),
        _ => {}
    }
    validate_combinators(schema, value, path, causes);
}

fn validate_list_type(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{path}[{i}]"),
                        format!("Duplicate value: {}", render_value(item)),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let id: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
                if !seen.insert(id.clone()) {
                    let shown: Map<String, Value> = keys
                        .iter()
                        .map(|k| (k.to_string(), item[*k].clone()))
                        .collect();
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{path}[{i}]"),
                        format!("Duplicate value: {}", Value::Object(shown)),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn validate_object(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for req in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(k) = req.as_str() {
            if !map.contains_key(k) {
                causes.push(Cause::required(child_path(path, k)));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if count > max {
            causes.push(Cause::new(
                "FieldValueTooMany",
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if count < min {
            let shown = if path.is_empty() { "<root>" } else { path };
            causes.push(Cause::invalid(
                path,
                &Value::Number(count.into()),
                format!("{shown} in body should have at least {min} properties"),
            ));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
            validate(sub, v, &child_path(path, k), causes);
        }
    }
}

fn validate_combinators(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    let passes = |s: &Value| {
        let mut c = Vec::new();
        validate(s, value, path, &mut c);
        c.is_empty()
    };
    for s in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate(s, value, path, causes);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(passes) {
            causes.push(Cause::invalid(
                path,
                value,
                format!("{shown} in body must validate at least one schema (anyOf)"),
            ));
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        if one.iter().filter(|s| passes(s)).count() != 1 {
            causes.push(Cause::invalid(
                path,
                value,
                format!("{shown} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not") {
        if passes(not) {
            causes.push(Cause::invalid(
                path,
                value,
                format!("{shown} in body must not validate the schema (not)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["addresses"],
                    "properties": {
                        "addresses": {"type": "array", "minItems": 1, "maxItems": 2,
                            "items": {"type": "string", "pattern": "^[0-9a-f.:/-]+$", "maxLength": 20}},
                        "autoAssign": {"type": "boolean", "default": true},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "priority": {"type": "integer", "minimum": 0, "maximum": 10},
                        "gateway": {"type": "string", "format": "ipv4"},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    fn errors(obj: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(&pool_schema(), &obj, "", &mut c);
        c.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn violations_name_the_field_path_and_the_rule() {
        let errs = errors(json!({"spec": {
            "addresses": ["192.0.2.0/24", "NOPE", "x"],
            "mode": "c", "priority": 11, "gateway": "300.1.1.1"
        }}));
        assert_eq!(
            errs,
            vec![
                "spec.addresses: Too many: 3: must have at most 2 items",
                "spec.addresses[1]: Invalid value: \"NOPE\": spec.addresses[1] in body should match '^[0-9a-f.:/-]+$'",
                "spec.addresses[2]: Invalid value: \"x\": spec.addresses[2] in body should match '^[0-9a-f.:/-]+$'",
                "spec.gateway: Invalid value: \"300.1.1.1\": spec.gateway in body must be of type ipv4: \"300.1.1.1\"",
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.priority: Invalid value: 11: spec.priority in body should be less than or equal to 10",
            ]
        );
    }

    #[test]
    fn missing_required_fields_and_wrong_types_are_reported() {
        assert_eq!(
            errors(json!({"spec": {}})),
            vec!["spec.addresses: Required value"]
        );
        assert_eq!(
            errors(json!({"spec": {"addresses": ["1"], "priority": "high"}})),
            vec!["spec.priority: Invalid value: \"string\": spec.priority in body must be of type integer: \"string\""]
        );
    }

    #[test]
    fn pruning_drops_unknown_fields_but_keeps_preserved_ones() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "junk": 1, "spec": {"addresses": [], "unknown": true, "extra": {"any": {"thing": 1}}}});
        prune(&pool_schema(), &mut obj, true);
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"addresses": [], "extra": {"any": {"thing": 1}}}})
        );
    }

    #[test]
    fn defaults_fill_only_missing_fields() {
        let mut obj = json!({"spec": {"addresses": []}});
        apply_defaults(&pool_schema(), &mut obj);
        assert_eq!(obj["spec"]["autoAssign"], true);
        let mut obj = json!({"spec": {"autoAssign": false}});
        apply_defaults(&pool_schema(), &mut obj);
        assert_eq!(obj["spec"]["autoAssign"], false);
    }
}
