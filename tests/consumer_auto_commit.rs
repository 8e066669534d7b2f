//! `enable.auto.commit` as Java does it: the commit happens inside `recv` /
//! `recv_batch` once `auto.commit.interval.ms` has passed, of the positions of the
//! records handed out by the calls before it (those the application has processed
//! when it asks for more), never of a record the application still holds.

mod consumer_common;

use std::time::Duration;

use consumer_common::*;
use sluice::wire::consumer::{Consumer, TopicPartition};

const INTERVAL: Duration = Duration::from_millis(300);

async fn committed(c: &Consumer, tp: &TopicPartition) -> Option<i64> {
    c.committed(std::slice::from_ref(tp)).await.unwrap()[tp]
        .as_ref()
        .map(|om| om.offset)
}

/// Records handed out but not yet polled past are not committed: after 10 `recv`s and
/// five intervals without a call, the committed offset is at most 9 (where the tenth
/// call found the positions); the eleventh call commits 10 (what the first ten handed
/// out), and 10 stays while the application holds record 10. (With the background
/// timer the committed offset was 10, then 11: records still being processed counted
/// as done, and a crash then lost them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_commits_only_what_earlier_calls_handed_out() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "auto-commit", 1).await;
    produce(&cluster, &topic, 0, 0, 100).await;
    let group = sluice_testkit::unique_topic("auto-commit-g");
    let mut config = config(Some(&group)).enable_auto_commit(true);
    config.auto_commit_interval = INTERVAL;
    let c = Consumer::with_cluster(cluster, config).unwrap();
    c.subscribe([topic.clone()]).unwrap();
    let tp = TopicPartition::new(&topic, 0);

    let got = recv_n(&c, 10, T).await;
    assert_eq!(got.last().map(|r| r.offset()), Some(9));
    // The application works on record 9 for five intervals.
    tokio::time::sleep(INTERVAL * 5).await;
    let held = committed(&c, &tp).await;
    assert!(
        held.is_none_or(|o| o <= 9),
        "committed {held:?}: record 9, still held by the application, counted as processed"
    );

    // The next call commits what the first ten handed out (in the background).
    let r = tokio::time::timeout(T, c.recv()).await.unwrap().unwrap();
    assert_eq!(r.offset(), 10);
    wait_until_committed(&c, &tp, 10).await;
    // The application holds record 10: nothing more is committed meanwhile.
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(
        committed(&c, &tp).await,
        Some(10),
        "record 10 is still being processed"
    );

    // Close commits the positions.
    c.close().await.unwrap();
    let probe = Consumer::new(config_for(&group)).await.unwrap();
    assert_eq!(
        committed(&probe, &tp).await,
        Some(11),
        "close commits the position"
    );
}

fn config_for(group: &str) -> sluice::wire::consumer::ConsumerConfig {
    config(Some(group))
}

async fn wait_until_committed(c: &Consumer, tp: &TopicPartition, offset: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = committed(c, tp).await;
        if now == Some(offset) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed {now:?}, not {offset}, 10 s after the call that should commit it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
