//! The API over HTTPS: a listener that completes TLS handshakes concurrently (each within
//! [`HANDSHAKE_MAX`], at most [`HANDSHAKES_MAX`] at once; a slow or silent client holds
//! one slot, never the accept loop) and hands axum finished TLS streams; and [`serve`],
//! which the node and the in-process consortium both use.
//!
//! Plain HTTP is served only where `api.insecure_http = true` (loopback tests).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
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

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(config) => axum::serve(TlsListener::new(listener, config)?, app).with_graceful_shutdown(shutdown).await,
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
}

/// The TLS side of `cfg`'s API: its certificate and key, or none where `insecure_http` is
/// set, which is refused unless the API listens on loopback. The scheme of the node's URL
/// in consortium.toml (`url`) must agree.
pub fn server_config(cfg: &crate::config::NodeConfig, url: &str) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    use anyhow::{bail, ensure, Context};
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
    let node = dualchain_consensus::tls::NodeTls {
        cert_der: std::fs::read(cfg.path(cert)).with_context(|| format!("reading {}", cfg.path(cert).display()))?,
        key_der: crate::files::read_secret(&cfg.path(key))?,
    };
    Ok(Some(dualchain_consensus::tls::https_server_config(&node).context("the API's TLS certificate")?))
}
