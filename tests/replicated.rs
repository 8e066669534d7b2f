//! Failover against a cluster of three brokers, each topic replicated three times with
//! `min.insync.replicas=2`. Built only with the `replicated` feature, which
//! `cargo xtask test --brokers 3` turns on; CI runs this file alone:
//!
//! ```text
//! cargo xtask test --brokers 3 --no-security -- --test replicated
//! ```
//!
//! Every test takes the cluster's [`sluice_testkit::Brokers`] first (through
//! [`three_brokers`]): that makes the tests of this file run one at a time, and dropping
//! it restarts any node a test left down, so the next test finds the whole cluster.

use std::time::{Duration, Instant};

use sluice_testkit::Brokers;

/// The cluster's brokers; fails at once, saying how to start them, with fewer than three.
fn three_brokers() -> Brokers {
    let brokers = sluice_testkit::brokers();
    let registered = brokers.admin().broker_ids().unwrap();
    assert!(
        brokers.node_ids().len() >= 3 && registered.len() >= 3,
        "tests/replicated.rs needs three brokers, the cluster has nodes {:?} ({registered:?} \
         registered): run `cargo xtask test --brokers 3 -- --test replicated`",
        brokers.node_ids()
    );
    brokers
}

/// Kill the leader of a partition (SIGKILL, no controlled shutdown): another replica
/// takes over within 15 s, records acknowledged before and after survive, and the
/// restarted node catches up and rejoins the ISR.
#[test]
fn a_killed_leader_is_replaced_and_rejoins_the_isr() {
    let brokers = three_brokers();
    let admin = brokers.admin();
    let topic = sluice_testkit::unique_topic("replicated-smoke");
    // The broker's default replication factor (3), and min.insync.replicas=2 spelled out.
    admin
        .create_topic(&topic, 1, -1, &[("min.insync.replicas", "2")])
        .unwrap();
    admin
        .wait_until_isr_full(&topic, Duration::from_secs(30))
        .unwrap();
    let before = admin.partition(&topic, 0).unwrap();
    assert_eq!(before.replicas.len(), 3, "{before:?}");

    let bootstrap = brokers.bootstrap();
    sluice_testkit::console_produce(&bootstrap, &topic, ["k1\tbefore-1", "k2\tbefore-2"], true)
        .unwrap();

    let leader = before.leader.expect("a leader");
    let killed = Instant::now();
    brokers.kill(leader).unwrap();
    let new_leader = admin
        .wait_for_leader(&topic, 0, Some(leader), Duration::from_secs(15))
        .unwrap();
    eprintln!(
        "{topic}-0: leader {leader} killed, node {new_leader} leads after {:?}",
        killed.elapsed()
    );
    assert!(brokers.is_running(new_leader));
    let during = admin.partition(&topic, 0).unwrap();
    assert!(
        !during.isr.contains(&leader),
        "the dead node left the ISR: {during:?}"
    );
    assert!(during.leader_epoch > before.leader_epoch);

    // Two replicas in sync satisfy min.insync.replicas=2: acks=all writes go on.
    sluice_testkit::console_produce(&bootstrap, &topic, ["k3\tduring"], true).unwrap();

    let restarted = Instant::now();
    brokers.start(leader).unwrap();
    admin
        .wait_until_in_isr(&topic, 0, leader, Duration::from_secs(60))
        .unwrap();
    eprintln!(
        "{topic}-0: node {leader} restarted and back in the ISR after {:?}",
        restarted.elapsed()
    );
    admin
        .wait_until_isr_full(&topic, Duration::from_secs(30))
        .unwrap();

    let got =
        sluice_testkit::console_consume(&bootstrap, &topic, 3, Duration::from_secs(20)).unwrap();
    assert_eq!(
        got,
        [
            "NO_HEADERS\tk1\tbefore-1",
            "NO_HEADERS\tk2\tbefore-2",
            "NO_HEADERS\tk3\tduring"
        ]
    );
}
