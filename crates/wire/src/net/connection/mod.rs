//! One broker connection: a socket owned by two background tasks (a writer and a
//! reader), and a cheap handle that sends requests to them.
//!
//! Kafka answers requests on one connection in the order they were sent, so the
//! connection keeps a FIFO of requests in flight and checks each response's correlation
//! id against the head of the FIFO. Any mismatch, I/O error or undecodable frame poisons
//! the connection: every waiter fails with the same cause and the handle reports itself
//! dead, so the pool opens a new one.
//!
//! # Cancellation
//! [`BrokerConnection::send`] is cancel-safe. The request travels to the writer task as
//! one message; a caller that is dropped before or after it was written leaves the FIFO
//! intact, and its response, when it comes, is read and discarded. Dropping a caller
//! never corrupts the stream for others.
//!
//! # Security
//! With TLS the socket is a rustls stream; with SASL the connection authenticates after
//! ApiVersions and before it is handed out. The writer task owns authentication: it runs
//! the exchange itself (so no other request can slip between two SASL messages) and, when
//! the broker gave the session a lifetime (`connections.max.reauth.ms`, KIP-368),
//! re-authenticates at 85 to 95 % of it. Requests written before a re-authentication are
//! answered first (the broker answers in order); requests queued during it wait and go
//! out after it, in their order. Nothing in flight fails or is reordered.

use crate::sync;
use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::debug;

mod auth;
mod reader;
mod writer;

use super::frame::{self, Frame};
use super::security::{SecurityConfig, SecurityProtocol};
use super::versions::{ApiVersions, API_VERSIONS_MAX};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;
use reader::read_loop;
use writer::write_loop;

/// How to open and use a broker connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header; brokers log it and quotas key on it.
    /// Default `"sluice"`.
    pub client_id: String,
    /// How long a TCP connect (plus the ApiVersions handshake) may take. Default 10 s
    /// (Java: `socket.connection.setup.timeout.ms`).
    pub connect_timeout: Duration,
    /// How long to wait for a response before the connection is deemed dead. Default
    /// 30 s (Java: `request.timeout.ms`). As in the Java client, a request that times out
    /// closes its connection: later responses on it can no longer be trusted to arrive.
    pub request_timeout: Duration,
    /// Requests written but not yet answered, at most. Default 5
    /// (Java: `max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
    /// TLS and SASL (`security.protocol`, `ssl.*`, `sasl.*`). Default PLAINTEXT.
    pub security: SecurityConfig,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "sluice".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            security: SecurityConfig::default(),
        }
    }
}

/// What the writer task is asked to do.
enum Command {
    /// Write a request.
    Request(Outgoing),
    /// Authenticate with SASL (once, right after ApiVersions), then keep the session
    /// alive by re-authenticating before it expires.
    Authenticate {
        versions: SaslVersions,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// The versions of the two SASL requests, as negotiated.
#[derive(Debug, Clone, Copy)]
struct SaslVersions {
    handshake: i16,
    authenticate: i16,
}

/// A request on its way to the writer task.
struct Outgoing {
    correlation_id: i32,
    api_key: i16,
    frame: Frame,
    /// `None` for requests the broker does not answer (produce with acks=0).
    reply: Option<oneshot::Sender<Result<Bytes>>>,
}

/// A request written and awaiting its response.
struct InFlight {
    correlation_id: i32,
    api_key: i16,
    reply: oneshot::Sender<Result<Bytes>>,
}

/// State shared by the handle and both tasks.
struct Shared {
    addr: String,
    in_flight: Mutex<InFlightQueue>,
    dead: AtomicBool,
    /// Turns true once, when the connection is poisoned; the tasks watch it. A watch
    /// channel, unlike `Notify::notify_waiters`, cannot be missed by a task that was
    /// not waiting at the moment it changed.
    shutdown: watch::Sender<bool>,
    /// Wakes the writer when a response frees an in-flight slot.
    slot_freed: Notify,
    next_correlation_id: AtomicI32,
    /// SASL authentications completed on this connection (the first and every
    /// re-authentication).
    authentications: AtomicU64,
}

#[derive(Default)]
struct InFlightQueue {
    queue: VecDeque<InFlight>,
    /// Set once: the reason the connection died.
    closed: Option<Error>,
}

impl Shared {
    /// Fails every waiter with `err` and marks the connection dead. Idempotent: the
    /// first cause wins.
    fn poison(&self, err: Error) {
        let drained = {
            let mut guard = sync::lock(&self.in_flight);
            if guard.closed.is_none() {
                guard.closed = Some(err.clone());
            }
            std::mem::take(&mut guard.queue)
        };
        if !self.dead.swap(true, Ordering::SeqCst) {
            debug!(broker = %self.addr, error = %err, "connection closed");
        }
        for waiter in drained {
            let _ = waiter.reply.send(Err(err.clone()));
        }
        self.shutdown.send_replace(true);
        // Wake a writer waiting for an in-flight slot; it then sees the cause.
        self.slot_freed.notify_one();
    }

    fn closed_error(&self) -> Error {
        let guard = sync::lock(&self.in_flight);
        guard
            .closed
            .clone()
            .unwrap_or_else(|| Error::closed(format!("connection to {} is closed", self.addr)))
    }
}

/// A handle to one broker connection. Clones share the connection.
///
/// Dropping every handle half-closes the socket; the broker answers what is in flight
/// and closes its side.
#[derive(Clone)]
pub struct BrokerConnection {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    versions: Arc<ApiVersions>,
    config: Arc<ConnectionConfig>,
}

impl fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("addr", &self.shared.addr)
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl BrokerConnection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    ///
    /// Fails with [`ErrorKind::Io`] when nothing listens there, [`ErrorKind::Timeout`]
    /// when the connect or the handshake takes longer than `connect_timeout`, and
    /// [`ErrorKind::Protocol`] when the peer answers with something that is not Kafka.
    /// With TLS or SASL configured, a failed handshake is [`ErrorKind::Tls`] and refused
    /// credentials are [`ErrorKind::Authentication`]; both name the broker and the cause.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Self> {
        let timeout = config.connect_timeout;
        match tokio::time::timeout(timeout, Self::connect_inner(addr, config)).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(format!("connecting to {addr}"), timeout)),
        }
    }

    async fn connect_inner(addr: &str, config: ConnectionConfig) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            in_flight: Mutex::new(InFlightQueue::default()),
            dead: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            slot_freed: Notify::new(),
            next_correlation_id: AtomicI32::new(0),
            authentications: AtomicU64::new(0),
        });
        let max_in_flight = config.max_in_flight.max(1);
        let config = Arc::new(config);
        let (tx, rx) = mpsc::channel(max_in_flight);
        let protocol = config.security.protocol;
        if protocol.uses_tls() {
            #[cfg(feature = "tls")]
            {
                let missing = super::readahead::Missing::default();
                let stream = super::readahead::ReadAhead::new(stream, missing.clone());
                let tls = super::tls::connect(&config.security.tls, addr, stream).await?;
                let (read, write) = tokio::io::split(tls);
                let read = reader::TlsRead::new(read, missing);
                spawn_tasks(&shared, read, write, rx, max_in_flight, &config);
            }
            #[cfg(not(feature = "tls"))]
            {
                drop((stream, rx));
                return Err(super::tls::no_tls());
            }
        } else {
            let (read, write) = stream.into_split();
            spawn_tasks(&shared, read, write, rx, max_in_flight, &config);
        }
        let mut conn = BrokerConnection {
            shared,
            tx,
            versions: Arc::new(ApiVersions::default()),
            config,
        };
        let result = conn.start(protocol).await;
        match result {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.shared.poison(e.clone());
                Err(e)
            }
        }
    }

    /// ApiVersions, then SASL if the protocol asks for it.
    async fn start(&mut self, protocol: SecurityProtocol) -> Result<()> {
        let versions = self
            .handshake()
            .await
            .map_err(|e| hint_listener_mismatch(e, protocol, &self.shared.addr))?;
        self.versions = Arc::new(versions);
        if protocol.uses_sasl() {
            let versions = SaslVersions {
                handshake: self.versions.version_for(ApiKey::SaslHandshake)?,
                authenticate: self.versions.version_for(ApiKey::SaslAuthenticate)?,
            };
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Command::Authenticate { versions, reply })
                .await
                .map_err(|_| self.shared.closed_error())?;
            rx.await.map_err(|_| self.shared.closed_error())??;
        }
        Ok(())
    }

    /// ApiVersions: ask at our highest version; a broker that does not know it answers
    /// UNSUPPORTED_VERSION in v0 format with its own range, and we ask again at the
    /// highest version of that range.
    async fn handshake(&self) -> Result<ApiVersions> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = API_VERSIONS_MAX;
        for _ in 0..2 {
            let response = self.send_versioned(&request, version).await?;
            if response.error_code == 35 {
                let theirs = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                version = theirs.min(API_VERSIONS_MAX);
                continue;
            }
            Error::check_code(response.error_code, || {
                format!("ApiVersions from {}", self.shared.addr)
            })?;
            return Ok(ApiVersions::negotiate(&response));
        }
        Err(Error::unsupported_version(format!(
            "{} rejected every ApiVersions version we offered",
            self.shared.addr
        )))
    }

    /// The broker address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// How many SASL authentications this connection has completed: 1 after connecting
    /// with SASL, one more for every re-authentication (KIP-368); 0 without SASL.
    pub fn authentications(&self) -> u64 {
        self.shared.authentications.load(Ordering::Relaxed)
    }

    /// The versions negotiated with this broker.
    pub fn api_versions(&self) -> &ApiVersions {
        &self.versions
    }

    /// True once the connection has failed or closed; a dead connection fails every
    /// request at once, with the cause that killed it.
    pub fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::SeqCst)
    }

    /// Sends `request` at the highest version both sides implement and waits for the
    /// response, at most `request_timeout`. Cancel-safe.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|()| Error::protocol(format!("unknown api key {}", R::KEY)))?;
        let version = self.versions.version_for(key)?;
        self.send_versioned(request, version).await
    }

    /// Sends `request` at an explicit `version`. Cancel-safe.
    pub async fn send_versioned<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response> {
        self.dispatch_versioned(request, version, &[]).await?.await
    }

    /// Queues `request` for writing and returns, once it is queued, a future of its
    /// response (bounded by `request_timeout`). Callers that queue one request after
    /// another from one task get them written in that order, which a producer needs
    /// for sequence numbers; [`send`](Self::send) cannot promise that across tasks.
    /// Dropping the returned future is cancel-safe.
    pub async fn dispatch<R: Request>(
        &self,
        request: &R,
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|()| Error::protocol(format!("unknown api key {}", R::KEY)))?;
        let version = self.versions.version_for(key)?;
        self.dispatch_versioned(request, version, &[]).await
    }

    /// [`dispatch`](Self::dispatch) at an explicit `version` (the transactional producer
    /// caps Produce below what the broker offers). Fields of `request` whose bytes are one
    /// of `splice` are written from those buffers, not copied into the frame (a produce
    /// request's record batches).
    pub(crate) async fn dispatch_versioned<R: Request>(
        &self,
        request: &R,
        version: i16,
        splice: &[Bytes],
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(request, version, Some(reply), splice).await?;
        let timeout = self.config.request_timeout;
        // The deadline runs from the write, not from the first poll: a caller that awaits
        // its responses one after the other still times each out on its own clock.
        let deadline = tokio::time::Instant::now() + timeout;
        let shared = Arc::clone(&self.shared);
        Ok(async move {
            let payload = match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(result)) => result?,
                Ok(Err(_)) => return Err(shared.closed_error()),
                Err(_) => {
                    let err = Error::timeout(
                        format!("request (api key {}) to {}", R::KEY, shared.addr),
                        timeout,
                    );
                    shared.poison(err.clone());
                    return Err(err);
                }
            };
            frame::decode_response::<R>(payload, version)
        })
    }

    /// Sends a request that the broker does not answer (produce with `acks=0`). Returns
    /// once the request is queued for writing.
    pub async fn send_no_response<R: Request>(&self, request: &R) -> Result<()> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|()| Error::protocol(format!("unknown api key {}", R::KEY)))?;
        let version = self.versions.version_for(key)?;
        self.enqueue(request, version, None, &[]).await
    }

    async fn enqueue<R: Request>(
        &self,
        request: &R,
        version: i16,
        reply: Option<oneshot::Sender<Result<Bytes>>>,
        splice: &[Bytes],
    ) -> Result<()> {
        if self.is_dead() {
            return Err(self.shared.closed_error());
        }
        let correlation_id = self
            .shared
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
            & i32::MAX;
        let frame = frame::encode_request_spliced(
            correlation_id,
            &self.config.client_id,
            version,
            request,
            splice,
        )?;
        let outgoing = Outgoing {
            correlation_id,
            api_key: R::KEY,
            frame,
            reply,
        };
        self.tx
            .send(Command::Request(outgoing))
            .await
            .map_err(|_| self.shared.closed_error())
    }
}

/// A plaintext client on a TLS listener sees its first request cut off or answered with
/// bytes that are not Kafka: say what the likely cause is. The kind stays (a connection
/// cut at that moment by the network is still retriable).
fn hint_listener_mismatch(e: Error, protocol: SecurityProtocol, addr: &str) -> Error {
    let cut = matches!(
        e.kind(),
        ErrorKind::ConnectionClosed | ErrorKind::Io | ErrorKind::Protocol
    );
    if cut && !protocol.uses_tls() {
        return e.context(format!(
            "{addr} ended the connection at the first request (if this listener uses TLS, \
             set security.protocol=SSL or SASL_SSL)"
        ));
    }
    e
}

/// Puts a waiter at the tail of the FIFO; gives the reply back if the connection is
/// closed.
/// Starts the connection's writer and reader tasks on the two halves of its socket.
fn spawn_tasks<R, W>(
    shared: &Arc<Shared>,
    read: R,
    write: W,
    rx: mpsc::Receiver<Command>,
    max_in_flight: usize,
    config: &Arc<ConnectionConfig>,
) where
    R: reader::ReadSocket,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(write_loop(
        Arc::clone(shared),
        write,
        rx,
        max_in_flight,
        Arc::clone(config),
    ));
    tokio::spawn(read_loop(Arc::clone(shared), read));
}

fn register(
    shared: &Shared,
    correlation_id: i32,
    api_key: i16,
    reply: oneshot::Sender<Result<Bytes>>,
) -> std::result::Result<(), oneshot::Sender<Result<Bytes>>> {
    let mut guard = lock(&shared.in_flight);
    if guard.closed.is_some() {
        return Err(reply);
    }
    guard.queue.push_back(InFlight {
        correlation_id,
        api_key,
        reply,
    });
    Ok(())
}

/// Writes every part of `frame`, several per system call (`writev`) when it has more
/// than one.
async fn write_frame<W: AsyncWrite + Unpin>(socket: &mut W, frame: Frame) -> std::io::Result<()> {
    let mut parts = frame.parts;
    if let [one] = parts.as_slice() {
        return socket.write_all(one).await;
    }
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[first..]
            .iter()
            .take(MAX_IOVECS)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut written = socket.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < parts.len() && written >= parts[first].len() {
            written -= parts[first].len();
            first += 1;
        }
        if written > 0 {
            if let Some(part) = parts.get_mut(first) {
                part.advance(written);
            }
        }
    }
    Ok(())
}

/// The most parts handed to one `writev` (Linux allows 1024).
const MAX_IOVECS: usize = 64;
