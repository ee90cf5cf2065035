//! The set of live speakers, kept from foca's notifications.

use foca::OwnedNotification;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::identity::SpeakerId;

/// Who is alive, as foca tells it, plus ourselves.
///
/// foca counts a suspect member as active until it is declared down, so a
/// member that merely missed a probe keeps its IPs while it gets the chance
/// to refute the suspicion. Members are kept per address, like foca keeps
/// them: a restarted speaker replaces its previous run at the same address.
#[derive(Debug, Clone)]
pub struct Roster {
    me: SpeakerId,
    members: BTreeMap<SocketAddr, SpeakerId>,
}

impl Roster {
    /// A roster holding only ourselves.
    pub fn new(me: SpeakerId) -> Self {
        Self {
            me,
            members: BTreeMap::new(),
        }
    }

    /// Our own identity.
    pub fn me(&self) -> &SpeakerId {
        &self.me
    }

    /// Applies one notification; returns whether the set of live names may
    /// have changed.
    pub fn apply(&mut self, notification: &OwnedNotification<SpeakerId>) -> bool {
        match notification {
            OwnedNotification::MemberUp(id) => {
                self.members.insert(id.addr, id.clone()).as_ref() != Some(id)
            }
            // A down notice for an identity already replaced by a newer one
            // at the same address must not remove the newer one.
            OwnedNotification::MemberDown(id) => {
                let current = self.members.get(&id.addr) == Some(id);
                if current {
                    self.members.remove(&id.addr);
                }
                current
            }
            OwnedNotification::Rename(old, new) => match self.members.get_mut(&old.addr) {
                // Renamed while active: the new identity takes its place.
                // (If the old one was down, a MemberUp for the new follows.)
                Some(current) if current == old => {
                    let changed = current.name != new.name;
                    self.members.remove(&old.addr);
                    self.members.insert(new.addr, new.clone());
                    changed || old.addr != new.addr
                }
                _ => false,
            },
            OwnedNotification::Rejoin(id) => {
                self.me = id.clone();
                false
            }
            // Idle (everyone else is gone) arrives after the MemberDowns
            // that caused it; Active and Defunct change nobody else's state.
            _ => false,
        }
    }

    /// Forgets everyone but ourselves (after leaving the cluster).
    pub fn clear(&mut self) {
        self.members.clear();
    }

    /// Names of the live speakers, ourselves included.
    pub fn live_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .map(|id| id.name.clone())
            .chain(std::iter::once(self.me.name.clone()))
            .collect()
    }

    /// The live peers (not ourselves), with their addresses.
    pub fn peers(&self) -> Vec<(String, SocketAddr)> {
        self.members
            .values()
            .map(|id| (id.name.clone(), id.addr))
            .collect()
    }

    /// The live peers' identities (not ourselves).
    pub fn members(&self) -> impl Iterator<Item = &SpeakerId> + '_ {
        self.members.values()
    }

    /// Addresses of the live peers (not ourselves).
    pub fn peer_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.members.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnedNotification::*;

    fn id(name: &str, port: u16, boot: u64) -> SpeakerId {
        SpeakerId::with_boot(name, SocketAddr::from(([192, 0, 2, 1], port)), boot)
    }

    fn names(r: &Roster) -> Vec<String> {
        r.live_names().into_iter().collect()
    }

    #[test]
    fn a_new_roster_holds_only_ourselves() {
        let r = Roster::new(id("me", 1, 1));
        assert_eq!(names(&r), ["me"]);
    }

    #[test]
    fn members_that_come_up_are_live_until_they_go_down() {
        let mut r = Roster::new(id("me", 1, 1));
        assert!(r.apply(&MemberUp(id("b", 2, 1))));
        assert!(r.apply(&MemberUp(id("c", 3, 1))));
        assert_eq!(names(&r), ["b", "c", "me"]);
        assert!(r.apply(&MemberDown(id("b", 2, 1))));
        assert_eq!(names(&r), ["c", "me"]);
        assert_eq!(r.peer_addrs().count(), 1);
    }

    #[test]
    fn a_repeated_member_up_changes_nothing() {
        let mut r = Roster::new(id("me", 1, 1));
        assert!(r.apply(&MemberUp(id("b", 2, 1))));
        assert!(!r.apply(&MemberUp(id("b", 2, 1))));
    }

    #[test]
    fn a_stale_down_does_not_remove_the_restarted_speaker() {
        let mut r = Roster::new(id("me", 1, 1));
        r.apply(&MemberUp(id("b", 2, 1)));
        r.apply(&Rename(id("b", 2, 1), id("b", 2, 2)));
        assert!(!r.apply(&MemberDown(id("b", 2, 1))));
        assert_eq!(names(&r), ["b", "me"]);
    }

    #[test]
    fn a_restart_after_being_declared_down_brings_the_name_back() {
        let mut r = Roster::new(id("me", 1, 1));
        r.apply(&MemberUp(id("b", 2, 1)));
        r.apply(&MemberDown(id("b", 2, 1)));
        assert_eq!(names(&r), ["me"]);
        // foca's order when the old identity was down: Rename, then MemberUp.
        assert!(!r.apply(&Rename(id("b", 2, 1), id("b", 2, 2))));
        assert!(r.apply(&MemberUp(id("b", 2, 2))));
        assert_eq!(names(&r), ["b", "me"]);
    }

    #[test]
    fn a_node_that_moved_address_stays_live_while_its_old_address_times_out() {
        let mut r = Roster::new(id("me", 1, 1));
        r.apply(&MemberUp(id("b", 2, 1)));
        r.apply(&MemberUp(id("b", 3, 2)));
        r.apply(&MemberDown(id("b", 2, 1)));
        assert_eq!(names(&r), ["b", "me"]);
    }

    #[test]
    fn our_rejoin_keeps_us_live_under_the_new_identity() {
        let mut r = Roster::new(id("me", 1, 1));
        r.apply(&Rejoin(id("me", 1, 2)));
        assert_eq!(r.me(), &id("me", 1, 2));
        assert_eq!(names(&r), ["me"]);
    }

    #[test]
    fn clearing_leaves_only_ourselves() {
        let mut r = Roster::new(id("me", 1, 1));
        r.apply(&MemberUp(id("b", 2, 1)));
        r.apply(&Idle);
        r.clear();
        assert_eq!(names(&r), ["me"]);
    }
}
