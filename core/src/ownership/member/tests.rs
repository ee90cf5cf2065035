use super::*;
use crate::ownership::Outcome;
use std::net::IpAddr;

fn node(n: &str) -> Node {
    Node::from(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> Config {
    Config {
        mode: Mode::Sticky,
        refresh: ms(1_000),
        listen: ms(3_000),
        settle: ms(10_000),
        yield_grace: ms(200),
    }
}

fn services(names: &[&str]) -> BTreeMap<u32, Service> {
    let cands: Vec<Node> = names.iter().map(|n| node(n)).collect();
    (0..4u32)
        .map(|k| {
            (
                k,
                Service::new(IpAddr::from([192, 0, 2, k as u8]), cands.clone()),
            )
        })
        .collect()
}

fn msg(epoch: u64, seq: u64, settling: bool, held: Option<&[u32]>) -> Message<u32> {
    Message {
        epoch,
        seq,
        settling,
        held: held.map(|h| h.iter().copied().collect()),
        reply: false,
    }
}

/// Polls and returns what was sent, by recipient.
fn poll(m: &mut Member<u32>, now: u64) -> Vec<(String, Message<u32>)> {
    let mut out = Vec::new();
    m.poll(ms(now), &mut |to, msg| out.push((to.to_string(), msg)));
    out
}

fn started(records: &[(u32, &str)]) -> Member<u32> {
    let records = records.iter().map(|(k, n)| (*k, node(n))).collect();
    let mut m = Member::new(node("node-a"), 7, config(), records, ms(0));
    m.set_live([(node("node-b"), 1), (node("node-c"), 1)]);
    m.set_services(services(&["node-a", "node-b", "node-c"]));
    m
}

#[test]
fn a_started_speaker_announces_nothing_until_it_heard_every_live_peer() {
    let mut m = started(&[]);
    let sent = poll(&mut m, 0);
    // A hello to each peer, asking for its claims.
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|(_, s)| s.held.is_none() && s.reply && s.settling));
    assert_eq!(m.held(), None);
    // node-b holds everything; node-c not heard yet.
    m.receive(&node("node-b"), msg(1, 5, false, Some(&[0, 1, 2, 3])));
    poll(&mut m, 10);
    assert_eq!(m.phase(), Phase::Listening);
    assert_eq!(m.held(), None);
    m.receive(&node("node-c"), msg(1, 3, false, Some(&[])));
    let sent = poll(&mut m, 20);
    // Steady peers: no cold start; it takes nothing they claim.
    assert_eq!(m.phase(), Phase::Steady);
    assert_eq!(m.held(), Some(&BTreeSet::new()));
    assert!(sent
        .iter()
        .all(|(_, s)| s.held == Some(BTreeSet::new()) && !s.settling));
}

#[test]
fn a_speaker_decides_at_the_end_of_its_listen_window_whatever_it_heard() {
    let mut m = started(&[(0, "node-b")]);
    poll(&mut m, 0);
    assert_eq!(poll(&mut m, 2_999).len(), 2, "refreshes ask again");
    assert_eq!(m.phase(), Phase::Listening);
    poll(&mut m, 3_000);
    // Nobody heard counts as a cold start: node-b's record holds 0 for it.
    assert_eq!(m.phase(), Phase::Settling);
    assert_eq!(m.decision().how(&0), Some(crate::ownership::How::Recorded));
    assert!(m.held().is_some_and(|h| !h.contains(&0)));
    // Without records there is nothing to wait for.
    let mut m = started(&[]);
    poll(&mut m, 0);
    poll(&mut m, 3_000);
    assert_eq!(m.phase(), Phase::Steady);
}

#[test]
fn hearing_only_settling_peers_is_a_cold_start_where_records_count() {
    let mut m = started(&[(0, "node-a"), (1, "node-b"), (2, "node-c")]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 1, true, None));
    m.receive(&node("node-c"), msg(1, 1, true, None));
    poll(&mut m, 5);
    assert_eq!(m.phase(), Phase::Settling);
    let held = m.held().unwrap();
    assert!(held.contains(&0) && !held.contains(&1) && !held.contains(&2));
    // Every recorded node is back and has published: the cold start ends.
    m.receive(&node("node-b"), msg(1, 2, true, Some(&[1])));
    poll(&mut m, 6);
    assert_eq!(m.phase(), Phase::Settling);
    m.receive(&node("node-c"), msg(1, 2, true, Some(&[2])));
    let sent = poll(&mut m, 7);
    assert_eq!(m.phase(), Phase::Steady);
    // The end of the cold start is published.
    assert!(!sent.is_empty() && sent.iter().all(|(_, s)| !s.settling));
}

#[test]
fn a_cold_start_ends_after_settle_even_if_a_recorded_node_never_returns() {
    let mut m = started(&[(0, "node-z")]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 1, true, Some(&[])));
    m.receive(&node("node-c"), msg(1, 1, true, Some(&[])));
    poll(&mut m, 5);
    assert_eq!(m.phase(), Phase::Settling);
    assert!(matches!(
        m.decision().outcomes()[&0],
        Outcome::Reserved { .. }
    ));
    let next = m.poll(ms(6), &mut |_, _| {});
    assert!(next <= ms(10_000));
    poll(&mut m, 10_000);
    assert_eq!(m.phase(), Phase::Steady);
    assert!(m.decision().owner(&0).is_some());
}

#[test]
fn a_peer_that_asks_is_answered_and_a_new_peer_is_asked() {
    let mut m = started(&[]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 1, false, Some(&[])));
    m.receive(&node("node-c"), msg(1, 1, false, Some(&[])));
    poll(&mut m, 1);
    let mut ask = msg(1, 2, false, Some(&[]));
    ask.reply = true;
    m.receive(&node("node-b"), ask);
    let sent = poll(&mut m, 2);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "node-b");
    assert!(!sent[0].1.reply);
    // node-d joins: asked at once.
    m.set_live([
        (node("node-b"), 1),
        (node("node-c"), 1),
        (node("node-d"), 4),
    ]);
    let sent = poll(&mut m, 3);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "node-d");
    assert!(sent[0].1.reply);
}

#[test]
fn a_restarted_peers_old_claims_are_forgotten() {
    let mut m = started(&[]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 9, false, Some(&[0, 1])));
    m.receive(&node("node-c"), msg(1, 1, false, Some(&[2, 3])));
    poll(&mut m, 1);
    assert_eq!(m.decision().owner(&0).map(|n| &**n), Some("node-b"));
    // node-b restarted: a new incarnation, nothing published yet.
    m.set_live([(node("node-b"), 2), (node("node-c"), 1)]);
    assert_eq!(
        m.receive(&node("node-b"), msg(1, 10, false, Some(&[0, 1]))),
        Received::OtherIncarnation
    );
    poll(&mut m, 2);
    assert!(!m.book().claims().contains_key("node-b"));
}

#[test]
fn a_renewed_speaker_republishes_under_its_new_incarnation() {
    let mut m = started(&[]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 1, false, Some(&[0, 1])));
    m.receive(&node("node-c"), msg(1, 1, false, Some(&[2])));
    poll(&mut m, 1);
    let held = m.held().cloned();
    m.renew(8);
    let sent = poll(&mut m, 2);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, s)| s.epoch == 8 && s.held == held));
}

#[test]
fn hash_mode_announces_without_listening() {
    let config = Config {
        mode: Mode::Hash,
        ..config()
    };
    let mut m = Member::new(node("node-a"), 1, config, BTreeMap::new(), ms(0));
    m.set_live([(node("node-b"), 1)]);
    m.set_services(services(&["node-a", "node-b"]));
    poll(&mut m, 0);
    assert_eq!(m.phase(), Phase::Steady);
    assert!(m.held().is_some());
}

#[test]
fn a_service_given_up_by_a_live_candidate_waits_before_it_is_taken() {
    // node-a hears node-b claim 0 and 1 and node-c claim 2 and 3; then
    // node-b gives up 0 (to a claimant node-a has not heard yet).
    let mut m = started(&[]);
    poll(&mut m, 0);
    m.receive(&node("node-b"), msg(1, 1, false, Some(&[0, 1])));
    m.receive(&node("node-c"), msg(1, 1, false, Some(&[2, 3])));
    poll(&mut m, 1);
    assert_eq!(m.held(), Some(&BTreeSet::new()));
    m.receive(&node("node-b"), msg(1, 2, false, Some(&[1])));
    poll(&mut m, 10);
    // The rule places 0 here (fewest), but node-a waits.
    assert_eq!(m.decision().owner(&0).map(|n| &**n), Some("node-a"));
    assert_eq!(m.held(), Some(&BTreeSet::new()));
    let next = m.poll(ms(11), &mut |_, _| {});
    assert!(next <= ms(210));
    poll(&mut m, 210);
    assert_eq!(m.held(), Some(&BTreeSet::from([0])));
    // A Service whose owner died is taken at once.
    m.set_live([(node("node-c"), 1)]);
    m.set_services(services(&["node-a", "node-c"]));
    poll(&mut m, 211);
    assert!(m.held().unwrap().contains(&1));
}
