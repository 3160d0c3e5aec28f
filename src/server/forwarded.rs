//! Requests that come through a trusted reverse proxy or ingress (`[server]
//! trusted_proxies`): the client's address from `X-Forwarded-For`, and the URL the client
//! used from `X-Forwarded-Proto` / `X-Forwarded-Host`.
//!
//! Only a peer inside a trusted range is believed; from anyone else the headers are ignored
//! (a client could otherwise pick the address its sign-in failures are counted under, or the
//! URLs the gateway hands out). `X-Forwarded-For` is read from the right: each hop a trusted
//! proxy added is skipped, and the first address no trusted proxy vouches for is the client.

use std::net::IpAddr;

/// An address range, `10.0.0.0/8`, `fd00::/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/bits`; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net, bits })
    }

    /// Whether `ip` lies in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Whether any range in `trusted` holds `ip`.
pub fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// The client's address for a request from `peer` with these `X-Forwarded-For` values (one
/// per header line): `peer` itself unless it is trusted; then the rightmost address that is
/// not, or the leftmost when all are. A malformed entry ends the walk at the hop before it.
pub fn client_address<'a>(
    trusted: &[Cidr],
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop_address(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` hop's address: a bare address, or one with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`, as some load balancers write), optionally quoted.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        })
}

/// `proto://host` as the nearest trusted proxy reports it: the last value of each header (a
/// proxy that appends leaves the client's own value on the left), when both are present and
/// sane (`http`/`https`; a host of letters, digits, `.-:[]`); `None` otherwise.
pub fn origin(proto: Option<&str>, host: Option<&str>) -> Option<String> {
    let proto = proto?.rsplit(',').next()?.trim().to_ascii_lowercase();
    let host = host?.rsplit(',').next()?.trim();
    let sane_host = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    (matches!(proto.as_str(), "http" | "https") && sane_host).then(|| format!("{proto}://{host}"))
}

tokio::task_local! {
    /// The SCIM base URL for the request being answered, when a trusted proxy said how the
    /// client reached the gateway (set by the edge layer).
    static REQUEST_BASE: std::sync::Arc<str>;
}

/// Runs `fut` with `base` as its request's SCIM base URL (see [`request_base`]).
pub async fn with_request_base<F: std::future::Future>(
    base: Option<std::sync::Arc<str>>,
    fut: F,
) -> F::Output {
    match base {
        Some(b) => REQUEST_BASE.scope(b, fut).await,
        None => fut.await,
    }
}

/// The SCIM base URL a trusted proxy's headers gave the current request; `None` outside
/// such a request.
pub fn request_base() -> Option<std::sync::Arc<str>> {
    REQUEST_BASE.try_with(|b| b.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_addresses_only() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.1.2")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped");
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    /// Only a trusted peer's header counts; hops added by trusted proxies are skipped; a
    /// spoofed left part cannot win.
    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = |v: &'static str| std::iter::once(v);
        assert_eq!(
            client_address(&trusted, ip("203.0.113.9"), xff("1.2.3.4")),
            ip("203.0.113.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_address(
                &trusted,
                ip("10.0.0.5"),
                xff("6.6.6.6, 198.51.100.7, 10.0.0.9")
            ),
            ip("198.51.100.7"),
            "the spoofed leftmost entry is not taken"
        );
        assert_eq!(
            client_address(&trusted, ip("10.0.0.5"), xff("10.1.1.1")),
            ip("10.1.1.1"),
            "all trusted: the leftmost"
        );
        assert_eq!(
            client_address(&trusted, ip("10.0.0.5"), xff("garbage, 10.0.0.7")),
            ip("10.0.0.7"),
            "a malformed hop ends the walk"
        );
        assert_eq!(
            client_address(&trusted, ip("10.0.0.5"), std::iter::empty()),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_address(&trusted, ip("10.0.0.5"), xff("198.51.100.7:51234")),
            ip("198.51.100.7"),
            "a hop with a port"
        );
        assert_eq!(
            client_address(&trusted, ip("10.0.0.5"), xff("\"[2001:db8::7]:443\"")),
            ip("2001:db8::7"),
            "a quoted IPv6 hop with a port"
        );
    }

    #[test]
    fn only_sane_origins_are_taken() {
        assert_eq!(
            origin(Some("https"), Some("scim.example.com")).as_deref(),
            Some("https://scim.example.com")
        );
        assert_eq!(
            origin(
                Some("http, https"),
                Some("evil.example, scim.example.com:8443")
            )
            .as_deref(),
            Some("https://scim.example.com:8443"),
            "the value the nearest proxy appended"
        );
        assert_eq!(origin(Some("ftp"), Some("x")), None);
        assert_eq!(origin(Some("https"), Some("evil.com/path")), None);
        assert_eq!(origin(Some("https"), Some("a\"b")), None);
        assert_eq!(origin(None, Some("x")), None);
    }
}
