//! The example manifests of `deploy/examples/`, built into the lab, and a
//! small `kubectl apply` for them and for any other YAML.
//!
//! The lab configures ferrolb with exactly what an operator is shown in
//! `deploy/examples/`, so the examples are exercised on every lab run and
//! every end-to-end test (a broken example fails them).

use anyhow::{bail, Context};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::Client;
use serde_json::Value;

/// `deploy/examples/ipaddresspool.yaml`: pool `default` (198.51.100.0/24 and
/// 2001:db8:0:1::10-2001:db8:0:1::ff).
pub const POOL: &str = include_str!("../../../deploy/examples/ipaddresspool.yaml");
/// `deploy/examples/l2advertisement.yaml`: pool `default` from every
/// non-control-plane node, on `eth0`.
pub const L2_ADVERTISEMENT: &str = include_str!("../../../deploy/examples/l2advertisement.yaml");
/// `deploy/examples/service-v4.yaml`: `web`, IPv4, TCP 80.
pub const SERVICE_V4: &str = include_str!("../../../deploy/examples/service-v4.yaml");
/// `deploy/examples/service-dualstack.yaml`: `web-dualstack`, asking for
/// 198.51.100.20 and 2001:db8:0:1::20, TCP 80.
pub const SERVICE_DUAL_STACK: &str =
    include_str!("../../../deploy/examples/service-dualstack.yaml");
/// `deploy/examples/service-shared.yaml`: `dns-tcp` and `dns-udp` sharing
/// 198.51.100.53.
pub const SERVICE_SHARED: &str = include_str!("../../../deploy/examples/service-shared.yaml");

/// What the lab configures ferrolb with before any Service exists.
pub const CONFIG: [(&str, &str); 2] = [
    ("deploy/examples/ipaddresspool.yaml", POOL),
    ("deploy/examples/l2advertisement.yaml", L2_ADVERTISEMENT),
];

/// The example Services the demo and `up` apply.
pub const SERVICES: [(&str, &str); 3] = [
    ("deploy/examples/service-v4.yaml", SERVICE_V4),
    ("deploy/examples/service-dualstack.yaml", SERVICE_DUAL_STACK),
    ("deploy/examples/service-shared.yaml", SERVICE_SHARED),
];

/// The objects of a multi-document YAML stream, in order; empty documents
/// (a lone `---`, comments only) are skipped. Every object must name its
/// `apiVersion`, `kind` and `metadata.name`.
pub fn parse(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value: Value = serde::Deserialize::deserialize(doc)
            .with_context(|| format!("document {} is not valid YAML", i + 1))?;
        if value.is_null() {
            continue;
        }
        for field in ["apiVersion", "kind"] {
            if !value[field].is_string() {
                bail!("document {} has no {field}", i + 1);
            }
        }
        if !value["metadata"]["name"].is_string() {
            bail!("document {} has no metadata.name", i + 1);
        }
        out.push(value);
    }
    Ok(out)
}

/// `group/version` and kind of an object.
pub fn gvk(obj: &Value) -> GroupVersionKind {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap_or_default())
}

/// Server-side applies every object of `yaml` (field manager
/// `ferrolb-lab`), as `kubectl apply --server-side -f` would. Namespaced
/// objects without a namespace go to `default`. Returns `kind/name` of each.
pub async fn apply(client: &Client, source: &str, yaml: &str) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for obj in parse(yaml).with_context(|| format!("reading {source}"))? {
        let gvk = gvk(&obj);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (resource, caps) = discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("{source}: the API server does not serve {gvk:?}"))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => {
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &resource)
            }
        };
        let params = PatchParams::apply("ferrolb-lab").force();
        api.patch(&name, &params, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("{source}: applying {} {name}", gvk.kind))?;
        applied.push(format!("{}/{name}", gvk.kind.to_lowercase()));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_and_names_what_the_lab_relies_on() {
        let pool = parse(POOL).unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(pool[0]["kind"], "IPAddressPool");
        assert_eq!(
            pool[0]["metadata"]["name"],
            crate::topology::POOL_NAME,
            "the lab and its tests edit the example pool by this name"
        );
        let ad = parse(L2_ADVERTISEMENT).unwrap();
        assert_eq!(ad[0]["kind"], "L2Advertisement");
        assert_eq!(ad[0]["metadata"]["name"], crate::topology::POOL_NAME);
        let names: Vec<String> = SERVICES
            .iter()
            .flat_map(|(_, y)| parse(y).unwrap())
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["web", "web-dualstack", "dns-tcp", "dns-udp"]);
    }

    #[test]
    fn pool_addresses_stay_where_the_client_has_routes() {
        let pool = parse(POOL).unwrap();
        for range in pool[0]["spec"]["addresses"].as_array().unwrap() {
            let first = range.as_str().unwrap().split(['/', '-']).next().unwrap();
            let ip: std::net::IpAddr = first.parse().unwrap();
            assert!(crate::topology::in_pool_subnet(ip), "{range}");
        }
    }

    #[test]
    fn groups_and_versions_split_like_kubectl() {
        let obj = serde_json::json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool"});
        let g = gvk(&obj);
        assert_eq!(
            (g.group.as_str(), g.version.as_str()),
            ("ferrolb.io", "v1beta1")
        );
        let core = gvk(&serde_json::json!({"apiVersion": "v1", "kind": "Service"}));
        assert_eq!((core.group.as_str(), core.version.as_str()), ("", "v1"));
    }

    #[test]
    fn bad_documents_are_refused_with_their_position() {
        let e = parse("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: Service\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "document 2 has no apiVersion");
        let e = parse("apiVersion: v1\nkind: Service\n").unwrap_err();
        assert_eq!(e.to_string(), "document 1 has no metadata.name");
        assert!(parse("---\n# nothing\n---\n").unwrap().is_empty());
        assert!(parse("a: [").is_err());
    }
}
