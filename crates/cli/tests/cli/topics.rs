//! `topic list | describe | alter-config | add-partitions` and `configs describe`
//! against the broker, and the record-too-large error naming size and limit.

use crate::common::{ok, sluice};

#[test]
fn topic_describe_alter_config_add_partitions_and_list() {
    let topic = crate::new_topic("cli-topic", 1, &["retention.ms=3600000"]);
    let out = ok(&sluice(&["topic", "list"], None));
    assert!(out.lines().any(|l| l == topic), "{out}");
    assert!(out.lines().any(|l| l == "__consumer_offsets"), "{out}");
    let out = ok(&sluice(&["topic", "list", "--exclude-internal"], None));
    assert!(!out.lines().any(|l| l.starts_with("__")), "{out}");

    let out = ok(&sluice(&["topic", "describe", &topic], None));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Topic: {topic}\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: retention.ms=3600000"
        ),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("\tTopic: {topic}\tPartition: 0\tLeader: ")),
        "{out}"
    );

    let out = ok(&sluice(
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ],
        None,
    ));
    assert_eq!(
        out.trim(),
        format!("Completed updating config for topic {topic}.")
    );
    let out = ok(&sluice(&["configs", "describe", "--topic", &topic], None));
    assert!(
        out.starts_with(&format!("Dynamic configs for topic {topic} are:\n")),
        "{out}"
    );
    assert!(
        out.contains("  cleanup.policy=compact sensitive=false source=DYNAMIC_TOPIC_CONFIG"),
        "{out}"
    );
    assert!(!out.contains("retention.ms="), "{out}");
    let out = ok(&sluice(
        &["configs", "describe", "--topic", &topic, "--all"],
        None,
    ));
    assert!(
        out.contains("  retention.ms=604800000 sensitive=false source=DEFAULT_CONFIG"),
        "{out}"
    );
    let out = sluice(
        &["topic", "alter-config", &topic, "--set", "no.such.config=1"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidConfig") && err.contains("no.such.config"),
        "{err}"
    );

    let out = ok(&sluice(
        &["topic", "add-partitions", &topic, "--partitions", "3"],
        None,
    ));
    assert_eq!(out.trim(), format!("topic {topic} now has 3 partitions"));
    let out = ok(&sluice(&["topic", "describe", &topic], None));
    assert_eq!(out.lines().count(), 4, "{out}");
    let out = sluice(
        &["topic", "add-partitions", &topic, "--partitions", "2"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("InvalidPartitions"), "{err}");
    ok(&sluice(&["topic", "delete", &topic], None));
}

#[test]
fn configs_describe_a_broker() {
    let out = ok(&sluice(&["metadata"], None));
    let broker = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("broker "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no broker in {out}"))
        .to_string();
    let out = ok(&sluice(
        &["configs", "describe", "--broker", &broker, "--all"],
        None,
    ));
    assert!(
        out.starts_with(&format!("All configs for broker {broker} are:\n")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("  advertised.listeners=")
            && l.ends_with("source=STATIC_BROKER_CONFIG")),
        "{out}"
    );
    let out = sluice(&["configs", "describe", "--broker", "987654"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no broker 987654"), "{err}");
}

#[test]
fn a_record_too_large_names_its_size_and_the_limit() {
    let topic = crate::new_topic("cli-large", 1, &["max.message.bytes=1000"]);
    let line = format!("{}\n", "x".repeat(2000));
    let out = sluice(&["produce", &topic], Some(&line));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a record of 2000 bytes") && err.contains("max.message.bytes (1000)"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    ok(&sluice(&["topic", "delete", &topic], None));
}
