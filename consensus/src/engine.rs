//! The consensus engine: one [`Replica`] driven over tokio, QUIC (quinn) with mutual TLS,
//! and the consensus log in the node's store.
//!
//! Tasks:
//! - **core**: owns the replica. It waits for inbound messages, commands or the replica's
//!   next deadline, then drains whatever else is ready (bounded), steps the replica for
//!   each input, writes the merged [`LogWrite`] in one synced commit (group commit: the
//!   more load, the more each sync carries), and only then sends, delivers and replies.
//!   A failed write stops the engine (a store in an unknown state is never written again).
//! - **acceptor** and **readers**: accept connections, identify the peer by the exact
//!   certificate genesis or a validator set change named for it, read length-prefixed
//!   frames from its unidirectional streams, decode them (bounded) and drop any not signed
//!   by that peer.
//! - **verifiers**: one per inbound connection; drain its decoded frames and check their
//!   signatures in one batch equation before they reach the core.
//! - **senders**: one per peer, with a bounded queue (full → the frame is dropped and
//!   counted; PBFT's retransmission recovers), one connection with reconnect and
//!   exponential backoff, and one stream per message class (ordering: pre-prepares, votes,
//!   checkpoints; control: forwards, view changes, state), so state transfer never delays
//!   votes. A sender also pins the server: the peer must present a certificate named for
//!   it, not merely one the consortium's CA signed.
//!
//! TLS rotation in place (beyond DESIGN.md, which fixes each replica's certificate at
//! genesis): a validator set change may name a new endpoint (address and certificate)
//! for a validator it keeps ([`crate::membership::Reconfiguration::endpoints`]). From the
//! moment a replica executes it, the replica accepts both the old and the new certificate
//! for that id; the rotating replica itself switches to the new identity there (its
//! host holds the key, [`TlsSpares`]), reconnecting with it, and rebinds if the address
//! moved. Once the change's epoch is in effect the old certificate is retired and every
//! link is made again, so from then on only the new one opens a connection either way.
//!
//! A validator that is down or behind when its own rotation takes effect would be locked
//! out by this: its peers refuse its old certificate and dial it at its new address, and
//! it learns of the change only from them. So each link whose peer refuses the
//! certificate presented ("unknown peer") tries the next identity the host holds, and
//! once f + 1 peers of the set in effect refuse the one presented (so at least one correct
//! replica retired it), the replica presents the next identity as server too. Peers dial a
//! moved validator at its old address as well as its new one, pinning only the new
//! certificate there. The validator catches up, executes the change and moves; an old key
//! still opens nothing once retired.
//!
//! Back-pressure: submissions wait on a bounded command queue and are refused when the
//! replica's pending set is full; deliveries wait on a bounded channel the application
//! drains, which stops the core (and, through QUIC flow control, the peers) when the
//! application falls behind.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_storage::consensus::{ConsensusStore, LogWrite};
use dualchain_storage::KvEngine;
use rustls::pki_types::CertificateDer;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::membership::{ForwardRefusal, Reconfiguration, RECONFIGURE_CLIENT};
use crate::message::{verify_messages, CommittedEntry, Message, ReplicaId, Request, RequestKey, MESSAGE_LEN_MAX};
use crate::metrics::{Metrics, PeerLabel, RefusedLabel};
use crate::outbox::{outbox, Inbox, Outbox};
use crate::replica::{
    parse_archive, Delivered, Divergence, Event, Output, Recovered, RecoveryError, Rejected, Replica, Target,
};
use crate::standing::{Change, Standing, Standings, BAN, THROTTLE_DELAY};
use crate::tls::{quic_client_config, quic_server_config, server_name, NodeTls, TlsError};

/// Frames queued per peer before new ones are dropped.
pub const OUTBOUND_QUEUE_LEN: usize = 8192;
/// Bytes queued per peer before new frames are dropped ([`crate::outbox`]): a quarter of a
/// second of a 1 Gbit/s link, sixteen default batches.
pub const OUTBOUND_QUEUE_BYTES: usize = 32 << 20;
/// Bytes a sender takes from its queue for one write (besides at most 256 frames): what
/// is in flight beside the queue.
const WRITE_BYTES_MAX: usize = 4 << 20;
/// Inputs the core takes per step before it writes and sends.
const CORE_DRAIN_MAX: usize = 4096;
/// Committed entries per state reply, and their byte budget.
const STATE_REPLY_ENTRIES: usize = 64;
const STATE_REPLY_BYTES: usize = 16 << 20;
/// Deliveries queued for the application.
const DELIVERY_QUEUE_LEN: usize = 1024;
/// The longest one connection attempt may take. A handshake started while the peer was
/// unreachable backs off its retransmissions (QUIC's probe timeout doubles), and would
/// otherwise hold the link down for seconds after the network heals; a fresh attempt
/// starts with a fresh timer.
const CONNECT_ATTEMPT_MAX: Duration = Duration::from_millis(1500);
/// The longest pause between connection attempts.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Why a replica closes a connection whose certificate no validator set it knows names
/// (or names no longer: a rotation retired it).
const UNKNOWN_PEER: &[u8] = b"unknown peer";
/// Refusals of this replica's certificates its links report to the core (more wait in no
/// queue: the link is refused again after its backoff).
const REFUSALS_QUEUE_LEN: usize = 64;
/// How long a peer's refusal of a certificate counts towards presenting another one.
const REFUSAL_WINDOW: Duration = Duration::from_secs(30);
/// Bytes of one connection's frames read and not yet verified (the reader waits beyond it,
/// and QUIC's flow control holds the peer back): one largest frame and a little more.
pub const CONNECTION_BYTES_MAX: usize = MESSAGE_LEN_MAX + (16 << 20);
/// Bytes of verified frames from all peers waiting for the core.
pub const CORE_BYTES_MAX: usize = 2 * MESSAGE_LEN_MAX;
/// Connections one peer may hold open to this replica (it needs one; a reconnect overlaps).
pub const CONNECTIONS_PER_PEER_MAX: usize = 2;

/// Invalid frames (oversized, malformed, signed as another replica, a bad signature) one
/// connection may carry before it is closed. A correct peer sends none (QUIC protects
/// frames in transit); the bound leaves room for a peer of another version to be noticed
/// in the log rather than cut at once. A closed peer reconnects no faster than its backoff.
pub const INVALID_FRAMES_MAX: u32 = 16;

/// Counts a connection's invalid frames and closes it past [`INVALID_FRAMES_MAX`]; each
/// also counts against the peer's standing ([`crate::standing`]).
#[derive(Clone)]
struct Strikes {
    conn: quinn::Connection,
    peer: ReplicaId,
    count: Arc<std::sync::atomic::AtomicU32>,
    guard: Arc<PeerGuard>,
}

impl Strikes {
    fn strike(&self, reason: &'static str) {
        self.guard.metrics.dropped(reason);
        self.guard.fault(self.peer, reason);
        if self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == INVALID_FRAMES_MAX {
            self.guard.metrics.dropped("peer disconnected for invalid frames");
            warn!("consensus.net.disconnect: a peer sent {INVALID_FRAMES_MAX} invalid frames");
            self.conn.close(quinn::VarInt::from_u32(5), b"invalid frames");
        }
    }
}

/// Peers' standing and the metrics that count it, shared by the core and the connections.
struct PeerGuard {
    standings: Standings,
    metrics: Metrics,
    /// What forwarded requests must show ([`RequestCheck`]).
    check: Option<Arc<dyn RequestCheck>>,
}

impl PeerGuard {
    /// One more fault of `peer`: counted, and logged when it throttles or bans the peer.
    fn fault(&self, peer: ReplicaId, reason: &'static str) {
        let label = PeerLabel { peer: peer.to_string() };
        self.metrics.peer_faults.get_or_create(&label).inc();
        match self.standings.fault(peer, Instant::now()) {
            Change::None => {}
            Change::Throttled => {
                self.metrics.peer_throttles.get_or_create(&label).inc();
                warn!(peer, reason, "consensus.peer.throttled: each of its messages now waits {THROTTLE_DELAY:?}");
            }
            Change::Banned => {
                self.metrics.peer_bans.get_or_create(&label).inc();
                warn!(peer, reason, "consensus.peer.banned: its connections are closed and refused for {BAN:?}");
            }
        }
    }

    fn standing(&self, peer: ReplicaId) -> Standing {
        self.standings.standing(peer, Instant::now())
    }
}

/// A byte budget: a frame holds its share until the next stage has taken it.
#[derive(Clone)]
struct ByteBudget(Arc<tokio::sync::Semaphore>);

/// A frame's share of a [`ByteBudget`], in KiB.
type Held = tokio::sync::OwnedSemaphorePermit;

impl ByteBudget {
    fn new(bytes: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(bytes.div_ceil(1024))))
    }
    /// Waits until `bytes` fit.
    async fn hold(&self, bytes: usize) -> Held {
        let kib = bytes.div_ceil(1024).max(1) as u32;
        self.0.clone().acquire_many_owned(kib).await.expect("never closed")
    }
}

/// Errors of the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("consensus store: {0}")]
    Store(#[from] dualchain_storage::StorageError),
    #[error("recovering the consensus log: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the engine has stopped")]
    Stopped,
}

/// Longest a submitter is waited on: then it gets [`SubmitError::TimedOut`] and its entry
/// goes (a request that never commits, in a consortium without quorum for days, must not
/// hold memory for ever). Submitters that stopped waiting are forgotten at once.
pub const WAITER_MAX: Duration = Duration::from_secs(600);
/// How often waiters are swept.
const WAITER_SWEEP: Duration = Duration::from_secs(5);

/// Why a submission failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error("the engine has stopped")]
    Stopped,
    /// Nobody was told within [`WAITER_MAX`]; the request may still execute later.
    #[error("the request was not executed within {0:?}; it may still be")]
    TimedOut(Duration),
}

/// Everything an engine needs.
pub struct EngineConfig {
    pub replica: Config,
    pub key: SigningKeypair,
    /// Every replica's Ed25519 key, by id.
    pub keys: Vec<PublicKey>,
    /// Every replica's QUIC address, by id.
    pub addrs: Vec<SocketAddr>,
    /// The consortium TLS CA certificate (DER).
    pub tls_ca_der: Vec<u8>,
    /// This replica's TLS identity.
    pub tls: NodeTls,
    /// The certificate genesis issued to each replica (DER), by id.
    pub peer_certs: Vec<Vec<u8>>,
    /// The UDP socket to serve on (bound to `addrs[id]`).
    pub socket: std::net::UdpSocket,
    pub store: Arc<dyn KvEngine>,
    pub metrics: Metrics,
    /// Checks requests peers forward before they enter ordering (`None`: every
    /// well-formed request is admitted).
    pub request_check: Option<Arc<dyn RequestCheck>>,
    /// The TLS identities this replica holds besides `tls`, for a change that rotates its
    /// certificate (`None`: none).
    pub tls_spares: Option<Arc<dyn TlsSpares>>,
}

/// TLS identities a replica's host holds besides the one it started with: the next
/// certificate of a rotation, which the replica presents from the moment it executes the
/// change naming it (or from its start, if the change executed before).
pub trait TlsSpares: Send + Sync {
    /// Every identity the host holds with its certificate: the one a change names is
    /// presented once it executes, and a replica behind its own rotation tries them when
    /// its peers refuse the certificate it presents.
    fn all(&self) -> Vec<NodeTls>;
}

/// What a forwarded request, or every request of a disseminated part, must show before
/// this replica admits it: the host's check that it is its member's, signed and under its
/// own `(client, id)`. A part is taken whole or refused whole (its digest names it).
///
/// A request the check refuses is dropped and counted by reason and forwarding peer
/// (`refused_requests`); a [`Refused::Forged`] one is also a fault of the peer that
/// forwarded it ([`crate::standing`]: throttled, then banned), since no correct replica
/// forwards what is provably not its member's. The de-duplication key
/// ([`crate::message::RequestKey`]) already keeps a squatted id from shadowing the genuine
/// request, so a check never decides safety, only what this replica spends work on.
pub trait RequestCheck: Send + Sync {
    /// One verdict per request, in order.
    fn check(&self, requests: &[Request]) -> Vec<Result<(), Refused>>;
}

/// Why a forwarded request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Provably not its member's, whatever the ledger holds (malformed, or another
    /// client's or request number than the payload's): counts against the forwarder.
    Forged(&'static str),
    /// Not valid under what this replica's ledger holds now (a signature that does not
    /// verify under the member's key): refused, counted, not held against the forwarder,
    /// whose ledger may be ahead.
    Invalid(&'static str),
}

/// A snapshot of the replica's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStatus {
    pub view: u64,
    pub in_view_change: bool,
    /// Follows its view without voting (see [`crate::replica::Replica::is_following`]).
    pub following: bool,
    pub last_executed: u64,
    pub stable_seq: u64,
    pub history: [u8; 32],
    pub pending: usize,
    /// The validator set's epoch this replica works in, and whether it votes in it.
    pub epoch: u64,
    pub member: bool,
}

/// How a validator added after genesis is reached: `address length (u16) ‖ address ‖ TLS
/// certificate (DER)`, what a reconfiguration names for it
/// ([`crate::membership::Reconfiguration::endpoints`]).
pub fn endpoint_bytes(addr: SocketAddr, cert_der: &[u8]) -> Vec<u8> {
    let a = addr.to_string();
    let mut out = Vec::with_capacity(2 + a.len() + cert_der.len());
    out.extend_from_slice(&(a.len() as u16).to_be_bytes());
    out.extend_from_slice(a.as_bytes());
    out.extend_from_slice(cert_der);
    out
}

/// Reads [`endpoint_bytes`] back (`None`: not an endpoint this engine can reach).
pub fn parse_endpoint(bytes: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
    let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
    let addr = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?.parse().ok()?;
    let cert = bytes.get(2 + len..)?;
    (!cert.is_empty()).then(|| (addr, cert.to_vec()))
}

/// Where validator `id` is reached according to the validator sets persisted in `store`
/// (`genesis`: the genesis validators' keys), if a change named an endpoint for it: a
/// validator whose address a rotation moved binds the new one when it starts again.
pub fn recorded_endpoint(
    store: Arc<dyn KvEngine>,
    genesis: &[PublicKey],
    id: ReplicaId,
) -> Result<Option<(SocketAddr, Vec<u8>)>, EngineError> {
    let Some(bytes) = ConsensusStore::open(store)?.membership()? else { return Ok(None) };
    let epochs = crate::membership::Epochs::from_bytes(&bytes, genesis).map_err(RecoveryError::from)?;
    Ok(parse_endpoint(epochs.endpoint(id)))
}

/// The validators this engine can talk to, by replica id: Ed25519 keys (frame signatures)
/// and pinned TLS certificates (connections either way). It starts with genesis' and grows
/// when an executed reconfiguration adds validators, from the endpoints the change names.
/// A rotated validator has two certificates accepted until its change's epoch is in
/// effect, then only the new one.
struct Directory {
    keys: RwLock<Vec<PublicKey>>,
    certs: RwLock<Vec<Vec<Vec<u8>>>>,
}

impl Directory {
    /// Verifies frames' signatures under the keys known now (read-locked meanwhile:
    /// validators are added rarely, frames are checked all the time).
    fn verify(&self, messages: &[Message]) -> Vec<bool> {
        verify_messages(messages, &self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }
    fn identify(&self, conn: &quinn::Connection) -> Option<ReplicaId> {
        identify(conn, &self.certs.read().unwrap_or_else(|p| p.into_inner()))
    }
    fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
    }
    fn add(&self, key: PublicKey, cert: Vec<u8>) {
        self.keys.write().unwrap_or_else(|p| p.into_inner()).push(key);
        self.certs.write().unwrap_or_else(|p| p.into_inner()).push(vec![cert]);
    }
    /// Accepts `cert` for `id` beside the one it has.
    fn accept(&self, id: ReplicaId, cert: Vec<u8>) {
        let mut certs = self.certs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = certs.get_mut(id as usize) {
            c.retain(|known| *known != cert);
            c.push(cert);
        }
    }
    /// Keeps only the certificate accepted last for `id`.
    fn retire(&self, id: ReplicaId) {
        let mut certs = self.certs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = certs.get_mut(id as usize) {
            let keep = c.len().saturating_sub(1);
            c.drain(..keep);
        }
    }
}

/// The client side of the identities a replica can present, by certificate: the one it
/// presents first, then the others its host holds, which a link tries in turn while its
/// peer refuses the one before. Read by senders at each connection.
type ClientIdentities = Arc<RwLock<Vec<(Vec<u8>, quinn::ClientConfig)>>>;

/// This replica's side of the links: the identity it presents (replaced by a rotation),
/// where each peer is reached, and what every sender shares.
struct Transport {
    ca_der: Vec<u8>,
    /// The identity this replica was started with.
    configured: NodeTls,
    /// The certificate this replica presents now (as server, and first as client).
    presenting: Vec<u8>,
    spares: Option<Arc<dyn TlsSpares>>,
    identities: ClientIdentities,
    /// Which peers refused which of this replica's certificates, and when (within
    /// [`REFUSAL_WINDOW`]).
    refusals: BTreeMap<Vec<u8>, BTreeMap<ReplicaId, Instant>>,
    /// Bumped to make every link again (this replica's certificate rotated, or a peer's old
    /// one was retired).
    reconnect: watch::Sender<u64>,
    /// The endpoint the validator sets named for each id when last read (empty: the
    /// configured one).
    seen: Vec<Vec<u8>>,
    /// Where each peer is reached now.
    addrs: BTreeMap<ReplicaId, SocketAddr>,
    /// Rotated ids whose old certificate is retired once this epoch is in effect.
    retiring: Vec<(ReplicaId, u64)>,
}

/// What every sender task shares.
#[derive(Clone)]
struct Link {
    endpoint: quinn::Endpoint,
    identities: ClientIdentities,
    /// Where a sender reports that its peer refused a certificate of this replica.
    refused: mpsc::Sender<(ReplicaId, Vec<u8>)>,
    directory: Arc<Directory>,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
    reconnect: watch::Receiver<u64>,
}

enum Command {
    Submit(Request, oneshot::Sender<Result<u64, SubmitError>>),
    SubmitMany(Vec<Request>, oneshot::Sender<Result<Many, SubmitError>>),
    Status(oneshot::Sender<EngineStatus>),
    /// The application's state root after a checkpoint's batch.
    Attest(u64, [u8; 32]),
    Sets(oneshot::Sender<ValidatorSets>),
}

/// The validator sets as one replica knows them: the roster, every epoch's set (the
/// latest may be scheduled, not yet in effect), and where the replica stands.
#[derive(Debug, Clone)]
pub struct ValidatorSets {
    pub epochs: crate::membership::Epochs,
    /// The epoch in effect at this replica.
    pub current: u64,
    pub last_executed: u64,
    pub stable_seq: u64,
    /// The replica's watermark span and checkpoint interval (what a change's boundary is
    /// computed from).
    pub span: u64,
    pub interval: u64,
}

impl ValidatorSets {
    /// Checks `change` as execution would if it were ordered next here
    /// ([`crate::membership::Epochs::schedule`]), without ordering it: the boundary it
    /// would get, or why every correct replica would refuse it. A change that passes may
    /// still be refused where it executes (another change got there first).
    pub fn precheck(&self, change: &Request) -> Result<u64, crate::membership::Refused> {
        self.epochs.clone().schedule(change, self.last_executed + 1, self.span, self.interval)
    }
}

/// Reports the application's state roots to the engine (see [`Engine::attester`]).
#[derive(Clone)]
pub struct Attester {
    commands: mpsc::Sender<Command>,
    interval: u64,
}

impl Attester {
    /// Whether `seq` is a checkpoint, whose root the engine compares.
    pub fn wants(&self, seq: u64) -> bool {
        seq != 0 && seq % self.interval == 0
    }

    /// Reports the state root after batch `seq` (ignored unless [`Attester::wants`] it).
    /// Never blocks: `false` when the engine is stopped or its command queue is full (the
    /// next checkpoint compares again).
    pub fn attest(&self, seq: u64, root: [u8; 32]) -> bool {
        !self.wants(seq) || self.commands.try_send(Command::Attest(seq, root)).is_ok()
    }
}

/// Who waits for a request: its own submitter, or a group submitted together.
enum Waiter {
    One(oneshot::Sender<Result<u64, SubmitError>>),
    Group(Arc<std::sync::Mutex<Group>>),
}

/// What a group submission came to: the highest sequence number among its executed
/// requests, and how many admission control refused ([`Rejected::Busy`]: retry those later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Many {
    pub seq_max: u64,
    pub refused: usize,
}

/// A group of requests submitted together: resolves once every admitted request executed
/// (or with the first failure other than a busy refusal).
struct Group {
    remaining: usize,
    many: Many,
    reply: Option<oneshot::Sender<Result<Many, SubmitError>>>,
}

/// Forgets submitters that stopped waiting, and answers those waiting longer than `max`.
fn sweep_waiters(waiters: &mut HashMap<RequestKey, (Waiter, Instant)>, now: Instant, max: Duration) {
    let expired: Vec<RequestKey> = waiters
        .iter()
        .filter(|(_, (w, since))| w.abandoned() || now.duration_since(*since) > max)
        .map(|(k, _)| *k)
        .collect();
    for k in expired {
        if let Some((w, _)) = waiters.remove(&k) {
            w.fail(SubmitError::TimedOut(max));
        }
    }
}

impl Waiter {
    /// Whether the submitter stopped waiting.
    fn abandoned(&self) -> bool {
        match self {
            Waiter::One(w) => w.is_closed(),
            Waiter::Group(g) => g.lock().expect("not poisoned").reply.as_ref().is_none_or(|r| r.is_closed()),
        }
    }

    fn fail(self, e: SubmitError) {
        match self {
            Waiter::One(w) => {
                let _ = w.send(Err(e));
            }
            Waiter::Group(g) => g.lock().expect("not poisoned").done(Err(e)),
        }
    }
}

impl Group {
    fn new(len: usize, reply: oneshot::Sender<Result<Many, SubmitError>>) -> Self {
        let mut g = Self { remaining: len, many: Many::default(), reply: Some(reply) };
        g.finish_if_done();
        g
    }

    fn done(&mut self, result: Result<u64, SubmitError>) {
        self.remaining = self.remaining.saturating_sub(1);
        match result {
            Ok(seq) => self.many.seq_max = self.many.seq_max.max(seq),
            Err(SubmitError::Rejected(Rejected::Busy)) => self.many.refused += 1,
            Err(e) => {
                if let Some(r) = self.reply.take() {
                    let _ = r.send(Err(e));
                }
            }
        }
        self.finish_if_done();
    }

    fn finish_if_done(&mut self) {
        if self.remaining == 0 {
            if let Some(r) = self.reply.take() {
                let _ = r.send(Ok(self.many));
            }
        }
    }
}

/// The handle an application holds.
pub struct Engine {
    commands: mpsc::Sender<Command>,
    shutdown: watch::Sender<bool>,
    core: tokio::task::JoinHandle<Result<(), EngineError>>,
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    divergence: watch::Receiver<Option<Divergence>>,
    checkpoint_interval: u64,
}

impl Engine {
    /// Recovers the replica from the store, opens the endpoint and starts the tasks. Returns
    /// the engine and the stream of committed batches, in sequence order (after a restart,
    /// batches committed but not archived before the crash are delivered again; the
    /// application applies each sequence number once and may read the archive,
    /// [`ConsensusStore::committed_range`], for what it missed).
    pub fn start(cfg: EngineConfig) -> Result<(Engine, mpsc::Receiver<Delivered>), EngineError> {
        let n = cfg.replica.n;
        if cfg.keys.len() != n || cfg.addrs.len() != n || cfg.peer_certs.len() != n {
            return Err(EngineError::Config(format!("keys, addresses and certificates must list all {n} replicas")));
        }
        let id = cfg.replica.id;
        let store = Arc::new(ConsensusStore::open(cfg.store.clone())?);
        let recovered = Recovered::read(&store, cfg.replica.dedup_horizon)?;
        let start = Instant::now();
        let (replica, first) = Replica::recover(cfg.replica.clone(), cfg.key, cfg.keys.clone(), recovered, 0)?;
        info!(replica = id, view = replica.view(), executed = replica.last_executed(), "consensus.engine.start");

        // The configured identity; one a change executed before this start named for this
        // replica replaces it below (`Core::learn_validators`), before the engine runs.
        let tls = cfg.tls;
        let server = quic_server_config(&cfg.tls_ca_der, &tls)?;
        let identities =
            Arc::new(RwLock::new(vec![(tls.cert_der.clone(), quic_client_config(&cfg.tls_ca_der, &tls)?)]));
        let (refused, refused_rx) = mpsc::channel(REFUSALS_QUEUE_LEN);
        let local_addr = cfg.socket.local_addr()?;
        cfg.socket.set_nonblocking(true)?;
        let runtime = quinn::default_runtime().ok_or_else(|| EngineError::Config("no async runtime".into()))?;
        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), cfg.socket, runtime)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (inbound_tx, inbound_rx) = mpsc::channel::<(Message, Held)>(CORE_DRAIN_MAX);
        let (commands, command_rx) = mpsc::channel(CORE_DRAIN_MAX);
        let (deliver_tx, deliver_rx) = mpsc::channel(DELIVERY_QUEUE_LEN);
        let certs = cfg.peer_certs.into_iter().map(|c| vec![c]).collect();
        let directory = Arc::new(Directory { keys: RwLock::new(cfg.keys), certs: RwLock::new(certs) });
        let metrics = cfg.metrics;
        let (reconnect, reconnect_rx) = watch::channel(0u64);
        let link = Link {
            endpoint: endpoint.clone(),
            identities: identities.clone(),
            refused,
            directory: directory.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown_rx.clone(),
            reconnect: reconnect_rx,
        };
        let (diverged_tx, divergence) = watch::channel(None);
        let checkpoint_interval = cfg.replica.checkpoint_interval;

        let mut peers = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for peer in 0..n as ReplicaId {
            if peer == id {
                continue;
            }
            // A genesis validator rotated before this start: learn_validators (below)
            // redirects its sender.
            let (tx, rx) = outbox(OUTBOUND_QUEUE_LEN, OUTBOUND_QUEUE_BYTES);
            peers.insert(peer, tx);
            addrs.insert(peer, cfg.addrs[peer as usize]);
            tokio::spawn(sender(link.clone(), vec![cfg.addrs[peer as usize]], peer, rx));
        }
        let transport = Transport {
            ca_der: cfg.tls_ca_der,
            presenting: tls.cert_der.clone(),
            configured: tls,
            spares: cfg.tls_spares,
            identities,
            refusals: BTreeMap::new(),
            reconnect,
            seen: vec![Vec::new(); n],
            addrs,
            retiring: Vec::new(),
        };
        let guard = Arc::new(PeerGuard {
            standings: Standings::default(),
            metrics: metrics.clone(),
            check: cfg.request_check.clone(),
        });
        tokio::spawn(acceptor(endpoint.clone(), id, directory.clone(), inbound_tx, guard.clone(), shutdown_rx.clone()));
        let mut core = Core {
            replica,
            store,
            start,
            peers,
            deliver: deliver_tx,
            waiters: HashMap::new(),
            swept: Instant::now(),
            metrics,
            dropped_seen: BTreeMap::new(),
            state_entries_seen: 0,
            diverged: diverged_tx,
            guard,
            directory,
            transport,
            link,
        };
        core.learn_validators();
        let held = core.held();
        core.offer(&held);
        let handle = tokio::spawn(core.run(first, inbound_rx, command_rx, refused_rx, shutdown_rx));
        let engine = Engine { commands, shutdown, core: handle, endpoint, local_addr, divergence, checkpoint_interval };
        Ok((engine, deliver_rx))
    }

    /// A handle for the application to report its state roots after checkpoints.
    pub fn attester(&self) -> Attester {
        Attester { commands: self.commands.clone(), interval: self.checkpoint_interval }
    }

    /// Set once this replica's state root departs from a quorum's (see
    /// [`crate::replica::Replica::attest`]).
    pub fn divergence(&self) -> watch::Receiver<Option<Divergence>> {
        self.divergence.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Submits a request; resolves with its sequence number once this replica executed it.
    pub async fn submit(&self, request: Request) -> Result<u64, SubmitError> {
        self.submit_nowait(request).await?.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Submits requests together (one command for many: a gateway or the ledger batching
    /// transactions). Resolves once every admitted request executed, with the highest
    /// sequence number and the number admission control refused; or with the first other
    /// failure (the others may still execute).
    pub async fn submit_many(
        &self,
        requests: Vec<Request>,
    ) -> Result<oneshot::Receiver<Result<Many, SubmitError>>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::SubmitMany(requests, tx)).await.map_err(|_| SubmitError::Stopped)?;
        Ok(rx)
    }

    /// Submits without waiting for execution: returns a receiver for the outcome once the
    /// request is queued.
    pub async fn submit_nowait(
        &self,
        request: Request,
    ) -> Result<oneshot::Receiver<Result<u64, SubmitError>>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Submit(request, tx)).await.map_err(|_| SubmitError::Stopped)?;
        Ok(rx)
    }

    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Status(tx)).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The validator sets this replica knows ([`ValidatorSets`]).
    pub async fn validator_sets(&self) -> Result<ValidatorSets, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Sets(tx)).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Tells every task to stop, without waiting (see [`Engine::shutdown`]). Requests
    /// waiting for execution then end with [`SubmitError::Stopped`].
    pub fn signal_stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops every task and closes the endpoint. What was acknowledged is on disk.
    pub async fn shutdown(self) -> Result<(), EngineError> {
        let _ = self.shutdown.send(true);
        let result = self.core.await.map_err(|_| EngineError::Stopped)?;
        self.endpoint.close(quinn::VarInt::from_u32(0), b"shutdown");
        self.endpoint.wait_idle().await;
        result
    }
}

/// The wall clock in UNIX milliseconds (0 if the clock is before 1970).
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct Core {
    replica: Replica,
    store: Arc<ConsensusStore>,
    start: Instant,
    peers: BTreeMap<ReplicaId, Outbox>,
    deliver: mpsc::Sender<Delivered>,
    waiters: HashMap<RequestKey, (Waiter, Instant)>,
    metrics: Metrics,
    dropped_seen: BTreeMap<&'static str, u64>,
    state_entries_seen: u64,
    /// Where the state root departed from the quorum's, for the application.
    diverged: watch::Sender<Option<Divergence>>,
    swept: Instant,
    guard: Arc<PeerGuard>,
    /// Who this engine can talk to; grows with reconfigurations ([`Core::learn_validators`]).
    directory: Arc<Directory>,
    transport: Transport,
    link: Link,
}

impl Core {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Learns what the validator sets say and this engine does not know yet (from executed
    /// reconfigurations, also before a restart): validators added (their keys for frame
    /// signatures, their certificates for connections, a sender to each at the address its
    /// change named) and validators rotated in place (their new certificate accepted beside
    /// the old one, their sender redirected, or this replica's own identity switched).
    /// Then retires the old certificates of rotations now in effect.
    fn learn_validators(&mut self) {
        let me = self.replica.id();
        let epochs = self.replica.epochs().clone();
        let latest = epochs.latest().epoch;
        for id in 0..epochs.roster().len() as ReplicaId {
            let endpoint = epochs.endpoint(id);
            let known = (id as usize) < self.directory.len();
            if known && self.transport.seen.get(id as usize).is_some_and(|e| e.as_slice() == endpoint) {
                continue;
            }
            let reachable = parse_endpoint(endpoint);
            if !known {
                let cert = reachable.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
                self.directory.add(epochs.roster()[id as usize], cert);
                self.transport.seen.push(endpoint.to_vec());
                match reachable {
                    Some((addr, _)) if id != me => {
                        self.connect(id, addr);
                        info!(replica = me, peer = id, %addr, "consensus.peer.added");
                    }
                    // This replica, added after genesis (rotated since, if the sets name
                    // another certificate than its configured one).
                    Some((addr, cert)) => self.switch_identity(&cert, addr),
                    None => warn!(replica = me, peer = id, "consensus.peer.unreachable: its change named no endpoint"),
                }
                continue;
            }
            self.transport.seen[id as usize] = endpoint.to_vec();
            let Some((addr, cert)) = reachable else {
                warn!(
                    replica = me,
                    peer = id,
                    "consensus.peer.unreachable: its rotation named no endpoint this engine reads"
                );
                continue;
            };
            self.directory.accept(id, cert.clone());
            self.transport.retiring.push((id, latest));
            if id == me {
                self.switch_identity(&cert, addr);
            } else if self.transport.addrs.get(&id) != Some(&addr) {
                self.connect(id, addr);
            }
            info!(replica = me, peer = id, %addr, epoch = latest, "consensus.peer.rotated: its new certificate is accepted beside the old one until the epoch is in effect");
        }
        self.retire_superseded();
    }

    /// A sender to `peer` at `addr` (replacing the one it had: that one ends once its queue
    /// is dropped). A peer that a rotation moved is also tried where it was: until it
    /// executes the change itself it serves there, with the new certificate once it learns
    /// that its peers refuse the old one (`Core::refused`), and only that one is pinned.
    fn connect(&mut self, peer: ReplicaId, addr: SocketAddr) {
        let (tx, rx) = outbox(OUTBOUND_QUEUE_LEN, OUTBOUND_QUEUE_BYTES);
        self.peers.insert(peer, tx);
        let before = self.transport.addrs.insert(peer, addr);
        let addrs = std::iter::once(addr).chain(before.filter(|b| *b != addr)).collect();
        tokio::spawn(sender(self.link.clone(), addrs, peer, rx));
    }

    /// This replica's own rotation executed: present the certificate it names (its host
    /// must hold the key) from the next handshake on, make every link again with it, and
    /// move to the new address if it changed.
    fn switch_identity(&mut self, cert: &[u8], addr: SocketAddr) {
        let me = self.replica.id();
        let held = self.held();
        if cert != self.transport.presenting.as_slice() {
            match held.iter().find(|h| h.cert_der == cert) {
                Some(next) => match self.present(next) {
                    Ok(()) => warn!(
                        replica = me,
                        "consensus.tls.rotated: this replica presents its next certificate from now on"
                    ),
                    Err(e) => {
                        error!(replica = me, error = %e, "consensus.tls.rotate_failed: the next identity is unusable")
                    }
                },
                None => error!(
                    replica = me,
                    "consensus.tls.rotate_failed: the change names a certificate for this replica whose key its host \
                     does not hold; peers refuse the old one once the change is in effect"
                ),
            }
        }
        // Bound to every interface at that port already serves the address.
        let here = self.link.endpoint.local_addr().ok();
        if here.is_some_and(|h| h != addr && !(h.ip().is_unspecified() && h.port() == addr.port())) {
            let moved = std::net::UdpSocket::bind(addr).and_then(|s| {
                s.set_nonblocking(true)?;
                self.link.endpoint.rebind(s)
            });
            match moved {
                Ok(()) => warn!(replica = me, %addr, "consensus.net.moved: this replica serves at its new address"),
                Err(e) => error!(
                    replica = me,
                    %addr,
                    error = %e,
                    "consensus.net.move_failed: start this node again where its address is local"
                ),
            }
        }
        self.offer(&held);
    }

    /// The identities this replica's host holds (read once per use: a node's are files,
    /// installed without a restart): the next certificates of rotations and, until a change
    /// names another certificate for this replica, the one it was started with.
    fn held(&self) -> Vec<NodeTls> {
        let t = &self.transport;
        let mut held = t.spares.as_ref().map(|s| s.all()).unwrap_or_default();
        if t.seen.get(self.replica.id() as usize).is_none_or(|named| named.is_empty()) {
            held.push(t.configured.clone());
        }
        held
    }

    /// Lets each link try the identities `held` other than the one presented, in turn,
    /// while its peer refuses the one before.
    fn offer(&mut self, held: &[NodeTls]) {
        let me = self.replica.id();
        let mut offered: Vec<(Vec<u8>, quinn::ClientConfig)> = Vec::new();
        for other in held {
            if other.cert_der == self.transport.presenting || offered.iter().any(|(c, _)| *c == other.cert_der) {
                continue;
            }
            match quic_client_config(&self.transport.ca_der, other) {
                Ok(client) => offered.push((other.cert_der.clone(), client)),
                Err(e) => warn!(replica = me, error = %e, "consensus.tls.unusable: a held identity is skipped"),
            }
        }
        let mut identities = self.transport.identities.write().unwrap_or_else(|p| p.into_inner());
        identities.truncate(1);
        identities.extend(offered);
    }

    /// Presents `next` from the next handshake on, either way, and makes every link again
    /// with it (the caller offers the others again, [`Core::offer`]).
    fn present(&mut self, next: &NodeTls) -> Result<(), TlsError> {
        let server = quic_server_config(&self.transport.ca_der, next)?;
        let client = quic_client_config(&self.transport.ca_der, next)?;
        self.link.endpoint.set_server_config(Some(server));
        self.transport.identities.write().unwrap_or_else(|p| p.into_inner())[0] = (next.cert_der.clone(), client);
        self.transport.presenting = next.cert_der.clone();
        self.transport.reconnect.send_modify(|g| *g += 1);
        Ok(())
    }

    /// `peer` closed a connection that presented `cert` as a certificate no validator set
    /// it knows names for this replica. When f + 1 peers of the set in effect here refuse
    /// the one presented, at least one correct replica retired it: a rotation of this
    /// replica is in effect there, ordered while this one was down or behind. Those peers
    /// reach this replica only under the new certificate, so it presents the first other
    /// identity its host holds that fewer refused, as server too, until it catches up and
    /// executes the change ([`Core::switch_identity`]). Without this it would stay locked
    /// out: its peers refuse the old certificate, and it learns of the change only from
    /// them.
    fn refused(&mut self, peer: ReplicaId, cert: Vec<u8>) {
        let me = self.replica.id();
        let now = Instant::now();
        let refusals = &mut self.transport.refusals;
        for by in refusals.values_mut() {
            by.retain(|_, at| now.duration_since(*at) < REFUSAL_WINDOW);
        }
        refusals.retain(|_, by| !by.is_empty());
        refusals.entry(cert.clone()).or_default().insert(peer, now);
        debug!(replica = me, peer, "consensus.tls.refused_by_peer");
        if cert != self.transport.presenting {
            return;
        }
        let held = self.held();
        let f = self.replica.membership().f();
        let refusals = &self.transport.refusals;
        let refused_by = |c: &[u8]| refusals.get(c).map_or(0, BTreeMap::len);
        let by = refused_by(&cert);
        let next = (by > f).then(|| held.iter().find(|h| h.cert_der != cert && refused_by(&h.cert_der) <= f)).flatten();
        match next.map(|next| self.present(next)) {
            Some(Ok(())) => warn!(
                replica = me,
                refused_by = by,
                "consensus.tls.refused: f + 1 peers refuse the certificate this replica presents (a rotation of it \
                 is in effect there, not yet executed here): it presents another one its host holds"
            ),
            Some(Err(e)) => {
                error!(replica = me, error = %e, "consensus.tls.rotate_failed: the next identity is unusable")
            }
            None if by > f => {
                debug!(replica = me, refused_by = by, "consensus.tls.refused: no other identity held is accepted")
            }
            None => {}
        }
        // Also offers a next identity installed since.
        self.offer(&held);
    }

    /// Retires the old certificates of rotations whose epoch is in effect, and makes every
    /// link again so that none opened with an old certificate stays up.
    fn retire_superseded(&mut self) {
        let current = self.replica.membership().epoch;
        let before = self.transport.retiring.len();
        let directory = self.directory.clone();
        self.transport.retiring.retain(|(id, epoch)| {
            let due = *epoch <= current;
            if due {
                directory.retire(*id);
            }
            !due
        });
        if self.transport.retiring.len() < before {
            self.transport.reconnect.send_modify(|g| *g += 1);
            info!(
                replica = self.replica.id(),
                epoch = current,
                "consensus.tls.retired: old certificates of rotated validators are refused from now on"
            );
        }
    }

    async fn run(
        mut self,
        first: Output,
        mut inbound: mpsc::Receiver<(Message, Held)>,
        mut commands: mpsc::Receiver<Command>,
        mut refused: mpsc::Receiver<(ReplicaId, Vec<u8>)>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        self.perform(vec![first]).await?;
        loop {
            self.replica.observe_wall_clock(unix_ms());
            let deadline = self.start + Duration::from_millis(self.replica.next_deadline_ms());
            let mut outputs = Vec::new();
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                Some(cmd) = commands.recv() => self.command(cmd, &mut outputs),
                Some((peer, cert)) = refused.recv() => self.refused(peer, cert),
                Some((msg, _held)) = inbound.recv() => {
                    let now = self.now_ms();
                    outputs.push(self.replica.receive(now, msg));
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = self.now_ms();
                    outputs.push(self.replica.tick(now));
                }
            }
            // Take what else is ready, so one synced write covers it all.
            let mut taken = 1;
            while taken < CORE_DRAIN_MAX {
                if let Ok(cmd) = commands.try_recv() {
                    self.command(cmd, &mut outputs);
                } else if let Ok((msg, _held)) = inbound.try_recv() {
                    let now = self.now_ms();
                    outputs.push(self.replica.receive(now, msg));
                } else {
                    break;
                }
                taken += 1;
            }
            if self.replica.next_deadline_ms() <= self.now_ms() {
                let now = self.now_ms();
                outputs.push(self.replica.tick(now));
            }
            self.metrics.inbound_queue.set(inbound.len() as i64);
            self.perform(outputs).await?;
        }
    }

    fn command(&mut self, cmd: Command, outputs: &mut Vec<Output>) {
        match cmd {
            Command::Submit(request, reply) => {
                let now = self.now_ms();
                match self.replica.submit_keyed(now, request) {
                    Ok((key, out)) => {
                        self.waiters.insert(key, (Waiter::One(reply), Instant::now()));
                        outputs.push(out);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(SubmitError::Rejected(e)));
                    }
                }
            }
            Command::SubmitMany(requests, reply) => {
                let now = self.now_ms();
                let since = Instant::now();
                let group = Arc::new(std::sync::Mutex::new(Group::new(requests.len(), reply)));
                for request in requests {
                    match self.replica.submit_keyed(now, request) {
                        Ok((key, out)) => {
                            self.waiters.insert(key, (Waiter::Group(group.clone()), since));
                            outputs.push(out);
                        }
                        Err(e) => group.lock().expect("not poisoned").done(Err(SubmitError::Rejected(e))),
                    }
                }
            }
            Command::Sets(reply) => {
                let r = &self.replica;
                let _ = reply.send(ValidatorSets {
                    epochs: r.epochs().clone(),
                    current: r.membership().epoch,
                    last_executed: r.last_executed(),
                    stable_seq: r.stable_seq(),
                    span: r.config().watermark_span,
                    interval: r.config().checkpoint_interval,
                });
            }
            Command::Status(reply) => {
                let r = &self.replica;
                let _ = reply.send(EngineStatus {
                    view: r.view(),
                    in_view_change: r.in_view_change(),
                    following: r.is_following(),
                    last_executed: r.last_executed(),
                    stable_seq: r.stable_seq(),
                    history: r.history(),
                    pending: r.pending_len(),
                    epoch: r.membership().epoch,
                    member: r.is_member(),
                });
            }
            Command::Attest(seq, root) => {
                let now = self.now_ms();
                outputs.push(self.replica.attest(now, seq, root));
                self.metrics.state_root_agreed.set(self.replica.agreed_root_seq() as i64);
            }
        }
    }

    /// Persist, then send, deliver and reply: the host contract of [`Replica`].
    async fn perform(&mut self, outputs: Vec<Output>) -> Result<(), EngineError> {
        let mut write = LogWrite::default();
        let mut sends = Vec::new();
        let mut delivered = Vec::new();
        let mut replies = Vec::new();
        let mut serve = Vec::new();
        let mut reconfigured = false;
        let mut entered = false;
        for out in outputs {
            write.merge(out.persist);
            sends.extend(out.send);
            delivered.extend(out.deliver);
            replies.extend(out.replies);
            serve.extend(out.serve_state);
            for e in out.events {
                reconfigured |= matches!(e, Event::Reconfiguration { .. });
                entered |= matches!(e, Event::EpochEntered { .. });
                self.event(e);
            }
        }
        if !write.is_empty() {
            let t = Instant::now();
            let store = self.store.clone();
            // A synced write blocks: keep it off the other tasks' threads.
            tokio::task::block_in_place(|| store.write(&write))?;
            self.metrics.persist_seconds.observe(t.elapsed().as_secs_f64());
        }
        if reconfigured {
            self.learn_validators();
        }
        if entered {
            self.retire_superseded();
        }
        for (target, msg) in sends {
            self.send(target, &msg);
        }
        for (peer, from_seq) in serve {
            let entries = self.read_entries(from_seq)?;
            let reply = self.replica.state_reply(entries);
            self.send(Target::One(peer), &reply);
        }
        for d in delivered {
            self.metrics.committed_batches.inc();
            self.metrics.committed_requests.inc_by(d.fresh.len() as u64);
            if self.deliver.send(d).await.is_err() {
                debug!("consensus.engine.deliver: the application dropped its receiver");
            }
        }
        for r in replies {
            if let Some((waiter, since)) = self.waiters.remove(&r.key) {
                self.metrics.commit_latency_seconds.observe(since.elapsed().as_secs_f64());
                match waiter {
                    Waiter::One(w) => {
                        let _ = w.send(Ok(r.seq));
                    }
                    Waiter::Group(g) => g.lock().expect("not poisoned").done(Ok(r.seq)),
                }
            }
        }
        if self.swept.elapsed() >= WAITER_SWEEP {
            self.swept = Instant::now();
            sweep_waiters(&mut self.waiters, self.swept, WAITER_MAX);
        }
        self.metrics.pending_requests.set(self.replica.pending_len() as i64);
        self.metrics.view.set(self.replica.view() as i64);
        self.metrics.following.set(self.replica.is_following() as i64);
        let stats = self.replica.stats();
        self.metrics.state_entries.inc_by(stats.state_entries_applied - self.state_entries_seen);
        self.state_entries_seen = stats.state_entries_applied;
        for (reason, count) in &stats.dropped {
            let seen = self.dropped_seen.entry(reason).or_default();
            if *count > *seen {
                self.metrics
                    .dropped_messages
                    .get_or_create(&crate::metrics::ReasonLabel { reason: reason.to_string() })
                    .inc_by(count - *seen);
                *seen = *count;
            }
        }
        Ok(())
    }

    fn read_entries(&self, from_seq: u64) -> Result<Vec<CommittedEntry>, EngineError> {
        let store = self.store.clone();
        let rows = tokio::task::block_in_place(|| store.committed_range(from_seq, u64::MAX, STATE_REPLY_ENTRIES))?;
        let mut entries = Vec::new();
        let mut bytes = 0;
        for (_, raw) in rows {
            let entry = parse_archive(&raw).map_err(|e| EngineError::Config(format!("archive: {e}")))?.entry;
            bytes += raw.len();
            entries.push(entry);
            if bytes >= STATE_REPLY_BYTES {
                break;
            }
        }
        Ok(entries)
    }

    fn send(&self, target: Target, msg: &Message) {
        // One length-prefixed frame per message, shared by every peer's queue (no copies
        // until QUIC encrypts it).
        let mut buf = vec![0u8; 4];
        msg.encode(&mut buf);
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let frame = Bytes::from(buf);
        let push = |peer: ReplicaId, tx: &Outbox| {
            if !tx.push(frame.clone()) {
                tracing::trace!(peer, msg = msg.name(), "consensus.msg.drop: send queue full");
                self.metrics.dropped("send queue full");
            }
            self.metrics.outbound_queue.get_or_create(&PeerLabel { peer: peer.to_string() }).set(tx.frames() as i64);
        };
        match target {
            Target::All => {
                // The current set's validators this engine has a connection to.
                for peer in self.replica.peers() {
                    if let Some(tx) = self.peers.get(&peer) {
                        push(peer, tx);
                    }
                }
            }
            Target::One(peer) => {
                if let Some(tx) = self.peers.get(&peer) {
                    push(peer, tx);
                }
            }
        }
    }

    fn event(&self, e: Event) {
        match e {
            Event::ViewChangeStarted(v) => {
                self.metrics.view_changes.inc();
                warn!(replica = self.replica.id(), view = v, "consensus.pbft.view_change");
            }
            Event::ViewEntered(v) => info!(replica = self.replica.id(), view = v, "consensus.pbft.new_view"),
            Event::Stable(seq) => debug!(replica = self.replica.id(), seq, "consensus.pbft.checkpoint"),
            Event::StateRequested { peer, from_seq } => {
                debug!(replica = self.replica.id(), peer, from_seq, "consensus.pbft.state_transfer")
            }
            Event::Diverged(seq) => warn!(replica = self.replica.id(), seq, "consensus.pbft.diverged"),
            Event::Rejoined { view, left } => {
                warn!(replica = self.replica.id(), view, left, "consensus.pbft.rejoined: a quorum went on in this view without this replica's view change; following it without voting until the consortium reaches the view it left")
            }
            Event::BehindView { view, from } => {
                info!(
                    replica = self.replica.id(),
                    view, from, "consensus.pbft.behind: f + 1 replicas order in a higher view; moving to it"
                )
            }
            Event::StalledViewChangeJoined { from, to } => {
                warn!(replica = self.replica.id(), from, to, "consensus.pbft.view_change_joined: the view change stalled short of a quorum; joining a higher view another replica is changing to")
            }
            Event::PeerFault { peer, reason } => {
                debug!(
                    replica = self.replica.id(),
                    peer, reason, "consensus.peer.fault: a signed message no correct replica sends"
                );
                self.guard.fault(peer, reason);
            }
            Event::Reconfiguration { seq, epoch, after_seq } => {
                warn!(
                    replica = self.replica.id(),
                    seq,
                    epoch,
                    after_seq,
                    "consensus.reconfiguration: a validator set change executed; it takes effect at the checkpoint after_seq"
                )
            }
            Event::ReconfigurationRefused { seq, reason } => {
                warn!(replica = self.replica.id(), seq, reason, "consensus.reconfiguration.refused")
            }
            Event::EpochEntered { epoch, member } => {
                warn!(replica = self.replica.id(), epoch, member, "consensus.epoch: a new validator set governs")
            }
            Event::StateDiverged(d) => {
                self.metrics.state_diverged_seq.set(d.seq as i64);
                error!(
                    replica = self.replica.id(),
                    seq = d.seq,
                    own = %crate::message::short(&d.own),
                    quorum = %crate::message::short(&d.quorum),
                    "consensus.state.diverged: this replica's state root after batch {} differs from the one a quorum reports; the ledger stops applying",
                    d.seq
                );
                let _ = self.diverged.send(Some(d));
            }
        }
    }
}

/// Message class of a length-prefixed frame: 0 ordering, 1 control.
fn class_of(frame: &[u8]) -> usize {
    match Message::kind_of(frame.get(4..).unwrap_or_default()) {
        Some(k) if Message::is_ordering_kind(k) => 0,
        _ => 1,
    }
}

/// Sends this replica's frames to one peer over one connection, reconnecting with backoff.
/// The peer must present a certificate the directory names for it. Ends when its queue is
/// dropped (the peer moved: another sender took over) or at shutdown.
async fn sender(link: Link, addrs: Vec<SocketAddr>, peer: ReplicaId, mut rx: Inbox) {
    let Link { endpoint, identities, refused, directory, metrics, mut shutdown, mut reconnect } = link;
    let name = server_name(peer);
    let mut backoff = Duration::from_millis(20);
    // Which address is dialled (the next one after a failed attempt) and which identity is
    // presented (the next one held after the peer refused this one; the first again when
    // every link is made again).
    let (mut at, mut presenting) = (0usize, 0usize);
    loop {
        if rx.is_closed() {
            return;
        }
        if reconnect.has_changed().unwrap_or(false) {
            presenting = 0;
        }
        reconnect.borrow_and_update();
        let (cert, config) = {
            let identities = identities.read().unwrap_or_else(|p| p.into_inner());
            identities[presenting % identities.len()].clone()
        };
        let addr = addrs[at % addrs.len()];
        let connecting = match endpoint.connect_with(config, addr, &name) {
            Ok(c) => c,
            Err(e) => {
                warn!(peer, error = %e, "consensus.net.connect");
                return;
            }
        };
        let conn = tokio::select! {
            _ = shutdown.changed() => return,
            c = tokio::time::timeout(CONNECT_ATTEMPT_MAX, connecting) => c,
        };
        let conn = match conn {
            Ok(Ok(c)) if directory.identify(&c) == Some(peer) => c,
            failed => {
                match failed {
                    Ok(Ok(c)) => {
                        warn!(
                            peer,
                            "consensus.net.unpinned: the peer presented a certificate no validator set names for it"
                        );
                        c.close(quinn::VarInt::from_u32(2), b"unpinned");
                    }
                    Ok(Err(e)) => debug!(peer, error = %e, "consensus.net.connect_retry"),
                    _ => debug!(peer, "consensus.net.connect_retry: no handshake within {CONNECT_ATTEMPT_MAX:?}"),
                }
                at += 1;
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                continue;
            }
        };
        metrics.connections.inc();
        let mut streams: [Option<quinn::SendStream>; 2] = [None, None];
        'connected: loop {
            let first = tokio::select! {
                _ = shutdown.changed() => return,
                r = reconnect.changed() => if r.is_err() { return } else { presenting = 0; break 'connected },
                _ = conn.closed() => break 'connected,
                f = rx.recv() => match f { Some(f) => f, None => return },
            };
            // What is queued goes out in one write per class, without copying the frames.
            let mut chunks: [Vec<Bytes>; 2] = [Vec::new(), Vec::new()];
            let mut bytes = first.len();
            chunks[class_of(&first)].push(first);
            while chunks[0].len() + chunks[1].len() < 256 && bytes < WRITE_BYTES_MAX {
                match rx.try_recv() {
                    Some(f) => {
                        bytes += f.len();
                        chunks[class_of(&f)].push(f);
                    }
                    None => break,
                }
            }
            for (c, frames) in chunks.iter_mut().enumerate() {
                if frames.is_empty() {
                    continue;
                }
                if streams[c].is_none() {
                    match conn.open_uni().await {
                        Ok(s) => streams[c] = Some(s),
                        Err(_) => break 'connected,
                    }
                }
                let stream = streams[c].as_mut().expect("opened");
                if stream.write_all_chunks(frames).await.is_err() {
                    // The frames are lost with the connection; retransmission covers them.
                    tracing::trace!(peer, frames = frames.len(), "consensus.msg.drop: connection lost");
                    metrics.dropped("connection lost");
                    break 'connected;
                }
            }
        }
        let closed_by_peer = match conn.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => Some(c.reason),
            _ => None,
        };
        conn.close(quinn::VarInt::from_u32(1), b"reconnect");
        let Some(reason) = closed_by_peer else {
            backoff = Duration::from_millis(20);
            continue;
        };
        // Closed by the peer (refused, banned, over its connection bound, shutting down):
        // again only after the backoff, or a refusing peer would be dialled in a loop.
        if &reason[..] == UNKNOWN_PEER {
            // It knows no validator by this certificate: the core counts it, and this link
            // presents the next identity held.
            metrics.dropped("refused as an unknown peer");
            let _ = refused.try_send((peer, cert));
            presenting += 1;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
    }
}

/// Accepts peers' connections and spawns a reader per stream and a verifier per connection.
/// A peer holds at most [`CONNECTIONS_PER_PEER_MAX`] connections; what it sends waits in
/// byte budgets ([`CONNECTION_BYTES_MAX`] per connection, [`CORE_BYTES_MAX`] for all).
async fn acceptor(
    endpoint: quinn::Endpoint,
    me: ReplicaId,
    directory: Arc<Directory>,
    core: mpsc::Sender<(Message, Held)>,
    guard: Arc<PeerGuard>,
    mut shutdown: watch::Receiver<bool>,
) {
    let core_budget = ByteBudget::new(CORE_BYTES_MAX);
    let open: Arc<std::sync::Mutex<HashMap<ReplicaId, usize>>> = Arc::default();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.changed() => return,
            i = endpoint.accept() => match i { Some(i) => i, None => return },
        };
        let (directory, core, guard) = (directory.clone(), core.clone(), guard.clone());
        let (shutdown, core_budget, open) = (shutdown.clone(), core_budget.clone(), open.clone());
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let metrics = &guard.metrics;
            let Some(peer) = directory.identify(&conn) else {
                metrics.dropped("unknown peer certificate");
                conn.close(quinn::VarInt::from_u32(2), UNKNOWN_PEER);
                return;
            };
            if peer == me {
                conn.close(quinn::VarInt::from_u32(2), b"self");
                return;
            }
            if guard.standing(peer) == Standing::Banned {
                metrics.dropped("banned peer");
                conn.close(quinn::VarInt::from_u32(6), b"banned");
                return;
            }
            let Some(_slot) = ConnectionSlot::take(&open, peer) else {
                metrics.dropped("too many connections");
                conn.close(quinn::VarInt::from_u32(4), b"too many connections");
                return;
            };
            let (tx, rx) = mpsc::channel::<(Message, Held)>(1024);
            let strikes = Strikes { conn: conn.clone(), peer, count: Arc::default(), guard: guard.clone() };
            tokio::spawn(verifier(rx, directory, core, core_budget, strikes.clone()));
            serve_connection(conn, peer, tx, strikes, shutdown).await;
        });
    }
}

/// One of a peer's connections, counted while it is open.
struct ConnectionSlot {
    open: Arc<std::sync::Mutex<HashMap<ReplicaId, usize>>>,
    peer: ReplicaId,
}

impl ConnectionSlot {
    fn take(open: &Arc<std::sync::Mutex<HashMap<ReplicaId, usize>>>, peer: ReplicaId) -> Option<Self> {
        let mut m = open.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(peer).or_default();
        if *n >= CONNECTIONS_PER_PEER_MAX {
            return None;
        }
        *n += 1;
        Some(Self { open: open.clone(), peer })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The replica a connection belongs to: the one whose genesis certificate it presented.
fn identify(conn: &quinn::Connection, peer_certs: &[Vec<Vec<u8>>]) -> Option<ReplicaId> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = chain.first()?;
    peer_certs.iter().position(|cs| cs.iter().any(|c| c.as_slice() == leaf.as_ref())).map(|i| i as ReplicaId)
}

async fn serve_connection(
    conn: quinn::Connection,
    peer: ReplicaId,
    tx: mpsc::Sender<(Message, Held)>,
    strikes: Strikes,
    mut shutdown: watch::Receiver<bool>,
) {
    let budget = ByteBudget::new(CONNECTION_BYTES_MAX);
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            s = conn.accept_uni() => match s { Ok(s) => s, Err(_) => return },
        };
        tokio::spawn(read_stream(stream, peer, tx.clone(), budget.clone(), strikes.clone()));
    }
}

/// Reads length-prefixed frames; a frame over the bound ends the stream (the peer is
/// broken or hostile), a malformed frame or one signed by someone else is dropped. A frame
/// is read only once the connection's byte budget has room for it.
async fn read_stream(
    mut stream: quinn::RecvStream,
    peer: ReplicaId,
    tx: mpsc::Sender<(Message, Held)>,
    budget: ByteBudget,
    strikes: Strikes,
) {
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MESSAGE_LEN_MAX {
            strikes.strike("oversized frame");
            let _ = stream.stop(quinn::VarInt::from_u32(3));
            return;
        }
        let held = budget.hold(n).await;
        let mut frame = vec![0u8; n];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        match Message::from_bytes(&frame) {
            Ok(m) if m.from() == peer => {
                if tx.send((m, held)).await.is_err() {
                    return;
                }
            }
            Ok(_) => strikes.strike("sender does not match the connection"),
            Err(_) => strikes.strike("malformed"),
        }
    }
}

/// Verdicts on a forward's validator set changes ([`Reconfiguration::precheck_forwarded`]:
/// at least the smallest quorum of approvals, each of this very change, each signature
/// valid), checked against the roster before one takes an ordering slot; other requests
/// pass. A change that names an approver this replica does not know yet is refused without
/// blame (its roster may lag).
fn change_verdicts(requests: &[Request], directory: &Directory) -> Vec<Result<(), Refused>> {
    if requests.iter().all(|r| r.client != RECONFIGURE_CLIENT) {
        return vec![Ok(()); requests.len()];
    }
    let keys = directory.keys.read().unwrap_or_else(|p| p.into_inner());
    requests
        .iter()
        .map(|r| match r.client {
            RECONFIGURE_CLIENT => Reconfiguration::precheck_forwarded(&r.payload, &keys).map_err(|e| match e {
                ForwardRefusal::Forged(why) => Refused::Forged(why),
                ForwardRefusal::Unknown(why) => Refused::Invalid(why),
            }),
            _ => Ok(()),
        })
        .collect()
}

/// Keeps the forwarded `requests` whose verdict is Ok, counting each refused one by reason
/// and forwarding peer, and striking the peer if one was provably forged. Whether any
/// request is left.
fn keep_admitted(requests: &mut Vec<Request>, verdicts: Vec<Result<(), Refused>>, strikes: &Strikes) -> bool {
    let mut forged = false;
    let mut verdict = verdicts.into_iter();
    requests.retain(|_| match verdict.next() {
        Some(Ok(())) | None => true,
        Some(Err(r)) => {
            let (Refused::Forged(reason) | Refused::Invalid(reason)) = r;
            forged |= matches!(r, Refused::Forged(_));
            let label = RefusedLabel { peer: strikes.peer.to_string(), reason: reason.into() };
            strikes.guard.metrics.refused_requests.get_or_create(&label).inc();
            warn!(peer = strikes.peer, reason, "consensus.request.refused: a forwarded request");
            false
        }
    });
    if forged {
        strikes.strike("forwarded a forged request");
    }
    !requests.is_empty()
}

/// A disseminated part is taken whole or not at all (its digest names it): refused when
/// any request in it is provably forged, a fault of its sender; requests invalid under
/// this replica's ledger are counted and kept (execution refuses them; the sender's
/// ledger may be ahead).
fn part_admitted(verdicts: Vec<Result<(), Refused>>, strikes: &Strikes) -> bool {
    let mut forged = false;
    for r in verdicts.into_iter().filter_map(Result::err) {
        let (Refused::Forged(reason) | Refused::Invalid(reason)) = r;
        forged |= matches!(r, Refused::Forged(_));
        let label = RefusedLabel { peer: strikes.peer.to_string(), reason: reason.into() };
        strikes.guard.metrics.refused_requests.get_or_create(&label).inc();
    }
    if forged {
        warn!(peer = strikes.peer, "consensus.part.refused: a part with a forged request");
        strikes.strike("disseminated a forged request");
    }
    !forged
}

/// Checks the signatures of a connection's frames in batches before the core sees them;
/// a frame moves from its connection's budget to the core's. Invalid frames count against
/// the connection ([`INVALID_FRAMES_MAX`]).
async fn verifier(
    mut rx: mpsc::Receiver<(Message, Held)>,
    directory: Arc<Directory>,
    core: mpsc::Sender<(Message, Held)>,
    core_budget: ByteBudget,
    strikes: Strikes,
) {
    let check = strikes.guard.check.clone();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let (messages, held): (Vec<Message>, Vec<Held>) = batch.into_iter().unzip();
        let ok = tokio::task::block_in_place(|| directory.verify(&messages));
        for ((mut m, held), good) in messages.into_iter().zip(held).zip(ok) {
            if !good {
                strikes.strike("bad signature");
                continue;
            }
            if let Message::Disseminate(d) = &m {
                let requests = d.body.part.requests();
                let mut verdicts = change_verdicts(requests, &directory);
                if verdicts.iter().all(Result::is_ok) {
                    if let Some(check) = &check {
                        verdicts = tokio::task::block_in_place(|| check.check(requests));
                    }
                }
                if !part_admitted(verdicts, &strikes) {
                    continue;
                }
            }
            if let Message::Forward(f) = &mut m {
                let requests = &mut f.body.requests;
                if !keep_admitted(requests, change_verdicts(requests, &directory), &strikes) {
                    continue;
                }
                if let Some(check) = &check {
                    let verdicts = tokio::task::block_in_place(|| check.check(requests));
                    if !keep_admitted(requests, verdicts, &strikes) {
                        continue;
                    }
                }
            }
            match strikes.guard.standing(strikes.peer) {
                Standing::Good => {}
                Standing::Throttled => tokio::time::sleep(THROTTLE_DELAY).await,
                Standing::Banned => {
                    strikes.guard.metrics.dropped("banned peer");
                    strikes.conn.close(quinn::VarInt::from_u32(6), b"banned");
                    return;
                }
            }
            let bytes = held.num_permits() * 1024;
            let in_core = core_budget.hold(bytes).await;
            drop(held);
            if core.send((m, in_core)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_a_bounded_number_of_connections() {
        let open = Arc::default();
        let a: Vec<_> = (0..CONNECTIONS_PER_PEER_MAX).map(|_| ConnectionSlot::take(&open, 1).unwrap()).collect();
        assert!(ConnectionSlot::take(&open, 1).is_none(), "one more is refused");
        let other = ConnectionSlot::take(&open, 2);
        assert!(other.is_some(), "another peer's count is its own");
        drop(a);
        assert!(ConnectionSlot::take(&open, 1).is_some(), "closed connections free their slots");
    }

    #[tokio::test]
    async fn frames_wait_for_room_in_their_byte_budget() {
        let budget = ByteBudget::new(4 << 10);
        let first = budget.hold(3 << 10).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.hold(2 << 10)).await;
        assert!(waiting.is_err(), "3 KiB + 2 KiB do not fit 4 KiB");
        assert_eq!(budget.hold(1).await.num_permits(), 1, "a byte holds one KiB");
        drop(first);
        let second = tokio::time::timeout(Duration::from_millis(50), budget.hold(2 << 10)).await;
        assert!(second.is_ok(), "room again once the first frame moved on");
    }

    #[test]
    fn waiters_that_gave_up_or_waited_too_long_are_swept() {
        let t0 = Instant::now();
        let max = Duration::from_secs(600);
        let mut waiters = HashMap::new();
        let (gave_up, rx) = oneshot::channel();
        drop(rx);
        waiters.insert((1, 1, 0), (Waiter::One(gave_up), t0));
        let (old, mut old_rx) = oneshot::channel();
        waiters.insert((1, 2, 0), (Waiter::One(old), t0));
        let (fresh, mut fresh_rx) = oneshot::channel();
        waiters.insert((1, 3, 0), (Waiter::One(fresh), t0 + Duration::from_secs(300)));
        let (group_reply, mut group_rx) = oneshot::channel();
        let group = Arc::new(std::sync::Mutex::new(Group::new(2, group_reply)));
        waiters.insert((2, 1, 0), (Waiter::Group(group.clone()), t0));
        waiters.insert((2, 2, 0), (Waiter::Group(group), t0));

        sweep_waiters(&mut waiters, t0 + Duration::from_secs(601), max);
        assert_eq!(waiters.keys().copied().collect::<Vec<_>>(), vec![(1, 3, 0)], "only the fresh waiter stays");
        assert!(matches!(old_rx.try_recv(), Ok(Err(SubmitError::TimedOut(d))) if d == max));
        assert!(matches!(group_rx.try_recv(), Ok(Err(SubmitError::TimedOut(_)))));
        assert!(fresh_rx.try_recv().is_err(), "the fresh waiter is still waiting");
    }
}
