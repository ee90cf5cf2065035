//! Service spec validation, with the field paths and messages of the real
//! server's `ValidateService` for the fields this server checks.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use serde_json::{json, Value};

use crate::error::Cause;

/// Validates a defaulted Service spec.
pub(crate) fn validate_spec(spec: &Value, node_ports: RangeInclusive<u16>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ty = spec["type"].as_str().unwrap_or("");
    const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !TYPES.contains(&ty) {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let headless = spec["clusterIP"] == json!("None");
    if headless && (ty == "LoadBalancer" || ty == "NodePort") {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &json!("None"),
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("spec.externalName"));
    }
    if let Some(policy) = spec["ipFamilyPolicy"].as_str() {
        if !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy) {
            causes.push(Cause::new("FieldValueNotSupported", "spec.ipFamilyPolicy", format!("Unsupported value: {policy:?}: supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"")));
        }
    }
    let fams = spec["ipFamilies"].as_array().cloned().unwrap_or_default();
    for (i, f) in fams.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                format!("spec.ipFamilies[{i}]"),
                format!("Unsupported value: {f}: supported values: \"IPv4\", \"IPv6\""),
            ));
        }
    }
    if fams.len() > 2 || (fams.len() == 2 && fams[0] == fams[1]) {
        causes.push(Cause::invalid(
            "spec.ipFamilies",
            &json!(fams),
            "must contain at most one of each IP family",
        ));
    }
    if fams.len() == 2 && ty != "ExternalName" && !headless {
        match spec["ipFamilyPolicy"].as_str() {
            Some("SingleStack") => causes.push(Cause::invalid(
                "spec.ipFamilies",
                &json!(fams),
                "when spec.ipFamilyPolicy is SingleStack, only one family may be specified",
            )),
            None => causes.push(Cause::required("spec.ipFamilyPolicy")),
            _ => {}
        }
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("spec.ports[{i}].name")));
        } else if !names.insert(name.to_string()) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                format!("spec.ports[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                format!("spec.ports[{i}].port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = p["protocol"].as_str().unwrap_or("");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                format!("spec.ports[{i}].protocol"),
                format!(
                    "Unsupported value: {proto:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""
                ),
            ));
        }
        if let Some(np) = p["nodePort"].as_i64().filter(|n| *n != 0) {
            if ty == "ClusterIP" || ty == "ExternalName" {
                causes.push(Cause::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            } else if np < *node_ports.start() as i64 || np > *node_ports.end() as i64 {
                causes.push(Cause::invalid(format!("spec.ports[{i}].nodePort"), &p["nodePort"], format!("provided port is not in the valid range. The range of valid ports is {}-{}", node_ports.start(), node_ports.end())));
            }
        }
    }
    causes
}

/// Allocated cluster IPs may not change (a second family may be added).
pub(crate) fn immutable_ips(old: &Value, new: &Value) -> Vec<Cause> {
    let (Some(before), Some(after)) = (old["clusterIPs"].as_array(), new["clusterIPs"].as_array())
    else {
        return Vec::new();
    };
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(i, (_, a))| {
            Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                a,
                "may not change once set",
            )
        })
        .collect()
}
