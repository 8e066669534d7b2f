//! `consume` with kcat's `-o` forms, `-f` tokens, `-J` and `-Z`; `produce` from files,
//! with nulls, a partition and timestamps. Against the broker.

use crate::common::{ok, sluice};

#[test]
fn consume_takes_kcat_offsets_formats_and_json() {
    let topic = crate::new_topic("cli-kcat", 1, &[]);
    // Offsets 0..3 at t=1000, 3..5 at t=2000.
    ok(&sluice(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "-H",
            "h=1",
            "--timestamp",
            "1000",
        ],
        Some("a:v0\nb:v1\nc:v2\n"),
    ));
    ok(&sluice(
        &["produce", &topic, "-K", ":", "--timestamp", "2000"],
        Some("d:v3\ne:v4\n"),
    ));
    // The offsets read with `extra`; on a mismatch the failure shows what sluice said
    // on stderr (warnings, retries), not only what it printed.
    let expect = |extra: &[&str], offsets: &str| {
        let mut args = vec!["consume", topic.as_str(), "-e", "-f", "%o "];
        args.extend_from_slice(extra);
        let out = sluice(&args, None);
        assert_eq!(
            ok(&out),
            offsets,
            "{extra:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    expect(&["-o", "beginning"], "0 1 2 3 4 ");
    expect(&["-o", "end"], "");
    expect(&["-o", "3"], "3 4 ");
    expect(&["-o", "-2"], "3 4 ");
    expect(&["-o", "-20"], "0 1 2 3 4 ");
    expect(&["-o", "s@1500"], "3 4 ");
    expect(&["-o", "e@2000"], "0 1 2 ");
    expect(&["-o", "1", "-o", "e@2000"], "1 2 ");
    let out = sluice(&["consume", &topic, "-e", "-o", "yesterday"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s@<ms>"));

    let out = ok(&sluice(
        &[
            "consume",
            &topic,
            "-e",
            "-o",
            "2",
            "-f",
            "%t|%p|%o|%k|%K|%s|%S|%h|%T%%\\n",
        ],
        None,
    ));
    assert_eq!(
        out,
        format!("{topic}|0|2|c|1|v2|2|h=1|1000%\n{topic}|0|3|d|1|v3|2||2000%\n{topic}|0|4|e|1|v4|2||2000%\n")
    );

    let out = ok(&sluice(
        &["consume", &topic, "-e", "-o", "2", "-c", "1", "-J"],
        None,
    ));
    assert_eq!(
        out,
        format!(
            "{{\"topic\":\"{topic}\",\"partition\":0,\"offset\":2,\"ts\":1000,\
             \"headers\":[\"h\",\"1\"],\"key\":\"c\",\"payload\":\"v2\"}}\n"
        )
    );
}

#[test]
fn produce_from_files_with_nulls_a_partition_and_a_timestamp() {
    let topic = crate::new_topic("cli-files", 3, &[]);
    let dir = std::env::temp_dir().join(format!("sluice-{topic}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a, "one\ntwo\n").unwrap();
    std::fs::write(&b, "three").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    // Each file is one record; with -l each line is.
    let out = sluice(&["produce", &topic, "-p", "2", a, b], None);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 2 records"));
    ok(&sluice(&["produce", &topic, "-p", "2", "-l", a], None));
    let out = ok(&sluice(
        &["consume", &topic, "-p", "2", "-e", "-f", "%s|"],
        None,
    ));
    assert_eq!(out, "one\ntwo\n|three|one|two|");

    let on_partition_1 = |extra: &[&str]| {
        let mut args = vec!["consume", topic.as_str(), "-p", "1", "-e"];
        args.extend_from_slice(extra);
        ok(&sluice(&args, None))
    };
    // -Z: empty keys and values are null; `-H n` is a header with a null value.
    ok(&sluice(
        &[
            "produce",
            &topic,
            "-p",
            "1",
            "-K",
            ":",
            "-Z",
            "-H",
            "n",
            "--timestamp",
            "1234",
        ],
        Some("k:\n:v\n"),
    ));
    let out = on_partition_1(&["-f", "%k|%s|%S|%K|%h|%T\\n"]);
    assert_eq!(out, "k||-1|1|n=|1234\n|v|1|-1|n=|1234\n");
    let out = on_partition_1(&["-Z", "-f", "%k|%s|%h\\n"]);
    assert_eq!(out, "k|NULL|n=NULL\nNULL|v|n=NULL\n");
    let out = on_partition_1(&["-J", "-c", "1"]);
    assert!(
        out.contains("\"headers\":[\"n\",null],\"key\":\"k\",\"payload\":null"),
        "{out}"
    );
    // Nothing went elsewhere.
    assert_eq!(
        ok(&sluice(&["consume", &topic, "-p", "0", "-e", "-q"], None)).trim(),
        "0 records"
    );
    let _ = std::fs::remove_dir_all(&dir);
    ok(&sluice(&["topic", "delete", &topic], None));
}
