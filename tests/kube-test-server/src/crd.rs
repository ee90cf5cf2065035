//! CustomResourceDefinitions: validation of the definition itself, the
//! resource it registers, and the status the real server reports.

use serde_json::{json, Value};

use crate::error::{ApiError, Cause, Result};
use crate::meta::now_rfc3339;
use crate::resources::{PrinterColumn, ResourceDef, Special, VersionDef};

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: "CustomResourceDefinition".into(),
        group: "apiextensions.k8s.io".into(),
        name: name.into(),
        causes,
    }
}

fn columns(v: &Value) -> Vec<PrinterColumn> {
    v["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| PrinterColumn {
            name: c["name"].as_str().unwrap_or("").to_string(),
            type_: c["type"].as_str().unwrap_or("string").to_string(),
            format: c["format"].as_str().unwrap_or("").to_string(),
            description: c["description"].as_str().unwrap_or("").to_string(),
            priority: c["priority"].as_i64().unwrap_or(0),
            json_path: c["jsonPath"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// Validates a CRD and returns the resource it defines.
pub fn to_resource_def(crd: &Value) -> Result<ResourceDef> {
    let name = crate::meta::meta_str(crd, "name");
    let spec = &crd["spec"];
    let mut causes = Vec::new();
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or("");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
        ));
    }
    let raw_versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if raw_versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    }
    let storage: Vec<&Value> = raw_versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .collect();
    if !raw_versions.is_empty() && storage.len() != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &json!(raw_versions),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in raw_versions.iter().enumerate() {
        let schema = &v["schema"]["openAPIV3Schema"];
        if schema.is_null() {
            causes.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        } else if schema["type"] != json!("object") {
            causes.push(Cause::invalid(
                format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                &schema["type"],
                "must be object at the root",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(invalid(name, causes));
    }
    let mut versions: Vec<VersionDef> = raw_versions
        .iter()
        .filter(|v| v["served"] != json!(false))
        .map(|v| VersionDef {
            name: v["name"].as_str().unwrap_or("").to_string(),
            schema: Some(v["schema"]["openAPIV3Schema"].clone()),
            columns: columns(v),
            status: v["subresources"]["status"].is_object(),
        })
        .collect();
    // The storage version goes first; the server stores objects in it.
    let storage_name = storage[0]["name"].as_str().unwrap_or("");
    versions.sort_by_key(|v| v.name != storage_name);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Ok(ResourceDef {
        group: group.to_string(),
        versions,
        plural: plural.to_string(),
        singular: names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind: kind.to_string(),
        namespaced: scope == "Namespaced",
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        special: Special::Custom,
        generation: true,
        create_on_update: false,
    })
}

/// The status a served CRD reports: Established and NamesAccepted.
pub fn established_status(crd: &Value) -> Value {
    let now = now_rfc3339();
    let spec = &crd["spec"];
    let storage: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    let mut accepted = spec["names"].clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(spec["names"]["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!(
            "{}List",
            spec["names"]["kind"].as_str().unwrap_or("")
        ));
    }
    let cond = |ty: &str, reason: &str, msg: &str| json!({"type": ty, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": storage,
    })
}

/// Defaults the real server fills in a CRD spec.
pub fn default_crd(crd: &mut Value) {
    let spec = &mut crd["spec"];
    if spec["conversion"].is_null() {
        spec["conversion"] = json!({"strategy": "None"});
    }
    let kind = spec["names"]["kind"].as_str().unwrap_or("").to_string();
    if spec["names"]["singular"].is_null() && !kind.is_empty() {
        spec["names"]["singular"] = json!(kind.to_lowercase());
    }
    if spec["names"]["listKind"].is_null() && !kind.is_empty() {
        spec["names"]["listKind"] = json!(format!("{kind}List"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn a_crd_registers_its_resource_with_the_storage_version_first() {
        let def = to_resource_def(&crd()).unwrap();
        assert_eq!(def.kind, "Widget");
        assert_eq!(def.storage_version(), "v1");
        assert!(def.has_status("v1"));
        assert!(!def.has_status("v1alpha1"));
        assert_eq!(def.short_names, vec!["wd"]);
    }

    #[test]
    fn a_crd_whose_name_is_not_plural_dot_group_is_invalid() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widget.example.com");
        let err = to_resource_def(&c).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be spec.names.plural+\".\"+spec.group"),
            "{err}"
        );
    }
}
