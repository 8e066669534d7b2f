//! The reader task: splits response frames off the socket and hands each to the waiter
//! at the head of the FIFO.

use crate::sync;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;
use tracing::trace;

use super::Shared;
use crate::error::{Error, Result};
use crate::net::frame;
use crate::net::rcvlowat::LowWaterMark;

/// The read side of a connection's socket.
pub(super) trait ReadSocket: AsyncRead + Unpin + Send + 'static {
    /// Adjusts `SO_RCVLOWAT` for a frame of which `missing` bytes are still to come.
    fn low_water(&self, mark: &mut LowWaterMark, missing: usize);
}

impl ReadSocket for OwnedReadHalf {
    fn low_water(&self, mark: &mut LowWaterMark, missing: usize) {
        mark.update(self.as_ref(), missing);
    }
}

/// The read side under TLS. The socket's mark is set below rustls, by
/// [`ReadAhead`](crate::net::readahead::ReadAhead), which knows when it is about to wait
/// (see `net/readahead.rs`).
#[cfg(feature = "tls")]
pub(super) struct TlsRead {
    read: tokio::io::ReadHalf<tokio_rustls::client::TlsStream<crate::net::readahead::ReadAhead>>,
    missing: crate::net::readahead::Missing,
}

#[cfg(feature = "tls")]
impl TlsRead {
    pub(super) fn new(
        read: tokio::io::ReadHalf<
            tokio_rustls::client::TlsStream<crate::net::readahead::ReadAhead>,
        >,
        missing: crate::net::readahead::Missing,
    ) -> Self {
        TlsRead { read, missing }
    }
}

#[cfg(feature = "tls")]
impl AsyncRead for TlsRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

#[cfg(feature = "tls")]
impl ReadSocket for TlsRead {
    fn low_water(&self, _mark: &mut LowWaterMark, missing: usize) {
        self.missing.set(missing);
    }
}

/// Reads response frames and hands each to the waiter at the head of the FIFO.
pub(super) async fn read_loop<R: ReadSocket>(shared: Arc<Shared>, mut socket: R) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut mark = LowWaterMark::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        if shared.dead.load(Ordering::SeqCst) {
            return;
        }
        match frame::split_frame(&mut buf) {
            Ok(Some(payload)) => {
                if let Err(e) = deliver(&shared, payload) {
                    shared.poison(e);
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                shared.poison(e);
                return;
            }
        }
        socket.low_water(&mut mark, frame::missing(&buf));
        let read = tokio::select! {
            read = socket.read_buf(&mut buf) => read,
            _ = shutdown.wait_for(|dead| *dead) => return,
        };
        match read {
            Ok(0) => {
                let pending = !buf.is_empty();
                let msg = if pending {
                    format!(
                        "{} closed the connection in the middle of a response",
                        shared.addr
                    )
                } else {
                    format!("{} closed the connection", shared.addr)
                };
                shared.poison(Error::closed(msg));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.poison(crate::net::tls::socket_error(
                    format!("reading from {}", shared.addr),
                    &shared.addr,
                    e,
                ));
                return;
            }
        }
    }
}

fn deliver(shared: &Shared, payload: Bytes) -> Result<()> {
    let correlation_id = frame::correlation_id(&payload)?;
    let head = {
        let mut guard = sync::lock(&shared.in_flight);
        guard.queue.pop_front()
    };
    shared.slot_freed.notify_one();
    let Some(head) = head else {
        return Err(Error::protocol(format!(
            "{} sent a response (correlation id {correlation_id}) to no request",
            shared.addr
        )));
    };
    if head.correlation_id != correlation_id {
        let err = Error::protocol(format!(
            "{} answered correlation id {correlation_id}, expected {} (api key {})",
            shared.addr, head.correlation_id, head.api_key
        ));
        let _ = head.reply.send(Err(err.clone()));
        return Err(err);
    }
    if head.reply.send(Ok(payload)).is_err() {
        trace!(broker = %shared.addr, correlation_id, "response for a cancelled request dropped");
    }
    Ok(())
}
