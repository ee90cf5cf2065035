//! What the API server may have let through in an L2Advertisement's spec,
//! and the controller reports in its `Valid` condition: selectors it cannot
//! evaluate (CRDs get none of the checks built-in kinds' selectors get;
//! the new fields carry CEL rules, older objects and older fields may
//! not), and preference weights outside 1-100 (stored under an older CRD).
//! MetalLB's webhook refuses such objects; the speakers read an invalid
//! selector as matching nothing and drop such a weight.

use ferrolb_crds::conditions::{REASON_INVALID_SELECTOR, REASON_INVALID_WEIGHT};
use ferrolb_crds::L2AdvertisementSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;

use super::label_selector;

/// The first problem of `spec` beyond its `ipAddressPoolSelectors` (which
/// the pool selection reports itself): (reason, message naming the field).
pub(super) fn problem(spec: &L2AdvertisementSpec) -> Option<(&'static str, String)> {
    let lists: [(&str, &[K8sSelector]); 2] = [
        ("nodeSelectors", &spec.node_selectors),
        ("serviceSelectors", &spec.service_selectors),
    ];
    for (field, list) in lists {
        for (i, selector) in list.iter().enumerate() {
            if let Err(err) = label_selector(selector) {
                return Some((REASON_INVALID_SELECTOR, format!("{field}[{i}]: {err}")));
            }
        }
    }
    for (i, p) in spec.preferred_node_selectors.iter().enumerate() {
        if !(1..=100).contains(&p.weight) {
            return Some((
                REASON_INVALID_WEIGHT,
                format!(
                    "preferredNodeSelectors[{i}].weight: {} is not between 1 and 100",
                    p.weight
                ),
            ));
        }
        if let Err(err) = label_selector(&p.preference) {
            return Some((
                REASON_INVALID_SELECTOR,
                format!("preferredNodeSelectors[{i}].preference: {err}"),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::PreferredNodeSelector;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn term(operator: &str, values: Option<Vec<String>>) -> K8sSelector {
        K8sSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: operator.into(),
                values,
            }]),
        }
    }

    fn zone(weight: i32) -> PreferredNodeSelector {
        PreferredNodeSelector {
            weight,
            preference: K8sSelector {
                match_labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                match_expressions: None,
            },
        }
    }

    #[test]
    fn valid_new_fields_are_no_problem() {
        let spec = L2AdvertisementSpec {
            service_selectors: vec![term("In", Some(vec!["web".into()]))],
            preferred_node_selectors: vec![zone(1), zone(100)],
            ..Default::default()
        };
        assert_eq!(problem(&spec), None);
    }

    #[test]
    fn a_service_selector_it_cannot_evaluate_is_named() {
        let spec = L2AdvertisementSpec {
            service_selectors: vec![Default::default(), term("Near", None)],
            ..Default::default()
        };
        assert_eq!(
            problem(&spec),
            Some((
                REASON_INVALID_SELECTOR,
                "serviceSelectors[1]: operator \"Near\" on key \"app\" is not In, NotIn, Exists or DoesNotExist".into()
            ))
        );
    }

    #[test]
    fn a_node_selector_without_values_is_named() {
        let spec = L2AdvertisementSpec {
            node_selectors: vec![term("In", None)],
            ..Default::default()
        };
        let (reason, message) = problem(&spec).expect("a problem");
        assert_eq!(reason, REASON_INVALID_SELECTOR);
        assert!(message.starts_with("nodeSelectors[0]: "), "{message}");
    }

    #[test]
    fn weights_outside_one_to_one_hundred_and_bad_preferences_are_named() {
        for weight in [0, -1, 101] {
            let spec = L2AdvertisementSpec {
                preferred_node_selectors: vec![zone(50), zone(weight)],
                ..Default::default()
            };
            assert_eq!(
                problem(&spec),
                Some((
                    REASON_INVALID_WEIGHT,
                    format!("preferredNodeSelectors[1].weight: {weight} is not between 1 and 100")
                ))
            );
        }
        let spec = L2AdvertisementSpec {
            preferred_node_selectors: vec![PreferredNodeSelector {
                weight: 5,
                preference: term("Exists", Some(vec!["x".into()])),
            }],
            ..Default::default()
        };
        let (reason, message) = problem(&spec).expect("a problem");
        assert_eq!(reason, REASON_INVALID_SELECTOR);
        assert!(
            message.starts_with("preferredNodeSelectors[0].preference: "),
            "{message}"
        );
    }
}
