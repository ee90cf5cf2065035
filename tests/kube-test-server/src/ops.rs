//! The object lifecycle the real server's registry strategies implement:
//! create, update (whole object or `status`), delete with finalizers, and
//! the kind-specific steps (Services, Namespaces, CRDs, custom resources).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::crd;
use crate::error::{ApiError, Cause, Result};
use crate::meta::{
    meta_str, metadata_mut, name_suffix, new_uid, now_rfc3339, validate_name, NameRule,
};
use crate::resources::{GroupResource, ResourceDef, Special};
use crate::schema;
use crate::services::initial_status;
use crate::store::{parse_rv, Inner};

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object (status changes are ignored where a status subresource exists).
    Main,
    /// The `status` subresource (only status changes).
    Status,
}

/// Delete preconditions from `DeleteOptions`.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

fn namespaces() -> GroupResource {
    GroupResource::new("", "namespaces")
}

fn name_rule(def: &ResourceDef) -> NameRule {
    match def.special {
        Special::Service => NameRule::Label1035,
        Special::Namespace => NameRule::Label,
        _ => NameRule::Subdomain,
    }
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: def.kind.clone(),
        group: def.group.clone(),
        name: name.to_string(),
        causes,
    }
}

/// Checks `apiVersion`/`kind` in a request body against the URL's resource
/// and normalises them to the storage version.
fn check_type(def: &ResourceDef, version: &str, body: &mut Value) -> Result<()> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON or YAML object".into(),
        ));
    }
    let want = def.api_version(version);
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
        if av != want {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != def.kind {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    if crate::events::is_events_api(def) {
        // Stored as a core/v1 Event.
        *body = crate::events::to_core(body);
        return Ok(());
    }
    body["apiVersion"] = json!(def.api_version(def.storage_version()));
    body["kind"] = json!(def.kind);
    Ok(())
}

/// Prunes, defaults and validates a custom resource against its schema.
fn check_custom(def: &ResourceDef, version: &str, obj: &mut Value) -> Result<()> {
    let Some(schema) = def.version(version).and_then(|v| v.schema.as_ref()) else {
        return Ok(());
    };
    schema::prune(schema, obj, true);
    schema::apply_defaults(schema, obj);
    let mut causes = Vec::new();
    schema::validate(schema, obj, "", &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(def, meta_str(obj, "name"), causes))
    }
}

fn check_namespace(inner: &Inner, def: &ResourceDef, ns: &str, name: &str) -> Result<()> {
    if !def.namespaced {
        return Ok(());
    }
    match inner.get(&namespaces(), "", ns) {
        None => Err(ApiError::NotFound {
            resource: "namespaces".into(),
            name: ns.into(),
        }),
        Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(ApiError::Forbidden {
            message: format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                def.gr().qualified()
            ),
            resource: def.gr().qualified(),
            name: name.into(),
        }),
        Some(_) => Ok(()),
    }
}

/// Creates an object (POST on a collection).
pub fn create(
    inner: &mut Inner,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    mut body: Value,
) -> Result<Arc<Value>> {
    check_type(def, version, &mut body)?;
    let gr = def.store_gr();
    {
        let meta = metadata_mut(&mut body);
        if def.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
    }
    let mut name = meta_str(&body, "name").to_string();
    let generate = meta_str(&body, "generateName").to_string();
    if name.is_empty() {
        if generate.is_empty() {
            let cause = Cause::new(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            );
            return Err(invalid(def, "", vec![cause]));
        }
        // Upstream retries generated names a few times before giving up.
        name = (0..8)
            .map(|_| format!("{generate}{}", name_suffix()))
            .find(|n| inner.get(&gr, ns, n).is_none())
            .unwrap_or_else(|| format!("{generate}{}", name_suffix()));
        metadata_mut(&mut body).insert("name".into(), json!(name));
    }
    if let Some(cause) = validate_name(&name, name_rule(def)) {
        return Err(invalid(def, &name, vec![cause]));
    }
    check_namespace(inner, def, ns, &name)?;
    if inner.get(&gr, ns, &name).is_some() {
        return Err(ApiError::AlreadyExists {
            resource: def.gr().qualified(),
            name,
        });
    }
    {
        let meta = metadata_mut(&mut body);
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(f);
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if def.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    let mut new_def = None;
    match def.special {
        Special::Service => {
            body["status"] = initial_status();
            inner.services.prepare(&name, &mut body, None)?;
        }
        Special::Pod => body["status"] = json!({"phase": "Pending"}),
        Special::Namespace => {
            if body["spec"]["finalizers"].is_null() {
                body["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            body["status"] = json!({"phase": "Active"});
        }
        Special::Crd => {
            crd::default_crd(&mut body);
            let rd = crd::to_resource_def(&body)?;
            body["status"] = crd::established_status(&body);
            new_def = Some(rd);
        }
        Special::Custom => {
            if def.has_status(version) {
                if let Some(m) = body.as_object_mut() {
                    m.remove("status");
                }
            }
            check_custom(def, version, &mut body)?;
        }
        Special::Plain => {}
    }
    if let Some(rd) = new_def {
        inner.registry.insert(rd);
    }
    Ok(inner.insert(&gr, body))
}

/// Everything but metadata and status: what `metadata.generation` tracks.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// Replaces an object (PUT), or its status (PUT on `/status`).
pub fn update(
    inner: &mut Inner,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    mut body: Value,
    part: Part,
) -> Result<Arc<Value>> {
    check_type(def, version, &mut body)?;
    let gr = def.store_gr();
    let body_name = meta_str(&body, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(&body, "namespace");
    if def.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let Some(old) = inner.get(&gr, ns, name) else {
        if def.create_on_update && part == Part::Main {
            metadata_mut(&mut body).insert("name".into(), json!(name));
            return create(inner, def, version, ns, body);
        }
        return Err(ApiError::NotFound {
            resource: def.gr().qualified(),
            name: name.into(),
        });
    };
    let old_rv = meta_str(&old, "resourceVersion").to_string();
    let body_rv = meta_str(&body, "resourceVersion");
    if !body_rv.is_empty() {
        parse_rv(body_rv)?;
        if body_rv != old_rv {
            return Err(ApiError::Conflict {
                resource: def.gr().qualified(),
                name: name.into(),
                detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
            });
        }
    }
    let mut new = match part {
        Part::Status => {
            let mut n = (*old).clone();
            match body.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        }
        Part::Main => {
            let keep_status = def.has_status(version) || def.special == Special::Namespace;
            if keep_status {
                match old.get("status") {
                    Some(s) => body["status"] = s.clone(),
                    None => {
                        if let Some(m) = body.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            body
        }
    };
    {
        let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
        let meta = metadata_mut(&mut new);
        meta.insert("name".into(), json!(name));
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "resourceVersion",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("managedFields");
    }
    if !old["metadata"]["deletionTimestamp"].is_null() {
        let before = finalizers(&old);
        if finalizers(&new).iter().any(|f| !before.contains(f)) {
            let cause = Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            );
            return Err(invalid(def, name, vec![cause]));
        }
    }
    let mut new_def = None;
    match (def.special, part) {
        (Special::Service, Part::Main) => inner.services.prepare(name, &mut new, Some(&old))?,
        (Special::Custom, _) => check_custom(def, version, &mut new)?,
        (Special::Crd, Part::Main) => {
            crd::default_crd(&mut new);
            new_def = Some(crd::to_resource_def(&new)?);
        }
        (Special::Namespace, Part::Main) if new["spec"].is_null() => {
            new["spec"] = old["spec"].clone();
        }
        _ => {}
    }
    if def.generation && part == Part::Main && spec_part(&new) != spec_part(&old) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    if let Some(rd) = new_def {
        inner.registry.insert(rd);
    }
    if new == *old {
        // Upstream skips the write for an unchanged object: same version, no event.
        return Ok(old);
    }
    if !new["metadata"]["deletionTimestamp"].is_null() && finalizers(&new).is_empty() {
        inner.replace(&gr, new);
        return finish_removal(inner, def, ns, name);
    }
    Ok(inner.replace(&gr, new))
}

/// Deletes an object: marks it when finalizers remain, else removes it.
pub fn delete(
    inner: &mut Inner,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Arc<Value>> {
    let gr = def.store_gr();
    let Some(old) = inner.get(&gr, ns, name) else {
        return Err(ApiError::NotFound {
            resource: def.gr().qualified(),
            name: name.into(),
        });
    };
    let conflict = |detail: String| ApiError::Conflict {
        resource: def.gr().qualified(),
        name: name.into(),
        detail,
    };
    if let Some(uid) = &opts.uid {
        let have = meta_str(&old, "uid");
        if uid != have {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
            )));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let have = meta_str(&old, "resourceVersion");
        if rv != have {
            return Err(conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
            )));
        }
    }
    let terminating = !old["metadata"]["deletionTimestamp"].is_null();
    match def.special {
        Special::Namespace => return delete_namespace(inner, name, old, terminating),
        Special::Crd => {
            if let Ok(rd) = crd::to_resource_def(&old) {
                let cr = rd.gr();
                let keys: Vec<(String, String)> =
                    inner.iter(&cr, None).map(|(k, _)| k.clone()).collect();
                for (ns, n) in keys {
                    inner.remove(&cr, &ns, &n);
                }
                inner.forget_resource(&cr);
                inner.registry.remove(&cr);
            }
        }
        _ => {}
    }
    if !finalizers(&old).is_empty() {
        if terminating {
            return Ok(old);
        }
        let mut marked = (*old).clone();
        let meta = metadata_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        return Ok(inner.replace(&gr, marked));
    }
    finish_removal(inner, def, ns, name)
}

fn delete_namespace(
    inner: &mut Inner,
    name: &str,
    old: Arc<Value>,
    terminating: bool,
) -> Result<Arc<Value>> {
    let current = if terminating {
        old
    } else {
        let mut marked = (*old).clone();
        metadata_mut(&mut marked).insert("deletionTimestamp".into(), json!(now_rfc3339()));
        marked["status"]["phase"] = json!("Terminating");
        inner.replace(&namespaces(), marked)
    };
    // The namespace controller's job, done synchronously: delete every
    // namespaced object; those with finalizers stay until released.
    let defs: Vec<Arc<ResourceDef>> = inner
        .registry
        .all()
        .filter(|d| d.namespaced)
        .cloned()
        .collect();
    for def in defs {
        let names: Vec<String> = inner
            .iter(&def.store_gr(), Some(name))
            .map(|(k, _)| k.1.clone())
            .collect();
        for n in names {
            delete(inner, &def, name, &n, &DeleteOpts::default())?;
        }
    }
    if inner.namespace_is_empty(name) {
        if let Some(gone) = inner.remove(&namespaces(), "", name) {
            return Ok(gone);
        }
    }
    Ok(inner.get(&namespaces(), "", name).unwrap_or(current))
}

fn finish_removal(
    inner: &mut Inner,
    def: &ResourceDef,
    ns: &str,
    name: &str,
) -> Result<Arc<Value>> {
    let gr = def.store_gr();
    let gone = inner
        .remove(&gr, ns, name)
        .ok_or_else(|| ApiError::NotFound {
            resource: def.gr().qualified(),
            name: name.into(),
        })?;
    if def.special == Special::Service {
        inner.services.release(&gone);
    }
    if def.namespaced {
        let terminating = inner
            .get(&namespaces(), "", ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
        if terminating && inner.namespace_is_empty(ns) {
            inner.remove(&namespaces(), "", ns);
        }
    }
    Ok(gone)
}

/// Creates the namespaces every cluster starts with.
pub fn seed(inner: &mut Inner) {
    let def = inner
        .registry
        .get(&namespaces())
        .expect("namespaces are built in");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let body = json!({"metadata": {"name": ns}});
        let _ = create(inner, &def, "v1", "", body);
    }
}
