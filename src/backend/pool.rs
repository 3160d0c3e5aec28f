//! The legacy app's connections: one origin, HTTP/1.1, kept alive and reused.
//!
//! A backend calls one origin (its base URL's scheme, host and port), so its pool is a stack
//! of idle connections behind a mutex: a call takes the most recently used one that is still
//! open, or connects; the caller gives it back once the answer's body is read whole.
//!
//! Why not hyper-util's pooled client, which this replaced: it serves any number of origins,
//! so each call hashed the pool key (scheme and authority, with SipHash) twice, cloned and
//! formatted it, and went through checkout futures: 9 k of the 140 k instructions of a GET
//! (callgrind), for a choice between connections to one place. The connections themselves
//! are hyper's (`client::conn::http1`), made by the same connector (TCP with the connect
//! timeout, TLS by rustls for https), each driven by a task of its own as before.
//!
//! What hyper-util did that stays: a call that finds its pooled connection closing before
//! the request was written is sent on a new connection (nothing reached the server); idle
//! connections are kept at most [`Pool::new`]'s `max_idle` and closed after `idle_timeout`
//! (by a task that looks every [`REAP_EVERY`] at most, started with the first connection);
//! a connection still busy with its last exchange is waited for at most [`BUSY_WAIT`].

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};

type Sender = SendRequest<Full<Bytes>>;
type Idles = Mutex<VecDeque<Idle>>;

/// The longest a call waits for an idle connection still finishing its last exchange (say,
/// writing a body the app answered early without reading): then it takes another.
const BUSY_WAIT: Duration = Duration::from_millis(100);

/// How often, at most, expired idle connections are looked for and closed.
const REAP_EVERY: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call got no answer.
#[derive(Debug)]
pub(super) enum PoolError {
    /// No connection could be made (TCP or TLS): nothing reached the server.
    Connect(BoxError),
    /// The connection failed while the request was written or the answer read.
    Transport(hyper::Error),
}

/// Idle connections to one origin.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the base URL: where connections go.
    origin: Uri,
    /// Oldest first. Shared with the task that closes expired ones.
    idle: Arc<Idles>,
    reaping: AtomicBool,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A connection taken from the pool (or new) for one call; [`Pool::put_back`] returns it.
pub(super) struct Conn {
    sender: Sender,
}

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Pool {
        Pool {
            connector,
            origin,
            idle: Arc::new(Mutex::new(VecDeque::new())),
            reaping: AtomicBool::new(false),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) and gives the answer's head with the
    /// connection its body is read from.
    pub(super) async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Conn), PoolError> {
        let (mut conn, reused) = match self.take_idle().await {
            Some(conn) => (conn, true),
            // Boxed: connecting is rare, and its future (connector, TLS, handshake) inline
            // would enlarge every request's future, which is moved whole through the layers
            // (memcpy of the POST path grew by 23k instructions per request in callgrind).
            None => (Box::pin(self.connect()).await?, false),
        };
        match conn.sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, conn)),
            Err(mut e) => match e.take_message() {
                // The idle connection was closing (the server's keep-alive ended) before the
                // request was written: a new connection sends it, as no byte of it went out.
                Some(req) if reused => {
                    drop(conn);
                    let mut fresh = Box::pin(self.connect()).await?;
                    let resp = fresh
                        .sender
                        .send_request(req)
                        .await
                        .map_err(PoolError::Transport)?;
                    Ok((resp, fresh))
                }
                _ => Err(PoolError::Transport(e.into_error())),
            },
        }
    }

    /// Gives back a connection whose answer was read whole; one that is closing, or beyond
    /// `max_idle`, is dropped (which closes it). Expired connections are dropped here too.
    pub(super) fn put_back(&self, conn: Conn) {
        if conn.sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest first: kept in the order they came back.
        while idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.idle_timeout)
        {
            idle.pop_front();
        }
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender: conn.sender,
            since: now,
        });
    }

    /// The most recently used idle connection that is open, not expired and ready for a
    /// request; the others met on the way are dropped.
    async fn take_idle(&self) -> Option<Conn> {
        loop {
            let Idle { mut sender, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.pop_back()?
            };
            if sender.is_closed() || since.elapsed() >= self.idle_timeout {
                continue;
            }
            // Ready at once unless the connection is still finishing its last exchange.
            let ready = match std::future::poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await {
                Poll::Ready(r) => r.is_ok(),
                Poll::Pending => matches!(
                    tokio::time::timeout(BUSY_WAIT, sender.ready()).await,
                    Ok(Ok(()))
                ),
            };
            if ready {
                return Some(Conn { sender });
            }
        }
    }

    async fn connect(&self) -> Result<Conn, PoolError> {
        let mut connector = self.connector.clone();
        let io = connector
            .ready()
            .await
            .map_err(PoolError::Connect)?
            .call(self.origin.clone())
            .await
            .map_err(PoolError::Connect)?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "legacy connection ended with an error");
            }
        });
        if !self.reaping.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(&self.idle), self.idle_timeout));
        }
        Ok(Conn { sender })
    }
}

/// Drops (and so closes) the idle connections kept `timeout` or longer, and closed ones.
fn drop_expired(idle: &mut VecDeque<Idle>, now: Instant, timeout: Duration) {
    idle.retain(|c| now.duration_since(c.since) < timeout && !c.sender.is_closed());
}

/// Closes expired idle connections while the pool lives, so a quiet gateway does not hold
/// sockets open to an app that keeps them.
async fn reap(idle: Weak<Idles>, timeout: Duration) {
    let every = timeout.min(REAP_EVERY);
    loop {
        tokio::time::sleep(every).await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
        drop_expired(&mut idle, Instant::now(), timeout);
    }
}
