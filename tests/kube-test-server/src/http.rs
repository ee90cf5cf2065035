//! HTTP routing: API paths to verbs, request decoding, response encoding
//! (objects, lists, Tables, watch streams, Status errors), and the `/_test`
//! admin endpoints.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::discovery;
use crate::error::{ApiError, Result};
use crate::meta::{FieldSelector, LabelSelector};
use crate::ops::{self, DeleteOpts, Part};
use crate::patch::{self, PatchKind};
use crate::request_log::{RequestInfo, RequestRecord};
use crate::resources::ResourceDef;
use crate::store::parse_rv;
use crate::table::{self, Include};
use crate::watch::{self, Filter, WatchOpts};

const MAX_BODY: usize = 32 * 1024 * 1024;

/// The router serving the API and the admin endpoints.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(crate::admin::routes())
        .fallback(dispatch)
        .with_state(app)
}

pub(crate) fn json_response(code: u16, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn error_response(err: &ApiError) -> Response {
    let mut resp = json_response(err.code(), &err.to_status());
    if matches!(err.code(), 429 | 503 | 504) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// A request for a resource, after routing.
#[derive(Debug)]
struct ResReq {
    def: Arc<ResourceDef>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
    watch_path: bool,
}

enum Route {
    Text(Value),
    Resource {
        group: String,
        version: String,
        watch: bool,
        namespace: Option<String>,
        resource: String,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn route(app: &App, path: &str) -> Result<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Text(discovery::version())),
        ["healthz" | "readyz" | "livez"] => return Ok(Route::Text(json!("ok"))),
        ["api"] => return Ok(Route::Text(discovery::core_versions(app.addr()))),
        ["apis"] => {
            return Ok(Route::Text(discovery::group_list(
                &app.store.lock().registry,
            )))
        }
        ["apis", g] => {
            return discovery::group(&app.store.lock().registry, g)
                .map(Route::Text)
                .ok_or(ApiError::NoRoute)
        }
        ["openapi", "v3"] => {
            return Ok(Route::Text(discovery::openapi_v3_index(
                &app.store.lock().registry,
            )))
        }
        ["openapi", "v3", "api", v] => {
            return discovery::openapi_v3_group_version(&app.store.lock().registry, "", v)
                .map(Route::Text)
                .ok_or(ApiError::NoRoute)
        }
        ["openapi", "v3", "apis", g, v] => {
            return discovery::openapi_v3_group_version(&app.store.lock().registry, g, v)
                .map(Route::Text)
                .ok_or(ApiError::NoRoute)
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::NoRoute),
    };
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    if rest.is_empty() && !watch {
        let registry = &app.store.lock().registry;
        return discovery::resource_list(registry, group, version)
            .map(Route::Text)
            .ok_or(ApiError::NoRoute);
    }
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, tail) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if tail.is_empty() || tail.len() > 3 {
        return Err(ApiError::NoRoute);
    }
    Ok(Route::Resource {
        group: group.to_string(),
        version: version.to_string(),
        watch,
        namespace,
        resource: tail[0].to_string(),
        name: tail.get(1).map(|s| s.to_string()),
        sub: tail.get(2).map(|s| s.to_string()),
    })
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    if !app.requests.is_on() {
        return serve(app, req).await;
    }
    let user = crate::request_log::bearer_user(req.headers());
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let info = RequestInfo::from_request(req.method().as_str(), req.uri().path(), &query);
    let response = serve(app.clone(), req).await;
    app.requests.push(RequestRecord {
        user,
        info,
        code: response.status().as_u16(),
    });
    response
}

async fn serve(app: Arc<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    // The request log (RUST_LOG=kube_test_server=debug).
    tracing::debug!(method = %parts.method, uri = %parts.uri, "request");
    let is_watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"))
        || parts.uri.path().contains("/watch/");
    let decision = app.faults.decide(is_watch);
    if let Some(d) = decision.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(code) = decision.fail {
        let msg = "injected fault (kube-test-server)".to_string();
        let err = match code {
            429 => ApiError::TooManyRequests(msg),
            503 => ApiError::ServiceUnavailable(msg),
            _ => ApiError::Internal(msg),
        };
        return error_response(&err);
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::BadRequest(format!("reading body: {e}"))),
    };
    match handle(
        &app,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &query,
        is_watch,
        bytes,
    ) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn handle(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    is_watch: bool,
    body: Bytes,
) -> Result<Response> {
    let (group, version, watch_path, namespace, resource, name, sub) = match route(app, path)? {
        Route::Text(doc) => {
            return if method == Method::GET {
                Ok(json_response(200, &doc))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        Route::Resource {
            group,
            version,
            watch,
            namespace,
            resource,
            name,
            sub,
        } => (group, version, watch, namespace, resource, name, sub),
    };
    let def = app
        .store
        .lock()
        .registry
        .lookup(&group, &version, &resource)
        .ok_or(ApiError::NoRoute)?;
    if namespace.is_some() && !def.namespaced {
        return Err(ApiError::NoRoute);
    }
    if namespace.is_none() && def.namespaced && name.is_some() {
        return Err(ApiError::NoRoute);
    }
    let status = match sub.as_deref() {
        None => false,
        Some("status") if def.has_status(&version) => true,
        Some(_) => return Err(ApiError::NoRoute),
    };
    if query.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::BadRequest(
            "dryRun is not supported by kube-test-server".into(),
        ));
    }
    let r = ResReq {
        def,
        version,
        namespace,
        name,
        status,
        watch_path,
    };
    match (method.clone(), r.name.is_some()) {
        (Method::GET, _) if is_watch => start_watch(app, &r, query),
        (Method::GET, false) => list(app, &r, query, headers),
        (Method::GET, true) => get(app, &r, headers),
        (Method::POST, false) if r.namespace.is_some() || !r.def.namespaced => {
            create(app, &r, headers, &body)
        }
        (Method::PUT, true) => update(app, &r, headers, &body),
        (Method::PATCH, true) => patch(app, &r, headers, query, &body),
        (Method::DELETE, true) => delete(app, &r, query, &body),
        (Method::DELETE, false) if !r.status => delete_collection(app, &r, query, &body),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn ns(r: &ResReq) -> &str {
    r.namespace.as_deref().unwrap_or("")
}

fn present<'a>(r: &ResReq, obj: &'a Value) -> Cow<'a, Value> {
    let obj = crate::events::present(&r.def, obj);
    if r.version == r.def.storage_version() {
        obj
    } else {
        let mut o = obj.into_owned();
        o["apiVersion"] = json!(r.def.api_version(&r.version));
        Cow::Owned(o)
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
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

fn filter_from(r: &ResReq, query: &HashMap<String, String>) -> Result<Filter> {
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

fn get(app: &App, r: &ResReq, headers: &HeaderMap) -> Result<Response> {
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

fn list(
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

fn start_watch(app: &App, r: &ResReq, query: &HashMap<String, String>) -> Result<Response> {
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

fn create(app: &App, r: &ResReq, headers: &HeaderMap, body: &[u8]) -> Result<Response> {
    let obj = decode_body(headers, body)?;
    let created = ops::create(&mut app.store.lock(), &r.def, &r.version, ns(r), obj)?;
    Ok(json_response(201, &present(r, &created)))
}

fn update(app: &App, r: &ResReq, headers: &HeaderMap, body: &[u8]) -> Result<Response> {
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

fn patch(
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

fn delete(app: &App, r: &ResReq, query: &HashMap<String, String>, body: &[u8]) -> Result<Response> {
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

fn delete_collection(
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
