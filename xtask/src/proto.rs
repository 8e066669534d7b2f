//! Just enough of the Kafka wire protocol to tell whether a broker is up.
//!
//! A TCP connect succeeds long before a broker can serve requests, so readiness is
//! checked with real requests: ApiVersions v0 (every broker answers it) and
//! Metadata v4 (the oldest version Kafka 4.x still serves) to list registered brokers.
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
    broker_ids(addr).map(|ids| ids.len())
}

/// Metadata v4 for no topics: the node ids of the brokers `addr` reports as registered
/// (KRaft lists only unfenced brokers), in the order of the response.
pub fn broker_ids(addr: &str) -> io::Result<Vec<i32>> {
    let corr = 0x5100_0002;
    // topics: null array (-1); allow_auto_topic_creation: false.
    let mut req = (-1i32).to_be_bytes().to_vec();
    req.push(0);
    let body = round_trip(addr, &frame(API_METADATA, 4, corr, &req))?;
    check_correlation(&body, corr)?;
    parse_broker_ids(&body)
}

/// The broker ids of a Metadata v4 response (after the length prefix).
fn parse_broker_ids(body: &[u8]) -> io::Result<Vec<i32>> {
    // correlation id (4), throttle_time_ms (4), brokers array length (4).
    let n = be_i32(body, 8)?;
    let n = usize::try_from(n)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("broker count {n}")))?;
    let mut at = 12;
    let mut ids = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        // node_id (4), host (string), port (4), rack (nullable string).
        ids.push(be_i32(body, at)?);
        at += 4;
        at += 2 + usize::try_from(be_i16(body, at)?).unwrap_or(0);
        at += 4;
        at += 2 + usize::try_from(be_i16(body, at)?).unwrap_or(0);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_brokers_of_a_metadata_v4_response() {
        let mut b = Vec::new();
        b.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&2i32.to_be_bytes()); // two brokers
        for (id, rack) in [(3, None), (1, Some("r1"))] {
            b.extend_from_slice(&i32::to_be_bytes(id));
            b.extend_from_slice(&9i16.to_be_bytes());
            b.extend_from_slice(b"127.0.0.1");
            b.extend_from_slice(&19092i32.to_be_bytes());
            match rack {
                None => b.extend_from_slice(&(-1i16).to_be_bytes()),
                Some(r) => {
                    b.extend_from_slice(&(r.len() as i16).to_be_bytes());
                    b.extend_from_slice(r.as_bytes());
                }
            }
        }
        assert_eq!(parse_broker_ids(&b).unwrap(), [3, 1]);
        assert!(
            parse_broker_ids(&b[..20]).is_err(),
            "a cut response is an error"
        );
    }
}
