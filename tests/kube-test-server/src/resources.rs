//! What the server serves: built-in resource definitions and the registry that
//! CRDs extend at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// A resource identity independent of version: `("coordination.k8s.io", "leases")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group, empty for core.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group/resource pair.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }

    /// `services` or `leases.coordination.k8s.io`, as errors print it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// Kinds whose server-side behaviour differs from plain storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Stored as sent.
    Plain,
    /// Services: defaults and clusterIP/nodePort allocation.
    Service,
    /// Namespaces: phase, cascading delete.
    Namespace,
    /// Pods: status reset on create.
    Pod,
    /// CustomResourceDefinitions: register a new resource.
    Crd,
    /// A custom resource: schema pruning, defaulting and validation.
    Custom,
}

/// An `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// Optional format.
    pub format: String,
    /// Description.
    pub description: String,
    /// Priority (0 is shown by default).
    pub priority: i64,
    /// Simple JSONPath such as `.spec.addresses`.
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone)]
pub struct VersionDef {
    /// Version name, e.g. `v1beta1`.
    pub name: String,
    /// The version's `openAPIV3Schema`, for custom resources.
    pub schema: Option<Value>,
    /// Printer columns, for custom resources.
    pub columns: Vec<PrinterColumn>,
    /// Whether this version has a status subresource.
    pub status: bool,
}

/// Everything the server knows about one resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group, empty for core.
    pub group: String,
    /// Served versions; storage version first.
    pub versions: Vec<VersionDef>,
    /// Plural name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// Server-side behaviour.
    pub special: Special,
    /// Whether `metadata.generation` tracks spec changes.
    pub generation: bool,
    /// Whether PUT on a missing object creates it.
    pub create_on_update: bool,
}

impl ResourceDef {
    /// The group/resource key.
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    /// Where the objects live in the store: the resource itself, except
    /// events.k8s.io Events, which are core/v1 Events (converted per API).
    pub fn store_gr(&self) -> GroupResource {
        if crate::events::is_events_api(self) {
            crate::events::storage()
        } else {
            self.gr()
        }
    }

    /// `apiVersion` for a version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The storage version.
    pub fn storage_version(&self) -> &str {
        &self.versions[0].name
    }

    /// A served version by name.
    pub fn version(&self, name: &str) -> Option<&VersionDef> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// Whether the `status` subresource exists (for this version).
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    special: Special,
) -> ResourceDef {
    let status = matches!(
        plural,
        "services" | "nodes" | "namespaces" | "pods" | "deployments" | "customresourcedefinitions"
    );
    ResourceDef {
        group: group.to_string(),
        versions: vec![VersionDef {
            name: version.to_string(),
            schema: None,
            columns: Vec::new(),
            status,
        }],
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        special,
        generation: false,
        create_on_update: false,
    }
}

/// The built-in resources this server serves.
pub fn builtins() -> Vec<ResourceDef> {
    use Special::*;
    let mut defs = vec![
        builtin("", "v1", "services", "Service", true, &["svc"], Service),
        builtin("", "v1", "endpoints", "Endpoints", true, &["ep"], Plain),
        builtin("", "v1", "nodes", "Node", false, &["no"], Plain),
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            Namespace,
        ),
        builtin("", "v1", "events", "Event", true, &["ev"], Plain),
        builtin("", "v1", "secrets", "Secret", true, &[], Plain),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], Plain),
        builtin("", "v1", "pods", "Pod", true, &["po"], Pod),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            Plain,
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            Plain,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            Plain,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            Plain,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            Crd,
        ),
    ];
    for def in &mut defs {
        def.generation = matches!(
            def.plural.as_str(),
            "services" | "pods" | "deployments" | "endpointslices" | "customresourcedefinitions"
        );
        def.create_on_update = matches!(def.plural.as_str(), "endpoints" | "events");
        if matches!(def.plural.as_str(), "services" | "pods" | "deployments") {
            def.categories = vec!["all".to_string()];
        }
    }
    defs
}

/// All served resources, keyed by group/resource.
#[derive(Debug, Clone)]
pub struct Registry {
    defs: BTreeMap<GroupResource, Arc<ResourceDef>>,
}

impl Default for Registry {
    fn default() -> Self {
        let defs = builtins()
            .into_iter()
            .map(|d| (d.gr(), Arc::new(d)))
            .collect();
        Registry { defs }
    }
}

impl Registry {
    /// The definition for a group/resource.
    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceDef>> {
        self.defs.get(gr).cloned()
    }

    /// The definition serving `plural` at `group/version`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .get(&GroupResource::new(group, plural))
            .filter(|d| d.version(version).is_some())
            .cloned()
    }

    /// Adds or replaces a definition (CRD create/update).
    pub fn insert(&mut self, def: ResourceDef) {
        self.defs.insert(def.gr(), Arc::new(def));
    }

    /// Removes a definition (CRD delete).
    pub fn remove(&mut self, gr: &GroupResource) {
        self.defs.remove(gr);
    }

    /// Every definition, in group/resource order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.values()
    }
}
