//! The cluster queries of `sluice_testkit::admin()` against the running cluster (one
//! broker or three): topic creation with configs, leaders, coordinators, elections and
//! ISR waits all answer with ids of registered brokers.

use std::time::Duration;

use sluice_testkit::ElectionType;

#[test]
fn topics_leaders_coordinators_and_elections() {
    let admin = sluice_testkit::admin();
    let brokers = admin.broker_ids().unwrap();
    assert!(!brokers.is_empty());
    let topic = sluice_testkit::unique_topic("admin-queries");
    let min_isr = if brokers.len() >= 3 { "2" } else { "1" };
    admin
        .create_topic(&topic, 3, -1, &[("min.insync.replicas", min_isr)])
        .unwrap();
    let err = admin.create_topic(&topic, 3, -1, &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("error code 36"),
        "TOPIC_ALREADY_EXISTS: {err:#}"
    );

    let partitions = admin.partitions(&topic).unwrap();
    assert_eq!(partitions.len(), 3);
    for p in &partitions {
        // default.replication.factor follows the cluster size (3 for three brokers).
        assert_eq!(p.replicas.len(), brokers.len().min(3), "{p:?}");
        let leader = admin.leader_of(&topic, p.partition).unwrap().unwrap();
        assert!(brokers.contains(&leader));
        assert!(p.replicas.contains(&leader));
    }
    admin
        .wait_until_isr_full(&topic, Duration::from_secs(30))
        .unwrap();
    assert_eq!(admin.under_replicated(&topic).unwrap(), Vec::<i32>::new());

    // Leaders are the preferred replicas already: nothing to elect, which is no error.
    admin.elect_preferred_leaders(&topic).unwrap();
    let codes = admin
        .elect_leaders(&topic, ElectionType::Preferred)
        .unwrap();
    assert_eq!(codes, [(0, 84), (1, 84), (2, 84)], "ELECTION_NOT_NEEDED");
    // Every partition has a leader: an unclean election has nothing to do either.
    admin.elect_unclean_leaders(&topic).unwrap();

    let group = sluice_testkit::unique_topic("admin-group");
    assert!(brokers.contains(&admin.group_coordinator(&group).unwrap()));
    let txn = sluice_testkit::unique_topic("admin-txn");
    assert!(brokers.contains(&admin.txn_coordinator(&txn).unwrap()));

    assert!(admin.leader_of(&topic, 7).is_err(), "no partition 7");
    admin.delete_topic(&topic).unwrap();
}
