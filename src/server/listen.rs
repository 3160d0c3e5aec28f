//! Serving a router on a TCP listener with bounded connections.
//!
//! Anyone who can reach the SCIM port can open connections, so each one is bounded before a
//! request exists: a connection must deliver a request's headers within
//! `header_read_timeout` of its first byte (or of being accepted), may stay idle between
//! requests for `idle_timeout`, and at most `max_connections` are open at once. When the cap
//! is reached, the connection idle (or dribbling headers) the longest is closed to make room,
//! so slow or silent clients cannot keep real ones out; only when every connection is busy
//! with a request does accepting pause (the kernel's backlog holds the newcomers).
//!
//! On the SCIM listener, the errors hyper answers on its own before any request reaches the
//! router (a malformed request line, 431 for oversized headers, 414 for a URI beyond
//! hyper's limit) are rewritten on their way out into SCIM error bodies (RFC 7644 §3.12),
//! so every error a SCIM client sees has the same shape.
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the peer), which sign-in throttling and
//! the audit log read.

use super::stage::Inner;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How connections on one listener are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time from a connection's first byte of a request (or its accept) to the end of that
    /// request's headers.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest request line plus headers, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// Whether hyper's own error responses are rewritten as SCIM errors.
    pub scim_errors: bool,
}

impl ConnLimits {
    /// The admin listener's bounds: the same timeouts, a small cap, plain errors.
    pub fn admin(&self) -> ConnLimits {
        ConnLimits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            scim_errors: false,
            ..*self
        }
    }
}

/// Connections the admin listener keeps open at once (probes, scrapes and a few browsers).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// File descriptors kept back from the connection cap: the admin listener's connections,
/// the store's pool, the backend client's pool, files and the log.
const FD_RESERVE: u64 = ADMIN_MAX_CONNECTIONS as u64 + 128;

/// `wanted` connections, lowered so that the process's open-file limit leaves room for
/// everything else it opens (a cap above the limit would make accept fail instead of
/// evicting). The second value says whether it was lowered.
pub fn connection_cap(wanted: usize) -> (usize, bool) {
    let Some(limit) = open_file_limit() else {
        return (wanted, false);
    };
    let room = usize::try_from(limit.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX)
        .max(16);
    if wanted > room {
        (room, true)
    } else {
        (wanted, false)
    }
}

/// The soft limit on open files, read from `/proc/self/limits` (Linux); `None` elsewhere or
/// when unlimited.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The peer's address as an extractor that never fails (`None` when the router is served
/// without connection info, as in unit tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// One open connection's state, shared by its task, its I/O and the table.
#[derive(Debug)]
struct Conn {
    /// Requests being answered (0 or 1 on HTTP/1.1).
    busy: AtomicU32,
    /// Milliseconds since the table's epoch (plus one) when the current request's first byte
    /// arrived; 0 when no request is being read.
    reading_since: AtomicU64,
    /// Milliseconds since the table's epoch when the last request ended (or the accept).
    last_active: AtomicU64,
    kill: Notify,
}

/// Milliseconds since a table's epoch: the clock connection states are kept in.
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The open connections of one listener.
#[derive(Debug)]
struct Table {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    freed: Notify,
}

impl Table {
    fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let now = self.now_ms();
        let conn = Arc::new(Conn {
            busy: AtomicU32::new(0),
            // A new connection must send its first request within the header timeout.
            reading_since: AtomicU64::new(now + 1),
            last_active: AtomicU64::new(now),
            kill: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.freed.notify_one();
    }

    /// Closes the connection that has been idle (or reading headers) the longest; `false`
    /// when every connection is answering a request.
    fn evict_one(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| {
                let reading = c.reading_since.load(Ordering::Acquire);
                if reading > 0 {
                    reading - 1
                } else {
                    c.last_active.load(Ordering::Acquire)
                }
            });
        match victim {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Conn {
    /// When this connection is to be closed if nothing changes: reading headers for too
    /// long, or idle for too long; `None` while a request is being answered.
    fn deadline(&self, epoch: Instant, limits: &ConnLimits) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let reading = self.reading_since.load(Ordering::Acquire);
        let (from, allowed) = if reading > 0 {
            (reading - 1, limits.header_read_timeout)
        } else {
            (
                self.last_active.load(Ordering::Acquire),
                limits.idle_timeout,
            )
        };
        Some(epoch + Duration::from_millis(from) + allowed)
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves; then stops
/// accepting, lets each connection finish the request it is answering (idle ones close at
/// once) and returns when all are closed.
pub async fn serve<A: Inner>(
    listener: TcpListener,
    app: super::LiveRouter<A>,
    limits: ConnLimits,
    tls: Option<super::tls::LiveTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let table = Arc::new(Table {
        epoch: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        freed: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut accept_errors: u64 = 0;
    loop {
        // At the cap: make room by closing the longest-idle connection, or (all busy) wait
        // for one to end before accepting more.
        while table.len() >= limits.max_connections.max(1) {
            if table.evict_one() {
                tracing::debug!("connection cap reached: closed the longest-idle connection");
            }
            tokio::select! {
                _ = &mut shutdown => return drain(tasks, stop_tx).await,
                _ = table.freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (id, conn) = table.add();
                    tasks.spawn(accepted_connection(
                        stream,
                        tls.clone(),
                        Accepted {
                            peer,
                            app: app.clone(),
                            limits,
                            table: table.clone(),
                            id,
                            conn,
                            stop: stop_rx.clone(),
                        },
                    ));
                }
                Err(e) => {
                    // Usually EMFILE/ENFILE: free a descriptor and back off instead of
                    // spinning on the error.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!(error = %e, count = accept_errors, "accept failed");
                    }
                    table.evict_one();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drain(tasks, stop_tx).await
}

async fn drain(mut tasks: JoinSet<()>, stop: watch::Sender<bool>) -> io::Result<()> {
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One accepted connection: who it is, what serves it, and the table it is kept in.
struct Accepted<A> {
    peer: SocketAddr,
    app: super::LiveRouter<A>,
    limits: ConnLimits,
    table: Arc<Table>,
    id: u64,
    conn: Arc<Conn>,
    stop: watch::Receiver<bool>,
}

/// Completes the TLS handshake when the listener has TLS (within `header_read_timeout`,
/// like a request's headers; a client that fails it is closed and logged at debug), then
/// serves the connection.
async fn accepted_connection<A: Inner>(
    stream: TcpStream,
    tls: Option<super::tls::LiveTls>,
    accepted: Accepted<A>,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return connection(stream, accepted).await;
    };
    // Removes the connection from the table however the handshake ends (removing twice,
    // here and in `connection`, is harmless).
    let _entry = Entry(accepted.table.clone(), accepted.id);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let mut stopping = accepted.stop.clone();
    // A connection still in its handshake is idle: eviction (at the connection cap) and
    // shutdown close it at once, as they close an idle plain connection.
    let handshake = tokio::select! {
        r = tokio::time::timeout(accepted.limits.header_read_timeout, acceptor.accept(stream)) => r,
        _ = accepted.conn.kill.notified() => return,
        _ = stopping.changed() => return,
    };
    let peer = accepted.peer;
    match handshake {
        Ok(Ok(stream)) => connection(stream, accepted).await,
        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one connection until it ends, is evicted, overstays a deadline, or (after
/// shutdown) finishes its current request.
async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static, A: Inner>(
    stream: S,
    accepted: Accepted<A>,
) {
    let Accepted {
        peer,
        app,
        limits,
        table,
        id,
        conn,
        mut stop,
    } = accepted;
    let io = Tracked {
        inner: stream,
        conn: conn.clone(),
        epoch: table.epoch,
        rewrite: limits.scim_errors,
        pending: Vec::new(),
        max_header_bytes: limits.max_header_bytes,
    };
    // Removes the connection from the table however this task ends (a panic included).
    let _entry = Entry(table.clone(), id);
    let svc_conn = conn.clone();
    let epoch = table.epoch;
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        // Busy from the end of the headers until hyper drops the response body (written),
        // so neither eviction nor the idle timer cuts a response that is still going out.
        let busy = BusyGuard::new(svc_conn.clone(), epoch);
        req.extensions_mut().insert(ConnectInfo(peer));
        let fut = app.current().oneshot(req.map(axum::body::Body::new));
        async move {
            let resp = fut.await;
            resp.map(|r| r.map(|inner| axum::body::Body::new(Guarded { inner, _busy: busy })))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The header deadline is this module's (it also covers idle keep-alive time).
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let serving = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(serving);
    let mut stopping = *stop.borrow();
    if stopping {
        serving.as_mut().graceful_shutdown();
    }
    // The deadline moves as requests come and go; looking again every quarter of the shorter
    // timeout keeps the error small without waking on every request.
    let tick =
        (limits.header_read_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(25));
    loop {
        let next_look = Instant::now() + tick;
        let wake = conn
            .deadline(table.epoch, &limits)
            .map_or(next_look, |d| d.min(next_look));
        tokio::select! {
            result = serving.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            // Evicted; a request that began since the victim was chosen keeps it alive.
            _ = conn.kill.notified() => {
                if conn.busy.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if conn.deadline(table.epoch, &limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "connection closed: header or idle timeout");
                    break;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    serving.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection's place in its table, given back when the connection's task ends.
struct Entry(Arc<Table>, u64);

impl Drop for Entry {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// One request being answered on a connection; when dropped (the response body written, or
/// the request abandoned) the connection counts as idle from that moment.
struct BusyGuard {
    conn: Arc<Conn>,
    epoch: Instant,
}

impl BusyGuard {
    fn new(conn: Arc<Conn>, epoch: Instant) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.reading_since.store(0, Ordering::Release);
        BusyGuard { conn, epoch }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let now = ms_since(self.epoch);
        self.conn.last_active.store(now, Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request's [`BusyGuard`] until hyper drops it.
struct Guarded {
    inner: axum::body::Body,
    _busy: BusyGuard,
}

impl hyper::body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting when a request's bytes arrive (for the header deadline)
/// and, on the SCIM listener, turning hyper's bare error responses into SCIM errors.
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
    epoch: Instant,
    rewrite: bool,
    /// Bytes of a rewritten response not yet written.
    pending: Vec<u8>,
    max_header_bytes: usize,
}

impl<S: AsyncWrite + Unpin> Tracked<S> {
    /// Writes what is left of a rewritten response; `Ready(Ok)` once it is all out.
    fn flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.conn.busy.load(Ordering::Acquire) == 0
            && self.conn.reading_since.load(Ordering::Acquire) == 0
        {
            let now = ms_since(self.epoch);
            self.conn.reading_since.store(now + 1, Ordering::Release);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.pending.is_empty() {
            match self.flush_pending(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.rewrite
            && let Some(status) = hyper_error_status(buf)
        {
            self.pending = scim_error_response(status, self.max_header_bytes);
            // hyper is told its bytes went out; ours follow (and are flushed before any
            // flush or shutdown completes).
            return match self.flush_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.flush_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.flush_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// The status of a response hyper wrote on its own for a request it could not parse: a
/// whole header block of status 400, 414 or 431 with no header but `content-length: 0`,
/// `date` and `connection`. Every response of the router carries `x-request-id` (set by the
/// edge layer) and a SCIM error carries a body, so none of them matches.
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = match rest.get(..4)? {
        b"400 " => 400,
        b"414 " => 414,
        b"431 " => 431,
        _ => return None,
    };
    if !buf.ends_with(b"\r\n\r\n") || buf.len() > 512 {
        return None;
    }
    let text = std::str::from_utf8(buf).ok()?;
    let mut lines = text.trim_end().split("\r\n");
    lines.next()?;
    let mut zero_length = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => zero_length = true,
            "date" | "connection" => {}
            _ => return None,
        }
    }
    zero_length.then_some(status)
}

/// A whole HTTP response carrying the SCIM error for a request hyper refused.
fn scim_error_response(status: u16, max_header_bytes: usize) -> Vec<u8> {
    let (reason, detail) = match status {
        414 => ("URI Too Long", "the request URI is too long".to_string()),
        431 => (
            "Request Header Fields Too Large",
            format!("the request line and headers exceed {max_header_bytes} bytes"),
        ),
        _ => ("Bad Request", "malformed HTTP request".to_string()),
    };
    let body = crate::scim::ScimError::new(status, None, detail)
        .to_json()
        .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        super::error::SCIM_CONTENT_TYPE,
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hypers_bare_error_heads() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 06:00:00 GMT\r\n\r\n";
        assert_eq!(hyper_error_status(bare), Some(431));
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(bare), Some(400));
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: 1\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/scim+json\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"HTTP/1.1 400 \"}",
        ] {
            assert_eq!(hyper_error_status(ours), None, "{}", String::from_utf8_lossy(ours));
        }
    }

    #[test]
    fn rewritten_errors_are_scim_bodies() {
        let r = String::from_utf8(scim_error_response(431, 16384)).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("content-type: application/scim+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "431");
        assert_eq!(v["schemas"][0], crate::scim::error::ERROR_SCHEMA);
    }

    #[test]
    fn the_cap_leaves_room_under_the_open_file_limit() {
        let (cap, _) = connection_cap(usize::MAX);
        if let Some(limit) = open_file_limit() {
            assert!((cap as u64) < limit, "{cap} vs {limit}");
        }
        assert_eq!(connection_cap(8).0, 8);
    }
}
