//! API errors and their wire form: `meta/v1 Status` objects with the reason
//! and code the real API server uses, so clients take the same branches.

use serde_json::{json, Value};

/// Result alias for API operations.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One field-level cause inside an `Invalid` status (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: &'static str,
    /// Field path, e.g. `spec.addresses[0]`.
    pub field: String,
    /// Human message without the field prefix, e.g. `Required value`.
    pub message: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }

    /// `field: Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    /// `field: Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!(
                "Invalid value: {}: {}",
                render_value(value),
                detail.as_ref()
            ),
        )
    }

    /// `field: Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        Cause::new(
            "FieldValueForbidden",
            field,
            format!("Forbidden: {}", detail.as_ref()),
        )
    }
}

/// Renders a value the way apimachinery's field errors print it.
pub(crate) fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

/// An error answered to the client as a `Status` object.
///
/// `resource` is the qualified resource as the real server prints it:
/// `services` for core types, `leases.coordination.k8s.io` otherwise.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound for a named object.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 404 NotFound for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 AlreadyExists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict: a stale resourceVersion or failed precondition.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict {
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
        /// Why.
        detail: String,
    },
    /// 422 Invalid with field causes.
    #[error("{}", invalid_message(.kind, .group, .name, .causes))]
    Invalid {
        /// Kind, e.g. `IPAddressPool`.
        kind: String,
        /// API group, empty for core.
        group: String,
        /// Object name.
        name: String,
        /// Field causes.
        causes: Vec<Cause>,
    },
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 403 Forbidden (e.g. creating in a terminating namespace).
    #[error("{message}")]
    Forbidden {
        /// Message.
        message: String,
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 NotAcceptable.
    #[error("only the following media types are accepted: application/json, application/yaml")]
    NotAcceptable,
    /// 410 Expired: the resourceVersion or continue token is compacted.
    #[error("{0}")]
    Expired(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 with a plain message (e.g. a JSON patch that does not apply).
    #[error("{0}")]
    Unprocessable(String),
    /// 429 TooManyRequests (fault injection).
    #[error("{0}")]
    TooManyRequests(String),
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 503 ServiceUnavailable (fault injection).
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 504 Timeout (e.g. a resourceVersion from the future).
    #[error("{0}")]
    Timeout(String),
}

fn invalid_message(kind: &str, group: &str, name: &str, causes: &[Cause]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    let joined = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    format!("{qualified} \"{name}\" is invalid: {joined}")
}

/// Splits `leases.coordination.k8s.io` into (`coordination.k8s.io`, `leases`).
fn split_qualified(resource: &str) -> (&str, &str) {
    match resource.split_once('.') {
        Some((res, group)) => (group, res),
        None => ("", resource),
    }
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden { .. } => 403,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable => 406,
            ApiError::Expired(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::TooManyRequests(_) => 429,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout(_) => 504,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable => "NotAcceptable",
            ApiError::Expired(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::TooManyRequests(_) => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout(_) => "Timeout",
        }
    }

    /// The full `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. }
            | ApiError::Forbidden { resource, name, .. } => {
                let (group, res) = split_qualified(resource);
                let mut d = json!({ "name": name, "kind": res });
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                let mut d = json!({ "name": name, "kind": kind, "causes": causes });
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            ApiError::TooManyRequests(_)
            | ApiError::ServiceUnavailable(_)
            | ApiError::Timeout(_) => Some(json!({ "retryAfterSeconds": 1 })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_invalid_cause_is_printed_without_brackets() {
        let err = ApiError::Invalid {
            kind: "IPAddressPool".into(),
            group: "ferrolb.io".into(),
            name: "x".into(),
            causes: vec![Cause::invalid("spec.addresses[0]", &json!("nope"), "bad")],
        };
        assert_eq!(
            err.to_string(),
            "IPAddressPool.ferrolb.io \"x\" is invalid: spec.addresses[0]: Invalid value: \"nope\": bad"
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "spec.addresses[0]");
    }

    #[test]
    fn not_found_details_split_the_group_from_the_resource() {
        let err = ApiError::NotFound {
            resource: "leases.coordination.k8s.io".into(),
            name: "l".into(),
        };
        let status = err.to_status();
        assert_eq!(status["details"]["kind"], "leases");
        assert_eq!(status["details"]["group"], "coordination.k8s.io");
        assert_eq!(
            status["message"],
            "leases.coordination.k8s.io \"l\" not found"
        );
    }
}
