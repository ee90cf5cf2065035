//! The speakers' gossip key: the memberlist Secret, created by the
//! controller when it is missing (as MetalLB's controller does), never
//! modified.
//!
//! This module is the pure part: what a Secret we read means
//! ([`assess`]), the Secret we create ([`new_secret`]), and when a problem
//! deserves an Event ([`Reported`]). [`keeper`] is the shell that talks to
//! the API server, on the leader only.
//!
//! The key is 32 random bytes, stored base64-encoded as the value's bytes
//! (so the mounted file is printable text, as `head -c 32 /dev/urandom |
//! base64` made it when operators created it by hand); the speaker uses
//! the file's bytes as they are.

pub mod keeper;

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

pub use ferrolb_crds::memberlist::{trim_secret, MIN_SECRET_LEN, SECRET_KEY};

/// Random bytes in a key the controller creates.
pub const KEY_BYTES: usize = 32;

/// The Event reason for a Secret the speakers cannot use.
pub const INVALID_REASON: &str = "InvalidMemberlistSecret";

/// Why an existing memberlist Secret is unusable. Each names the Secret
/// and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// `data.secretkey` is absent.
    #[error(
        "Secret {namespace}/{name} has no key \"secretkey\", so the speakers run without gossip \
         (failover takes tens of seconds); delete it (kubectl -n {namespace} delete secret {name}) \
         and the controller creates a new one with a random key"
    )]
    NoKey {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `data.secretkey` is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "Secret {namespace}/{name} key \"secretkey\" holds {len} bytes, the speakers need at least \
         {MIN_SECRET_LEN}, so they refuse it and run without gossip (failover takes tens of seconds); \
         delete it (kubectl -n {namespace} delete secret {name}) and the controller creates a new one \
         with a random key"
    )]
    TooShort {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key's length after trimming trailing newlines.
        len: usize,
    },
}

impl Problem {
    /// A short snake_case name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoKey { .. } => "no_key",
            Self::TooShort { .. } => "too_short",
        }
    }
}

/// Checks an existing Secret as the speaker will read it: the bytes of
/// `data.secretkey`, trailing `\n`/`\r` trimmed, at least
/// [`MIN_SECRET_LEN`] of them.
pub fn assess(secret: &Secret) -> Result<(), Problem> {
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(SECRET_KEY)) else {
        return Err(Problem::NoKey { namespace, name });
    };
    let len = trim_secret(&value.0).len();
    if len < MIN_SECRET_LEN {
        return Err(Problem::TooShort {
            namespace,
            name,
            len,
        });
    }
    Ok(())
}

/// The Secret to create: [`KEY_BYTES`] from `random`, base64-encoded, with
/// ferrolb's labels.
pub fn new_secret(namespace: &str, name: &str, random: [u8; KEY_BYTES]) -> Secret {
    let encoded = base64::engine::general_purpose::STANDARD.encode(random);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_owned(), "ferrolb".to_owned()),
                (
                    "app.kubernetes.io/component".to_owned(),
                    "memberlist".to_owned(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_owned(),
            ByteString(encoded.into_bytes()),
        )])),
        ..Default::default()
    }
}

/// Which problem was last reported, so each distinct problem of each
/// Secret (by UID: a recreated Secret is a new one) gets one Event, not
/// one per check.
#[derive(Debug, Default)]
pub struct Reported {
    last: Option<(String, Problem)>,
}

impl Reported {
    /// Whether `problem` of the Secret `uid` is new (and remembers it).
    pub fn is_new(&mut self, uid: &str, problem: &Problem) -> bool {
        let key = (uid.to_owned(), problem.clone());
        if self.last.as_ref() == Some(&key) {
            return false;
        }
        self.last = Some(key);
        true
    }

    /// The Secret is fine (or gone): a later problem is new again.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: Option<&[u8]>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("ferrolb-memberlist".into()),
                namespace: Some("ferrolb-system".into()),
                ..Default::default()
            },
            data: value.map(|v| BTreeMap::from([(SECRET_KEY.to_owned(), ByteString(v.to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn a_created_secret_holds_32_random_bytes_as_printable_base64() {
        let s = new_secret("ferrolb-system", "ferrolb-memberlist", [7; KEY_BYTES]);
        let value = &s.data.as_ref().unwrap()[SECRET_KEY].0;
        assert!(value.iter().all(|b| b.is_ascii_graphic()));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        assert_eq!(decoded, [7; KEY_BYTES]);
        assert_eq!(assess(&s), Ok(()));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "ferrolb");
        assert_eq!(labels["app.kubernetes.io/component"], "memberlist");
    }

    #[test]
    fn a_secret_without_the_key_is_a_problem_naming_it_and_the_fix() {
        let p = assess(&secret(None)).unwrap_err();
        assert_eq!(p.kind(), "no_key");
        let text = p.to_string();
        assert!(text.contains("ferrolb-system/ferrolb-memberlist"), "{text}");
        assert!(text.contains("delete secret ferrolb-memberlist"), "{text}");
    }

    #[test]
    fn the_length_is_counted_as_the_speaker_does_after_trimming_newlines() {
        assert_eq!(
            assess(&secret(Some(b"fifteen bytes..\n\r\n"))),
            Err(Problem::TooShort {
                namespace: "ferrolb-system".into(),
                name: "ferrolb-memberlist".into(),
                len: 15
            })
        );
        assert_eq!(assess(&secret(Some(b"sixteen bytes...\n"))), Ok(()));
        assert!(assess(&secret(Some(b""))).is_err());
    }

    #[test]
    fn each_distinct_problem_is_reported_once() {
        let short = |len| Problem::TooShort {
            namespace: "n".into(),
            name: "s".into(),
            len,
        };
        let mut r = Reported::default();
        assert!(r.is_new("uid-1", &short(3)));
        assert!(!r.is_new("uid-1", &short(3)));
        assert!(r.is_new("uid-1", &short(5)), "another problem");
        assert!(r.is_new("uid-2", &short(5)), "a recreated Secret");
        r.clear();
        assert!(r.is_new("uid-2", &short(5)), "broken again after a fix");
    }
}
