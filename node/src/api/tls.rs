//! The API over HTTPS: a listener that completes TLS handshakes concurrently (each within
//! [`HANDSHAKE_MAX`], at most [`HANDSHAKES_MAX`] at once; a slow or silent client holds
//! one slot, never the accept loop) and hands axum finished TLS streams; and [`serve`],
//! which the node and the in-process consortium both use.
//!
//! Plain HTTP is served only where `api.insecure_http = true` (loopback tests).
//!
//! **Renewal without a restart.** The node reads its certificate and key files again every
//! `api.tls_reload_s` seconds. A changed pair is checked before use: the certificate is
//! for the key, chains to the consortium's TLS CA, is valid now and names this node's API
//! host (the checks a peer's or the CLI's connection makes, since they trust only that CA).
//! It then serves every new handshake; connections already open keep the certificate they
//! were made with. A pair that fails the checks (a half-finished copy, another CA's
//! certificate, an expired one) is refused with a warning naming the reason, and the
//! previous certificate stays in service; the files are looked at again on the next tick.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use axum::Router;
use dualchain_consensus::tls::{https_server_config, CertSlot, NodeTls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_MAX: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; connections beyond it are closed at once.
pub const HANDSHAKES_MAX: usize = 256;
/// Finished handshakes waiting for the server to take them.
const READY_MAX: usize = 64;

/// A TCP listener that yields TLS streams.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(READY_MAX);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "API accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many TLS handshakes in progress; connection closed");
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_MAX, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    drop(slot);
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended: no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is given (its certificate files watched
/// for renewals meanwhile), until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<ApiTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            let watch = tokio::spawn(tls.files.watch());
            let served =
                axum::serve(TlsListener::new(listener, tls.config)?, app).with_graceful_shutdown(shutdown).await;
            watch.abort();
            served
        }
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
}

/// The API's TLS side: the server configuration, and the files its certificate comes from.
pub struct ApiTls {
    pub config: Arc<rustls::ServerConfig>,
    pub files: CertFiles,
}

/// Where the API's certificate and key are read from, and what a replacement must pass
/// (module docs).
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The consortium's TLS CA (DER) and the API's host name, as peers check them.
    pub ca_der: Vec<u8>,
    pub host: String,
    pub every: Duration,
    pub slot: Arc<CertSlot>,
}

impl CertFiles {
    /// Reads the files every `every`, and serves a changed pair once it passes the checks.
    pub async fn watch(self) {
        let mut seen = self.read().ok();
        let mut unreadable = false;
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let pair = match self.read() {
                Ok(p) => p,
                Err(e) => {
                    // Said once per outage, not on every tick.
                    if !std::mem::replace(&mut unreadable, true) {
                        tracing::warn!(error = %format!("{e:#}"), "API TLS files unreadable; serving the current certificate");
                    }
                    continue;
                }
            };
            unreadable = false;
            if seen.as_ref() == Some(&pair) {
                continue;
            }
            match self.install(&pair) {
                Ok(()) => {
                    tracing::info!(cert = %self.cert.display(), "API TLS certificate renewed: new handshakes present it")
                }
                Err(e) => tracing::warn!(
                    cert = %self.cert.display(), error = %format!("{e:#}"),
                    "API TLS certificate refused; serving the previous one"
                ),
            }
            seen = Some(pair);
        }
    }

    fn read(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        read_pair(&self.cert, &self.key)
    }

    /// Checks `pair` (certificate, key) and serves it from the next handshake on.
    fn install(&self, pair: &(Vec<u8>, Vec<u8>)) -> anyhow::Result<()> {
        let node = NodeTls { cert_der: pair.0.clone(), key_der: pair.1.clone() };
        dualchain_consensus::tls::check_identity(&self.ca_der, &node, &self.host)?;
        self.slot.replace(&node)?;
        Ok(())
    }
}

/// The host a URL names (`https://10.0.0.5:8700/` gives `10.0.0.5`).
fn url_host(url: &str) -> anyhow::Result<String> {
    let u = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
    u.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .ok_or_else(|| anyhow::anyhow!("{url:?} names no host"))
}

/// The TLS side of `cfg`'s API, whose URL in consortium.toml is `url`: its certificate
/// and key, or none where `insecure_http` is set, which is refused unless the API listens
/// on loopback. The URL's scheme must agree.
pub fn server_config(
    cfg: &crate::config::NodeConfig,
    consortium: &crate::config::ConsortiumFile,
) -> anyhow::Result<Option<ApiTls>> {
    use anyhow::{bail, ensure, Context};
    let url = cfg.own_validator(consortium)?.api.as_str();
    if cfg.api.insecure_http {
        ensure!(
            cfg.api.listen.ip().is_loopback(),
            "api.insecure_http serves decrypted records in clear: allowed on loopback only, not {}",
            cfg.api.listen
        );
        ensure!(url.starts_with("http://"), "api.insecure_http is set but consortium.toml gives this node {url}");
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&cfg.api.tls_cert, &cfg.api.tls_key) else {
        bail!(
            "the API serves HTTPS: set api.tls_cert and api.tls_key (genesis writes them), \
             or api.insecure_http = true for a loopback test"
        );
    };
    ensure!(url.starts_with("https://"), "the API serves HTTPS but consortium.toml gives this node {url}");
    let (cert, key) = (cfg.path(cert), cfg.path(key));
    let (cert_der, key_der) = read_pair(&cert, &key)?;
    let slot = CertSlot::new(&NodeTls { cert_der, key_der }).context("the API's TLS certificate")?;
    let files = CertFiles {
        cert,
        key,
        ca_der: hex::decode(&consortium.tls_ca).context("consortium.toml's tls_ca")?,
        host: url_host(url)?,
        every: Duration::from_secs(cfg.api.tls_reload_s.max(1)),
        slot: slot.clone(),
    };
    Ok(Some(ApiTls { config: https_server_config(slot).context("the API's TLS configuration")?, files }))
}

/// A certificate file and a key file, read.
fn read_pair(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    use anyhow::Context;
    let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    Ok((cert, crate::files::read_secret(key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::tls::TlsCa;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Conn = tokio_rustls::client::TlsStream<TcpStream>;

    /// A TLS connection to `addr` trusting only `ca_der`, and the certificate it was served.
    async fn connect(addr: SocketAddr, ca_der: &[u8]) -> (Conn, Vec<u8>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec())).expect("a CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.expect("the API listens");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
        let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("a TLS handshake");
        let served = conn.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
        (conn, served)
    }

    /// An HTTP/1.1 request on an open connection; the response as text.
    async fn get(conn: &mut Conn) -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").await.expect("written");
        let mut out = Vec::new();
        conn.read_to_end(&mut out).await.expect("a response");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renewed_certificate_serves_new_connections_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (cert, key) = (dir.path().join("api-tls.der"), dir.path().join("api-tls.key"));
        let install = |node: &NodeTls| {
            std::fs::write(&cert, &node.cert_der).expect("cert written");
            crate::files::write_private(&key, &node.key_der).expect("key written");
        };
        let ca = TlsCa::generate("renewal test").expect("a CA");
        let first = ca.issue_api(0, "127.0.0.1").expect("a certificate");
        install(&first);
        let slot = CertSlot::new(&first).expect("a slot");
        let every = Duration::from_millis(50);
        let files = CertFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca_der: ca.cert_der(),
            host: "127.0.0.1".into(),
            every,
            slot: slot.clone(),
        };
        let tls = ApiTls { config: https_server_config(slot.clone()).expect("a TLS config"), files };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let app = Router::new().route("/", axum::routing::get(|| async { "served" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, Some(tls), async {
            let _ = stopped.await;
        }));

        let (mut open, served) = connect(addr, &ca.cert_der()).await;
        assert_eq!(served, first.cert_der);

        // The CA re-issues for a new key; the files change; new handshakes get it.
        let renewed = ca.issue_api(0, "127.0.0.1").expect("a certificate");
        install(&renewed);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slot.current() != renewed.cert_der {
            assert!(std::time::Instant::now() < deadline, "the renewed certificate was never served");
            tokio::time::sleep(every).await;
        }
        assert_eq!(connect(addr, &ca.cert_der()).await.1, renewed.cert_der);
        // The connection made before it still works, with the certificate it was made with.
        assert!(get(&mut open).await.contains("served"), "an open connection was cut");

        // Refused, and the renewed certificate kept: another CA's certificate, one for
        // another host, a certificate for another key (a copy caught half-way).
        let other_ca = TlsCa::generate("someone else").expect("a CA");
        let foreign = other_ca.issue_api(0, "127.0.0.1").expect("a certificate");
        let elsewhere = ca.issue_api(0, "10.9.9.9").expect("a certificate");
        let third = ca.issue_api(0, "127.0.0.1").expect("a certificate");
        let half = NodeTls { cert_der: third.cert_der.clone(), key_der: renewed.key_der.clone() };
        for bad in [&foreign, &elsewhere, &half] {
            install(bad);
            tokio::time::sleep(every * 6).await;
            assert_eq!(slot.current(), renewed.cert_der, "a bad certificate was installed");
            assert_eq!(connect(addr, &ca.cert_der()).await.1, renewed.cert_der);
        }
        // Finished, the third pair is taken.
        install(&third);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slot.current() != third.cert_der {
            assert!(std::time::Instant::now() < deadline, "the third certificate was never served");
            tokio::time::sleep(every).await;
        }
        let _ = stop.send(());
        server.await.expect("the server task").expect("the server stopped cleanly");
    }
}
