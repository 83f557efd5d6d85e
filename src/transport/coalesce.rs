//! An I/O wrapper that makes `h2` write many small frames with one system call.
//!
//! `h2` copies a DATA frame into its 16 KB write buffer only when the payload is under a
//! threshold: 256 bytes over I/O that says it writes vectors well (as TLS streams do), 1024
//! bytes otherwise. A larger payload is kept aside and the buffer is flushed before the next
//! frame, so every push message (a 200-byte notification is ~300 bytes once encrypted) cost
//! its own TLS record and `writev`. Saying "not vectored" moves the threshold to 1024 bytes:
//! the requests a connection has waiting then leave in one record and one system call. `h2`
//! offers no setting for this, hence this wrapper.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Forwards everything to `T` but reports that it does not write vectors.
pub(super) struct Coalescing<T>(pub(super) T);

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use tokio::io::DuplexStream;

    use super::*;

    /// A loopback stream that counts its writes and, like a TLS stream, says it writes vectors.
    struct CountingWrites {
        inner: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for CountingWrites {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingWrites {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }
    }

    /// Writes to the stream for 20 push-sized requests handed to `h2` without yielding.
    async fn writes_for_twenty_requests<T>(wrap: impl FnOnce(CountingWrites) -> T) -> usize
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (client, _server) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let io = wrap(CountingWrites {
            inner: client,
            writes: writes.clone(),
        });
        let (send, connection) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(connection);
        let mut send = send.ready().await.unwrap();
        tokio::task::yield_now().await;
        let before = writes.load(Ordering::Relaxed);
        let mut streams = Vec::new();
        for _ in 0..20 {
            let request = http::Request::post("https://push.example/p/x")
                .body(())
                .unwrap();
            let (response, mut stream) = send.send_request(request, false).unwrap();
            // An encrypted 200-byte notification is about this long.
            stream.send_data(Bytes::from(vec![7u8; 300]), true).unwrap();
            streams.push((response, stream));
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        writes.load(Ordering::Relaxed) - before
    }

    #[tokio::test]
    async fn waiting_requests_leave_in_one_write() {
        let plain = writes_for_twenty_requests(|io| io).await;
        let coalesced = writes_for_twenty_requests(Coalescing).await;
        assert!(plain >= 20, "h2 wrote 20 requests in {plain} writes");
        assert!(
            coalesced <= 2,
            "coalesced: {coalesced} writes for 20 requests"
        );
    }
}
