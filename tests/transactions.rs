//! Transactions against a real broker: commit and abort visibility, zombie fencing,
//! offsets committed in a transaction, and the exactly-once example under SIGKILL.

mod consumer_common;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_common::{cluster, topic, T};
use sluice::wire::admin::{Admin, OffsetSpec};
use sluice::wire::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata, OffsetReset, TopicPartition,
};
use sluice::wire::partition_client::{Acks, IsolationLevel, PartitionClient};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::records::RecordBatchBuilder;

fn txn_producer_config(id: &str) -> ProducerConfig {
    ProducerConfig::new(sluice_testkit::bootstrap())
        .transactional_id(id.to_string())
        .transaction_timeout(Duration::from_secs(20))
        .max_block(Duration::from_secs(30))
}

/// A consumer without a group, assigned `partitions` of `topic` from the beginning.
async fn reader(topic: &str, partitions: &[i32], isolation: IsolationLevel) -> Consumer {
    let config = ConsumerConfig::new(sluice_testkit::bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(isolation)
        .fetch_max_wait(Duration::from_millis(100));
    let c = Consumer::new(config).await.expect("consumer");
    c.assign(partitions.iter().map(|&p| TopicPartition::new(topic, p)))
        .expect("assign");
    c
}

/// A record as `(partition, value)`.
fn entry(r: &ConsumerRecord) -> (i32, String) {
    let v = r
        .value()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    (r.partition(), v)
}

/// Every record of `topic` (partitions `0..partitions`) from the beginning, as
/// `(partition, value)`, read until nothing arrives for `idle`.
async fn read_all(
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    idle: Duration,
) -> Vec<(i32, String)> {
    let ids: Vec<i32> = (0..partitions).collect();
    let c = reader(topic, &ids, isolation).await;
    let mut out = Vec::new();
    while let Ok(r) = tokio::time::timeout(idle, c.recv()).await {
        out.push(entry(&r.expect("recv")));
    }
    c.close().await.expect("close");
    out
}

/// Every record of `topic` (partitions `0..partitions`) from the beginning, as
/// `(partition, value)`, read until the consumer's position in each partition reaches
/// the end offset it had when the read began. Unlike [`read_all`] no pause decides
/// where the end is, so a slow machine cannot cut the read short; it fails after
/// `within`, naming where each partition stopped.
async fn read_to_end(
    cluster: &sluice::wire::cluster::Cluster,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    within: Duration,
) -> Vec<(i32, String)> {
    let ids: Vec<i32> = (0..partitions).collect();
    let ends = end_offsets(cluster, topic, &ids).await;
    let c = reader(topic, &ids, isolation).await;
    let tps = c.assignment();
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    loop {
        let at_end = tps
            .iter()
            .all(|tp| c.position(tp).is_some_and(|at| at >= ends[&tp.partition]));
        if at_end {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let positions: Vec<Option<i64>> = tps.iter().map(|tp| c.position(tp)).collect();
            panic!(
                "{topic} not read to its end {ends:?} within {within:?}: positions {positions:?}, {} records read",
                out.len()
            );
        }
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(250), c.recv()).await {
            out.push(entry(&r.expect("recv")));
        }
    }
    c.close().await.expect("close");
    out
}

/// The high watermark of each of `partitions` of `topic`.
async fn end_offsets(
    cluster: &sluice::wire::cluster::Cluster,
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<i32, i64> {
    Admin::new(cluster.clone())
        .list_offsets(topic, partitions, OffsetSpec::Latest)
        .await
        .expect("list offsets")
        .into_iter()
        .map(|(p, o)| (p, o.offset))
        .collect()
}

fn values(records: &[(i32, String)]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    v.sort();
    v
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    v.sort();
    v
}

#[tokio::test]
async fn aborted_records_are_invisible_to_read_committed_only() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-vis", 2).await;
    let p = Producer::new(txn_producer_config(&sluice_testkit::unique_topic("tx-vis")))
        .await
        .unwrap();
    p.init_transactions().await.unwrap();

    p.begin().await.unwrap();
    for i in 0..10 {
        let _delivery = p
            .send(ProducerRecord::new(&topic, format!("committed-{i:03}")).partition(i % 2))
            .await
            .unwrap();
    }
    p.commit().await.unwrap();

    p.begin().await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..10 {
        deliveries.push(
            p.send(ProducerRecord::new(&topic, format!("aborted-{i:03}")).partition(i % 2))
                .await
                .unwrap(),
        );
    }
    // On the log before the abort, so read_uncommitted has them to show.
    p.flush().await;
    for d in deliveries {
        d.await.expect("written before the abort");
    }
    p.abort().await.unwrap();

    p.begin().await.unwrap();
    for i in 0..5 {
        let _delivery = p
            .send(ProducerRecord::new(&topic, format!("second-{i:03}")).partition(i % 2))
            .await
            .unwrap();
    }
    p.commit().await.unwrap();
    // Outside a transaction, sends are refused.
    let e = p
        .send(ProducerRecord::new(&topic, "outside"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), sluice::wire::ErrorKind::IllegalState, "{e}");
    p.close(T).await.unwrap();

    let idle = Duration::from_millis(1500);
    let committed = read_all(&topic, 2, IsolationLevel::ReadCommitted, idle).await;
    let mut want = names("committed", 10);
    want.extend(names("second", 5));
    want.sort();
    assert_eq!(values(&committed), want);

    let all = read_all(&topic, 2, IsolationLevel::ReadUncommitted, idle).await;
    want.extend(names("aborted", 10));
    want.sort();
    assert_eq!(values(&all), want);
}

#[tokio::test]
async fn a_second_instance_fences_the_first() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-fence", 1).await;
    let id = sluice_testkit::unique_topic("tx-fence");
    let first = Producer::new(txn_producer_config(&id)).await.unwrap();
    first.init_transactions().await.unwrap();
    first.begin().await.unwrap();
    let _delivery = first
        .send(ProducerRecord::new(&topic, "first-committed"))
        .await
        .unwrap();
    first.commit().await.unwrap();

    first.begin().await.unwrap();
    let d = first
        .send(ProducerRecord::new(&topic, "first-open"))
        .await
        .unwrap();
    first.flush().await;
    d.await.unwrap();

    // The zombie's open transaction is aborted by the new instance's init.
    let second = Producer::new(txn_producer_config(&id)).await.unwrap();
    second.init_transactions().await.unwrap();

    let after = first
        .send(ProducerRecord::new(&topic, "first-after-fence"))
        .await;
    let err = match after {
        Err(e) => e,
        Ok(_) => first
            .commit()
            .await
            .expect_err("a fenced producer cannot commit"),
    };
    assert!(err.is_fatal_producer_error(), "{err}");
    assert!(!err.is_abortable(), "{err}");
    // Dead for good: abort and begin fail too.
    assert!(first.abort().await.is_err());
    assert!(first.begin().await.is_err());

    second.begin().await.unwrap();
    let _delivery = second
        .send(ProducerRecord::new(&topic, "second-committed"))
        .await
        .unwrap();
    second.commit().await.unwrap();
    second.close(T).await.unwrap();
    let _ = first.close(Duration::from_secs(1)).await;

    let seen = read_all(
        &topic,
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(
        values(&seen),
        vec![
            "first-committed".to_string(),
            "second-committed".to_string()
        ]
    );
}

#[tokio::test]
async fn offsets_commit_with_the_transaction_only() {
    let cluster = cluster().await;
    let input = topic(&cluster, "txn-off-in", 1).await;
    let output = topic(&cluster, "txn-off-out", 1).await;
    let group = sluice_testkit::unique_topic("txn-off-g");
    let consumer = Consumer::new(
        consumer_common::config(Some(&group)).isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    consumer.subscribe([input.clone()]).unwrap();
    consumer_common::produce(&cluster, &input, 0, 0, 10).await;
    let records = consumer_common::recv_n(&consumer, 10, T).await;
    let meta = consumer.group_metadata().expect("group metadata");
    assert_eq!(meta.group_id, group);
    assert!(meta.generation_id >= 1, "{meta:?}");
    assert!(!meta.member_id.is_empty(), "{meta:?}");
    let tp = TopicPartition::new(&input, 0);

    let p = Producer::new(txn_producer_config(&sluice_testkit::unique_topic("tx-off")))
        .await
        .unwrap();
    p.init_transactions().await.unwrap();
    // Aborted: the offset is not committed.
    p.begin().await.unwrap();
    let _delivery = p.send(ProducerRecord::new(&output, "x")).await.unwrap();
    let offsets = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(5))]);
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    p.abort().await.unwrap();
    let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp], None);
    // Committed: it is.
    p.begin().await.unwrap();
    let _delivery = p.send(ProducerRecord::new(&output, "y")).await.unwrap();
    let next = records.last().unwrap().offset() + 1;
    let offsets = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(next))]);
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    p.commit().await.unwrap();
    let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp].as_ref().map(|o| o.offset), Some(next));
    p.close(T).await.unwrap();
    consumer.close().await.unwrap();
}

/// The example binary `cargo test` builds next to the test executables.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join("exactly_once");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds examples; or run `cargo build --example exactly_once`",
        path.display()
    );
    path
}

/// A few random bits without a dependency: the standard library's seeded hasher.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n.max(1)
}

fn spawn_example(args: &[&str], batch: usize, quiet: bool) -> std::process::Child {
    let mut cmd = std::process::Command::new(example_binary());
    cmd.args(args)
        .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .env("EOS_BATCH", batch.to_string())
        // The instances that get killed need not wait long; the last one exits once idle
        // this long, and before its first record it joins the group, fences the killed
        // one (its open transaction is aborted first) and looks up the committed offsets:
        // on a loaded machine that once took over 3 s and it exited having read nothing.
        .env("EOS_IDLE_MS", if quiet { "3000" } else { "10000" })
        .stdout(std::process::Stdio::null());
    if quiet {
        cmd.stderr(std::process::Stdio::null());
    } else {
        cmd.stderr(std::process::Stdio::piped());
    }
    cmd.spawn().expect("spawn the exactly_once example")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_example_survives_sigkill_at_random_moments() {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 100_000;
    let cluster = cluster().await;
    let input = topic(&cluster, "eos-in", PARTITIONS).await;
    let output = topic(&cluster, "eos-out", PARTITIONS).await;
    let group = sluice_testkit::unique_topic("eos-g");
    let txn_id = sluice_testkit::unique_topic("eos-tx");
    let per_partition = RECORDS / PARTITIONS as usize + 1;
    let count = move |p: i32| per_partition.min(RECORDS - per_partition * p as usize);
    // The input arrives as a live stream over about ten seconds (1,000 records per
    // partition every 250 ms), so the kills land while input is being processed.
    let writer = {
        let (cluster, input) = (cluster.clone(), input.clone());
        tokio::spawn(async move {
            let mut written = 0;
            let mut from = 0;
            while from < per_partition {
                for p in 0..PARTITIONS {
                    let to = (from + 1000).min(count(p));
                    if from >= to {
                        continue;
                    }
                    let mut b = RecordBatchBuilder::new(Default::default());
                    for j in from..to {
                        let v = format!("rec-{p}-{j:06}");
                        b.append(
                            1_700_000_000_000,
                            Some(v.as_bytes()),
                            Some(v.as_bytes()),
                            &[],
                        )
                        .unwrap();
                    }
                    PartitionClient::new(cluster.clone(), &input, p)
                        .produce(b.finish().unwrap(), Acks::All, T)
                        .await
                        .unwrap();
                    written += to - from;
                }
                from += 1000;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            written
        })
    };

    let args = [
        input.as_str(),
        output.as_str(),
        group.as_str(),
        txn_id.as_str(),
    ];
    let started = std::time::Instant::now();
    let mut kills = Vec::new();
    for _ in 0..10 {
        // 100-record transactions: slow enough (debug build) that the kills land
        // while input is being processed.
        let mut child = spawn_example(&args, 100, true);
        let after = Duration::from_millis(300 + random_below(2200));
        tokio::time::sleep(after).await;
        if child.try_wait().unwrap().is_some() {
            panic!("the example exited before it was killed (after {after:?})");
        }
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on unix
        child.wait().unwrap();
        kills.push(after.as_millis());
    }
    assert_eq!(writer.await.unwrap(), RECORDS);
    // The last instance runs to the end (idle exit).
    let child = spawn_example(&args, 100, false);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "final run failed: {stderr}");
    println!("killed after {kills:?} ms; final run: {stderr}");

    // The last instance stops after 10 s without a record. Before the output is read,
    // check it stopped because the input was used up: the group's committed offsets
    // are the input's end offsets. Otherwise a shortfall below would look like loss.
    let ids: Vec<i32> = (0..PARTITIONS).collect();
    let input_ends = end_offsets(&cluster, &input, &ids).await;
    // Read as a read_committed consumer does (require_stable): the last transaction's
    // offsets become visible to a plain OffsetFetch only once its markers are written,
    // which may be after the instance exited.
    let probe = Consumer::new(
        ConsumerConfig::new(sluice_testkit::bootstrap())
            .group_id(&group)
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .expect("consumer");
    let inputs: Vec<TopicPartition> = ids
        .iter()
        .map(|&p| TopicPartition::new(&input, p))
        .collect();
    let committed: BTreeMap<i32, i64> = probe
        .committed(&inputs)
        .await
        .expect("the group's committed offsets")
        .into_iter()
        .map(|(tp, o)| (tp.partition, o.map_or(-1, |o| o.offset)))
        .collect();
    probe.close().await.expect("close");
    assert_eq!(
        committed, input_ends,
        "the last instance exited idle before the end of the input (committed offsets, input end offsets)"
    );

    let seen = read_to_end(
        &cluster,
        &output,
        PARTITIONS,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(60),
    )
    .await;
    println!(
        "{} records checked, whole test {:?}",
        seen.len(),
        started.elapsed()
    );
    assert_eq!(seen.len(), RECORDS, "every input exactly once (count)");
    // For the log: how much the killed instances wrote in transactions that were
    // aborted (by their successor's init_transactions).
    let everything = read_to_end(
        &cluster,
        &output,
        PARTITIONS,
        IsolationLevel::ReadUncommitted,
        Duration::from_secs(60),
    )
    .await;
    println!(
        "{} records on the log, {} of them in aborted transactions",
        everything.len(),
        everything.len() - seen.len()
    );
    for p in 0..PARTITIONS {
        let got: Vec<&str> = seen
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, v)| v.as_str())
            .collect();
        let n = count(p);
        let want: Vec<String> = (0..n).map(|j| format!("REC-{p}-{j:06}")).collect();
        assert_eq!(got.len(), want.len(), "partition {p}");
        assert!(
            got.iter().zip(&want).all(|(g, w)| *g == w.as_str()),
            "partition {p}: output differs from the input, in order, exactly once"
        );
    }
}

/// Runs `tests/java/TxnInterop.java` with Kafka's client jars; returns the values it
/// printed.
async fn java_txn_interop(args: Vec<String>) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let source =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/TxnInterop.java");
        let mut child = std::process::Command::new(sluice_testkit::java())
            .args([
                "-XX:+UseSerialGC",
                "-Xmx256m",
                "-cp",
                &sluice_testkit::java_classpath(),
            ])
            .arg(source)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("java (a JDK 17+ on PATH or JAVA_HOME)");
        let started = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "java {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut values: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("VALUE\t"))
            .map(str::to_string)
            .collect();
        values.sort();
        values
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn java_read_committed_consumer_skips_our_aborted_records() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-to-java", 2).await;
    let p = Producer::new(txn_producer_config(&sluice_testkit::unique_topic(
        "tx-to-java",
    )))
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    for i in 0..5 {
        let _delivery = p
            .send(ProducerRecord::new(&topic, format!("rs-aborted-{i:03}")).partition(i % 2))
            .await
            .unwrap();
    }
    p.flush().await;
    p.abort().await.unwrap();
    p.begin().await.unwrap();
    for i in 0..5 {
        let _delivery = p
            .send(ProducerRecord::new(&topic, format!("rs-committed-{i:03}")).partition(i % 2))
            .await
            .unwrap();
    }
    p.commit().await.unwrap();
    p.close(T).await.unwrap();

    let seen = java_txn_interop(vec![
        "consume".into(),
        sluice_testkit::bootstrap(),
        topic.clone(),
    ])
    .await;
    assert_eq!(seen, names("rs-committed", 5));
    // The aborted records are on the log: read_uncommitted shows them.
    let all = read_all(
        &topic,
        2,
        IsolationLevel::ReadUncommitted,
        Duration::from_millis(1500),
    )
    .await;
    let mut want = names("rs-committed", 5);
    want.extend(names("rs-aborted", 5));
    want.sort();
    assert_eq!(values(&all), want);
}

#[tokio::test]
async fn our_read_committed_consumer_skips_java_aborted_records() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-from-java", 2).await;
    java_txn_interop(vec![
        "produce".into(),
        sluice_testkit::bootstrap(),
        topic.clone(),
        sluice_testkit::unique_topic("tx-java"),
    ])
    .await;
    let idle = Duration::from_millis(1500);
    let committed = read_all(&topic, 2, IsolationLevel::ReadCommitted, idle).await;
    let want: Vec<String> = (0..5).map(|i| format!("java-committed-{i}")).collect();
    assert_eq!(values(&committed), want);
    let all = read_all(&topic, 2, IsolationLevel::ReadUncommitted, idle).await;
    let mut want_all: Vec<String> = (0..5).map(|i| format!("java-aborted-{i}")).collect();
    want_all.extend(want);
    want_all.sort();
    assert_eq!(values(&all), want_all);
}

/// A `commit()` whose future is dropped (a timeout around it) leaves the transaction
/// committing; calling `commit()` again finishes it, and the records are visible once.
/// (It used to stay stuck in Committing: every later call was an IllegalState error.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_commit_can_be_called_again() {
    let faults = sluice_testkit::fault_cluster();
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-cancel", 1).await;
    let config = ProducerConfig::new(faults.bootstrap())
        .transactional_id(sluice_testkit::unique_topic("tx-cancel"))
        .transaction_timeout(Duration::from_secs(20))
        .max_block(Duration::from_secs(30));
    let p = Producer::new(config).await.unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    for i in 0..10 {
        let _delivery = p
            .send(ProducerRecord::new(&topic, format!("c-{i:03}")))
            .await
            .unwrap();
    }
    // Every response now takes 400 ms: the commit cannot finish within 100 ms.
    faults.set_latency(Duration::from_millis(400));
    let first = tokio::time::timeout(Duration::from_millis(100), p.commit()).await;
    assert!(
        first.is_err(),
        "the first commit should have been cancelled"
    );
    faults.set_latency(Duration::ZERO);
    p.commit()
        .await
        .expect("commit again after a cancelled commit");
    // The producer goes on: another transaction commits.
    p.begin().await.unwrap();
    let _delivery = p.send(ProducerRecord::new(&topic, "c-next")).await.unwrap();
    p.commit().await.unwrap();
    p.close(T).await.unwrap();
    let got = read_all(
        &topic,
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(3),
    )
    .await;
    let mut want = names("c", 10);
    want.push("c-next".to_string());
    assert_eq!(values(&got), want);
}

/// After an exactly-once worker dies with offsets pending in its open transaction, the
/// group's next owner waits for that partition's offset (OffsetFetch with
/// require_stable answers UNSTABLE_OFFSET_COMMIT until the transaction ends); partitions
/// that have a position keep fetching meanwhile. (The whole fetcher used to wait.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_transactional_offset_does_not_hold_up_partitions_with_a_position() {
    use sluice::wire::consumer::ConsumerGroupMetadata;
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-unstable", 2).await;
    consumer_common::produce(&cluster, &topic, 0, 0, 20).await;
    consumer_common::produce(&cluster, &topic, 1, 0, 20).await;
    let group = sluice_testkit::unique_topic("unstable-group");

    // The "crashed" worker: offsets for partition 0 in a transaction left open.
    let p = Producer::new(txn_producer_config(&sluice_testkit::unique_topic(
        "tx-unstable",
    )))
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    let mut offsets = BTreeMap::new();
    offsets.insert(TopicPartition::new(&topic, 0), OffsetAndMetadata::new(5));
    let metadata = ConsumerGroupMetadata::new(group.clone());
    p.send_offsets_to_transaction(&offsets, &metadata)
        .await
        .unwrap();

    let config =
        consumer_common::config(Some(&group)).isolation_level(IsolationLevel::ReadCommitted);
    let c = Consumer::new(config).await.unwrap();
    let tp0 = TopicPartition::new(&topic, 0);
    let tp1 = TopicPartition::new(&topic, 1);
    c.assign([tp0.clone(), tp1.clone()]).unwrap();
    c.seek(&tp1, 0).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        let mut got = Vec::new();
        while got.len() < 20 {
            got.push(c.recv().await.expect("recv"));
        }
        got
    })
    .await
    .expect("partition 1 is fetched while partition 0 waits on its pending offset");
    assert!(got.iter().all(|r| r.partition() == 1));
    assert_eq!(c.position(&tp0), None, "partition 0 still waits");

    // The transaction ends: partition 0 starts at the offset it committed.
    p.abort().await.unwrap();
    p.close(T).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(40), c.recv())
        .await
        .expect("partition 0 resolves once the transaction is aborted")
        .unwrap();
    assert_eq!(
        (first.partition(), first.offset()),
        (0, 0),
        "aborted offsets are not used"
    );
    c.close().await.unwrap();
}

/// A topic whose `max.message.bytes` is 1000, and an initialised transactional producer.
async fn refusing_topic_and_producer(prefix: &str) -> (String, Producer) {
    use sluice::wire::admin::{Admin, NewTopic};
    let cluster = cluster().await;
    let topic = sluice_testkit::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&topic, 1).config("max.message.bytes", "1000")],
            T,
        )
        .await
        .unwrap();
    let p = Producer::new(txn_producer_config(&sluice_testkit::unique_topic(prefix)))
        .await
        .unwrap();
    p.init_transactions().await.unwrap();
    (topic, p)
}

/// After a failed transaction: `abort()` returns, the next transaction commits, and a
/// read_committed reader sees only its record.
async fn abort_then_go_on(topic: &str, p: Producer) {
    tokio::time::timeout(T, p.abort())
        .await
        .expect("abort returns")
        .expect("abort succeeds");
    p.begin().await.unwrap();
    let _d = p.send(ProducerRecord::new(topic, "next")).await.unwrap();
    tokio::time::timeout(T, p.commit())
        .await
        .expect("commit returns")
        .unwrap();
    p.close(T).await.unwrap();
    let got = read_all(
        topic,
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(values(&got), ["next"]);
}

/// A record the broker refuses (MESSAGE_TOO_LARGE: bigger than the topic's
/// `max.message.bytes`) fails the transaction; `abort()` returns and the producer goes
/// on with the next transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_a_record_the_broker_refuses() {
    let (topic, p) = refusing_topic_and_producer("txn-too-large").await;
    p.begin().await.unwrap();
    let small = p.send(ProducerRecord::new(&topic, "small")).await.unwrap();
    tokio::time::timeout(T, small)
        .await
        .expect("the small record's outcome")
        .expect("the small record is written");
    let big = p
        .send(ProducerRecord::new(&topic, "x".repeat(5000)))
        .await
        .unwrap();
    let e = tokio::time::timeout(T, big)
        .await
        .expect("the big record's outcome")
        .unwrap_err();
    assert!(format!("{e}").contains("MessageTooLarge"), "{e}");
    abort_then_go_on(&topic, p).await;
}

/// The same with the refused record in one batch with an accepted one: the batch is
/// split, its parts take its sequence range (as Java's `splitAndReenqueue`; a
/// transaction cannot bump its epoch to re-sequence), so the accepted record is written
/// and only the refused one fails, with MESSAGE_TOO_LARGE (it used to be both, with a
/// generic OUT_OF_ORDER_SEQUENCE_NUMBER "sequence gap"). `abort()` returns and the
/// producer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_a_refused_record_that_shared_a_batch() {
    let (topic, p) = refusing_topic_and_producer("txn-too-large-split").await;
    p.begin().await.unwrap();
    let small = p.send(ProducerRecord::new(&topic, "small")).await.unwrap();
    let big = p
        .send(ProducerRecord::new(&topic, "x".repeat(5000)))
        .await
        .unwrap();
    let big = tokio::time::timeout(T, big)
        .await
        .expect("the big record's outcome");
    let small = tokio::time::timeout(T, small)
        .await
        .expect("the small record's outcome");
    let e = big.expect_err("the big record is refused");
    assert!(format!("{e}").contains("MessageTooLarge"), "{e}");
    let small = small.expect("the small record of the split batch is written");
    assert_eq!(small.offset, 0, "{small:?}");
    abort_then_go_on(&topic, p).await;
}

/// `abort()` waits for the transaction's records in flight at most `max.block.ms`: with a
/// Produce response that never comes (dropped after the broker wrote the batch, the
/// connection left open and dead), it fails with a Timeout in about that time instead of
/// waiting; once the request has timed out, `abort()` called again succeeds, and the next
/// transaction commits while a read_committed reader sees nothing of the aborted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_waits_at_most_max_block_for_records_in_flight() {
    use sluice::wire::ErrorKind;
    use std::time::Instant;
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-abort-deadline", 1).await;
    let faults = sluice_testkit::kafka_fault_cluster();
    let hang = faults.add_rule(
        sluice_testkit::Rule::new(kafka_protocol::messages::ApiKey::Produce)
            .topic(&topic)
            .nth(1)
            .drop_and_hang(),
    );
    let max_block = Duration::from_secs(2);
    let p = Producer::new(
        ProducerConfig::new(faults.bootstrap())
            .transactional_id(sluice_testkit::unique_topic("txn-abort-deadline"))
            .transaction_timeout(Duration::from_secs(20))
            .max_block(max_block)
            .request_timeout(Duration::from_secs(6)),
    )
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    let lost = p.send(ProducerRecord::new(&topic, "lost")).await.unwrap();
    let deadline = Instant::now() + T;
    while hang.hits() < 1 {
        assert!(
            Instant::now() < deadline,
            "the Produce response was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let result = tokio::time::timeout(T, p.abort())
        .await
        .expect("abort returns");
    let waited = started.elapsed();
    let Err(e) = result else {
        panic!("abort cannot finish while the record is in flight, yet it returned Ok after {waited:?}");
    };
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        waited >= max_block && waited < max_block + Duration::from_secs(2),
        "abort waited {waited:?} for max.block.ms {max_block:?}"
    );
    // The request times out, the record fails, and the abort goes through.
    let outcome = tokio::time::timeout(T, lost)
        .await
        .expect("the record's outcome");
    assert!(outcome.is_err(), "{outcome:?}");
    tokio::time::timeout(T, p.abort())
        .await
        .expect("abort returns")
        .expect("the second abort succeeds");
    eprintln!("abort timed out after {waited:?}; the second abort succeeded");
    p.begin().await.unwrap();
    let _d = p.send(ProducerRecord::new(&topic, "next")).await.unwrap();
    tokio::time::timeout(T, p.commit())
        .await
        .expect("commit returns")
        .unwrap();
    p.close(T).await.unwrap();
    drop(faults);
    let got = read_all(
        &topic,
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(values(&got), ["next"]);
}

/// A sequence error inside a transaction (OUT_OF_ORDER_SEQUENCE_NUMBER on the first
/// unacknowledged batch, set by the Kafka-aware proxy) fails the record and makes the
/// transaction abortable; the producer never bumps its epoch itself in a transaction:
/// `abort()` asks the coordinator (InitProducerId with the current id and epoch,
/// KIP-360), and the next transaction writes under the new epoch from sequence 0 and
/// commits. Read back: only the committed records, the last one a higher epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_error_in_a_transaction_aborts_it_and_the_abort_bumps_the_epoch() {
    use sluice::wire::partition_client::FetchOptions;
    use sluice::wire::records::RecordBatches;
    let cluster = cluster().await;
    let topic = topic(&cluster, "txn-sequence-error", 1).await;
    let faults = sluice_testkit::kafka_fault_cluster();
    let p = Producer::new(
        ProducerConfig::new(faults.bootstrap())
            .transactional_id(sluice_testkit::unique_topic("txn-sequence-error"))
            .transaction_timeout(Duration::from_secs(20))
            .max_block(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    let first = p.send(ProducerRecord::new(&topic, "first")).await.unwrap();
    tokio::time::timeout(T, p.commit()).await.unwrap().unwrap();
    first.await.unwrap();

    let rule = faults.add_rule(
        sluice_testkit::Rule::new(kafka_protocol::messages::ApiKey::Produce)
            .topic(&topic)
            .nth(1)
            .set_error(sluice_testkit::codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    p.begin().await.unwrap();
    let lost = p.send(ProducerRecord::new(&topic, "lost")).await.unwrap();
    let e = tokio::time::timeout(T, lost)
        .await
        .expect("the record's outcome")
        .expect_err("the record fails");
    assert_eq!(rule.hits(), 1);
    assert!(e.is_abortable(), "{e}");
    let c = tokio::time::timeout(T, p.commit())
        .await
        .expect("commit returns")
        .expect_err("the transaction cannot commit");
    assert!(c.is_abortable(), "{c}");
    tokio::time::timeout(T, p.abort())
        .await
        .expect("abort returns")
        .expect("abort succeeds");
    p.begin().await.unwrap();
    let next = p.send(ProducerRecord::new(&topic, "next")).await.unwrap();
    tokio::time::timeout(T, p.commit()).await.unwrap().unwrap();
    next.await.unwrap();
    p.close(T).await.unwrap();
    drop(faults);

    let got = read_all(
        &topic,
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(values(&got), ["first", "next"]);
    // The data batches as written: (value, epoch, base sequence).
    let client = PartitionClient::new(cluster.clone(), &topic, 0);
    let fetched = client
        .fetch(0, FetchOptions::default())
        .await
        .expect("fetch");
    let mut batches = Vec::new();
    for batch in RecordBatches::new(fetched.records) {
        let batch = batch.expect("a batch");
        if batch.is_control() {
            continue;
        }
        for r in batch.records().expect("records") {
            let r = r.expect("a record");
            let v = String::from_utf8_lossy(r.value().expect("a value")).into_owned();
            batches.push((v, batch.producer_epoch(), batch.base_sequence()));
        }
    }
    eprintln!("data batches (value, epoch, sequence): {batches:?}");
    let epoch = |v: &str| batches.iter().find(|b| b.0 == v).map(|b| b.1);
    let (first, next) = (epoch("first").unwrap(), epoch("next").unwrap());
    assert_eq!(
        next,
        first + 1,
        "the abort bumped the epoch once: {batches:?}"
    );
    assert_eq!(
        batches.last().map(|b| b.2),
        Some(0),
        "new epoch, sequence 0"
    );
}
