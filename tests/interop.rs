//! Interop with the Java client, through Kafka's own console tools from the fetched jars:
//! what we write (every codec, null / empty / non-empty keys, headers) the Java console
//! consumer prints exactly; what the Java console producer writes, we read exactly.

use std::time::Duration;

use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::partition_client::{Acks, FetchOptions, PartitionClient};
use sluice::wire::records::{
    BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches,
};

const T: Duration = Duration::from_secs(30);

async fn cluster() -> Cluster {
    Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .expect("connect to the test cluster")
}

#[tokio::test]
async fn java_console_consumer_reads_what_we_write_with_every_codec() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster().await;
    let topic = sluice_testkit::unique_topic("interop-to-java");
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(&topic, 1)], T)
        .await
        .unwrap();
    let client = PartitionClient::new(cluster, &topic, 0);

    let mut expected = Vec::new();
    for codec in Compression::ALL {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            compression: codec,
            ..BatchOptions::default()
        });
        let ts = 1_700_000_000_000;
        let value = format!("{codec}: no key");
        b.append(ts, None, Some(value.as_bytes()), &[]).unwrap();
        expected.push(format!("NO_HEADERS\tnull\t{value}"));

        let value = format!("{codec}: empty key");
        b.append(ts, Some(b""), Some(value.as_bytes()), &[])
            .unwrap();
        expected.push(format!("NO_HEADERS\t\t{value}"));

        let value = format!("{codec}: headers");
        let headers = [
            HeaderRef::new("h1", Some(&b"v1"[..])),
            HeaderRef::new("codec", Some(codec.name().as_bytes())),
        ];
        b.append(ts, Some(b"k1"), Some(value.as_bytes()), &headers)
            .unwrap();
        expected.push(format!("h1:v1,codec:{}\tk1\t{value}", codec.name()));

        for i in 0..50 {
            let key = format!("key-{}", i % 5);
            let value = format!("{codec} value {i} {}", "y".repeat(i));
            b.append(
                ts + i as i64,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[],
            )
            .unwrap();
            expected.push(format!("NO_HEADERS\t{key}\t{value}"));
        }
        client
            .produce(b.finish().unwrap(), Acks::All, T)
            .await
            .unwrap();
    }

    let printed = sluice_testkit::console_consume(
        &bootstrap,
        &topic,
        expected.len(),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(printed.len(), expected.len(), "count in == count out");
    for (i, (got, want)) in printed.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "record {i}");
    }
}

#[tokio::test]
async fn we_read_what_the_java_console_producer_writes() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster().await;
    let topic = sluice_testkit::unique_topic("interop-from-java");
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(&topic, 1)], T)
        .await
        .unwrap();
    let lines: Vec<String> = (0..100)
        .map(|i| format!("key-{}\tjava value {i} {}", i % 3, "z".repeat(i % 17)))
        .collect();
    sluice_testkit::console_produce(&bootstrap, &topic, &lines, true).unwrap();

    let client = PartitionClient::new(cluster, &topic, 0);
    let mut got = Vec::new();
    let mut offset = 0;
    let deadline = tokio::time::Instant::now() + T;
    while got.len() < lines.len() && tokio::time::Instant::now() < deadline {
        let fetched = client.fetch(offset, FetchOptions::default()).await.unwrap();
        for batch in RecordBatches::new(fetched.records) {
            for r in batch.unwrap().records().unwrap() {
                let r = r.unwrap();
                assert_eq!(r.offset(), offset, "offsets are dense and ordered");
                offset += 1;
                let key = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
                let value = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
                got.push(format!("{key}\t{value}"));
            }
        }
    }
    assert_eq!(got, lines);
}
