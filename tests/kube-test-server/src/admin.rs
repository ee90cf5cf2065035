//! The `/_test` admin endpoints of the binary: faults, dropping watches,
//! compaction, restart, the request log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::faults::FaultConfig;
use crate::http::json_response;

/// The admin routes (merged into the API router).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/_test/faults",
            post(set_faults).delete(clear_faults).get(get_faults),
        )
        .route("/_test/drop-watches", post(drop_watches))
        .route("/_test/compact", post(compact))
        .route("/_test/restart", post(restart))
        .route("/_test/requests", get(requests).delete(clear_requests))
}

/// The request log (empty while it is off).
async fn requests(State(app): State<Arc<App>>) -> Response {
    json_response(200, &app.requests.snapshot())
}

/// Empties the request log, keeping it on if it was.
async fn clear_requests(State(app): State<Arc<App>>) -> Response {
    let on = app.requests.is_on();
    app.requests.set(false);
    app.requests.set(on);
    json_response(200, &json!({"recording": on}))
}

async fn set_faults(State(app): State<Arc<App>>, Json(config): Json<FaultConfig>) -> Response {
    app.faults.set(config);
    json_response(200, &app.faults.get())
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    app.faults.set(FaultConfig::default());
    json_response(200, &app.faults.get())
}

async fn get_faults(State(app): State<Arc<App>>) -> Response {
    json_response(200, &app.faults.get())
}

async fn drop_watches(State(app): State<Arc<App>>) -> Response {
    app.drop_watches();
    json_response(200, &json!({"dropped": true}))
}

async fn compact(State(app): State<Arc<App>>) -> Response {
    let rv = {
        let mut store = app.store.lock();
        store.compact();
        store.rv()
    };
    json_response(200, &json!({"compactedResourceVersion": rv.to_string()}))
}

async fn restart(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let down = Duration::from_millis(
        q.get("downMillis")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0)
            .min(60_000),
    );
    let app2 = app.clone();
    // Detached: the stop aborts the connection serving this very request.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app2.stop().await;
        tokio::time::sleep(down).await;
        // stop() returns once the old listener and connections are closed,
        // so one bind suffices; a failure is counted and logged loudly.
        if let Err(e) = app2.listen().await {
            tracing::error!(error = %e, "rebind after /_test/restart failed");
        }
    });
    json_response(
        202,
        &json!({"restarting": true, "downMillis": down.as_millis() as u64}),
    )
}
