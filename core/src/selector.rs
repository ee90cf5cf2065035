//! Kubernetes label selectors, evaluated locally: the one implementation
//! the controller (`serviceAllocation`, `ipAddressPoolSelectors`) and the
//! speaker (`ipAddressPoolSelectors`, `nodeSelectors`) share, so both sides
//! always agree on which objects a selector picks.
//!
//! Pure: std only. The conversion from `metav1.LabelSelector` lives at
//! the edge, in `ferrolb_crds::selector::from_k8s`; it never fails: an operator
//! other than `In`, `NotIn`, `Exists` and `DoesNotExist` is kept as
//! [`SelectorOp::Unknown`]. Such a term matches no object, so a typo never
//! widens a selection, and [`LabelSelector::validate`] reports it. Callers
//! choose what an invalid selector means: the controller validates and
//! reports the error in a `Valid` condition, and an invalid selector
//! selects nothing there; the speaker evaluates without validating (the
//! controller already reports the problem), where an unknown operator
//! matches nothing.

use std::collections::BTreeMap;
use std::fmt;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// Where a selector reads labels from: [`Labels`], or a compact form such
/// as the speaker's per-Service labels
/// ([`crate::announce::model::ServiceLabels`]).
pub trait LabelSource {
    /// The value of label `key`, if present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelSource for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<T: LabelSource + ?Sized> LabelSource for &T {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// The operator of one `matchExpressions` term.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SelectorOp {
    /// The label is present and its value is one of the values.
    In,
    /// The label is absent, or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// Any other operator, as written. Matches nothing and fails
    /// [`LabelSelector::validate`].
    Unknown(String),
}

impl SelectorOp {
    /// The operator as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
            Self::Unknown(op) => op,
        }
    }
}

impl From<&str> for SelectorOp {
    /// Reads an operator; anything unrecognised (case matters, as in the
    /// API) becomes [`SelectorOp::Unknown`].
    fn from(op: &str) -> Self {
        match op {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            other => Self::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for SelectorOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

impl SelectorRequirement {
    /// Whether `labels` satisfy this term. Values are not checked against
    /// the operator here (that is [`LabelSelector::validate`]'s job): `In`
    /// without values matches nothing, `Exists` ignores stray values.
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match &self.operator {
            SelectorOp::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOp::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            SelectorOp::Exists => value.is_some(),
            SelectorOp::DoesNotExist => value.is_none(),
            SelectorOp::Unknown(_) => false,
        }
    }
}

/// Why a label selector cannot be used. The messages end up in `Valid`
/// conditions, so they name the key and the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `matchExpressions[].operator` is not one of the four the API knows.
    #[error("operator {operator:?} on key {key:?} is not In, NotIn, Exists or DoesNotExist")]
    UnknownOperator {
        /// The label key of the term.
        key: String,
        /// The operator as written.
        operator: String,
    },
    /// A `matchLabels` entry has an empty key.
    #[error("matchLabels has an empty key")]
    EmptyLabelKey,
    /// A `matchExpressions` term has an empty key.
    #[error("a matchExpressions term has an empty key")]
    EmptyExpressionKey,
    /// An `In` or `NotIn` term without values.
    #[error("the {operator} term on key {key:?} has no values")]
    MissingValues {
        /// The label key of the term.
        key: String,
        /// `In` or `NotIn`.
        operator: SelectorOp,
    },
    /// An `Exists` or `DoesNotExist` term with values.
    #[error("the {operator} term on key {key:?} must not have values")]
    UnexpectedValues {
        /// The label key of the term.
        key: String,
        /// `Exists` or `DoesNotExist`.
        operator: SelectorOp,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes label selector: every term of `match_labels` and
/// `match_expressions` must hold (they are ANDed); an empty selector
/// matches every object.
///
/// ```
/// use ferrolb_core::selector::{LabelSelector, SelectorOp, SelectorRequirement};
/// use std::collections::BTreeMap;
///
/// let sel = LabelSelector {
///     match_labels: BTreeMap::from([("tier".into(), "web".into())]),
///     match_expressions: vec![SelectorRequirement {
///         key: "zone".into(),
///         operator: SelectorOp::from("NotIn"),
///         values: vec!["b".into()],
///     }],
/// };
/// assert!(sel.validate().is_ok());
/// let web_in_a = BTreeMap::from([("tier".into(), "web".into()), ("zone".into(), "a".into())]);
/// assert!(sel.matches(&web_in_a));
/// assert!(!sel.matches(&BTreeMap::new()));
/// assert!(LabelSelector::default().matches(&BTreeMap::new()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSelector {
    /// Exact key/value pairs.
    pub match_labels: Labels,
    /// Set-based terms.
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// This selector when [`LabelSelector::validate`] accepts it, otherwise
    /// one that matches nothing: how both the controller and the speaker
    /// read an invalid selector (the controller also reports it in the
    /// object's `Valid` condition), so a malformed term never widens a
    /// selection.
    ///
    /// ```
    /// use ferrolb_core::selector::{LabelSelector, SelectorOp, SelectorRequirement};
    /// use std::collections::BTreeMap;
    ///
    /// let not_in_nothing = LabelSelector {
    ///     match_expressions: vec![SelectorRequirement {
    ///         key: "zone".into(),
    ///         operator: SelectorOp::NotIn,
    ///         values: vec![],
    ///     }],
    ///     ..Default::default()
    /// };
    /// assert!(not_in_nothing.matches(&BTreeMap::new()), "evaluated as written");
    /// assert!(!not_in_nothing.valid_or_nothing().matches(&BTreeMap::new()));
    /// ```
    pub fn valid_or_nothing(self) -> Self {
        if self.validate().is_ok() {
            return self;
        }
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![SelectorRequirement {
                key: String::new(),
                operator: SelectorOp::Unknown("(invalid selector)".into()),
                values: Vec::new(),
            }],
        }
    }

    /// Whether `labels` satisfy every term. A term with an unknown
    /// operator matches nothing, so neither does its selector.
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|req| req.matches(labels))
    }

    /// Checks the rules the API server applies to selectors of built-in
    /// kinds (CRDs get no such check): operators are known, keys are not
    /// empty, `In` and `NotIn` need values, `Exists` and `DoesNotExist`
    /// take none. Returns the first problem; an unknown operator is
    /// reported before anything else, since nothing else about its term
    /// can be judged.
    pub fn validate(&self) -> Result<()> {
        if let Some(req) = self
            .match_expressions
            .iter()
            .find(|r| matches!(r.operator, SelectorOp::Unknown(_)))
        {
            return Err(Error::UnknownOperator {
                key: req.key.clone(),
                operator: req.operator.as_str().to_string(),
            });
        }
        if self.match_labels.keys().any(String::is_empty) {
            return Err(Error::EmptyLabelKey);
        }
        for req in &self.match_expressions {
            if req.key.is_empty() {
                return Err(Error::EmptyExpressionKey);
            }
            let needs_values = matches!(req.operator, SelectorOp::In | SelectorOp::NotIn);
            if needs_values && req.values.is_empty() {
                return Err(Error::MissingValues {
                    key: req.key.clone(),
                    operator: req.operator.clone(),
                });
            }
            if !needs_values && !req.values.is_empty() {
                return Err(Error::UnexpectedValues {
                    key: req.key.clone(),
                    operator: req.operator.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Labels from `(key, value)` pairs; the allocator's tests use it too.
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
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
            match_labels: Labels::new(),
            match_expressions: exprs,
        }
    }

    /// A one-term selector on `zone`, its operator spelled as the API
    /// hands it over (`ferrolb_crds::selector::from_k8s` reads operators
    /// with `SelectorOp::from`).
    fn k8s_expr(op: &str, values: &[&str]) -> LabelSelector {
        with_exprs(vec![expr("zone", SelectorOp::from(op), values)])
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
    fn converted_selectors_follow_kubernetes_semantics() {
        let a = labels(&[("zone", "a")]);
        let none = labels(&[]);
        assert!(k8s_expr("In", &["a", "b"]).matches(&a));
        assert!(!k8s_expr("In", &["b"]).matches(&a));
        assert!(!k8s_expr("NotIn", &["a"]).matches(&a));
        assert!(k8s_expr("NotIn", &["a"]).matches(&none));
        assert!(k8s_expr("Exists", &[]).matches(&a));
        assert!(!k8s_expr("Exists", &[]).matches(&none));
        assert!(k8s_expr("DoesNotExist", &[]).matches(&none));
        assert!(!k8s_expr("DoesNotExist", &[]).matches(&a));
    }

    #[test]
    fn an_unknown_operator_matches_nothing_and_is_reported() {
        let typo = k8s_expr("Near", &[]);
        assert_eq!(
            typo.match_expressions[0].operator,
            SelectorOp::Unknown("Near".into())
        );
        assert!(!typo.matches(&labels(&[("zone", "a")])));
        assert!(!typo.matches(&labels(&[])));
        // Case matters, as in the API.
        assert!(!k8s_expr("in", &["a"]).matches(&labels(&[("zone", "a")])));
        let err = typo.validate().unwrap_err();
        assert_eq!(
            err,
            Error::UnknownOperator {
                key: "zone".into(),
                operator: "Near".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "operator \"Near\" on key \"zone\" is not In, NotIn, Exists or DoesNotExist"
        );
    }

    #[test]
    fn an_unknown_operator_is_reported_before_other_problems() {
        let sel = LabelSelector {
            match_labels: labels(&[("", "x")]),
            match_expressions: vec![
                expr("env", SelectorOp::In, &[]),
                expr("tier", SelectorOp::Unknown("Near".into()), &[]),
            ],
        };
        assert!(matches!(
            sel.validate(),
            Err(Error::UnknownOperator { key, .. }) if key == "tier"
        ));
    }

    #[test]
    fn malformed_selectors_are_described() {
        let no_values = with_exprs(vec![expr("env", SelectorOp::In, &[])]);
        assert_eq!(
            no_values.validate().unwrap_err().to_string(),
            "the In term on key \"env\" has no values"
        );
        let stray_values = with_exprs(vec![expr("env", SelectorOp::Exists, &["x"])]);
        assert_eq!(
            stray_values.validate().unwrap_err().to_string(),
            "the Exists term on key \"env\" must not have values"
        );
        let empty_key = with_exprs(vec![expr("", SelectorOp::Exists, &[])]);
        assert_eq!(empty_key.validate().unwrap_err(), Error::EmptyExpressionKey);
        let empty_label_key = LabelSelector {
            match_labels: labels(&[("", "x")]),
            match_expressions: vec![],
        };
        assert_eq!(
            empty_label_key.validate().unwrap_err(),
            Error::EmptyLabelKey
        );
        assert!(LabelSelector::default().validate().is_ok());
    }

    #[test]
    fn malformed_but_known_terms_still_evaluate() {
        // The speaker evaluates without validating; these are the answers
        // it gets for selectors the controller marks invalid.
        let in_without_values = with_exprs(vec![expr("env", SelectorOp::In, &[])]);
        assert!(!in_without_values.matches(&labels(&[("env", "x")])));
        let exists_with_values = with_exprs(vec![expr("env", SelectorOp::Exists, &["y"])]);
        assert!(exists_with_values.matches(&labels(&[("env", "x")])));
    }

    #[test]
    fn operators_read_and_print_as_the_api_spells_them() {
        for op in ["In", "NotIn", "Exists", "DoesNotExist", "Near"] {
            assert_eq!(SelectorOp::from(op).to_string(), op);
        }
        assert_eq!(SelectorOp::from("Exists"), SelectorOp::Exists);
    }

    fn any_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-c]", "[x-z]", 0..4)
    }

    fn any_values() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec("[x-z]", 1..3)
    }

    proptest! {
        #[test]
        fn not_in_is_the_negation_of_in(key in "[a-c]", values in any_values(), l in any_labels()) {
            let is_in = with_exprs(vec![SelectorRequirement { key: key.clone(), operator: SelectorOp::In, values: values.clone() }]);
            let not_in = with_exprs(vec![SelectorRequirement { key, operator: SelectorOp::NotIn, values }]);
            prop_assert_ne!(is_in.matches(&l), not_in.matches(&l));
        }

        #[test]
        fn does_not_exist_is_the_negation_of_exists(key in "[a-c]", l in any_labels()) {
            let exists = with_exprs(vec![expr(&key, SelectorOp::Exists, &[])]);
            let absent = with_exprs(vec![expr(&key, SelectorOp::DoesNotExist, &[])]);
            prop_assert_ne!(exists.matches(&l), absent.matches(&l));
        }

        #[test]
        fn match_labels_taken_from_an_object_match_it(l in any_labels(), keep in any::<u8>()) {
            let subset: Labels = l
                .iter()
                .enumerate()
                .filter(|(i, _)| keep & (1 << (i % 8)) != 0)
                .map(|(_, (k, v))| (k.clone(), v.clone()))
                .collect();
            let sel = LabelSelector { match_labels: subset, match_expressions: vec![] };
            prop_assert!(sel.matches(&l));
        }

        #[test]
        fn adding_a_term_never_widens_a_selection(
            key in "[a-c]",
            op in prop_oneof![
                Just(SelectorOp::In),
                Just(SelectorOp::NotIn),
                Just(SelectorOp::Exists),
                Just(SelectorOp::DoesNotExist),
                Just(SelectorOp::Unknown("Near".into())),
            ],
            values in any_values(),
            base in any_labels(),
            l in any_labels(),
        ) {
            let narrow_op_is_unknown = matches!(op, SelectorOp::Unknown(_));
            let wide = LabelSelector { match_labels: base, match_expressions: vec![] };
            let mut narrow = wide.clone();
            narrow.match_expressions.push(SelectorRequirement { key, operator: op, values });
            prop_assert!(!narrow.matches(&l) || wide.matches(&l));
            if narrow_op_is_unknown {
                prop_assert!(!narrow.matches(&l), "an unknown operator matches nothing");
            }
        }
    }
}
