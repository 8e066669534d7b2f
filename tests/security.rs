//! TLS and SASL against a real secured broker (`cargo xtask kafka up --security`, which
//! `cargo xtask test` starts): every listener and mechanism carries produce, consume,
//! group commits and a transaction; wrong credentials, untrusted, expired and misnamed
//! certificates, listener mismatches and missing ACLs give typed errors within their
//! deadlines; sessions re-authenticate (KIP-368) under load with nothing lost or
//! duplicated; the Java console tools read what Sluice wrote over SASL_SSL, and the
//! reverse.
//!
//! Every client here is configured with the very Java properties a Java client uses for
//! the same listener (`Secured::java_props`), so the tests also show those port over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{Consumer, ConsumerConfig, OffsetReset};
use sluice::wire::net::{BrokerConnection, ConnectionConfig};
use sluice::wire::partition_client::IsolationLevel;
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::{Error, ErrorKind, KafkaCode};
use sluice_testkit::{secured, SaslMechanism, Secured};

const T: Duration = Duration::from_secs(30);

type Props = Vec<(String, String)>;

fn cluster_config(bootstrap: &str, props: &Props) -> ClusterConfig {
    let mut config = ClusterConfig::new(bootstrap).connect_timeout(Duration::from_secs(10));
    for (k, v) in props {
        config.set(k, v).expect("a valid cluster security property");
    }
    config
}

async fn connect(bootstrap: &str, props: &Props) -> Result<Cluster, Error> {
    Cluster::connect(cluster_config(bootstrap, props)).await
}

async fn new_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = sluice_testkit::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(&topic, partitions)], T)
        .await
        .expect("create topic");
    topic
}

fn consumer_config(cluster: &Cluster, group: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new("unused")
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        // Ten consumers join at once on two loaded cores: room for a late heartbeat.
        .session_timeout(Duration::from_secs(15))
        .heartbeat_interval(Duration::from_secs(1))
        .fetch_max_wait(Duration::from_millis(100))
        .isolation_level(IsolationLevel::ReadCommitted);
    c.cluster = cluster.config().clone();
    c
}

/// Idempotent produce, a committed transaction, a read_committed group consumer that
/// commits: all over one listener (and mechanism).
async fn full_round(s: &Secured, listener: &str, mechanism: Option<SaslMechanism>) {
    let what = format!("{listener}/{mechanism:?}");
    let props = s.java_props(listener, mechanism, "admin");
    let cluster = connect(&s.listener(listener), &props)
        .await
        .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    let topic = new_topic(&cluster, "sec", 2).await;

    let producer = Producer::with_cluster(
        cluster.clone(),
        ProducerConfig::default().enable_idempotence(true),
    )
    .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..50 {
        let record = ProducerRecord::new(&topic, format!("plain-{i:02}")).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.unwrap_or_else(|e| panic!("{what}: delivery: {e}"));
    }
    producer.close(T).await.expect("close");

    let txn = Producer::with_cluster(
        cluster.clone(),
        ProducerConfig::default()
            .transactional_id(sluice_testkit::unique_topic("sec-txn"))
            .transaction_timeout(Duration::from_secs(20)),
    )
    .expect("transactional producer");
    txn.init_transactions()
        .await
        .unwrap_or_else(|e| panic!("{what}: init_transactions: {e}"));
    txn.begin().await.expect("begin");
    for i in 0..10 {
        let _delivery = txn
            .send(ProducerRecord::new(&topic, format!("txn-{i:02}")).partition(i % 2))
            .await
            .expect("send in transaction");
    }
    txn.commit()
        .await
        .unwrap_or_else(|e| panic!("{what}: commit: {e}"));
    txn.close(T).await.expect("close");

    let group = sluice_testkit::unique_topic("sec-group");
    let consumer =
        Consumer::with_cluster(cluster.clone(), consumer_config(&cluster, &group)).unwrap();
    consumer.subscribe([topic.clone()]).unwrap();
    let mut seen = BTreeSet::new();
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while seen.len() < 60 {
            let r = consumer.recv().await.expect("recv");
            next_offset.insert(r.partition(), r.offset() + 1);
            let v = String::from_utf8_lossy(r.value().expect("a value")).into_owned();
            assert!(seen.insert(v.clone()), "{what}: {v} twice");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: only {} of 60 records", seen.len()));
    consumer
        .commit_positions()
        .await
        .unwrap_or_else(|e| panic!("{what}: commit: {e}"));
    let parts: Vec<_> = consumer.assignment().into_iter().collect();
    let committed = consumer.committed(&parts).await.expect("committed");
    // What was processed is committed: at least past the last record read of each
    // partition, at most past the transaction's marker (62 offsets in all).
    let mut total = 0;
    for (tp, o) in &committed {
        let offset = o.as_ref().map_or(0, |o| o.offset);
        let processed = next_offset.get(&tp.partition).copied().unwrap_or(0);
        assert!(
            offset >= processed,
            "{what}: {tp:?} committed {offset} < {processed}"
        );
        total += offset;
    }
    assert!(
        (60..=62).contains(&total),
        "{what}: committed offsets {committed:?}"
    );
    consumer.close().await.expect("close");
    let expected: BTreeSet<String> = (0..50)
        .map(|i| format!("plain-{i:02}"))
        .chain((0..10).map(|i| format!("txn-{i:02}")))
        .collect();
    assert_eq!(seen, expected, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_and_mechanism_carries_produce_consume_commit_and_transactions() {
    let s = secured();
    let mut rounds = vec![full_round(&s, "SSL", None), full_round(&s, "MTLS", None)];
    for listener in ["SASL_PLAINTEXT", "SASL_SSL"] {
        for m in SaslMechanism::ALL {
            rounds.push(full_round(&s, listener, Some(m)));
        }
    }
    join_all(rounds).await;
}

/// Asserts `result` failed with `kind` within `within`, its message containing every
/// one of `words`.
fn assert_fails<T: std::fmt::Debug>(
    result: Result<T, Error>,
    started: Instant,
    within: Duration,
    kind: ErrorKind,
    words: &[&str],
) -> Error {
    let elapsed = started.elapsed();
    let e = result.expect_err("should fail");
    assert_eq!(e.kind(), kind, "{e}");
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
    assert!(elapsed < within, "took {elapsed:?} (>= {within:?}): {e}");
    assert!(!e.is_retriable(), "{e}");
    e
}

#[tokio::test]
async fn wrong_credentials_fail_fast_with_an_authentication_error() {
    let s = secured();
    for m in SaslMechanism::ALL {
        if m == SaslMechanism::OAuthBearer {
            continue; // the unsecured validator accepts any subject
        }
        for (user, password) in [("admin", "wrong-password"), ("nobody", "whatever")] {
            let props = s.java_props_with_password("SASL_SSL", Some(m), user, password);
            let started = Instant::now();
            let e = assert_fails(
                connect(&s.sasl_ssl(), &props).await,
                started,
                Duration::from_secs(10),
                ErrorKind::Authentication,
                &[m.name(), "authentication", &s.sasl_ssl()],
            );
            assert!(e.is_fatal());
            assert!(!e.to_string().contains(password), "{e}");
        }
    }
}

#[tokio::test]
async fn untrusted_expired_and_misnamed_certificates_are_tls_errors() {
    let s = secured();
    let ca = s.ca_pem().display().to_string();
    let other = s.other_ca_pem().display().to_string();
    let tls = |ca: &str| -> Props {
        vec![
            ("security.protocol".into(), "SSL".into()),
            ("ssl.ca.location".into(), ca.into()),
        ]
    };
    for (bootstrap, props, words) in [
        (s.ssl(), tls(&other), vec!["unknown issuer"]),
        (s.expired(), tls(&ca), vec!["expired"]),
        (s.wrong_name(), tls(&ca), vec!["name mismatch", "127.0.0.1"]),
        (s.mtls(), tls(&ca), vec!["client certificate"]),
    ] {
        let started = Instant::now();
        let e = assert_fails(
            connect(&bootstrap, &props).await,
            started,
            Duration::from_secs(10),
            ErrorKind::Tls,
            &words,
        );
        let first = bootstrap.split(',').next().unwrap_or_default();
        assert!(e.to_string().contains(first), "{e}");
        assert!(e.is_fatal());
    }
    // Without hostname verification the misnamed certificate is accepted (the chain
    // is still checked: the expired one is not).
    let mut no_names = tls(&ca);
    no_names.push(("ssl.endpoint.identification.algorithm".into(), "".into()));
    connect(&s.wrong_name(), &no_names)
        .await
        .expect("misnamed certificate without hostname verification");
    assert!(connect(&s.expired(), &no_names).await.is_err());
}

#[tokio::test]
async fn listener_mismatches_say_so_at_once() {
    let s = secured();
    let ca = s.ca_pem().display().to_string();
    let plaintext: Props = vec![];
    let ssl: Props = vec![
        ("security.protocol".into(), "SSL".into()),
        ("ssl.ca.location".into(), ca),
    ];
    let sasl = s.java_props("SASL_PLAINTEXT", Some(SaslMechanism::Plain), "admin");
    for (bootstrap, props, kind, words) in [
        // A plaintext client on a TLS port.
        (
            s.ssl(),
            &plaintext,
            ErrorKind::Protocol,
            vec!["security.protocol=SSL"],
        ),
        // A TLS client on a plaintext port.
        (s.plaintext(), &ssl, ErrorKind::Tls, vec!["PLAINTEXT"]),
        // A SASL client on a listener without SASL.
        (
            s.plaintext(),
            &sasl,
            ErrorKind::Authentication,
            vec!["does not speak SASL"],
        ),
        // A plaintext client on a SASL port: the broker wants a SaslHandshake first.
    ] {
        let started = Instant::now();
        assert_fails(
            connect(&bootstrap, props).await,
            started,
            Duration::from_secs(5),
            kind,
            &words,
        );
    }
}

#[tokio::test]
async fn a_principal_without_acls_gets_fatal_authorization_errors() {
    let s = secured();
    let admin = connect(
        &s.sasl_plaintext(),
        &s.java_props("SASL_PLAINTEXT", Some(SaslMechanism::ScramSha256), "admin"),
    )
    .await
    .expect("admin");
    let topic = new_topic(&admin, "sec-acl", 1).await;
    let mallory = connect(
        &s.sasl_plaintext(),
        &s.java_props(
            "SASL_PLAINTEXT",
            Some(SaslMechanism::ScramSha256),
            "mallory",
        ),
    )
    .await
    .expect("mallory authenticates; she is only not authorized");
    let denied = |e: &Error, codes: &[KafkaCode]| {
        assert!(e.is_fatal(), "{e}");
        assert!(e.is_authorization_failure(), "{e}");
        assert!(
            e.kafka_code().is_some_and(|c| codes.contains(&c)),
            "{e}: expected one of {codes:?}"
        );
    };

    // Admin: creating a topic.
    let started = Instant::now();
    let e = Admin::new(mallory.clone())
        .create_topics(&[NewTopic::new(sluice_testkit::unique_topic("nope"), 1)], T)
        .await
        .expect_err("mallory may not create topics");
    denied(
        &e,
        &[
            KafkaCode::TopicAuthorizationFailed,
            KafkaCode::ClusterAuthorizationFailed,
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Producer: the delivery fails at once, not after max.block.ms.
    let started = Instant::now();
    let producer = Producer::with_cluster(mallory.clone(), ProducerConfig::default()).unwrap();
    let outcome = match producer.send(ProducerRecord::new(&topic, "x")).await {
        Ok(delivery) => delivery.await.map(|_| ()),
        Err(e) => Err(e),
    };
    denied(
        &outcome.expect_err("mallory may not write"),
        &[KafkaCode::TopicAuthorizationFailed],
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // Transactional producer.
    let txn = Producer::with_cluster(
        mallory.clone(),
        ProducerConfig::default().transactional_id(sluice_testkit::unique_topic("mtx")),
    )
    .unwrap();
    let started = Instant::now();
    denied(
        &txn.init_transactions()
            .await
            .expect_err("no transactional id ACL"),
        &[
            KafkaCode::TransactionalIdAuthorizationFailed,
            KafkaCode::ClusterAuthorizationFailed,
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // Consumer group.
    let consumer = Consumer::with_cluster(
        mallory.clone(),
        consumer_config(&mallory, &sluice_testkit::unique_topic("mgroup")),
    )
    .unwrap();
    consumer.subscribe([topic.clone()]).unwrap();
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .expect("recv should fail, not wait")
        .expect_err("mallory may not read");
    denied(
        &e,
        &[
            KafkaCode::GroupAuthorizationFailed,
            KafkaCode::TopicAuthorizationFailed,
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// 60 s of produce and consume over the REAUTH listener, whose sessions last 10 s: the
/// connections re-authenticate (the broker would close them otherwise) and nothing is
/// lost, duplicated or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_across_re_authentications_lose_and_duplicate_nothing() {
    let s = secured();
    let props = s.java_props("REAUTH", Some(SaslMechanism::ScramSha512), "alice");
    let cluster = connect(&s.reauth(), &props).await.expect("connect");
    let topic = new_topic(&cluster, "sec-reauth", 3).await;
    let producer = Producer::with_cluster(
        cluster.clone(),
        ProducerConfig::default().linger(Duration::from_millis(2)),
    )
    .unwrap();
    let consumer = Consumer::with_cluster(
        cluster.clone(),
        consumer_config(&cluster, &sluice_testkit::unique_topic("reauth-group")),
    )
    .unwrap();
    consumer.subscribe([topic.clone()]).unwrap();

    let run_for = Duration::from_secs(60);
    let writer = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = 0u64;
            let mut pending = Vec::new();
            while started.elapsed() < run_for {
                let record = ProducerRecord::new(&topic, format!("{sent:08}"))
                    .key(format!("key-{}", sent % 16));
                pending.push(producer.send(record).await.expect("send"));
                sent += 1;
                if pending.len() >= 100 {
                    for d in pending.drain(..) {
                        d.await.expect("delivery across re-authentication");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            for d in pending {
                d.await.expect("delivery");
            }
            producer.close(T).await.expect("close");
            sent
        })
    };
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut received = 0u64;
    let mut sent = None;
    let mut writer = Some(writer);
    let deadline = Instant::now() + run_for + Duration::from_secs(60);
    loop {
        if let Some(w) = writer.as_mut() {
            if w.is_finished() {
                sent = Some(w.await.expect("writer"));
                writer = None;
            }
        }
        if sent.is_some_and(|n| received >= n) {
            break;
        }
        assert!(Instant::now() < deadline, "received {received} of {sent:?}");
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            let r = r.expect("recv across re-authentication");
            let key = String::from_utf8_lossy(r.key().expect("key")).into_owned();
            let v: u64 = String::from_utf8_lossy(r.value().expect("value"))
                .parse()
                .expect("a number");
            by_key.entry(key).or_default().push(v);
            received += 1;
        }
    }
    let sent = sent.expect("writer done");
    let mut all: Vec<u64> = by_key.values().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, sent, "lost or duplicated");
    assert_eq!(received, sent, "duplicates");
    for (key, values) in &by_key {
        assert!(values.windows(2).all(|w| w[0] < w[1]), "order of {key}");
    }
    // The connections lived through the whole run, re-authenticating every ~9 s.
    let mut most = 0;
    for id in cluster.metadata().brokers.keys() {
        most = most.max(cluster.broker(*id).await.expect("broker").authentications());
    }
    assert!(
        most >= 5,
        "only {most} authentications on one connection in 60 s"
    );
    consumer.close().await.expect("close");
    println!("re-authentication run: {sent} records, {most} authentications on one connection");
}

/// A connection pipelining requests while its sessions expire every 10 s: every
/// request succeeds, in order, on the same connection.
#[tokio::test]
async fn in_flight_requests_survive_re_authentication_on_one_connection() {
    let s = secured();
    let props = s.java_props("REAUTH", Some(SaslMechanism::OAuthBearer), "alice");
    let mut config = ConnectionConfig::default();
    for (k, v) in &props {
        config.security.set(k, v).unwrap();
    }
    let addr = s.reauth().split(',').next().unwrap().to_string();
    let conn = BrokerConnection::connect(&addr, config)
        .await
        .expect("connect");
    assert_eq!(conn.authentications(), 1);
    let started = Instant::now();
    let mut requests = 0;
    let request = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![]));
    while started.elapsed() < Duration::from_secs(25) {
        // Five requests in flight at a time.
        let batch = (0..5).map(|_| conn.send(&request));
        for r in join_all(batch).await {
            r.expect("a request across re-authentication");
            requests += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!conn.is_dead());
    assert!(
        conn.authentications() >= 3,
        "{} authentications in 25 s",
        conn.authentications()
    );
    println!(
        "{requests} requests, {} authentications",
        conn.authentications()
    );
}

#[test]
fn java_reads_what_sluice_wrote_over_sasl_ssl_and_the_reverse() {
    let s = secured();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let props = s.java_props("SASL_SSL", Some(SaslMechanism::ScramSha512), "alice");
    let bootstrap = s.sasl_ssl();
    let topic = rt.block_on(async {
        let cluster = connect(&bootstrap, &props).await.expect("connect");
        let topic = new_topic(&cluster, "sec-interop", 1).await;
        let producer = Producer::with_cluster(cluster, ProducerConfig::default()).unwrap();
        for i in 0..5 {
            producer
                .send(ProducerRecord::new(&topic, format!("from-sluice-{i}")).key(format!("k{i}")))
                .await
                .unwrap()
                .await
                .unwrap();
        }
        producer.close(T).await.unwrap();
        topic
    });
    let lines = sluice_testkit::console_consume_with(
        &bootstrap,
        &topic,
        5,
        Duration::from_secs(20),
        &props,
    )
    .expect("java console consumer over SASL_SSL");
    let expected: Vec<String> = (0..5)
        .map(|i| format!("NO_HEADERS\tk{i}\tfrom-sluice-{i}"))
        .collect();
    assert_eq!(lines, expected);

    let java_topic = sluice_testkit::unique_topic("sec-from-java");
    let java_props = s.java_props("SASL_SSL", Some(SaslMechanism::Plain), "admin");
    sluice_testkit::console_produce_with(
        &bootstrap,
        &java_topic,
        ["j0\tfrom-java-0", "j1\tfrom-java-1", "j2\tfrom-java-2"],
        true,
        &java_props,
    )
    .expect("java console producer over SASL_SSL");
    let got = rt.block_on(async {
        let cluster = connect(&bootstrap, &java_props).await.expect("connect");
        let mut c = ConsumerConfig::new("unused").auto_offset_reset(OffsetReset::Earliest);
        c.cluster = cluster.config().clone();
        let consumer = Consumer::with_cluster(cluster, c).unwrap();
        consumer
            .assign([sluice::wire::consumer::TopicPartition::new(&java_topic, 0)])
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            let r = tokio::time::timeout(T, consumer.recv())
                .await
                .expect("records from java")
                .unwrap();
            got.push(format!(
                "{}\t{}",
                String::from_utf8_lossy(r.key().unwrap()),
                String::from_utf8_lossy(r.value().unwrap())
            ));
        }
        got
    });
    assert_eq!(
        got,
        ["j0\tfrom-java-0", "j1\tfrom-java-1", "j2\tfrom-java-2"]
    );
}

/// The pipeline runner of a principal that may not read its input stops with the
/// authorization error instead of retrying forever.
#[tokio::test]
async fn the_pipeline_runner_stops_on_a_missing_acl() {
    use sluice::pipeline::runner::{Pipeline, RunError};
    use sluice::pipeline::{ConsumedRecord, PipelineError, Processed};
    let s = secured();
    let admin = connect(
        &s.sasl_plaintext(),
        &s.java_props("SASL_PLAINTEXT", Some(SaslMechanism::Plain), "admin"),
    )
    .await
    .expect("admin");
    let input = new_topic(&admin, "sec-pipe", 1).await;
    let mallory_props = s.java_props("SASL_PLAINTEXT", Some(SaslMechanism::Plain), "mallory");
    let mallory = connect(&s.sasl_plaintext(), &mallory_props)
        .await
        .expect("mallory");
    let producer = Producer::with_cluster(mallory.clone(), ProducerConfig::default()).unwrap();
    let stack = tower::service_fn(|_r: ConsumedRecord| async {
        Ok::<Processed, PipelineError>(Vec::new())
    });
    let consumer = consumer_config(&mallory, &sluice_testkit::unique_topic("sec-pipe-group"));
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Pipeline::new(consumer, producer, [input], stack).run(),
    )
    .await
    .expect("run() returns instead of retrying");
    match result {
        Err(RunError::Kafka(e)) => {
            assert!(e.is_fatal() && e.is_authorization_failure(), "{e}");
            println!("the runner stopped with: {e}");
        }
        other => panic!("expected an authorization error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}
