//! RBAC as kube-apiserver's authorizer evaluates it, for tests: which
//! [`RequestInfo`]s the Roles, ClusterRoles and their bindings in a
//! manifest grant to a user, and, given a request log, which logged calls
//! no rule grants and which rules no logged call needed.
//!
//! The matching follows k8s.io/kubernetes `plugin/pkg/auth/authorizer/rbac`
//! and `pkg/apis/rbac/v1/evaluation_helpers.go`: a rule matches when a
//! verb, an API group and a resource (`resource/subresource`, or
//! `*/subresource`) match, `*` matching anything, and its `resourceNames`
//! (when given) hold the request's name. A RoleBinding grants only within
//! its namespace; a ClusterRoleBinding grants everywhere, cluster-scoped
//! resources included. The server itself never enforces any of this.
//!
//! ```
//! use kube_test_server::rbac::Rbac;
//! use kube_test_server::request_log::RequestInfo;
//! let rbac = Rbac::from_yaml("
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: ClusterRole
//! metadata: {name: reader}
//! rules: [{apiGroups: [''], resources: [nodes], verbs: [list]}]
//! ---
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: ClusterRoleBinding
//! metadata: {name: reader}
//! roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
//! subjects: [{kind: ServiceAccount, name: r, namespace: s}]
//! ").unwrap();
//! let list = RequestInfo::from_request("GET", "/api/v1/nodes", &Default::default());
//! assert!(rbac.allows("system:serviceaccount:s:r", &list));
//! assert!(!rbac.allows("system:serviceaccount:s:other", &list));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

use crate::request_log::{RequestInfo, RequestRecord};

/// The rules a binding grants, to whom, and where.
#[derive(Debug, Clone)]
struct Grant {
    /// `RoleBinding ns/name` or `ClusterRoleBinding name`.
    binding: String,
    /// `Role ns/name` or `ClusterRole name`.
    role: String,
    /// `None`: everywhere (ClusterRoleBinding); `Some(ns)`: within `ns`.
    namespace: Option<String>,
    subjects: Vec<Subject>,
    rules: Vec<PolicyRule>,
}

/// The RBAC objects of a manifest.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    grants: Vec<Grant>,
}

/// One permission a rule grants: a single verb on a single group and
/// resource, and name when the rule names objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// The binding that grants it.
    pub binding: String,
    /// The role holding the rule.
    pub role: String,
    /// API group.
    pub api_group: String,
    /// `resource` or `resource/subresource` (or a non-resource URL).
    pub resource: String,
    /// Verb.
    pub verb: String,
    /// One of the rule's `resourceNames`, if it has any.
    pub resource_name: Option<String>,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(name) = &self.resource_name {
            write!(f, " named {name}")?;
        }
        write!(f, " ({}, via {})", self.role, self.binding)
    }
}

/// A logged call no rule grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denied {
    /// Who made it.
    pub user: String,
    /// The call, as `verb group/resource[/sub] [ns=..] [name=..]`.
    pub call: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.user, self.call)
    }
}

/// What [`Rbac::coverage`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Calls made by a bound subject that no rule grants (each once).
    pub denied: Vec<Denied>,
    /// Permissions no logged call of the binding's subjects needed.
    pub unused: Vec<Permission>,
}

/// Describes a call for messages: `verb group/resource[/sub] ns=.. name=..`.
pub fn describe(info: &RequestInfo) -> String {
    if !info.resource_request {
        return format!("{} {}", info.verb, info.path);
    }
    let group = if info.api_group.is_empty() {
        "core"
    } else {
        &info.api_group
    };
    let mut s = format!("{} {group}/{}", info.verb, combined_resource(info));
    if !info.namespace.is_empty() {
        s.push_str(&format!(" ns={}", info.namespace));
    }
    if !info.name.is_empty() {
        s.push_str(&format!(" name={}", info.name));
    }
    s
}

fn combined_resource(info: &RequestInfo) -> String {
    if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    }
}

/// Whether `rule` grants `info` (`RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, info: &RequestInfo) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == info.verb);
    if !info.resource_request {
        return verb
            && rule.non_resource_urls.iter().flatten().any(|u| {
                u == "*"
                    || *u == info.path
                    || u.strip_suffix('*')
                        .is_some_and(|p| info.path.starts_with(p))
            });
    }
    let group = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || *g == info.api_group);
    let combined = combined_resource(info);
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!info.subresource.is_empty()
                && r.strip_prefix("*/") == Some(info.subresource.as_str()))
    });
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let name = names.is_empty() || names.contains(&info.name);
    verb && group && resource && name
}

/// The groups Kubernetes gives a user name (service accounts only; every
/// authenticated user is in `system:authenticated`).
fn groups_of(user: &str) -> Vec<String> {
    let mut groups = vec!["system:authenticated".to_owned()];
    if let Some((ns, _)) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        groups.push("system:serviceaccounts".to_owned());
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    groups
}

/// Whether `subject` names `user` (`appliesToUser`).
fn applies_to(subject: &Subject, user: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user,
        "Group" => groups_of(user).contains(&subject.name),
        "ServiceAccount" => subject.namespace.as_deref().is_some_and(|ns| {
            !ns.is_empty() && user == format!("system:serviceaccount:{ns}:{}", subject.name)
        }),
        _ => false,
    }
}

/// The user names the subjects stand for (ServiceAccounts and Users;
/// groups have no single user).
fn user_names(subjects: &[Subject]) -> Vec<String> {
    subjects
        .iter()
        .filter_map(|s| match s.kind.as_str() {
            "User" => Some(s.name.clone()),
            "ServiceAccount" => s
                .namespace
                .as_ref()
                .map(|ns| format!("system:serviceaccount:{ns}:{}", s.name)),
            _ => None,
        })
        .collect()
}

impl Grant {
    fn in_scope(&self, info: &RequestInfo) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == info.namespace)
    }

    fn applies(&self, user: &str, info: &RequestInfo) -> bool {
        self.subjects.iter().any(|s| applies_to(s, user)) && self.in_scope(info)
    }

    /// Every single permission of every rule.
    fn permissions(&self) -> Vec<(Permission, PolicyRule)> {
        let mut out = Vec::new();
        for rule in &self.rules {
            let names: Vec<Option<String>> = match rule.resource_names.as_deref() {
                Some(n) if !n.is_empty() => n.iter().cloned().map(Some).collect(),
                _ => vec![None],
            };
            let groups: Vec<String> = rule.api_groups.clone().unwrap_or_default();
            let resources: Vec<String> = rule.resources.clone().unwrap_or_default();
            for verb in &rule.verbs {
                for url in rule.non_resource_urls.iter().flatten() {
                    let atom = PolicyRule {
                        verbs: vec![verb.clone()],
                        non_resource_urls: Some(vec![url.clone()]),
                        ..Default::default()
                    };
                    out.push((self.permission("", url, verb, None), atom));
                }
                for group in &groups {
                    for resource in &resources {
                        for name in &names {
                            let atom = PolicyRule {
                                verbs: vec![verb.clone()],
                                api_groups: Some(vec![group.clone()]),
                                resources: Some(vec![resource.clone()]),
                                resource_names: name.clone().map(|n| vec![n]),
                                ..Default::default()
                            };
                            out.push((self.permission(group, resource, verb, name.clone()), atom));
                        }
                    }
                }
            }
        }
        out
    }

    fn permission(
        &self,
        group: &str,
        resource: &str,
        verb: &str,
        name: Option<String>,
    ) -> Permission {
        Permission {
            binding: self.binding.clone(),
            role: self.role.clone(),
            api_group: group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
            resource_name: name,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<T, String> {
    serde_json::from_value(doc.clone()).map_err(|e| {
        format!(
            "{} {}: {e}",
            doc["kind"].as_str().unwrap_or("?"),
            doc["metadata"]["name"].as_str().unwrap_or("?")
        )
    })
}

impl Rbac {
    /// The RBAC objects among `docs` (other kinds are ignored). A binding
    /// whose role is not among them grants nothing.
    pub fn from_objects(docs: &[Value]) -> Result<Rbac, String> {
        let mut roles: Vec<(Option<String>, String, Vec<PolicyRule>)> = Vec::new();
        let mut bindings: Vec<(Option<String>, String, RoleRef, Vec<Subject>)> = Vec::new();
        for doc in docs {
            let is_rbac = doc["apiVersion"] == "rbac.authorization.k8s.io/v1";
            match doc["kind"].as_str().filter(|_| is_rbac) {
                Some("ClusterRole") => {
                    let r: ClusterRole = parse(doc)?;
                    roles.push((
                        None,
                        r.metadata.name.unwrap_or_default(),
                        r.rules.unwrap_or_default(),
                    ));
                }
                Some("Role") => {
                    let r: Role = parse(doc)?;
                    roles.push((
                        Some(r.metadata.namespace.unwrap_or_default()),
                        r.metadata.name.unwrap_or_default(),
                        r.rules.unwrap_or_default(),
                    ));
                }
                Some("ClusterRoleBinding") => {
                    let b: ClusterRoleBinding = parse(doc)?;
                    bindings.push((
                        None,
                        b.metadata.name.unwrap_or_default(),
                        b.role_ref,
                        b.subjects.unwrap_or_default(),
                    ));
                }
                Some("RoleBinding") => {
                    let b: RoleBinding = parse(doc)?;
                    bindings.push((
                        Some(b.metadata.namespace.unwrap_or_default()),
                        b.metadata.name.unwrap_or_default(),
                        b.role_ref,
                        b.subjects.unwrap_or_default(),
                    ));
                }
                _ => {}
            }
        }
        let mut grants = Vec::new();
        for (ns, name, role_ref, subjects) in bindings {
            // A ClusterRoleBinding can only reference a ClusterRole; a
            // RoleBinding a ClusterRole or a Role of its own namespace.
            let role_ns = match (role_ref.kind.as_str(), &ns) {
                ("ClusterRole", _) => None,
                ("Role", Some(ns)) => Some(ns.clone()),
                _ => continue,
            };
            let Some((_, _, rules)) = roles
                .iter()
                .find(|(rns, rname, _)| *rns == role_ns && *rname == role_ref.name)
            else {
                continue;
            };
            grants.push(Grant {
                binding: match &ns {
                    Some(ns) => format!("RoleBinding {ns}/{name}"),
                    None => format!("ClusterRoleBinding {name}"),
                },
                role: match &role_ns {
                    Some(ns) => format!("Role {ns}/{}", role_ref.name),
                    None => format!("ClusterRole {}", role_ref.name),
                },
                namespace: ns,
                subjects,
                rules: rules.clone(),
            });
        }
        Ok(Rbac { grants })
    }

    /// [`Rbac::from_objects`] of a multi-document YAML stream.
    pub fn from_yaml(yaml: &str) -> Result<Rbac, String> {
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        Rbac::from_objects(&docs)
    }

    /// Whether some binding of `user` grants `info`.
    pub fn allows(&self, user: &str, info: &RequestInfo) -> bool {
        self.grants
            .iter()
            .filter(|g| g.applies(user, info))
            .any(|g| g.rules.iter().any(|r| rule_allows(r, info)))
    }

    /// Every user name a binding names directly (ServiceAccounts, Users).
    pub fn subjects(&self) -> BTreeSet<String> {
        self.grants
            .iter()
            .flat_map(|g| user_names(&g.subjects))
            .collect()
    }

    /// Compares a request log with the rules: the calls of the bound
    /// subjects ([`Rbac::subjects`]) that nothing grants, and the
    /// permissions that none of their calls needed. Other users' calls
    /// (the test's own client) are not looked at.
    pub fn coverage<'a>(&self, log: impl IntoIterator<Item = &'a RequestRecord>) -> Coverage {
        let subjects = self.subjects();
        let calls: Vec<(&str, &RequestInfo)> = log
            .into_iter()
            .filter_map(|r| {
                let user = r.user.as_deref()?;
                subjects.contains(user).then_some((user, &r.info))
            })
            .collect();
        let denied: BTreeSet<Denied> = calls
            .iter()
            .filter(|(user, info)| !self.allows(user, info))
            .map(|(user, info)| Denied {
                user: (*user).to_owned(),
                call: describe(info),
            })
            .collect();
        let mut unused = Vec::new();
        for grant in &self.grants {
            for (permission, atom) in grant.permissions() {
                let used = calls
                    .iter()
                    .any(|(user, info)| grant.applies(user, info) && rule_allows(&atom, info));
                if !used {
                    unused.push(permission);
                }
            }
        }
        unused.sort();
        unused.dedup();
        Coverage {
            denied: denied.into_iter().collect(),
            unused,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SA: &str = "system:serviceaccount:sys:ctl";

    fn info(method: &str, path: &str) -> RequestInfo {
        RequestInfo::from_request(method, path, &HashMap::new())
    }

    fn record(user: &str, method: &str, path: &str) -> RequestRecord {
        RequestRecord {
            user: Some(user.to_owned()),
            info: info(method, path),
            code: 200,
            arrived: 0,
            answered: 1,
        }
    }

    /// A Role (in `sys`) or ClusterRole `ctl` with `rules` (YAML flow
    /// sequence), bound to service account `sys/ctl`.
    fn rbac(cluster: bool, rules: &str) -> Rbac {
        let (kind, ns) = if cluster {
            ("ClusterRole", "")
        } else {
            ("Role", "namespace: sys, ")
        };
        Rbac::from_yaml(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata: {{{ns}name: ctl}}
rules: {rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}Binding
metadata: {{{ns}name: ctl}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: ctl}}
subjects: [{{kind: ServiceAccount, name: ctl, namespace: sys}}]
"
        ))
        .unwrap()
    }

    #[test]
    fn a_rule_with_resource_names_grants_get_of_that_name_but_not_list_or_create() {
        let r = rbac(
            false,
            "[{apiGroups: [''], resources: [secrets], resourceNames: [key], verbs: [get, list, create]}]",
        );
        assert!(r.allows(SA, &info("GET", "/api/v1/namespaces/sys/secrets/key")));
        assert!(!r.allows(SA, &info("GET", "/api/v1/namespaces/sys/secrets/other")));
        // A list has no name, and neither has a create.
        assert!(!r.allows(SA, &info("GET", "/api/v1/namespaces/sys/secrets")));
        assert!(!r.allows(SA, &info("POST", "/api/v1/namespaces/sys/secrets")));
        // ...unless a field selector pins the name.
        let q = HashMap::from([("fieldSelector".to_string(), "metadata.name=key".to_string())]);
        let pinned = RequestInfo::from_request("GET", "/api/v1/namespaces/sys/secrets", &q);
        assert!(r.allows(SA, &pinned));
    }

    #[test]
    fn a_role_grants_only_in_its_namespace_and_never_cluster_scoped_calls() {
        let r = rbac(
            false,
            "[{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]",
        );
        assert!(r.allows(SA, &info("GET", "/api/v1/namespaces/sys/services")));
        assert!(!r.allows(SA, &info("GET", "/api/v1/namespaces/other/services")));
        assert!(!r.allows(SA, &info("GET", "/api/v1/services")));
        assert!(!r.allows(SA, &info("GET", "/api/v1/nodes/n1")));
    }

    #[test]
    fn a_cluster_role_binding_grants_in_every_namespace_and_cluster_wide() {
        let r = rbac(
            true,
            "[{apiGroups: [''], resources: [services, nodes], verbs: [list]}]",
        );
        assert!(r.allows(SA, &info("GET", "/api/v1/services")));
        assert!(r.allows(SA, &info("GET", "/api/v1/namespaces/any/services")));
        assert!(r.allows(SA, &info("GET", "/api/v1/nodes")));
        assert!(
            !r.allows(SA, &info("GET", "/api/v1/nodes/n1")),
            "get is not list"
        );
        assert!(!r.allows(
            "system:serviceaccount:other:ctl",
            &info("GET", "/api/v1/nodes")
        ));
    }

    #[test]
    fn stars_match_anything_and_subresources_need_their_own_rule() {
        let r = rbac(
            true,
            "[{apiGroups: ['*'], resources: [services], verbs: ['*']}, {apiGroups: [x.io], resources: ['*/status'], verbs: [patch]}]",
        );
        assert!(r.allows(SA, &info("DELETE", "/api/v1/namespaces/a/services/s")));
        assert!(r.allows(SA, &info("GET", "/apis/y.io/v1/services")));
        assert!(!r.allows(SA, &info("PATCH", "/api/v1/namespaces/a/services/s/status")));
        assert!(r.allows(
            SA,
            &info("PATCH", "/apis/x.io/v1/namespaces/a/pools/p/status")
        ));
        assert!(!r.allows(SA, &info("PATCH", "/apis/x.io/v1/namespaces/a/pools/p")));
        let all = rbac(true, "[{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]");
        assert!(all.allows(SA, &info("PUT", "/api/v1/namespaces/a/services/s/status")));
    }

    #[test]
    fn group_subjects_cover_service_accounts_and_unknown_roles_grant_nothing() {
        let r = Rbac::from_yaml(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: read}
rules: [{apiGroups: [''], resources: [nodes], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read}
subjects: [{kind: Group, name: 'system:serviceaccounts:sys'}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: missing}
subjects: [{kind: User, name: alice}]
",
        )
        .unwrap();
        assert!(r.allows(SA, &info("GET", "/api/v1/nodes")));
        assert!(!r.allows(
            "system:serviceaccount:other:x",
            &info("GET", "/api/v1/nodes")
        ));
        assert!(!r.allows("alice", &info("GET", "/api/v1/nodes")));
    }

    #[test]
    fn coverage_names_calls_not_granted_and_permissions_not_used() {
        let r = rbac(
            true,
            "[{apiGroups: ['', events.k8s.io], resources: [events], verbs: [create, patch]}]",
        );
        let log = [
            record(SA, "POST", "/apis/events.k8s.io/v1/namespaces/a/events"),
            record(SA, "GET", "/api/v1/nodes"),
            // Not a bound subject: ignored.
            record("someone", "DELETE", "/api/v1/nodes/n1"),
            RequestRecord {
                user: None,
                info: info("GET", "/api/v1/secrets"),
                code: 200,
                arrived: 2,
                answered: 3,
            },
        ];
        let c = r.coverage(&log);
        assert_eq!(
            c.denied,
            [Denied {
                user: SA.into(),
                call: "list core/nodes".into()
            }]
        );
        let unused: Vec<String> = c.unused.iter().map(ToString::to_string).collect();
        assert_eq!(
            unused,
            [
                "create core/events (ClusterRole ctl, via ClusterRoleBinding ctl)",
                "patch core/events (ClusterRole ctl, via ClusterRoleBinding ctl)",
                "patch events.k8s.io/events (ClusterRole ctl, via ClusterRoleBinding ctl)",
            ]
        );
    }

    #[test]
    fn a_call_outside_a_role_binding_namespace_does_not_use_its_rules() {
        let r = rbac(
            false,
            "[{apiGroups: [''], resources: [secrets], verbs: [create]}]",
        );
        let elsewhere = [record(SA, "POST", "/api/v1/namespaces/other/secrets")];
        let c = r.coverage(&elsewhere);
        assert_eq!(c.denied.len(), 1);
        assert_eq!(c.unused.len(), 1);
        let here = [record(SA, "POST", "/api/v1/namespaces/sys/secrets")];
        assert_eq!(r.coverage(&here), Coverage::default());
    }
}
