//! A pool's `serviceAllocation` rules, evaluated purely.
//!
//! The label selectors themselves live in [`crate::selector`], which the
//! speaker shares; the conversion from `k8s_openapi` stays in ferrolb-crds,
//! so the allocator sees no Kubernetes objects.

pub use crate::selector::{LabelSelector, Labels, SelectorOp, SelectorRequirement};

/// A pool's `spec.serviceAllocation`: its priority and which Services may
/// use it.
///
/// The rules, as in MetalLB's `isPoolCompatibleWithService` (where
/// `namespaceSelectors` are resolved into the namespace set):
/// - with no `namespaces`, `namespace_selectors` and `service_selectors`
///   the pool is open to every Service;
/// - if `namespaces` or `namespace_selectors` is set, the Service's
///   namespace must be listed in `namespaces` **or** its labels must match
///   at least one of `namespace_selectors`;
/// - if `service_selectors` is set, the Service's labels must match at least
///   one of them;
/// - both conditions must hold when both are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; pools without a priority come last.
    pub priority: Option<i32>,
    /// Namespaces allowed to use the pool.
    pub namespaces: Vec<String>,
    /// Selectors over namespace labels allowed to use the pool.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Selectors over Service labels allowed to use the pool.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether the pool restricts its users at all.
    pub fn is_restricted(&self) -> bool {
        !self.namespaces.is_empty()
            || !self.namespace_selectors.is_empty()
            || !self.service_selectors.is_empty()
    }

    /// `Ok` when a Service in `namespace` (whose labels are
    /// `namespace_labels`) with `service_labels` may use the pool, else a
    /// sentence naming the rule that excludes it.
    pub fn allows(
        &self,
        namespace: &str,
        namespace_labels: &Labels,
        service_labels: &Labels,
    ) -> Result<(), String> {
        let namespace_limited = !self.namespaces.is_empty() || !self.namespace_selectors.is_empty();
        if namespace_limited
            && !self.namespaces.iter().any(|n| n == namespace)
            && !self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels))
        {
            return Err(format!(
                "namespace {namespace:?} is not in serviceAllocation.namespaces and matches none of its namespaceSelectors"
            ));
        }
        if !self.service_selectors.is_empty()
            && !self
                .service_selectors
                .iter()
                .any(|s| s.matches(service_labels))
        {
            return Err(
                "the Service's labels match none of serviceAllocation.serviceSelectors".to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::tests::labels;

    #[test]
    fn a_pool_without_rules_is_open_to_every_service() {
        let open = ServiceAllocation::default();
        assert!(!open.is_restricted());
        assert!(open.allows("any", &labels(&[]), &labels(&[])).is_ok());
    }

    #[test]
    fn a_namespace_may_be_listed_or_selected() {
        let alloc = ServiceAllocation {
            namespaces: vec!["red".into()],
            namespace_selectors: vec![LabelSelector {
                match_labels: labels(&[("team", "blue")]),
                match_expressions: vec![],
            }],
            ..Default::default()
        };
        assert!(alloc.allows("red", &labels(&[]), &labels(&[])).is_ok());
        assert!(alloc
            .allows("other", &labels(&[("team", "blue")]), &labels(&[]))
            .is_ok());
        let why = alloc
            .allows("other", &labels(&[]), &labels(&[]))
            .unwrap_err();
        assert!(why.contains("\"other\""), "{why}");
    }

    #[test]
    fn any_service_selector_may_match() {
        let alloc = ServiceAllocation {
            service_selectors: vec![
                LabelSelector {
                    match_labels: labels(&[("tier", "gold")]),
                    match_expressions: vec![],
                },
                LabelSelector {
                    match_labels: labels(&[("tier", "silver")]),
                    match_expressions: vec![],
                },
            ],
            ..Default::default()
        };
        assert!(alloc
            .allows("ns", &labels(&[]), &labels(&[("tier", "silver")]))
            .is_ok());
        assert!(alloc
            .allows("ns", &labels(&[]), &labels(&[("tier", "bronze")]))
            .is_err());
    }

    #[test]
    fn namespace_and_service_rules_must_both_hold() {
        let alloc = ServiceAllocation {
            namespaces: vec!["red".into()],
            service_selectors: vec![LabelSelector {
                match_labels: labels(&[("tier", "gold")]),
                match_expressions: vec![],
            }],
            ..Default::default()
        };
        let gold = labels(&[("tier", "gold")]);
        assert!(alloc.allows("red", &labels(&[]), &gold).is_ok());
        assert!(alloc.allows("blue", &labels(&[]), &gold).is_err());
        assert!(alloc.allows("red", &labels(&[]), &labels(&[])).is_err());
    }
}
