//! Just enough of the Kafka wire protocol to tell whether a broker is up.
//!
//! A TCP connect succeeds long before a broker can serve requests, so readiness is
//! checked with real requests: ApiVersions v0 (every broker answers it) and
//! Metadata v4 (the oldest version Kafka 4.x still serves) to count registered brokers.
//! Hand-written on purpose: xtask must not depend on the client it is testing.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const API_METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const CLIENT_ID: &[u8] = b"sluice-xtask";
const IO_TIMEOUT: Duration = Duration::from_secs(3);

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {addr}"),
        )
    })
}

/// Request header v1 (api key, version, correlation id, client id) + body, length-prefixed.
fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + body.len());
    msg.extend_from_slice(&api_key.to_be_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(&correlation_id.to_be_bytes());
    msg.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    msg.extend_from_slice(CLIENT_ID);
    msg.extend_from_slice(body);
    let mut out = (msg.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    out
}

fn round_trip(addr: &str, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&resolve(addr)?, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(4..=64 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response length {len}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

fn be_i16(b: &[u8], at: usize) -> io::Result<i16> {
    b.get(at..at + 2)
        .map(|s| i16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short response"))
}

fn be_i32(b: &[u8], at: usize) -> io::Result<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short response"))
}

fn check_correlation(body: &[u8], expected: i32) -> io::Result<()> {
    let got = be_i32(body, 0)?;
    if got != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("correlation id {got}, expected {expected}"),
        ));
    }
    Ok(())
}

/// ApiVersions v0: Ok when the broker answers with error code 0.
pub fn api_versions_ok(addr: &str) -> io::Result<()> {
    let corr = 0x5100_0001;
    let body = round_trip(addr, &frame(API_VERSIONS, 0, corr, &[]))?;
    check_correlation(&body, corr)?;
    match be_i16(&body, 4)? {
        0 => Ok(()),
        code => Err(io::Error::other(format!("ApiVersions error code {code}"))),
    }
}

/// Metadata v4 for no topics: the number of brokers the cluster reports as registered.
pub fn broker_count(addr: &str) -> io::Result<usize> {
    let corr = 0x5100_0002;
    // topics: null array (-1); allow_auto_topic_creation: false.
    let mut req = (-1i32).to_be_bytes().to_vec();
    req.push(0);
    let body = round_trip(addr, &frame(API_METADATA, 4, corr, &req))?;
    check_correlation(&body, corr)?;
    // correlation id (4), throttle_time_ms (4), brokers array length (4).
    let n = be_i32(&body, 8)?;
    usize::try_from(n)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("broker count {n}")))
}
