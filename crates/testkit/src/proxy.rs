//! A TCP proxy that injects faults between a client and a broker (std threads, no async).
//!
//! Point a client at [`FaultProxy::addr`] instead of the broker, then add latency, cut
//! every open connection, cut each connection after it carried N bytes or at random, or
//! silently drop all traffic (a network partition).
//!
//! Note: Kafka clients connect to the addresses brokers *advertise* after bootstrap; a
//! proxy on an ephemeral port in front of a broker only carries the bootstrap
//! connection. To put a whole cluster behind proxies use
//! [`fault_cluster`](crate::fault_cluster): `cargo xtask kafka up` gives every broker a
//! FAULTY listener advertised on a port where the proxy listens.

use crate::sync;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);

struct State {
    upstream: SocketAddr,
    latency_micros: AtomicU64,
    blackhole: AtomicBool,
    /// Cut a connection once it carried this many bytes (both directions); 0: never.
    cut_after: AtomicU64,
    /// Chance, in millionths, that a forwarded chunk cuts its connection.
    cut_chance_ppm: AtomicU32,
    rng: AtomicU64,
    accepted: AtomicU64,
    stop: AtomicBool,
    /// Both sockets of every proxied connection, so `reset_all` can cut them.
    conns: Mutex<Vec<TcpStream>>,
}

/// A running proxy; stops (and cuts its connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// Listen on an ephemeral 127.0.0.1 port and forward every connection to `upstream`.
    pub fn start(upstream: &str) -> io::Result<FaultProxy> {
        Self::start_on("127.0.0.1:0", upstream)
    }

    /// Listen on `listen` (`host:port`) and forward every connection to `upstream`.
    pub fn start_on(listen: &str, upstream: &str) -> io::Result<FaultProxy> {
        let upstream = upstream.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot resolve {upstream}"),
            )
        })?;
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            latency_micros: AtomicU64::new(0),
            blackhole: AtomicBool::new(false),
            cut_after: AtomicU64::new(0),
            cut_chance_ppm: AtomicU32::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ u64::from(addr.port())),
            accepted: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("fault-proxy-{addr}"))
            .spawn(move || accept_loop(listener, st))?;
        Ok(FaultProxy {
            addr,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Delay every chunk of data, in both directions, by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.state.latency_micros.store(micros, Ordering::SeqCst);
    }

    /// Close every open proxied connection (both sides); new connections still work.
    pub fn reset_all(&self) {
        let conns = std::mem::take(&mut *sync::lock(&self.state.conns));
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far (a client that reconnects after cuts shows here).
    pub fn connections(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Cut every connection, present and future, once it has carried `bytes` bytes
    /// (both directions together; the last chunk is forwarded only up to the limit, so
    /// a request or response is left half-written). `None` turns it off.
    pub fn cut_after(&self, bytes: Option<u64>) {
        self.state
            .cut_after
            .store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// Cut a connection at random: each forwarded chunk cuts its connection with this
    /// probability (0.0 turns it off).
    pub fn cut_randomly(&self, probability: f64) {
        let ppm = (probability.clamp(0.0, 1.0) * 1_000_000.0) as u32;
        self.state.cut_chance_ppm.store(ppm, Ordering::SeqCst);
    }

    /// While on, connections stay open (and new ones are accepted) but every byte in
    /// either direction is dropped, as in a network partition.
    pub fn blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.reset_all();
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for client in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect_timeout(&state.upstream, Duration::from_secs(5)) else {
            continue; // upstream down: the client sees its connection closed
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        let mut conns = sync::lock(&state.conns);
        // Forget connections that have closed since (a shut-down socket has no peer).
        conns.retain(|s| s.peer_addr().is_ok());
        conns.extend([c3, s3]);
        drop(conns);
        let (st1, st2) = (state.clone(), state.clone());
        let carried = Arc::new(AtomicU64::new(0));
        let carried2 = carried.clone();
        std::thread::spawn(move || pump(client, s2, &st1, &carried));
        std::thread::spawn(move || pump(server, c2, &st2, &carried2));
    }
}

/// A xorshift step on the shared generator (thread-safe enough for fault injection).
fn next_random(state: &State) -> u64 {
    let mut x = state.rng.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.rng.store(x, Ordering::Relaxed);
    x
}

/// Copy `from` to `to` until either side closes, applying the current faults.
/// `carried` counts the bytes of this connection in both directions.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, carried: &AtomicU64) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        if state.blackhole.load(Ordering::SeqCst) {
            continue;
        }
        let latency = state.latency_micros.load(Ordering::SeqCst);
        if latency > 0 {
            std::thread::sleep(Duration::from_micros(latency));
        }
        let mut len = n;
        let mut cut = false;
        let limit = state.cut_after.load(Ordering::SeqCst);
        if limit > 0 {
            let before = carried.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 >= limit {
                len = usize::try_from(limit.saturating_sub(before))
                    .unwrap_or(n)
                    .min(n);
                cut = true;
            }
        }
        let ppm = state.cut_chance_ppm.load(Ordering::SeqCst);
        if ppm > 0 && next_random(state) % 1_000_000 < u64::from(ppm) {
            len = usize::try_from(next_random(state) % (n as u64 + 1)).unwrap_or(n);
            cut = true;
        }
        if to.write_all(&buf[..len]).is_err() || cut {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on an ephemeral port.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn echo(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        stream.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn forwards_delays_blackholes_and_resets() {
        let proxy = FaultProxy::start(&echo_server().to_string()).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(echo(&mut c, b"hello").unwrap(), b"hello");

        proxy.set_latency(Duration::from_millis(100));
        let t = Instant::now();
        assert_eq!(echo(&mut c, b"slow").unwrap(), b"slow");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        proxy.set_latency(Duration::ZERO);

        proxy.blackhole(true);
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            echo(&mut c, b"lost").is_err(),
            "blackholed bytes must not arrive"
        );
        proxy.blackhole(false);

        proxy.reset_all();
        let mut buf = [0u8; 1];
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(
            matches!(c.read(&mut buf), Ok(0) | Err(_)),
            "connection must be cut"
        );

        let mut c2 = TcpStream::connect(proxy.addr()).unwrap();
        c2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(echo(&mut c2, b"again").unwrap(), b"again");
    }

    #[test]
    fn cuts_after_n_bytes() {
        let proxy = FaultProxy::start(&echo_server().to_string()).unwrap();
        proxy.cut_after(Some(10));
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // 4 bytes out and 4 back: 8 carried.
        assert_eq!(echo(&mut c, b"abcd").unwrap(), b"abcd");
        // 4 more out reaches 12 > 10: only 2 forwarded, then the connection is cut.
        c.write_all(b"efgh").unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(got.len() <= 2, "{got:?}");
        proxy.cut_after(None);
        let mut c2 = TcpStream::connect(proxy.addr()).unwrap();
        c2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(echo(&mut c2, b"0123456789abc").unwrap(), b"0123456789abc");
    }
}
