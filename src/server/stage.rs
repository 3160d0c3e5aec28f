//! One tower layer of the SCIM stack: a function of the layer's state, the request and the
//! rest of the stack.
//!
//! Why not `axum::middleware::from_fn` inside the router: applied with `Router::layer`, each
//! such layer wraps every route's boxed service, and on every request clones that box, boxes
//! a `Next` and moves the request through extractors. The stack here sits outside the router:
//! what a stage clones per request is its state (a few `Arc`s) and the rest of the stack
//! (the router is one `Arc`), and each stage boxes one future.

use axum::extract::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};

/// What a stage's function returns: the response, later.
pub type Pending = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The rest of the stack, as a stage sees it: a service that always answers.
pub trait Inner:
    Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Runs `req` through the rest of the stack.
pub async fn run<S: Inner>(inner: S, req: Request) -> Response {
    match inner.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// A layer of the stack: `f(state, request, rest)`.
pub struct Stage<St, S> {
    state: St,
    inner: S,
    f: fn(St, Request, S) -> Pending,
}

impl<St: Clone, S: Clone> Clone for Stage<St, S> {
    fn clone(&self) -> Self {
        Stage {
            state: self.state.clone(),
            inner: self.inner.clone(),
            f: self.f,
        }
    }
}

impl<St, S> Stage<St, S> {
    /// `f` with `state` around `inner`.
    pub fn new(state: St, inner: S, f: fn(St, Request, S) -> Pending) -> Self {
        Stage { state, inner, f }
    }
}

impl<St, S> Service<Request> for Stage<St, S>
where
    St: Clone + Send + 'static,
    S: Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    /// Always ready: a stage holds no capacity of its own, and `run` waits for the rest of
    /// the stack.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Answer((self.f)(self.state.clone(), req, self.inner.clone()))
    }
}

/// A stage's response as a service's result (it never fails).
pub struct Answer(Pending);

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}
