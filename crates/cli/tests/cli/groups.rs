//! `groups reset-offsets`, `groups delete-offsets` and `groups delete` against the broker.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ok, sluice};

/// The plan's `NEW-OFFSET` per partition, from `reset-offsets` output.
fn plan(out: &str) -> Vec<(i32, i64)> {
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]),
        "{out}"
    );
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[2].parse().unwrap(), cols[3].parse().unwrap())
        })
        .collect()
}

/// The committed offset per partition, from `groups describe` output: partitions it
/// lists with `-` (no committed offset, their lag counted from the reset point) are left
/// out.
fn committed(group: &str) -> Vec<(i32, String)> {
    let out = ok(&sluice(&["groups", "describe", group], None));
    // Rows start with the group; the header, `TOTAL LAG` and the note on partitions
    // without a committed offset do not.
    out.lines()
        .skip(1)
        .filter(|l| l.split_whitespace().next() == Some(group))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[2].parse().unwrap(), cols[3].to_string())
        })
        .filter(|(_, offset)| offset != "-")
        .collect()
}

fn reset(group: &str, target: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["groups", "reset-offsets", group];
    args.extend_from_slice(target);
    args.extend_from_slice(extra);
    sluice(&args, None)
}

/// A `sluice consume --group` left running: an active member of `group`.
struct Member(Child);

impl Member {
    fn join(topic: &str, group: &str) -> Member {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["consume", topic, "--group", group, "--quiet"])
            .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let member = Member(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = ok(&sluice(&["groups", "list"], None));
            if out
                .lines()
                .any(|l| l.starts_with(group) && l.contains("Stable"))
            {
                return member;
            }
            assert!(
                Instant::now() < deadline,
                "the group never got stable: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn reset_offsets_plans_every_spec_and_commits_only_with_execute() {
    let topic = crate::new_topic("cli-reset", 2, &[]);
    let group = sluice_testkit::unique_topic("cli-reset-g");
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    ok(&sluice(
        &["produce", &topic, "--partition", "0"],
        Some(&input),
    ));
    ok(&sluice(
        &["consume", &topic, "--group", &group, "--count", "10", "-q"],
        None,
    ));
    assert_eq!(committed(&group), [(0, "10".to_string())]);
    let all = ["--topic", topic.as_str()];
    let p0 = format!("{topic}:0");
    let first = ["--topic", p0.as_str()];

    // Dry run by default: the plan, nothing committed.
    let out = reset(&group, &all, &["--to-earliest"]);
    assert_eq!(plan(&ok(&out)), [(0, 0), (1, 0)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--execute"));
    assert_eq!(committed(&group), [(0, "10".to_string())]);

    let out = ok(&reset(&group, &all, &["--to-latest", "--dry-run"]));
    assert_eq!(plan(&out), [(0, 10), (1, 0)]);
    // Out of range offsets move to the log's end.
    let out = reset(&group, &first, &["--to-offset", "100"]);
    assert_eq!(plan(&ok(&out)), [(0, 10)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the log"));
    let out = ok(&reset(&group, &first, &["--shift-by", "-3"]));
    assert_eq!(plan(&out), [(0, 7)]);
    // Every record is younger than an hour; none was written in 2099.
    let out = ok(&reset(&group, &first, &["--by-duration", "PT1H"]));
    assert_eq!(plan(&out), [(0, 0)]);
    let out = ok(&reset(
        &group,
        &all,
        &["--to-datetime", "2099-01-01T00:00:00Z"],
    ));
    assert_eq!(plan(&out), [(0, 10), (1, 0)]);

    let out = ok(&reset(&group, &first, &["--to-offset", "4", "--execute"]));
    assert_eq!(plan(&out), [(0, 4)]);
    assert_eq!(committed(&group), [(0, "4".to_string())]);
    let out = ok(&reset(&group, &first, &["--shift-by", "2", "--execute"]));
    assert_eq!(plan(&out), [(0, 6)]);
    assert_eq!(committed(&group), [(0, "6".to_string())]);

    // Refused while the group has an active member.
    let member = Member::join(&topic, &group);
    let out = reset(&group, &all, &["--to-earliest", "--execute"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can only be reset if the group") && err.contains("Stable"),
        "{err}"
    );
    let out = sluice(&["groups", "delete", &group], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NonEmptyGroup"), "{err}");
    drop(member);
    ok(&sluice(&["topic", "delete", &topic], None));
}

#[test]
fn delete_offsets_and_delete_groups() {
    let topic = crate::new_topic("cli-delete", 2, &[]);
    let group = sluice_testkit::unique_topic("cli-delete-g");
    for p in ["0", "1"] {
        ok(&sluice(
            &["produce", &topic, "--partition", p],
            Some("a\nb\n"),
        ));
    }
    ok(&sluice(
        &["consume", &topic, "--group", &group, "--count", "4", "-q"],
        None,
    ));
    assert_eq!(
        committed(&group),
        [(0, "2".to_string()), (1, "2".to_string())]
    );

    let out = ok(&sluice(
        &[
            "groups",
            "delete-offsets",
            &group,
            "--topic",
            &format!("{topic}:1"),
        ],
        None,
    ));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["TOPIC", "PARTITION", "STATUS"],
            vec![&topic, "1", "Successful"]
        ],
        "{out}"
    );
    assert_eq!(committed(&group), [(0, "2".to_string())]);

    let out = ok(&sluice(&["groups", "delete", &group], None));
    assert_eq!(
        out.trim(),
        format!("Deletion of requested consumer groups ('{group}') was successful.")
    );
    let out = ok(&sluice(&["groups", "list"], None));
    assert!(!out.lines().any(|l| l.starts_with(&group)), "{out}");
    let out = sluice(&["groups", "delete", &group], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GroupIdNotFound"), "{err}");
    ok(&sluice(&["topic", "delete", &topic], None));
}
