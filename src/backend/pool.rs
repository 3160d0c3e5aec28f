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
//! connections are kept at most [`Pool::new`]'s `max_idle` and for `idle_timeout`.

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};

type Sender = SendRequest<Full<Bytes>>;
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
    idle: Mutex<VecDeque<Idle>>,
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
            idle: Mutex::new(VecDeque::new()),
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
            // Ready at once unless the connection is still finishing the previous answer.
            if sender.ready().await.is_ok() {
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
        Ok(Conn { sender })
    }
}
