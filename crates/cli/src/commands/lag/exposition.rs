//! What `sluice lag serve` answers on `/metrics`: the Prometheus text format, with
//! kafka_exporter's metric names and labels (so its dashboards and alerts work
//! unchanged) plus Sluice's status, KEDA replica count, the rebalances seen and the
//! offline partitions of the topics the groups read.

use std::collections::BTreeMap;
use std::fmt::Write;

use sluice_wire::admin::lag::status::GroupStatus;
use sluice_wire::admin::{GroupLag, PartitionLag};
use sluice_wire::cluster::{PartitionInfo, TopicInfo};

/// One group's last look.
pub(super) struct Looked {
    /// The group id.
    pub(super) group: String,
    /// Its lag, or why it could not be read (an unknown group, a cluster error).
    pub(super) outcome: Result<Verdict, String>,
}

/// A group's lag with the judgement over its window.
pub(super) struct Verdict {
    pub(super) lag: GroupLag,
    pub(super) status: GroupStatus,
    pub(super) replicas: u64,
    /// The rebalances seen since the exporter started (see
    /// [`RebalanceCounter`](super::rebalances::RebalanceCounter)).
    pub(super) rebalances: u64,
}

/// One sample: its labels and value (a count, or seconds as a float).
type Sample<V = i64> = (Vec<(&'static str, String)>, V);

/// The exposition of `looked`, with the replication of `topics` (the topics the groups
/// read, as the last metadata showed them).
pub(super) fn render(looked: &[Looked], topics: &[TopicInfo]) -> String {
    let verdicts: Vec<(&str, &Verdict)> = looked
        .iter()
        .filter_map(|l| l.outcome.as_ref().ok().map(|v| (l.group.as_str(), v)))
        .collect();
    let per_partition = |value: fn(&Verdict, &PartitionLag) -> Option<i64>| -> Vec<Sample> {
        verdicts
            .iter()
            .flat_map(|(g, v)| {
                v.lag.partitions.iter().filter_map(move |p| {
                    let labels =
                        partition_labels(Some(g), &p.partition.topic, p.partition.partition);
                    value(v, p).map(|x| (labels, x))
                })
            })
            .collect()
    };
    let per_group = |value: fn(&Verdict) -> i64| -> Vec<Sample> {
        verdicts
            .iter()
            .map(|(g, v)| (vec![("consumergroup", g.to_string())], value(v)))
            .collect()
    };
    let mut out = String::new();
    family(
        &mut out,
        "kafka_consumergroup_current_offset",
        "The group's committed offset (a partition without one has no series).",
        per_partition(|_, p| p.committed),
    );
    family(
        &mut out,
        "kafka_consumergroup_lag",
        "Log end offset minus the committed offset, or minus the reset point where \
         nothing is committed.",
        per_partition(|_, p| Some(p.lag)),
    );
    family(
        &mut out,
        "sluice_consumergroup_partition_committed",
        "1 when the group has committed an offset for the partition, else 0.",
        per_partition(|_, p| Some(i64::from(p.is_committed()))),
    );
    family(
        &mut out,
        "sluice_consumergroup_partition_status",
        "Burrow's status of the partition over the window (codes as for the group).",
        per_partition(|v, p| {
            let verdict = v
                .status
                .partitions
                .iter()
                .find(|s| s.partition == p.partition)?;
            Some(i64::from(verdict.status.code()))
        }),
    );
    // Seconds behind: the lag over the partition's produce rate across the window.
    let seconds: Vec<Sample<f64>> = verdicts
        .iter()
        .flat_map(|(g, v)| {
            v.status.partitions.iter().filter_map(move |s| {
                let labels = partition_labels(Some(g), &s.partition.topic, s.partition.partition);
                s.lag_seconds().map(|secs| (labels, secs))
            })
        })
        .collect();
    family(
        &mut out,
        "sluice_consumergroup_lag_seconds",
        "How far behind the group is in time: the lag divided by the partition's \
         produce rate over the status window (no series while nothing was produced \
         in the window and the lag is not 0).",
        seconds,
    );
    let sums: Vec<Sample> = verdicts
        .iter()
        .flat_map(|(g, v)| {
            v.lag.per_topic().into_iter().map(move |(topic, sum)| {
                (
                    vec![("consumergroup", g.to_string()), ("topic", topic)],
                    sum,
                )
            })
        })
        .collect();
    family(
        &mut out,
        "kafka_consumergroup_lag_sum",
        "The group's lag summed over a topic's partitions.",
        sums,
    );
    family(
        &mut out,
        "kafka_consumergroup_members",
        "The group's members.",
        per_group(|v| v.lag.group.members.len() as i64),
    );

    // A topic two groups read is one set of series.
    let mut offsets: BTreeMap<(&str, i32), (i64, i64)> = BTreeMap::new();
    for (_, v) in &verdicts {
        for p in &v.lag.partitions {
            let key = (p.partition.topic.as_str(), p.partition.partition);
            offsets.insert(key, (p.log_end, p.log_start));
        }
    }
    let per_topic_partition = |pick: fn(&(i64, i64)) -> i64| -> Vec<Sample> {
        offsets
            .iter()
            .map(|(&(topic, partition), o)| (partition_labels(None, topic, partition), pick(o)))
            .collect()
    };
    family(
        &mut out,
        "kafka_topic_partition_current_offset",
        "The partition's log end offset.",
        per_topic_partition(|o| o.0),
    );
    family(
        &mut out,
        "kafka_topic_partition_oldest_offset",
        "The partition's log start offset.",
        per_topic_partition(|o| o.1),
    );

    replication(&mut out, topics);

    family(
        &mut out,
        "sluice_consumergroup_status",
        "Burrow's status of the group over the window (its worst partition's): 0 OK, \
         1 WARNING, 2 STALL, 3 STOP, 4 REWIND.",
        per_group(|v| i64::from(v.status.status.code())),
    );
    family(
        &mut out,
        "sluice_consumergroup_keda_replicas",
        "The replica count KEDA's Kafka scaler would choose for the group's lag.",
        per_group(|v| i64::try_from(v.replicas).unwrap_or(i64::MAX)),
    );
    family_of(
        &mut out,
        "sluice_consumergroup_rebalances_total",
        "counter",
        "Rebalances this exporter saw since it started: the group entering \
         PreparingRebalance/CompletingRebalance, or its members or assignments changed \
         between two looks. Several within one interval count once.",
        per_group(|v| i64::try_from(v.rebalances).unwrap_or(i64::MAX)),
    );
    let up: Vec<Sample> = looked
        .iter()
        .map(|l| {
            let labels = vec![("consumergroup", l.group.clone())];
            (labels, i64::from(l.outcome.is_ok()))
        })
        .collect();
    family(
        &mut out,
        "sluice_consumergroup_up",
        "1 when the group's lag was read at the last look, 0 when that failed.",
        up,
    );
    out
}

/// kafka_exporter's per-partition replication gauges for `topics`, and Sluice's count
/// of offline partitions (no leader) per topic.
fn replication(out: &mut String, topics: &[TopicInfo]) {
    let per_partition = |value: fn(&PartitionInfo) -> i64| -> Vec<Sample> {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (partition_labels(None, &t.name, p.partition), value(p)))
            })
            .collect()
    };
    let per_topic = |value: fn(&TopicInfo) -> i64| -> Vec<Sample> {
        topics
            .iter()
            .map(|t| (vec![("topic", t.name.clone())], value(t)))
            .collect()
    };
    family(
        out,
        "kafka_topic_partitions",
        "Number of partitions for this Topic.",
        per_topic(|t| t.partitions.len() as i64),
    );
    family(
        out,
        "kafka_topic_partition_leader",
        "Leader Broker ID of this Topic/Partition (-1 without a leader).",
        per_partition(|p| i64::from(p.leader.unwrap_or(-1))),
    );
    family(
        out,
        "kafka_topic_partition_leader_is_preferred",
        "1 if Topic/Partition is using the Preferred Broker.",
        per_partition(|p| i64::from(p.leader.is_some() && p.leader == p.replicas.first().copied())),
    );
    family(
        out,
        "kafka_topic_partition_replicas",
        "Number of Replicas for this Topic/Partition.",
        per_partition(|p| p.replicas.len() as i64),
    );
    family(
        out,
        "kafka_topic_partition_in_sync_replica",
        "Number of In-Sync Replicas for this Topic/Partition.",
        per_partition(|p| p.isr.len() as i64),
    );
    family(
        out,
        "kafka_topic_partition_under_replicated_partition",
        "1 if Topic/Partition is under Replicated.",
        per_partition(|p| i64::from(p.isr.len() < p.replicas.len())),
    );
    family(
        out,
        "sluice_topic_offline_partitions",
        "Partitions of the topic without a leader (unreadable and unwritable).",
        per_topic(|t| t.partitions.iter().filter(|p| p.leader.is_none()).count() as i64),
    );
}

/// `consumergroup` (when given), `topic` and `partition`, as kafka_exporter labels them.
fn partition_labels(
    group: Option<&str>,
    topic: &str,
    partition: i32,
) -> Vec<(&'static str, String)> {
    let mut labels = Vec::with_capacity(3);
    if let Some(g) = group {
        labels.push(("consumergroup", g.to_string()));
    }
    labels.push(("topic", topic.to_string()));
    labels.push(("partition", partition.to_string()));
    labels
}

/// Writes one gauge family: HELP, TYPE and its samples.
fn family<V: std::fmt::Display>(out: &mut String, name: &str, help: &str, samples: Vec<Sample<V>>) {
    family_of(out, name, "gauge", help, samples);
}

/// Writes one family of type `kind` (`gauge`, `counter`): HELP, TYPE and its samples.
fn family_of<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: Vec<Sample<V>>,
) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(out, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(out, " {value}");
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_help_type_and_escaped_samples() {
        let mut out = String::new();
        family(
            &mut out,
            "m",
            "Help.",
            vec![
                (
                    vec![("a", "x\"y\\z\nw".to_string()), ("b", "1".to_string())],
                    7,
                ),
                (vec![], -1),
            ],
        );
        assert_eq!(
            out,
            "# HELP m Help.\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"1\"} 7\nm -1\n"
        );
    }

    #[test]
    fn a_group_that_could_not_be_read_is_down_and_has_no_other_series() {
        let out = render(
            &[Looked {
                group: "g".to_string(),
                outcome: Err("group g does not exist".to_string()),
            }],
            &[],
        );
        assert!(
            out.contains("sluice_consumergroup_up{consumergroup=\"g\"} 0\n"),
            "{out}"
        );
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, ["sluice_consumergroup_up{consumergroup=\"g\"} 0"]);
    }
}
