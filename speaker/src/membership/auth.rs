//! The authenticated envelope around every gossip datagram.
//!
//! ```text
//! +-------------+---------------------+-------------------------------------+
//! | "FLB" 0x01  | foca payload        | HMAC-SHA256(secret, magic||payload) |
//! | 4 bytes     | variable            | 32 bytes                            |
//! +-------------+---------------------+-------------------------------------+
//! ```
//!
//! The magic carries a format version, so a later format can be told apart
//! instead of failing the MAC. The tag is checked in constant time
//! (`hmac`'s `verify_slice`) before foca sees a single byte, so foca's
//! decoder only ever parses data written by a holder of the secret.
//!
//! # Threat model
//! - A LAN host without the secret cannot forge a datagram: it cannot join,
//!   suspect or declare anyone down, or refute a real failure.
//! - It can replay datagrams it captured. Every SWIM state carries the
//!   member's identity (node name, address, boot id) and an incarnation
//!   number, and newer ones always win, so a replay can at most re-assert a
//!   state the cluster has already moved past; foca ignores it. A dead
//!   identity stays remembered as down for 24 h (foca's `remove_down_after`);
//!   only after that could a replayed "alive" resurrect it, and then only
//!   until the next failed probe (one detection time).
//! - It can drop or delay traffic (or flood the port). No MAC helps there: a
//!   speaker that cannot be heard is, for SWIM, a dead one. Flooding costs a
//!   MAC check per datagram and is counted, never fatal.
//! - The secret itself is the trust root: anyone holding it is a speaker.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

use super::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// First bytes of every gossip datagram: "FLB" and format version 1.
pub const MAGIC: [u8; 4] = *b"FLB\x01";
/// First bytes of every fast-liveness datagram (heartbeats and verdicts,
/// [`super::heartbeat`]): "FLB" and format 2. Both kinds share the port
/// and the keys; the magic is under the tag, so one kind can never be
/// passed off as the other.
pub const LIVENESS_MAGIC: [u8; 4] = *b"FLB\x02";
/// First bytes of every ownership-claims datagram ([`super::claims`]):
/// "FLB" and format 3, under the same keys and tag.
pub const CLAIMS_MAGIC: [u8; 4] = *b"FLB\x03";
/// Length of the HMAC-SHA256 tag at the end of every datagram.
pub const TAG_LEN: usize = 32;
/// Bytes the envelope adds to a payload.
pub const OVERHEAD: usize = MAGIC.len() + TAG_LEN;
pub use ferrolb_crds::memberlist::MIN_SECRET_LEN;

/// Why a datagram was dropped before reaching foca.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejected {
    /// Shorter than the envelope itself.
    #[error("datagram of {0} bytes is shorter than the authentication envelope")]
    TooShort(usize),
    /// Not our magic or an unknown format version.
    #[error("datagram does not start with the ferrolb memberlist magic")]
    BadMagic,
    /// The tag does not match: wrong secret or tampered data.
    #[error("datagram authentication tag does not match")]
    BadTag,
}

impl Rejected {
    /// A short snake_case name for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "too_short",
            Self::BadMagic => "bad_magic",
            Self::BadTag => "bad_tag",
        }
    }
}

/// The shared gossip secret, keyed once.
///
/// Its `Debug` never shows the key, only its length and [`Secret::key_id`].
#[derive(Clone)]
pub struct Secret {
    mac: HmacSha256,
    len: usize,
    /// SHA-256 of the key: tells two keys apart without keeping the bytes.
    digest: [u8; 32],
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret(<redacted {} bytes>, id {})",
            self.len,
            self.key_id()
        )
    }
}

/// Equal when both hold the same key bytes ([`Secret::same_key`]).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.same_key(other)
    }
}

impl Eq for Secret {}

pub use ferrolb_crds::memberlist::trim_secret;

impl Secret {
    /// A secret from raw bytes, refusing fewer than [`MIN_SECRET_LEN`].
    /// `origin` names where the bytes came from, for the error.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(Error::SecretTooShort {
                origin: origin.to_owned(),
                len: bytes.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(Self {
            mac: keyed(bytes),
            len: bytes.len(),
            digest: Sha256::digest(bytes).into(),
        })
    }

    /// Whether `other` holds the same key bytes.
    pub fn same_key(&self, other: &Secret) -> bool {
        self.digest == other.digest
    }

    /// The first 4 bytes of the key's SHA-256 in hex: lets an operator
    /// check that every node runs with the same key (it is in the logs)
    /// without showing the key. It reveals no more than the HMAC tags on
    /// the wire already do.
    pub fn key_id(&self) -> String {
        self.digest[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Reads the secret from a file (a Kubernetes Secret mounted as a volume).
    ///
    /// Trailing `\n` and `\r` are removed ([`trim_secret`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::SecretRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(trim_secret(&bytes), &path.display().to_string())
    }

    /// Wraps `payload` as `MAGIC || payload || tag` into `out` (cleared first).
    pub fn seal_into(&self, payload: &[u8], out: &mut Vec<u8>) {
        self.seal_as(MAGIC, payload, out);
    }

    /// Wraps `payload` as `magic || payload || tag` into `out` (cleared
    /// first): [`MAGIC`] for gossip, [`LIVENESS_MAGIC`] for heartbeats.
    pub fn seal_as(&self, magic: [u8; 4], payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(payload.len() + OVERHEAD);
        out.extend_from_slice(&magic);
        out.extend_from_slice(payload);
        let tag = compute_tag(&self.mac, out);
        out.extend_from_slice(&tag);
    }

    /// Wraps `payload` in a new buffer; see [`Secret::seal_into`].
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(payload, &mut out);
        out
    }

    /// Checks a received datagram and returns the payload inside it.
    ///
    /// The tag comparison is constant-time.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        self.open_as(MAGIC, datagram)
    }

    /// [`Secret::open`] for a datagram that must start with `magic`.
    pub fn open_as<'a>(&self, magic: [u8; 4], datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        if datagram.len() < OVERHEAD {
            return Err(Rejected::TooShort(datagram.len()));
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        if signed[..MAGIC.len()] != magic {
            return Err(Rejected::BadMagic);
        }
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| Rejected::BadTag)?;
        Ok(&signed[MAGIC.len()..])
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // cannot fail; the length policy lives in `Secret::from_bytes`.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn compute_tag(mac: &HmacSha256, data: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = mac.clone();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes(), "test").unwrap()
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_test_case_2() {
        let tag = compute_tag(&keyed(b"Jefe"), b"what do ya want for nothing?");
        let expected: [u8; 32] = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(tag, expected);
    }

    #[test]
    fn a_sealed_datagram_opens_to_its_payload() {
        let s = secret("0123456789abcdef");
        let sealed = s.seal(b"hello");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(&sealed[..4], b"FLB\x01");
        assert_eq!(s.open(&sealed), Ok(&b"hello"[..]));
    }

    #[test]
    fn an_empty_payload_round_trips() {
        let s = secret("0123456789abcdef");
        assert_eq!(s.open(&s.seal(b"")), Ok(&b""[..]));
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let s = secret("0123456789abcdef");
        let sealed = s.seal(b"member node-a is down");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(s.open(&bad).is_err(), "byte {i} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn a_datagram_sealed_with_another_secret_is_rejected() {
        let ours = secret("0123456789abcdef");
        let theirs = secret("0123456789abcdeX");
        assert_eq!(ours.open(&theirs.seal(b"hi")), Err(Rejected::BadTag));
    }

    #[test]
    fn short_and_foreign_datagrams_are_rejected() {
        let s = secret("0123456789abcdef");
        assert_eq!(s.open(b""), Err(Rejected::TooShort(0)));
        assert_eq!(s.open(&[0; OVERHEAD - 1]), Err(Rejected::TooShort(35)));
        assert_eq!(s.open(&[0; 100]), Err(Rejected::BadMagic));
        let mut v2 = s.seal(b"x");
        v2[3] = 2;
        assert_eq!(s.open(&v2), Err(Rejected::BadMagic));
    }

    #[test]
    fn truncating_or_extending_a_datagram_is_rejected() {
        let s = secret("0123456789abcdef");
        let sealed = s.seal(b"payload");
        assert!(s.open(&sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(s.open(&longer).is_err());
    }

    #[test]
    fn secrets_shorter_than_sixteen_bytes_are_refused() {
        let err = Secret::from_bytes(b"fifteen bytes..", "f").unwrap_err();
        assert!(matches!(
            err,
            Error::SecretTooShort {
                len: 15,
                min: 16,
                ..
            }
        ));
        assert!(Secret::from_bytes(b"", "f").is_err());
        assert!(Secret::from_bytes(b"sixteen bytes...", "f").is_ok());
    }

    #[test]
    fn a_trailing_newline_in_the_secret_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"0123456789abcdef\n").unwrap();
        std::fs::write(&b, b"0123456789abcdef").unwrap();
        let a = Secret::from_file(&a).unwrap();
        let b = Secret::from_file(&b).unwrap();
        assert_eq!(b.open(&a.seal(b"x")), Ok(&b"x"[..]));
    }

    #[test]
    fn a_file_holding_only_newlines_is_too_short() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, b"\n\n\r\n").unwrap();
        assert!(matches!(
            Secret::from_file(&p),
            Err(Error::SecretTooShort { len: 0, .. })
        ));
    }

    #[test]
    fn a_missing_secret_file_names_the_path() {
        let err = Secret::from_file(Path::new("/nonexistent/ferrolb-secret")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ferrolb-secret"));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let s = secret("super-secret-key-material");
        let shown = format!("{s:?}");
        assert!(!shown.contains("super"));
        assert!(shown.contains("25 bytes"));
    }

    #[test]
    fn two_secrets_are_the_same_key_iff_their_bytes_are_equal() {
        let a = secret("0123456789abcdef");
        assert!(a.same_key(&secret("0123456789abcdef")));
        assert!(!a.same_key(&secret("0123456789abcdeX")));
        assert_eq!(a.key_id(), secret("0123456789abcdef").key_id());
        assert_eq!(a.key_id().len(), 8);
        assert_ne!(a.key_id(), secret("0123456789abcdeX").key_id());
    }
}
