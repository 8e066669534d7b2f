//! A minimal blocking Kafka protocol client over `kafka-protocol`'s generated messages:
//! enough for the cluster queries of [`crate::Admin`] and for tests that need to see
//! exactly what a broker (or a [`crate::KafkaProxy`]) answers, without the client under
//! test in between.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};

/// The client id of every request a [`KafkaConnection`] sends unless told otherwise.
pub(crate) const CLIENT_ID: &str = "sluice-testkit";
/// Responses larger than this are refused (Kafka's `socket.request.max.bytes` is 100 MiB).
const MAX_FRAME: usize = 256 << 20;
/// UNSUPPORTED_VERSION: the answer to an ApiVersions version the broker does not know.
const UNSUPPORTED_VERSION: i16 = 35;

/// An `InvalidData` error: a frame that does not decode, or an unexpected answer.
pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Resolves `host:port` to its first address.
pub(crate) fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {addr}"),
        )
    })
}

/// Reads one size-prefixed frame; `Ok(None)` on a clean end of stream before its first
/// byte.
pub(crate) fn read_frame(r: &mut impl Read) -> io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| invalid(format!("bad frame length {len}")))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(Bytes::from(body)))
}

/// Encodes `request` as a whole frame (length prefix, header, body).
pub(crate) fn encode_request<R: Request>(
    correlation_id: i32,
    client_id: &str,
    version: i16,
    request: &R,
) -> io::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .and_then(|()| request.encode(&mut buf, version))
        .map_err(|e| invalid(format!("encoding api key {} v{version}: {e:#}", R::KEY)))?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| invalid("request too large"))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response payload (header and body, without the length prefix) of request
/// type `R` at `version`; returns the correlation id and the body.
pub(crate) fn decode_response<R: Request>(
    mut payload: Bytes,
    version: i16,
) -> io::Result<(i32, R::Response)> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut payload, header_version)
        .map_err(|e| invalid(format!("response header of api key {}: {e:#}", R::KEY)))?;
    let body = <R::Response as Decodable>::decode(&mut payload, version)
        .map_err(|e| invalid(format!("api key {} v{version} response: {e:#}", R::KEY)))?;
    Ok((header.correlation_id, body))
}

/// One blocking connection to a broker (or a proxy), with the API versions it supports.
///
/// Every I/O error comes back as it is: a read past the timeout is `WouldBlock` or
/// `TimedOut` ([`is_timeout`]), a connection the peer closed is `UnexpectedEof`,
/// `ConnectionReset` or `BrokenPipe` ([`is_closed`]). Frames that do not decode are
/// `InvalidData`.
///
/// ```no_run
/// use kafka_protocol::messages::MetadataRequest;
/// let mut conn = sluice_testkit::KafkaConnection::connect("127.0.0.1:19092").unwrap();
/// let metadata = conn.request(&MetadataRequest::default().with_topics(Some(vec![]))).unwrap();
/// println!("{} brokers", metadata.brokers.len());
/// ```
#[derive(Debug)]
pub struct KafkaConnection {
    stream: TcpStream,
    addr: SocketAddr,
    /// api key -> (min, max) the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    next_correlation: i32,
    client_id: String,
}

/// Whether `e` is a read or write that ran into its timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether `e` says the peer closed (or reset) the connection.
pub fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

impl KafkaConnection {
    /// Connects (5 s timeout), sets a 30 s read/write timeout and asks the broker for
    /// its API versions (ApiVersions v3, or v0 when the broker does not know v3).
    pub fn connect(addr: &str) -> io::Result<KafkaConnection> {
        Self::connect_timeout(addr, Duration::from_secs(5))
    }

    /// [`Self::connect`] with the given connect timeout.
    pub fn connect_timeout(addr: &str, timeout: Duration) -> io::Result<KafkaConnection> {
        let mut conn = Self::connect_raw(addr, timeout)?;
        conn.negotiate()?;
        Ok(conn)
    }

    /// Connects without the ApiVersions exchange: [`Self::version`] then knows no API
    /// and [`Self::request`] fails; use [`Self::request_at`] or [`Self::send_at`].
    pub fn connect_raw(addr: &str, timeout: Duration) -> io::Result<KafkaConnection> {
        let sock = resolve(addr)?;
        let stream = TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(KafkaConnection {
            stream,
            addr: sock,
            versions: HashMap::new(),
            next_correlation: 1,
            client_id: CLIENT_ID.to_string(),
        })
    }

    fn negotiate(&mut self) -> io::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-testkit"))
            .with_client_software_version(StrBytes::from_static_str("0.1.0"));
        let mut response = self.request_at(&request, 3)?;
        if response.error_code == UNSUPPORTED_VERSION {
            response = self.request_at(&request, 0)?;
        }
        if response.error_code != 0 {
            return Err(io::Error::other(format!(
                "ApiVersions error code {}",
                response.error_code
            )));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The address this connection goes to.
    pub fn peer(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the client id of the requests sent from now on.
    pub fn set_client_id(&mut self, client_id: &str) {
        self.client_id = client_id.to_string();
    }

    /// Sets the read timeout (how long [`Self::receive`] waits for a response).
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// The highest version of `R` both the broker and `kafka-protocol` support.
    pub fn version<R: Request>(&self) -> io::Result<i16> {
        let &(min, max) = self.versions.get(&R::KEY).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the broker does not support api key {}", R::KEY),
            )
        })?;
        let ours = <R as Message>::VERSIONS;
        let v = max.min(ours.max);
        if v < min.max(ours.min) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "api key {}: the broker supports v{min}..=v{max}, kafka-protocol v{}..=v{}",
                    R::KEY,
                    ours.min,
                    ours.max
                ),
            ));
        }
        Ok(v)
    }

    /// Sends `request` at [`Self::version`] and waits for its response.
    pub fn request<R: Request>(&mut self, request: &R) -> io::Result<R::Response> {
        let version = self.version::<R>()?;
        self.request_at(request, version)
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn request_at<R: Request>(&mut self, request: &R, version: i16) -> io::Result<R::Response> {
        let correlation = self.send_at(request, version)?;
        self.receive::<R>(correlation, version)
    }

    /// Writes `request` at `version` without waiting (requests may be pipelined);
    /// returns its correlation id for [`Self::receive`].
    pub fn send_at<R: Request>(&mut self, request: &R, version: i16) -> io::Result<i32> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode_request(correlation, &self.client_id, version, request)?;
        self.stream.write_all(&frame)?;
        Ok(correlation)
    }

    /// Writes `request` at [`Self::version`] without waiting; returns the correlation id
    /// and the version, for [`Self::receive`].
    pub fn send<R: Request>(&mut self, request: &R) -> io::Result<(i32, i16)> {
        let version = self.version::<R>()?;
        Ok((self.send_at(request, version)?, version))
    }

    /// Reads the next response and decodes it as the answer of type `R` at `version`
    /// to the request with `correlation` (an `InvalidData` error if the response carries
    /// another correlation id).
    pub fn receive<R: Request>(
        &mut self,
        correlation: i32,
        version: i16,
    ) -> io::Result<R::Response> {
        let payload = self.receive_raw()?;
        let (got, body) = decode_response::<R>(payload, version)?;
        if got != correlation {
            return Err(invalid(format!(
                "response has correlation id {got}, expected {correlation}"
            )));
        }
        Ok(body)
    }

    /// Reads the next response frame as it is (header and body, no length prefix).
    pub fn receive_raw(&mut self) -> io::Result<Bytes> {
        read_frame(&mut self.stream)?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    /// Writes bytes as they are (a frame built by hand, say).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The first 4 bytes of a response payload: its correlation id.
pub(crate) fn response_correlation_id(payload: &[u8]) -> Option<i32> {
    let mut b = payload.get(..4)?;
    Some(b.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest};

    #[test]
    fn request_frames_carry_length_and_header() {
        let frame = encode_request(9, "c", 12, &MetadataRequest::default()).unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(
            i16::from_be_bytes([frame[4], frame[5]]),
            ApiKey::Metadata as i16
        );
        assert_eq!(i16::from_be_bytes([frame[6], frame[7]]), 12);
        assert_eq!(i32::from_be_bytes(frame[8..12].try_into().unwrap()), 9);
    }

    #[test]
    fn api_versions_responses_have_header_v0() {
        // Even at v3 (a flexible version), the response header has no tagged fields.
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(5)
            .encode(&mut buf, 0)
            .unwrap();
        ApiVersionsResponse::default().encode(&mut buf, 3).unwrap();
        let (corr, _) = decode_response::<ApiVersionsRequest>(buf.freeze(), 3).unwrap();
        assert_eq!(corr, 5);
    }

    #[test]
    fn frames_split_and_end() {
        let mut data: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0];
        assert_eq!(
            read_frame(&mut data).unwrap().unwrap(),
            Bytes::from_static(&[7, 8])
        );
        assert_eq!(
            read_frame(&mut data).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).unwrap().is_none());
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            read_frame(&mut negative).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
