//! Who a speaker is in gossip.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A speaker's gossip identity: node name, the UDP address peers reach it
/// on, and a boot id.
///
/// foca keys members by [`foca::Identity::addr`], the socket address: that
/// is what the daemon knows about peers before they have talked (it seeds
/// them from Node addresses), and foca accepts an announce sent to any
/// identity with our address. The boot id makes each start of a speaker a
/// new identity: SWIM remembers a dead identity as dead, so a restarted
/// speaker must not reuse the old one, and when two identities share an
/// address the one with the higher boot id wins
/// ([`foca::Identity::win_addr_conflict`]).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpeakerId {
    /// The Kubernetes node name.
    pub name: String,
    /// Where peers send datagrams for this speaker.
    pub addr: SocketAddr,
    /// Increases with every start (microseconds since the Unix epoch at
    /// start) and with every automatic rejoin ([`foca::Identity::renew`]).
    pub boot: u64,
}

impl SpeakerId {
    /// A new identity whose boot id is the current time in microseconds, so
    /// a restart on the same node outranks the previous run (as long as the
    /// clock did not step back by more than the downtime).
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self::with_boot(name, addr, boot)
    }

    /// An identity with a given boot id.
    pub fn with_boot(name: impl Into<String>, addr: SocketAddr, boot: u64) -> Self {
        Self {
            name: name.into(),
            addr,
            boot,
        }
    }

    /// A placeholder for a peer known only by address: foca accepts an
    /// announce addressed to any identity carrying the receiver's address,
    /// and the reply tells us the real identity.
    pub fn seed(addr: SocketAddr) -> Self {
        Self::with_boot(String::new(), addr, 0)
    }
}

impl fmt::Debug for SpeakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.boot)
    }
}

impl fmt::Display for SpeakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl foca::Identity for SpeakerId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        // Declared down while still running (a partition, a long pause):
        // come back at once as a newer identity that wins the address.
        Some(Self {
            name: self.name.clone(),
            addr: self.addr,
            boot: self.boot.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Every member must pick the same winner, so the order is total:
        // newest boot first, then the name as a tie-break.
        match self.boot.cmp(&adversary.boot) {
            Ordering::Equal => self.name > adversary.name,
            other => other == Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn addr() -> SocketAddr {
        "192.0.2.1:7946".parse().unwrap()
    }

    #[test]
    fn a_restarted_speaker_outranks_its_previous_run() {
        let old = SpeakerId::with_boot("node-a", addr(), 10);
        let new = SpeakerId::with_boot("node-a", addr(), 11);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_renewed_identity_wins_over_the_one_it_replaces() {
        let id = SpeakerId::with_boot("node-a", addr(), 10);
        let renewed = id.renew().unwrap();
        assert_eq!(renewed.name, "node-a");
        assert_eq!(renewed.addr(), id.addr());
        assert_ne!(renewed, id);
        assert!(renewed.win_addr_conflict(&id));
    }

    #[test]
    fn conflicts_with_equal_boot_ids_have_exactly_one_winner() {
        let a = SpeakerId::with_boot("node-a", addr(), 10);
        let b = SpeakerId::with_boot("node-b", addr(), 10);
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }

    #[test]
    fn identities_made_later_have_larger_boot_ids() {
        let a = SpeakerId::new("n", addr());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = SpeakerId::new("n", addr());
        assert!(b.boot > a.boot);
    }

    #[test]
    fn a_seed_has_the_peer_address_and_nothing_else() {
        let seed = SpeakerId::seed(addr());
        assert_eq!(seed.addr(), addr());
        assert!(seed.name.is_empty());
    }

    #[test]
    fn debug_output_shows_name_address_and_boot() {
        let id = SpeakerId::with_boot("node-a", addr(), 7);
        assert_eq!(format!("{id:?}"), "node-a@192.0.2.1:7946#7");
    }
}
