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

/// R4 of the reliability issue: the broker leading a third of the partitions is killed
/// (-9) while a consumer reads them. Those partitions resume within 5 s of their new
/// leader's election (they used to sit for 80-250 s, until the dead broker came back),
/// reconnect attempts to the dead broker back off (at most about one a second), and at
/// the end every record produced meanwhile arrived once, in order per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_follows_new_leaders_when_a_broker_is_killed() {
    use std::collections::BTreeMap;

    use sluice::wire::cluster::{Cluster, ClusterConfig};
    use sluice::wire::consumer::{Consumer, ConsumerConfig, OffsetReset, TopicPartition};
    use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};

    const PARTITIONS: i32 = 6;
    let down_for = Duration::from_secs(
        std::env::var("SLUICE_FAILOVER_DOWN_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let brokers = three_brokers();
    let admin = brokers.admin();
    let topic = sluice_testkit::unique_topic("failover-consume");
    admin
        .create_topic(&topic, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .unwrap();
    let bootstrap = brokers.bootstrap();

    // A producer writing keyed records to every partition the whole time.
    let producer = Producer::new(
        ProducerConfig::new(bootstrap.clone())
            .linger(Duration::from_millis(5))
            .delivery_timeout(Duration::from_secs(120)),
    )
    .await
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (topic, stop) = (topic.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut pending = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for _ in 0..20 {
                    let p = (sent % PARTITIONS as u64) as i32;
                    let record = ProducerRecord::new(&topic, format!("{sent:09}")).partition(p);
                    pending.push(producer.send(record).await.expect("send"));
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                if pending.len() >= 400 {
                    for d in pending.drain(..) {
                        d.await.expect("delivered despite the broker kill");
                    }
                }
            }
            for d in pending {
                d.await.expect("delivered");
            }
            producer.close(Duration::from_secs(60)).await.unwrap();
            sent
        })
    };

    let cluster = Cluster::connect(ClusterConfig::new(&bootstrap))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new("unused")
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    config.cluster = cluster.config().clone();
    let consumer = Consumer::with_cluster(cluster.clone(), config).unwrap();
    consumer
        .assign((0..PARTITIONS).map(|p| TopicPartition::new(&topic, p)))
        .unwrap();
    let mut by_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    let mut last_seen: BTreeMap<i32, Instant> = BTreeMap::new();
    let take = |r: sluice::wire::consumer::ConsumerRecord,
                by: &mut BTreeMap<i32, Vec<u64>>,
                seen: &mut BTreeMap<i32, Instant>| {
        let v: u64 = std::str::from_utf8(r.value().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        by.entry(r.partition()).or_default().push(v);
        seen.insert(r.partition(), Instant::now());
    };
    // Warm up: every partition delivers.
    let warm = Instant::now();
    while last_seen.len() < PARTITIONS as usize {
        assert!(warm.elapsed() < Duration::from_secs(60), "warm-up");
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            take(r.unwrap(), &mut by_partition, &mut last_seen);
        }
    }

    let victim = tokio::task::block_in_place(|| admin.leader_of(&topic, 0).unwrap().unwrap());
    let victim_partitions: Vec<i32> = (0..PARTITIONS)
        .filter(|p| {
            tokio::task::block_in_place(|| admin.leader_of(&topic, *p).unwrap()) == Some(victim)
        })
        .collect();
    let attempts_before = cluster.connect_attempts(victim);
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| brokers.kill(victim).unwrap());
    // Elections happen in the background of the test; note when each partition got its
    // new leader, while the consumer keeps reading.
    let elections = {
        let admin = sluice_testkit::Admin::new(&bootstrap);
        let (topic, parts) = (topic.clone(), victim_partitions.clone());
        tokio::task::spawn_blocking(move || {
            parts
                .iter()
                .map(|&p| {
                    admin
                        .wait_for_leader(&topic, p, Some(victim), Duration::from_secs(30))
                        .unwrap();
                    (p, Instant::now())
                })
                .collect::<BTreeMap<i32, Instant>>()
        })
    };
    let mut resumed: BTreeMap<i32, Instant> = BTreeMap::new();
    while killed_at.elapsed() < down_for {
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            let r = r.expect("recv while a broker is down");
            let p = r.partition();
            take(r, &mut by_partition, &mut last_seen);
            if victim_partitions.contains(&p) {
                resumed.entry(p).or_insert_with(Instant::now);
            }
        }
    }
    let elected = elections.await.unwrap();
    let attempts_down = cluster.connect_attempts(victim) - attempts_before;
    let mut worst = Duration::ZERO;
    for p in &victim_partitions {
        let e = elected[p];
        let r = *resumed
            .get(p)
            .unwrap_or_else(|| panic!("partition {p} never resumed"));
        let stall = r.saturating_duration_since(e);
        worst = worst.max(stall);
        assert!(
            stall < Duration::from_secs(5),
            "partition {p} resumed {stall:?} after its election"
        );
    }
    let max_attempts = down_for.as_secs() + 10;
    assert!(
        attempts_down <= max_attempts,
        "{attempts_down} connects to the dead broker in {down_for:?}: no backoff"
    );

    tokio::task::block_in_place(|| {
        brokers.start(victim).unwrap();
        admin
            .wait_until_isr_full(&topic, Duration::from_secs(120))
            .unwrap();
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while by_partition.values().map(Vec::len).sum::<usize>() < sent as usize {
        assert!(Instant::now() < deadline, "not everything arrived");
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            take(r.unwrap(), &mut by_partition, &mut last_seen);
        }
    }
    let received: usize = by_partition.values().map(Vec::len).sum();
    assert_eq!(received as u64, sent, "duplicates");
    let mut all: Vec<u64> = by_partition.values().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, sent, "lost records");
    for (p, values) in &by_partition {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "order in partition {p}"
        );
    }
    consumer.close().await.unwrap();
    println!(
        "R4: broker {victim} (leading {victim_partitions:?}) down {down_for:?}: worst resume \
         {worst:?} after election, {attempts_down} connect attempts to it, {sent} records, \
         0 lost, 0 duplicated"
    );
}
