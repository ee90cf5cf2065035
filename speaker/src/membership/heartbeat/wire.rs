//! The two fast-liveness messages, inside the authenticated envelope with
//! [`LIVENESS_MAGIC`](crate::membership::auth::LIVENESS_MAGIC). Pure:
//! encoding into a caller's buffer (no allocation once it has grown) and
//! decoding that borrows from the datagram.
//!
//! ```text
//! 0      1      2          10         18
//! +------+------+----------+----------+-------------------------------+
//! | kind | flags| epoch    | seq      | kind-specific                 |
//! | u8   | u8   | u64 BE   | u64 BE   |                               |
//! +------+------+----------+----------+-------------------------------+
//! heartbeat (kind 1): interval_us u32 BE, multiplier u8, from
//! verdict   (kind 2): from, accused
//! a name: length u8 (1..=253) then UTF-8 bytes
//! ```
//!
//! Flags: bit 0 of a heartbeat is `last` (the sender stops sending to this
//! receiver: forget it, do not declare it down); bit 0 of a verdict is
//! `down` (the sender declares `accused` down; clear: it withdraws that).
//! Other bits must be zero, and nothing may follow the last field, so a
//! later format is refused rather than misread.

use crate::membership::bytes::{Reader, Truncated};
use std::time::Duration;

const HEARTBEAT: u8 = 1;
const VERDICT: u8 = 2;
const FLAG: u8 = 1;
/// The longest Kubernetes object name (a DNS subdomain).
pub const MAX_NAME: usize = 253;
/// The largest payload [`encode`] writes (a verdict with two longest
/// names); well below [`crate::membership::config::MAX_DATAGRAM`].
pub const MAX_PAYLOAD: usize = 18 + 2 * (1 + MAX_NAME);

/// One fast-liveness message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// "I am alive": sent every `interval` to the sender's watchers.
    Heartbeat {
        /// The sender's node name.
        from: &'a str,
        /// The sender's incarnation (its start time, microseconds since
        /// the Unix epoch).
        epoch: u64,
        /// Counts up by one per heartbeat within an epoch.
        seq: u64,
        /// How often the sender sends.
        interval: Duration,
        /// After how many missed heartbeats to declare the sender down.
        multiplier: u8,
        /// The sender stops sending to this receiver.
        last: bool,
    },
    /// "I declare `accused` down" (or withdraw that): sent to every live
    /// speaker, so they can count the watchers that agree.
    Verdict {
        /// The sender's node name.
        from: &'a str,
        /// The sender's incarnation.
        epoch: u64,
        /// Counts up by one per verdict within an epoch.
        seq: u64,
        /// Whom it is about.
        accused: &'a str,
        /// Declared down (`true`) or withdrawn (`false`).
        down: bool,
    },
}

impl Message<'_> {
    /// The sender's node name.
    pub fn from(&self) -> &str {
        match self {
            Self::Heartbeat { from, .. } | Self::Verdict { from, .. } => from,
        }
    }

    /// The sender's incarnation.
    pub fn epoch(&self) -> u64 {
        match self {
            Self::Heartbeat { epoch, .. } | Self::Verdict { epoch, .. } => *epoch,
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// It ends before the last field.
    #[error("truncated")]
    Truncated,
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// Flag bits this format does not define.
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// A name that is empty, too long or not UTF-8.
    #[error("bad node name")]
    BadName,
    /// Bytes after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A heartbeat interval of zero or a multiplier of zero.
    #[error("zero interval or multiplier")]
    Zero,
    /// A name longer than [`MAX_NAME`] given to [`encode`].
    #[error("name longer than {MAX_NAME} bytes")]
    NameTooLong,
}

/// Writes `msg` into `out` (cleared first). Fails only for a name longer
/// than [`MAX_NAME`] or empty (nothing is written then).
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.clear();
    match *msg {
        Message::Heartbeat {
            from,
            epoch,
            seq,
            interval,
            multiplier,
            last,
        } => {
            check_name(from)?;
            out.extend_from_slice(&[HEARTBEAT, if last { FLAG } else { 0 }]);
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
            let micros = u32::try_from(interval.as_micros()).unwrap_or(u32::MAX);
            out.extend_from_slice(&micros.to_be_bytes());
            out.push(multiplier);
            put_name(from, out);
        }
        Message::Verdict {
            from,
            epoch,
            seq,
            accused,
            down,
        } => {
            check_name(from)?;
            check_name(accused)?;
            out.extend_from_slice(&[VERDICT, if down { FLAG } else { 0 }]);
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
            put_name(from, out);
            put_name(accused, out);
        }
    }
    Ok(())
}

/// Reads one message; never panics, whatever the bytes.
pub fn decode(payload: &[u8]) -> Result<Message<'_>, Malformed> {
    let mut r = Reader::new(payload);
    let kind = r.u8()?;
    let flags = r.u8()?;
    if flags & !FLAG != 0 {
        return Err(Malformed::UnknownFlags(flags));
    }
    let epoch = r.u64()?;
    let seq = r.u64()?;
    let msg = match kind {
        HEARTBEAT => {
            let micros = r.u32()?;
            let multiplier = r.u8()?;
            if micros == 0 || multiplier == 0 {
                return Err(Malformed::Zero);
            }
            Message::Heartbeat {
                from: r.name()?,
                epoch,
                seq,
                interval: Duration::from_micros(u64::from(micros)),
                multiplier,
                last: flags & FLAG != 0,
            }
        }
        VERDICT => Message::Verdict {
            from: r.name()?,
            epoch,
            seq,
            accused: r.name()?,
            down: flags & FLAG != 0,
        },
        other => return Err(Malformed::UnknownKind(other)),
    };
    match r.rest().len() {
        0 => Ok(msg),
        n => Err(Malformed::Trailing(n)),
    }
}

fn check_name(name: &str) -> Result<(), Malformed> {
    match name.len() {
        0 => Err(Malformed::BadName),
        n if n > MAX_NAME => Err(Malformed::NameTooLong),
        _ => Ok(()),
    }
}

fn put_name(name: &str, out: &mut Vec<u8>) {
    // check_name bounded the length.
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
}

impl From<Truncated> for Malformed {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// A node name: length-prefixed UTF-8, 1 to [`MAX_NAME`] bytes.
trait Name<'a> {
    fn name(&mut self) -> Result<&'a str, Malformed>;
}

impl<'a> Name<'a> for Reader<'a> {
    fn name(&mut self) -> Result<&'a str, Malformed> {
        let len = usize::from(self.u8()?);
        if len == 0 || len > MAX_NAME {
            return Err(Malformed::BadName);
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| Malformed::BadName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn heartbeat(from: &str, last: bool) -> Message<'_> {
        Message::Heartbeat {
            from,
            epoch: 1_764_000_000_000_000,
            seq: 42,
            interval: Duration::from_millis(20),
            multiplier: 5,
            last,
        }
    }

    #[test]
    fn both_kinds_round_trip_with_their_flags() {
        let mut buf = Vec::new();
        for msg in [
            heartbeat("node-a", false),
            heartbeat("node-a", true),
            Message::Verdict {
                from: "node-b",
                epoch: 7,
                seq: u64::MAX,
                accused: "node-c",
                down: true,
            },
            Message::Verdict {
                from: "node-b",
                epoch: 7,
                seq: 0,
                accused: "node-c",
                down: false,
            },
        ] {
            encode(&msg, &mut buf).unwrap();
            assert!(buf.len() <= MAX_PAYLOAD);
            assert_eq!(decode(&buf), Ok(msg));
        }
    }

    #[test]
    fn a_heartbeat_is_small() {
        let mut buf = Vec::new();
        encode(&heartbeat("worker-17", false), &mut buf).unwrap();
        // 23 fixed bytes and the name; with the envelope (36) and IP/UDP
        // headers (28) a heartbeat is about 100 bytes on the wire.
        assert_eq!(buf.len(), 23 + 1 + "worker-17".len());
    }

    #[test]
    fn names_out_of_bounds_are_refused_when_encoding() {
        let mut buf = vec![9];
        let long = "n".repeat(MAX_NAME + 1);
        assert_eq!(
            encode(&heartbeat(&long, false), &mut buf),
            Err(Malformed::NameTooLong)
        );
        assert_eq!(
            encode(&heartbeat("", false), &mut buf),
            Err(Malformed::BadName)
        );
        let longest = "n".repeat(MAX_NAME);
        encode(
            &Message::Verdict {
                from: &longest,
                epoch: 1,
                seq: 1,
                accused: &longest,
                down: true,
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf.len(), MAX_PAYLOAD);
    }

    #[test]
    fn every_kind_of_bad_payload_is_named() {
        let mut good = Vec::new();
        encode(&heartbeat("node-a", false), &mut good).unwrap();
        assert_eq!(decode(&good[..good.len() - 1]), Err(Malformed::Truncated));
        assert_eq!(decode(&[]), Err(Malformed::Truncated));
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(decode(&extra), Err(Malformed::Trailing(1)));
        let mut kind = good.clone();
        kind[0] = 9;
        assert_eq!(decode(&kind), Err(Malformed::UnknownKind(9)));
        let mut flags = good.clone();
        flags[1] = 0x82;
        assert_eq!(decode(&flags), Err(Malformed::UnknownFlags(0x82)));
        let mut zero = good.clone();
        zero[18..22].copy_from_slice(&[0; 4]);
        assert_eq!(decode(&zero), Err(Malformed::Zero));
        let mut utf8 = good.clone();
        let at = good.len() - 1;
        utf8[at] = 0xff;
        assert_eq!(decode(&utf8), Err(Malformed::BadName));
        let mut empty = good[..23].to_vec();
        empty.push(0);
        assert_eq!(decode(&empty), Err(Malformed::BadName));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_what_decodes_encodes_back(
            bytes in proptest::collection::vec(any::<u8>(), 0..600)
        ) {
            if let Ok(msg) = decode(&bytes) {
                let mut again = Vec::new();
                encode(&msg, &mut again).unwrap();
                prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn every_truncation_of_a_message_is_refused(
            from in "[a-z0-9.-]{1,60}", accused in "[a-z0-9.-]{1,60}",
            epoch: u64, seq: u64, down: bool, cut in 0usize..200,
        ) {
            let mut buf = Vec::new();
            encode(&Message::Verdict { from: &from, epoch, seq, accused: &accused, down }, &mut buf).unwrap();
            let cut = cut % buf.len();
            prop_assert!(decode(&buf[..cut]).is_err());
        }
    }
}
