use super::*;
use proptest::prelude::*;

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(ns, name)
}

fn message(held: Option<BTreeSet<ObjectKey>>) -> Message<ObjectKey> {
    Message {
        epoch: 7,
        seq: 3,
        settling: false,
        held,
        reply: true,
    }
}

fn services(n: usize) -> BTreeSet<ObjectKey> {
    (0..n)
        .map(|i| key(&format!("team-{}", i % 37), &format!("service-{i:05}")))
        .collect()
}

fn chunk(payload: &[u8]) -> Chunk<'_> {
    match decode(payload).unwrap().frame {
        Frame::Chunk(c) => c,
        other => panic!("not a chunk: {other:?}"),
    }
}

/// Feeds every payload to a fresh reassembly; every delivery.
fn deliver(payloads: &[Vec<u8>]) -> Vec<Message<ObjectKey>> {
    let mut r = Reassembly::new();
    payloads
        .iter()
        .filter_map(|p| r.push(&chunk(p)).ok().flatten())
        .collect()
}

#[test]
fn a_digest_and_a_pull_have_the_documented_bytes() {
    let mut out = Vec::new();
    encode_digest("n1", 0x0102, 5, 6, true, &mut out).unwrap();
    let mut want = vec![2, 2, b'n', b'1', 0, 0, 0, 0, 0, 0, 1, 2];
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6, 1]);
    assert_eq!(out, want);
    let d = decode(&out).unwrap();
    assert_eq!((d.from, d.boot), ("n1", 0x0102));
    assert_eq!(
        d.frame,
        Frame::Digest {
            epoch: 5,
            seq: 6,
            settling: true
        }
    );
    encode_pull("n1", 9, &mut out).unwrap();
    assert_eq!(out, [3, 2, b'n', b'1', 0, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(decode(&out).unwrap().frame, Frame::Pull);
}

#[test]
fn a_chunk_has_the_documented_bytes() {
    let m = Message {
        epoch: 1,
        seq: 2,
        settling: true,
        held: Some([key("ns", "a")].into()),
        reply: false,
    };
    let payloads = encode_claims("n", 4, 3, &m).unwrap();
    let mut want = vec![1, 1, b'n', 0, 0, 0, 0, 0, 0, 0, 4];
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
    want.extend_from_slice(&[0b101, 0, 0, 0, 1, 0, 1]);
    want.extend_from_slice(&[2, b'n', b's', 1, b'a']);
    assert_eq!(payloads, [want]);
}

#[test]
fn held_none_and_some_empty_stay_apart() {
    for held in [None, Some(BTreeSet::new())] {
        let payloads = encode_claims("node-a", 1, 1, &message(held.clone())).unwrap();
        assert_eq!(payloads.len(), 1);
        assert_eq!(deliver(&payloads), [message(held)]);
    }
}

#[test]
fn ten_thousand_services_round_trip_in_datagram_sized_chunks() {
    let m = message(Some(services(10_000)));
    let payloads = encode_claims("node-a", 1, 1, &m).unwrap();
    assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
    // 22 bytes a key, about 1,320 bytes of keys a chunk: 167 or 168.
    assert!((160..175).contains(&payloads.len()), "{}", payloads.len());
    assert_eq!(deliver(&payloads), [m]);
}

#[test]
fn a_missing_chunk_delivers_nothing() {
    let payloads = encode_claims("node-a", 1, 1, &message(Some(services(500)))).unwrap();
    assert!(payloads.len() > 2);
    for missing in 0..payloads.len() {
        let mut some = payloads.clone();
        some.remove(missing);
        assert!(
            deliver(&some).is_empty(),
            "delivered without chunk {missing}"
        );
    }
}

#[test]
fn a_newer_version_replaces_an_older_partial_one() {
    let old = message(Some(services(300)));
    let new = Message {
        seq: 4,
        held: Some(services(200)),
        ..old.clone()
    };
    let old_p = encode_claims("node-a", 1, 1, &old).unwrap();
    let new_p = encode_claims("node-a", 1, 2, &new).unwrap();
    let mut r = Reassembly::new();
    assert_eq!(r.push(&chunk(&old_p[0])), Ok(None));
    assert_eq!(r.push(&chunk(&new_p[0])), Ok(None));
    // The rest of the old version is too late now.
    for p in &old_p[1..] {
        assert_eq!(r.push(&chunk(p)), Err(Refused::Stale));
    }
    let mut got = None;
    for p in &new_p[1..] {
        got = got.or(r.push(&chunk(p)).unwrap());
    }
    assert_eq!(got, Some(new));
    assert!(!r.in_progress());
}

#[test]
fn a_version_sent_again_is_delivered_again_but_a_replay_is_not() {
    let m = message(Some(services(100)));
    let first = encode_claims("node-a", 1, 1, &m).unwrap();
    let again = encode_claims("node-a", 1, 2, &m).unwrap();
    let mut r = Reassembly::new();
    let mut delivered = 0;
    for p in first.iter().chain(&first).chain(&again).chain(&first) {
        if let Ok(Some(got)) = r.push(&chunk(p)) {
            assert_eq!(got, m);
            delivered += 1;
        }
    }
    assert_eq!(delivered, 2);
}

#[test]
fn a_chunk_that_disagrees_with_its_transmission_is_refused() {
    let m = message(Some(services(200)));
    let payloads = encode_claims("node-a", 1, 1, &m).unwrap();
    let other = encode_claims(
        "node-a",
        1,
        1,
        &Message {
            settling: true,
            ..m.clone()
        },
    )
    .unwrap();
    let mut r = Reassembly::new();
    assert_eq!(r.push(&chunk(&payloads[0])), Ok(None));
    assert_eq!(r.push(&chunk(&other[1])), Err(Refused::Inconsistent));
}

#[test]
fn a_transmission_beyond_the_byte_bound_is_given_up() {
    let big = vec![0u8; MAX_PAYLOAD];
    let mut r = Reassembly::new();
    let total = u16::try_from(MAX_CHUNKS).unwrap();
    let mut refused = None;
    for index in 0..total {
        let c = Chunk {
            epoch: 1,
            seq: 1,
            send: 1,
            settling: false,
            reply: false,
            held: true,
            index,
            total,
            count: 0,
            keys: &big,
        };
        if let Err(e) = r.push(&c) {
            refused = Some((index, e));
            break;
        }
    }
    let (index, e) = refused.expect("the bound was never hit");
    assert_eq!(e, Refused::TooLarge);
    assert_eq!(usize::from(index), MAX_VERSION_BYTES / MAX_PAYLOAD);
    assert!(!r.in_progress());
}

#[test]
fn names_beyond_kubernetes_limits_are_neither_sent_nor_taken() {
    let long_ns = "n".repeat(MAX_NAMESPACE + 1);
    let m = message(Some([key(&long_ns, "a")].into()));
    assert!(matches!(
        encode_claims("node-a", 1, 1, &m),
        Err(Unencodable::Key(_))
    ));
    let m = message(Some([key("ns", "")].into()));
    assert!(encode_claims("node-a", 1, 1, &m).is_err());
    assert_eq!(
        encode_pull("", 1, &mut Vec::new()),
        Err(Unencodable::NodeName(0))
    );
    assert!(encode_pull(&"x".repeat(254), 1, &mut Vec::new()).is_err());
    // A namespace of 64 bytes, written by hand.
    let ok = encode_claims("n", 1, 1, &message(Some([key("ns", "a")].into()))).unwrap();
    let mut bad = ok[0][..ok[0].len() - 5].to_vec();
    bad.push(64);
    bad.extend_from_slice(&[b'n'; 64]);
    bad.extend_from_slice(&[1, b'a']);
    assert_eq!(decode(&bad), Err(Malformed::Name));
}

#[test]
fn more_chunks_than_the_bound_are_not_encoded() {
    // Longest keys: 4 a chunk.
    let held = (0..MAX_CHUNKS * 4 + 1)
        .map(|i| key(&"n".repeat(MAX_NAMESPACE), &format!("{i:0>253}")))
        .collect();
    assert!(matches!(
        encode_claims("node-a", 1, 1, &message(Some(held))),
        Err(Unencodable::TooManyChunks(n)) if n > MAX_CHUNKS
    ));
}

#[test]
fn bad_numbering_flags_and_kinds_are_refused() {
    let ok = encode_claims("n", 1, 1, &message(Some(BTreeSet::new()))).unwrap();
    let p = &ok[0];
    // Offsets: common 11 bytes, then epoch, seq, send (24), flags at 35,
    // index 36..38, total 38..40.
    let mut bad = p.clone();
    bad[35] |= 0x80;
    assert_eq!(decode(&bad), Err(Malformed::Flags));
    let mut bad = p.clone();
    bad[37] = 1; // index 1 of 1
    assert_eq!(decode(&bad), Err(Malformed::Numbering));
    let mut bad = p.clone();
    bad[39] = 0; // total 0
    assert_eq!(decode(&bad), Err(Malformed::Numbering));
    let mut bad = p.clone();
    bad[38] = 0x10; // total 4097
    bad[39] = 1;
    assert_eq!(decode(&bad), Err(Malformed::Numbering));
    let mut none = encode_claims("n", 1, 1, &message(None)).unwrap().remove(0);
    none[39] = 2; // held: None in two chunks
    assert_eq!(decode(&none), Err(Malformed::Flags));
    let mut bad = p.clone();
    bad[0] = 9;
    assert_eq!(decode(&bad), Err(Malformed::Kind(9)));
    let mut longer = p.clone();
    longer.push(0);
    assert_eq!(decode(&longer), Err(Malformed::Trailing));
    let mut not_utf8 = p.clone();
    not_utf8[2] = 0xff;
    assert_eq!(decode(&not_utf8), Err(Malformed::Name));
}

fn arb_key() -> impl Strategy<Value = ObjectKey> {
    ("[a-z0-9-]{0,63}", "[a-z0-9.-]{1,253}").prop_map(|(ns, name)| key(&ns, &name))
}

fn arb_message() -> impl Strategy<Value = Message<ObjectKey>> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(proptest::collection::btree_set(arb_key(), 0..300)),
    )
        .prop_map(|(epoch, seq, settling, reply, held)| Message {
            epoch,
            seq,
            settling,
            held,
            reply,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunks_in_any_order_and_duplicated_deliver_the_version_exactly_once(
        m in arb_message(),
        send in any::<u64>(),
        seed in any::<u64>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let payloads = encode_claims("node-b", 42, send, &m).unwrap();
        prop_assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let mut order: Vec<Vec<u8>> = payloads.clone();
        for d in &dups {
            order.push(payloads[d.index(payloads.len())].clone());
        }
        // A seeded shuffle (Fisher-Yates with an LCG).
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = usize::try_from((x >> 33) % (i as u64 + 1)).unwrap();
            order.swap(i, j);
        }
        for p in &order {
            let d = decode(p).unwrap();
            prop_assert_eq!((d.from, d.boot), ("node-b", 42));
        }
        prop_assert_eq!(deliver(&order), vec![m]);
    }

    #[test]
    fn every_truncation_is_refused(m in arb_message(), epoch in any::<u64>(), seq in any::<u64>()) {
        let mut payloads = encode_claims("node-c", 1, 1, &m).unwrap();
        let mut out = Vec::new();
        encode_digest("node-c", 1, epoch, seq, m.settling, &mut out).unwrap();
        payloads.push(out.clone());
        encode_pull("node-c", 1, &mut out).unwrap();
        payloads.push(out);
        for p in payloads.iter().take(3).chain(payloads.iter().rev().take(2)) {
            prop_assert!(decode(p).is_ok());
            for len in 0..p.len() {
                prop_assert!(decode(&p[..len]).is_err(), "prefix of {} bytes accepted", len);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        if let Ok(Datagram { frame: Frame::Chunk(c), .. }) = decode(&bytes) {
            let mut r = Reassembly::new();
            let _ = r.push(&c);
            prop_assert!(keys(&c).all(|k| k.is_ok()));
        }
    }

    #[test]
    fn random_bodies_after_a_valid_header_never_panic(
        kind in 0u8..5,
        body in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut p = vec![kind, 1, b'n', 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&body);
        if let Ok(Datagram { frame: Frame::Chunk(c), .. }) = decode(&p) {
            let mut r = Reassembly::new();
            let _ = r.push(&c);
            prop_assert!(keys(&c).all(|k| k.is_ok()));
        }
    }

    #[test]
    fn mutated_chunks_never_panic(
        m in arb_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let payloads = encode_claims("node-d", 1, 1, &m).unwrap();
        let mut r = Reassembly::new();
        for p in &payloads {
            let mut p = p.clone();
            for (i, v) in &flips {
                let i = i.index(p.len());
                p[i] ^= v;
            }
            if let Ok(Datagram { frame: Frame::Chunk(c), .. }) = decode(&p) {
                let _ = r.push(&c);
            }
        }
    }
}
