//! Consumer groups against a real broker: members sharing partitions, a member leaving
//! and one dying, static membership, cooperative rebalancing, and a Java consumer in
//! the same group.

mod consumer_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumer_common::*;
use futures::future::BoxFuture;
use sluice::wire::admin::{Admin, GroupDescription};
use sluice::wire::cluster::Cluster;
use sluice::wire::consumer::{
    AssignmentStrategy, Consumer, ConsumerConfig, OffsetAndMetadata, RebalanceContext,
    RebalanceListener, TopicPartition,
};

/// Waits until `group` is Stable with `members` members whose assignments are disjoint
/// and cover the `partitions` partitions of `topic`.
async fn wait_for_split(
    admin: &Admin,
    group: &str,
    topic: &str,
    partitions: i32,
    members: usize,
    within: Duration,
) -> GroupDescription {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(d) = admin.describe_group(group).await {
            let mut all = BTreeSet::new();
            let mut disjoint = true;
            for m in &d.members {
                for tp in &m.assignment {
                    disjoint &= all.insert(tp.clone());
                }
            }
            let want: BTreeSet<TopicPartition> = (0..partitions)
                .map(|p| TopicPartition::new(topic, p))
                .collect();
            if d.state == "Stable"
                && d.members.len() == members
                && disjoint
                && all == want
                && d.members.iter().all(|m| !m.assignment.is_empty())
            {
                return d;
            }
            last = Some(d);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("group {group} never split {partitions} partitions over {members} members: {last:#?}");
}

/// A member that processes (records) and commits each record, until told to stop.
struct Worker {
    consumer: Arc<Consumer>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

type Seen = Arc<Mutex<Vec<(i32, i64)>>>;

fn worker(consumer: Consumer, seen: Seen, failed_commits: Arc<AtomicUsize>) -> Worker {
    let consumer = Arc::new(consumer);
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (Arc::clone(&consumer), Arc::clone(&stop));
    let task = tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(200), c.recv()).await else {
                continue;
            };
            seen.lock().unwrap().push((r.partition(), r.offset()));
            let mut o = BTreeMap::new();
            o.insert(r.topic_partition(), OffsetAndMetadata::new(r.offset() + 1));
            if c.commit(&o).await.is_err() {
                failed_commits.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Worker {
        consumer,
        stop,
        task,
    }
}

impl Worker {
    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        Arc::try_unwrap(self.consumer).expect("sole owner")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_six_partitions_and_a_leave_loses_nothing() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-three", 6).await;
    let group = sluice_testkit::unique_topic("g-three");
    for p in 0..6 {
        produce(&cluster, &topic, p, 0, 50).await;
    }
    let seen: Seen = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let c = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
        c.subscribe([topic.clone()]).unwrap();
        workers.push(worker(c, Arc::clone(&seen), Arc::clone(&failed)));
    }
    let d = wait_for_split(&admin, &group, &topic, 6, 3, T).await;
    for m in &d.members {
        assert_eq!(m.assignment.len(), 2, "range gives 6 / 3 each: {d:#?}");
    }
    for p in 0..6 {
        produce(&cluster, &topic, p, 50, 50).await;
    }
    wait_until("half the records", T, || seen.lock().unwrap().len() >= 300).await;

    // One member leaves (commits are per record, then LeaveGroup).
    let leaving = workers.pop().unwrap().stop().await;
    leaving.close().await.unwrap();
    wait_for_split(&admin, &group, &topic, 6, 2, T).await;
    wait_until("every record", T, || {
        let s = seen.lock().unwrap();
        s.iter().collect::<BTreeSet<_>>().len() >= 600
    })
    .await;
    let mut remaining = Vec::new();
    for w in workers {
        remaining.push(w.stop().await);
    }
    // Committed offsets are at the end of every partition.
    let offsets = admin.group_offsets(&group).await.unwrap();
    for p in 0..6 {
        assert_eq!(
            offsets[&TopicPartition::new(&topic, p)].offset,
            100,
            "partition {p}"
        );
    }
    for c in remaining {
        c.close().await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let unique: BTreeSet<(i32, i64)> = seen.iter().copied().collect();
    let want: BTreeSet<(i32, i64)> = (0..6).flat_map(|p| (0..100).map(move |o| (p, o))).collect();
    assert_eq!(unique, want, "every record was processed");
    // A record is processed twice only when its commit failed in a rebalance: members
    // resume exactly where processing (and committing) stopped.
    let duplicates = seen.len() - unique.len();
    assert!(
        duplicates <= failed.load(Ordering::SeqCst),
        "{duplicates} duplicates, {} failed commits",
        failed.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_s_partitions_move_after_the_session_timeout() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-kill", 4).await;
    let group = sluice_testkit::unique_topic("g-kill");
    let a = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    a.subscribe([topic.clone()]).unwrap();
    let b = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    b.subscribe([topic.clone()]).unwrap();
    wait_for_split(&admin, &group, &topic, 4, 2, T).await;
    // Killed: no LeaveGroup, no more heartbeats.
    let killed = Instant::now();
    drop(b);
    wait_until("the survivor owning all four", T, || {
        a.assignment().len() == 4
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "moved after {took:?}: before the 6 s session timeout could pass"
    );
    wait_for_split(&admin, &group, &topic, 4, 1, T).await;
    a.close().await.unwrap();
}

#[derive(Default)]
struct Events {
    assigned: Mutex<Vec<Vec<TopicPartition>>>,
    revoked: Mutex<Vec<Vec<TopicPartition>>>,
    lost: Mutex<Vec<Vec<TopicPartition>>>,
}

impl RebalanceListener for Events {
    fn on_partitions_assigned<'a>(
        &'a self,
        _: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.assigned.lock().unwrap().push(p.to_vec());
        Box::pin(async {})
    }
    fn on_partitions_revoked<'a>(
        &'a self,
        _: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.revoked.lock().unwrap().push(p.to_vec());
        Box::pin(async {})
    }
    fn on_partitions_lost<'a>(
        &'a self,
        _: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.lost.lock().unwrap().push(p.to_vec());
        Box::pin(async {})
    }
}

fn with_events(cluster: &Cluster, config: ConsumerConfig) -> (Consumer, Arc<Events>) {
    let events = Arc::new(Events::default());
    let listener: Arc<dyn RebalanceListener> = events.clone();
    (
        Consumer::with_listener(cluster.clone(), config, listener).unwrap(),
        events,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_within_the_session_timeout_causes_no_rebalance() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-static", 4).await;
    let group = sluice_testkit::unique_topic("g-static");
    let a = Consumer::with_cluster(cluster.clone(), config(Some(&group)).group_instance_id("a"))
        .unwrap();
    a.subscribe([topic.clone()]).unwrap();
    let (b, b_events) = with_events(&cluster, config(Some(&group)).group_instance_id("b"));
    b.subscribe([topic.clone()]).unwrap();
    let before = wait_for_split(&admin, &group, &topic, 4, 2, T).await;
    wait_until("b's assignment", T, || b.assignment().len() == 2).await;
    let a_parts = a.assignment();
    let b_parts = b.assignment();
    let b_assigned_events = b_events.assigned.lock().unwrap().len();

    // Restart a: close (a static member sends no LeaveGroup) and come back at once.
    a.close().await.unwrap();
    let a = Consumer::with_cluster(cluster.clone(), config(Some(&group)).group_instance_id("a"))
        .unwrap();
    a.subscribe([topic.clone()]).unwrap();
    wait_until("a's partitions back", T, || a.assignment() == a_parts).await;
    // Give a rebalance, if one were coming, time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.assignment(), b_parts);
    assert!(
        b_events.revoked.lock().unwrap().is_empty(),
        "b revoked nothing"
    );
    assert!(b_events.lost.lock().unwrap().is_empty(), "b lost nothing");
    assert_eq!(
        b_events.assigned.lock().unwrap().len(),
        b_assigned_events,
        "no new assignment for b"
    );
    let after = wait_for_split(&admin, &group, &topic, 4, 2, T).await;
    let instance = |d: &GroupDescription, id: &str| {
        d.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(id))
            .map(|m| m.assignment.clone())
    };
    assert_eq!(instance(&before, "a"), instance(&after, "a"));
    assert_eq!(instance(&before, "b"), instance(&after, "b"));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_keep_the_partitions_they_keep() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-coop", 6).await;
    let group = sluice_testkit::unique_topic("g-coop");
    let coop =
        |c: ConsumerConfig| c.assignment_strategies(vec![AssignmentStrategy::CooperativeSticky]);
    let (a, a_events) = with_events(&cluster, coop(config(Some(&group))));
    a.subscribe([topic.clone()]).unwrap();
    wait_for_split(&admin, &group, &topic, 6, 1, T).await;
    wait_until("a owning all six", T, || a.assignment().len() == 6).await;

    let (b, _b_events) = with_events(&cluster, coop(config(Some(&group))));
    b.subscribe([topic.clone()]).unwrap();
    // Sample a's assignment through the rebalance: it never drops below what it keeps.
    let mut lowest = 6;
    let deadline = Instant::now() + T;
    while !(a.assignment().len() == 3 && b.assignment().len() == 3) {
        lowest = lowest.min(a.assignment().len());
        assert!(Instant::now() < deadline, "no 3/3 split");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        lowest.min(a.assignment().len()),
        3,
        "a kept three partitions throughout"
    );
    let revoked = a_events.revoked.lock().unwrap().clone();
    assert_eq!(revoked.len(), 1, "one revocation: {revoked:?}");
    assert_eq!(
        revoked[0].len(),
        3,
        "only the moving partitions: {revoked:?}"
    );
    let kept: BTreeSet<_> = a.assignment().into_iter().collect();
    assert!(revoked[0].iter().all(|tp| !kept.contains(tp)));
    assert!(a_events.lost.lock().unwrap().is_empty());
    wait_for_split(&admin, &group, &topic, 6, 2, T).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

async fn java_and_sluice_share(strategy: AssignmentStrategy, java_class: &str) {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-java", 4).await;
    let group = sluice_testkit::unique_topic("g-java");
    let c = Consumer::with_cluster(
        cluster.clone(),
        config(Some(&group)).assignment_strategies(vec![strategy]),
    )
    .unwrap();
    c.subscribe([topic.clone()]).unwrap();
    wait_for_split(&admin, &group, &topic, 4, 1, T).await;
    let strategy_prop = format!("partition.assignment.strategy={java_class}");
    let mut java = sluice_testkit::spawn_java_group_consumer(
        &sluice_testkit::bootstrap(),
        &topic,
        &group,
        &[
            &strategy_prop,
            "session.timeout.ms=6000",
            "heartbeat.interval.ms=500",
        ],
    )
    .unwrap();
    let d = wait_for_split(&admin, &group, &topic, 4, 2, Duration::from_secs(60)).await;
    assert!(java.is_running());
    assert_eq!(d.protocol, strategy.name());
    let java_member = d
        .members
        .iter()
        .find(|m| m.client_id.starts_with("console-consumer"))
        .unwrap_or_else(|| panic!("no Java member: {d:#?}"));
    assert_eq!(java_member.assignment.len(), 2, "{d:#?}");
    wait_until("sluice's half", T, || c.assignment().len() == 2).await;
    let ours: BTreeSet<_> = c.assignment().into_iter().collect();
    assert!(java_member.assignment.iter().all(|tp| !ours.contains(tp)));
    drop(java);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_consumer_and_sluice_split_a_range_group() {
    java_and_sluice_share(
        AssignmentStrategy::Range,
        "org.apache.kafka.clients.consumer.RangeAssignor",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_consumer_and_sluice_split_a_cooperative_sticky_group() {
    java_and_sluice_share(
        AssignmentStrategy::CooperativeSticky,
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_leaves_and_rejoins_when_it_polls_again() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-poll", 4).await;
    let group = sluice_testkit::unique_topic("g-poll");
    let slow = Arc::new(
        Consumer::with_cluster(
            cluster.clone(),
            config(Some(&group)).max_poll_interval(Duration::from_secs(3)),
        )
        .unwrap(),
    );
    slow.subscribe([topic.clone()]).unwrap();
    let (busy, busy_events) = with_events(&cluster, config(Some(&group)));
    busy.subscribe([topic.clone()]).unwrap();
    wait_for_split(&admin, &group, &topic, 4, 2, T).await;
    // `slow` never calls recv: after max.poll.interval.ms it leaves.
    wait_for_split(&admin, &group, &topic, 4, 1, T).await;
    wait_until("busy owning all four", T, || busy.assignment().len() == 4).await;
    assert!(slow.assignment().is_empty());
    assert!(busy_events.assigned.lock().unwrap().len() >= 2);
    // Polling again rejoins.
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (Arc::clone(&slow), Arc::clone(&stop));
    let poller = tokio::spawn(async move {
        while !st.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(Duration::from_millis(100), s.recv()).await;
        }
    });
    wait_for_split(&admin, &group, &topic, 4, 2, T).await;
    stop.store(true, Ordering::SeqCst);
    poller.await.unwrap();
    Arc::try_unwrap(slow).unwrap().close().await.unwrap();
    busy.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_topic_created_later_is_picked_up() {
    let mut cc = sluice::wire::cluster::ClusterConfig::new(sluice_testkit::bootstrap());
    cc.metadata_max_age = Duration::from_secs(1);
    let cluster = Cluster::connect(cc).await.unwrap();
    let group = sluice_testkit::unique_topic("g-later");
    let name = sluice_testkit::unique_topic("g-later");
    let c = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    c.subscribe([name.clone()]).unwrap();
    wait_until("the join", T, || c.member_id().is_some()).await;
    assert!(c.assignment().is_empty());
    Admin::new(cluster.clone())
        .create_topics(&[sluice::wire::admin::NewTopic::new(&name, 3)], T)
        .await
        .unwrap();
    produce(&cluster, &name, 2, 0, 5).await;
    wait_until("the new topic's partitions", T, || {
        c.assignment().len() == 3
    })
    .await;
    let got = recv_n(&c, 5, T).await;
    assert!(got.iter().all(|r| r.partition() == 2));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_the_same_instance_id_fences_the_first() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-fence", 2).await;
    let group = sluice_testkit::unique_topic("g-fence");
    let (first, first_events) =
        with_events(&cluster, config(Some(&group)).group_instance_id("same"));
    first.subscribe([topic.clone()]).unwrap();
    wait_for_split(&admin, &group, &topic, 2, 1, T).await;
    wait_until("first's partitions", T, || first.assignment().len() == 2).await;
    let second = Consumer::with_cluster(
        cluster.clone(),
        config(Some(&group)).group_instance_id("same"),
    )
    .unwrap();
    second.subscribe([topic.clone()]).unwrap();
    wait_until("second's partitions", T, || second.assignment().len() == 2).await;
    // The first learns on its next heartbeat: its partitions are lost (not revoked)
    // and recv fails with FENCED_INSTANCE_ID.
    let err = tokio::time::timeout(T, first.recv())
        .await
        .expect("an answer")
        .expect_err("fenced");
    assert_eq!(
        err.kafka_code(),
        Some(sluice::wire::KafkaCode::FencedInstanceId),
        "{err}"
    );
    assert!(first.assignment().is_empty());
    assert_eq!(first_events.lost.lock().unwrap().len(), 1);
    assert!(first_events.revoked.lock().unwrap().is_empty());
    let d = wait_for_split(&admin, &group, &topic, 2, 1, T).await;
    assert_eq!(d.members[0].group_instance_id.as_deref(), Some("same"));
    drop(first);
    second.close().await.unwrap();
}

/// Sleeps in `on_partitions_assigned` longer than the session timeout.
struct SlowAssign(Events);

impl RebalanceListener for SlowAssign {
    fn on_partitions_assigned<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.on_partitions_assigned(ctx, p).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
        })
    }
    fn on_partitions_lost<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.0.on_partitions_lost(ctx, p)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_slower_than_the_session_timeout_keeps_the_membership() {
    let cluster = cluster().await;
    let admin = Admin::new(cluster.clone());
    let topic = topic(&cluster, "g-slow", 2).await;
    produce(&cluster, &topic, 0, 0, 3).await;
    let group = sluice_testkit::unique_topic("g-slow");
    let listener = Arc::new(SlowAssign(Events::default()));
    let dynamic: Arc<dyn RebalanceListener> = listener.clone();
    let c = Consumer::with_listener(cluster.clone(), config(Some(&group)), dynamic).unwrap();
    c.subscribe([topic.clone()]).unwrap();
    // 8 s in the callback against a 6 s session: heartbeats go on meanwhile.
    let got = recv_n(&c, 3, T).await;
    assert_eq!(got.len(), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        listener.0.lost.lock().unwrap().is_empty(),
        "membership kept"
    );
    assert_eq!(
        listener.0.assigned.lock().unwrap().len(),
        1,
        "no second join"
    );
    wait_for_split(&admin, &group, &topic, 2, 1, T).await;
    c.close().await.unwrap();
}

/// A member waiting in `recv` on an idle topic is polling: it stays in the group past
/// `max.poll.interval.ms` (Java's poll resets the poll timer while it waits) and gets the
/// next record when one comes. (It used to leave after the interval and, still waiting
/// in the same `recv`, never rejoin: the record never arrived.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_waiting_in_recv_on_an_idle_topic_stays_in_the_group() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "idle-recv", 1).await;
    let group = sluice_testkit::unique_topic("idle-recv-group");
    let c = Consumer::new(config(Some(&group)).max_poll_interval(Duration::from_secs(8)))
        .await
        .unwrap();
    c.subscribe([topic.clone()]).unwrap();
    produce(&cluster, &topic, 0, 0, 1).await;
    let first = tokio::time::timeout(Duration::from_secs(30), c.recv())
        .await
        .expect("the first record")
        .unwrap();
    assert_eq!(first.offset(), 0);
    let before = c.group_metadata().expect("a member");
    // Nothing to read for longer than max.poll.interval.ms, waiting in recv all along.
    assert!(
        tokio::time::timeout(Duration::from_secs(14), c.recv())
            .await
            .is_err(),
        "no record was written"
    );
    produce(&cluster, &topic, 0, 1, 1).await;
    let next = tokio::time::timeout(Duration::from_secs(15), c.recv())
        .await
        .expect("the next record reaches a member that waited in recv")
        .unwrap();
    assert_eq!(next.offset(), 1);
    let after = c.group_metadata().expect("still a member");
    assert_eq!(
        (before.member_id, before.generation_id),
        (after.member_id, after.generation_id),
        "the member left and rejoined"
    );
    c.close().await.unwrap();
}

/// One revoked partition: its position at the revoke's start and end, and the offset
/// committed.
type Revoke = (TopicPartition, Option<i64>, Option<i64>, i64);

/// A member under an eager protocol that records when its revoke starts, commits what
/// it processed, and holds the revoke for 700 ms.
struct RevokeCommits {
    processed: Arc<Mutex<BTreeMap<TopicPartition, i64>>>,
    /// Per revoke: (partition, position at the start, position at the end, committed).
    revokes: Mutex<Vec<Revoke>>,
    revoking: AtomicBool,
}

impl RebalanceListener for RevokeCommits {
    fn on_partitions_revoked<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        p: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.revoking.store(true, Ordering::SeqCst);
            let before: Vec<Option<i64>> = p.iter().map(|tp| ctx.position(tp)).collect();
            let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = {
                let processed = self.processed.lock().unwrap();
                p.iter()
                    .filter_map(|tp| {
                        Some((tp.clone(), OffsetAndMetadata::new(*processed.get(tp)?)))
                    })
                    .collect()
            };
            ctx.commit(&offsets).await.expect("commit on revoke");
            // Long enough for a member that still hands out records to hand out many.
            tokio::time::sleep(Duration::from_millis(700)).await;
            let mut revokes = self.revokes.lock().unwrap();
            for (tp, before) in p.iter().zip(before) {
                let committed = offsets.get(tp).map_or(-1, |o| o.offset);
                revokes.push((tp.clone(), before, ctx.position(tp), committed));
            }
            self.revoking.store(false, Ordering::SeqCst);
        })
    }
}

/// Eager `range` rebalance (Java calls onPartitionsRevoked inside poll): from the
/// moment the revoke starts the member hands out nothing, so the offsets it commits in
/// the revoke are the last it processed, and the member that gets the partitions next
/// resumes there. Member A reads a 4-partition backlog slowly; B joins; A's revoke
/// commits and waits 700 ms. Asserted: A's positions do not move during the revoke, A
/// hands out no record while it revokes, and nothing is processed twice beyond the one
/// record per partition that A may have received but not yet recorded when the revoke
/// began (the at-least-once bound here: 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_rebalance_hands_out_nothing_once_the_revoke_starts() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "g-eager", 4).await;
    let group = sluice_testkit::unique_topic("g-eager");
    for p in 0..4 {
        produce(&cluster, &topic, p, 0, 1500).await;
    }
    let eager = |c: ConsumerConfig| c.assignment_strategies(vec![AssignmentStrategy::Range]);
    let listener = Arc::new(RevokeCommits {
        processed: Arc::default(),
        revokes: Mutex::new(Vec::new()),
        revoking: AtomicBool::new(false),
    });
    let dyn_listener: Arc<dyn RebalanceListener> = listener.clone();
    let a = Arc::new(
        Consumer::with_listener(cluster.clone(), eager(config(Some(&group))), dyn_listener)
            .unwrap(),
    );
    a.subscribe([topic.clone()]).unwrap();
    // (member, partition, offset)
    let seen: Arc<Mutex<Vec<(char, i32, i64)>>> = Arc::default();
    let during_revoke = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let task_a = {
        let (a, seen, l, during, stop) = (
            Arc::clone(&a),
            Arc::clone(&seen),
            Arc::clone(&listener),
            Arc::clone(&during_revoke),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(200), a.recv()).await
                else {
                    continue;
                };
                if l.revoking.load(Ordering::SeqCst) {
                    during.fetch_add(1, Ordering::SeqCst);
                }
                seen.lock().unwrap().push(('a', r.partition(), r.offset()));
                l.processed
                    .lock()
                    .unwrap()
                    .insert(r.topic_partition(), r.offset() + 1);
                // Slow processing: A still has a backlog when B joins.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    wait_until("A under way", T, || seen.lock().unwrap().len() >= 300).await;
    let b = Arc::new(Consumer::with_cluster(cluster.clone(), eager(config(Some(&group)))).unwrap());
    b.subscribe([topic.clone()]).unwrap();
    let task_b = {
        let (b, seen, stop) = (Arc::clone(&b), Arc::clone(&seen), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(200), b.recv()).await
                else {
                    continue;
                };
                seen.lock().unwrap().push(('b', r.partition(), r.offset()));
                let mut o = BTreeMap::new();
                o.insert(r.topic_partition(), OffsetAndMetadata::new(r.offset() + 1));
                let _ = b.commit(&o).await;
            }
        })
    };
    wait_until("every record", Duration::from_secs(90), || {
        let s = seen.lock().unwrap();
        s.iter()
            .map(|(_, p, o)| (*p, *o))
            .collect::<BTreeSet<_>>()
            .len()
            >= 6000
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    task_a.await.unwrap();
    task_b.await.unwrap();

    let revokes = listener.revokes.lock().unwrap().clone();
    assert!(!revokes.is_empty(), "A was revoked at least once");
    for (tp, before, after, committed) in &revokes {
        assert_eq!(
            before, after,
            "{tp}: A's position moved during its revoke: {revokes:?}"
        );
        if let Some(before) = before {
            assert!(
                *committed >= before - 1 && *committed <= *before,
                "{tp}: committed {committed}, position {before}: {revokes:?}"
            );
        }
    }
    assert_eq!(
        during_revoke.load(Ordering::SeqCst),
        0,
        "records A handed out while revoking"
    );
    let s = seen.lock().unwrap().clone();
    let mut count: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (_, p, o) in s.iter() {
        *count.entry((*p, *o)).or_default() += 1;
    }
    let twice = count.values().filter(|n| **n > 1).count();
    println!(
        "revokes {}, records handed out {}, processed twice {twice}",
        revokes.len(),
        s.len()
    );
    assert!(twice <= 4, "processed twice: {twice} records (bound 4)");
    assert_eq!(count.len(), 6000);
    let (a, b) = (
        Arc::try_unwrap(a).expect("sole owner"),
        Arc::try_unwrap(b).expect("sole owner"),
    );
    b.close().await.unwrap();
    a.close().await.unwrap();
}
