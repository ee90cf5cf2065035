//! Service defaults, validation and ClusterIP / NodePort allocation, after the
//! real API server's service REST storage.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};

use crate::error::{ApiError, Cause, Result};
use crate::service_validation::{immutable_ips, validate_spec};

/// Default IPv4 service range (a documentation range).
pub const DEFAULT_IPV4_CIDR: &str = "192.0.2.128/25";
/// Default IPv6 service range (a documentation range).
pub const DEFAULT_IPV6_CIDR: &str = "2001:db8:ffff::/112";

#[derive(Debug, Clone)]
struct IpPool {
    net: IpNet,
    used: HashSet<IpAddr>,
    next: u128,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl IpPool {
    fn new(net: IpNet) -> Self {
        IpPool {
            net,
            used: HashSet::new(),
            next: 0,
        }
    }

    /// Usable offsets: skip the network address, and the broadcast for IPv4.
    fn usable(&self) -> (u128, u128) {
        let size = 1u128 << (self.net.max_prefix_len() - self.net.prefix_len());
        match self.net {
            IpNet::V4(_) => (1, size.saturating_sub(2)),
            IpNet::V6(_) => (1, size.saturating_sub(1)),
        }
    }

    fn addr(&self, offset: u128) -> IpAddr {
        let base = to_u128(self.net.network());
        match self.net {
            IpNet::V4(_) => IpAddr::V4(((base + offset) as u32).into()),
            IpNet::V6(_) => IpAddr::V6((base + offset).into()),
        }
    }

    fn in_range(&self, ip: IpAddr) -> bool {
        let (first, count) = self.usable();
        let off = to_u128(ip).wrapping_sub(to_u128(self.net.network()));
        self.net.contains(&ip) && off >= first && off < first + count
    }

    fn allocate(&mut self) -> Option<IpAddr> {
        let (first, count) = self.usable();
        // Sequential from a cursor: deterministic for tests, and O(1)
        // amortised until the range is nearly full.
        for i in 0..count {
            let ip = self.addr(first + (self.next + i) % count);
            if self.used.insert(ip) {
                self.next = (self.next + i + 1) % count;
                return Some(ip);
            }
        }
        None
    }
}

/// ClusterIP and NodePort allocations.
#[derive(Debug, Clone)]
pub struct ServiceAllocator {
    v4: IpPool,
    v6: IpPool,
    ports: RangeInclusive<u16>,
    used_ports: HashSet<u16>,
    next_port: u16,
}

impl Default for ServiceAllocator {
    fn default() -> Self {
        ServiceAllocator::new(
            DEFAULT_IPV4_CIDR.parse().expect("valid default"),
            DEFAULT_IPV6_CIDR.parse().expect("valid default"),
            30000..=32767,
        )
    }
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: "Service".into(),
        group: String::new(),
        name: name.into(),
        causes,
    }
}

fn needs_node_ports(spec: &Value) -> bool {
    match spec["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec["allocateLoadBalancerNodePorts"] != json!(false),
        _ => false,
    }
}

impl ServiceAllocator {
    /// An allocator over the given ranges.
    pub fn new(v4: Ipv4Net, v6: Ipv6Net, ports: RangeInclusive<u16>) -> Self {
        ServiceAllocator {
            v4: IpPool::new(IpNet::V4(v4)),
            v6: IpPool::new(IpNet::V6(v6)),
            next_port: *ports.start(),
            ports,
            used_ports: HashSet::new(),
        }
    }

    fn pool(&mut self, v6: bool) -> &mut IpPool {
        if v6 {
            &mut self.v6
        } else {
            &mut self.v4
        }
    }

    fn allocate_port(&mut self) -> Option<u16> {
        let (lo, hi) = (*self.ports.start() as u32, *self.ports.end() as u32);
        let count = hi - lo + 1;
        for i in 0..count {
            let p = (lo + (self.next_port as u32 - lo + i) % count) as u16;
            if self.used_ports.insert(p) {
                self.next_port = (lo + (p as u32 - lo + 1) % count) as u16;
                return Some(p);
            }
        }
        None
    }

    /// Releases everything a stored Service holds.
    pub fn release(&mut self, svc: &Value) {
        let spec = &svc["spec"];
        for ip in spec["clusterIPs"].as_array().into_iter().flatten() {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                self.pool(ip.is_ipv6()).used.remove(&ip);
            }
        }
        for p in spec["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_u64() {
                self.used_ports.remove(&(np as u16));
            }
        }
        if let Some(np) = spec["healthCheckNodePort"].as_u64() {
            self.used_ports.remove(&(np as u16));
        }
    }

    /// Fills defaults, validates and allocates for a Service being created
    /// (`old` None) or updated. On error nothing changes.
    pub fn prepare(&mut self, name: &str, svc: &mut Value, old: Option<&Value>) -> Result<()> {
        if !svc["spec"].is_object() {
            svc["spec"] = json!({});
        }
        if let Some(old) = old {
            carry_over(&old["spec"], &mut svc["spec"]);
        }
        let spec = &mut svc["spec"];
        default_spec(spec);
        let mut causes = validate_spec(spec, self.ports.clone());
        if let Some(old) = old {
            causes.extend(immutable_ips(&old["spec"], spec));
        }
        if !causes.is_empty() {
            return Err(invalid(name, causes));
        }
        if let Some(old) = old {
            self.release(old);
        }
        match self.claim(name, spec) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(old) = old {
                    // Nothing else ran since the release: these are free.
                    let mut old_spec = old["spec"].clone();
                    let _ = self.claim(name, &mut old_spec);
                }
                Err(e)
            }
        }
    }

    fn claim(&mut self, name: &str, spec: &mut Value) -> Result<()> {
        let mut taken_ips: Vec<IpAddr> = Vec::new();
        let mut taken_ports: Vec<u16> = Vec::new();
        let result = self.claim_inner(name, spec, &mut taken_ips, &mut taken_ports);
        if result.is_err() {
            for ip in taken_ips {
                self.pool(ip.is_ipv6()).used.remove(&ip);
            }
            for p in taken_ports {
                self.used_ports.remove(&p);
            }
        }
        result
    }

    fn claim_inner(
        &mut self,
        name: &str,
        spec: &mut Value,
        taken_ips: &mut Vec<IpAddr>,
        taken_ports: &mut Vec<u16>,
    ) -> Result<()> {
        let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        if ty != "ExternalName" && spec["clusterIP"] != json!("None") {
            let families: Vec<String> = spec["ipFamilies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            let given: Vec<String> = spec["clusterIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            let mut ips = Vec::new();
            for (i, fam) in families.iter().enumerate() {
                let v6 = fam == "IPv6";
                let ip = match given.get(i).filter(|s| !s.is_empty()) {
                    Some(s) => {
                        let field = format!("spec.clusterIPs[{i}]");
                        let ip: IpAddr = s.parse().map_err(|_| {
                            invalid(
                                name,
                                vec![Cause::invalid(
                                    &field,
                                    &json!(s),
                                    "must be a valid IP address",
                                )],
                            )
                        })?;
                        let pool = self.pool(v6);
                        if ip.is_ipv6() != v6 || !pool.in_range(ip) {
                            let detail = format!("failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}", pool.net);
                            return Err(invalid(
                                name,
                                vec![Cause::invalid(&field, &json!(s), detail)],
                            ));
                        }
                        if !pool.used.insert(ip) {
                            let detail = format!(
                                "failed to allocate IP {ip}: provided IP is already allocated"
                            );
                            return Err(invalid(
                                name,
                                vec![Cause::invalid(&field, &json!(s), detail)],
                            ));
                        }
                        ip
                    }
                    None => self.pool(v6).allocate().ok_or_else(|| {
                        ApiError::Internal(format!(
                            "failed to allocate a serviceIP: range is full ({fam})"
                        ))
                    })?,
                };
                taken_ips.push(ip);
                ips.push(json!(ip.to_string()));
            }
            spec["clusterIP"] = ips.first().cloned().unwrap_or(json!(""));
            spec["clusterIPs"] = Value::Array(ips);
        }
        if needs_node_ports(spec) {
            let range = format!("{}-{}", self.ports.start(), self.ports.end());
            let count = spec["ports"].as_array().map_or(0, Vec::len);
            for i in 0..count {
                let field = format!("spec.ports[{i}].nodePort");
                let port = &mut spec["ports"][i];
                match port["nodePort"].as_u64().filter(|p| *p != 0) {
                    Some(np) => {
                        let np = np as u16;
                        if !self.used_ports.insert(np) {
                            let detail = "provided port is already allocated";
                            return Err(invalid(
                                name,
                                vec![Cause::invalid(&field, &json!(np), detail)],
                            ));
                        }
                        taken_ports.push(np);
                    }
                    None => {
                        let np = self.allocate_port().ok_or_else(|| {
                            ApiError::Internal(format!(
                                "failed to allocate a nodePort: range is full ({range})"
                            ))
                        })?;
                        taken_ports.push(np);
                        port["nodePort"] = json!(np);
                    }
                }
            }
        }
        if ty == "LoadBalancer" && spec["externalTrafficPolicy"] == json!("Local") {
            match spec["healthCheckNodePort"].as_u64().filter(|p| *p != 0) {
                Some(np) => {
                    if !self.used_ports.insert(np as u16) {
                        let detail = "provided port is already allocated";
                        return Err(invalid(
                            name,
                            vec![Cause::invalid(
                                "spec.healthCheckNodePort",
                                &json!(np),
                                detail,
                            )],
                        ));
                    }
                    taken_ports.push(np as u16);
                }
                None => {
                    let np = self.allocate_port().ok_or_else(|| {
                        ApiError::Internal("failed to allocate a nodePort: range is full".into())
                    })?;
                    taken_ports.push(np);
                    spec["healthCheckNodePort"] = json!(np);
                }
            }
        }
        Ok(())
    }
}

/// Keeps allocated values an update omits, and drops those a type change
/// makes meaningless (the real server's `patchAllocatedValues` and
/// `dropTypeDependentFields`).
fn carry_over(old: &Value, new: &mut Value) {
    let old_ty = old["type"].as_str().unwrap_or("ClusterIP");
    let new_ty = new["type"].as_str().unwrap_or("ClusterIP").to_string();
    if new_ty != "ExternalName" && old_ty != "ExternalName" {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            let empty = match &new[field] {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if empty && !old[field].is_null() {
                new[field] = old[field].clone();
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let by_name: Vec<(String, Value)> = old["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["nodePort"].clone(),
                )
            })
            .collect();
        if let Some(ports) = new["ports"].as_array_mut() {
            for p in ports {
                if p["nodePort"].as_u64().unwrap_or(0) == 0 {
                    let name = p["name"].as_str().unwrap_or("");
                    if let Some((_, np)) = by_name.iter().find(|(n, _)| n == name) {
                        if !np.is_null() {
                            p["nodePort"] = np.clone();
                        }
                    }
                }
            }
        }
    }
    if new["healthCheckNodePort"].is_null() && old["healthCheckNodePort"].is_u64() {
        new["healthCheckNodePort"] = old["healthCheckNodePort"].clone();
    }
    if !needs_node_ports(new) && new_ty != "LoadBalancer" {
        if let Some(ports) = new["ports"].as_array_mut() {
            for p in ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
    }
    let obj = new.as_object_mut().expect("spec is an object");
    if new_ty != "LoadBalancer" {
        obj.remove("healthCheckNodePort");
        obj.remove("allocateLoadBalancerNodePorts");
    }
    if new_ty == "ClusterIP" || new_ty == "ExternalName" {
        obj.remove("externalTrafficPolicy");
    }
    if new_ty == "ExternalName" {
        for f in [
            "clusterIP",
            "clusterIPs",
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
        ] {
            obj.remove(f);
        }
    }
}

fn default_spec(spec: &mut Value) {
    let set_default = |spec: &mut Value, field: &str, v: Value| {
        if spec[field].is_null() {
            spec[field] = v;
        }
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or("").to_string();
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() && !p["port"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    if ty == "ExternalName" {
        return;
    }
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "LoadBalancer" || ty == "NodePort" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let has_ip = spec["clusterIP"].as_str().is_some_and(|s| !s.is_empty());
    if has_ip && spec["clusterIPs"].as_array().is_none_or(Vec::is_empty) {
        spec["clusterIPs"] = json!([spec["clusterIP"]]);
    }
    if spec["clusterIP"].is_null() {
        if let Some(first) = spec["clusterIPs"].get(0).cloned() {
            spec["clusterIP"] = first;
        }
    }
    let families_given = spec["ipFamilies"].as_array().is_some_and(|a| !a.is_empty());
    if spec["ipFamilyPolicy"].is_null() {
        let n = spec["ipFamilies"].as_array().map_or(0, Vec::len);
        let ips = spec["clusterIPs"].as_array().map_or(0, Vec::len);
        // Two families without a policy is refused by validation, as upstream.
        if n < 2 && ips < 2 {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    if !families_given {
        // Families follow explicitly requested IPs, else IPv4 first.
        let from_ips: Vec<Value> = spec["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str()?.parse::<IpAddr>().ok())
            .map(|ip| json!(if ip.is_ipv6() { "IPv6" } else { "IPv4" }))
            .collect();
        let mut fams = if from_ips.is_empty() {
            vec![json!("IPv4")]
        } else {
            from_ips
        };
        let dual = matches!(
            spec["ipFamilyPolicy"].as_str(),
            Some("PreferDualStack" | "RequireDualStack")
        );
        if dual && fams.len() == 1 {
            let other = if fams[0] == json!("IPv4") {
                "IPv6"
            } else {
                "IPv4"
            };
            fams.push(json!(other));
        }
        spec["ipFamilies"] = Value::Array(fams);
    }
}

/// The status a new Service starts with.
pub fn initial_status() -> Value {
    json!({ "loadBalancer": {} })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(ports: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": ports}})
    }

    #[test]
    fn a_load_balancer_gets_a_cluster_ip_node_ports_and_the_upstream_defaults() {
        let mut a = ServiceAllocator::default();
        let mut svc = lb(json!([{"port": 80}]));
        a.prepare("s", &mut svc, None).unwrap();
        let spec = &svc["spec"];
        assert_eq!(spec["clusterIP"], "192.0.2.129");
        assert_eq!(spec["clusterIPs"], json!(["192.0.2.129"]));
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert_eq!(spec["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn dual_stack_services_get_one_address_per_family() {
        let mut a = ServiceAllocator::default();
        let mut svc = lb(json!([{"port": 80}]));
        svc["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
        a.prepare("s", &mut svc, None).unwrap();
        assert_eq!(
            svc["spec"]["clusterIPs"],
            json!(["192.0.2.129", "2001:db8:ffff::1"])
        );
    }

    #[test]
    fn a_taken_node_port_is_refused_and_nothing_leaks() {
        let mut a = ServiceAllocator::default();
        let mut first = lb(json!([{"port": 80, "nodePort": 30100}]));
        a.prepare("a", &mut first, None).unwrap();
        let mut second = lb(json!([{"port": 80, "nodePort": 30100}]));
        let err = a.prepare("b", &mut second, None).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err
            .to_string()
            .contains("provided port is already allocated"));
        // The failed create must not keep its cluster IP.
        assert_eq!(a.v4.used.len(), 1);
        assert_eq!(a.used_ports.len(), 1);
    }

    #[test]
    fn changing_the_type_to_cluster_ip_releases_node_ports() {
        let mut a = ServiceAllocator::default();
        let mut old = lb(json!([{"port": 80}]));
        a.prepare("s", &mut old, None).unwrap();
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        a.prepare("s", &mut new, Some(&old)).unwrap();
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        let mut other = lb(json!([{"port": 80, "nodePort": 30000}]));
        a.prepare("t", &mut other, None).unwrap();
    }

    #[test]
    fn the_ipv4_range_runs_out_after_its_usable_addresses() {
        let mut a = ServiceAllocator::new(
            "192.0.2.128/30".parse().unwrap(),
            DEFAULT_IPV6_CIDR.parse().unwrap(),
            30000..=32767,
        );
        for _ in 0..2 {
            let mut s = json!({"spec": {"ports": [{"port": 1}]}});
            a.prepare("s", &mut s, None).unwrap();
        }
        let mut s = json!({"spec": {"ports": [{"port": 1}]}});
        assert_eq!(a.prepare("s", &mut s, None).unwrap_err().code(), 500);
    }
}
