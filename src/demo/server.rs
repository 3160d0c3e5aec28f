//! The demo app's own listener: an accept loop serving HTTP/1.1 connections with hyper.
//!
//! axum's `serve` would do, except that the `close` fault must drop a connection without
//! answering; each connection therefore gets a [`ConnectionKill`] signal in its requests'
//! extensions, and its task stops serving (closing the socket) when the signal fires.

use super::{DemoConfig, DemoState, router};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// Lets a request handler close the connection it arrived on without a response.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    /// Asks the connection task to drop the connection; it does so at its next poll.
    pub(crate) fn fire(&self) {
        // notify_one stores a permit, so the signal is not lost if the task is not waiting yet.
        self.0.notify_one();
    }
}

/// A running demo legacy app on a real TCP listener.
///
/// Created by [`DemoApp::start`]; serves until [`DemoApp::shutdown`] is awaited or the value
/// is dropped (dropping aborts the server task and every open connection).
pub struct DemoApp {
    /// The bound address (with the real port when started on port 0).
    pub addr: SocketAddr,
    /// Shared state; clone it to inspect or change the data from Rust.
    pub state: DemoState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DemoApp {
    /// Binds `listen` (e.g. `127.0.0.1:0`) and serves the demo API in a background tokio task.
    ///
    /// Must be called inside a tokio runtime. Errors are bind / address errors.
    pub async fn start(listen: &str, cfg: DemoConfig) -> std::io::Result<DemoApp> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = DemoState::new(cfg);
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, app, stopped));
        Ok(DemoApp {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://<addr>`, the base URL clients put `/api/v1/...` after.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drops open connections, and waits until the server task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts until `stop` fires; connection tasks live in a `JoinSet` so ending the loop (or
/// aborting its task) also ends every connection.
async fn accept_loop(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, app.clone()));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "demo app: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, app: Router) {
    let _ = stream.set_nodelay(true);
    let kill = ConnectionKill(Arc::new(Notify::new()));
    let signal = kill.0.clone();
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(kill.clone());
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "demo app: connection ended with an error");
            }
        }
        _ = signal.notified() => {}
    }
}
