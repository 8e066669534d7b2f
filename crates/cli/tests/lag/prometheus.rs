//! `sluice lag serve` scraped by a real Prometheus server (Debian's `prometheus`
//! package, which `cargo xtask test` installs) evaluating `deploy/prometheus/alerts.yml`:
//! a group consumes, stalls while records keep coming, and catches up, and what the
//! queries and alerts of Prometheus's HTTP API say at each step.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::LagServer;
use crate::common::{ok, sluice};

/// The Prometheus binary: `SLUICE_PROMETHEUS` (set by `cargo xtask test`), else
/// `prometheus` on the PATH. `None` when neither exists.
fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_PROMETHEUS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// A Prometheus server of this test's own, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts `binary` scraping `target` every second and evaluating `rules` every
    /// second; waits until it is ready.
    fn start(binary: &Path, target: &str, rules: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(sluice_testkit::unique_topic("sluice-prometheus"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("alerts.yml"), rules).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - alerts.yml\n\
                 scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // A free port: bound, read and released (the window for another taker is tiny).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let prometheus = Prometheus { child, addr, dir };
        prometheus.wait_until("ready", Duration::from_secs(60), || {
            prometheus
                .get("/-/ready")
                .filter(|(status, _)| *status == 200)
        });
        prometheus
    }

    /// `GET path`: the status code and the body, `None` when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut conn = TcpStream::connect(&self.addr).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        // HTTP/1.0: the answer is not chunked and ends with the connection.
        write!(conn, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }

    /// The value of an instant query returning one series, `None` while it returns none.
    fn query(&self, promql: &str) -> Option<f64> {
        let (status, body) = self.get(&format!("/api/v1/query?query={}", encode(promql)))?;
        assert_eq!(status, 200, "{promql}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let result = answer["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{promql}: more than one series: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// The state (`pending`, `firing`) of alert `name` for `group`, `None` when inactive.
    fn alert(&self, name: &str, group: &str) -> Option<String> {
        let (_, body) = self.get("/api/v1/alerts")?;
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["consumergroup"] == group)
            .and_then(|a| a["state"].as_str().map(String::from))
    }

    /// Polls `probe` until it gives something; fails the test, with Prometheus's log,
    /// after `limit`.
    fn wait_until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "Prometheus: not {what} within {limit:?}; its log ends:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query for a URL.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The alert rules as shipped, with every `for:` shortened to 3 s so a test sees them
/// go pending and then fire; the expressions and thresholds are the shipped ones.
fn rules_with_short_holds() -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let rules: String = shipped
        .lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 3s\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(rules.matches("for: 3s").count(), 6, "{rules}");
    rules
}

/// `n` values, one per line.
fn lines(n: usize) -> String {
    (0..n).map(|i| format!("v{i}\n")).collect()
}

/// Reads what the group has not read yet, to the end of the topic, and commits.
fn catch_up(topic: &str, group: &str) {
    ok(&sluice(
        &["consume", topic, "--group", group, "-e", "-q"],
        None,
    ));
}

#[test]
fn prometheus_sees_a_group_consume_stall_and_catch_up_and_the_alerts_fire() {
    let Some(binary) = prometheus_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Prometheus in CI: cargo xtask test installs Debian's prometheus package"
        );
        eprintln!("skipped: no prometheus (apt-get install prometheus, or cargo xtask test)");
        return;
    };
    let topic = sluice_testkit::unique_topic("cli-prometheus");
    let group = sluice_testkit::unique_topic("cli-prometheus-g");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "2"],
        None,
    ));
    // Consumes: 200 records read and committed.
    ok(&sluice(&["produce", &topic], Some(&lines(200))));
    catch_up(&topic, &group);

    let server = LagServer::start(&group, &["--interval", "0.5", "--window", "3"]);
    let prometheus = Prometheus::start(&binary, &server.addr, &rules_with_short_holds());
    let g = group.as_str();
    let lag_sum = format!("sum(kafka_consumergroup_lag_sum{{consumergroup=\"{g}\"}})");
    let offsets = format!("sum(kafka_consumergroup_current_offset{{consumergroup=\"{g}\"}})");
    let status = format!("sluice_consumergroup_status{{consumergroup=\"{g}\"}}");
    let minute = Duration::from_secs(60);
    prometheus.wait_until("scraping the exporter", minute, || {
        (prometheus.query("up{job=\"sluice\"}") == Some(1.0)).then_some(())
    });
    prometheus.wait_until("at lag 0 with 200 committed", minute, || {
        (prometheus.query(&lag_sum) == Some(0.0) && prometheus.query(&offsets) == Some(200.0))
            .then_some(())
    });
    assert_eq!(prometheus.query(&status), Some(0.0), "OK while caught up");
    let seconds = format!("max(sluice_consumergroup_lag_seconds{{consumergroup=\"{g}\"}})");
    assert_eq!(
        prometheus.query(&seconds),
        Some(0.0),
        "0 s behind while caught up"
    );
    assert_eq!(prometheus.alert("SluiceConsumerLagOverSla", g), None);

    // Stalls: 1,500 more records and nobody reading them. The lag crosses the rule's
    // 1,000, the committed offsets stay put (STOP), and both alerts go pending first,
    // then fire.
    ok(&sluice(&["produce", &topic], Some(&lines(1500))));
    prometheus.wait_until("at lag 1500", minute, || {
        (prometheus.query(&lag_sum) == Some(1500.0)).then_some(())
    });
    for alert in [
        "SluiceConsumerLagOverSla",
        "SluiceConsumerGroupLagStatusError",
    ] {
        let mut seen = Vec::new();
        prometheus.wait_until(&format!("{alert} firing"), minute, || {
            let state = prometheus.alert(alert, g)?;
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            (state == "firing").then_some(())
        });
        assert_eq!(seen, ["pending", "firing"], "{alert} went {seen:?}");
    }
    assert_eq!(prometheus.query(&status), Some(3.0), "STOP while stalled");
    assert_eq!(prometheus.query(&offsets), Some(200.0));

    // Catches up: the lag is back to 0, the status OK, and the alerts resolve.
    catch_up(&topic, &group);
    prometheus.wait_until("back at lag 0 with 1,700 committed", minute, || {
        (prometheus.query(&lag_sum) == Some(0.0) && prometheus.query(&offsets) == Some(1700.0))
            .then_some(())
    });
    prometheus.wait_until("OK and the alerts resolved", minute, || {
        (prometheus.query(&status) == Some(0.0)
            && prometheus.alert("SluiceConsumerLagOverSla", g).is_none()
            && prometheus
                .alert("SluiceConsumerGroupLagStatusError", g)
                .is_none())
        .then_some(())
    });
}
