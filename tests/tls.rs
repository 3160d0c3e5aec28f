//! HTTPS on the SCIM listener (`[server.tls]`): Entra's Test Connection over TLS with a
//! certificate made in the test, and a certificate rotation mid-run: new connections get the
//! new certificate, a connection opened before keeps working, plain HTTP is refused.

mod common;

use common::process::{GatewayProcess, Scratch, write_config};
use rustls::pki_types::{CertificateDer, ServerName};
use scimgate::demo::{DemoApp, DemoConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const TOKEN: &str = "tls-token-0123456789abcdef0123456789";
const LEGACY_KEY: &str = "tls-legacy-key";

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
fn certificate(name: &str) -> (String, String, CertificateDer<'static>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// A TLS connection to `port` trusting only `trusted`.
async fn connect(
    port: u16,
    trusted: &[CertificateDer<'static>],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// The certificate the server presented on `conn`.
fn presented(conn: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One keep-alive GET on `conn`: (status, body).
async fn get(conn: &mut TlsStream<TcpStream>, path: &str) -> (u16, String) {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, text[end + 4..end + 4 + len].to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_entra_and_a_rotated_certificate_applies_to_new_connections_only() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let scratch = Scratch::new("tls");
    let (cert_a, key_a, der_a) = certificate("scimgate test A");
    let (cert_b, key_b, der_b) = certificate("scimgate test B");
    let (cert_file, key_file) = (scratch.0.join("tls.crt"), scratch.0.join("tls.key"));
    std::fs::write(&cert_file, &cert_a).unwrap();
    std::fs::write(&key_file, &key_a).unwrap();
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let extra = format!(
        "[server.tls]\ncert = '{}'\nkey = '{}'\nreload_poll_ms = 100\n",
        cert_file.display(),
        key_file.display()
    );
    let config = write_config(&scratch.0, &store, TOKEN, "default", &extra);
    let base = legacy.base_url();
    let gw = GatewayProcess::start(
        &config,
        &[
            ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
            ("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY),
        ],
    );
    assert!(
        gw.scim_url.starts_with("https://127.0.0.1:"),
        "{}",
        gw.scim_url
    );
    let port: u16 = gw.scim_url["https://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let probe = format!(
        "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
        uuid::Uuid::new_v4()
    );

    // Entra's Test Connection over TLS; meta.location and the URL say https.
    let both = [der_a.clone(), der_b.clone()];
    let mut old = connect(port, &both).await.unwrap();
    assert_eq!(presented(&old), der_a);
    let (status, body) = get(&mut old, &probe).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"totalResults\":0"), "{body}");

    // Plain HTTP on the TLS port gets no SCIM answer.
    let plain = common::Http::new()
        .try_raw("GET", &format!("http://127.0.0.1:{port}{probe}"), &[], None)
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP must not be served: {:?}",
        plain.map(|r| r.status)
    );

    // Rotate: the key first, then the certificate (as a renewal tool writes them).
    std::fs::write(&key_file, &key_b).unwrap();
    std::fs::write(&cert_file, &cert_b).unwrap();
    let started = Instant::now();
    loop {
        let conn = connect(port, &both).await.unwrap();
        if presented(&conn) == der_b {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate is served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A client that trusts only the old certificate cannot connect any more…
    assert!(connect(port, std::slice::from_ref(&der_a)).await.is_err());
    // …but the connection opened before the rotation is unaffected.
    let (status, body) = get(&mut old, &probe).await;
    assert_eq!(status, 200, "{body}");
    let mut new = connect(port, &[der_b]).await.unwrap();
    let (status, body) = get(&mut new, &probe).await;
    assert_eq!(status, 200, "{body}");

    // A broken renewal is refused; the running certificate stays.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _) = get(&mut connect(port, &both).await.unwrap(), &probe).await;
    assert_eq!(status, 200);
}
