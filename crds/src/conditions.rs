//! Condition types and reasons ferrolb writes into `status.conditions`, and
//! the small pure helpers to maintain such a list.
//!
//! Conditions are standard `metav1.Condition`s. The controller owns them; the
//! constants here keep the spelling in one place so the controller, the docs
//! and tests agree.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// `status` of a condition that holds.
pub const STATUS_TRUE: &str = "True";
/// `status` of a condition that does not hold.
pub const STATUS_FALSE: &str = "False";
/// `status` of a condition the controller could not decide yet.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Condition type on both kinds: the object's spec was accepted by the
/// controller. When False, the reason says why and the message names the
/// offending address, selector or other pool.
pub const TYPE_VALID: &str = "Valid";

/// Condition type on an [`IPAddressPool`](crate::IPAddressPool): at least one
/// L2Advertisement selects the pool, so its IPs are announced. A pool with
/// no advertisement still hands out IPs, but nothing answers ARP/NDP for
/// them, which is the most common "it silently does not work" report.
pub const TYPE_ADVERTISED: &str = "Advertised";

/// Condition type on an [`L2Advertisement`](crate::L2Advertisement): the
/// advertisement selects at least one existing pool.
pub const TYPE_POOLS_SELECTED: &str = "PoolsSelected";

/// Reason for `Valid=True`: every entry parsed and nothing overlaps.
pub const REASON_VALID: &str = "Valid";
/// Reason for `Valid=False` on a pool: an entry of `spec.addresses` is not a
/// CIDR or range (the message names the entry).
pub const REASON_INVALID_ADDRESS: &str = "InvalidAddress";
/// Reason for `Valid=False` on a pool: a range's first address is greater than
/// its last (the message names the entry).
pub const REASON_INVALID_RANGE: &str = "InvalidRange";
/// Reason for `Valid=False` on a pool: its addresses overlap those of another
/// pool (the message names the other pool and the shared addresses).
pub const REASON_OVERLAPPING_POOL: &str = "OverlappingPool";
/// Reason for `Valid=False` on either kind: a label selector cannot be parsed
/// (unknown operator, `In` without values, ...).
pub const REASON_INVALID_SELECTOR: &str = "InvalidSelector";
/// Reason for `Advertised=True` on a pool.
pub const REASON_ADVERTISED: &str = "SelectedByL2Advertisement";
/// Reason for `Advertised=False` on a pool: no L2Advertisement selects it.
pub const REASON_NOT_ADVERTISED: &str = "NoL2Advertisement";
/// Reason for `PoolsSelected=True` on an advertisement.
pub const REASON_POOLS_SELECTED: &str = "PoolsSelected";
/// Reason for `PoolsSelected=False` on an advertisement: its names and
/// selectors match no pool.
pub const REASON_NO_POOL_SELECTED: &str = "NoPoolSelected";
/// Reason for `PoolsSelected=False` on an advertisement: `spec.ipAddressPools`
/// names a pool that does not exist (the message names it).
pub const REASON_UNKNOWN_POOL: &str = "UnknownPool";
/// Reason for `Valid=False` on an advertisement: a
/// `preferredNodeSelectors` weight is outside 1-100 (the CRD rejects it;
/// an object stored under an older CRD may still hold one).
pub const REASON_INVALID_WEIGHT: &str = "InvalidWeight";

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == STATUS_TRUE)
}

/// Adds or updates `new` in `conditions` the way apimachinery's
/// `meta.SetStatusCondition` does, and says whether anything changed.
///
/// `lastTransitionTime` only moves when the status flips: an unchanged
/// status keeps the old time even if reason or message change, so clients
/// can tell how long a pool has been invalid. Returning "changed" lets the
/// caller skip a status patch that would be a no-op.
///
/// ```
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
/// use ferrolb_crds::conditions::{self, set, TYPE_VALID, REASON_VALID, STATUS_TRUE};
///
/// let valid = Condition {
///     type_: TYPE_VALID.into(),
///     status: STATUS_TRUE.into(),
///     reason: REASON_VALID.into(),
///     message: "all 2 address entries are valid".into(),
///     observed_generation: Some(1),
///     last_transition_time: Time(Default::default()),
/// };
/// let mut list = Vec::new();
/// assert!(set(&mut list, valid.clone()));
/// assert!(!set(&mut list, valid));
/// assert!(conditions::is_true(&list, TYPE_VALID));
/// ```
pub fn set(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        conditions.push(new);
        return true;
    };
    if existing.status != new.status {
        *existing = new;
        return true;
    }
    let mut changed = false;
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    if existing.observed_generation != new.observed_generation {
        existing.observed_generation = new.observed_generation;
        changed = true;
    }
    changed
}

/// Removes the condition of type `type_`; says whether one was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn condition(status: &str, reason: &str, message: &str, at_second: i64) -> Condition {
        Condition {
            type_: TYPE_VALID.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(at_second).expect("in range")),
        }
    }

    #[test]
    fn a_new_condition_type_is_appended() {
        let mut list = vec![];
        assert!(set(
            &mut list,
            condition(STATUS_TRUE, REASON_VALID, "ok", 10)
        ));
        assert_eq!(list.len(), 1);
        assert!(is_true(&list, TYPE_VALID));
        assert!(!is_true(&list, TYPE_ADVERTISED));
    }

    #[test]
    fn same_status_with_a_new_message_keeps_the_transition_time() {
        let mut list = vec![condition(
            STATUS_FALSE,
            REASON_INVALID_ADDRESS,
            "bad 'x'",
            10,
        )];
        let changed = set(
            &mut list,
            condition(STATUS_FALSE, REASON_OVERLAPPING_POOL, "overlaps pool b", 20),
        );
        assert!(changed);
        let valid = find(&list, TYPE_VALID).expect("present");
        assert_eq!(valid.reason, REASON_OVERLAPPING_POOL);
        assert_eq!(valid.message, "overlaps pool b");
        assert_eq!(valid.last_transition_time.0.as_second(), 10);
    }

    #[test]
    fn a_status_flip_moves_the_transition_time() {
        let mut list = vec![condition(STATUS_FALSE, REASON_INVALID_ADDRESS, "bad", 10)];
        assert!(set(
            &mut list,
            condition(STATUS_TRUE, REASON_VALID, "ok", 20)
        ));
        let valid = find(&list, TYPE_VALID).expect("present");
        assert_eq!(valid.status, STATUS_TRUE);
        assert_eq!(valid.last_transition_time.0.as_second(), 20);
    }

    #[test]
    fn setting_an_identical_condition_reports_no_change() {
        let mut list = vec![condition(STATUS_TRUE, REASON_VALID, "ok", 10)];
        assert!(!set(
            &mut list,
            condition(STATUS_TRUE, REASON_VALID, "ok", 99)
        ));
        assert_eq!(list[0].last_transition_time.0.as_second(), 10);
    }

    #[test]
    fn remove_drops_only_the_named_type() {
        let mut list = vec![condition(STATUS_TRUE, REASON_VALID, "ok", 10)];
        assert!(!remove(&mut list, TYPE_ADVERTISED));
        assert!(remove(&mut list, TYPE_VALID));
        assert!(list.is_empty());
    }
}
