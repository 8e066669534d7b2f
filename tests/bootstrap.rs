//! Bootstrap against a real broker that is not there yet: with
//! `ClusterConfig::bootstrap_timeout` the client waits for it (the reconnect backoff
//! between tries); without, it fails at once with the error it always gave.

use std::time::Duration;

use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::{Error, ErrorKind};
use sluice_testkit::FaultProxy;

fn first_bootstrap() -> String {
    let all = sluice_testkit::bootstrap();
    all.split(',').next().unwrap_or_default().trim().to_string()
}

/// A 127.0.0.1 port nothing listens on (just freed by the OS).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A free 127.0.0.1 address and a forwarder to the real broker that starts listening
/// on it after `delay`.
fn broker_on_port_later(delay: Duration) -> (String, std::thread::JoinHandle<FaultProxy>) {
    let addr = format!("127.0.0.1:{}", free_port());
    let upstream = first_bootstrap();
    let listen = addr.clone();
    let late = std::thread::spawn(move || {
        std::thread::sleep(delay);
        FaultProxy::start_on(&listen, &upstream).expect("proxy")
    });
    (addr, late)
}

/// The error a single try at a closed port gives: an I/O error naming the address.
fn assert_refused(e: &Error, addr: &str) {
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(
        e.to_string().contains(&format!("connecting to {addr}")),
        "{e}"
    );
}

#[tokio::test]
async fn bootstrap_waits_for_a_broker_that_starts_late() {
    let (addr, late) = broker_on_port_later(Duration::from_secs(2));
    let config = ClusterConfig::new(&addr).bootstrap_timeout(Duration::from_secs(30));
    let cluster = Cluster::connect(config)
        .await
        .expect("connects once the broker is up");
    assert!(!cluster.metadata().brokers.is_empty());
    let proxy = late.join().unwrap();
    assert!(
        proxy.connections() >= 1,
        "bootstrap went through the late listener"
    );
}

#[tokio::test]
async fn without_a_bootstrap_timeout_a_missing_broker_fails_at_once() {
    let (addr, late) = broker_on_port_later(Duration::from_secs(2));
    let e = Cluster::connect(ClusterConfig::new(&addr))
        .await
        .expect_err("nothing listens yet");
    assert_refused(&e, &addr);
    // The proxy came up after the one try; the client never used it.
    let proxy = late.join().unwrap();
    assert_eq!(proxy.connections(), 0);
}

#[tokio::test]
async fn a_bootstrap_timeout_ends_with_the_same_clear_error() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut config = ClusterConfig::new(&addr);
    config.set("sluice.bootstrap.timeout.ms", "1000").unwrap();
    config.reconnect_backoff = Duration::from_millis(50);
    config.reconnect_backoff_max = Duration::from_millis(200);
    let e = Cluster::connect(config)
        .await
        .expect_err("nothing ever listens");
    assert_refused(&e, &addr);
}
