//! `sluice_testkit::brokers()` kills, stops and restarts a node of the running cluster
//! (the last one; on a single-broker cluster that is the whole cluster, for a few
//! seconds). A restarted node answers and is registered again before `start` returns.
//! In its own test binary: no other test of this process runs while the node is down.

use std::time::{Duration, Instant};

#[test]
fn a_node_is_killed_stopped_and_restarted() {
    let brokers = sluice_testkit::brokers();
    let ids = brokers.node_ids();
    let node = *ids.last().unwrap();
    assert!(brokers.is_running(node));
    assert!(
        brokers.start(node).is_err(),
        "a running node cannot be started"
    );

    let started = Instant::now();
    brokers.kill(node).unwrap();
    assert!(!brokers.is_running(node));
    assert!(brokers.kill(node).is_err(), "a dead node cannot be killed");
    brokers.start(node).unwrap();
    eprintln!("node {node}: killed and back in {:?}", started.elapsed());
    assert!(brokers.is_running(node));
    assert!(brokers.admin().broker_ids().unwrap().contains(&node));

    let started = Instant::now();
    brokers.stop(node).unwrap();
    assert!(!brokers.is_running(node));
    brokers.start(node).unwrap();
    eprintln!("node {node}: stopped and back in {:?}", started.elapsed());

    // The node serves again: a topic it leads takes a leader, the group and transaction
    // coordinators answer (the offsets and transaction state topics are loaded), so the
    // tests after this one find a working cluster.
    let admin = brokers.admin();
    let topic = sluice_testkit::unique_topic("brokers-after");
    admin
        .create_topic(&topic, ids.len() as i32, -1, &[])
        .unwrap();
    admin
        .wait_until_isr_full(&topic, Duration::from_secs(60))
        .unwrap();
    let group = sluice_testkit::unique_topic("brokers-group");
    assert!(ids.contains(&admin.group_coordinator(&group).unwrap()));
    let txn = sluice_testkit::unique_topic("brokers-txn");
    assert!(ids.contains(&admin.txn_coordinator(&txn).unwrap()));
}

#[test]
#[should_panic(expected = "there is no node 0")]
fn unknown_nodes_are_refused() {
    sluice_testkit::brokers().is_running(0);
}
