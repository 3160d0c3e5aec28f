//! The yardstick: the least a proxy in front of the legacy app can cost. Each request is
//! forwarded as it is (method, path and query, headers, body) over a pooled hyper client and
//! the answer streamed back; no parsing, no auth, no logging. The gateway's throughput on
//! the same legacy call is measured against this process's.

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves on `listener` forever, forwarding to `upstream` (`host:port`).
pub async fn serve(listener: tokio::net::TcpListener, upstream: String) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                forward(client.clone(), upstream.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    mut req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, BoxError> {
    let target = format!(
        "http://{upstream}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    *req.uri_mut() = target
        .parse::<http::Uri>()
        .map_err(|e| Box::new(e) as BoxError)?;
    req.headers_mut().remove(http::header::HOST);
    let resp = client
        .request(req)
        .await
        .map_err(|e| Box::new(e) as BoxError)?;
    Ok(resp.map(http_body_util::BodyExt::boxed))
}
