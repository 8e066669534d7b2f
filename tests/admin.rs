//! Admin and metadata against a real Kafka broker (`cargo xtask kafka up`).

use std::time::Duration;

use sluice::wire::admin::{Admin, NewTopic, OffsetSpec};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::{ErrorKind, KafkaCode};

const T: Duration = Duration::from_secs(30);

async fn admin() -> Admin {
    let cluster = Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .expect("connect to the test cluster");
    Admin::new(cluster)
}

#[tokio::test]
async fn create_describe_and_delete_a_topic() {
    let admin = admin().await;
    let topic = sluice_testkit::unique_topic("admin-create");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3)
                .replication_factor(1)
                .config("retention.ms", "3600000")],
            T,
        )
        .await
        .unwrap();

    let md = admin.cluster().metadata();
    let t = md.topic(&topic).expect("created topic is in the metadata");
    assert_eq!(t.partitions.len(), 3);
    assert_eq!(
        t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for p in &t.partitions {
        let leader = p.leader.expect("every partition has a leader");
        assert!(md.brokers.contains_key(&leader));
        assert_eq!(p.replicas.len(), 1);
        assert!(p.leader_epoch >= 0);
    }
    assert_ne!(t.topic_id, [0u8; 16]);

    // Creating it again is TOPIC_ALREADY_EXISTS, typed and not retriable.
    let err = admin
        .create_topics(&[NewTopic::new(&topic, 3)], T)
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::TopicAlreadyExists),
        "{err}"
    );
    assert!(!err.is_retriable());

    admin.delete_topics(&[&topic], T).await.unwrap();
    assert!(admin.cluster().metadata().topic(&topic).is_none());
    let err = admin.delete_topics(&[&topic], T).await.unwrap_err();
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::UnknownTopicOrPartition),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_topic_settings_are_typed_errors() {
    let admin = admin().await;
    let topic = sluice_testkit::unique_topic("admin-bad");
    let err = admin
        .create_topics(&[NewTopic::new(&topic, 1).replication_factor(50)], T)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Kafka);
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::InvalidReplicationFactor),
        "{err}"
    );
    let err = admin
        .create_topics(
            &[NewTopic::new(&topic, 1).config("cleanup.policy", "bogus")],
            T,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(KafkaCode::InvalidConfig), "{err}");
}

#[tokio::test]
async fn describe_cluster_matches_metadata() {
    let admin = admin().await;
    let d = admin.describe_cluster().await.unwrap();
    let md = admin.cluster().metadata();
    assert!(!d.cluster_id.is_empty());
    assert_eq!(Some(d.cluster_id.clone()), md.cluster_id);
    let mut ids: Vec<i32> = d.brokers.iter().map(|b| b.node_id).collect();
    ids.sort();
    assert_eq!(ids, md.brokers.keys().copied().collect::<Vec<_>>());
}

#[tokio::test]
async fn list_offsets_of_an_empty_topic() {
    let admin = admin().await;
    let topic = sluice_testkit::unique_topic("admin-offsets");
    admin
        .create_topics(&[NewTopic::new(&topic, 2)], T)
        .await
        .unwrap();
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        let offsets = admin.list_offsets(&topic, &[0, 1], spec).await.unwrap();
        assert_eq!(offsets.len(), 2);
        assert!(
            offsets.values().all(|o| o.offset == 0),
            "{spec:?}: {offsets:?}"
        );
    }
    let offsets = admin
        .list_offsets(&topic, &[0], OffsetSpec::Timestamp(0))
        .await
        .unwrap();
    assert_eq!(
        offsets[&0].offset, -1,
        "no record at or after ts 0 in an empty log"
    );
    let err = admin
        .list_offsets(&topic, &[7], OffsetSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTopicOrPartition, "{err}");
}

#[tokio::test]
async fn metadata_refreshes_on_a_timer() {
    let mut config = ClusterConfig::new(sluice_testkit::bootstrap());
    config.metadata_max_age = Duration::from_millis(200);
    let watcher = Cluster::connect(config).await.unwrap();
    let topic = sluice_testkit::unique_topic("admin-timer");
    assert!(watcher.metadata().topic(&topic).is_none());

    // Another client creates the topic; the watcher learns of it without asking.
    admin()
        .await
        .create_topics(&[NewTopic::new(&topic, 2)], T)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = watcher.metadata().topic(&topic) {
            assert_eq!(t.partitions.len(), 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timer refresh never saw {topic}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bootstrap_skips_dead_addresses() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let list = format!("{closed},{}", sluice_testkit::bootstrap());
    let cluster =
        Cluster::connect(ClusterConfig::new(&list).connect_timeout(Duration::from_secs(2)))
            .await
            .unwrap();
    assert!(!cluster.metadata().brokers.is_empty());
}

/// Lag counts every partition of the group's topics: a partition with no committed
/// offset lags from the log start (or, asked so, from the log end), and the total adds
/// it; two looks with no commit between them are a STOP; an unknown group is an error.
#[tokio::test]
async fn lag_counts_uncommitted_partitions_from_the_reset_point() {
    use sluice::wire::admin::lag::status::{LagEvaluator, LagStatus};
    use sluice::wire::admin::UncommittedFrom;
    use sluice::wire::consumer::{Consumer, ConsumerConfig, OffsetAndMetadata, TopicPartition};
    use sluice::wire::partition_client::{Acks, IsolationLevel, PartitionClient};
    use sluice::wire::records::{BatchOptions, RecordBatchBuilder};

    let admin = admin().await;
    let topic = sluice_testkit::unique_topic("admin-lag");
    admin
        .create_topics(&[NewTopic::new(&topic, 3)], T)
        .await
        .unwrap();
    // A current timestamp, so retention does not move the log start under the test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (p, n) in [(0, 10), (1, 6)] {
        let mut batch = RecordBatchBuilder::new(BatchOptions::default());
        for i in 0..n {
            batch
                .append(now, None, Some(format!("v{i}").as_bytes()), &[])
                .unwrap();
        }
        PartitionClient::new(admin.cluster().clone(), &topic, p)
            .produce(batch.finish().unwrap(), Acks::All, T)
            .await
            .unwrap();
    }
    let group = sluice_testkit::unique_topic("admin-lag-g");
    let mut config = ConsumerConfig::new(sluice_testkit::bootstrap());
    config.group_id = Some(group.clone());
    let consumer = Consumer::with_cluster(admin.cluster().clone(), config).unwrap();
    let p0 = TopicPartition::new(&topic, 0);
    consumer.assign([p0.clone()]).unwrap();
    consumer
        .commit(&[(p0, OffsetAndMetadata::new(4))].into_iter().collect())
        .await
        .unwrap();
    consumer.close().await.unwrap();

    let lag = admin
        .lag(&group, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    let rows: Vec<(i32, Option<i64>, i64, i64, i64)> = lag
        .partitions
        .iter()
        .map(|p| {
            let tp = &p.partition;
            (tp.partition, p.committed, p.position, p.log_end, p.lag)
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, Some(4), 4, 10, 6),
            (1, None, 0, 6, 6),
            (2, None, 0, 0, 0)
        ]
    );
    assert_eq!((lag.total, lag.uncommitted_total()), (12, 6));
    assert_eq!(lag.per_topic()[&topic], 12);

    let from_end = admin
        .lag_from(
            &group,
            IsolationLevel::ReadUncommitted,
            UncommittedFrom::Latest,
        )
        .await
        .unwrap();
    assert_eq!(from_end.total, 6, "{from_end:?}");

    // Two looks, nothing committed between them: partitions 0 and 1 stopped.
    let again = admin
        .lag(&group, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    let mut evaluator = LagEvaluator::new(2);
    for (at, lag) in [(1, &lag), (2, &again)] {
        for (tp, sample) in lag.samples(at) {
            evaluator.record(tp, sample);
        }
    }
    let status = evaluator.status();
    assert_eq!(status.status, LagStatus::Stop);
    assert_eq!(
        status
            .worst()
            .map(|p| p.partition.partition)
            .collect::<Vec<_>>(),
        [0, 1]
    );

    let err = admin
        .lag(
            &sluice_testkit::unique_topic("admin-lag-none"),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(KafkaCode::GroupIdNotFound), "{err}");
}
