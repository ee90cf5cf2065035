//! Validation pieces shared by the CRD schemas: OpenAPI patterns, length
//! limits and CEL rules, so the API server rejects obviously bad objects
//! before the controller ever sees them.
//!
//! Patterns are RE2 (the API server's regexp flavour): no look-around.
//! Limits are generous enough for any real MetalLB manifest, and exist
//! mostly so the API server's CEL cost estimate stays bounded.

use schemars::Schema;
use serde_json::{json, Value};

/// Longest accepted `spec.addresses` entry. The longest sensible entry is a
/// range of two fully written IPv6 addresses with spaces around the dash
/// (2 * 39 + 3 characters).
pub(crate) const ADDRESS_MAX_LENGTH: u32 = 100;
/// Most entries a pool's `spec.addresses` may list.
pub(crate) const ADDRESSES_MAX_ITEMS: u32 = 1024;

const IPV4: &str = r"[0-9]{1,3}(\.[0-9]{1,3}){3}";
// Loose on purpose: "hex digits, dots and at least one colon". The CEL rule
// does the exact parse; the pattern only keeps garbage out of CEL.
const IPV6: &str = r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*";

/// Shape of a `spec.addresses` entry: `IP/prefix` or `IP-IP` (spaces around
/// the dash allowed, as MetalLB trims them).
pub(crate) fn address_pattern() -> String {
    let ip = format!("({IPV4}|{IPV6})");
    format!(r"^({ip}/[0-9]{{1,3}}|{ip} *- *{ip})$")
}

/// CEL rule for one `spec.addresses` entry (`self` is the string): a valid
/// CIDR, or two IPs of one family around a dash. Needs the Kubernetes IP and
/// CIDR CEL libraries (Kubernetes 1.31 and later).
pub(crate) const ADDRESS_RULE: &str = "self.contains('-') \
? (size(self.split('-')) == 2 \
&& isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()) \
&& ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()) \
: isCIDR(self)";

/// Failure message for [`ADDRESS_RULE`], naming the offending entry.
pub(crate) const ADDRESS_RULE_MESSAGE: &str = "'address ' + self + ' is neither a CIDR \
(such as 198.51.100.0/24 or 2001:db8::/120) nor a range of two IPs of the same family \
(such as 198.51.100.10-198.51.100.20)'";

/// DNS-1123 subdomain: the name of any namespaced object, e.g. a pool.
pub(crate) const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// DNS-1123 label: a namespace name.
pub(crate) const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Linux interface name rules (`dev_valid_name`): no `/`, `:` or whitespace,
/// and not `.` or `..` (hence at least one character that is not a dot).
pub(crate) const INTERFACE_PATTERN: &str = r"^[^/:\s]*[^/:\s.][^/:\s]*$";
/// IFNAMSIZ minus the terminating NUL.
pub(crate) const INTERFACE_MAX_LENGTH: u32 = 15;

/// schemars transform for `spec.addresses`: puts the CEL rule on each item,
/// so a rejection points at `spec.addresses[i]` and quotes the entry rather
/// than blaming the whole list.
pub(crate) fn address_items_cel(schema: &mut Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert(
            "x-kubernetes-validations".into(),
            json!([{ "rule": ADDRESS_RULE, "messageExpression": ADDRESS_RULE_MESSAGE }]),
        );
    }
}

/// CEL rule for one IP of a list (`self` is the string).
pub(crate) const IP_RULE: &str = "isIP(self)";
/// Failure message for [`IP_RULE`], naming the entry.
pub(crate) const IP_RULE_MESSAGE: &str = "self + ' is not an IP address'";

/// schemars transform for a list of IPs: [`IP_RULE`] on each item.
pub(crate) fn ip_items_cel(schema: &mut Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert(
            "x-kubernetes-validations".into(),
            json!([{ "rule": IP_RULE, "messageExpression": IP_RULE_MESSAGE }]),
        );
    }
}

/// Longest label key: a DNS subdomain prefix (253), `/`, a name (63).
pub(crate) const LABEL_KEY_MAX_LENGTH: u32 = 317;
/// Longest operator worth reading (`DoesNotExist` has 12 characters).
const OPERATOR_MAX_LENGTH: u32 = 32;
/// Most `matchExpressions` terms a selector may have.
const MATCH_EXPRESSIONS_MAX_ITEMS: u32 = 64;

/// CEL rule for one `matchExpressions` term (`self`): a known operator,
/// with values for `In` and `NotIn` and none for `Exists` and
/// `DoesNotExist`. The API server applies these rules to selectors of
/// built-in kinds but not to CRDs; MetalLB's webhook applies them to its
/// selectors (`metav1.LabelSelectorAsSelector`).
pub(crate) const SELECTOR_TERM_RULE: &str = "self.operator in ['In', 'NotIn'] \
? has(self.values) && size(self.values) > 0 \
: self.operator in ['Exists', 'DoesNotExist'] && (!has(self.values) || size(self.values) == 0)";

/// Failure message for [`SELECTOR_TERM_RULE`], naming the term.
pub(crate) const SELECTOR_TERM_RULE_MESSAGE: &str =
    "'the ' + self.operator + ' term on key ' + self.key + \
' is invalid: the operator must be In or NotIn with values, or Exists or DoesNotExist without'";

/// schemars transform for one `metav1.LabelSelector`: bounds its
/// `matchExpressions` (so the CEL cost estimate stays small) and puts
/// [`SELECTOR_TERM_RULE`] on each term, so the API server rejects a
/// selector the controller could only report as invalid.
pub(crate) fn selector_cel(schema: &mut Schema) {
    if let Some(props) = schema.get_mut("properties") {
        selector_properties_cel(props);
    }
}

/// [`selector_cel`] for each selector of a list.
pub(crate) fn selector_list_cel(schema: &mut Schema) {
    if let Some(props) = schema
        .get_mut("items")
        .and_then(|i| i.get_mut("properties"))
    {
        selector_properties_cel(props);
    }
}

/// [`selector_cel`] on the `properties` of a selector's schema.
fn selector_properties_cel(props: &mut Value) {
    let Some(exprs) = props
        .get_mut("matchExpressions")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    exprs.insert("maxItems".into(), json!(MATCH_EXPRESSIONS_MAX_ITEMS));
    let Some(term) = exprs.get_mut("items").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(fields) = term.get_mut("properties") {
        if let Some(key) = fields.get_mut("key").and_then(Value::as_object_mut) {
            key.insert("minLength".into(), json!(1));
            key.insert("maxLength".into(), json!(LABEL_KEY_MAX_LENGTH));
        }
        if let Some(op) = fields.get_mut("operator").and_then(Value::as_object_mut) {
            op.insert("maxLength".into(), json!(OPERATOR_MAX_LENGTH));
        }
    }
    term.insert(
        "x-kubernetes-validations".into(),
        json!([{ "rule": SELECTOR_TERM_RULE, "messageExpression": SELECTOR_TERM_RULE_MESSAGE }]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_entries_fit_the_length_limit() {
        let longest =
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        assert!(longest.len() <= ADDRESS_MAX_LENGTH as usize);
    }

    #[test]
    fn cel_rule_and_message_are_single_lines() {
        // The API server refuses rules with line breaks unless a message is set,
        // and refuses messages with line breaks outright.
        for text in [
            ADDRESS_RULE,
            ADDRESS_RULE_MESSAGE,
            SELECTOR_TERM_RULE,
            SELECTOR_TERM_RULE_MESSAGE,
            IP_RULE,
            IP_RULE_MESSAGE,
        ] {
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
