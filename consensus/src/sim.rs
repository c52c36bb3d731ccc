//! The deterministic simulator (in the spirit of TigerBeetle's VOPR and commonware's
//! deterministic runtime): the same [`Replica`] core as production, driven by a seeded
//! network and a virtual clock, with each replica's log in the real consensus store over
//! the memory engine.
//!
//! Faults: loss, duplication, delay and reordering, partitions that heal, crashes with
//! restart from the persisted log, and Byzantine replicas ([`Behaviour`]: silent,
//! equivocating primary, conflicting votes, random state roots), and a scripted fault that
//! damages one replica's application state ([`Scripted::CorruptState`]; each replica's
//! application keeps a state root and reports it after checkpoints, and a correct replica
//! that reports a divergence without damage fails the run). A run has a fault phase, then a liveness phase
//! in which the network is clean and every crashed replica is back (Byzantine replicas stay
//! Byzantine). It checks safety throughout — no two different batches committed at one
//! sequence number at any correct replica, no request executed twice — and at the end
//! liveness — every request committed at every correct replica — and identical ledgers
//! (history digests and archives). A failing run returns an error naming its seed; the same
//! seed replays the same run.
//!
//! Validator set changes ([`crate::membership`]): `SimConfig::joiners` replicas start as
//! learners under the ids after the genesis ones, and `SimConfig::changes` are submitted
//! in turn, each approved by every validator of the set before it, once the previous one
//! is in effect at the submitting replica. A run with changes also requires every correct
//! validator of the final set to be in the final epoch; replicas the changes removed no
//! longer count for liveness (their ledgers are still checked as prefixes).
//!
//! Clients behave as deployed members do: each submits to its home replica only (its own
//! node's validator) and retries there, never to the others. Relaying is the replicas'
//! job. Homes are correct replicas that stay up (`SimConfig::homes` pins them).
//!
//! A test harness, compiled only with the crate's `sim` feature (the crate's own tests turn it
//! on), so it does not ship in the node.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_storage::consensus::ConsensusStore;
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::KvEngine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::membership::Reconfiguration;
use crate::message::{
    verify_messages, Available, Batch, CheckpointVote, Digest, Disseminate, Forward, Header, Holding, Message, Refs,
    ReplicaId, Request, RequestKey, Signed, StateVote, Vote,
};
use crate::replica::{parse_archive, Output, Recovered, Replica, Target};

/// How a Byzantine replica misbehaves. Each wraps an honest core and rewrites what it
/// sends, so it still follows the protocol well enough to be dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends nothing.
    Silent,
    /// As primary, sends a different batch for each sequence number to half the replicas.
    Equivocate,
    /// Votes and checkpoints for random digests, a different one to each peer.
    Conflicting,
    /// Squats other clients' request ids: every forward and pre-prepare it sends also
    /// carries requests of the same clients under their current and next ids with payloads
    /// of its own, ordered first when it is primary, and now and then it forwards such
    /// requests for random clients' ids (a censorship attempt on the de-duplication key;
    /// see [`crate::message::RequestKey`]).
    Squat,
    /// Withholds its parts (dissemination): sends each to just enough replicas for a
    /// certificate (the quorum with its own vote) and answers no fetch, so the others must
    /// fetch its parts from the rest of the holders when they are ordered.
    Withhold,
    /// As primary, names in every proposal one more part that no replica holds, under a
    /// certificate of its own vote and forged ones.
    Phantom,
}

/// The faults of one run.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Largest one-way delay (uniform from 1 ms; jitter reorders messages).
    pub delay_ms_max: u64,
    /// Number of partitions (each splits the replicas in two for a while).
    pub partitions: usize,
    /// Number of crash-restart events.
    pub crashes: usize,
    /// Byzantine replicas (at most f).
    pub byzantine: Vec<(ReplicaId, Behaviour)>,
    /// Scripted faults at fixed times (scenario tests).
    pub script: Vec<(u64, Scripted)>,
    /// Crashed replicas that stay down in the liveness phase (liveness is then checked on
    /// the others).
    pub keep_down: Vec<ReplicaId>,
}

/// A fault at a fixed time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    Crash(ReplicaId),
    Restart(ReplicaId),
    /// Replicas on one side; messages across the cut are lost.
    Partition(Vec<ReplicaId>),
    Heal,
    /// The replica's application state is damaged: its next batch leaves a different
    /// state root than the others'.
    CorruptState(ReplicaId),
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            delay_ms_max: 5,
            partitions: 0,
            crashes: 0,
            byzantine: Vec::new(),
            script: Vec::new(),
            keep_down: Vec::new(),
        }
    }

    /// Swarm testing: each fault is switched on or off at random, with random intensity,
    /// so different seeds explore different combinations (Groce et al., ISSTA 2012).
    pub fn swarm(n: usize, rng: &mut impl Rng) -> Self {
        let f = (n - 1) / 3;
        let mut faults = Self::none();
        if rng.gen_bool(0.5) {
            faults.loss = rng.gen_range(0.0..0.15);
        }
        if rng.gen_bool(0.3) {
            faults.duplicate = rng.gen_range(0.0..0.1);
        }
        faults.delay_ms_max = *[5u64, 20, 80].get(rng.gen_range(0..3)).expect("in range");
        if rng.gen_bool(0.3) {
            faults.partitions = rng.gen_range(1..=2);
        }
        if rng.gen_bool(0.4) {
            faults.crashes = rng.gen_range(1..=2);
        }
        if rng.gen_bool(0.5) {
            let count = rng.gen_range(1..=f);
            let mut ids: Vec<ReplicaId> = (0..n as ReplicaId).collect();
            for _ in 0..count {
                let id = ids.swap_remove(rng.gen_range(0..ids.len()));
                let b = [
                    Behaviour::Silent,
                    Behaviour::Equivocate,
                    Behaviour::Conflicting,
                    Behaviour::Withhold,
                    Behaviour::Phantom,
                ][rng.gen_range(0..5)];
                faults.byzantine.push((id, b));
            }
        }
        faults
    }
}

/// A wide-area network between data centers (issue: a consortium across sites). Replica
/// `i` sits at site `i mod sites`; each pair of sites gets a one-way delay drawn once per
/// run from `one_way_ms` (1 ms within a site); each message adds a uniform jitter of up
/// to `jitter_ms`; and each replica's uplink carries `uplink_mbit_s`, so a message waits
/// for those the replica sent before it (a primary sending a batch to 30 peers pays 30
/// serialisations). The replicas use [`Config::wan`] timing.
#[derive(Debug, Clone, Copy)]
pub struct Wan {
    pub sites: usize,
    pub one_way_ms: (u64, u64),
    pub jitter_ms: u64,
    pub uplink_mbit_s: u64,
}

impl Wan {
    /// Five sites, 20–150 ms one way, 10 ms of jitter, 1 Gbit/s uplinks.
    pub fn five_sites() -> Self {
        Self { sites: 5, one_way_ms: (20, 150), jitter_ms: 10, uplink_mbit_s: 1000 }
    }
}

/// One simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub n: usize,
    pub seed: u64,
    pub clients: usize,
    pub requests_per_client: usize,
    pub faults: Faults,
    /// Length of the fault phase (requests are submitted during it).
    pub fault_phase_ms: u64,
    /// Time the liveness phase may take.
    pub liveness_ms: u64,
    /// Pipeline window of the replicas.
    pub window_len: u64,
    pub checkpoint_interval: u64,
    /// Each client's home replica, by client index (cycled). Default: the correct replicas
    /// not kept down that every validator set holds, in turn.
    pub homes: Option<Vec<ReplicaId>>,
    /// Replicas that join after genesis, with the ids after the genesis `n` ones.
    pub joiners: usize,
    /// Validator set changes: (not before this time, the new set), epochs 1, 2, … in turn.
    pub changes: Vec<(u64, Vec<ReplicaId>)>,
    /// A wide-area network instead of the uniform 1..=`delay_ms_max` delays.
    pub wan: Option<Wan>,
    /// Requests per batch at most (small by default, so runs cover many batches).
    pub batch_len_max: usize,
    /// Dissemination apart from ordering ([`Config::dissemination`]); off runs the design
    /// before it, where the primary carries every batch.
    pub dissemination: bool,
}

impl SimConfig {
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            seed,
            clients: 3,
            requests_per_client: 40,
            faults: Faults::none(),
            fault_phase_ms: 4_000,
            liveness_ms: 120_000,
            window_len: 4,
            checkpoint_interval: 8,
            homes: None,
            joiners: 0,
            changes: Vec::new(),
            wan: None,
            batch_len_max: 8,
            dissemination: true,
        }
    }

    fn replica_config(&self, id: ReplicaId) -> Config {
        let mut c = match self.wan {
            Some(_) => Config::wan(self.n, id),
            None => Config::new(self.n, id),
        };
        c.checkpoint_interval = self.checkpoint_interval;
        c.watermark_span = 4 * self.checkpoint_interval;
        c.window_len = self.window_len.min(c.watermark_span);
        c.batch_len_max = self.batch_len_max;
        c.batch_bytes_max = 64 << 10;
        c.dissemination = self.dissemination;
        if self.wan.is_none() {
            c.batch_delay_ms = 2;
            c.view_change_timeout_ms = 400;
            c.retransmit_ms = 150;
            c.state_fetch_ms = 300;
        }
        c
    }
}

/// What a finished run observed.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    /// Highest sequence number executed by every correct replica.
    pub executed: u64,
    pub requests: usize,
    pub view_changes: u64,
    pub state_entries: u64,
    pub messages_sent: u64,
    pub messages_dropped_by_network: u64,
    pub restarts: u64,
    /// Virtual time when the last request committed everywhere.
    pub finished_ms: u64,
    /// Each replica at the end: its view, whether it is changing view, whether it follows a
    /// view without voting (`None` when down).
    pub final_state: Vec<Option<(u64, bool, bool)>>,
    /// (replica, batch) where a scripted fault damaged the application state.
    pub corrupted: Vec<(ReplicaId, u64)>,
    /// (replica, checkpoint) where a replica found its state root departed from a quorum's.
    pub state_divergences: Vec<(ReplicaId, u64)>,
    /// The highest checkpoint whose state root every correct replica shares with a quorum.
    pub state_agreed: u64,
    /// Requests executed (fresh, at some correct replica) that no client submitted: a
    /// squatter's.
    pub squatted_executed: usize,
    /// (reporter, blamed, reason): messages a correct replica found to prove their signer
    /// faulty. A correct replica is never blamed (the run fails).
    pub peer_faults: Vec<(ReplicaId, ReplicaId, &'static str)>,
    /// Parts correct replicas sent in answer to fetches (dissemination: a replica lacked a
    /// part a proposal named).
    pub parts_fetched: u64,
    /// Each replica's epoch at the end and whether it votes in it (`None` when down).
    pub epochs: Vec<Option<(u64, bool)>>,
    /// (replica, epoch, the checkpoint the change waited for) of every change executed.
    pub reconfigurations: Vec<(ReplicaId, u64, u64)>,
    /// Latency of each request: from its first submission to the moment f + 1 replicas
    /// replied (what a client waiting for f + 1 matching replies sees), sorted, in ms.
    pub latencies_ms: Vec<u64>,
    /// Requests per second of virtual time, from the first submission to the last request
    /// answered by f + 1 replicas.
    pub throughput_per_s: f64,
    /// For each scripted crash of the primary of the view then current: the time from the
    /// crash until 2f + 1 correct replicas entered a later view, in ms.
    pub elections_ms: Vec<u64>,
}

impl SimReport {
    /// The latency at quantile `q` (0..=1), in ms.
    pub fn latency_ms(&self, q: f64) -> u64 {
        let l = &self.latencies_ms;
        l.get(((l.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0)
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver { to: ReplicaId, bytes: Arc<Vec<u8>> },
    Tick { replica: ReplicaId, generation: u64 },
    Submit { client: usize, index: usize },
    Reconfigure { index: usize },
    Crash(ReplicaId),
    Restart(ReplicaId),
    Partition(Vec<ReplicaId>),
    Heal,
    CorruptState(ReplicaId),
}

struct Node {
    key: SigningKeypair,
    /// The replica's store (its memory engine survives crashes).
    store: ConsensusStore,
    replica: Option<Replica>,
    behaviour: Option<Behaviour>,
    tick_generation: u64,
    tick_at: u64,
    /// Requests executed (as fresh), by client, id and payload (not by the replicas'
    /// de-duplication key, which this oracle checks), and at which sequence number.
    executed: BTreeMap<(u64, u64, Vec<u8>), u64>,
    /// Digest delivered at each sequence number.
    delivered: BTreeMap<u64, Digest>,
    /// The application: a state root over the batches applied (a hash chain, as the
    /// ledger's), the last batch applied, and a scripted damage waiting to happen.
    app_root: Digest,
    app_applied: u64,
    corrupt_next: bool,
}

/// A deterministic simulation.
pub struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    order: u64,
    queue: BinaryHeap<std::cmp::Reverse<(u64, u64, Event)>>,
    nodes: Vec<Node>,
    keys: Vec<PublicKey>,
    /// Side of each replica while partitioned.
    partition: Option<BTreeSet<ReplicaId>>,
    faults_on: bool,
    /// Sequence number → digest, across correct replicas (the safety oracle).
    committed: BTreeMap<u64, Digest>,
    /// Replies per request: replica → sequence number.
    replies: BTreeMap<RequestKey, BTreeMap<ReplicaId, u64>>,
    /// The clients' own requests (a squatter's share their `(client, id)`).
    genuine: BTreeSet<(u64, u64, Vec<u8>)>,
    /// First submission of each client request, and when f + 1 replicas had replied.
    submitted_ms: BTreeMap<RequestKey, u64>,
    answered_ms: BTreeMap<RequestKey, u64>,
    /// WAN: one-way delay between sites, and when each replica's uplink is free (µs).
    site_delay_ms: Vec<Vec<u64>>,
    uplink_free_us: Vec<u64>,
    /// Crashes of the primary in office: (when, the view it led).
    primary_crashes: Vec<(u64, u64)>,
    /// When each correct replica first entered each view.
    entered: BTreeMap<u64, BTreeMap<ReplicaId, u64>>,
    report: SimReport,
}

/// The simulated wall clock at virtual time 0 (UNIX ms).
const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

/// A squatter's requests under the `(client, id)` of `seen` and of the next id, with a
/// payload of its own.
fn squats(seen: &[Request]) -> Vec<Request> {
    seen.iter()
        .filter(|r| r.client != u64::MAX)
        .flat_map(|r| [0, 1].map(|k| Request { client: r.client, id: r.id + k, payload: vec![0xee; 8] }))
        .collect()
}

fn err(seed: u64, what: String) -> String {
    format!("seed {seed}: {what} (replay with this seed)")
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let total = cfg.n + cfg.joiners;
        let keypairs: Vec<SigningKeypair> = (0..total).map(|_| SigningKeypair::generate(&mut rng)).collect();
        let keys: Vec<PublicKey> = keypairs.iter().map(|k| k.public()).collect();
        let genesis = keys[..cfg.n].to_vec();
        let byz: BTreeMap<ReplicaId, Behaviour> = cfg.faults.byzantine.iter().copied().collect();
        let nodes = keypairs
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let id = i as ReplicaId;
                let replica = if i < cfg.n {
                    Replica::new(cfg.replica_config(id), key.clone(), genesis.clone())
                } else {
                    Replica::joining(cfg.replica_config(id), key.clone(), genesis.clone())
                }
                .expect("valid config");
                let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
                Node {
                    key,
                    store: ConsensusStore::open(engine).expect("a memory store opens"),
                    replica: Some(replica),
                    behaviour: byz.get(&id).copied(),
                    tick_generation: 0,
                    tick_at: u64::MAX,
                    executed: BTreeMap::new(),
                    delivered: BTreeMap::new(),
                    app_root: [0; 32],
                    app_applied: 0,
                    corrupt_next: false,
                }
            })
            .collect();
        let report = SimReport { seed: cfg.seed, ..Default::default() };
        let site_delay_ms = match cfg.wan {
            Some(w) => {
                let pairs: Vec<(usize, usize)> =
                    (0..w.sites).flat_map(|a| (a + 1..w.sites).map(move |b| (a, b))).collect();
                let mut d = vec![vec![1u64; w.sites]; w.sites];
                for (a, b) in pairs {
                    let ms = rng.gen_range(w.one_way_ms.0..=w.one_way_ms.1);
                    (d[a][b], d[b][a]) = (ms, ms);
                }
                d
            }
            None => Vec::new(),
        };
        let uplink_free_us = vec![0; total];
        Self {
            submitted_ms: BTreeMap::new(),
            answered_ms: BTreeMap::new(),
            site_delay_ms,
            uplink_free_us,
            primary_crashes: Vec::new(),
            entered: BTreeMap::new(),
            cfg,
            rng,
            now: 0,
            order: 0,
            queue: BinaryHeap::new(),
            nodes,
            keys,
            partition: None,
            faults_on: true,
            committed: BTreeMap::new(),
            replies: BTreeMap::new(),
            genuine: BTreeSet::new(),
            report,
        }
    }

    fn schedule(&mut self, at: u64, e: Event) {
        self.order += 1;
        self.queue.push(std::cmp::Reverse((at, self.order, e)));
    }

    fn request(&self, client: usize, index: usize) -> Request {
        let mut payload = vec![0u8; 32];
        payload[..8].copy_from_slice(&(client as u64).to_be_bytes());
        payload[8..16].copy_from_slice(&(index as u64).to_be_bytes());
        Request { client: client as u64, id: index as u64, payload }
    }

    /// Runs the whole scenario; `Err` names the seed and what failed.
    pub fn run(mut self) -> Result<SimReport, String> {
        let seed = self.cfg.seed;
        let n = self.cfg.n;
        self.genuine = (0..self.cfg.clients)
            .flat_map(|c| (0..self.cfg.requests_per_client).map(move |i| (c, i)))
            .map(|(c, i)| {
                let r = self.request(c, i);
                (r.client, r.id, r.payload)
            })
            .collect();
        for r in 0..self.nodes.len() {
            self.reschedule_tick(r as ReplicaId);
        }
        for (index, (at, _)) in self.cfg.changes.clone().into_iter().enumerate() {
            self.schedule(at, Event::Reconfigure { index });
        }
        // Requests, spread over the fault phase.
        for c in 0..self.cfg.clients {
            for i in 0..self.cfg.requests_per_client {
                let at = self.rng.gen_range(0..self.cfg.fault_phase_ms);
                self.schedule(at, Event::Submit { client: c, index: i });
            }
        }
        let faults = self.cfg.faults.clone();
        let byz: BTreeSet<ReplicaId> = faults.byzantine.iter().map(|(r, _)| *r).collect();
        for _ in 0..faults.partitions {
            let start = self.rng.gen_range(0..self.cfg.fault_phase_ms);
            let len = self.rng.gen_range(200..1500);
            let side: Vec<ReplicaId> = (0..self.nodes.len() as ReplicaId).filter(|_| self.rng.gen_bool(0.5)).collect();
            self.schedule(start, Event::Partition(side));
            self.schedule((start + len).min(self.cfg.fault_phase_ms), Event::Heal);
        }
        let honest: Vec<ReplicaId> = (0..n as ReplicaId).filter(|r| !byz.contains(r)).collect();
        for _ in 0..faults.crashes {
            let r = honest[self.rng.gen_range(0..honest.len())];
            let start = self.rng.gen_range(0..self.cfg.fault_phase_ms);
            let down = self.rng.gen_range(100..2000);
            self.schedule(start, Event::Crash(r));
            self.schedule((start + down).min(self.cfg.fault_phase_ms), Event::Restart(r));
        }
        for (at, s) in &faults.script {
            let e = match s {
                Scripted::Crash(r) => Event::Crash(*r),
                Scripted::Restart(r) => Event::Restart(*r),
                Scripted::Partition(side) => Event::Partition(side.clone()),
                Scripted::Heal => Event::Heal,
                Scripted::CorruptState(r) => Event::CorruptState(*r),
            };
            self.schedule(*at, e);
        }
        let end = self.cfg.fault_phase_ms + self.cfg.liveness_ms;
        let mut liveness_started = false;
        while let Some(std::cmp::Reverse((at, _, event))) = self.queue.pop() {
            if !liveness_started && at >= self.cfg.fault_phase_ms {
                liveness_started = true;
                self.start_liveness_phase();
            }
            if at > end {
                break;
            }
            self.now = at;
            self.handle(event).map_err(|e| err(seed, e))?;
            if liveness_started && self.all_done() {
                self.report.finished_ms = self.now;
                break;
            }
        }
        if !self.all_done() {
            let missing = self.first_missing();
            return Err(err(seed, format!("liveness: not every request committed everywhere by {end} ms ({missing})")));
        }
        self.check_ledgers().map_err(|e| err(seed, e))?;
        self.report.executed = self
            .nodes
            .iter()
            .filter(|n| n.behaviour.is_none())
            .filter_map(|n| n.replica.as_ref().map(|r| r.last_executed()))
            .min()
            .unwrap_or(0);
        for node in &self.nodes {
            if let (Some(r), None) = (&node.replica, node.behaviour) {
                self.report.view_changes += r.stats().view_changes;
                self.report.state_entries += r.stats().state_entries_applied;
            }
        }
        self.report.requests = self.cfg.clients * self.cfg.requests_per_client;
        self.report.final_state = self
            .nodes
            .iter()
            .map(|n| n.replica.as_ref().map(|r| (r.view(), r.in_view_change(), r.is_following())))
            .collect();
        self.report.epochs =
            self.nodes.iter().map(|n| n.replica.as_ref().map(|r| (r.membership().epoch, r.is_member()))).collect();
        self.measure();
        self.report.state_agreed = self
            .nodes
            .iter()
            .filter(|n| n.behaviour.is_none())
            .filter_map(|n| n.replica.as_ref().map(|r| r.agreed_root_seq()))
            .min()
            .unwrap_or(0);
        Ok(self.report)
    }

    /// Latencies, throughput and election times (see [`SimReport`]).
    fn measure(&mut self) {
        let mut latencies: Vec<u64> = Vec::new();
        let (mut first, mut last) = (u64::MAX, 0);
        for (c, i) in (0..self.cfg.clients).flat_map(|c| (0..self.cfg.requests_per_client).map(move |i| (c, i))) {
            let key = self.request(c, i).key();
            if let (Some(s), Some(a)) = (self.submitted_ms.get(&key), self.answered_ms.get(&key)) {
                latencies.push(a.saturating_sub(*s));
                first = first.min(*s);
                last = last.max(*a);
            }
        }
        latencies.sort_unstable();
        if last > first {
            self.report.throughput_per_s = latencies.len() as f64 * 1000.0 / (last - first) as f64;
        }
        self.report.latencies_ms = latencies;
        let quorum = 2 * ((self.cfg.n - 1) / 3) + 1;
        for (crashed_at, view) in self.primary_crashes.clone() {
            let mut entered: BTreeMap<ReplicaId, u64> = BTreeMap::new();
            for (_, replicas) in self.entered.range(view + 1..) {
                for (r, t) in replicas {
                    if *t >= crashed_at {
                        let e = entered.entry(*r).or_insert(*t);
                        *e = (*e).min(*t);
                    }
                }
            }
            let mut times: Vec<u64> = entered.into_values().collect();
            times.sort_unstable();
            if let Some(t) = times.get(quorum - 1) {
                self.report.elections_ms.push(t - crashed_at);
            }
        }
    }

    fn start_liveness_phase(&mut self) {
        self.faults_on = false;
        self.partition = None;
        for r in 0..self.nodes.len() as ReplicaId {
            if self.nodes[r as usize].replica.is_none() && !self.cfg.faults.keep_down.contains(&r) {
                self.restart(r);
            }
        }
    }

    /// The replica client `client` submits to.
    fn home(&self, client: usize) -> ReplicaId {
        if let Some(homes) = self.cfg.homes.as_ref().filter(|h| !h.is_empty()) {
            return homes[client % homes.len()];
        }
        let byz: BTreeSet<ReplicaId> = self.cfg.faults.byzantine.iter().map(|(r, _)| *r).collect();
        let eligible: Vec<ReplicaId> = (0..self.cfg.n as ReplicaId)
            .filter(|r| !byz.contains(r) && !self.cfg.faults.keep_down.contains(r))
            .filter(|r| self.cfg.changes.iter().all(|(_, set)| set.contains(r)))
            .collect();
        eligible[client % eligible.len()]
    }

    /// The validators of the final set (genesis' when there are no changes).
    fn final_set(&self) -> Vec<ReplicaId> {
        self.cfg.changes.last().map_or_else(|| (0..self.cfg.n as ReplicaId).collect(), |(_, set)| set.clone())
    }

    /// The reconfiguration request of change `index` (epoch `index + 1`), approved by every
    /// validator of the set before it.
    fn reconfiguration(&self, index: usize) -> Request {
        let members: Vec<(ReplicaId, PublicKey)> =
            self.cfg.changes[index].1.iter().map(|id| (*id, self.keys[*id as usize])).collect();
        let before: Vec<ReplicaId> =
            if index == 0 { (0..self.cfg.n as ReplicaId).collect() } else { self.cfg.changes[index - 1].1.clone() };
        let epoch = index as u64 + 1;
        let approvals = before
            .iter()
            .map(|id| Reconfiguration::approve(&self.nodes[*id as usize].key, *id, epoch, &members, &[]))
            .collect();
        Reconfiguration { epoch, members, endpoints: Vec::new(), approvals }.request()
    }

    fn client_done(&self, client: usize, index: usize) -> bool {
        let f = (self.cfg.n - 1) / 3;
        self.replies.get(&self.request(client, index).key()).is_some_and(|r| r.len() > f)
    }

    fn all_done(&self) -> bool {
        let total = self.cfg.clients * self.cfg.requests_per_client;
        let last_epoch = self.cfg.changes.len() as u64;
        let members = self.final_set();
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.behaviour.is_none() && !self.cfg.faults.keep_down.contains(&(*i as ReplicaId)))
            .filter(|(i, _)| members.contains(&(*i as ReplicaId)))
            .all(|(_, n)| {
                n.replica.as_ref().is_some_and(|r| r.membership().epoch == last_epoch && r.is_member())
                    && self.genuine.len() == total
                    && self.genuine.iter().all(|k| n.executed.contains_key(k))
            })
    }

    fn first_missing(&self) -> String {
        let mut out = format!("faults {:?}; window {}", self.cfg.faults, self.cfg.window_len);
        for (i, n) in self.nodes.iter().enumerate() {
            let state = n.replica.as_ref().map_or("down".to_string(), |r| {
                format!(
                    "epoch {} member {} view {} changing {} executed {} stable {} pending {} dropped {:?}",
                    r.membership().epoch,
                    r.is_member(),
                    r.view(),
                    r.in_view_change(),
                    r.last_executed(),
                    r.stable_seq(),
                    r.pending_len(),
                    r.stats().dropped
                ) + &r.pending_report(8)
            });
            out.push_str(&format!("\n  replica {i} ({:?}): {} requests; {state}", n.behaviour, n.executed.len()));
        }
        out
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        // Every replica reads a wall clock a little off from the others' (NTP-grade skew).
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(r) = node.replica.as_mut() {
                r.observe_wall_clock(SIM_EPOCH_MS + self.now + 37 * i as u64);
            }
        }
        match event {
            Event::Deliver { to, bytes } => {
                let Some(replica) = self.nodes[to as usize].replica.as_mut() else { return Ok(()) };
                // Decode and verify exactly as the engine does.
                let Ok(msg) = Message::from_bytes(&bytes) else { return Ok(()) };
                if !verify_messages(std::slice::from_ref(&msg), &self.keys)[0] {
                    return Err(format!("a signature failed to verify at replica {to}"));
                }
                let before: u64 = replica.stats().dropped.values().sum();
                if std::env::var("SIM_TRACE_ALL").is_ok() {
                    eprintln!("t={} replica {to} <- {:?}", self.now, msg);
                }
                let name = msg.name();
                let out = replica.receive(self.now, msg);
                if std::env::var("SIM_TRACE").is_ok() && replica.stats().dropped.values().sum::<u64>() > before {
                    eprintln!("t={} replica {to} dropped a {name}: {:?}", self.now, replica.stats().dropped);
                }
                self.perform(to, out)?;
            }
            Event::Tick { replica, generation } => {
                let node = &mut self.nodes[replica as usize];
                if node.tick_generation != generation {
                    return Ok(());
                }
                node.tick_at = u64::MAX;
                let Some(r) = node.replica.as_mut() else { return Ok(()) };
                let out = r.tick(self.now);
                self.perform(replica, out)?;
            }
            Event::Submit { client, index } => {
                if self.client_done(client, index) {
                    return Ok(());
                }
                let home = self.home(client);
                let request = self.request(client, index);
                self.submitted_ms.entry(request.key()).or_insert(self.now);
                if let Some(r) = self.nodes[home as usize].replica.as_mut() {
                    // A refusal (duplicate: still pending there) changes nothing.
                    if let Ok(out) = r.submit(self.now, request) {
                        self.perform(home, out)?;
                    }
                }
                // A member's node that hears nothing submits again, to its own replica (a
                // restarted one lost what was pending).
                let at = self.now + 1000;
                self.schedule(at, Event::Submit { client, index });
            }
            Event::Reconfigure { index } => {
                let request = self.reconfiguration(index);
                let f = (self.cfg.n - 1) / 3;
                if self.replies.get(&request.key()).is_some_and(|r| r.len() > f) {
                    return Ok(());
                }
                let home = self.home(index);
                let mut retry = 1000;
                if let Some(r) = self.nodes[home as usize].replica.as_mut() {
                    if r.membership().epoch < index as u64 {
                        // The change before is not in effect there yet.
                        retry = 100;
                    } else if let Ok(out) = r.submit(self.now, request) {
                        self.perform(home, out)?;
                    }
                }
                let at = self.now + retry;
                self.schedule(at, Event::Reconfigure { index });
            }
            Event::Crash(r) => {
                if self.faults_on {
                    if let Some(replica) = self.nodes[r as usize].replica.take() {
                        if replica.is_primary() && !replica.in_view_change() {
                            self.primary_crashes.push((self.now, replica.view()));
                        }
                    }
                }
            }
            Event::Restart(r) => {
                if self.nodes[r as usize].replica.is_none() {
                    self.restart(r);
                }
            }
            Event::Partition(side) => {
                if self.faults_on {
                    self.partition = Some(side.into_iter().collect());
                }
            }
            Event::Heal => self.partition = None,
            Event::CorruptState(r) => self.nodes[r as usize].corrupt_next = true,
        }
        Ok(())
    }

    fn restart(&mut self, r: ReplicaId) {
        self.report.restarts += 1;
        let node = &mut self.nodes[r as usize];
        let horizon = self.cfg.replica_config(r).dedup_horizon;
        let rec = Recovered::read(&node.store, horizon).expect("the memory store reads");
        let cfg = self.cfg.replica_config(r);
        let (replica, out) = Replica::recover(cfg, node.key.clone(), self.keys[..self.cfg.n].to_vec(), rec, self.now)
            .expect("own store recovers");
        node.replica = Some(replica);
        // A fresh start: no tick is pending for the new instance.
        node.tick_generation += 1;
        node.tick_at = u64::MAX;
        if let Err(e) = self.perform(r, out) {
            panic!("{e}");
        }
    }

    /// Performs a step's output: persist, check what was delivered, send, reschedule.
    fn perform(&mut self, from: ReplicaId, out: Output) -> Result<(), String> {
        let node = &mut self.nodes[from as usize];
        let store = &node.store;
        if !out.persist.is_empty() {
            store.write(&out.persist).map_err(|e| format!("replica {from}: store write failed: {e}"))?;
        }
        let mut replies = Vec::new();
        for (peer, from_seq) in &out.serve_state {
            let entries = store
                .committed_range(*from_seq, u64::MAX, 32)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(|(_, b)| parse_archive(&b).ok().map(|a| a.entry))
                .collect();
            let reply = node.replica.as_ref().expect("serving replica is up").state_reply(entries);
            replies.push((*peer, Arc::new(reply.to_bytes())));
        }
        for (peer, bytes) in replies {
            self.transmit(from, peer, bytes);
        }
        let node = &mut self.nodes[from as usize];
        let correct = node.behaviour.is_none();
        // A replica that went back from a lone view change votes for nothing until the
        // consortium reaches the view it left: what keeps its VIEW-CHANGE true.
        if node.replica.as_ref().is_some_and(|r| r.is_following()) {
            if let Some((_, m)) = out
                .send
                .iter()
                .find(|(_, m)| matches!(**m, Message::Vote(_) | Message::PrePrepare(..) | Message::NewView(_)))
            {
                return Err(format!("replica {from} sent a {} while following", m.name()));
            }
        }
        if std::env::var("SIM_TRACE").is_ok() {
            for e in &out.events {
                let r = node.replica.as_ref().map(|r| (r.last_executed(), r.pending_len()));
                eprintln!("t={} replica {from} {e:?} (executed, pending) {r:?}", self.now);
            }
        }
        for d in &out.deliver {
            let seq = d.entry.seq;
            let digest = d.entry.batch.digest();
            if std::env::var("SIM_TRACE").is_ok() {
                eprintln!(
                    "t={} replica {from} delivers {seq} view {} digest {} ({} requests)",
                    self.now,
                    d.entry.view,
                    crate::message::short(&digest),
                    d.entry.batch.requests().len()
                );
            }
            if let Some(prev) = node.delivered.insert(seq, digest) {
                if prev != digest {
                    return Err(format!("replica {from} delivered two batches at sequence {seq}"));
                }
            }
            for &i in &d.fresh {
                let r = &d.entry.batch.requests()[i];
                let identity = (r.client, r.id, r.payload.clone());
                if !self.genuine.contains(&identity) && r.client != u64::MAX {
                    self.report.squatted_executed += 1;
                }
                if let Some(s) = node.executed.insert(identity, seq) {
                    return Err(format!("replica {from} executed request {}:{} twice ({s} and {seq})", r.client, r.id));
                }
            }
            if correct {
                if let Some(prev) = self.committed.insert(seq, digest) {
                    if prev != digest {
                        return Err(format!("safety: two different batches committed at sequence {seq}"));
                    }
                }
            }
        }
        // The application applies each batch once, in order, and reports its state root
        // after checkpoints.
        let mut attest = Vec::new();
        for d in &out.deliver {
            let seq = d.entry.seq;
            if seq <= node.app_applied {
                continue;
            }
            node.app_root =
                crate::message::hash("sim-app", &[&node.app_root, &seq.to_be_bytes(), &d.entry.batch.digest()]);
            if std::mem::take(&mut node.corrupt_next) {
                node.app_root = crate::message::hash("sim-app-damage", &[&node.app_root]);
                self.report.corrupted.push((from, seq));
            }
            node.app_applied = seq;
            if seq % self.cfg.checkpoint_interval == 0 {
                attest.push((seq, node.app_root));
            }
        }
        for e in &out.events {
            if let crate::replica::Event::Reconfiguration { epoch, after_seq, .. } = e {
                self.report.reconfigurations.push((from, *epoch, *after_seq));
            }
            if let crate::replica::Event::ReconfigurationRefused { seq, reason } = e {
                // A squatter's payload under the change's request number fails to decode;
                // any other refusal of the harness' changes is a bug.
                if correct && !reason.starts_with("undecodable") {
                    return Err(format!("replica {from} refused the reconfiguration at {seq}: {reason}"));
                }
            }
            if let crate::replica::Event::PeerFault { peer, reason } = e {
                if correct && self.nodes[*peer as usize].behaviour.is_none() {
                    return Err(format!("replica {from} blamed correct replica {peer}: {reason}"));
                }
                self.report.peer_faults.push((from, *peer, reason));
            }
            if let crate::replica::Event::StateDiverged(d) = e {
                self.report.state_divergences.push((from, d.seq));
                let damaged = self.report.corrupted.iter().any(|(r, s)| *r == from && *s <= d.seq);
                if correct && !damaged {
                    return Err(format!("replica {from} reported a state divergence at {} with no damage", d.seq));
                }
            }
        }
        let f = (self.cfg.n - 1) / 3;
        for reply in &out.replies {
            let replied = self.replies.entry(reply.key).or_default();
            replied.insert(from, reply.seq);
            if replied.len() > f {
                self.answered_ms.entry(reply.key).or_insert(self.now);
            }
        }
        if correct {
            for e in &out.events {
                if let crate::replica::Event::ViewEntered(v) = e {
                    self.entered.entry(*v).or_default().entry(from).or_insert(self.now);
                }
            }
        }
        for (target, msg) in out.send {
            let msgs = self.byzantine_rewrite(from, target, &msg);
            for (to, m) in msgs {
                if let Message::BatchReply(b) = &m {
                    if b.body.batch.is_part() && self.nodes[from as usize].behaviour.is_none() {
                        self.report.parts_fetched += 1;
                    }
                }
                let bytes = Arc::new(m.to_bytes());
                self.transmit(from, to, bytes);
            }
        }
        self.reschedule_tick(from);
        for (seq, root) in attest {
            let Some(r) = self.nodes[from as usize].replica.as_mut() else { break };
            let out = r.attest(self.now, seq, root);
            self.perform(from, out)?;
        }
        Ok(())
    }

    /// What a (possibly Byzantine) replica actually sends for one message of its core.
    fn byzantine_rewrite(&mut self, from: ReplicaId, target: Target, msg: &Arc<Message>) -> Vec<(ReplicaId, Message)> {
        let targets: Vec<ReplicaId> = match target {
            Target::All => self.nodes[from as usize].replica.as_ref().map_or(Vec::new(), |r| r.peers().collect()),
            Target::One(r) => vec![r],
        };
        let behaviour = self.nodes[from as usize].behaviour;
        let key = self.nodes[from as usize].key.clone();
        match (behaviour, msg.as_ref()) {
            (None, _) => targets.into_iter().map(|t| (t, (**msg).clone())).collect(),
            (Some(Behaviour::Silent), _) => Vec::new(),
            (Some(Behaviour::Squat), Message::Disseminate(d)) => {
                let mut requests = squats(d.body.part.requests());
                requests.extend(d.body.part.requests().iter().cloned());
                let part = Arc::new(Batch::new(requests));
                let forged = Message::Disseminate(Signed::sign(&key, from, Disseminate { part }));
                targets.into_iter().map(|t| (t, forged.clone())).collect()
            }
            (Some(Behaviour::Withhold), Message::Disseminate(_)) => {
                let quorum = self.nodes[from as usize].replica.as_ref().map_or(0, |r| r.membership().quorum());
                targets.into_iter().take(quorum.saturating_sub(1)).map(|t| (t, (**msg).clone())).collect()
            }
            (Some(Behaviour::Withhold), Message::BatchReply(_)) => Vec::new(),
            (Some(Behaviour::Phantom), Message::Propose(h, refs)) => {
                let quorum = self.nodes[from as usize].replica.as_ref().map_or(0, |r| r.membership().quorum());
                let digest: Digest = self.rng.gen();
                let own = Signed::sign(&key, from, Holding { digest });
                let mut votes = vec![own.clone()];
                for other in (0..self.cfg.n as ReplicaId).filter(|r| *r != from).take(quorum.saturating_sub(1)) {
                    votes.push(Signed { from: other, ..own.clone() });
                }
                let mut refs = (**refs).clone();
                refs.parts.push(Available { digest, votes });
                let forged = Message::Propose(h.clone(), Arc::new(refs));
                targets.into_iter().map(|t| (t, forged.clone())).collect()
            }
            (Some(Behaviour::Equivocate), Message::Propose(h, refs)) => {
                // The same parts under another time: another batch, for half the replicas.
                let parts: Option<Vec<Arc<Batch>>> = self.nodes[from as usize]
                    .replica
                    .as_ref()
                    .and_then(|r| refs.parts.iter().map(|c| r.held_part(&c.digest)).collect());
                let other = parts.and_then(|p| {
                    let p: Vec<&Batch> = p.iter().map(|b| b.as_ref()).collect();
                    Batch::join(refs.time_ms + 1, &p)
                });
                targets
                    .into_iter()
                    .map(|t| match &other {
                        Some(other) if t % 2 == 1 => {
                            let header = Signed::sign(&key, from, Header { digest: other.digest(), ..h.body });
                            let refs = Refs { time_ms: refs.time_ms + 1, parts: refs.parts.clone() };
                            (t, Message::Propose(header, Arc::new(refs)))
                        }
                        _ => (t, (**msg).clone()),
                    })
                    .collect()
            }
            (Some(Behaviour::Squat), Message::Forward(fw)) => {
                let mut requests = squats(&fw.body.requests);
                requests.extend(fw.body.requests.iter().cloned());
                let forged = Message::Forward(Signed::sign(&key, from, Forward { requests }));
                targets.into_iter().map(|t| (t, forged.clone())).collect()
            }
            (Some(Behaviour::Squat), Message::PrePrepare(h, batch)) => {
                let mut requests = squats(batch.requests());
                requests.extend(batch.requests().iter().cloned());
                let other = Arc::new(Batch::with_time(batch.time_ms(), requests));
                let header = Signed::sign(&key, from, Header { digest: other.digest(), ..h.body });
                let forged = Message::PrePrepare(header, other);
                targets.into_iter().map(|t| (t, forged.clone())).collect()
            }
            (Some(Behaviour::Equivocate), Message::PrePrepare(h, batch)) => targets
                .into_iter()
                .map(|t| {
                    if t % 2 == 0 {
                        (t, (**msg).clone())
                    } else {
                        let mut requests = batch.requests().to_vec();
                        requests.reverse();
                        requests.push(Request { client: u64::MAX, id: h.body.seq, payload: vec![t; 8] });
                        let other = Arc::new(Batch::with_time(batch.time_ms(), requests));
                        let header = Signed::sign(&key, from, Header { digest: other.digest(), ..h.body });
                        (t, Message::PrePrepare(header, other))
                    }
                })
                .collect(),
            (Some(Behaviour::Conflicting), Message::Vote(v)) => targets
                .into_iter()
                .map(|t| {
                    let digest: Digest = self.rng.gen();
                    let body = Vote { digest, ..v.body };
                    (t, Message::Vote(Signed::sign(&key, from, body)))
                })
                .collect(),
            (Some(Behaviour::Conflicting), Message::Checkpoint(c)) => targets
                .into_iter()
                .map(|t| {
                    let digest: Digest = self.rng.gen();
                    (t, Message::Checkpoint(Signed::sign(&key, from, CheckpointVote { digest, ..c.body })))
                })
                .collect(),
            (Some(Behaviour::Conflicting), Message::StateRoot(v)) => targets
                .into_iter()
                .map(|t| {
                    let root: Digest = self.rng.gen();
                    (t, Message::StateRoot(Signed::sign(&key, from, StateVote { root, ..v.body })))
                })
                .collect(),
            (Some(Behaviour::Squat), _) => {
                // Request numbers are predictable: now and then it forwards squats of
                // random clients' ids besides what it sends.
                let mut out: Vec<(ReplicaId, Message)> = targets.iter().map(|t| (*t, (**msg).clone())).collect();
                if self.rng.gen_bool(0.1) {
                    let (clients, per_client) = (self.cfg.clients as u64, self.cfg.requests_per_client as u64);
                    let seen: Vec<Request> = (0..4)
                        .map(|_| Request {
                            client: self.rng.gen_range(0..clients),
                            id: self.rng.gen_range(0..per_client),
                            payload: Vec::new(),
                        })
                        .collect();
                    let forged = if self.cfg.dissemination {
                        let part = Arc::new(Batch::new(squats(&seen)));
                        Message::Disseminate(Signed::sign(&key, from, Disseminate { part }))
                    } else {
                        Message::Forward(Signed::sign(&key, from, Forward { requests: squats(&seen) }))
                    };
                    out.extend(targets.into_iter().map(|t| (t, forged.clone())));
                }
                out
            }
            (Some(_), _) => targets.into_iter().map(|t| (t, (**msg).clone())).collect(),
        }
    }

    fn transmit(&mut self, from: ReplicaId, to: ReplicaId, bytes: Arc<Vec<u8>>) {
        self.report.messages_sent += 1;
        if let Some(side) = &self.partition {
            if side.contains(&from) != side.contains(&to) {
                self.report.messages_dropped_by_network += 1;
                return;
            }
        }
        let (loss, dup, delay_max) = if self.faults_on {
            (self.cfg.faults.loss, self.cfg.faults.duplicate, self.cfg.faults.delay_ms_max)
        } else {
            (0.0, 0.0, 5)
        };
        if loss > 0.0 && self.rng.gen_bool(loss) {
            self.report.messages_dropped_by_network += 1;
            return;
        }
        let copies = if dup > 0.0 && self.rng.gen_bool(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = match self.cfg.wan {
                Some(w) => {
                    // The sender's uplink serialises its messages in order, then the
                    // sites' one-way delay and jitter.
                    let now_us = self.now * 1000;
                    let start = self.uplink_free_us[from as usize].max(now_us);
                    let done = start + (bytes.len() as u64 * 8).div_ceil(w.uplink_mbit_s.max(1));
                    self.uplink_free_us[from as usize] = done;
                    let (a, b) = (from as usize % w.sites, to as usize % w.sites);
                    done.div_ceil(1000) + self.site_delay_ms[a][b] + self.rng.gen_range(0..=w.jitter_ms)
                }
                None => self.now + self.rng.gen_range(1..=delay_max.max(1)),
            };
            self.schedule(at, Event::Deliver { to, bytes: bytes.clone() });
        }
    }

    fn reschedule_tick(&mut self, r: ReplicaId) {
        let node = &mut self.nodes[r as usize];
        let Some(replica) = node.replica.as_ref() else { return };
        let at = replica.next_deadline_ms().max(self.now + 1);
        if at < node.tick_at {
            node.tick_generation += 1;
            node.tick_at = at;
            let generation = node.tick_generation;
            self.schedule(at, Event::Tick { replica: r, generation });
        }
    }

    /// Identical ledgers: every correct replica's archive agrees, entry by entry, with the
    /// same history digests; its batches are stored once and swept behind the stable
    /// checkpoint.
    fn check_ledgers(&self) -> Result<(), String> {
        let mut reference: Option<(ReplicaId, BTreeMap<u64, Vec<u8>>)> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.behaviour.is_some() {
                continue;
            }
            let archive: BTreeMap<u64, Vec<u8>> =
                node.store.committed_range(0, u64::MAX, usize::MAX).map_err(|e| e.to_string())?.into_iter().collect();
            let last = node.replica.as_ref().map_or(0, |r| r.last_executed());
            if let Some(&gap) = (1..=last).find(|s| !archive.contains_key(s)).as_ref() {
                return Err(format!("replica {i} has no archived entry at {gap}"));
            }
            // Each batch stored once (reading the archive above joined every entry with
            // its batch), and none left behind that the stable checkpoint swept past.
            let stable = node.store.stable_checkpoint().map_err(|e| e.to_string())?.map_or(0, |(s, _)| s);
            let swept = stable.min(node.store.last_committed().map_err(|e| e.to_string())?.unwrap_or(0));
            for (seq, digest) in node.store.batch_digests(0, swept + 1).map_err(|e| e.to_string())? {
                if node.store.committed_batch(seq).map_err(|e| e.to_string())? != Some(digest) {
                    return Err(format!("replica {i} keeps a batch at {seq} that no archived entry refers to"));
                }
            }
            match &reference {
                None => reference = Some((i as ReplicaId, archive)),
                Some((j, other)) => {
                    for (seq, bytes) in &archive {
                        if let Some(o) = other.get(seq) {
                            let a = parse_archive(bytes).map_err(|e| e.to_string())?;
                            let b = parse_archive(o).map_err(|e| e.to_string())?;
                            if a.history != b.history
                                || a.time_ms != b.time_ms
                                || a.entry.batch.digest() != b.entry.batch.digest()
                            {
                                return Err(format!("ledgers differ at {seq} between replicas {i} and {j}"));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs one seed with swarm-randomised faults for `n` replicas.
pub fn run_swarm(n: usize, seed: u64) -> Result<SimReport, String> {
    Sim::new(swarm_config(n, seed)).run()
}

/// The configuration of a swarm run: faults and pipeline window drawn from the seed.
pub fn swarm_config(n: usize, seed: u64) -> SimConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4152_4d00);
    let mut cfg = SimConfig::new(n, seed);
    cfg.faults = Faults::swarm(n, &mut rng);
    cfg.window_len = [1u64, 4, 8][rng.gen_range(0..3)];
    cfg
}

/// Runs one seed with swarm-randomised faults while the validator set changes: four
/// genesis validators, a fifth joins, then one of the first four (at random, Byzantine or
/// not) is removed.
pub fn run_swarm_reconfig(seed: u64) -> Result<SimReport, String> {
    Sim::new(swarm_reconfig_config(seed)).run()
}

/// The configuration of a swarm run with validator set changes, drawn from the seed.
pub fn swarm_reconfig_config(seed: u64) -> SimConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5245_434f_4e46);
    let mut cfg = SimConfig::new(4, seed);
    cfg.faults = Faults::swarm(4, &mut rng);
    cfg.window_len = [1u64, 4, 8][rng.gen_range(0..3)];
    cfg.joiners = 1;
    let join_at = rng.gen_range(200..1_500);
    let removed: ReplicaId = rng.gen_range(0..4);
    let leave_at = join_at + rng.gen_range(500..2_000);
    cfg.changes = vec![(join_at, vec![0, 1, 2, 3, 4]), (leave_at, (0..5).filter(|r| *r != removed).collect())];
    cfg
}
