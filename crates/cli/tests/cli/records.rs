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
    // kcat's envelope: `broker` is the partition's leader (the one broker here).
    let broker = json_field(&out, "broker");
    assert!(broker.parse::<i32>().is_ok_and(|id| id >= 0), "{out}");
    assert_eq!(
        out,
        format!(
            "{{\"topic\":\"{topic}\",\"partition\":0,\"offset\":2,\"tstype\":\"create\",\"ts\":1000,\
             \"broker\":{broker},\"headers\":[\"h\",\"1\"],\"key\":\"c\",\"payload\":\"v2\"}}\n"
        )
    );
}

/// The text of a top-level number or string field of one line of `-J` output.
fn json_field(line: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    match &v[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `--key-format`, `--value-format` and `--header-format` with the plain formats (Java's
/// big-endian integers, hex): produced and read back; a key that does not decode prints
/// raw with a warning; a broker-timestamped topic says `logappend`.
#[test]
fn keys_values_and_headers_decode_as_integers_and_hex() {
    let topic = crate::new_topic("cli-decode", 1, &["message.timestamp.type=LogAppendTime"]);
    ok(&sluice(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "-H",
            "h=1",
            "--value-format",
            "int64",
        ],
        Some("k:42\nkey:-7\n"),
    ));
    let out = sluice(&["produce", &topic, "--value-format", "int32"], Some("x\n"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a 32-bit integer: x"),
        "{out:?}"
    );

    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", topic.as_str(), "-e"];
        args.extend_from_slice(extra);
        sluice(&args, None)
    };
    let f = ["-f", "%k|%s|%h\\n"];
    let out = ok(&consume(&[&["--value-format", "int64"][..], &f].concat()));
    assert_eq!(out, "k|42|h=1\nkey|-7|h=1\n");
    let out = ok(&consume(
        &[
            &[
                "--value-format",
                "hex",
                "--key-format",
                "hex",
                "--header-format",
                "hex",
            ][..],
            &f,
        ]
        .concat(),
    ));
    assert_eq!(
        out,
        "6b|000000000000002a|h=31\n6b6579|fffffffffffffff9|h=31\n"
    );

    // A 1-byte key is no int32: printed raw, with a warning naming the record.
    let out = consume(
        &[
            &["--key-format", "int32", "--value-format", "int64"][..],
            &f,
        ]
        .concat(),
    );
    assert_eq!(ok(&out), "k|42|h=1\nkey|-7|h=1\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition 0 offset 0: key does not decode: Int32 needs 4 bytes, not 1"),
        "{err}"
    );

    // -J embeds decoded numbers as numbers, hex as strings.
    let out = ok(&consume(&[
        "--value-format",
        "int64",
        "--header-format",
        "hex",
        "-J",
        "-c",
        "1",
    ]));
    assert!(
        out.contains("\"headers\":[\"h\",\"31\"],\"key\":\"k\",\"payload\":42}"),
        "{out}"
    );
    assert_eq!(json_field(&out, "tstype"), "logappend", "{out}");

    let out = consume(&["--header-format", "avro"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("header values are raw, int32, int64 or hex"),
        "{out:?}"
    );
}

/// `sluice consume ... | head -1`: the reader going away ends the run quietly, with
/// success, as for kcat (it used to print "error: Broken pipe").
#[test]
fn a_closed_pipe_ends_consume_quietly() {
    use std::io::{BufRead, BufReader};

    let topic = crate::new_topic("cli-pipe", 1, &[]);
    let input: String = (0..20_000).map(|i| format!("v{i}\n")).collect();
    ok(&sluice(&["produce", &topic], Some(&input)));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["consume", &topic, "-e", "-f", "%s\\n"])
        .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sluice consume");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The read end is closed here, with most of the 20,000 lines still to print.
    assert_eq!(first, "v0\n");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("error"), "{err}");
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
