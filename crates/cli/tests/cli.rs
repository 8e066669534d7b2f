//! The `sluice` binary against a real Kafka broker: topic create, produce from stdin,
//! consume, metadata, delete; and clear failures for bad input. Group lag, status and
//! the metrics endpoint are in `lag/`.

mod common;
#[path = "cli/groups.rs"]
mod groups;
mod lag;
#[path = "cli/perf.rs"]
mod perf;
#[path = "cli/properties.rs"]
mod properties;
#[path = "cli/records.rs"]
mod records;
#[path = "cli/topics.rs"]
mod topics;

use common::{ok, sluice};

/// Creates a topic named from `prefix` with `partitions` and `configs` (`key=value`).
fn new_topic(prefix: &str, partitions: u32, configs: &[&str]) -> String {
    let topic = sluice_testkit::unique_topic(prefix);
    let partitions = partitions.to_string();
    let mut args = vec![
        "topic",
        "create",
        topic.as_str(),
        "--partitions",
        &partitions,
    ];
    for c in configs {
        args.extend(["--config", c]);
    }
    ok(&sluice(&args, None));
    topic
}

#[test]
fn create_produce_consume_delete() {
    let topic = sluice_testkit::unique_topic("cli");
    let out = ok(&sluice(
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    ));
    assert!(out.contains("with 2 partitions"), "{out}");

    let input = "k1:first\nk1:second\nno key here\n:empty key\nk2:x:y\n";
    let out = sluice(
        &[
            "produce",
            &topic,
            "--key-separator",
            ":",
            "--header",
            "src=cli",
            "--compression",
            "gzip",
        ],
        Some(input),
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 5 records"));

    let out = ok(&sluice(&["consume", &topic, "--count", "5"], None));
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    lines.sort();
    // Per partition order holds: k1's two records are on one partition, in order.
    let k1: Vec<&&str> = lines.iter().filter(|l| l.contains("key:k1 ")).collect();
    assert_eq!(k1.len(), 2);
    let first = out
        .lines()
        .position(|l| l.ends_with("value:first"))
        .unwrap();
    let second = out
        .lines()
        .position(|l| l.ends_with("value:second"))
        .unwrap();
    assert!(first < second, "{out}");
    assert!(
        out.contains("key:null headers:src=cli value:no key here"),
        "{out}"
    );
    assert!(
        out.contains("key: headers:src=cli value:empty key"),
        "{out}"
    );
    assert!(out.contains("key:k2 headers:src=cli value:x:y"), "{out}");

    let out = ok(&sluice(
        &["consume", &topic, "--count", "5", "--quiet"],
        None,
    ));
    assert_eq!(out.trim(), "5 records");

    let out = ok(&sluice(&["metadata", &topic], None));
    assert!(
        out.contains(&format!("topic \"{topic}\" with 2 partitions")),
        "{out}"
    );
    assert!(out.contains("partition 1, leader"), "{out}");

    let out = ok(&sluice(&["topic", "delete", &topic], None));
    assert!(out.contains("deleted"), "{out}");
}

#[test]
fn consume_one_partition_from_an_offset() {
    let topic = sluice_testkit::unique_topic("cli-offset");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    ok(&sluice(
        &["produce", &topic, "--partition", "0"],
        Some(&input),
    ));
    let out = ok(&sluice(
        &[
            "consume",
            &topic,
            "--partition",
            "0",
            "--from",
            "7",
            "--count",
            "3",
        ],
        None,
    ));
    let offsets: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(offsets, ["offset:7", "offset:8", "offset:9"], "{out}");
}

#[test]
fn consume_exit_stops_at_the_end_of_every_partition() {
    let topic = sluice_testkit::unique_topic("cli-exit");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "3"],
        None,
    ));
    // Partition 2 stays empty: its end is offset 0.
    for (p, n) in [("0", 4), ("1", 3)] {
        let input: String = (0..n).map(|i| format!("p{p}-{i}\n")).collect();
        ok(&sluice(
            &["produce", &topic, "--partition", p],
            Some(&input),
        ));
    }
    let out = ok(&sluice(&["consume", &topic, "--exit"], None));
    let mut values: Vec<&str> = out
        .lines()
        .map(|l| l.rsplit("value:").next().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        ["p0-0", "p0-1", "p0-2", "p0-3", "p1-0", "p1-1", "p1-2"],
        "{out}"
    );

    // As a group member: it exits too, having committed what it printed.
    let group = sluice_testkit::unique_topic("cli-exit-g");
    let out = ok(&sluice(
        &["consume", &topic, "--group", &group, "-e", "--quiet"],
        None,
    ));
    assert_eq!(out.trim(), "7 records", "{out}");
    let out = ok(&sluice(&["groups", "describe", &group], None));
    assert_eq!(out.lines().last(), Some("TOTAL LAG 0"), "{out}");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let out = sluice(
        &["produce", "whatever", "--compression", "brotli"],
        Some(""),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown compression"));

    let out = sluice(&["consume", "no-such-topic-anywhere", "--count", "1"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["-b", "127.0.0.1:1", "--timeout-ms", "2000", "metadata"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connecting to 127.0.0.1:1"), "{err}");
    // One line, the cause once (it used to be repeated: "refused ...: refused ...").
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(err.matches("refused").count(), 1, "{err}");
}

#[test]
fn consume_with_a_group_commits_and_groups_describe_shows_the_lag() {
    let topic = sluice_testkit::unique_topic("cli-group");
    let group = sluice_testkit::unique_topic("cli-g");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    ok(&sluice(&["produce", &topic], Some(&input)));

    let out = ok(&sluice(
        &["consume", &topic, "--group", &group, "--count", "4"],
        None,
    ));
    let values: Vec<&str> = out
        .lines()
        .map(|l| l.rsplit("value:").next().unwrap())
        .collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3"], "{out}");

    let out = ok(&sluice(&["groups", "describe", &group], None));
    let row = out
        .lines()
        .find(|l| l.contains(&topic))
        .unwrap_or_else(|| panic!("no row for {topic}: {out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[2..6], ["0", "4", "10", "6"], "{out}");
    assert_eq!(out.lines().last(), Some("TOTAL LAG 6"), "{out}");

    // The group resumes after the committed records.
    let out = ok(&sluice(
        &["consume", &topic, "--group", &group, "--count", "6"],
        None,
    ));
    assert!(out.lines().next().unwrap().ends_with("value:v4"), "{out}");
    let out = ok(&sluice(&["groups", "describe", &group], None));
    assert_eq!(out.lines().last(), Some("TOTAL LAG 0"), "{out}");

    let out = ok(&sluice(&["groups", "list"], None));
    assert!(out.lines().any(|l| l.starts_with(&group)), "{out}");
    ok(&sluice(&["topic", "delete", &topic], None));
}

#[test]
fn produce_flags_and_perf_produce() {
    let topic = sluice_testkit::unique_topic("cli-perf");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "3"],
        None,
    ));
    let input: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = sluice(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "--acks",
            "1",
            "--linger-ms",
            "20",
            "--batch-size",
            "4096",
            "-X",
            "compression.type=lz4",
        ],
        Some(&input),
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 100 records"));

    let out = sluice(&["produce", &topic, "-X", "lingr.ms=5"], Some("x\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lingr.ms"));

    let out = ok(&sluice(
        &[
            "perf",
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--acks",
            "all",
            "--compression",
            "zstd",
        ],
        None,
    ));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("2000 records sent, "), "{out}");
    for part in [
        "records/sec",
        "MB/sec",
        "ms avg latency",
        "ms max latency",
        "ms 50th",
        "ms 99th",
    ] {
        assert!(last.contains(part), "{part} missing: {last}");
    }
}

/// A secured cluster from a Java properties file (`-F`) and from `-X` keys: SASL_SSL
/// with SCRAM-SHA-512, the same file a Java client would use.
#[test]
fn secured_cluster_from_a_properties_file_and_from_x_keys() {
    let s = sluice_testkit::secured();
    let props = s.java_props(
        "SASL_SSL",
        Some(sluice_testkit::SaslMechanism::ScramSha512),
        "alice",
    );
    let mut text = String::from("# client.properties as a Java client reads it\n");
    for (k, v) in &props {
        text.push_str(&format!("{k}={v}\n"));
    }
    let dir = std::env::temp_dir().join(sluice_testkit::unique_topic("cli-props"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.properties");
    std::fs::write(&file, text).unwrap();
    let file = file.display().to_string();
    let bootstrap = s.sasl_ssl();
    let topic = sluice_testkit::unique_topic("cli-sec");

    let with_file = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["-b", bootstrap.as_str(), "-F", file.as_str()];
        all.extend_from_slice(args);
        sluice(&all, stdin)
    };
    ok(&with_file(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let out = with_file(&["produce", &topic, "-K", ":"], Some("a:1\nb:2\nc:3\n"));
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 3 records"));

    // The same cluster through -X keys, with librdkafka's names.
    let (user, password) = s.alice();
    let ca = s.ca_pem().display().to_string();
    let x = [
        "security.protocol=SASL_SSL".to_string(),
        "sasl.mechanism=SCRAM-SHA-512".to_string(),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
        format!("ssl.ca.location={ca}"),
    ];
    let mut args = vec!["-b", bootstrap.as_str()];
    for kv in &x {
        args.extend(["-X", kv.as_str()]);
    }
    args.extend([
        "consume",
        &topic,
        "--count",
        "3",
        "--group",
        "cli-sec-group",
    ]);
    let out = ok(&sluice(&args, None));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for v in ["1", "2", "3"] {
        assert!(out.contains(v), "{v} missing: {out}");
    }

    // A wrong password is one clear line and a failure, not a hang.
    let started = std::time::Instant::now();
    let out = sluice(
        &[
            "-b",
            &bootstrap,
            "-F",
            &file,
            "-X",
            "sasl.password=wrong",
            "metadata",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication"), "{err}");
    assert!(!err.contains("wrong"), "the password is echoed: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `consume --group` goes on after a failed commit: the next commit carries the offsets
/// (here the final one), and the group's committed offset is what was printed. The
/// failure is a real broker's OffsetCommit answer rewritten by the Kafka-aware proxy to
/// REBALANCE_IN_PROGRESS. (The command used to exit on the first failed commit.)
#[test]
fn consume_survives_a_failed_commit() {
    use kafka_protocol::messages::ApiKey;
    use sluice_testkit::{codes, Rule};

    let faults = sluice_testkit::kafka_fault_cluster();
    let topic = sluice_testkit::unique_topic("cli-commit");
    let group = sluice_testkit::unique_topic("cli-commit-group");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    ok(&sluice(&["produce", &topic], Some("a\nb\nc\n")));
    let rule = faults.add_rule(
        Rule::new(ApiKey::OffsetCommit)
            .nth(1)
            .set_error(codes::REBALANCE_IN_PROGRESS),
    );
    let out = sluice(
        &[
            "-b",
            faults.bootstrap(),
            "consume",
            &topic,
            "--group",
            &group,
            "--count",
            "3",
        ],
        None,
    );
    let stdout = ok(&out);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert_eq!(rule.hits(), 1, "the commit was not failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("commit failed"), "{stderr}");
    // The group resumes after the three printed records.
    ok(&sluice(&["produce", &topic], Some("d\n")));
    let next = ok(&sluice(
        &["consume", &topic, "--group", &group, "--count", "1"],
        None,
    ));
    assert!(
        next.contains("offset:3 ") && next.contains("value:d"),
        "{next}"
    );
}
