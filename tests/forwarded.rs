//! Behind a reverse proxy (`[server] trusted_proxies`): from a trusted peer,
//! `X-Forwarded-Proto`/`-Host` set `meta.location` and `Location`, and `X-Forwarded-For` is
//! the address sign-in failures are counted under; from an untrusted peer the headers change
//! nothing.

mod common;

use common::Scim;
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::json;

fn trust_loopback(cfg: &mut scimgate::config::Config) {
    cfg.server.trusted_proxies = vec!["127.0.0.0/8".into()];
}

fn trust_elsewhere(cfg: &mut scimgate::config::Config) {
    cfg.server.trusted_proxies = vec!["10.0.0.0/8".into()];
}

/// The enterprise-toolkit profile: SCIM clients sign in with a user name and password, and
/// failed sign-ins are throttled per client address.
async fn start(adjust: fn(&mut scimgate::config::Config)) -> DemoStack {
    DemoStack::start(DemoOptions {
        adjust: Some(adjust),
        ..DemoOptions::for_tests("enterprise-toolkit")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"))
}

/// A failing Basic sign-in as user `n` (a different user each time, so only the per-address
/// count can reach the limit).
fn wrong_password(stack: &DemoStack, n: usize) -> String {
    use base64::Engine as _;
    assert!(stack.basic.is_some(), "a Basic profile");
    let pair = format!("nobody-{n}:not-the-password");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A GET of `/scim/v2/Users` written by hand, so the `X-Forwarded-For` value can hold any
/// bytes; returns the status.
async fn raw_get(addr: &str, authorization: &str, xff: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
         Connection: close\r\nX-Forwarded-For: "
    )
    .into_bytes();
    req.extend_from_slice(xff);
    req.extend_from_slice(b"\r\n\r\n");
    conn.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out[9..12]).parse().unwrap()
}

/// Creates a user (a profile-valid body) through a proxy that says the client is
/// 203.0.113.50 and used `https://scim.example.com`.
async fn post_forwarded(scim: &Scim, user_name: &str) -> common::Resp {
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": user_name, "active": true,
                      "name": {"givenName": "Ada", "familyName": "Lovelace"},
                      "emails": [{"value": user_name, "type": "work", "primary": true}]});
    let mut headers = vec![
        ("authorization", scim.auth.as_str()),
        ("x-forwarded-for", "203.0.113.50"),
    ];
    headers.extend(FORWARDED);
    scim.http
        .json(
            "POST",
            &format!("{}/Users", scim.base),
            &headers,
            Some(&user),
        )
        .await
}

/// A GET of `/Users` with `authorization`, through a proxy that forwards `xff`.
async fn sign_in(scim: &Scim, authorization: &str, xff: &str) -> common::Resp {
    scim.http
        .json(
            "GET",
            &format!("{}/Users", scim.base),
            &[("authorization", authorization), ("x-forwarded-for", xff)],
            None,
        )
        .await
}

/// The client address of the newest audit entry.
async fn newest_client_address(stack: &DemoStack) -> Option<String> {
    use scimgate::store::{AuditFilter, AuditLog};
    let entries = stack
        .gateway
        .store()
        .query(&AuditFilter::default())
        .await
        .unwrap();
    entries[0].context.client_address.clone()
}

const FORWARDED: [(&str, &str); 2] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "scim.example.com"),
];

#[tokio::test]
async fn a_trusted_proxy_sets_the_urls_and_the_client_address() {
    let stack = start(trust_loopback).await;
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let r = post_forwarded(&scim, "forwarded@example.com").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        newest_client_address(&stack).await.as_deref(),
        Some("203.0.113.50"),
        "the forwarded client is audited"
    );
    let location = r.json["meta"]["location"].as_str().unwrap();
    assert!(
        location.starts_with("https://scim.example.com/scim/v2/Users/"),
        "{location}"
    );
    assert_eq!(r.header("location"), Some(location));
    // Without the headers: the gateway's own URL.
    let r = scim.post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "direct@example.com", "active": true, "name": {"givenName": "Ada", "familyName": "Lovelace"}, "emails": [{"value": "direct@example.com", "type": "work", "primary": true}]})).await;
    assert!(
        r.json["meta"]["location"]
            .as_str()
            .unwrap()
            .starts_with(&stack.scim_url),
        "{}",
        r.text
    );

    // Failed sign-ins count per forwarded client: one client is throttled (429), another
    // behind the same proxy is not; the spoofed left-hand entry is not what is counted.
    let mut last = 0;
    for i in 0..12 {
        let wrong = wrong_password(&stack, i);
        let r = sign_in(&scim, &wrong, "6.6.6.6, 198.51.100.1").await;
        last = r.status;
    }
    assert_eq!(last, 429, "the forwarded client is throttled");
    // A configuration reload does not wipe what the throttle counted.
    let report = stack.gateway.reload().await;
    assert!(report.outcome.is_ok(), "{report:?}");
    let wrong = wrong_password(&stack, 50);
    let r = sign_in(&scim, &wrong, "198.51.100.1").await;
    assert_eq!(r.status, 429, "still throttled after a reload");
    let wrong = wrong_password(&stack, 99);
    let r = sign_in(&scim, &wrong, "198.51.100.2").await;
    assert_eq!(r.status, 401, "another client behind the proxy is not");

    // A client that sends a line with bytes that are not ASCII (the proxy appends the real
    // address to that same line) is still counted under its own address.
    let addr = scim.base["http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for i in 0..12 {
        let wrong = wrong_password(&stack, 200 + i);
        let status = raw_get(&addr, &wrong, b"\xff\xfe, 198.51.100.3").await;
        assert!(status == 401 || status == 429, "{status}");
    }
    let wrong = wrong_password(&stack, 300);
    assert_eq!(
        raw_get(&addr, &wrong, b"198.51.100.3").await,
        429,
        "the failures were counted under the client's address, not the proxy's"
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_pick_urls_or_addresses() {
    let stack = start(trust_elsewhere).await;
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let r = post_forwarded(&scim, "spoofed@example.com").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.json["meta"]["location"]
            .as_str()
            .unwrap()
            .starts_with(&stack.scim_url),
        "headers from an untrusted peer are ignored: {}",
        r.text
    );
    assert_eq!(
        newest_client_address(&stack).await.as_deref(),
        Some("127.0.0.1"),
        "the peer, not the header"
    );
    // Rotating X-Forwarded-For does not escape the throttle: the peer's address counts.
    let mut last = 0;
    for i in 0..12 {
        let wrong = wrong_password(&stack, i);
        let r = sign_in(&scim, &wrong, &format!("198.51.100.{i}")).await;
        last = r.status;
    }
    assert_eq!(last, 429, "{last}");
}
