//! The TCP stream under TLS: reads ahead, and raises `SO_RCVLOWAT` for large responses.
//!
//! rustls asks its transport for at most 4 KiB more than it holds, up to one TLS record
//! (~16 KiB), so a bare socket under it costs one `recvfrom` per record and, with
//! `SO_RCVLOWAT` off, a wake-up every few records: consuming 200 MB over SSL
//! took 14,000 `recvfrom` and 2,100 `epoll_wait` against 310 and 290 over PLAINTEXT, and
//! twice the CPU. [`ReadAhead`] reads up to [`CAPACITY`] bytes per system call and serves
//! rustls from that buffer (3,300 `recvfrom`, 310 `epoll_wait` with the mark below; 40 %
//! less CPU for the whole consumer).
//!
//! It also sets the receive low-water mark ([`super::rcvlowat`]) while the connection's
//! reader waits for the rest of a large frame. The reader publishes how many plaintext
//! bytes of the current frame it still misses ([`Missing`]); when this stream must go to
//! the socket (its buffer is empty), the bytes still to come of that frame are in the
//! socket or in rustls, which then holds no undelivered plaintext (it only reads when it
//! has none) and at most one partial record of ciphertext (< [`RECORD_SLACK`] bytes).
//! Ciphertext is never shorter than its plaintext, so the socket will receive at least
//! `missing - RECORD_SLACK` more bytes before the frame is complete, and a mark of that
//! size is always reached.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::rcvlowat::LowWaterMark;

/// Bytes read from the socket per system call, at most. 256 KiB did no better on a 1 KB
/// consume (the mark already makes each wake-up find a large chunk).
pub(crate) const CAPACITY: usize = 64 * 1024;

/// More than rustls can hold of one partial TLS record (16 KiB of payload, its padding,
/// tag and header).
pub(crate) const RECORD_SLACK: usize = 16 * 1024 + 2048;

/// Plaintext bytes of the current response frame the reader still misses (0 between
/// frames); written by the reader before each read, read by [`ReadAhead`].
#[derive(Clone, Default)]
pub(crate) struct Missing(Arc<AtomicUsize>);

impl Missing {
    pub(crate) fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A [`TcpStream`] that reads ahead (see the module docs). Writes go straight through.
pub(crate) struct ReadAhead {
    tcp: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    missing: Missing,
    mark: LowWaterMark,
}

impl ReadAhead {
    pub(crate) fn new(tcp: TcpStream, missing: Missing) -> Self {
        ReadAhead {
            tcp,
            buf: vec![0; CAPACITY].into_boxed_slice(),
            start: 0,
            end: 0,
            missing,
            mark: LowWaterMark::new(),
        }
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            let missing = this.missing.get().saturating_sub(RECORD_SLACK);
            this.mark.update(&this.tcp, missing);
            let mut rb = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut rb))?;
            this.start = 0;
            this.end = rb.filled().len();
        }
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buf[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ReadAhead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// The bytes come through unchanged in small reads (as rustls makes them), and a
    /// frame whose missing bytes the mark was raised for completes without EOF: the
    /// mark stays below what the peer sends.
    #[tokio::test]
    async fn small_reads_see_every_byte_and_a_raised_mark_is_reached() {
        let (client, mut server) = pair().await;
        let missing = Missing::default();
        let mut stream = ReadAhead::new(client, missing.clone());
        let len = 600_000;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        missing.set(len);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(50_000) {
                server.write_all(chunk).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            // Keep the connection open: only the mark can let the last read finish.
            server
        });
        let mut got = Vec::with_capacity(len);
        let mut chunk = [0u8; 4096];
        let read = async {
            while got.len() < len {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "EOF after {} bytes", got.len());
                got.extend_from_slice(&chunk[..n]);
                missing.set(len - got.len());
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the read stalled: the mark was above what was still to come");
        assert_eq!(got, data);
        drop(writer.await.unwrap());
    }
}
