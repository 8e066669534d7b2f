//! `groups describe` and `sluice lag` against a real broker: partitions without a
//! committed offset, unknown groups, members and state, the status over a window, and
//! the Prometheus endpoint of `sluice lag serve`.

use crate::common::{ok, sluice};

mod prometheus;

/// A topic with 10 records on partition 0 and 5 on partition 1, and a group that
/// committed 4 on partition 0 and nothing on partition 1, with no member left.
fn group_with_an_uncommitted_partition(name: &str) -> (String, String) {
    let topic = sluice_testkit::unique_topic(name);
    let group = sluice_testkit::unique_topic(&format!("{name}-g"));
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "2"],
        None,
    ));
    for (p, n) in [("0", 10), ("1", 5)] {
        let input: String = (0..n).map(|i| format!("v{i}\n")).collect();
        ok(&sluice(
            &["produce", &topic, "--partition", p],
            Some(&input),
        ));
    }
    ok(&sluice(
        &[
            "consume",
            &topic,
            "--group",
            &group,
            "--partition",
            "0",
            "--count",
            "4",
            "-q",
        ],
        None,
    ));
    (topic, group)
}

/// A group that committed partition 0 and never partition 1: `groups describe` shows 1
/// with `-` and its lag from the log start, and the total adds both; `sluice lag`
/// watched over a short window sees nothing move and says STOP with the evidence.
#[test]
fn describe_and_lag_count_a_partition_with_no_committed_offset() {
    let (topic, group) = group_with_an_uncommitted_partition("cli-uncommitted");
    let out = ok(&sluice(&["groups", "describe", &group], None));
    let cols = |partition: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|c| c.get(1) == Some(&topic) && c.get(2).map(String::as_str) == Some(partition))
            .unwrap_or_else(|| panic!("no row for partition {partition}: {out}"))
    };
    assert_eq!(&cols("0")[2..6], ["0", "4", "10", "6"], "{out}");
    assert_eq!(&cols("1")[2..6], ["1", "-", "5", "5"], "{out}");
    assert_eq!(out.lines().last(), Some("TOTAL LAG 11"), "{out}");
    assert!(
        out.contains("1 partition(s) without a committed offset"),
        "{out}"
    );

    // Consumers that start at the end would skip partition 1's five records.
    let out = ok(&sluice(
        &["groups", "describe", &group, "--reset", "latest"],
        None,
    ));
    assert_eq!(out.lines().last(), Some("TOTAL LAG 6"), "{out}");

    // One look: too little evidence for a verdict; KEDA at lagThreshold 5 wants
    // ceil(11 / 5) = 3 replicas, capped at the 2 partitions.
    let out = ok(&sluice(
        &["lag", "--group", &group, "--lag-threshold", "5"],
        None,
    ));
    assert!(out.contains("STATUS OK (healthy; 1 of 10 looks)"), "{out}");
    assert!(out.contains("KEDA REPLICAS 2 "), "{out}");
    let out = ok(&sluice(
        &["lag", "--group", &group, "--lag-threshold", "100"],
        None,
    ));
    assert!(out.contains("KEDA REPLICAS 1 "), "{out}");

    // Three looks 0.2 s apart, nothing committed: both partitions stopped.
    let out = ok(&sluice(
        &[
            "lag",
            "--group",
            &group,
            "--watch",
            "0.2",
            "--window",
            "3",
            "--samples",
            "3",
        ],
        None,
    ));
    let last = out.rsplit("\n\n").next().unwrap_or_default();
    assert!(last.contains("STATUS STOP (error; 3 of 3 looks)"), "{out}");
    assert!(
        last.contains(&format!("{topic}-0 STOP: offsets [4, 4, 4] lags [6, 6, 6]")),
        "{out}"
    );
    assert!(
        last.contains(&format!("{topic}-1 STOP: offsets [0, 0, 0] lags [5, 5, 5]")),
        "{out}"
    );
    assert_eq!(out.matches("TOTAL LAG 11").count(), 3, "{out}");
}

#[test]
fn an_unknown_group_is_an_error() {
    let group = sluice_testkit::unique_topic("cli-no-such-group");
    for args in [
        vec!["groups", "describe", group.as_str()],
        vec!["groups", "describe", group.as_str(), "--state"],
        vec!["groups", "describe", group.as_str(), "--members"],
        vec!["lag", "--group", group.as_str()],
    ] {
        let out = sluice(&args, None);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("group {group} does not exist")),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a table");
    }
}

/// `--members` and `--state` of a group with a live member (a `sluice consume --group`
/// left running).
#[test]
fn describe_members_and_state_of_a_live_group() {
    let topic = sluice_testkit::unique_topic("cli-members");
    let group = sluice_testkit::unique_topic("cli-members-g");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "2"],
        None,
    ));
    let mut member = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["consume", &topic, "--group", &group, "-q"])
        .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run sluice consume");
    // Wait for the member to join and be assigned both partitions.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let members = loop {
        let out = sluice(&["groups", "describe", &group, "--members"], None);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && text.contains(&format!("{topic}-0,{topic}-1")) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the member never showed: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let state = sluice(&["groups", "describe", &group, "--state"], None);
    member.kill().expect("stop the member");
    let _ = member.wait();

    let row: Vec<&str> = members
        .lines()
        .find(|l| l.starts_with(&group))
        .unwrap_or_else(|| panic!("no member row: {members}"))
        .split_whitespace()
        .collect();
    // GROUP MEMBER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT
    assert!(row[1].starts_with("sluice-cli"), "{members}");
    assert!(row[2].contains("127.0.0.1"), "{members}");
    assert_eq!(row[3], "sluice-cli", "{members}");
    assert_eq!(
        &row[4..],
        ["2", &format!("{topic}-0,{topic}-1")],
        "{members}"
    );

    let state = ok(&state);
    let row: Vec<&str> = state
        .lines()
        .find(|l| l.starts_with(&group))
        .unwrap_or_else(|| panic!("no state row: {state}"))
        .split_whitespace()
        .collect();
    // GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS
    let bootstrap = sluice_testkit::bootstrap();
    let port = bootstrap.rsplit(':').next().unwrap();
    assert!(row[1].ends_with(&format!(":{port}")), "{state}");
    assert!(row[2].starts_with('(') && row[2].ends_with(')'), "{state}");
    assert_eq!(&row[4..], ["Stable", "1"], "{state}");
    assert!(!row[3].is_empty() && row[3] != "-", "{state}");
}

/// A `sluice lag serve --group G --listen 127.0.0.1:0` of a test's own, killed when
/// dropped.
pub(crate) struct LagServer {
    child: std::process::Child,
    /// Where it serves, `host:port`.
    pub(crate) addr: String,
}

impl LagServer {
    /// Starts the exporter for `group` with `extra` arguments; returns once it said
    /// where it listens.
    pub(crate) fn start(group: &str, extra: &[&str]) -> LagServer {
        use std::io::{BufRead, BufReader};

        let mut args = vec!["lag", "serve", "--group", group, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run sluice lag serve");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .strip_prefix("serving http://")
            .and_then(|a| a.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("no address: {first:?}"))
            .to_string();
        LagServer { child, addr }
    }

    /// `GET path` over HTTP/1.1: the whole answer, head and body.
    pub(crate) fn scrape(&self, path: &str) -> String {
        use std::io::{Read, Write};

        let mut conn = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Drop for LagServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sluice lag serve` answers a scrape over HTTP with kafka_exporter's metrics, the
/// status over its window (here a STOP: nothing moves) and KEDA's replica count.
#[test]
fn lag_serve_exports_prometheus_metrics() {
    let (topic, group) = group_with_an_uncommitted_partition("cli-serve");
    let server = LagServer::start(
        &group,
        &["--interval", "0.2", "--window", "3", "--lag-threshold", "5"],
    );
    let scrape = |path: &str| server.scrape(path);
    let stopped = format!("sluice_consumergroup_status{{consumergroup=\"{group}\"}} 3\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = scrape("/metrics");
        if page.contains(&stopped) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "never STOP: {page}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let not_found = scrape("/nothing");
    drop(server);

    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("content-type: text/plain; version=0.0.4"),
        "{page}"
    );
    let (g, t) = (group.as_str(), topic.as_str());
    for line in [
        format!("kafka_consumergroup_current_offset{{consumergroup=\"{g}\",topic=\"{t}\",partition=\"0\"}} 4"),
        format!("kafka_consumergroup_lag{{consumergroup=\"{g}\",topic=\"{t}\",partition=\"0\"}} 6"),
        format!("kafka_consumergroup_lag{{consumergroup=\"{g}\",topic=\"{t}\",partition=\"1\"}} 5"),
        format!("kafka_consumergroup_lag_sum{{consumergroup=\"{g}\",topic=\"{t}\"}} 11"),
        format!("kafka_consumergroup_members{{consumergroup=\"{g}\"}} 0"),
        format!("kafka_topic_partition_current_offset{{topic=\"{t}\",partition=\"1\"}} 5"),
        format!("kafka_topic_partition_oldest_offset{{topic=\"{t}\",partition=\"1\"}} 0"),
        format!("sluice_consumergroup_partition_committed{{consumergroup=\"{g}\",topic=\"{t}\",partition=\"1\"}} 0"),
        format!("sluice_consumergroup_keda_replicas{{consumergroup=\"{g}\"}} 2"),
        format!("sluice_consumergroup_up{{consumergroup=\"{g}\"}} 1"),
        // One broker, replication factor 1: fully replicated, led by its only replica.
        format!("kafka_topic_partitions{{topic=\"{t}\"}} 2"),
        format!("kafka_topic_partition_replicas{{topic=\"{t}\",partition=\"1\"}} 1"),
        format!("kafka_topic_partition_in_sync_replica{{topic=\"{t}\",partition=\"1\"}} 1"),
        format!("kafka_topic_partition_under_replicated_partition{{topic=\"{t}\",partition=\"0\"}} 0"),
        format!("kafka_topic_partition_leader_is_preferred{{topic=\"{t}\",partition=\"0\"}} 1"),
        format!("sluice_topic_offline_partitions{{topic=\"{t}\"}} 0"),
        // Nobody joined or left while it looked.
        format!("sluice_consumergroup_rebalances_total{{consumergroup=\"{g}\"}} 0"),
    ] {
        assert!(page.lines().any(|l| l == line), "{line} missing: {page}");
    }
    // Behind, with nothing produced across the window: no estimate of the time lag.
    assert!(
        !page.contains(&format!(
            "sluice_consumergroup_lag_seconds{{consumergroup=\"{g}\""
        )),
        "{page}"
    );
    assert!(
        page.contains("# TYPE sluice_consumergroup_lag_seconds gauge\n"),
        "{page}"
    );
    // Partition 1 has no committed offset: no current-offset series for it.
    assert!(
        !page.contains(&format!("kafka_consumergroup_current_offset{{consumergroup=\"{g}\",topic=\"{t}\",partition=\"1\"}}")),
        "{page}"
    );
    assert!(
        page.contains("# TYPE sluice_consumergroup_rebalances_total counter\n"),
        "{page}"
    );
    let leader = format!("kafka_topic_partition_leader{{topic=\"{t}\",partition=\"0\"}} ");
    let id = page
        .lines()
        .find_map(|l| l.strip_prefix(leader.as_str()))
        .unwrap_or_else(|| panic!("no leader: {page}"));
    assert!(id.parse::<i32>().is_ok_and(|id| id >= 0), "{page}");
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
}

/// The alerts people copy (deploy/prometheus/alerts.yml) parse and have the six rules,
/// checked by `promtool` (Debian's `prometheus` package, which `cargo xtask test`
/// installs).
#[test]
fn the_alert_rules_pass_promtool() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/alerts.yml"
    );
    let out = match std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            // `cargo xtask test` installs it; only a run by hand may lack it.
            assert!(
                std::env::var_os("CI").is_none(),
                "no promtool in CI ({e}): cargo xtask test installs Debian's prometheus package"
            );
            eprintln!("skipped: no promtool ({e}); apt-get install prometheus");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCESS: 6 rules found"), "{text}");
}
