//! An in-process consortium of engines on loopback: real QUIC sockets, real mutual TLS from
//! a freshly generated CA, real RocksDB logs in a directory. For the demo, tests and
//! benchmarks; a deployed node starts one [`Engine`] from its own configuration. Validators
//! may join later ([`LocalCluster::add_joiner`]) through a reconfiguration the genesis ones
//! approve ([`LocalCluster::reconfiguration`]), and rotate their TLS certificate or address
//! in place ([`LocalCluster::next_identity`], [`LocalCluster::rotation`]).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;

use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::KvEngine;
use rand::{CryptoRng, RngCore};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::{endpoint_bytes, Engine, EngineConfig, EngineError, RequestCheck, TlsSpares};
use crate::membership::{Endpoint, Reconfiguration};
use crate::message::{ReplicaId, Request};
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
    /// The next TLS identities each replica holds for rotations, by id.
    pub spares: Vec<Vec<NodeTls>>,
    /// The check every replica started from now on applies to forwarded requests (none
    /// by default: every well-formed request is admitted).
    pub request_check: Option<Arc<dyn RequestCheck>>,
    sockets: Vec<Option<UdpSocket>>,
    /// The genesis validators (the first `genesis` of each list; joiners follow).
    genesis: usize,
    ca: TlsCa,
    dir: std::path::PathBuf,
    rocks: RocksConfig,
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
            spares: vec![Vec::new(); n],
            request_check: None,
            sockets: sockets.into_iter().map(Some).collect(),
            genesis: n,
            ca,
            dir: dir.to_path_buf(),
            rocks: rocks.clone(),
        })
    }

    /// A validator that will join after genesis: its key, socket, TLS certificate and store,
    /// under the next id. Start it with [`LocalCluster::start`] (it runs as a learner until
    /// a reconfiguration names it).
    pub fn add_joiner(&mut self, rng: &mut (impl RngCore + CryptoRng)) -> Result<usize, EngineError> {
        let id = self.keys.len();
        let key = SigningKeypair::generate(rng);
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        self.addrs.push(socket.local_addr()?);
        self.publics.push(key.public());
        self.keys.push(key);
        self.tls.push(self.ca.issue(id as u8)?);
        self.spares.push(Vec::new());
        let store = RocksEngine::open(&self.dir.join(format!("replica{id}")), &self.rocks)?;
        self.stores.push(Arc::new(store));
        self.sockets.push(Some(socket));
        Ok(id)
    }

    /// The request that changes the validator set to `members` (epoch `epoch`), naming the
    /// endpoints of `added`, approved by `approvers`.
    pub fn reconfiguration(
        &self,
        epoch: u64,
        members: &[ReplicaId],
        added: &[ReplicaId],
        approvers: &[ReplicaId],
    ) -> Request {
        let endpoints: Vec<_> = added
            .iter()
            .map(|id| (*id, endpoint_bytes(self.addrs[*id as usize], &self.tls[*id as usize].cert_der)))
            .collect();
        self.reconfiguration_naming(epoch, members, endpoints, approvers)
    }

    /// A next TLS certificate from the consortium's CA for replica `id`, held by it as a
    /// spare (presented once a change names it).
    pub fn next_identity(&mut self, id: ReplicaId) -> Result<NodeTls, EngineError> {
        let next = self.ca.issue(id)?;
        self.spares[id as usize].push(next.clone());
        Ok(next)
    }

    /// The request that keeps the set `members` (epoch `epoch`) and moves validator `id`
    /// to `addr` with the certificate `next`, approved by `approvers`.
    pub fn rotation(
        &self,
        epoch: u64,
        members: &[ReplicaId],
        id: ReplicaId,
        addr: SocketAddr,
        next: &NodeTls,
        approvers: &[ReplicaId],
    ) -> Request {
        self.reconfiguration_naming(epoch, members, vec![(id, endpoint_bytes(addr, &next.cert_der))], approvers)
    }

    fn reconfiguration_naming(
        &self,
        epoch: u64,
        members: &[ReplicaId],
        endpoints: Vec<Endpoint>,
        approvers: &[ReplicaId],
    ) -> Request {
        let members: Vec<_> = members.iter().map(|id| (*id, self.publics[*id as usize])).collect();
        let approvals = approvers
            .iter()
            .map(|a| Reconfiguration::approve(&self.keys[*a as usize], *a, epoch, &members, &endpoints))
            .collect();
        Reconfiguration { epoch, members, endpoints, approvals }.request()
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
            keys: self.publics[..self.genesis].to_vec(),
            addrs: self.addrs[..self.genesis].to_vec(),
            tls_ca_der: self.ca_der.clone(),
            tls: self.tls[id].clone(),
            peer_certs: self.tls[..self.genesis].iter().map(|t| t.cert_der.clone()).collect(),
            socket,
            store: self.stores[id].clone(),
            metrics,
            request_check: self.request_check.clone(),
            tls_spares: Some(Arc::new(self.spares[id].clone())),
        })
    }
}

impl TlsSpares for Vec<NodeTls> {
    fn all(&self) -> Vec<NodeTls> {
        self.clone()
    }
}
