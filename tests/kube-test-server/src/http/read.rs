//! Reads: get, list (objects or Tables, paged) and watch streams.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use super::{json_response, ns, present, wants_table, ResReq};
use crate::app::App;
use crate::error::{ApiError, Result};
use crate::meta::{FieldSelector, LabelSelector};
use crate::store::parse_rv;
use crate::table::{self, Include};
use crate::watch::{self, Filter, WatchOpts};

pub(super) fn filter_from(r: &ResReq, query: &HashMap<String, String>) -> Result<Filter> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let mut fsel = query.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(name) = &r.name {
        // A watch on a single object path is a watch with a name selector.
        if !fsel.is_empty() {
            fsel.push(',');
        }
        fsel.push_str(&format!("metadata.name={name}"));
    }
    let fields = FieldSelector::parse(&fsel, &r.def.gr().qualified())?;
    Ok(Filter {
        namespace: r.namespace.clone(),
        labels,
        fields,
    })
}

pub(super) fn get(app: &App, r: &ResReq, headers: &HeaderMap) -> Result<Response> {
    let name = r.name.as_deref().unwrap_or("");
    let obj = app
        .store
        .lock()
        .get(&r.def.store_gr(), ns(r), name)
        .ok_or_else(|| ApiError::NotFound {
            resource: r.def.gr().qualified(),
            name: name.into(),
        })?;
    if wants_table(headers) && !r.status {
        let t = table::table(
            &r.def,
            &r.version,
            std::slice::from_ref(&obj),
            json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
            Include::Metadata,
            &|o| present(r, o).into_owned(),
        );
        return Ok(json_response(200, &t));
    }
    Ok(json_response(200, &present(r, &obj)))
}

#[derive(Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<Cow<'a, Value>>,
}

pub(super) fn list(
    app: &App,
    r: &ResReq,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response> {
    let filter = filter_from(r, query)?;
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit: {l:?}")))?,
        None => 0,
    };
    let cont = query.get("continue").filter(|c| !c.is_empty());
    let page = {
        let store = app.store.lock();
        if let Some(rv) = query
            .get("resourceVersion")
            .filter(|v| !v.is_empty() && *v != "0")
        {
            let rv = parse_rv(rv)?;
            if rv > store.rv() {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {rv}, current: {}",
                    store.rv()
                )));
            }
            let exact = query
                .get("resourceVersionMatch")
                .is_some_and(|m| m == "Exact");
            if exact && rv != store.rv() {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {rv} ({})",
                    store.rv()
                )));
            }
        }
        store.list(
            &r.def.store_gr(),
            r.namespace.as_deref(),
            &|o| filter.matches(o),
            limit,
            cont.map(String::as_str),
        )?
    };
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(page.remaining);
    }
    if wants_table(headers) {
        let include = Include::parse(query.get("includeObject").map(String::as_str));
        let t = table::table(&r.def, &r.version, &page.items, meta, include, &|o| {
            present(r, o).into_owned()
        });
        return Ok(json_response(200, &t));
    }
    let out = ListOut {
        kind: format!("{}List", r.def.kind),
        api_version: r.def.api_version(&r.version),
        metadata: meta,
        items: page.items.iter().map(|o| present(r, o)).collect(),
    };
    Ok(json_response(200, &out))
}

pub(super) fn start_watch(
    app: &App,
    r: &ResReq,
    query: &HashMap<String, String>,
) -> Result<Response> {
    let _ = r.watch_path;
    let filter = filter_from(r, query)?;
    let truthy = |k: &str| matches!(query.get(k).map(String::as_str), Some("true" | "1"));
    let initial_events = truthy("sendInitialEvents");
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(_) if initial_events => None,
        Some(v) => Some(parse_rv(v)?),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {t:?}")))?,
        )
        .min(app.options.max_watch),
        None => app.options.max_watch,
    };
    let opts = WatchOpts {
        bookmarks: truthy("allowWatchBookmarks"),
        bookmark_interval: app.options.bookmark_interval,
        timeout,
        initial_events_end: initial_events,
    };
    let start = app
        .store
        .lock()
        .watch(&r.def.store_gr(), r.namespace.as_deref(), from);
    let body = match start {
        Ok(start) => watch::body(
            start,
            r.def.clone(),
            &r.version,
            filter,
            opts,
            app.watch_drops.subscribe(),
        ),
        // Like the watch cache: a 200 whose only event is the 410 error.
        Err(e @ ApiError::Expired(_)) => Body::from(watch::error_line(&e)),
        Err(e) => return Err(e),
    };
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}
