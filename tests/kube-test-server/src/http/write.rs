//! Writes: create and update (bodies in JSON, YAML or protobuf), patch,
//! delete and deletecollection.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde_json::{json, Value};

use super::read::filter_from;
use super::{json_response, ns, present, ResReq};
use crate::app::App;
use crate::error::{ApiError, Result};
use crate::ops::{self, DeleteOpts, Part};
use crate::patch::{self, PatchKind};
use crate::protobuf;

/// A create or update body: JSON, YAML, or protobuf (kubectl's typed
/// clients send built-in kinds so; see [`protobuf`]).
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    if protobuf::is_protobuf(ct) {
        return protobuf::decode(body);
    }
    if ct.contains("yaml") {
        return patch::parse_yaml(body);
    }
    serde_json::from_slice(body).or_else(|e| {
        if ct.contains("json") {
            Err(ApiError::BadRequest(format!(
                "error decoding request body: {e}"
            )))
        } else {
            patch::parse_yaml(body)
        }
    })
}

pub(super) fn create(app: &App, r: &ResReq, headers: &HeaderMap, body: &[u8]) -> Result<Response> {
    let obj = decode_body(headers, body)?;
    let created = ops::create(&mut app.store.lock(), &r.def, &r.version, ns(r), obj)?;
    Ok(json_response(201, &present(r, &created)))
}

pub(super) fn update(app: &App, r: &ResReq, headers: &HeaderMap, body: &[u8]) -> Result<Response> {
    let obj = decode_body(headers, body)?;
    let part = if r.status { Part::Status } else { Part::Main };
    let name = r.name.as_deref().unwrap_or("");
    let mut store = app.store.lock();
    let existed = store.get(&r.def.store_gr(), ns(r), name).is_some();
    let updated = ops::update(&mut store, &r.def, &r.version, ns(r), name, obj, part)?;
    Ok(json_response(
        if existed { 200 } else { 201 },
        &present(r, &updated),
    ))
}

pub(super) fn patch(
    app: &App,
    r: &ResReq,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let kind = PatchKind::from_content_type(ct).ok_or_else(|| ApiError::UnsupportedMediaType(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})")))?;
    if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(ApiError::BadRequest(
            "fieldManager is required for apply patch".into(),
        ));
    }
    let part = if r.status { Part::Status } else { Part::Main };
    let name = r.name.as_deref().unwrap_or("");
    let mut store = app.store.lock();
    let Some(current) = store.get(&r.def.store_gr(), ns(r), name) else {
        if kind == PatchKind::Apply && part == Part::Main {
            let mut obj = patch::parse_yaml(body)?;
            let body_name = crate::meta::meta_str(&obj, "name");
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::BadRequest(format!("the name of the object ({body_name}) does not match the name on the URL ({name})")));
            }
            crate::meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
            let created = ops::create(&mut store, &r.def, &r.version, ns(r), obj)?;
            return Ok(json_response(201, &present(r, &created)));
        }
        return Err(ApiError::NotFound {
            resource: r.def.gr().qualified(),
            name: name.into(),
        });
    };
    let current = present(r, &current).into_owned();
    let patched = patch::apply_patch(kind, &r.def, &r.version, &current, body)?;
    let updated = ops::update(&mut store, &r.def, &r.version, ns(r), name, patched, part)?;
    Ok(json_response(200, &present(r, &updated)))
}

fn delete_opts(query: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOpts> {
    let mut opts = DeleteOpts::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?;
        if v["dryRun"].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(ApiError::BadRequest(
                "dryRun is not supported by kube-test-server".into(),
            ));
        }
        opts.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.resource_version = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
    }
    let _ = query;
    Ok(opts)
}

fn deleted_status(r: &ResReq, obj: &Value) -> Value {
    let mut details = json!({"name": obj["metadata"]["name"], "kind": r.def.plural, "uid": obj["metadata"]["uid"]});
    if !r.def.group.is_empty() {
        details["group"] = json!(r.def.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

pub(super) fn delete(
    app: &App,
    r: &ResReq,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response> {
    if r.status {
        return Err(ApiError::MethodNotAllowed);
    }
    let opts = delete_opts(query, body)?;
    let name = r.name.as_deref().unwrap_or("");
    let mut store = app.store.lock();
    let obj = ops::delete(&mut store, &r.def, ns(r), name, &opts)?;
    let still_there = store.get(&r.def.store_gr(), ns(r), name).is_some();
    if still_there {
        return Ok(json_response(202, &present(r, &obj)));
    }
    if r.def.plural == "pods" || r.def.plural == "namespaces" {
        return Ok(json_response(200, &present(r, &obj)));
    }
    Ok(json_response(200, &deleted_status(r, &obj)))
}

pub(super) fn delete_collection(
    app: &App,
    r: &ResReq,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response> {
    let opts = delete_opts(query, body)?;
    let filter = filter_from(r, query)?;
    let mut store = app.store.lock();
    let names: Vec<(String, String)> = store
        .iter(&r.def.store_gr(), r.namespace.as_deref())
        .filter(|(_, o)| filter.matches(o))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        match ops::delete(&mut store, &r.def, &ns, &name, &opts) {
            Ok(o) => items.push(present(r, &o).into_owned()),
            // Another deletion in the same sweep (a namespace) took it.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let out = json!({"kind": format!("{}List", r.def.kind), "apiVersion": r.def.api_version(&r.version), "metadata": {"resourceVersion": store.rv().to_string()}, "items": items});
    Ok(json_response(200, &out))
}
