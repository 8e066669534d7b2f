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
