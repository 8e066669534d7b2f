//! sluice-schema's registry client against a real registry: Apicurio Registry's
//! Confluent-compatible API (see `common`). Every test uses subjects of its own, so the
//! tests share one registry and run in parallel.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{registry, unique, OrderV1, OrderV2, BREAKING, V1, V2};
use sluice_schema::{
    framing, AvroDeserializer, AvroSerializer, Compatibility, Error, Registry, Schema, Version,
};

#[tokio::test]
async fn register_is_idempotent_and_lookups_are_cached() {
    let subject = unique("idem-value");
    let r = registry();
    let id = r.register(&subject, &Schema::avro(V1)).await.unwrap();
    assert_eq!(r.http_requests(), 1);
    // Same subject and schema: the cache answers.
    assert_eq!(r.register(&subject, &Schema::avro(V1)).await.unwrap(), id);
    assert_eq!(r.schema_by_id(id).await.unwrap().schema, V1);
    assert_eq!(r.http_requests(), 1, "cached register/by-id made a request");

    // A fresh client: the registry itself says the schema is already there (no new
    // version), and by-id is fetched once, then cached.
    let fresh = registry();
    assert_eq!(
        fresh.register(&subject, &Schema::avro(V1)).await.unwrap(),
        id
    );
    let latest = fresh.version(&subject, Version::Latest).await.unwrap();
    assert_eq!((latest.version, latest.id), (1, id));
    let other = registry();
    for _ in 0..5 {
        let s = other.schema_by_id(id).await.unwrap();
        assert_eq!(s.schema, V1);
        assert_eq!(s.schema_type, sluice_schema::SchemaType::Avro);
    }
    assert_eq!(other.http_requests(), 1);
    assert_eq!(other.id_of(&subject, &Schema::avro(V1)).await.unwrap(), id);
    assert_eq!(other.http_requests(), 2);
}

#[tokio::test]
async fn backward_subject_accepts_a_compatible_change_and_rejects_a_breaking_one() {
    let subject = unique("evolve-value");
    let r = registry();
    // Apicurio's default is NONE (it would accept anything): set the rule first.
    assert_eq!(
        r.set_compatibility(Some(&subject), Compatibility::Backward)
            .await
            .unwrap(),
        Compatibility::Backward
    );
    assert_eq!(
        r.compatibility(Some(&subject)).await.unwrap(),
        Compatibility::Backward
    );
    let id1 = r.register(&subject, &Schema::avro(V1)).await.unwrap();
    assert!(r
        .is_compatible(&subject, Version::Latest, &Schema::avro(V2))
        .await
        .unwrap());
    assert!(!r
        .is_compatible(&subject, Version::Latest, &Schema::avro(BREAKING))
        .await
        .unwrap());
    let id2 = r.register(&subject, &Schema::avro(V2)).await.unwrap();
    assert_ne!(id1, id2);
    let err = r
        .register(&subject, &Schema::avro(BREAKING))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Incompatible { subject: s, .. } if *s == subject),
        "{err:?}"
    );
    assert!(!err.is_retriable());

    let latest = r.version(&subject, Version::Latest).await.unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    assert_eq!(latest.schema.schema, V2);
    let first = r.version(&subject, Version::Number(1)).await.unwrap();
    assert_eq!((first.version, first.id), (1, id1));
    assert!(matches!(
        r.version(&subject, Version::Number(3)).await,
        Err(Error::VersionNotFound { version, .. }) if version == "3"
    ));
    assert!(matches!(
        r.version(&unique("missing"), Version::Latest).await,
        Err(Error::SubjectNotFound { .. })
    ));
    assert!(matches!(
        r.register(&subject, &Schema::avro("{not json")).await,
        Err(Error::InvalidSchema { .. })
    ));
}

#[tokio::test]
async fn a_subject_without_a_rule_of_its_own_has_the_global_one() {
    let r = registry();
    let global = r.compatibility(None).await.unwrap();
    // Not registered at all (Apicurio: 40401), and registered without a rule.
    assert_eq!(
        r.compatibility(Some(&unique("norule"))).await.unwrap(),
        global
    );
    let subject = unique("norule-value");
    r.register(&subject, &Schema::avro(V1)).await.unwrap();
    assert_eq!(r.compatibility(Some(&subject)).await.unwrap(), global);
}

#[tokio::test]
async fn an_unreachable_registry_is_retried_then_a_retriable_error() {
    // A port nobody listens on: every attempt is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = Registry::builder(format!("http://127.0.0.1:{port}/apis/ccompat/v7"))
        .retries(2, Duration::from_millis(20), Duration::from_millis(40))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = r.schema_by_id(1).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_retriable());
    // The first attempt and two retries, with backoff in between (>= 15 + 30 ms).
    assert_eq!(r.http_requests(), 3);
    assert!(started.elapsed() >= Duration::from_millis(45));
    // A 4xx is never retried: one request.
    let real = registry();
    let _ = real.schema_by_id(2_000_000_001).await.unwrap_err();
    assert_eq!(real.http_requests(), 1);
}

/// The registry's HTTPS URL and the directory of its test CA (`cargo xtask registry up`
/// serves HTTPS on the next port with a certificate of `target/registry/run/tls/`).
fn tls() -> (String, std::path::PathBuf) {
    let get = |k: &str| match std::env::var(k) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{k} is not set: `cargo xtask registry up` prints the exports the schema \
             tests need (or run `cargo xtask test`)"
        ),
    };
    let ca = std::path::PathBuf::from(get("SLUICE_REGISTRY_CA"));
    (get("SLUICE_REGISTRY_TLS_URL"), ca)
}

/// Every message in an error's source chain, for matching on the cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text += &format!(": {s}");
        cur = s.source();
    }
    text
}

#[tokio::test]
async fn https_with_the_registry_ca_works_and_with_another_ca_is_refused() {
    let (url, ca) = tls();
    let r = Registry::builder(&url)
        .ca_pem(std::fs::read(&ca).unwrap())
        .build()
        .unwrap();
    let topic = unique("tls");
    let ser = AvroSerializer::new(r.clone(), V1).unwrap();
    let bytes = ser
        .serialize(&topic, &OrderV1 { id: 5, amount: 0.5 })
        .await
        .unwrap();
    let got: OrderV1 = AvroDeserializer::new(
        Registry::builder(&url)
            .ca_pem(std::fs::read(&ca).unwrap())
            .build()
            .unwrap(),
    )
    .deserialize_into(&bytes)
    .await
    .unwrap();
    assert_eq!(got, OrderV1 { id: 5, amount: 0.5 });
    // The plain-HTTP port of the same registry knows the same id.
    let id = framing::read_header(&bytes).unwrap().0;
    assert_eq!(registry().schema_by_id(id).await.unwrap().schema, V1);

    // A CA that did not sign the registry's certificate: the handshake fails, and is
    // not retried (the default 3 retries would not change the answer).
    let other = ca.with_file_name("other-ca.pem");
    let untrusting = Registry::builder(&url)
        .ca_pem(std::fs::read(other).unwrap())
        .build()
        .unwrap();
    let err = untrusting.schema_by_id(id).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(!err.is_retriable());
    let text = chain(&err);
    assert!(
        text.contains("UnknownIssuer") || text.contains("unknown issuer"),
        "{text}"
    );
    assert_eq!(untrusting.http_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_reads_of_one_schema_make_one_request() {
    let topic = unique("herd");
    let ser = AvroSerializer::new(registry(), V1).unwrap();
    let bytes = ser
        .serialize(&topic, &OrderV1 { id: 9, amount: 9.0 })
        .await
        .unwrap();
    let (id, _) = framing::read_header(&bytes).unwrap();
    // 64 partitions' first records arrive at once, all with the same new schema id.
    let consumer_side = registry();
    let de = std::sync::Arc::new(AvroDeserializer::new(consumer_side.clone()));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let de = de.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move { de.deserialize_into::<OrderV1>(&bytes).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), OrderV1 { id: 9, amount: 9.0 });
    }
    assert_eq!(
        consumer_side.http_requests(),
        1,
        "schema {id} fetched more than once"
    );
    // The same for registration: 64 producers of one new subject register it once.
    let producer_side = registry();
    let ser = std::sync::Arc::new(AvroSerializer::new(producer_side.clone(), V2).unwrap());
    let topic = unique("herd-register");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let ser = ser.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                let v = OrderV2 {
                    id: i,
                    amount: 1.0,
                    currency: "EUR".into(),
                };
                ser.serialize(&topic, &v).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(producer_side.http_requests(), 1);
}

#[tokio::test]
async fn requests_in_flight_are_bounded_and_a_silent_registry_times_out() {
    // A registry that accepts connections and never answers (a blackholed server).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicU32::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    let r = Registry::builder(format!("http://127.0.0.1:{port}"))
        .max_in_flight(1)
        .timeout(Duration::from_millis(300))
        .retries(0, Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move { r.schema_by_id(100 + i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Three callers, one request on the wire: the others wait for the permit.
    assert_eq!(r.http_requests(), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        assert!(err.is_retriable(), "a timeout is the registry's failure");
    }
    // One after the other: three timeouts of 300 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.http_requests(), 3);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_with_one_unknown_id_make_one_request_per_ttl() {
    const RECORDS: usize = 500;
    // An id no registry has handed out, framed with a datum that would decode.
    let mut bytes = Vec::new();
    framing::write_header(1_999_999_999, &mut bytes);
    bytes.extend_from_slice(&[2, 4]);
    let ttl = Duration::from_millis(700);
    let r = Registry::builder(common::url())
        .unknown_id_ttl(ttl)
        .build()
        .unwrap();
    let de = std::sync::Arc::new(AvroDeserializer::new(r.clone()));
    // The first records of a partition arrive at once; the rest one after another.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (de, bytes) = (de.clone(), bytes.clone());
            tokio::spawn(async move { de.deserialize(&bytes).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::UnknownSchemaId(1_999_999_999)),
            "{err:?}"
        );
    }
    for _ in 32..RECORDS {
        let err = de.deserialize(&bytes).await.unwrap_err();
        assert!(matches!(err, Error::UnknownSchemaId(_)), "{err:?}");
    }
    assert_eq!(r.http_requests(), 1, "{RECORDS} records, one unknown id");
    // After the TTL the registry is asked again (the id may have become known).
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(matches!(
        de.deserialize(&bytes).await,
        Err(Error::UnknownSchemaId(_))
    ));
    assert_eq!(r.http_requests(), 2);

    // Without the negative cache, every record asks.
    let uncached = Registry::builder(common::url())
        .unknown_id_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let de = AvroDeserializer::new(uncached.clone());
    for _ in 0..10 {
        assert!(de.deserialize(&bytes).await.is_err());
    }
    assert_eq!(uncached.http_requests(), 10);
}
