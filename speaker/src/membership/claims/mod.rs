//! The ownership claims channel (issue 15, `docs/speaker-ownership.md`):
//! each speaker's [`Message`] of [`ferrolb_core::ownership`] travels to its
//! live peers over the memberlist port, sealed with the key ring under its
//! own magic ([`crate::membership::auth::CLAIMS_MAGIC`]), split into
//! numbered chunks that fit a datagram and handed to the daemon only once
//! every chunk of a version arrived (a version is atomic for the core).
//!
//! The daemon owns the [`ferrolb_core::ownership::Member`]; this module only
//! moves its messages. Besides full versions it carries a small
//! [`Incoming::Digest`] (the daemon's periodic refresh of a version the
//! peer already has: `(epoch, seq, settling)`, a few dozen bytes instead of
//! the whole set) and [`Incoming::Pull`] (a peer that saw a digest of a
//! version it does not hold asks for the full one).
//!
//! - `wire`: pure framing (encode, decode, chunking, reassembly).
//! - the shell: the heartbeat thread forwards datagrams with the claims
//!   magic to a bounded queue; the liveness task turns them into
//!   [`Incoming`] for the daemon and sends [`Outgoing`] to peers' addresses,
//!   across restarts of gossip ([`ClaimsPort`] stays the same).

pub mod link;
pub mod shell;
pub mod wire;

use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::ownership::Message;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, watch};

/// A peer's live incarnation: the `boot` of its `SpeakerId`, by node name.
pub type Peers = BTreeMap<String, u64>;

/// What arrives from a peer, authenticated (the sender's name and boot are
/// inside the sealed payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole version of the sender's claims.
    Claims {
        /// The sender's node name.
        from: String,
        /// Its claims.
        message: Message<ObjectKey>,
    },
    /// The sender's current version, without the set.
    Digest {
        /// The sender's node name.
        from: String,
        /// Its incarnation.
        epoch: u64,
        /// Its version within the incarnation.
        seq: u64,
        /// Whether it is settling.
        settling: bool,
    },
    /// The sender wants our whole current version.
    Pull {
        /// The sender's node name.
        from: String,
    },
}

/// What the daemon sends to one live peer (by node name; the port finds
/// its address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A whole version, chunked.
    Claims {
        /// The peer.
        to: String,
        /// Our claims.
        message: Message<ObjectKey>,
    },
    /// Only `(epoch, seq, settling)` of the version the peer was sent.
    Digest {
        /// The peer.
        to: String,
        /// Our incarnation.
        epoch: u64,
        /// Our version.
        seq: u64,
        /// Whether we are settling.
        settling: bool,
    },
    /// Ask the peer for its whole current version.
    Pull {
        /// The peer.
        to: String,
    },
}

/// The daemon's end of the channel, valid for the daemon's whole life
/// (gossip may start late, when the secret appears, or be restarted).
#[derive(Debug)]
pub struct ClaimsPort {
    /// Messages from peers.
    pub incoming: mpsc::Receiver<Incoming>,
    /// Messages to peers; dropped (and counted) when no gossip runs or the
    /// peer is not live.
    pub outgoing: mpsc::Sender<Outgoing>,
    /// The live peers (not us) with their incarnations: SWIM's live set
    /// minus the heartbeat quorum's downs, the same set as the live names.
    /// Empty while gossip does not run.
    pub peers: watch::Receiver<Peers>,
    /// Our own incarnation (`SpeakerId.boot`), `None` while gossip does not
    /// run; it changes when gossip starts and when membership renews us.
    pub me: watch::Receiver<Option<u64>>,
}
