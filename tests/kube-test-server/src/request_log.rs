//! The opt-in request log: per request, who sent it (the bearer token of
//! its kubeconfig, unchecked) and the Kubernetes authorization attributes
//! kube-apiserver's `RequestInfoFactory` computes from the method, path and
//! query, so a test can compare what a binary did with the RBAC rules it
//! is given (see [`crate::rbac`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// The authorization attributes of one request, as kube-apiserver's
/// `RequestInfo` (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
///
/// ```
/// use std::collections::HashMap;
/// use kube_test_server::request_log::RequestInfo;
/// let q = HashMap::from([("watch".to_string(), "true".to_string())]);
/// let info = RequestInfo::from_request("GET", "/api/v1/services", &q);
/// assert_eq!((info.verb.as_str(), info.resource.as_str()), ("watch", "services"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// A request for a resource (`/api/v1/...`, `/apis/G/V/...`); `false`
    /// for discovery, `/version`, `/healthz` and the like.
    pub resource_request: bool,
    /// The URL path.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource requests the lower-case method.
    pub verb: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace (`""` for cluster-scoped and all-namespace requests).
    pub namespace: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`), or `""`.
    pub subresource: String,
    /// Object name; for list and watch the name a `metadata.name=`
    /// field selector pins; `""` for create.
    pub name: String,
}

/// Verbs given as a path prefix (`/api/v1/watch/...`, deprecated).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Namespace subresources, not resources nested in the namespace.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    /// Computes the attributes of a request the way kube-apiserver does.
    /// `query` holds the decoded query parameters.
    pub fn from_request(method: &str, path: &str, query: &HashMap<String, String>) -> Self {
        let mut info = RequestInfo {
            path: path.to_owned(),
            verb: method.to_ascii_lowercase(),
            ..Default::default()
        };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        let prefix = parts.remove(0);
        if prefix == "apis" {
            // One part (the prefix) is consumed: group, version, resource.
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_owned();
        }
        info.resource_request = true;
        info.api_version = parts.remove(0).to_owned();

        if SPECIAL_VERBS.contains(&parts[0]) {
            if parts.len() < 2 {
                // kube-apiserver refuses such a request; keep it visible.
                info.resource_request = false;
                return info;
            }
            info.verb = parts.remove(0).to_owned();
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }

        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_owned();
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts.drain(..2);
            }
        }
        // resource/name/subresource; proxy takes no subresource.
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_owned();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_owned();
        }
        info.resource = parts[0].to_owned();

        if info.name.is_empty() && info.verb == "get" {
            // Any value but false/0 is true, as metav1's bool conversion.
            let watch = query
                .get("watch")
                .is_some_and(|w| !matches!(w.to_ascii_lowercase().as_str(), "false" | "0"));
            info.verb = if watch { "watch" } else { "list" }.to_owned();
            if let Some(name) = query
                .get("fieldSelector")
                .and_then(|s| exact_name(s))
                .filter(|n| valid_path_segment(n))
            {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        info
    }
}

/// The name a field selector requires exactly (`metadata.name=x` or
/// `metadata.name==x` among its terms), as `RequiresExactMatch`.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (key.trim() == "metadata.name").then(|| value.trim().to_owned())
    })
}

/// `path.IsValidPathSegmentName`: usable as one path segment.
fn valid_path_segment(name: &str) -> bool {
    !matches!(name, "." | "..") && !name.contains(['/', '%'])
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// The bearer token the client sent, taken as its user name unchecked
    /// (see [`crate::kubeconfig_with_token`]); `None` without one.
    pub user: Option<String>,
    /// Authorization attributes.
    pub info: RequestInfo,
    /// The HTTP status answered (200 for a watch that started).
    pub code: u16,
    /// When the request arrived and when it was answered, as places in
    /// one count shared by every request of the server (`arrived <
    /// answered`): two requests were served at the same time unless one
    /// was answered before the other arrived. Delays injected by faults
    /// fall in between.
    pub arrived: u64,
    /// See `arrived`.
    pub answered: u64,
}

/// The log itself (`None` while off) and the count of arrivals and
/// answers.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    records: Mutex<Option<Vec<RequestRecord>>>,
    clock: AtomicU64,
}

impl RequestLog {
    pub(crate) fn new(on: bool) -> Self {
        RequestLog {
            records: Mutex::new(on.then(Vec::new)),
            clock: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<RequestRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next place in the count of arrivals and answers.
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.lock().is_some()
    }

    /// Turns the log on (keeping what it holds) or off (dropping it).
    pub(crate) fn set(&self, on: bool) {
        let mut log = self.lock();
        match (on, log.is_some()) {
            (true, false) => *log = Some(Vec::new()),
            (false, _) => *log = None,
            (true, true) => {}
        }
    }

    pub(crate) fn push(&self, record: RequestRecord) {
        if let Some(log) = self.lock().as_mut() {
            log.push(record);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().clone().unwrap_or_default()
    }
}

/// The user of a request: its `Authorization: Bearer` token.
pub(crate) fn bearer_user(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: &[(&str, &str)]) -> RequestInfo {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RequestInfo::from_request(method, path, &q)
    }

    /// (verb, group, resource, subresource, namespace, name)
    fn attrs(i: &RequestInfo) -> (&str, &str, &str, &str, &str, &str) {
        assert!(i.resource_request, "{i:?}");
        (
            &i.verb,
            &i.api_group,
            &i.resource,
            &i.subresource,
            &i.namespace,
            &i.name,
        )
    }

    #[test]
    fn a_get_without_a_name_is_a_list_and_with_watch_true_a_watch() {
        assert_eq!(
            attrs(&info("GET", "/api/v1/services", &[])),
            ("list", "", "services", "", "", "")
        );
        assert_eq!(
            attrs(&info("GET", "/api/v1/namespaces/a/services/web", &[])),
            ("get", "", "services", "", "a", "web")
        );
        let w = info(
            "GET",
            "/apis/discovery.k8s.io/v1/endpointslices",
            &[("watch", "true"), ("resourceVersion", "7")],
        );
        assert_eq!(
            attrs(&w),
            ("watch", "discovery.k8s.io", "endpointslices", "", "", "")
        );
        assert_eq!(
            info("GET", "/api/v1/nodes", &[("watch", "false")]).verb,
            "list"
        );
        assert_eq!(
            info("GET", "/api/v1/nodes", &[("watch", "1")]).verb,
            "watch"
        );
    }

    #[test]
    fn the_deprecated_watch_path_is_a_watch_of_the_named_object() {
        assert_eq!(
            attrs(&info("GET", "/api/v1/watch/namespaces/a/services/web", &[])),
            ("watch", "", "services", "", "a", "web")
        );
        assert_eq!(
            attrs(&info("GET", "/api/v1/watch/services", &[])),
            ("watch", "", "services", "", "", "")
        );
    }

    #[test]
    fn a_metadata_name_field_selector_names_the_object_of_a_list_or_watch() {
        let q = [
            ("fieldSelector", "metadata.name=ferrolb-controller"),
            ("watch", "true"),
        ];
        let i = info(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases",
            &q,
        );
        assert_eq!(
            attrs(&i),
            (
                "watch",
                "coordination.k8s.io",
                "leases",
                "",
                "ferrolb-system",
                "ferrolb-controller"
            )
        );
        let both = [("fieldSelector", "spec.nodeName=n1,metadata.name==x")];
        assert_eq!(info("GET", "/api/v1/pods", &both).name, "x");
        let not = [("fieldSelector", "metadata.name!=x")];
        assert_eq!(info("GET", "/api/v1/pods", &not).name, "");
        let bad = [("fieldSelector", "metadata.name=a/b")];
        assert_eq!(info("GET", "/api/v1/pods", &bad).name, "");
    }

    #[test]
    fn subresources_and_writes_map_to_their_verbs() {
        assert_eq!(
            attrs(&info(
                "PATCH",
                "/api/v1/namespaces/a/services/web/status",
                &[]
            )),
            ("patch", "", "services", "status", "a", "web")
        );
        assert_eq!(
            attrs(&info(
                "PUT",
                "/apis/ferrolb.io/v1beta1/namespaces/s/ipaddresspools/p/status",
                &[]
            )),
            ("update", "ferrolb.io", "ipaddresspools", "status", "s", "p")
        );
        assert_eq!(
            attrs(&info("POST", "/api/v1/namespaces/s/secrets", &[])),
            ("create", "", "secrets", "", "s", "")
        );
        assert_eq!(
            attrs(&info("DELETE", "/api/v1/namespaces/s/secrets/k", &[])),
            ("delete", "", "secrets", "", "s", "k")
        );
        assert_eq!(
            attrs(&info("DELETE", "/api/v1/namespaces/s/secrets", &[])),
            ("deletecollection", "", "secrets", "", "s", "")
        );
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_except_namespaces_themselves() {
        assert_eq!(
            attrs(&info("GET", "/api/v1/nodes/node-1", &[])),
            ("get", "", "nodes", "", "", "node-1")
        );
        assert_eq!(
            attrs(&info(
                "GET",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                &[]
            )),
            (
                "list",
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "",
                "",
                ""
            )
        );
        // A namespace is named by, and lives in, itself.
        assert_eq!(
            attrs(&info("GET", "/api/v1/namespaces/a", &[])),
            ("get", "", "namespaces", "", "a", "a")
        );
        assert_eq!(
            attrs(&info("PUT", "/api/v1/namespaces/a/finalize", &[])),
            ("update", "", "namespaces", "finalize", "a", "a")
        );
        assert_eq!(
            attrs(&info("GET", "/api/v1/namespaces", &[])),
            ("list", "", "namespaces", "", "", "")
        );
    }

    #[test]
    fn discovery_and_health_are_not_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/ferrolb.io",
            "/apis/ferrolb.io/v1beta1",
            "/version",
            "/healthz",
            "/openapi/v3",
        ] {
            let i = info("GET", path, &[]);
            assert!(!i.resource_request, "{path}");
            assert_eq!(i.verb, "get", "{path}");
        }
    }

    #[test]
    fn the_user_is_the_bearer_token() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer_user(&h), None);
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer system:serviceaccount:s:a".parse().unwrap(),
        );
        assert_eq!(
            bearer_user(&h).as_deref(),
            Some("system:serviceaccount:s:a")
        );
    }

    #[test]
    fn the_log_records_only_while_on() {
        let log = RequestLog::new(false);
        let rec = RequestRecord {
            user: None,
            info: info("GET", "/api/v1/nodes", &[]),
            code: 200,
            arrived: 0,
            answered: 1,
        };
        log.push(rec.clone());
        assert!(log.snapshot().is_empty());
        log.set(true);
        log.push(rec.clone());
        log.set(true);
        assert_eq!(log.snapshot(), [rec]);
        log.set(false);
        assert!(!log.is_on());
        assert!(log.snapshot().is_empty());
    }
}
