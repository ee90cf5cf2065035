//! The ownership rule: one speaker's view in, the owner of every Service
//! out. The rules are numbered as in `docs/speaker-ownership.md`.

use super::{Decision, How, Inputs, Mode, Node, Outcome, Service};
use crate::election::{self, ip_key, rank_with_key, Scores};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// The owner of every Service in `inputs`, as this view sees it.
///
/// Deterministic: two speakers with equal inputs decide the same. In
/// [`Mode::Hash`] each Service's owner is
/// [`election::elect_preferring`] over its candidates. In
/// [`Mode::Sticky`]:
///
/// 1. Services elected under one IP (sharing it) are one *unit* with one
///    owner; its candidates are those every member has (or, when they
///    have none in common, those any member has).
/// 2. A unit is *held* by the candidate that claims one of its members.
/// 3. Several candidates claim it: the best ranked
///    ([`election::elect_preferring`] among them) keeps it.
/// 4. Cold start only: a unit no candidate claims is held by the node a
///    member's record names if that node is a candidate and has not
///    published claims; if the recorded node is not live, the unit is
///    reserved for it (nobody announces it).
/// 5. Every other unit is an orphan. Orphans are placed in IP order, each
///    on the candidate with the highest score, then the fewest units
///    (counting every unit held or placed before), then the best hash
///    rank.
/// 6. Then each held unit a member of which carries the rebalance marker
///    moves, in IP order, to the candidate rule 5 would pick among the
///    others, when that one scores more than the holder, or as much and
///    holds at least two units fewer.
pub fn decide<K: Ord + Clone>(inputs: &Inputs<'_, K>) -> Decision<K> {
    match inputs.mode {
        Mode::Hash => hashed(inputs.services),
        Mode::Sticky => sticky(inputs),
    }
}

fn hashed<K: Ord + Clone>(services: &BTreeMap<K, Service>) -> Decision<K> {
    let mut outcomes = BTreeMap::new();
    let mut owned: BTreeSet<(&Node, IpAddr)> = BTreeSet::new();
    for (key, svc) in services {
        let names = svc.candidates.iter().map(|n| &**n);
        let winner = election::elect_preferring(svc.ip, names, &svc.scores)
            .and_then(|w| svc.candidates.iter().find(|n| &***n == w));
        let outcome = match winner {
            Some(node) => {
                owned.insert((node, svc.ip));
                Outcome::Owner {
                    node: node.clone(),
                    how: How::Hashed,
                }
            }
            None => Outcome::Nobody,
        };
        outcomes.insert(key.clone(), outcome);
    }
    let mut load: BTreeMap<Node, usize> = BTreeMap::new();
    for (node, _) in owned {
        *load.entry(node.clone()).or_default() += 1;
    }
    Decision { outcomes, load }
}

/// The Services elected under one IP.
struct Unit<'a, K> {
    ip: IpAddr,
    /// The IP as the hash order writes it, made when first needed (a
    /// Service held by one claimant needs no hashing).
    ip_key: OnceCell<String>,
    members: Vec<&'a K>,
    candidates: Cow<'a, [Node]>,
    scores: &'a Scores,
    rebalance: bool,
}

impl<'a, K> Unit<'a, K> {
    fn new(ip: IpAddr, members: Vec<(&'a K, &'a Service)>) -> Self {
        let first = members[0].1;
        let candidates: Cow<'a, [Node]> = if members.len() == 1 {
            Cow::Borrowed(&first.candidates)
        } else {
            let common: Vec<Node> = first
                .candidates
                .iter()
                .filter(|n| members.iter().all(|(_, s)| s.is_candidate(n)))
                .cloned()
                .collect();
            if common.is_empty() {
                let any: BTreeSet<&Node> = members
                    .iter()
                    .flat_map(|(_, s)| s.candidates.iter())
                    .collect();
                Cow::Owned(any.into_iter().cloned().collect())
            } else {
                Cow::Owned(common)
            }
        };
        Self {
            ip,
            ip_key: OnceCell::new(),
            rebalance: members.iter().any(|(_, s)| s.rebalance),
            scores: &first.scores,
            members: members.into_iter().map(|(k, _)| k).collect(),
            candidates,
        }
    }

    fn is_candidate(&self, node: &str) -> bool {
        self.candidates
            .binary_search_by(|n| (**n).cmp(node))
            .is_ok()
    }

    fn rank(&self, node: &str) -> [u8; 32] {
        rank_with_key(node, self.ip_key.get_or_init(|| ip_key(self.ip)))
    }

    fn score(&self, node: &str) -> u64 {
        self.scores.get(node).copied().unwrap_or(0)
    }

    /// The best ranked of `nodes` (rule 3): highest score, then hash.
    fn best<'n>(&self, nodes: &[&'n Node]) -> &'n Node {
        if nodes.len() == 1 {
            return nodes[0];
        }
        nodes
            .iter()
            .copied()
            .min_by_key(|n| (Reverse(self.score(n)), self.rank(n), *n))
            .unwrap_or(nodes[0])
    }

    /// Rule 5's choice among the candidates other than `skip`, with its
    /// (score, load) key.
    fn place<'u>(
        &'u self,
        loads: &HashMap<&Node, usize>,
        skip: Option<&Node>,
    ) -> Option<(&'u Node, (Reverse<u64>, usize))> {
        let key = |n: &Node| (Reverse(self.score(n)), loads.get(n).copied().unwrap_or(0));
        let others = || self.candidates.iter().filter(move |n| Some(*n) != skip);
        let best = others().map(&key).min()?;
        let tied: Vec<&Node> = others().filter(|n| key(n) == best).collect();
        let winner = if tied.len() == 1 {
            tied[0]
        } else {
            tied.into_iter().min_by_key(|n| (self.rank(n), *n))?
        };
        Some((winner, best))
    }
}

fn sticky<K: Ord + Clone>(inputs: &Inputs<'_, K>) -> Decision<K> {
    let mut outcomes: BTreeMap<K, Outcome> = BTreeMap::new();
    // Rule 1.
    let mut by_ip: BTreeMap<IpAddr, Vec<(&K, &Service)>> = BTreeMap::new();
    for (key, svc) in inputs.services {
        if svc.candidates.is_empty() {
            outcomes.insert(key.clone(), Outcome::Nobody);
        } else {
            by_ip.entry(svc.ip).or_default().push((key, svc));
        }
    }
    let units: Vec<Unit<'_, K>> = by_ip
        .into_iter()
        .map(|(ip, members)| Unit::new(ip, members))
        .collect();
    let mut claimed: BTreeMap<&K, Vec<&Node>> = BTreeMap::new();
    for (node, held) in inputs.claims {
        for key in held {
            if inputs.services.contains_key(key) {
                claimed.entry(key).or_default().push(node);
            }
        }
    }

    let mut result: Vec<Outcome> = Vec::with_capacity(units.len());
    let mut loads: HashMap<&Node, usize> = HashMap::new();
    let mut orphans = Vec::new();
    let mut marked = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        // Rules 2 and 3.
        let mut claimants: Vec<&Node> = unit
            .members
            .iter()
            .filter_map(|k| claimed.get(k))
            .flatten()
            .copied()
            .filter(|n| unit.is_candidate(n))
            .collect();
        claimants.sort();
        claimants.dedup();
        let mut how = if claimants.len() > 1 {
            How::Contested
        } else {
            How::Held
        };
        // Rule 4.
        if claimants.is_empty() {
            if let Some(cold) = &inputs.cold_start {
                let recorded: Vec<&Node> = unit
                    .members
                    .iter()
                    .filter_map(|k| cold.records.get(*k))
                    .collect();
                claimants = recorded
                    .iter()
                    .copied()
                    .filter(|n| unit.is_candidate(n) && !inputs.claims.contains_key(&***n))
                    .collect();
                claimants.sort();
                claimants.dedup();
                how = How::Recorded;
                if claimants.is_empty() {
                    if let Some(absent) = recorded.iter().find(|n| !cold.live.contains(&***n)) {
                        result.push(Outcome::Reserved {
                            node: (*absent).clone(),
                        });
                        continue;
                    }
                }
            }
        }
        if claimants.is_empty() {
            orphans.push(i);
            result.push(Outcome::Nobody);
            continue;
        }
        let holder = unit.best(&claimants);
        *loads.entry(holder).or_default() += 1;
        if unit.rebalance {
            marked.push(i);
        }
        result.push(Outcome::Owner {
            node: holder.clone(),
            how,
        });
    }

    // Rule 5.
    for i in orphans {
        let unit = &units[i];
        if let Some((node, _)) = unit.place(&loads, None) {
            *loads.entry(node).or_default() += 1;
            result[i] = Outcome::Owner {
                node: node.clone(),
                how: How::Placed,
            };
        }
    }

    // Rule 6.
    for i in marked {
        let unit = &units[i];
        let Outcome::Owner { node: holder, .. } = &result[i] else {
            continue;
        };
        let holder_load = loads.get(holder).copied().unwrap_or(1);
        let stay = (Reverse(unit.score(holder)), holder_load.saturating_sub(1));
        let Some((target, key)) = unit.place(&loads, Some(holder)) else {
            continue;
        };
        if key < stay {
            if let Some(n) = loads.get_mut(holder) {
                *n -= 1;
            }
            *loads.entry(target).or_default() += 1;
            result[i] = Outcome::Owner {
                node: target.clone(),
                how: How::Rebalanced,
            };
        }
    }

    for (unit, outcome) in units.iter().zip(result) {
        for key in &unit.members {
            outcomes.insert((*key).clone(), outcome.clone());
        }
    }
    let load = loads
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(node, n)| (node.clone(), n))
        .collect();
    Decision { outcomes, load }
}

#[cfg(test)]
mod tests;
