//! Label selectors at the edge: the pure evaluation lives in
//! [`ferrolb_core::selector`] (re-exported here); this module only turns
//! the API's `metav1.LabelSelector` into it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;

pub use ferrolb_core::selector::*;

/// Converts without judging: unknown operators are kept as
/// [`SelectorOp::Unknown`] (see [`ferrolb_core::selector`]), absent lists
/// are empty.
///
/// ```
/// use ferrolb_crds::selector::{self, LabelSelector};
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
/// use std::collections::BTreeMap;
///
/// let sel = selector::from_k8s(&meta::LabelSelector {
///     match_labels: Some(BTreeMap::from([("tier".into(), "web".into())])),
///     match_expressions: Some(vec![meta::LabelSelectorRequirement {
///         key: "zone".into(),
///         operator: "NotIn".into(),
///         values: Some(vec!["b".into()]),
///     }]),
/// });
/// assert!(sel.validate().is_ok());
/// let web_in_a = BTreeMap::from([("tier".into(), "web".into()), ("zone".into(), "a".into())]);
/// assert!(sel.matches(&web_in_a));
/// assert!(!sel.matches(&BTreeMap::new()));
/// ```
pub fn from_k8s(selector: &K8sLabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .iter()
            .flatten()
            .map(|term| SelectorRequirement {
                key: term.key.clone(),
                operator: SelectorOp::from(term.operator.as_str()),
                values: term.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn zone(op: &str, values: Option<Vec<String>>) -> LabelSelector {
        from_k8s(&K8sLabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: op.into(),
                values,
            }]),
        })
    }

    #[test]
    fn an_empty_api_selector_matches_everything() {
        let sel = from_k8s(&K8sLabelSelector::default());
        assert_eq!(sel, LabelSelector::default());
        assert!(sel.matches(&BTreeMap::new()));
    }

    #[test]
    fn every_field_of_the_api_selector_is_carried_over() {
        let sel = from_k8s(&K8sLabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        });
        assert_eq!(
            sel.match_labels,
            BTreeMap::from([("app".into(), "web".into())])
        );
        assert_eq!(
            sel.match_expressions,
            vec![SelectorRequirement {
                key: "zone".into(),
                operator: SelectorOp::In,
                values: vec!["a".into(), "b".into()],
            }]
        );
    }

    #[test]
    fn operators_keep_their_meaning_and_unknown_ones_stay_unknown() {
        let a = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        assert!(zone("In", Some(vec!["a".into()])).matches(&a));
        assert!(!zone("NotIn", Some(vec!["a".into()])).matches(&a));
        assert!(zone("Exists", None).matches(&a));
        assert!(!zone("DoesNotExist", None).matches(&a));
        let typo = zone("Near", None);
        assert!(!typo.matches(&a));
        assert!(typo.validate().is_err());
        assert!(zone("In", None).match_expressions[0].values.is_empty());
    }
}
