//! The ownership claims channel between two real memberships on
//! 127.0.0.1: full versions, digests and pulls over the memberlist port,
//! forged datagrams dropped and counted, and the live peers with their
//! incarnations. No API server, no root.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::ownership::Message;
use ferrolb_speaker::membership::auth::CLAIMS_MAGIC;
use ferrolb_speaker::membership::claims::shell::{Attachment, ClaimsStats, Kind, Reason, Shell};
use ferrolb_speaker::membership::claims::{wire, ClaimsPort, Incoming, Outgoing, Peers};
use ferrolb_speaker::membership::{Membership, MembershipConfig, Secret};
use tokio::sync::watch;
use tokio::time::timeout;

const CONVERGE: Duration = Duration::from_secs(10);
const DELIVER: Duration = Duration::from_secs(3);

fn secret() -> Secret {
    Secret::from_bytes(b"ferrolb-test-secret-0123456789", "test").unwrap()
}

async fn start(name: &str, seeds: &[SocketAddr]) -> Membership {
    let mut config = MembershipConfig::new(name, "127.0.0.1:0".parse().unwrap(), secret());
    config.seeds = seeds.to_vec();
    Membership::start(config).await.expect("bind")
}

/// A speaker: its membership and its claims port.
struct Speaker {
    gossip: Option<Membership>,
    port: ClaimsPort,
    shell: Shell,
}

async fn speaker(name: &str, seeds: &[SocketAddr]) -> Speaker {
    let mut gossip = start(name, seeds).await;
    let (port, shell) = Shell::spawn(name.to_owned());
    shell
        .attach(Attachment::take(&mut gossip).expect("inbox"))
        .await;
    Speaker {
        gossip: Some(gossip),
        port,
        shell,
    }
}

impl Speaker {
    fn m(&self) -> &Membership {
        self.gossip.as_ref().expect("running")
    }

    fn boot(&self) -> u64 {
        self.m().identity().boot
    }

    fn addr(&self) -> SocketAddr {
        self.m().local_addr()
    }
}

/// a and b, each seeing the other in its claims peers with its boot.
async fn pair() -> (Speaker, Speaker) {
    let a = speaker("node-a", &[]).await;
    let b = speaker("node-b", &[a.addr()]).await;
    let mut a_peers = a.port.peers.clone();
    let mut b_peers = b.port.peers.clone();
    assert!(
        wait_peers(&mut a_peers, &[("node-b", b.boot())]).await,
        "a sees {:?}",
        *a_peers.borrow()
    );
    assert!(
        wait_peers(&mut b_peers, &[("node-a", a.boot())]).await,
        "b sees {:?}",
        *b_peers.borrow()
    );
    (a, b)
}

async fn wait_peers(rx: &mut watch::Receiver<Peers>, want: &[(&str, u64)]) -> bool {
    let want: Peers = want.iter().map(|(n, b)| ((*n).to_owned(), *b)).collect();
    matches!(
        timeout(CONVERGE, rx.wait_for(|p| *p == want)).await,
        Ok(Ok(_))
    )
}

/// Polls `shell`'s counters until `done` holds; false after `limit`.
async fn wait_stats(shell: &Shell, limit: Duration, done: impl Fn(&ClaimsStats) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done(&shell.stats()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done(&shell.stats())
}

/// Sends a pull to `to` through `port`.
async fn send_pull(port: &ClaimsPort, to: &str) {
    let msg = Outgoing::Pull { to: to.into() };
    port.outgoing.send(msg).await.unwrap();
}

/// The next message on `port` is a pull from `from`.
async fn expect_pull(port: &mut ClaimsPort, from: &str) {
    let got = timeout(DELIVER, port.incoming.recv()).await.unwrap();
    assert_eq!(got, Some(Incoming::Pull { from: from.into() }));
}

fn services(n: usize) -> BTreeSet<ObjectKey> {
    (0..n)
        .map(|i| {
            ObjectKey::new(
                format!("namespace-{}", i % 53),
                format!("service-with-a-name-{i:05}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_speakers_exchange_a_ten_thousand_key_version_a_digest_and_a_pull() {
    let (mut a, mut b) = pair().await;
    let message = Message {
        epoch: a.boot(),
        seq: 1,
        settling: false,
        held: Some(services(10_000)),
        reply: true,
    };
    // UDP may lose a chunk under load: a lost one is repaired by sending
    // the version again (the daemon's pull does the same), at most 3 times.
    let mut got = None;
    for _ in 0..3 {
        a.port
            .outgoing
            .send(Outgoing::Claims {
                to: "node-b".into(),
                message: message.clone(),
            })
            .await
            .unwrap();
        if let Ok(Some(incoming)) = timeout(DELIVER, b.port.incoming.recv()).await {
            got = Some(incoming);
            break;
        }
    }
    assert_eq!(
        got,
        Some(Incoming::Claims {
            from: "node-a".into(),
            message: message.clone(),
        })
    );
    let stats = b.shell.stats();
    assert_eq!(stats.delivered(Kind::Claims), 1);
    let sent = a.shell.stats().sent(Kind::Claims);
    eprintln!(
        "10,000 keys: {sent} datagrams sent, {} received",
        stats.received(Kind::Claims)
    );
    assert!(sent >= 200, "{sent}");

    a.port
        .outgoing
        .send(Outgoing::Digest {
            to: "node-b".into(),
            epoch: a.boot(),
            seq: 1,
            settling: false,
        })
        .await
        .unwrap();
    let digest = timeout(DELIVER, b.port.incoming.recv()).await.unwrap();
    assert_eq!(
        digest,
        Some(Incoming::Digest {
            from: "node-a".into(),
            epoch: a.boot(),
            seq: 1,
            settling: false,
        })
    );
    send_pull(&b.port, "node-a").await;
    expect_pull(&mut a.port, "node-b").await;
    // Nothing was delivered twice: no late chunk made a second version.
    assert!(b.port.incoming.try_recv().is_err());
    assert_eq!(b.shell.stats().delivered(Kind::Claims), 1);
    assert_eq!(b.shell.stats().dropped(Reason::Unauthenticated), 0);
    assert_eq!(a.m().stats().heartbeat.claims_queue_full, 0);
}

/// Seals `payload` as a claims datagram with `key` and sends it to `to`.
fn forge(key: &Secret, payload: &[u8], to: SocketAddr) {
    let mut sealed = Vec::new();
    key.seal_as(CLAIMS_MAGIC, payload, &mut sealed);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&sealed, to).unwrap();
}

#[tokio::test]
async fn wrongly_keyed_and_forged_datagrams_are_dropped_and_counted_never_delivered() {
    let (a, mut b) = pair().await;
    let wrong = Secret::from_bytes(b"ferrolb-WRONG-secret-012345678", "test").unwrap();
    let mut pull = Vec::new();
    let to = b.addr();

    wire::encode_pull("node-a", a.boot(), &mut pull).unwrap();
    forge(&wrong, &pull, to);
    wire::encode_pull("node-x", a.boot(), &mut pull).unwrap();
    forge(&secret(), &pull, to);
    wire::encode_pull("node-a", a.boot() + 1, &mut pull).unwrap();
    forge(&secret(), &pull, to);
    wire::encode_pull("node-b", b.boot(), &mut pull).unwrap();
    forge(&secret(), &pull, to);
    forge(&secret(), b"\x01garbage", to);

    let want = [
        Reason::Unauthenticated,
        Reason::SenderNotLive,
        Reason::WrongBoot,
        Reason::FromSelf,
        Reason::Malformed,
    ];
    let counted = wait_stats(&b.shell, DELIVER, |s| {
        want.iter().all(|r| s.dropped(*r) == 1)
    })
    .await;
    assert!(counted, "{:?}", b.shell.stats());
    assert!(b.port.incoming.try_recv().is_err());
    assert_eq!(b.shell.stats().received, [0; 3]);
    // They went to the claims queue, not to gossip.
    assert_eq!(b.m().stats().rejected, 0);
    assert_eq!(b.m().stats().malformed, 0);

    // The genuine one still goes through.
    send_pull(&a.port, "node-b").await;
    expect_pull(&mut b.port, "node-a").await;
}

#[tokio::test]
async fn peers_show_the_other_speaker_with_its_boot_and_drop_it_when_it_dies() {
    let (a, mut b) = pair().await;
    assert_eq!(*a.port.me.borrow(), Some(a.boot()));
    assert_eq!(*b.port.me.borrow(), Some(b.boot()));
    // b crashes: no leave.
    drop(b.gossip.take());
    let mut peers = a.port.peers.clone();
    assert!(
        wait_peers(&mut peers, &[]).await,
        "a still sees {:?}",
        *peers.borrow()
    );
    send_pull(&a.port, "node-b").await;
    assert!(
        wait_stats(&a.shell, DELIVER, |s| s.dropped(Reason::PeerNotLive) == 1).await,
        "{:?}",
        a.shell.stats()
    );
    // b's own port follows its gossip stopping: nobody, no incarnation.
    let mut me = b.port.me.clone();
    assert!(matches!(
        timeout(DELIVER, me.wait_for(Option::is_none)).await,
        Ok(Ok(_))
    ));
    assert!(b.port.peers.borrow().is_empty());
}

#[tokio::test]
async fn the_port_shows_nobody_without_gossip_and_follows_it_across_restarts() {
    let (port, shell) = Shell::spawn("node-a".into());
    assert!(port.peers.borrow().is_empty());
    assert_eq!(*port.me.borrow(), None);
    send_pull(&port, "node-b").await;
    assert!(
        wait_stats(&shell, DELIVER, |s| s.dropped(Reason::NoGossip) == 1).await,
        "{:?}",
        shell.stats()
    );
    // Gossip starts late: the same port gets our incarnation.
    let mut gossip = start("node-a", &[]).await;
    shell.attach(Attachment::take(&mut gossip).unwrap()).await;
    let mut me = port.me.clone();
    let boot = gossip.identity().boot;
    assert!(matches!(
        timeout(DELIVER, me.wait_for(|m| *m == Some(boot))).await,
        Ok(Ok(_))
    ));
    // The inbox is taken once.
    assert!(Attachment::take(&mut gossip).is_none());

    // Gossip stops (crash) and restarts: the same port follows.
    drop(gossip);
    assert!(matches!(
        timeout(DELIVER, me.wait_for(Option::is_none)).await,
        Ok(Ok(_))
    ));
    let mut again = start("node-a", &[]).await;
    let boot = again.identity().boot;
    shell.attach(Attachment::take(&mut again).unwrap()).await;
    assert!(matches!(
        timeout(DELIVER, me.wait_for(|m| *m == Some(boot))).await,
        Ok(Ok(_))
    ));
}

#[tokio::test]
async fn claims_datagrams_wait_in_their_own_bounded_queue_and_the_overflow_is_counted() {
    // Nobody takes this membership's claims inbox.
    let m = start("node-a", &[]).await;
    let mut pull = Vec::new();
    wire::encode_pull("node-x", 1, &mut pull).unwrap();
    let mut sealed = Vec::new();
    secret().seal_as(CLAIMS_MAGIC, &pull, &mut sealed);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The kernel drops what its socket buffer cannot hold (busy machine,
    // slow thread): send in small bounded rounds until the queue is full,
    // at most 20,000 datagrams and about 10 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for _ in 0..200 {
        for _ in 0..100 {
            socket.send_to(&sealed, m.local_addr()).unwrap();
        }
        if m.stats().heartbeat.claims_queue_full > 0 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = m.stats();
    assert!(stats.heartbeat.claims_queue_full > 0, "{stats:?}");
    // Gossip never saw them.
    assert_eq!(stats.received, 0);
}
