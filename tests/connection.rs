//! One broker connection against a real Kafka broker: pipelining, cancellation, and a
//! connection that dies mid-request.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use sluice::wire::net::{BrokerConnection, ConnectionConfig};
use sluice::wire::ErrorKind;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

fn first_bootstrap() -> String {
    let all = sluice_testkit::bootstrap();
    all.split(',').next().unwrap_or_default().trim().to_string()
}

#[tokio::test]
async fn negotiates_versions_within_our_table() {
    let conn = BrokerConnection::connect(&first_bootstrap(), ConnectionConfig::default())
        .await
        .unwrap();
    let v = conn.api_versions();
    let metadata = v.version_for(ApiKey::Metadata).unwrap();
    assert!((1..=12).contains(&metadata), "metadata v{metadata}");
    // Every broker we support (3.9 and 4.x) speaks Produce v9+ and Fetch v12.
    assert!(v.version_for(ApiKey::Produce).unwrap() >= 9);
    assert_eq!(v.version_for(ApiKey::Fetch).unwrap(), 12);
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let conn = BrokerConnection::connect(&first_bootstrap(), ConnectionConfig::default())
        .await
        .unwrap();
    // 200 concurrent requests share one socket with at most 5 in flight; each gets its
    // own, complete answer.
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let answers = join_all((0..200).map(|_| conn.send(&request))).await;
    assert_eq!(answers.len(), 200);
    for a in answers {
        let md = a.unwrap();
        assert!(!md.brokers.is_empty());
    }
    assert!(!conn.is_dead());
}

#[tokio::test]
async fn cancelled_requests_do_not_corrupt_the_connection() {
    let conn = BrokerConnection::connect(&first_bootstrap(), ConnectionConfig::default())
        .await
        .unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    for round in 0..20 {
        // Start a batch of requests and drop them at various points.
        let futures: Vec<_> = (0..10).map(|_| Box::pin(conn.send(&request))).collect();
        let mut futures = futures;
        for (i, f) in futures.iter_mut().enumerate() {
            if i % 2 == 0 {
                let _ = tokio::time::timeout(Duration::from_micros(50 * round), f).await;
            }
        }
        drop(futures);
        // The next request on the same connection still gets its own answer.
        let md = conn.send(&request).await.unwrap();
        assert!(!md.brokers.is_empty(), "round {round}");
    }
    assert!(!conn.is_dead());
}

/// A TCP relay to the broker that we can cut while requests are in flight.
async fn relay(upstream: String) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = TcpStream::connect(upstream).await.unwrap();
        tokio::select! {
            _ = copy_bidirectional(&mut client, &mut server) => {}
            _ = cut_rx => {}
        }
        // Dropping both sockets resets the client's connection.
    });
    (addr, cut_tx)
}

#[tokio::test]
async fn a_connection_cut_mid_request_fails_every_waiter_with_its_cause() {
    let (addr, cut) = relay(first_bootstrap()).await;
    let conn = BrokerConnection::connect(&addr, ConnectionConfig::default())
        .await
        .unwrap();
    let request = MetadataRequest::default().with_topics(None);
    conn.send(&request)
        .await
        .expect("the relay works before the cut");
    // Queue many requests (at most 5 are in flight at once), then cut the relay as soon
    // as they are queued: those not yet answered must fail with the cut as the cause.
    let pending: Vec<_> = (0..100).map(|_| conn.send(&request)).collect();
    let cutter = async {
        tokio::task::yield_now().await;
        let _ = cut.send(());
    };
    let (results, ()) = tokio::join!(join_all(pending), cutter);
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        !failures.is_empty(),
        "the cut must fail the requests still in flight"
    );
    for e in &failures {
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionClosed | ErrorKind::Io),
            "{e}"
        );
        assert!(e.is_retriable());
    }
    assert!(conn.is_dead());
    let err = conn.send(&request).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectionClosed | ErrorKind::Io),
        "{err}"
    );
}

/// A relay that forwards until `blackhole` is set, then swallows every byte both ways.
async fn blackholing_relay(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hole = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&hole);
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let f1 = Arc::clone(&flag);
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if !f1.load(Ordering::SeqCst) && sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if !flag.load(Ordering::SeqCst) && cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up.await;
    });
    (addr, hole)
}

#[tokio::test]
async fn a_request_timeout_closes_the_connection_and_fails_every_waiter() {
    let (addr, hole) = blackholing_relay(first_bootstrap()).await;
    let config = ConnectionConfig {
        request_timeout: Duration::from_millis(800),
        ..ConnectionConfig::default()
    };
    let conn = BrokerConnection::connect(&addr, config).await.unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    conn.send(&request)
        .await
        .expect("answered before the blackhole");

    hole.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let results = join_all((0..10).map(|_| conn.send(&request))).await;
    let took = started.elapsed();
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_retriable());
    }
    // One timeout kills the connection; the others fail with it, not after their own.
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(conn.is_dead());
}
