//! Serving HTTP with limits: one task per connection, a time limit on request headers (which
//! is also the idle keep-alive limit) and on request bodies, and a cap on open connections.
//!
//! At the cap, a new connection makes room by closing the connection that has been idle
//! the longest (no request under way); only if every connection is busy is the newcomer
//! answered `503` and closed. So a crowd of idle or slow clients cannot keep
//! `/api/v1/health` (or anyone else) out. Running out of file descriptors is treated the
//! same way: the oldest idle connection is closed and accepting goes on. With [`Tls`] every
//! connection is TLS (rustls), its handshake within the header time limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The limits of the API server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// A request's headers must arrive within this; it is also how long an idle keep-alive
    /// connection is kept.
    pub header_timeout: Duration,
    /// A request's body must arrive within this.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The API's own certificate and key (PEM files), for sites without a reverse proxy.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

impl Tls {
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Tls, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("api.tls_cert {}: {e}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("api.tls_key {}: {e}", key.display()))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("api.tls_cert and api.tls_key: {e}"))?;
        Ok(Tls(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
            config,
        ))))
    }
}

/// One open connection: whether a request is under way, when it last was, and how to
/// close it.
struct Open {
    busy: Arc<AtomicU32>,
    last_used: Arc<AtomicU64>,
    close: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, Open>,
}

impl Connections {
    /// Closes the connection idle the longest; false if every connection is busy.
    fn evict_idle(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0 && c.close.is_some())
            .min_by_key(|(_, c)| c.last_used.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.open.get_mut(&id)) {
            Some(c) => {
                if let Some(close) = c.close.take() {
                    let _ = close.send(());
                }
                true
            }
            None => false,
        }
    }

    /// Open connections that have not been told to close.
    fn live(&self) -> usize {
        self.open.values().filter(|c| c.close.is_some()).count()
    }
}

fn now_ms(origin: std::time::Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let connections = Arc::new(Mutex::new(Connections::default()));
    let origin = std::time::Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (or another passing failure): make room, wait a
                // moment, go on.
                let room = lock(&connections).evict_idle();
                tracing::warn!(error = %e, closed_an_idle_connection = room, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (id, busy, last_used, closed) = {
            let mut c = lock(&connections);
            if c.live() >= limits.max_connections && !c.evict_idle() {
                drop(c);
                tokio::spawn(refuse(stream));
                continue;
            }
            let (close, closed) = oneshot::channel();
            let busy = Arc::new(AtomicU32::new(0));
            let last_used = Arc::new(AtomicU64::new(now_ms(origin)));
            c.next += 1;
            let id = c.next;
            c.open.insert(
                id,
                Open {
                    busy: busy.clone(),
                    last_used: last_used.clone(),
                    close: Some(close),
                },
            );
            (id, busy, last_used, closed)
        };
        let app = router.clone();
        let connections = connections.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let app = app.clone();
                    let busy = busy.clone();
                    let last_used = last_used.clone();
                    busy.fetch_add(1, Ordering::Relaxed);
                    // Busy until the response's body is sent: an event stream is a request
                    // under way for as long as it is open.
                    let done = Busy {
                        busy,
                        last_used,
                        origin,
                    };
                    async move {
                        use tower::ServiceExt;
                        let response = app.oneshot(req).await;
                        response.map(|r| {
                            r.map(|body| {
                                axum::body::Body::new(Guarded {
                                    inner: body,
                                    _done: done,
                                })
                            })
                        })
                    }
                },
            );
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let served = async {
                let r = match tls {
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                    Some(Tls(acceptor)) => {
                        let handshake =
                            tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
            };
            tokio::select! {
                _ = served => {}
                _ = closed => {
                    tracing::debug!(%peer, "idle HTTP connection closed to make room");
                }
            }
            lock(&connections).open.remove(&id);
        });
    }
}

/// Marks the end of a request (its response body sent or dropped).
struct Busy {
    busy: Arc<AtomicU32>,
    last_used: Arc<AtomicU64>,
    origin: std::time::Instant,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        self.last_used.store(now_ms(self.origin), Ordering::Relaxed);
    }
}

/// A response body that holds its request's [`Busy`] until it is done.
struct Guarded {
    inner: axum::body::Body,
    _done: Busy,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Answers a connection beyond the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"type":"urn:stackroom:busy","title":"busy","status":503,"detail":"the server has as many open connections as it takes; try again"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

fn lock(c: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_idle_longest_makes_room_and_a_busy_one_never_does() {
        let mut c = Connections::default();
        let mut closed = Vec::new();
        for (id, busy, last) in [(1, 0, 30), (2, 1, 10), (3, 0, 20)] {
            let (close, rx) = oneshot::channel();
            closed.push(rx);
            c.open.insert(
                id,
                Open {
                    busy: Arc::new(AtomicU32::new(busy)),
                    last_used: Arc::new(AtomicU64::new(last)),
                    close: Some(close),
                },
            );
        }
        assert!(c.evict_idle());
        assert!(closed[2].try_recv().is_ok(), "3: idle since 20");
        assert_eq!(c.live(), 2);
        assert!(c.evict_idle());
        assert!(closed[0].try_recv().is_ok(), "1: idle since 30");
        assert!(!c.evict_idle(), "2 is busy");
        assert!(closed[1].try_recv().is_err());
    }

    #[tokio::test]
    async fn an_open_event_stream_is_busy_and_an_idle_connection_makes_room() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let router = Router::new().route(
            "/stream",
            axum::routing::get(|| async {
                axum::body::Body::from_stream(futures_util::stream::pending::<
                    Result<axum::body::Bytes, std::io::Error>,
                >())
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        tokio::spawn(serve(
            listener,
            router,
            limits,
            None,
            std::future::pending(),
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let mut idle = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _newcomer = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the idle connection made room: {closed:?}"
        );
        // The rest of its head may still come; then nothing, and no end.
        loop {
            match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(n)) if n > 0 => continue,
                other => panic!("the event stream was closed: {other:?}"),
            }
        }
    }
}
