//! The demo that `cargo xtask demo` runs: a produce and consume round trip against the
//! Kafka at `SLUICE_BOOTSTRAP`, printing what it does.
//!
//! It creates a topic with three partitions, writes keyed records (placed by the
//! Java-compatible murmur2 partitioner, so the Java client would put each key on the same
//! partition), one batch per partition, compressed with lz4, and reads them back.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice::partition::{Murmur2Partitioner, Partitioner};
use sluice::wire::admin::{Admin, NewTopic, OffsetSpec};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::partition_client::{Acks, FetchOptions, PartitionClient};
use sluice::wire::records::{
    BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("SLUICE_BOOTSTRAP")
        .map_err(|_| "set SLUICE_BOOTSTRAP=host:port, or run `cargo xtask demo`")?;
    let cluster = Cluster::connect(ClusterConfig::new(&bootstrap).client_id("sluice-demo")).await?;
    let md = cluster.metadata();
    println!(
        "connected to cluster {} with {} broker(s)",
        md.cluster_id.as_deref().unwrap_or("?"),
        md.brokers.len()
    );

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let topic = format!("sluice-demo-{}", nanos % 1_000_000_000);
    let admin = Admin::new(cluster.clone());
    admin
        .create_topics(&[NewTopic::new(&topic, 3)], Duration::from_secs(30))
        .await?;
    println!("created topic {topic} with 3 partitions");

    // Place ten keyed records as the Java client would, one lz4 batch per partition.
    let mut partitioner = Murmur2Partitioner::new();
    let mut batches: BTreeMap<i32, RecordBatchBuilder> = BTreeMap::new();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    for i in 0..10 {
        let key = format!("user-{}", i % 4);
        let value = format!("event {i}");
        let p = partitioner.partition(&topic, Some(key.as_bytes()), value.len(), 3);
        let headers = [HeaderRef::new("source", Some(&b"demo"[..]))];
        batches
            .entry(p)
            .or_insert_with(|| {
                RecordBatchBuilder::new(BatchOptions {
                    compression: Compression::Lz4,
                    ..BatchOptions::default()
                })
            })
            .append(
                now + i,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &headers,
            )?;
    }
    let mut produced = 0;
    for (p, builder) in batches {
        let n = builder.len();
        let ack = PartitionClient::new(cluster.clone(), &topic, p)
            .produce(builder.finish()?, Acks::All, Duration::from_secs(30))
            .await?;
        println!(
            "produced {n} records to partition {p} at base offset {}",
            ack.base_offset
        );
        produced += n;
    }

    let ends = admin
        .list_offsets(&topic, &[0, 1, 2], OffsetSpec::Latest)
        .await?;
    let mut consumed = 0;
    for (p, end) in ends {
        let client = PartitionClient::new(cluster.clone(), &topic, p);
        let mut offset = 0;
        while offset < end.offset {
            let fetched = client.fetch(offset, FetchOptions::default()).await?;
            for batch in RecordBatches::new(fetched.records) {
                for record in batch?.records()? {
                    let record = record?;
                    offset = record.offset() + 1;
                    consumed += 1;
                    println!(
                        "consumed partition {p} offset {} key {:?} value {:?}",
                        record.offset(),
                        record
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned()),
                        record
                            .value()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
            }
        }
    }
    admin
        .delete_topics(&[&topic], Duration::from_secs(30))
        .await?;
    println!("round trip done: {produced} produced, {consumed} consumed; deleted {topic}");
    if produced != consumed {
        return Err(format!("produced {produced} but consumed {consumed}").into());
    }
    Ok(())
}
