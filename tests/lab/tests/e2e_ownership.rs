//! End-to-end, issue 15's promise: IPs stay put. With every speaker in
//! sticky mode (`FERROLB_OWNERSHIP=sticky`), a node that dies (switch port
//! down, speaker SIGKILLed) and returns takes no IP back: its IPs moved
//! once, to the survivors, and stay there. Owners are the MACs answering
//! the client's who-has for each of 30 IPv4 Services
//! ([`ferrolb_lab::ownership`], the bench's code). Until the speaker
//! implements `--ownership` it ignores the variable and places by hash,
//! and this test fails (about a third of the IPs go back). Root only, like
//! every lab test; every wait is bounded and the lab's namespaces go when
//! the cluster drops, a failed test included.

#[allow(dead_code)]
mod common;

use ferrolb_lab::cluster::Options;
use ferrolb_lab::ownership::{self, Mode};

const PORT: u16 = 8080;
const SERVICES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_node_that_dies_and_returns_takes_no_ip_back() {
    let test = "a_node_that_dies_and_returns_takes_no_ip_back";
    let opts = Options {
        prefix: "flbown".into(),
        speaker_env: vec![Mode::Sticky.env()],
        ..Options::default()
    };
    let (_g, mut c) = common::lab_with(test, opts).await;
    let services = ownership::create_services(&c, "svc", SERVICES, PORT)
        .await
        .expect("30 Services get an IP");
    let r = ownership::node_return(&mut c, &services, PORT)
        .await
        .expect("the node dies, every IP is served again, the node returns");
    let explain = format!(
        "{} died and returned; IPs per node before {:?}, after the takeover {:?}, after the \
         return {:?}; moved on the return: {:?} (speaker logs in {})",
        r.node,
        r.before,
        r.after_failover,
        r.after_return,
        r.moved,
        c.dir().display()
    );
    assert!(r.before[&r.node] > 0, "the dead node owned IPs: {explain}");
    assert_eq!(
        r.moved_back, 0,
        "IPs went back to the returned node: {explain}"
    );
    assert_eq!(r.after_return[&r.node], 0, "{explain}");
    assert!(r.moved.is_empty(), "IPs moved on a return: {explain}");
    assert!(c.dead_children().is_empty());
}
