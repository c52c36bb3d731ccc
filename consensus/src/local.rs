//! An in-process consortium of engines on loopback: real QUIC sockets, real mutual TLS from
//! a freshly generated CA, real RocksDB logs in a directory. For the demo, tests and
//! benchmarks; a deployed node starts one [`Engine`] from its own configuration.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;

use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::KvEngine;
use rand::{CryptoRng, RngCore};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::{Engine, EngineConfig, EngineError, RequestCheck};
use crate::metrics::Metrics;
use crate::replica::Delivered;
use crate::tls::{NodeTls, TlsCa};

/// Genesis material and stores of a local consortium.
pub struct LocalCluster {
    pub keys: Vec<SigningKeypair>,
    pub publics: Vec<PublicKey>,
    pub addrs: Vec<SocketAddr>,
    pub ca_der: Vec<u8>,
    pub tls: Vec<NodeTls>,
    pub stores: Vec<Arc<dyn KvEngine>>,
    /// The check every replica started from now on applies to forwarded requests (none
    /// by default: every well-formed request is admitted).
    pub request_check: Option<Arc<dyn RequestCheck>>,
    sockets: Vec<Option<UdpSocket>>,
}

impl LocalCluster {
    /// Keys, loopback sockets, a TLS CA with one certificate per replica, and a RocksDB
    /// store per replica under `dir`.
    pub fn new(
        n: usize,
        dir: &Path,
        rocks: &RocksConfig,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, EngineError> {
        let keys: Vec<_> = (0..n).map(|_| SigningKeypair::generate(rng)).collect();
        let publics = keys.iter().map(|k| k.public()).collect();
        let sockets: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
        let addrs = sockets.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?;
        let ca = TlsCa::generate("local consortium")?;
        let tls = (0..n).map(|i| ca.issue(i as u8)).collect::<Result<_, _>>()?;
        let stores = (0..n)
            .map(|i| Ok(Arc::new(RocksEngine::open(&dir.join(format!("replica{i}")), rocks)?) as Arc<dyn KvEngine>))
            .collect::<Result<_, EngineError>>()?;
        Ok(Self {
            keys,
            publics,
            addrs,
            ca_der: ca.cert_der(),
            tls,
            stores,
            request_check: None,
            sockets: sockets.into_iter().map(Some).collect(),
        })
    }

    /// Starts replica `id` with `config` (its socket is bound again if a previous engine
    /// released it).
    pub fn start(
        &mut self,
        id: usize,
        config: Config,
        metrics: Metrics,
    ) -> Result<(Engine, mpsc::Receiver<Delivered>), EngineError> {
        let socket = match self.sockets[id].take() {
            Some(s) => s,
            None => UdpSocket::bind(self.addrs[id])?,
        };
        Engine::start(EngineConfig {
            replica: config,
            key: self.keys[id].clone(),
            keys: self.publics.clone(),
            addrs: self.addrs.clone(),
            tls_ca_der: self.ca_der.clone(),
            tls: self.tls[id].clone(),
            peer_certs: self.tls.iter().map(|t| t.cert_der.clone()).collect(),
            socket,
            store: self.stores[id].clone(),
            metrics,
            request_check: self.request_check.clone(),
        })
    }
}
