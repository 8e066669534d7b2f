//! The `payments_pipeline` example, run as a process against a real broker, at least once
//! and exactly once: it exits 0, every payment is scored or dead-lettered (the malformed
//! ones, and only those), hot accounts are spread over partitions while cold ones stay on
//! one, and each card's payments reach the output in order.
//!
//! `cargo test` builds the example; `cargo test --test payments_example` alone does not
//! (run `cargo build --example payments_pipeline` first). Start a broker first (`cargo
//! xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipeline_common::{dead_letter_counts, example, read_committed};

/// The example writes 8 partitions per topic.
const PARTITIONS: i32 = 8;
const COUNT: u64 = 3000;

/// One scored payment as the example writes it.
#[derive(Debug)]
struct Scored {
    id: u64,
    account: String,
    card: String,
    seq: u64,
    input_partition: i32,
}

fn scored(value: &[u8]) -> Scored {
    let v: serde_json::Value = serde_json::from_slice(value).unwrap();
    Scored {
        id: v["id"].as_u64().unwrap(),
        account: v["account"].as_str().unwrap().to_string(),
        card: v["card"].as_str().unwrap().to_string(),
        seq: v["seq"].as_u64().unwrap(),
        input_partition: i32::try_from(v["input_partition"].as_i64().unwrap()).unwrap(),
    }
}

async fn run_example(exactly_once: bool) {
    let topic = sluice_testkit::unique_topic("payments-example");
    let mut cmd = std::process::Command::new(example("payments_pipeline"));
    cmd.env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .env("PAYMENTS_TOPIC", &topic)
        .env("PAYMENTS_COUNT", COUNT.to_string());
    if exactly_once {
        cmd.arg("--exactly-once");
    }
    // Its output is a dozen lines, well within a pipe's buffer: wait, then read it.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    assert!(stdout.contains(&format!("{mode}: in {COUNT}")), "{stdout}");

    let cluster = common::cluster(&sluice_testkit::bootstrap()).await;
    let outputs: Vec<Scored> = read_committed(&cluster, &format!("{topic}-scored"), PARTITIONS)
        .await
        .iter()
        .map(|r| scored(r.value.as_deref().unwrap()))
        .collect();
    let dead =
        dead_letter_counts(&read_committed(&cluster, &format!("{topic}-dlt"), PARTITIONS).await);

    // in = out + dead-lettered, counting distinct payments (at least once may repeat some).
    let ids: BTreeSet<u64> = outputs.iter().map(|s| s.id).collect();
    let malformed: BTreeSet<u64> = (0..COUNT).filter(|i| i % 97 == 13).collect();
    assert_eq!(ids.len() + dead.len(), COUNT as usize, "{stdout}");
    assert_eq!(dead.len(), malformed.len());
    assert!(
        ids.is_disjoint(&malformed),
        "a malformed payment was scored"
    );
    if exactly_once {
        assert_eq!(
            outputs.len(),
            ids.len(),
            "read_committed saw a payment twice"
        );
        assert!(
            dead.values().all(|&n| n == 1),
            "a dead letter twice: {dead:?}"
        );
    }

    // Each card's payments in order on the output, per input partition: a hot account's
    // card moves once, when the partitioner finds the account hot, and payments on either
    // side of that move are not ordered. Only first appearances count (a redelivery
    // repeats a run of them).
    let mut last: BTreeMap<(&str, &str, i32), u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut partitions: BTreeMap<(&str, &str), BTreeSet<i32>> = BTreeMap::new();
    for s in &outputs {
        partitions
            .entry((s.account.as_str(), s.card.as_str()))
            .or_default()
            .insert(s.input_partition);
        if !seen.insert(s.id) {
            continue;
        }
        let key = (s.account.as_str(), s.card.as_str(), s.input_partition);
        if let Some(&before) = last.get(&key) {
            assert!(before < s.seq, "{key:?}: seq {} after {before}", s.seq);
        }
        last.insert(key, s.seq);
    }

    // Cold accounts keep one partition; a hot account's cards spread, each moving at most
    // once.
    let mut hot: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for ((account, card), used) in &partitions {
        if account.starts_with("acct-hot") {
            assert!(used.len() <= 2, "{account}/{card} on {used:?}");
            hot.entry(account).or_default().extend(used);
        } else {
            assert_eq!(used.len(), 1, "cold {account}/{card} on {used:?}");
        }
    }
    assert_eq!(hot.len(), 5, "{hot:?}");
    for (account, used) in &hot {
        assert!(used.len() > 1, "hot {account} not spread: {used:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_example_at_least_once() {
    run_example(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_example_exactly_once() {
    run_example(true).await;
}
