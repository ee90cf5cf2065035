//! The claims channel's datagram payloads, pure: encoding, decoding,
//! chunking and reassembly. The payload goes inside the HMAC envelope
//! ([`crate::membership::auth::CLAIMS_MAGIC`]), so the sender's name and
//! boot in it are authenticated. All integers are big-endian.
//!
//! ```text
//! every payload:  kind u8 | name_len u8 | name (1..=253, UTF-8) | boot u64
//! kind 1, chunk:  epoch u64 | seq u64 | send u64 | flags u8
//!                 | index u16 | total u16 | count u16
//!                 | count x (ns_len u8 | ns (0..=63) | name_len u8 | name (1..=253))
//! kind 2, digest: epoch u64 | seq u64 | flags u8
//! kind 3, pull:   (nothing)
//! ```
//!
//! Chunk flags: bit 0 `settling`, bit 1 `reply`, bit 2 `held` is `Some`
//! (without it the version has one chunk and no keys, so `None` and
//! `Some(empty)` stay apart). Digest flags: bit 0 `settling`. Other bits,
//! trailing bytes and truncations are refused.
//!
//! `send` numbers the sender's transmissions: a version sent again (a
//! peer pulled it) is a new transmission and is delivered again, while a
//! duplicated chunk of a transmission already delivered is not.

use crate::membership::bytes::{Reader, Truncated};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::ownership::Message;
use std::collections::BTreeSet;

use crate::membership::auth::OVERHEAD;
use crate::membership::config::MAX_DATAGRAM;

/// The largest payload: what fits a datagram with the envelope.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - OVERHEAD;
/// The most chunks a version may have (and a receiver keeps).
pub const MAX_CHUNKS: usize = 4096;
/// The longest node name (a DNS subdomain).
pub const MAX_NODE_NAME: usize = 253;
/// The longest namespace (a DNS label).
pub const MAX_NAMESPACE: usize = 63;
/// The longest Service name.
pub const MAX_NAME: usize = 253;
/// The most key bytes (as encoded) a receiver keeps for one version in
/// progress: 4 MiB, about 100,000 Services with long names.
pub const MAX_VERSION_BYTES: usize = 4 << 20;

const KIND_CHUNK: u8 = 1;
const KIND_DIGEST: u8 = 2;
const KIND_PULL: u8 = 3;
const SETTLING: u8 = 1;
const REPLY: u8 = 2;
const HELD: u8 = 4;
/// epoch, seq, send, flags, index, total, count.
const CHUNK_HEADER: usize = 8 + 8 + 8 + 1 + 2 + 2 + 2;

/// Why a payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// It ends before a field does.
    #[error("claims payload truncated")]
    Truncated,
    /// Bytes after the last field.
    #[error("claims payload has trailing bytes")]
    Trailing,
    /// An unknown message kind.
    #[error("unknown claims message kind {0}")]
    Kind(u8),
    /// Unknown flag bits, or `held: None` with keys or several chunks.
    #[error("invalid claims flags")]
    Flags,
    /// A node name, namespace or Service name empty, too long or not UTF-8.
    #[error("invalid name in a claims payload")]
    Name,
    /// `index` not below `total`, or `total` 0 or above [`MAX_CHUNKS`].
    #[error("invalid chunk numbering")]
    Numbering,
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unencodable {
    /// Our node name is empty or longer than [`MAX_NODE_NAME`].
    #[error("node name of {0} bytes cannot be sent (1..=253)")]
    NodeName(usize),
    /// A key's namespace or name is too long, or the name empty.
    #[error("Service {0} has a name that cannot be sent")]
    Key(ObjectKey),
    /// The version needs more than [`MAX_CHUNKS`] datagrams.
    #[error("claims need {0} chunks, more than {MAX_CHUNKS}")]
    TooManyChunks(usize),
}

/// One chunk of a version, as decoded (the keys stay encoded, checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The sender's incarnation.
    pub epoch: u64,
    /// The version.
    pub seq: u64,
    /// The transmission.
    pub send: u64,
    /// Whether the sender is settling.
    pub settling: bool,
    /// Whether the receiver should answer with its claims.
    pub reply: bool,
    /// Whether `held` is `Some`.
    pub held: bool,
    /// This chunk's number, below `total`.
    pub index: u16,
    /// How many chunks the version has.
    pub total: u16,
    /// How many keys `keys` holds.
    pub count: u16,
    /// The encoded keys, already checked.
    pub keys: &'a [u8],
}

impl Chunk<'_> {
    /// Orders transmissions: the newer version wins, then the later send.
    pub fn order(&self) -> (u64, u64, u64) {
        (self.epoch, self.seq, self.send)
    }

    fn shape(&self) -> (bool, bool, bool, u16) {
        (self.settling, self.reply, self.held, self.total)
    }
}

/// What a payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A chunk of a full version.
    Chunk(Chunk<'a>),
    /// The sender's current version, without the set.
    Digest {
        /// Incarnation.
        epoch: u64,
        /// Version.
        seq: u64,
        /// Settling.
        settling: bool,
    },
    /// The sender wants our whole current version.
    Pull,
}

/// A decoded payload: who sent it (authenticated by the envelope) and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The sender's node name.
    pub from: &'a str,
    /// The sender's membership incarnation.
    pub boot: u64,
    /// The message.
    pub frame: Frame<'a>,
}

impl From<Truncated> for Malformed {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// The fields of this format beyond [`Reader`]'s.
trait Fields<'a> {
    fn str(&mut self, min: usize, max: usize) -> Result<&'a str, Malformed>;
    fn key(&mut self) -> Result<(&'a str, &'a str), Malformed>;
    fn end(&self) -> Result<(), Malformed>;
}

impl<'a> Fields<'a> for Reader<'a> {
    /// A length-prefixed UTF-8 string of `min..=max` bytes.
    fn str(&mut self, min: usize, max: usize) -> Result<&'a str, Malformed> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        if len < min || len > max {
            return Err(Malformed::Name);
        }
        std::str::from_utf8(bytes).map_err(|_| Malformed::Name)
    }

    fn key(&mut self) -> Result<(&'a str, &'a str), Malformed> {
        let namespace = self.str(0, MAX_NAMESPACE)?;
        let name = self.str(1, MAX_NAME)?;
        Ok((namespace, name))
    }

    fn end(&self) -> Result<(), Malformed> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Malformed::Trailing)
        }
    }
}

/// Decodes a payload (the envelope already removed). Never panics and
/// never allocates.
pub fn decode(payload: &[u8]) -> Result<Datagram<'_>, Malformed> {
    let mut r = Reader::new(payload);
    let kind = r.u8()?;
    let from = r.str(1, MAX_NODE_NAME)?;
    let boot = r.u64()?;
    let frame = match kind {
        KIND_CHUNK => Frame::Chunk(chunk(&mut r)?),
        KIND_DIGEST => {
            let epoch = r.u64()?;
            let seq = r.u64()?;
            let flags = r.u8()?;
            if flags & !SETTLING != 0 {
                return Err(Malformed::Flags);
            }
            Frame::Digest {
                epoch,
                seq,
                settling: flags & SETTLING != 0,
            }
        }
        KIND_PULL => Frame::Pull,
        other => return Err(Malformed::Kind(other)),
    };
    r.end()?;
    Ok(Datagram { from, boot, frame })
}

fn chunk<'a>(r: &mut Reader<'a>) -> Result<Chunk<'a>, Malformed> {
    let epoch = r.u64()?;
    let seq = r.u64()?;
    let send = r.u64()?;
    let flags = r.u8()?;
    let index = r.u16()?;
    let total = r.u16()?;
    let count = r.u16()?;
    if flags & !(SETTLING | REPLY | HELD) != 0 {
        return Err(Malformed::Flags);
    }
    let held = flags & HELD != 0;
    if total == 0 || usize::from(total) > MAX_CHUNKS || index >= total {
        return Err(Malformed::Numbering);
    }
    if !held && (total != 1 || count != 0) {
        return Err(Malformed::Flags);
    }
    let keys = r.rest();
    for _ in 0..count {
        r.key()?;
    }
    let used = keys.len() - r.rest().len();
    Ok(Chunk {
        epoch,
        seq,
        send,
        settling: flags & SETTLING != 0,
        reply: flags & REPLY != 0,
        held,
        index,
        total,
        count,
        keys: &keys[..used],
    })
}

/// The keys of a decoded chunk.
pub fn keys<'a>(chunk: &Chunk<'a>) -> impl Iterator<Item = Result<ObjectKey, Malformed>> + 'a {
    let mut r = Reader::new(chunk.keys);
    (0..chunk.count).map(move |_| r.key().map(|(ns, name)| ObjectKey::new(ns, name)))
}

fn common(kind: u8, from: &str, boot: u64, out: &mut Vec<u8>) -> Result<(), Unencodable> {
    if from.is_empty() || from.len() > MAX_NODE_NAME {
        return Err(Unencodable::NodeName(from.len()));
    }
    out.clear();
    out.push(kind);
    push_str(out, from);
    out.extend_from_slice(&boot.to_be_bytes());
    Ok(())
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Callers checked the length against a limit below 256.
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a digest into `out` (cleared first).
pub fn encode_digest(
    from: &str,
    boot: u64,
    epoch: u64,
    seq: u64,
    settling: bool,
    out: &mut Vec<u8>,
) -> Result<(), Unencodable> {
    common(KIND_DIGEST, from, boot, out)?;
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(if settling { SETTLING } else { 0 });
    Ok(())
}

/// Encodes a pull into `out` (cleared first).
pub fn encode_pull(from: &str, boot: u64, out: &mut Vec<u8>) -> Result<(), Unencodable> {
    common(KIND_PULL, from, boot, out)
}

/// Splits a version into chunk payloads of at most [`MAX_PAYLOAD`] bytes,
/// in order; `send` numbers this transmission (higher than the last one
/// for the same version).
pub fn encode_claims(
    from: &str,
    boot: u64,
    send: u64,
    message: &Message<ObjectKey>,
) -> Result<Vec<Vec<u8>>, Unencodable> {
    let mut head = Vec::new();
    common(KIND_CHUNK, from, boot, &mut head)?;
    let room = MAX_PAYLOAD - head.len() - CHUNK_HEADER;
    // Which keys go in which chunk, as index ranges.
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let keys: Vec<&ObjectKey> = message.held.iter().flatten().collect();
    let (mut start, mut used) = (0, 0);
    for (i, key) in keys.iter().enumerate() {
        let (ns, name) = (key.namespace.len(), key.name.len());
        if ns > MAX_NAMESPACE || name == 0 || name > MAX_NAME {
            return Err(Unencodable::Key((*key).clone()));
        }
        let size = 2 + ns + name;
        // Never more than u16::MAX keys in a chunk (not reachable with
        // 1,364-byte payloads, but the count field says so).
        if used + size > room || i - start == usize::from(u16::MAX) {
            parts.push((start, i));
            (start, used) = (i, 0);
        }
        used += size;
    }
    parts.push((start, keys.len()));
    if parts.len() > MAX_CHUNKS {
        return Err(Unencodable::TooManyChunks(parts.len()));
    }
    let total = u16::try_from(parts.len()).map_err(|_| Unencodable::TooManyChunks(parts.len()))?;
    let bit = |on: bool, flag: u8| if on { flag } else { 0 };
    let flags = bit(message.settling, SETTLING)
        | bit(message.reply, REPLY)
        | bit(message.held.is_some(), HELD);
    let mut out = Vec::with_capacity(parts.len());
    for (index, (start, end)) in (0u16..).zip(parts) {
        let mut p = Vec::with_capacity(MAX_PAYLOAD);
        p.extend_from_slice(&head);
        p.extend_from_slice(&message.epoch.to_be_bytes());
        p.extend_from_slice(&message.seq.to_be_bytes());
        p.extend_from_slice(&send.to_be_bytes());
        p.push(flags);
        p.extend_from_slice(&index.to_be_bytes());
        p.extend_from_slice(&total.to_be_bytes());
        let count = u16::try_from(end - start).unwrap_or(u16::MAX);
        p.extend_from_slice(&count.to_be_bytes());
        for key in &keys[start..end] {
            push_str(&mut p, &key.namespace);
            push_str(&mut p, &key.name);
        }
        debug_assert!(p.len() <= MAX_PAYLOAD);
        out.push(p);
    }
    Ok(out)
}

/// Why [`Reassembly::push`] did not take a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refused {
    /// Older than the transmission in progress or the last one delivered,
    /// or a chunk already held.
    #[error("stale or duplicate chunk")]
    Stale,
    /// Disagrees with the other chunks of its transmission (flags, total).
    #[error("chunk disagrees with its transmission")]
    Inconsistent,
    /// The transmission would hold more than [`MAX_VERSION_BYTES`].
    #[error("version too large")]
    TooLarge,
}

impl Refused {
    /// A short snake_case name for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Inconsistent => "inconsistent",
            Self::TooLarge => "too_large",
        }
    }
}

#[derive(Debug)]
struct Partial {
    order: (u64, u64, u64),
    shape: (bool, bool, bool, u16),
    /// Per index: the chunk's key count and encoded keys.
    chunks: Vec<Option<(u16, Box<[u8]>)>>,
    have: usize,
    bytes: usize,
}

/// One sender's transmission in progress: at most one (the newest seen),
/// at most [`MAX_CHUNKS`] chunks and [`MAX_VERSION_BYTES`] key bytes.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: Option<Partial>,
    /// The last transmission delivered: nothing at or below it is taken.
    delivered: Option<(u64, u64, u64)>,
}

impl Reassembly {
    /// Nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a transmission is in progress.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes a chunk; returns the whole version once its last chunk
    /// arrived. A chunk of a newer transmission drops the one in progress.
    pub fn push(&mut self, chunk: &Chunk<'_>) -> Result<Option<Message<ObjectKey>>, Refused> {
        let order = chunk.order();
        if self.delivered.is_some_and(|d| order <= d) {
            return Err(Refused::Stale);
        }
        let replace = match &self.partial {
            None => true,
            Some(p) if order < p.order => return Err(Refused::Stale),
            Some(p) => order > p.order,
        };
        if replace {
            self.partial = Some(Partial {
                order,
                shape: chunk.shape(),
                chunks: vec![None; usize::from(chunk.total)],
                have: 0,
                bytes: 0,
            });
        }
        let Some(p) = self.partial.as_mut() else {
            return Err(Refused::Stale);
        };
        if p.shape != chunk.shape() {
            return Err(Refused::Inconsistent);
        }
        let Some(slot) = p.chunks.get_mut(usize::from(chunk.index)) else {
            return Err(Refused::Inconsistent);
        };
        if slot.is_some() {
            return Err(Refused::Stale);
        }
        if p.bytes + chunk.keys.len() > MAX_VERSION_BYTES {
            // Whatever sent this cannot be reassembled: give up on it.
            self.partial = None;
            return Err(Refused::TooLarge);
        }
        *slot = Some((chunk.count, chunk.keys.into()));
        p.have += 1;
        p.bytes += chunk.keys.len();
        if p.have < p.chunks.len() {
            return Ok(None);
        }
        let Some(done) = self.partial.take() else {
            return Ok(None);
        };
        self.delivered = Some(done.order);
        Ok(Some(assemble(done)))
    }
}

fn assemble(done: Partial) -> Message<ObjectKey> {
    let (epoch, seq, _) = done.order;
    let (settling, reply, held, _) = done.shape;
    let held = held.then(|| {
        let mut set = BTreeSet::new();
        for (count, bytes) in done.chunks.into_iter().flatten() {
            let mut r = Reader::new(&bytes);
            for _ in 0..count {
                // Checked when the chunk was decoded.
                if let Ok((ns, name)) = r.key() {
                    set.insert(ObjectKey::new(ns, name));
                }
            }
        }
        set
    });
    Message {
        epoch,
        seq,
        settling,
        held,
        reply,
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
