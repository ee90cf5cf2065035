//! `meta.k8s.io/v1` Tables for `kubectl get`: printer columns for Services,
//! Namespaces, Nodes, ConfigMaps and Leases like the real server's, CRD
//! `additionalPrinterColumns` through simple JSONPath, and the default
//! NAME / CREATED AT table for everything else.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::resources::ResourceDef;

fn col(name: &str, ty: &str, format: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

/// Age as upstream's `duration.HumanDuration` prints it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

fn age_of(ts: &Value) -> String {
    match ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value) -> String {
    age_of(&obj["metadata"]["creationTimestamp"])
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn service_cells(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = or_none(spec["clusterIP"].as_str().unwrap_or("").to_string());
    let mut external: Vec<String> = Vec::new();
    match ty {
        "LoadBalancer" => {
            for ing in o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for key in ["ip", "hostname"] {
                    if let Some(s) = ing[key].as_str() {
                        external.push(s.to_string());
                    }
                }
            }
            external.extend(strings(&spec["externalIPs"]));
            if external.is_empty() {
                external.push("<pending>".into());
            }
        }
        "ExternalName" => external.push(spec["externalName"].as_str().unwrap_or("").to_string()),
        _ => external.extend(strings(&spec["externalIPs"])),
    }
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_u64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                _ => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector: Vec<String> = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    vec![
        json!(ty),
        json!(cluster_ip),
        json!(or_none(external.join(","))),
        json!(or_none(ports.join(","))),
        json!(age(o)),
        json!(or_none(selector.join(","))),
    ]
}

fn node_cells(o: &Value) -> Vec<Value> {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    vec![
        json!(ready),
        json!(or_none(roles.join(","))),
        json!(age(o)),
        json!(o["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or("")),
    ]
}

/// Splits a JSONPath on dots outside brackets (filters contain dots).
fn split_path(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    parts
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0].b`, `.a[*].b`).
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![obj.clone()];
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    for seg in split_path(path).into_iter().filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']'))),
            None => (seg, None),
        };
        let mut next = Vec::new();
        for v in &current {
            let v = if name.is_empty() {
                v.clone()
            } else {
                v[name].clone()
            };
            match index {
                None => next.push(v),
                Some("*") => next.extend(v.as_array().cloned().unwrap_or_default()),
                Some(f) if f.starts_with("?(@.") => {
                    // A filter such as [?(@.type=="Ready")].
                    let cond = f.trim_start_matches("?(@.").trim_end_matches(')');
                    if let Some((field, want)) = cond.split_once("==") {
                        let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                        let items = v.as_array().cloned().unwrap_or_default();
                        next.extend(
                            items
                                .into_iter()
                                .filter(|i| i[field.trim()].as_str() == Some(want)),
                        );
                    }
                }
                Some(i) => {
                    if let Ok(i) = i.parse::<usize>() {
                        next.push(v[i].clone());
                    }
                }
            }
        }
        current = next;
    }
    current.into_iter().filter(|v| !v.is_null()).collect()
}

fn render_cell(values: &[Value], ty: &str) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    if ty == "date" {
        return json!(age_of(&values[0]));
    }
    if values.len() == 1 && ty != "string" && !values[0].is_array() && !values[0].is_object() {
        return values[0].clone();
    }
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    json!(parts.join(","))
}

/// Computes a row's cells after NAME.
type CellsFn = Box<dyn Fn(&Value) -> Vec<Value>>;

fn definitions_and_cells(def: &ResourceDef, version: &str) -> (Vec<Value>, CellsFn) {
    let name_col = col("Name", "string", "name", 0);
    match def.plural.as_str() {
        "services" if def.group.is_empty() => (
            vec![
                name_col,
                col("Type", "string", "", 0),
                col("Cluster-IP", "string", "", 0),
                col("External-IP", "string", "", 0),
                col("Port(s)", "string", "", 0),
                col("Age", "string", "", 0),
                col("Selector", "string", "", 1),
            ],
            Box::new(service_cells),
        ),
        "namespaces" => (
            vec![
                name_col,
                col("Status", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(|o: &Value| {
                vec![
                    json!(o["status"]["phase"].as_str().unwrap_or("")),
                    json!(age(o)),
                ]
            }),
        ),
        "nodes" => (
            vec![
                name_col,
                col("Status", "string", "", 0),
                col("Roles", "string", "", 0),
                col("Age", "string", "", 0),
                col("Version", "string", "", 0),
            ],
            Box::new(node_cells),
        ),
        "configmaps" => (
            vec![
                name_col,
                col("Data", "integer", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(|o: &Value| {
                let n = o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len());
                vec![json!(n), json!(age(o))]
            }),
        ),
        "leases" => (
            vec![
                name_col,
                col("Holder", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(|o: &Value| {
                vec![
                    json!(o["spec"]["holderIdentity"].as_str().unwrap_or("")),
                    json!(age(o)),
                ]
            }),
        ),
        _ => {
            let columns = def
                .version(version)
                .map(|v| v.columns.clone())
                .unwrap_or_default();
            if columns.is_empty() {
                return (
                    vec![name_col, col("Created At", "date", "", 0)],
                    Box::new(|o: &Value| vec![o["metadata"]["creationTimestamp"].clone()]),
                );
            }
            let mut defs = vec![name_col];
            defs.extend(columns.iter().map(|c| {
                let ty = if c.type_ == "date" { "string" } else { c.type_.as_str() };
                json!({"name": c.name, "type": ty, "format": c.format, "description": c.description, "priority": c.priority})
            }));
            (
                defs,
                Box::new(move |o: &Value| {
                    columns
                        .iter()
                        .map(|c| render_cell(&json_path(o, &c.json_path), &c.type_))
                        .collect()
                }),
            )
        }
    }
}

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parses the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A Table for `items`, with the list metadata given.
pub fn table(
    def: &ResourceDef,
    version: &str,
    items: &[Arc<Value>],
    list_meta: Value,
    include: Include,
    present: &dyn Fn(&Value) -> Value,
) -> Value {
    let (columns, cells) = definitions_and_cells(def, version);
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut c = vec![json!(o["metadata"]["name"])];
            c.extend(cells(o));
            let mut row = json!({"cells": c});
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                }
                Include::Object => row["object"] = present(o),
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }

    #[test]
    fn a_load_balancer_without_ingress_is_pending() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "clusterIP": "192.0.2.129",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}, "status": {"loadBalancer": {}}});
        let cells = service_cells(&svc);
        assert_eq!(cells[0], "LoadBalancer");
        assert_eq!(cells[2], "<pending>");
        assert_eq!(cells[3], "80:30080/TCP");
        let mut assigned = svc.clone();
        assigned["status"]["loadBalancer"]["ingress"] = json!([{"ip": "198.51.100.7"}]);
        assert_eq!(service_cells(&assigned)[2], "198.51.100.7");
    }

    #[test]
    fn json_paths_walk_fields_and_indexes() {
        let o = json!({"spec": {"addresses": ["a", "b"], "conds": [{"type": "X"}]}});
        assert_eq!(json_path(&o, ".spec.addresses"), vec![json!(["a", "b"])]);
        assert_eq!(json_path(&o, ".spec.conds[0].type"), vec![json!("X")]);
        assert_eq!(json_path(&o, ".spec.conds[*].type"), vec![json!("X")]);
        assert_eq!(
            json_path(&o, ".spec.conds[?(@.type==\"X\")].type"),
            vec![json!("X")]
        );
        assert!(json_path(&o, ".spec.conds[?(@.type==\"Y\")].type").is_empty());
        assert_eq!(
            render_cell(&json_path(&o, ".spec.addresses"), "string"),
            json!("[\"a\",\"b\"]")
        );
    }
}
