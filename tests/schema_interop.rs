//! Avro in the Confluent wire format between Sluice and a Java serializer, both ways:
//! Apicurio's Kafka serdes (`tests/java/AvroInterop.java`, jars from Maven Central)
//! configured for Confluent framing (the id in the payload, 4 bytes, no headers).
//!
//! Needs a broker, a registry (`cargo xtask kafka up`, `cargo xtask registry up`), Java
//! and Maven; `cargo xtask test` has them all.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice_schema::{AvroDeserializer, AvroSerializer, Registry};

/// The schema `AvroInterop.java` writes with (the same text).
const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount: f64,
}

/// Apicurio's native API (what its Java serdes speak) beside the Confluent-compatible one.
fn native_api(ccompat: &str) -> String {
    let base = ccompat
        .strip_suffix("/apis/ccompat/v7")
        .unwrap_or_else(|| panic!("{ccompat} is not Apicurio's /apis/ccompat/v7"));
    format!("{base}/apis/registry/v2")
}

/// The Apicurio serde jars, resolved by Maven once (cached in ~/.m2 and in target/; one
/// resolution per test process, however many tests ask at once).
fn serde_classpath() -> String {
    static CLASSPATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLASSPATH.get_or_init(resolve_classpath).clone()
}

fn resolve_classpath() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out: PathBuf = root.join("target/java-interop/apicurio-serdes.classpath");
    if let Ok(cp) = std::fs::read_to_string(&out) {
        if !cp.trim().is_empty() {
            return cp.trim().to_string();
        }
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(root.join("tests/java/apicurio-serdes/pom.xml"))
        .arg("dependency:build-classpath")
        .arg(format!("-Dmdep.outputFile={}", out.display()))
        .stdin(Stdio::null())
        .status()
        .expect("mvn (Maven) on the PATH");
    assert!(
        status.success(),
        "mvn could not resolve the Apicurio serdes"
    );
    std::fs::read_to_string(&out).unwrap().trim().to_string()
}

/// Runs `AvroInterop.java`; returns its stdout lines.
fn java(args: &[&str]) -> Vec<String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/AvroInterop.java");
    let classpath = format!("{}:{}", serde_classpath(), sluice_testkit::java_classpath());
    let out = Command::new(sluice_testkit::java())
        .args(["-XX:+UseSerialGC", "-Xmx256m", "-cp", &classpath])
        .arg(source)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("java (a JDK 17+ on PATH or JAVA_HOME)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "java {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// What Java's `AvroKafkaSerializer` wrote, Sluice's `AvroDeserializer` reads: the same
/// orders, in order, with the id the Confluent-compatible API knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_reads_what_the_java_serializer_wrote() {
    const N: usize = 50;
    let url = sluice_testkit::registry_url();
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = common::cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("avro-from-java");
    // Cold: no warm-up record, which is not Avro and which the Java side would fail on.
    common::create_topic_cold(&cluster, &topic, 1).await;

    let native = native_api(&url);
    let n = N.to_string();
    let lines = java(&["produce", &bootstrap, &topic, &native, &n]);
    assert_eq!(lines, vec![format!("PRODUCED\t{N}")]);

    let registry = Registry::new(&url).unwrap();
    let de = AvroDeserializer::new(registry.clone());
    let records = common::read_partition(&cluster, &topic, 0).await;
    assert_eq!(records.len(), N);
    let mut ids = std::collections::BTreeSet::new();
    for (i, r) in records.iter().enumerate() {
        let value = r.value.as_deref().unwrap();
        assert_eq!(value[0], 0, "Confluent magic byte");
        ids.insert(u32::from_be_bytes(value[1..5].try_into().unwrap()));
        let order: Order = de.deserialize_into(value).await.unwrap();
        assert_eq!(
            order,
            Order {
                id: i as i64,
                amount: i as f64 / 2.0
            }
        );
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
    }
    assert_eq!(ids.len(), 1, "one schema id for every record");
    let id = *ids.first().unwrap();
    let schema = registry.schema_by_id(id).await.unwrap();
    assert!(schema.schema.contains("\"Order\""), "{}", schema.schema);
}

/// What Sluice's `AvroSerializer` wrote, Java's `AvroKafkaDeserializer` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_deserializer_reads_what_sluice_wrote() {
    const N: i64 = 50;
    let url = sluice_testkit::registry_url();
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = common::cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("avro-to-java");
    // Cold: no warm-up record, which is not Avro and which the Java side would fail on.
    common::create_topic_cold(&cluster, &topic, 1).await;

    let serializer = AvroSerializer::new(Registry::new(&url).unwrap(), ORDER).unwrap();
    let producer = Producer::new(ProducerConfig::new(&bootstrap))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..N {
        let order = Order {
            id: i * 3,
            amount: i as f64 * 0.25,
        };
        let bytes = serializer.serialize(&topic, &order).await.unwrap();
        let record = ProducerRecord::new(&topic, Bytes::from(bytes)).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer
        .close(std::time::Duration::from_secs(10))
        .await
        .unwrap();

    let native = native_api(&url);
    let n = N.to_string();
    let lines = java(&["consume", &bootstrap, &topic, &native, &n]);
    let want: Vec<String> = (0..N)
        .map(|i| format!("VALUE\t{}\t{}", i * 3, java_double(i as f64 * 0.25)))
        .collect();
    assert_eq!(lines, want);
}

/// `Double.toString` for the values used here (always a fractional part).
fn java_double(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}
