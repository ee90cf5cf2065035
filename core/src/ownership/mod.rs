//! Which node announces each Service when IPs should stay put (issue 15,
//! part 1): the rules of `docs/speaker-ownership.md`, as plain synchronous
//! code with no clock, socket or API client.
//!
//! [`election`](crate::election) makes the owner a pure function of the
//! candidates (MetalLB's hash order), so a node that returns takes its IPs
//! back and every move breaks the connections that ran through the interim
//! owner. Here, in [`Mode::Sticky`] (the default), the owner is whoever
//! already announces the Service, as long as it stays a candidate: every
//! speaker publishes the set of Services it announces (its *claims*) and
//! the claims decide; the hash order only breaks ties and conflicts. New
//! Services and those whose owner died go to the candidate with the fewest
//! Services. [`Mode::Hash`] is MetalLB's placement, exactly
//! [`election::owner_preferring`](crate::election::owner_preferring).
//!
//! - [`decide`]: the rule, from one speaker's view ([`Inputs`]) to the
//!   owner of every Service ([`Decision`]).
//! - [`claims`]: the claims message and what a receiver keeps of them
//!   ([`ClaimBook`]: fresh versions only, from the live incarnation only).
//! - [`member`]: one speaker's side of the protocol ([`Member`]): when to
//!   listen, publish, refresh and reply, the cold start after every
//!   speaker restarted, with time passed in.
//!
//! ```
//! use ferrolb_core::ownership::{decide, Claims, How, Inputs, Mode, Node, Service};
//! use std::collections::BTreeMap;
//!
//! let node = |n: &str| Node::from(n);
//! let all = vec![node("node-a"), node("node-b"), node("node-c")];
//! let services = BTreeMap::from([
//!     ("web", Service::new("192.0.2.10".parse().unwrap(), all.clone())),
//!     ("db", Service::new("192.0.2.11".parse().unwrap(), all.clone())),
//! ]);
//! // node-a announces web; db is new.
//! let claims: Claims<&str> = BTreeMap::from([(node("node-a"), ["web"].into())]);
//! let decision = decide(&Inputs::new(Mode::Sticky, &services, &claims));
//! assert_eq!(decision.owner(&"web").map(|n| &**n), Some("node-a"));
//! assert_eq!(decision.how(&"web"), Some(How::Held));
//! // db goes to a node with fewer Services than node-a.
//! assert_ne!(decision.owner(&"db").map(|n| &**n), Some("node-a"));
//! assert_eq!(decision.how(&"db"), Some(How::Placed));
//! ```

pub mod claims;
mod decide;
pub mod member;

pub use claims::{ClaimBook, Message, Received};
pub use decide::decide;
pub use member::{Config, Effective, Member, Phase};

use crate::election::Scores;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// A node name. Shared, since every Service's candidate list names the
/// same few nodes.
pub type Node = Arc<str>;

/// The claims of every speaker that has published some, by node: the
/// Services each announces. A node that is absent has not published
/// claims (it is still listening after a start, or was never heard).
pub type Claims<K> = BTreeMap<Node, BTreeSet<K>>;

/// How owners are chosen (the speakers' `--ownership` flag, the same on
/// every speaker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// An IP stays on the live, eligible node announcing it; new and
    /// orphaned IPs go to the least loaded candidate.
    #[default]
    Sticky,
    /// MetalLB's placement: the owner is a pure function of the
    /// candidates ([`crate::election::elect_preferring`]); claims,
    /// records and rebalance markers are ignored.
    Hash,
}

/// One Service as the ownership rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    ip: IpAddr,
    candidates: Arc<[Node]>,
    scores: Arc<Scores>,
    rebalance: bool,
}

impl Service {
    /// A Service elected under `ip` (its first IP,
    /// [`crate::election::service_key`]) among `candidates` (what
    /// [`crate::election::candidates_with`] returns: live, selected,
    /// eligible; empty when nobody may announce it), without preferences
    /// or rebalance marker. The candidates are sorted and deduplicated
    /// here if they are not already.
    pub fn new(ip: IpAddr, candidates: impl Into<Arc<[Node]>>) -> Self {
        let mut candidates: Arc<[Node]> = candidates.into();
        if !candidates.windows(2).all(|w| w[0] < w[1]) {
            let mut sorted = candidates.to_vec();
            sorted.sort();
            sorted.dedup();
            candidates = sorted.into();
        }
        Self {
            ip,
            candidates,
            scores: Arc::default(),
            rebalance: false,
        }
    }

    /// With the candidates' preference scores (`preferredNodeSelectors`,
    /// as the announce decision computes them; shared by the Services of
    /// one set of advertisements).
    pub fn with_scores(mut self, scores: Arc<Scores>) -> Self {
        self.scores = scores;
        self
    }

    /// With the operator's rebalance marker (an annotation on the
    /// Service): it may move when that strictly improves its placement
    /// (rule 6 of `docs/speaker-ownership.md`).
    pub fn with_rebalance(mut self, rebalance: bool) -> Self {
        self.rebalance = rebalance;
        self
    }

    /// The IP the Service is elected under.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The candidates, sorted by name, without duplicates.
    pub fn candidates(&self) -> &[Node] {
        &self.candidates
    }

    /// The preference scores (empty: none).
    pub fn scores(&self) -> &Scores {
        &self.scores
    }

    /// Whether the operator asked for a rebalance.
    pub fn rebalance(&self) -> bool {
        self.rebalance
    }

    /// Whether `node` is a candidate.
    pub fn is_candidate(&self, node: &str) -> bool {
        self.candidates
            .binary_search_by(|n| (**n).cmp(node))
            .is_ok()
    }
}

/// What only a speaker in a cold start has: the owners the API last
/// recorded (every speaker restarted, so nobody has claims yet).
#[derive(Debug, Clone, Copy)]
pub struct ColdStart<'a, K> {
    /// The node each Service's `ServiceL2Status` record names, read at
    /// start.
    pub records: &'a BTreeMap<K, Node>,
    /// The nodes whose speaker is live (membership).
    pub live: &'a BTreeSet<Node>,
}

/// One speaker's view: everything [`decide`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a, K> {
    /// The placement mode.
    pub mode: Mode,
    /// Every Service with IPs, by key.
    pub services: &'a BTreeMap<K, Service>,
    /// The claims of the live speakers, this one's included once it has
    /// published some.
    pub claims: &'a Claims<K>,
    /// `Some` while this speaker is in a cold start (`Member` says when).
    pub cold_start: Option<ColdStart<'a, K>>,
}

impl<'a, K> Inputs<'a, K> {
    /// A view outside a cold start.
    pub fn new(mode: Mode, services: &'a BTreeMap<K, Service>, claims: &'a Claims<K>) -> Self {
        Self {
            mode,
            services,
            claims,
            cold_start: None,
        }
    }
}

/// Why a Service has its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum How {
    /// The one candidate that claims it (rule 2).
    Held,
    /// The best ranked of several candidates that claim it (rule 3).
    Contested,
    /// The node its record names, which has not published claims yet
    /// (rule 4, cold start only).
    Recorded,
    /// New or orphaned: the least loaded candidate (rule 5).
    Placed,
    /// Moved by the operator's rebalance marker (rule 6).
    Rebalanced,
    /// [`Mode::Hash`].
    Hashed,
}

/// The owner of one Service, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `node` announces the Service's IPs.
    Owner {
        /// The owner.
        node: Node,
        /// Which rule chose it.
        how: How,
    },
    /// Cold start: the node its record names has no live speaker yet;
    /// nobody announces the Service until that speaker is back or the
    /// cold start ends (rule 4).
    Reserved {
        /// The recorded owner.
        node: Node,
    },
    /// The Service has no candidate.
    Nobody,
}

impl Outcome {
    /// The owner, if any.
    pub fn owner(&self) -> Option<&Node> {
        match self {
            Self::Owner { node, .. } => Some(node),
            Self::Reserved { .. } | Self::Nobody => None,
        }
    }
}

/// The result of [`decide`]: an outcome for every Service of the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<K> {
    outcomes: BTreeMap<K, Outcome>,
    load: BTreeMap<Node, usize>,
}

impl<K> Default for Decision<K> {
    fn default() -> Self {
        Self {
            outcomes: BTreeMap::new(),
            load: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Decision<K> {
    /// Every Service's outcome.
    pub fn outcomes(&self) -> &BTreeMap<K, Outcome> {
        &self.outcomes
    }

    /// The owner of `service`, if it has one.
    pub fn owner(&self, service: &K) -> Option<&Node> {
        self.outcomes.get(service).and_then(Outcome::owner)
    }

    /// Which rule chose the owner of `service`, if it has one.
    pub fn how(&self, service: &K) -> Option<How> {
        match self.outcomes.get(service)? {
            Outcome::Owner { how, .. } => Some(*how),
            Outcome::Reserved { .. } | Outcome::Nobody => None,
        }
    }

    /// The Services `node` owns: what it announces and claims.
    pub fn held_by(&self, node: &str) -> BTreeSet<K> {
        self.outcomes
            .iter()
            .filter(|(_, o)| o.owner().is_some_and(|n| &**n == node))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// How many IPs (distinct election IPs: Services sharing an IP count
    /// once) each node owns; nodes owning none are absent.
    pub fn load(&self) -> &BTreeMap<Node, usize> {
        &self.load
    }
}
