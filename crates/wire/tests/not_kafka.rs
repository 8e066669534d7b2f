//! Pointing the client at something that is not a Kafka broker gives a typed error within
//! the timeout: never a hang, never a panic. The peers here are plain TCP servers (an
//! HTTP responder, a silent listener, a closed port); none pretends to be Kafka.

use std::time::{Duration, Instant};

use sluice_wire::cluster::{Cluster, ClusterConfig};
use sluice_wire::net::{BrokerConnection, ConnectionConfig};
use sluice_wire::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn config() -> ConnectionConfig {
    ConnectionConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn closed_port_is_an_io_error() {
    // Bind then drop, so the port is (almost certainly) closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let started = Instant::now();
    let err = BrokerConnection::connect(&addr.to_string(), config())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_server_is_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let started = Instant::now();
    let err = BrokerConnection::connect(&addr.to_string(), config())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("HTTP"), "{err}");
    assert!(!err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    let err = BrokerConnection::connect(&addr.to_string(), config())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn peer_that_hangs_up_is_connection_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let err = BrokerConnection::connect(&addr.to_string(), config())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectionClosed | ErrorKind::Io),
        "{err}"
    );
}

#[tokio::test]
async fn cluster_tries_every_bootstrap_address_and_reports_the_last_error() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg =
        ClusterConfig::new(format!("{closed}, {closed}")).connect_timeout(Duration::from_secs(1));
    let err = Cluster::connect(cfg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let err = Cluster::connect(ClusterConfig::new(" , "))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}
