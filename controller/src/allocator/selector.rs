//! Label selectors and a pool's `serviceAllocation` rules, evaluated purely.

use std::collections::BTreeMap;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// The operator of one `matchExpressions` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SelectorOp {
    /// The label is present and its value is one of the values.
    In,
    /// The label is absent, or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` term.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectorRequirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: SelectorOp,
    /// Values for `In` / `NotIn`; must be empty for `Exists` / `DoesNotExist`.
    pub values: Vec<String>,
}

/// A Kubernetes label selector: every term of `match_labels` and
/// `match_expressions` must hold (they are ANDed); an empty selector
/// matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSelector {
    /// Exact key/value pairs.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based terms.
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Whether `labels` satisfy every term.
    ///
    /// ```
    /// use ferrolb_controller::allocator::LabelSelector;
    /// use std::collections::BTreeMap;
    /// let mut sel = LabelSelector::default();
    /// assert!(sel.matches(&BTreeMap::new()));
    /// sel.match_labels.insert("tier".into(), "web".into());
    /// assert!(!sel.matches(&BTreeMap::new()));
    /// ```
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator {
                    SelectorOp::In => value.is_some_and(|v| req.values.contains(v)),
                    SelectorOp::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    SelectorOp::Exists => value.is_some(),
                    SelectorOp::DoesNotExist => value.is_none(),
                }
            })
    }

    /// Checks the rules the API server applies to selectors: `In` and
    /// `NotIn` need values, `Exists` and `DoesNotExist` take none, keys are
    /// not empty. Returns a sentence describing the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.match_labels.keys().any(String::is_empty) {
            return Err("matchLabels has an empty key".to_string());
        }
        for req in &self.match_expressions {
            if req.key.is_empty() {
                return Err("a matchExpressions term has an empty key".to_string());
            }
            let needs_values = matches!(req.operator, SelectorOp::In | SelectorOp::NotIn);
            if needs_values && req.values.is_empty() {
                return Err(format!(
                    "the {:?} term on key {:?} has no values",
                    req.operator, req.key
                ));
            }
            if !needs_values && !req.values.is_empty() {
                return Err(format!(
                    "the {:?} term on key {:?} must not have values",
                    req.operator, req.key
                ));
            }
        }
        Ok(())
    }
}

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

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, operator: SelectorOp, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn with_exprs(exprs: Vec<SelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: exprs,
        }
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web"), ("tier", "front")]),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back")])));
    }

    #[test]
    fn in_needs_the_label_with_a_listed_value() {
        let sel = with_exprs(vec![expr("env", SelectorOp::In, &["prod", "stage"])]);
        assert!(sel.matches(&labels(&[("env", "prod")])));
        assert!(!sel.matches(&labels(&[("env", "dev")])));
        assert!(!sel.matches(&labels(&[])));
    }

    #[test]
    fn not_in_matches_when_the_label_is_absent() {
        let sel = with_exprs(vec![expr("env", SelectorOp::NotIn, &["prod"])]);
        assert!(sel.matches(&labels(&[])));
        assert!(sel.matches(&labels(&[("env", "dev")])));
        assert!(!sel.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn exists_and_does_not_exist_look_at_the_key_only() {
        let exists = with_exprs(vec![expr("env", SelectorOp::Exists, &[])]);
        let absent = with_exprs(vec![expr("env", SelectorOp::DoesNotExist, &[])]);
        assert!(exists.matches(&labels(&[("env", "")])));
        assert!(!exists.matches(&labels(&[])));
        assert!(absent.matches(&labels(&[])));
        assert!(!absent.matches(&labels(&[("env", "x")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![expr("env", SelectorOp::Exists, &[])],
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "x")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("env", "x")])));
    }

    #[test]
    fn malformed_selectors_are_described() {
        let no_values = with_exprs(vec![expr("env", SelectorOp::In, &[])]);
        assert!(no_values.validate().unwrap_err().contains("\"env\""));
        let stray_values = with_exprs(vec![expr("env", SelectorOp::Exists, &["x"])]);
        assert!(stray_values.validate().is_err());
        let empty_key = with_exprs(vec![expr("", SelectorOp::Exists, &[])]);
        assert!(empty_key.validate().is_err());
        assert!(LabelSelector::default().validate().is_ok());
    }

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
