//! TLS on the SCIM listener (rustls): Entra only calls `https://` tenant URLs, so without
//! a proxy in front the gateway terminates TLS itself.
//!
//! The certificate and key are PEM files (`[server.tls] cert` / `key`). They are read at
//! start (a bad pair stops the start, as any configuration problem does) and looked at again
//! every `reload_poll_ms`: a renewed pair (cert-manager, certbot, a rotated Secret) serves
//! the next handshake; connections already open keep the session they negotiated. A pair
//! that does not load is logged and the running one stays.

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The server configuration new handshakes use; swapped when the files change.
#[derive(Clone)]
pub struct LiveTls(Arc<ArcSwap<ServerConfig>>);

impl LiveTls {
    /// What the next handshake uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.load_full()
    }
}

/// Reads a PEM certificate chain and private key into a rustls server configuration:
/// TLS 1.2 and 1.3 (rustls has nothing older), the ring provider, HTTP/1.1 by ALPN.
/// The error names the file and what is wrong with it.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} and its key: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Loads the pair at start and keeps it current: the returned task looks at both files
/// every `every` and swaps in a pair that changed and loads.
pub fn serve_files(
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
) -> Result<(LiveTls, JoinHandle<()>), String> {
    let live = LiveTls(Arc::new(ArcSwap::new(load(&cert, &key)?)));
    let swapped = live.clone();
    let task = tokio::spawn(async move {
        let mut seen = fingerprint(&cert, &key);
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = fingerprint(&cert, &key);
            if now == seen {
                continue;
            }
            seen = now;
            match load(&cert, &key) {
                Ok(config) => {
                    swapped.0.store(config);
                    tracing::info!(target: crate::logging::LIFECYCLE, cert = %cert.display(), "TLS certificate reloaded");
                }
                // A half-written renewal loads on the next look, when it changed again.
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; the running certificate stays")
                }
            }
        }
    });
    Ok((live, task))
}

fn fingerprint(cert: &Path, key: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(cert).unwrap_or_default().hash(&mut h);
    std::fs::read(key).unwrap_or_default().hash(&mut h);
    h.finish()
}
