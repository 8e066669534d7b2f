//! Record batches written by our encoder, stored by a real Kafka broker, and fetched back
//! by our decoder: every codec, null / empty / non-empty keys and values, headers.
//! Kafka's own console consumer reads the same bytes in `tests/interop.rs`.

use std::time::Duration;

use bytes::Bytes;
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::partition_client::{Acks, FetchOptions, PartitionClient};
use sluice::wire::records::{
    BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches,
};

const T: Duration = Duration::from_secs(30);

/// One record as we write it: key, value, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn samples(codec: Compression) -> Vec<Sample> {
    let mut out = vec![
        Sample {
            key: None,
            value: Some(b"no key".to_vec()),
            headers: vec![],
        },
        Sample {
            key: Some(vec![]),
            value: Some(b"empty key".to_vec()),
            headers: vec![],
        },
        Sample {
            key: Some(b"k1".to_vec()),
            value: Some(b"with headers".to_vec()),
            headers: vec![
                ("h1".into(), Some(b"v1".to_vec())),
                ("h2".into(), Some(vec![])),
                ("h3".into(), None),
            ],
        },
        Sample {
            key: Some(b"k2".to_vec()),
            value: Some(vec![]),
            headers: vec![],
        },
        Sample {
            key: Some(b"tombstone".to_vec()),
            value: None,
            headers: vec![],
        },
    ];
    // Enough repetitive data that compression has something to do.
    for i in 0..200 {
        out.push(Sample {
            key: Some(format!("key-{}", i % 7).into_bytes()),
            value: Some(format!("{codec}-value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
            headers: vec![("seq".into(), Some(i.to_string().into_bytes()))],
        });
    }
    out
}

fn build(codec: Compression, samples: &[Sample]) -> Bytes {
    let mut b = RecordBatchBuilder::new(BatchOptions {
        compression: codec,
        ..BatchOptions::default()
    });
    for (i, s) in samples.iter().enumerate() {
        let headers: Vec<HeaderRef<'_>> = s
            .headers
            .iter()
            .map(|(k, v)| HeaderRef::new(k, v.as_deref()))
            .collect();
        b.append(
            1_700_000_000_000 + i as i64,
            s.key.as_deref(),
            s.value.as_deref(),
            &headers,
        )
        .unwrap();
    }
    b.finish().unwrap()
}

async fn fetch_all(client: &PartitionClient, end: i64) -> Vec<(i64, i64, Sample)> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < end {
        let fetched = client.fetch(offset, FetchOptions::default()).await.unwrap();
        for batch in RecordBatches::new(fetched.records) {
            let batch = batch.unwrap();
            for r in batch.records().unwrap() {
                let r = r.unwrap();
                offset = r.offset() + 1;
                let headers = r
                    .headers()
                    .map(|h| (h.key().to_owned(), h.value().map(<[u8]>::to_vec)))
                    .collect();
                out.push((
                    r.offset(),
                    r.timestamp(),
                    Sample {
                        key: r.key().map(|k| k.to_vec()),
                        value: r.value().map(|v| v.to_vec()),
                        headers,
                    },
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_codec_round_trips_through_the_broker() {
    let cluster = Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .unwrap();
    let admin = Admin::new(cluster.clone());
    for codec in Compression::ALL {
        let topic = sluice_testkit::unique_topic(&format!("roundtrip-{codec}"));
        admin
            .create_topics(&[NewTopic::new(&topic, 1)], T)
            .await
            .unwrap();
        let client = PartitionClient::new(cluster.clone(), &topic, 0);
        let sent = samples(codec);
        // Two batches: offsets continue across them.
        let half = sent.len() / 2;
        let first = client
            .produce(build(codec, &sent[..half]), Acks::All, T)
            .await
            .unwrap();
        let second = client
            .produce(build(codec, &sent[half..]), Acks::All, T)
            .await
            .unwrap();
        assert_eq!(first.base_offset, 0, "{codec}");
        assert_eq!(second.base_offset, half as i64, "{codec}");

        let got = fetch_all(&client, sent.len() as i64).await;
        assert_eq!(got.len(), sent.len(), "{codec}: count in == count out");
        for (i, (offset, ts, sample)) in got.iter().enumerate() {
            assert_eq!(*offset, i as i64, "{codec}: offsets are dense and ordered");
            // Each batch numbers its timestamps from the same base.
            let within = if i < half { i } else { i - half };
            assert_eq!(
                *ts,
                1_700_000_000_000 + within as i64,
                "{codec}: timestamp of {i}"
            );
            assert_eq!(sample, &sent[i], "{codec}: record {i}");
        }
    }
}
