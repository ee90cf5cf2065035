//! HTTP routing: API paths to verbs, response encoding (objects, Status
//! errors), and the `/_test` admin endpoints. The verbs themselves are in
//! [`read`] (get, list, watch) and [`write`] (create, update, patch, delete).

mod read;
mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

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
use crate::request_log::{RequestInfo, RequestRecord};
use crate::resources::ResourceDef;

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
    let arrived = app.requests.tick();
    let response = serve(app.clone(), req).await;
    app.requests.push(RequestRecord {
        user,
        info,
        code: response.status().as_u16(),
        arrived,
        answered: app.requests.tick(),
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
        (Method::GET, _) if is_watch => read::start_watch(app, &r, query),
        (Method::GET, false) => read::list(app, &r, query, headers),
        (Method::GET, true) => read::get(app, &r, headers),
        (Method::POST, false) if r.namespace.is_some() || !r.def.namespaced => {
            write::create(app, &r, headers, &body)
        }
        (Method::PUT, true) => write::update(app, &r, headers, &body),
        (Method::PATCH, true) => write::patch(app, &r, headers, query, &body),
        (Method::DELETE, true) => write::delete(app, &r, query, &body),
        (Method::DELETE, false) if !r.status => write::delete_collection(app, &r, query, &body),
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
