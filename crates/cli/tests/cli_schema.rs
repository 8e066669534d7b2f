//! `sluice produce` / `sluice consume` with `--value-format`, against a real broker and a
//! real schema registry (`cargo xtask registry up`, or `cargo xtask test`).

mod common;

use common::{ok, sluice};

/// The first `count` values of `topic`, consumed with `--value-format format`, as JSON.
fn consumed(topic: &str, format: &str, count: u32, url: &str) -> Vec<serde_json::Value> {
    let count = count.to_string();
    let out = ok(&sluice(
        &[
            "consume",
            topic,
            "-c",
            &count,
            "--value-format",
            format,
            "--registry",
            url,
        ],
        None,
    ));
    out.lines()
        .map(|l| serde_json::from_str(l.split_once("value:").unwrap().1).unwrap())
        .collect()
}

const SCHEMA: &str = r#"{"type": "record", "name": "Payment", "namespace": "cli.test",
  "fields": [{"name": "id", "type": "long"}, {"name": "who", "type": "string"},
             {"name": "note", "type": ["null", "string"], "default": null}]}"#;

/// JSON lines in, Avro on the topic (magic byte 0 + the registered id), the same JSON
/// out of `consume --value-format avro`; a raw consume shows the framing.
#[test]
fn avro_json_lines_round_trip_through_the_registry() {
    let url = sluice_testkit::registry_url();
    let topic = sluice_testkit::unique_topic("cli-avro");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let dir = std::env::temp_dir().join(format!("{topic}-schema"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema_file = dir.join("payment.avsc");
    std::fs::write(&schema_file, SCHEMA).unwrap();

    let lines = [
        r#"{"id": 1, "who": "ada", "note": null}"#,
        r#"{"id": 2, "who": "bob", "note": "late"}"#,
        r#"{"id": 3000000000, "who": "cy", "note": null}"#,
    ];
    let out = sluice(
        &[
            "produce",
            &topic,
            "--value-format",
            "avro",
            "--schema-file",
            schema_file.to_str().unwrap(),
            "--registry",
            &url,
        ],
        Some(&(lines.join("\n") + "\n")),
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("produced 3 records"), "{stderr}");
    let id: u32 = stderr
        .split("schema id ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no schema id in {stderr}"));
    assert!(
        stderr.contains(&format!("(subject {topic}-value)")),
        "{stderr}"
    );

    let out = ok(&sluice(
        &[
            "consume",
            &topic,
            "-c",
            "3",
            "--value-format",
            "avro",
            "--registry",
            &url,
        ],
        None,
    ));
    let values: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l.split_once("value:").unwrap().1).unwrap())
        .collect();
    // Avro's JSON for a union names no branch here: `Value` to JSON flattens it.
    let expected: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values, expected, "{out}");

    // Raw: the Confluent framing, magic byte 0 and the 4-byte id (printed as text when
    // the bytes happen to be UTF-8, else as hex).
    let out = ok(&sluice(&["consume", &topic, "-c", "1"], None));
    let raw = out.split_once("value:").unwrap().1;
    let mut header = vec![0u8];
    header.extend_from_slice(&id.to_be_bytes());
    let as_text = String::from_utf8(header.clone()).unwrap();
    let as_hex: String = header.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        raw.starts_with(&as_text) || raw.starts_with(&as_hex),
        "{raw:?} (id {id})"
    );

    // A line that is not the schema's shape fails the run, naming the line.
    let out = sluice(
        &[
            "produce",
            &topic,
            "--value-format",
            "avro",
            "--schema-file",
            schema_file.to_str().unwrap(),
            "--registry",
            &url,
        ],
        Some("{\"id\": \"one\"}\n"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit the schema"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `consume --value-format json-schema` and `--value-format protobuf` print what
/// sluice-schema's serializers framed, as JSON.
#[test]
fn json_schema_and_protobuf_values_print_as_json() {
    use sluice_schema::{JsonSerializer, ProtobufSerializer, Registry};
    use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};

    let url = sluice_testkit::registry_url();
    let json_topic = sluice_testkit::unique_topic("cli-json");
    let proto_topic = sluice_testkit::unique_topic("cli-proto");
    for t in [&json_topic, &proto_topic] {
        ok(&sluice(&["topic", "create", t, "--partitions", "1"], None));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Registry::new(&url).unwrap();
        let json = JsonSerializer::new(
            registry.clone(),
            r#"{"title": "Point", "type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}"#,
        )
        .unwrap();
        let proto = ProtobufSerializer::new(
            registry,
            "syntax = \"proto3\"; package cli; message Point { int64 x = 1; string label = 2; }",
            "cli.Point",
            &[],
        )
        .unwrap();
        let producer = Producer::new(ProducerConfig::new(sluice_testkit::bootstrap()))
            .await
            .unwrap();
        for i in 0..2i64 {
            let value = serde_json::json!({"x": i, "y": -i});
            let bytes = json.serialize(&json_topic, &value).await.unwrap();
            let d = producer
                .send(ProducerRecord::new(&json_topic, bytes).partition(0))
                .await
                .unwrap();
            d.await.unwrap();
            let value = serde_json::json!({"x": i + 10, "label": format!("p{i}")});
            let bytes = proto.serialize_json(&proto_topic, &value).await.unwrap();
            let d = producer
                .send(ProducerRecord::new(&proto_topic, bytes).partition(0))
                .await
                .unwrap();
            d.await.unwrap();
        }
        producer.close(std::time::Duration::from_secs(10)).await.unwrap();
    });

    let values = |topic: &str, format: &str| consumed(topic, format, 2, &url);
    assert_eq!(
        values(&json_topic, "json-schema"),
        vec![
            serde_json::json!({"x": 0, "y": 0}),
            serde_json::json!({"x": 1, "y": -1})
        ]
    );
    // Protobuf's JSON mapping writes int64 as a string.
    assert_eq!(
        values(&proto_topic, "protobuf"),
        vec![
            serde_json::json!({"x": "10", "label": "p0"}),
            serde_json::json!({"x": "11", "label": "p1"})
        ]
    );
}

/// `produce --value-format json-schema|protobuf --schema-file F`: JSON lines in, framed
/// values registered under `<topic>-value` on the topic, the same values out of
/// `consume`; a line that breaks the schema fails the run, naming it.
#[test]
fn json_schema_and_protobuf_json_lines_round_trip_through_the_registry() {
    use sluice_schema::{framing, Registry, SchemaType, Version};

    let url = sluice_testkit::registry_url();
    let dir = std::env::temp_dir().join(sluice_testkit::unique_topic("cli-schemas"));
    std::fs::create_dir_all(&dir).unwrap();
    let json_file = dir.join("point.json");
    std::fs::write(
        &json_file,
        r#"{"title": "cli.Point", "type": "object",
            "properties": {"x": {"type": "integer"}, "label": {"type": "string"}},
            "required": ["x"], "additionalProperties": false}"#,
    )
    .unwrap();
    let proto_file = dir.join("point.proto");
    std::fs::write(
        &proto_file,
        "syntax = \"proto3\"; package cli;\n\
         message Other { bool b = 1; }\n\
         message Point { int64 x = 1; string label = 2; message Tag { string v = 1; } repeated Tag tags = 3; }\n",
    )
    .unwrap();
    let lines = [
        r#"{"x": 1, "label": "a"}"#,
        r#"{"x": 2}"#,
        r#"{"x": 3, "label": "c"}"#,
    ];
    let produce =
        |topic: &str, format: &str, file: &std::path::Path, extra: &[&str], input: &str| {
            let mut args = vec![
                "produce",
                topic,
                "--value-format",
                format,
                "--schema-file",
                file.to_str().unwrap(),
                "--registry",
                &url,
            ];
            args.extend_from_slice(extra);
            sluice(&args, Some(input))
        };
    let consume = |topic: &str, format: &str| consumed(topic, format, 3, &url);
    let registered = |topic: &str| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            Registry::new(&url)
                .unwrap()
                .version(&format!("{topic}-value"), Version::Latest)
                .await
                .unwrap()
        })
    };
    let input = lines.join("\n") + "\n";

    // JSON Schema.
    let topic = sluice_testkit::unique_topic("cli-json-produce");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let out = produce(&topic, "json-schema", &json_file, &[], &input);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("produced 3 records"), "{stderr}");
    assert!(
        stderr.contains(&format!("(subject {topic}-value)")),
        "{stderr}"
    );
    let schema = registered(&topic);
    assert_eq!(schema.schema.schema_type, SchemaType::Json);
    assert!(
        stderr.contains(&format!("schema id {}", schema.id)),
        "{stderr}"
    );
    let expected: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(consume(&topic, "json-schema"), expected);
    // A line that breaks the schema (x is no integer) is refused before it is produced.
    let out = produce(&topic, "json-schema", &json_file, &[], "{\"x\": \"one\"}\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit the schema"), "{stderr}");

    // Protobuf: a message that is not the file's first, with a nested one.
    let topic = sluice_testkit::unique_topic("cli-proto-produce");
    ok(&sluice(
        &["topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    let mut input = input.clone();
    input.push_str(r#"{"x": 4, "tags": [{"v": "t1"}, {"v": "t2"}]}"#);
    input.push('\n');
    let out = produce(
        &topic,
        "protobuf",
        &proto_file,
        &["--message", "cli.Point"],
        &input,
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("produced 4 records"), "{stderr}");
    let schema = registered(&topic);
    assert_eq!(schema.schema.schema_type, SchemaType::Protobuf);
    // Protobuf's JSON mapping: int64 as a string, default values left out.
    assert_eq!(
        consume(&topic, "protobuf"),
        vec![
            serde_json::json!({"x": "1", "label": "a"}),
            serde_json::json!({"x": "2"}),
            serde_json::json!({"x": "3", "label": "c"}),
        ]
    );
    // The raw bytes: the id registered, then the index list [1] (Point is the second
    // message): count 1 and index 1, zig-zag, 2 and 2.
    let out = ok(&sluice(&["consume", &topic, "-c", "1"], None));
    let raw = out.split_once("value:").unwrap().1;
    let mut header = Vec::new();
    framing::write_header(schema.id, &mut header);
    header.extend_from_slice(&[2, 2]);
    let as_text = String::from_utf8(header.clone()).unwrap();
    let as_hex: String = header.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        raw.starts_with(&as_text) || raw.starts_with(&as_hex),
        "{raw:?} (id {})",
        schema.id
    );
    let out = produce(&topic, "protobuf", &proto_file, &[], &input);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--message"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = produce(
        &topic,
        "protobuf",
        &proto_file,
        &["--message", "cli.Point"],
        "{\"x\": {}}\n",
    );
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
