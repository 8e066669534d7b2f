//! `perf consume` against the broker: ConsumerPerformance's header and numbers.

use crate::common::{ok, sluice};

#[test]
fn perf_consume_prints_what_consumer_performance_prints() {
    let topic = crate::new_topic("cli-perf-consume", 2, &[]);
    ok(&sluice(
        &[
            "perf",
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "300",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
        None,
    ));
    let out = ok(&sluice(
        &["perf", "consume", "--topic", &topic, "--messages", "300"],
        None,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec",
        "{out}"
    );
    let cols: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(cols.len(), 10, "{out}");
    // 300 records of 100 bytes.
    assert_eq!(
        cols[2],
        format!("{:.4}", 30_000.0 / (1024.0 * 1024.0)),
        "{out}"
    );
    assert_eq!(cols[4], "300", "{out}");
    assert_eq!(cols[6], "0", "no group, no rebalance: {out}");
    assert!(
        cols[0].len() == 23 && cols[0].as_bytes()[10] == b' ',
        "{out}"
    );

    // With a group and more asked than there is: the warning, and what was read.
    let group = sluice_testkit::unique_topic("cli-perf-g");
    let out = sluice(
        &[
            "perf",
            "consume",
            "--topic",
            &topic,
            "--messages",
            "400",
            "--group",
            &group,
            "--timeout",
            "1000",
            "--hide-header",
        ],
        None,
    );
    let stdout = ok(&out);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(stdout.split(", ").nth(4), Some("300"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timeout (1000 ms) exceeded"), "{stderr}");
    // Piped, so no progress line.
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    ok(&sluice(&["topic", "delete", &topic], None));
}
