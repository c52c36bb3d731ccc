//! Consensus suite: n replicas in one process on loopback QUIC with mutual TLS, RocksDB
//! logs synced on every group commit, 256-byte transactions submitted at the primary.
//!
//! For each offered load (open loop: chunks of requests every millisecond) and at
//! saturation (closed loop: a fixed number of chunks in flight) it reports committed
//! transactions/s and the p50/p99 commit latency (submission to execution at the primary),
//! with the pipeline window at 1 and at its default; the window-1 run is the baseline, so
//! the ratio is what pipelining buys. Each point also reports where the cost goes: CPU
//! seconds per 1,000 committed transactions (the whole process, every replica) and bytes
//! written to storage per transaction at one replica (`/proc/self`). `BENCH_CONSENSUS_POINT=<n>:<window>:<offered|max>`
//! runs one point alone (for a profiler).
//!
//! The request check (also alone with `BENCH_CONSENSUS_CHECK=1`): what validators spend
//! on the requests their peers forward, batch-verified against one at a time.
//!
//! The signed point (also alone with `BENCH_CONSENSUS_SIGNED=1`): members' signed
//! transactions entering at a backup and batch-verified where they arrive (with
//! dissemination, at every other replica as a part), against the same requests unchecked,
//! in the same run.
//!
//! Dissemination (also alone with `BENCH_CONSENSUS_DISSEMINATION=1`): clients at every
//! replica in turn, dissemination apart from ordering against forwarding to the primary.
//!
//! The ledger's apply (also alone with `BENCH_CONSENSUS_APPLY=1`): execution behind
//! ordering, members' signed transactions applied in committed batches to a ledger on
//! RocksDB, with the signature checks spread over every core against one core (the
//! baseline), and pipelined as a validator applies (the next batches' signatures checked
//! while one executes) against the same unpipelined, in the same run; beside the ordering
//! figures above it says whether execution keeps up.
//!
//! Ordering plus execution (also alone with `BENCH_CONSENSUS_EXECUTION=1`): members'
//! signed transactions ordered alone, then with every replica applying them to its own
//! ledger as a validator does; the slowest ledger's applied rate against ordering alone.
//!
//! The overload point (also alone with `BENCH_CONSENSUS_OVERLOAD=1`): n = 4 at the
//! default window, the closed-loop peak, then twice the peak offered open-loop, with
//! admission control off (every request queued, the behaviour before it) and on; committed
//! throughput and p99 at 2x are reported against the same cluster's peak.
//!
//! With `BENCH_CONSENSUS_FORWARDING=1` the overload point forwards requests to the primary
//! (`Config::dissemination` off, the design before) instead of disseminating them.
//! `BENCH_CONSENSUS_ADMISSION=<requests>` sets the admission bound where admission control
//! is on (default `Config::admission_len_max`, with 512 bytes a request).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dualchain_consensus::engine::{Engine, RequestCheck};
use dualchain_consensus::local::LocalCluster;
use dualchain_consensus::metrics::Metrics;
use dualchain_consensus::{Config, Delivered, Request};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_ledger::{Committed, ToApply};
use dualchain_progress::Progress;
use dualchain_storage::rocks::RocksConfig;
use rand::SeedableRng;

use crate::measure::{ops_per_second, ProcessCounters, Record};

const PAYLOAD_LEN: usize = 256;
/// Requests per submission chunk (a gateway's batch).
const CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, Default)]
struct Point {
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Requests offered in the measured window and how many admission control refused.
    offered: usize,
    refused: usize,
    /// The source's pool ran out before the window ended (the point is then void).
    ran_dry: bool,
    measure: Duration,
    /// Replicas in the process.
    replicas: usize,
    /// Transactions the slowest replica's ledger applied per second in the measured
    /// window (NaN: no ledgers, ordering alone).
    applied_per_s: f64,
    /// The whole process's CPU time and storage writes over the measured window (every
    /// replica runs in it), NaN where `/proc` could not be read.
    cpu_s: f64,
    write_bytes: f64,
}

impl Point {
    /// CPU seconds per 1,000 committed transactions, the whole cluster's.
    fn cpu_per_1000_tx(&self) -> f64 {
        self.cpu_s / (self.tx_per_s * self.measured_s()) * 1000.0
    }
    /// Bytes written to storage per committed transaction, at one replica (their logs are
    /// alike, so the process's total over the replicas).
    fn write_bytes_per_tx(&self) -> f64 {
        self.write_bytes / self.replicas.max(1) as f64 / (self.tx_per_s * self.measured_s())
    }
    fn measured_s(&self) -> f64 {
        self.measure.as_secs_f64()
    }
}

/// Admission control on (the default) or off (every request admitted up to
/// `pending_len_max`: the behaviour before admission control, as a baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    On,
    Off,
}

fn config(n: usize, id: u8, window: u64, admission: Admission, feed: &Feed) -> Config {
    let mut c = Config::new(n, id);
    c.window_len = window;
    c.dissemination = !feed.forwarding;
    if admission == Admission::Off {
        c.admission_len_max = c.pending_len_max;
        c.admission_bytes_max = c.pending_bytes_max;
    } else if let Some(len) = std::env::var("BENCH_CONSENSUS_ADMISSION").ok().and_then(|v| v.parse::<usize>().ok()) {
        // The bound in requests; the bytes bound keeps the default's 512 bytes a request.
        c.admission_len_max = len.max(1);
        c.admission_bytes_max = len.max(1) * 512;
    }
    c
}

/// Where a shape's requests come from and where they enter.
#[derive(Clone, Default)]
struct Feed {
    /// The replica they are submitted at (0, the primary, unless a backup forwards them).
    entry: usize,
    /// The check replicas apply to forwarded requests (none: every one admitted).
    check: Option<Arc<dyn RequestCheck>>,
    /// Requests made before the run (members' signed transactions), taken in order; none:
    /// fresh [`PAYLOAD_LEN`]-byte payloads of one client per point.
    pool: Option<Arc<Vec<Request>>>,
    /// Each replica applies what it delivers to a ledger of its own, as a validator does
    /// ([`spawn_ledger`]); otherwise deliveries are dropped (ordering alone).
    execute: bool,
    /// Chunks are submitted at every replica in turn (each member's node at its own
    /// validator), not at `entry` alone.
    spread: bool,
    /// Dissemination off ([`Config::dissemination`]): backups forward to the primary,
    /// which carries every batch whole (the design before, as a baseline).
    forwarding: bool,
}

/// A point's supply of requests.
enum Source {
    Fresh { client: u64, next_id: u64 },
    Pool { pool: Arc<Vec<Request>>, next: usize },
}

impl Source {
    /// Up to `n` requests; fewer only when a pool ran dry.
    fn take(&mut self, n: usize) -> Vec<Request> {
        match self {
            Source::Fresh { client, next_id } => (0..n)
                .map(|_| {
                    *next_id += 1;
                    let mut payload = vec![0u8; PAYLOAD_LEN];
                    payload[..8].copy_from_slice(&next_id.to_be_bytes());
                    Request { client: *client, id: *next_id, payload }
                })
                .collect(),
            Source::Pool { pool, next } => {
                let end = (*next + n).min(pool.len());
                let out = pool[*next..end].to_vec();
                *next = end;
                out
            }
        }
    }
}

async fn start_cluster(
    n: usize,
    window: u64,
    admission: Admission,
    feed: &Feed,
    dir: &std::path::Path,
) -> Result<(Vec<Engine>, Vec<Arc<BenchLedger>>)> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(n as u64);
    let rocks = RocksConfig { sync_writes: true, ..RocksConfig::default() };
    let mut cluster = LocalCluster::new(n, dir, &rocks, &mut rng)?;
    cluster.request_check = feed.check.clone();
    let (mut engines, mut applied) = (Vec::new(), Vec::new());
    for id in 0..n {
        let (engine, mut delivered) =
            cluster.start(id, config(n, id as u8, window, admission, feed), Metrics::unregistered())?;
        if feed.execute {
            applied.push(spawn_ledger(&dir.join(format!("ledger{id}")), cluster.stores[id].clone(), delivered)?);
        } else {
            tokio::spawn(async move { while delivered.recv().await.is_some() {} });
        }
        engines.push(engine);
    }
    Ok((engines, applied))
}

/// Members registered on a bench ledger (the same keys on every ledger made from the same
/// seed): those whose signed transactions [`signed_requests`] makes.
fn bench_members(w: &mut dualchain_testkit::members::MemberLedger) -> Result<Vec<(String, SigningKeypair)>> {
    (0..16)
        .map(|i| {
            let id = format!("hospital-{i}");
            Ok((id.clone(), w.register(&id, dualchain_crypto::cert::Role::Hospital)?))
        })
        .collect()
}

/// A bench ledger's view of its replica's consensus archive: as a validator's ledger
/// reads it (`ArchivedBatches`), past the ledger's own first batches (the members'
/// registrations, which no replica ordered).
struct ReplicaArchive {
    archive: dualchain_node::validator::ArchivedBatches,
    offset: AtomicU64,
}

impl dualchain_ledger::Batches for ReplicaArchive {
    fn payloads(&self, seq: u64, digest: &[u8; 32]) -> Result<Arc<[Vec<u8>]>, dualchain_ledger::LedgerError> {
        let ordered = seq
            .checked_sub(self.offset.load(AtomicOrdering::Relaxed))
            .filter(|s| *s > 0)
            .ok_or_else(|| dualchain_ledger::LedgerError::NotFound(format!("batch {seq} was not ordered")))?;
        dualchain_ledger::Batches::payloads(&self.archive, ordered, digest)
    }
}

/// A replica's ledger behind its engine, applying as a validator does
/// (`node/src/validator.rs`, pipelined): each delivered batch's signatures checked ahead
/// on one thread ([`Ledger::presign`], at most two batches ahead), applied on another,
/// on RocksDB under `dir`, its blocks referring to the batches in the replica's archive
/// (`replica_store`). Counts the transactions applied.
fn spawn_ledger(
    dir: &std::path::Path,
    replica_store: Arc<dyn dualchain_storage::KvEngine>,
    mut delivered: tokio::sync::mpsc::Receiver<Delivered>,
) -> Result<Arc<BenchLedger>> {
    use dualchain_storage::rocks::RocksEngine;
    let engine = Arc::new(RocksEngine::open(dir, &RocksConfig::default())?);
    let archive = Arc::new(ReplicaArchive {
        archive: dualchain_node::validator::ArchivedBatches::open(replica_store)?,
        offset: AtomicU64::new(0),
    });
    let mut w = dualchain_testkit::members::MemberLedger::beside(engine, 1, archive.clone())?;
    bench_members(&mut w)?;
    // The registrations took the ledger's first sequence numbers.
    let offset = w.ledger.applied_seq()?.unwrap_or(0);
    archive.offset.store(offset, AtomicOrdering::Relaxed);
    let checked = w.ledger.presign_ahead(
        "bench-presign".into(),
        2,
        move || delivered.blocking_recv().map(|d| Delivery(d, offset)),
        || false,
    )?;
    let ledger = w.ledger.clone();
    let run = Arc::new(BenchLedger::default());
    let state = run.clone();
    let applier = std::thread::spawn(move || {
        for (d, presigned) in checked {
            if state.stop.load(AtomicOrdering::Relaxed) {
                return;
            }
            match ledger.apply_presigned(&d.committed(), presigned) {
                Ok(Some(a)) => {
                    state.applied.fetch_add(a.txs.len() as u64, AtomicOrdering::Relaxed);
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("bench ledger stopped: {e}");
                    return;
                }
            }
        }
    });
    *run.applier.lock().expect("not poisoned") = Some(applier);
    Ok(run)
}

/// A bench ledger's committed batch ([`bench_committed`]) at `seq`.
fn bench_committed<'a>(seq: u64, digest: [u8; 32], payloads: impl Iterator<Item = &'a [u8]>) -> Committed<'a> {
    Committed {
        seq,
        time_ms: dualchain_testkit::members::T0_S * 1000 + seq,
        digest,
        certificate: Vec::new(),
        payloads: payloads.collect(),
        validator_changes: Vec::new(),
    }
}

/// A delivery to a bench ledger whose first `.1` sequence numbers its registrations took.
struct Delivery(Delivered, u64);

impl ToApply for Delivery {
    fn committed(&self) -> Committed<'_> {
        let requests = self.0.entry.batch.requests();
        bench_committed(self.1 + self.0.entry.seq, self.0.entry.batch.digest(), requests.iter().map(|r| &r.payload[..]))
    }
}

/// Batch `.1` of a prepared set, at sequence number `.2`.
struct Prepared(Arc<Vec<Vec<Vec<u8>>>>, usize, u64);

impl ToApply for Prepared {
    fn committed(&self) -> Committed<'_> {
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&self.2.to_be_bytes());
        bench_committed(self.2, digest, self.0[self.1].iter().map(Vec::as_slice))
    }
}

/// A replica's ledger in the bench ([`spawn_ledger`]): what it applied, and its applier,
/// stopped (what it has not applied yet is dropped) before the cluster's directory goes.
#[derive(Default)]
struct BenchLedger {
    applied: AtomicU64,
    stop: AtomicBool,
    applier: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl BenchLedger {
    /// Waits for the applier, once `stop` is set and the engine no longer delivers.
    fn join(&self) {
        if let Some(t) = self.applier.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Offers `rate` tx/s (None: closed loop) from `source` to replica `entry` for
/// `warmup + measure`.
async fn drive(
    entries: Vec<Arc<Engine>>,
    rate: Option<f64>,
    warmup: Duration,
    measure: Duration,
    mut source: Source,
    applied: Vec<Arc<BenchLedger>>,
) -> Point {
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let committed = Arc::new(Mutex::new(0usize));
    let refused = Arc::new(Mutex::new(0usize));
    let mut offered_in_window = 0usize;
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + measure;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(16));
    let mut ran_dry = false;
    let mut offered = 0.0f64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut turn = 0usize;
    let counters = tokio::spawn(async move {
        let read =
            |c: &[Arc<BenchLedger>]| c.iter().map(|a| a.applied.load(AtomicOrdering::Relaxed)).collect::<Vec<_>>();
        tokio::time::sleep_until(window_start.into()).await;
        let (first, applied_first) = (ProcessCounters::now(), read(&applied));
        tokio::time::sleep_until(end.into()).await;
        let applied_last = read(&applied);
        // The slowest replica's ledger (none without ledgers).
        let least = applied_first.iter().zip(&applied_last).map(|(a, b)| b - a).min();
        (first.zip(ProcessCounters::now()).map(|(a, b)| b.since(&a)), least)
    });
    while Instant::now() < end {
        let count = match rate {
            Some(r) => {
                tick.tick().await;
                let due = r * start.elapsed().as_secs_f64();
                let n = (due - offered).floor().max(0.0) as usize;
                offered += n as f64;
                n
            }
            None => CHUNK,
        };
        let mut left = count;
        while left > 0 {
            let take = left.min(CHUNK);
            left -= take;
            let permit = if rate.is_none() {
                Some(in_flight.clone().acquire_owned().await.expect("semaphore open"))
            } else {
                None
            };
            let requests = source.take(take);
            if requests.len() < take {
                ran_dry = true;
                break;
            }
            let submitted = Instant::now();
            if submitted >= window_start {
                offered_in_window += take;
            }
            turn += 1;
            let Ok(done) = entries[turn % entries.len()].submit_many(requests).await else {
                return Point::default();
            };
            let (lat, com, refd) = (latencies.clone(), committed.clone(), refused.clone());
            tokio::spawn(async move {
                // Refused requests are shed (an open-loop client backs off; a closed-loop
                // one submits its next chunk): only admitted requests count.
                if let Ok(Ok(many)) = done.await {
                    let now = Instant::now();
                    let admitted = take - many.refused;
                    if submitted >= window_start {
                        *refd.lock().expect("not poisoned") += many.refused;
                    }
                    if admitted > 0 && submitted >= window_start && now <= end {
                        lat.lock().expect("not poisoned").push(now.duration_since(submitted).as_secs_f64() * 1e3);
                    }
                    if now >= window_start && now <= end {
                        *com.lock().expect("not poisoned") += admitted;
                    }
                }
                drop(permit);
            });
        }
        if ran_dry {
            break;
        }
    }
    let (counters, least_applied) = counters.await.unwrap_or((None, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut l = latencies.lock().expect("not poisoned").clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let tx = *committed.lock().expect("not poisoned") as f64 / measure.as_secs_f64();
    let refused = *refused.lock().expect("not poisoned");
    Point {
        tx_per_s: tx,
        p50_ms: percentile(&l, 0.5),
        p99_ms: percentile(&l, 0.99),
        offered: offered_in_window,
        refused,
        ran_dry,
        measure,
        replicas: 0,
        applied_per_s: least_applied.map_or(f64::NAN, |a| a as f64 / measure.as_secs_f64()),
        cpu_s: counters.map_or(f64::NAN, |c| c.cpu_s),
        write_bytes: counters.map_or(f64::NAN, |c| c.write_bytes as f64),
    }
}

/// One point of a shape: a fixed offered rate, the closed-loop maximum, or a multiple of
/// the maximum measured earlier in the same shape (the overload point).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Load {
    Rate(f64),
    Max,
    TimesPeak(f64),
}

impl Load {
    fn label(&self) -> String {
        match self {
            Load::Rate(r) => format!("{r:.0}"),
            Load::Max => "max".into(),
            Load::TimesPeak(k) => format!("{k}x-peak"),
        }
    }
}

fn run_shape(
    n: usize,
    window: u64,
    admission: Admission,
    feed: &Feed,
    loads: &[Load],
    timing: (Duration, Duration),
    progress: &Progress,
) -> Result<Vec<(Load, Point)>> {
    let (warmup, measure) = timing;
    // A pool's requests execute once per cluster: a second point would offer duplicates.
    anyhow::ensure!(feed.pool.is_none() || loads.len() == 1, "a pool of requests serves one point");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let (engines, applied) = start_cluster(n, window, admission, feed, dir.path()).await?;
        let mut engines = engines.into_iter().map(Arc::new).collect::<Vec<_>>();
        // Let connections come up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut points = Vec::new();
        let mut peak: Option<f64> = None;
        for (i, load) in loads.iter().enumerate() {
            let label = load.label();
            progress.set_message(format!("n={n} window={window} admission={admission:?} offered={label}"));
            let rate = match load {
                Load::Rate(r) => Some(*r),
                Load::Max => None,
                Load::TimesPeak(k) => Some(k * peak.context("a multiple of the peak needs a max point before it")?),
            };
            let source = match &feed.pool {
                Some(pool) => Source::Pool { pool: pool.clone(), next: 0 },
                None => Source::Fresh { client: i as u64 + 1, next_id: 0 },
            };
            let entries = if feed.spread { engines.clone() } else { vec![engines[feed.entry].clone()] };
            let mut p = drive(entries, rate, warmup, measure, source, applied.clone()).await;
            p.replicas = n;
            anyhow::ensure!(!p.ran_dry, "the pool of requests ran dry before the point ended");
            if *load == Load::Max {
                peak = Some(p.tx_per_s);
            }
            let mut states = Vec::new();
            for e in &engines {
                if let Ok(s) = e.status().await {
                    states.push(format!(
                        "v{}{} x{} p{}",
                        s.view,
                        if s.in_view_change { "*" } else { "" },
                        s.last_executed,
                        s.pending
                    ));
                }
            }
            let offered = rate.map_or("max".to_string(), |r| format!("{r:.0}"));
            dualchain_progress::suspend(|| {
                eprintln!(
                    "  n={n} window={window} admission={admission:?} offered={offered} ({label}) -> {:.0} tx/s, \
                     p50 {:.1} ms, p99 {:.1} ms, refused {:.1} %; {:.3} CPU s per 1000 tx (all replicas), \
                     {:.0} bytes written per tx at one replica",
                    p.tx_per_s,
                    p.p50_ms,
                    p.p99_ms,
                    100.0 * p.refused as f64 / p.offered.max(1) as f64,
                    p.cpu_per_1000_tx(),
                    p.write_bytes_per_tx()
                );
                eprintln!("    replicas: {}", states.join(", "));
            });
            progress.inc(1);
            points.push((*load, p));
            // Let an overloaded point's backlog drain so the next point starts clean.
            for _ in 0..600 {
                match engines[0].status().await {
                    Ok(s) if s.pending > 0 => tokio::time::sleep(Duration::from_millis(50)).await,
                    _ => break,
                }
            }
        }
        // Ledgers stop applying their backlog; once the engines stop delivering, their
        // threads end, before the directory goes.
        for l in &applied {
            l.stop.store(true, AtomicOrdering::Relaxed);
        }
        for e in engines.drain(..) {
            if let Ok(e) = Arc::try_unwrap(e) {
                e.shutdown().await?;
            }
        }
        for l in &applied {
            l.join();
        }
        Ok(points)
    })
}

/// One point only, for profiling: `BENCH_CONSENSUS_POINT=<n>:<window>:<offered|max>`.
fn single_point(spec: &str, warmup: Duration, measure: Duration) -> Result<Vec<Record>> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [n, window, load] = parts[..] else { anyhow::bail!("BENCH_CONSENSUS_POINT is <n>:<window>:<offered|max>") };
    let (n, window): (usize, u64) = (n.parse()?, window.parse()?);
    let load = if load == "max" { Load::Max } else { Load::Rate(load.parse::<f64>()?) };
    let progress = Progress::new("bench consensus point", 1);
    let (_, point) =
        run_shape(n, window, Admission::On, &Feed::default(), &[load], (warmup, measure), &progress)?.remove(0);
    progress.finish();
    let params = format!("n={n},window={window},offered={},tx_bytes={PAYLOAD_LEN},durability=sync", parts[2]);
    Ok(point_records(&params, &point, None))
}

pub fn run(quick: bool) -> Result<Vec<Record>> {
    let (warmup, measure) = if quick {
        (Duration::from_millis(700), Duration::from_secs(2))
    } else {
        (Duration::from_secs(2), Duration::from_secs(6))
    };
    if let Ok(spec) = std::env::var("BENCH_CONSENSUS_POINT") {
        return single_point(&spec, warmup, measure);
    }
    if std::env::var_os("BENCH_CONSENSUS_CHECK").is_some() {
        return request_check(measure);
    }
    if std::env::var_os("BENCH_CONSENSUS_APPLY").is_some() {
        return ledger_apply(measure);
    }
    if std::env::var_os("BENCH_CONSENSUS_SIGNED").is_some() {
        let progress = Progress::new("bench consensus signed", 2);
        let records = signed((warmup, measure), &progress)?;
        progress.finish();
        return Ok(records);
    }
    if std::env::var_os("BENCH_CONSENSUS_EXECUTION").is_some() {
        let progress = Progress::new("bench consensus execution", 2);
        let records = execution((warmup, measure), &progress)?;
        progress.finish();
        return Ok(records);
    }
    if std::env::var_os("BENCH_CONSENSUS_DISSEMINATION").is_some() {
        let progress = Progress::new("bench consensus dissemination", 4);
        let records = dissemination((warmup, measure), &progress)?;
        progress.finish();
        return Ok(records);
    }
    if std::env::var_os("BENCH_CONSENSUS_OVERLOAD").is_some() {
        let progress = Progress::new("bench consensus overload", 4);
        let records = overload((warmup, measure), &progress)?;
        progress.finish();
        return Ok(records);
    }
    let loads_n4: Vec<Load> = if quick {
        vec![Load::Rate(20_000.0), Load::Rate(80_000.0), Load::Max]
    } else {
        [10_000.0, 40_000.0, 80_000.0, 120_000.0, 160_000.0, 250_000.0]
            .into_iter()
            .map(Load::Rate)
            .chain([Load::Max])
            .collect()
    };
    let loads_n7: Vec<Load> = if quick {
        vec![Load::Rate(20_000.0), Load::Max]
    } else {
        vec![Load::Rate(20_000.0), Load::Rate(80_000.0), Load::Max]
    };
    eprintln!("durability: RocksDB WAL synced (fsync) on every group commit of the consensus log");
    let mut records = Vec::new();
    let timing = (warmup, measure);
    // Points: every load, at window 1 and at the default window, for n = 4 and n = 7; then
    // the overload point, with and without admission control; signed requests, checked
    // and unchecked.
    let progress = Progress::new("bench consensus", 2 * (loads_n4.len() + loads_n7.len()) as u64 + 12);
    for (n, loads) in [(4usize, &loads_n4), (7, &loads_n7)] {
        let base = run_shape(n, 1, Admission::On, &Feed::default(), loads, timing, &progress)?;
        let window = Config::new(n, 0).window_len;
        let piped = run_shape(n, window, Admission::On, &Feed::default(), loads, timing, &progress)?;
        for ((load, b), (_, p)) in base.iter().zip(&piped) {
            let offered = load.label();
            for (window, point, baseline) in [(1, b, None), (window, p, Some(b))] {
                let params = format!("n={n},window={window},offered={offered},tx_bytes={PAYLOAD_LEN},durability=sync");
                records.extend(point_records(&params, point, baseline));
            }
        }
    }
    records.extend(dissemination(timing, &progress)?);
    records.extend(overload(timing, &progress)?);
    records.extend(signed(timing, &progress)?);
    records.extend(execution(timing, &progress)?);
    records.extend(request_check(measure)?);
    records.extend(ledger_apply(measure)?);
    progress.finish();
    Ok(records)
}

/// Transactions per committed batch in [`ledger_apply`].
const APPLY_BATCH: usize = 1000;

/// The measured batches of [`ledger_apply`] as the consensus archive beside a validator's
/// ledger holds them: in memory here, since writing them is the ordering's cost (the
/// consensus points count it), not the ledger's.
#[derive(Default)]
struct BenchArchive {
    payloads: std::sync::OnceLock<Arc<Vec<Vec<Vec<u8>>>>>,
    /// The sequence number of the first (set once the ledger's registrations applied).
    first: AtomicU64,
}

impl dualchain_ledger::Batches for BenchArchive {
    fn payloads(&self, seq: u64, digest: &[u8; 32]) -> Result<Arc<[Vec<u8>]>, dualchain_ledger::LedgerError> {
        let missing = || dualchain_ledger::LedgerError::NotFound(format!("batch {seq}"));
        let payloads = self.payloads.get().ok_or_else(missing)?;
        let i = seq
            .checked_sub(self.first.load(AtomicOrdering::Relaxed))
            .map(|i| i as usize)
            .filter(|i| *i < payloads.len())
            .ok_or_else(missing)?;
        if Prepared(payloads.clone(), i, seq).committed().digest != *digest {
            return Err(dualchain_ledger::LedgerError::Corrupt(format!("batch {seq} has another digest")));
        }
        Ok(payloads[i].clone().into())
    }
}

/// The ledger's apply of committed batches of [`APPLY_BATCH`] members' signed
/// transactions (each checked against its member's key, then refused by its contract: an
/// unknown grant), on RocksDB in a temporary directory: on one core (the baseline) and on
/// every core, each on a fresh ledger of the same members; then pipelined as a validator
/// applies, with the bytes written per transaction: by a ledger beside an archive (a
/// validator's: its blocks refer to the archive's batches) and by one that keeps the
/// batches itself.
fn ledger_apply(measure: Duration) -> Result<Vec<Record>> {
    use dualchain_crypto::cert::Role;
    use dualchain_ledger::tx::TxKind;
    use dualchain_storage::rocks::RocksEngine;
    use dualchain_testkit::members::{signed, MemberLedger};
    use rayon::prelude::*;

    let archive = Arc::new(BenchArchive::default());
    let open_with = |dir: &std::path::Path,
                     batches: Option<Arc<BenchArchive>>|
     -> Result<(MemberLedger, Vec<(String, dualchain_crypto::sign::SigningKeypair)>)> {
        let engine = Arc::new(RocksEngine::open(dir, &RocksConfig::default())?);
        let mut w = match batches {
            Some(b) => MemberLedger::beside(engine, 1, b)?,
            None => MemberLedger::on(engine, 1)?,
        };
        let members = (0..16)
            .map(|i| {
                let id = format!("hospital-{i}");
                Ok((id.clone(), w.register(&id, Role::Hospital)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((w, members))
    };
    let dirs = (0..4).map(|_| tempfile::tempdir()).collect::<std::io::Result<Vec<_>>>()?;
    let (mut one, members) = open_with(dirs[0].path(), None)?;
    let (mut all, _) = open_with(dirs[1].path(), None)?;
    let (piped, _) = open_with(dirs[2].path(), None)?;
    let (beside, _) = open_with(dirs[3].path(), Some(archive.clone()))?;
    // Enough batches for `measure` at a few tens of thousands of transactions a second.
    let batches = ((measure.as_secs_f64() * 40_000.0) as usize / APPLY_BATCH).max(4);
    let domain = one.ledger.tx_domain().clone();
    let payloads: Vec<Vec<Vec<u8>>> = (0..batches)
        .map(|b| {
            (0..APPLY_BATCH)
                .into_par_iter()
                .map(|i| {
                    let (id, key) = &members[i % members.len()];
                    let n = b * APPLY_BATCH + i;
                    let grant: [u8; 32] = std::array::from_fn(|k| (n >> (8 * (k % 8))) as u8);
                    let kind = TxKind::RevokeGrant { grant, reason: "x".repeat(120) };
                    Ok(signed(id, 10 + (n / members.len()) as u64, kind, key, &domain)?.to_bytes())
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let payloads = Arc::new(payloads);
    let _ = archive.payloads.set(payloads.clone());
    archive.first.store(beside.ledger.applied_seq()?.unwrap_or(0) + 1, AtomicOrdering::Relaxed);
    let bytes = payloads[0].iter().map(Vec::len).sum::<usize>() / APPLY_BATCH;
    let run = |w: &mut MemberLedger| -> Result<f64> {
        let start = Instant::now();
        for batch in payloads.iter() {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let applied = w.apply(&refs)?;
            anyhow::ensure!(applied.txs.len() == APPLY_BATCH, "a batch applied {} transactions", applied.txs.len());
        }
        Ok((batches * APPLY_BATCH) as f64 / start.elapsed().as_secs_f64())
    };
    // The validator's pipelined apply: the next batches' signatures checked (on every
    // core) while the one in front executes and is written. Returns the rate and the bytes
    // this process wrote per transaction meanwhile.
    let pipelined = |w: &MemberLedger| -> Result<(f64, f64)> {
        let (set, first) = (payloads.clone(), w.ledger.applied_seq()?.unwrap_or(0) + 1);
        let mut next = (0..batches).map(move |i| Prepared(set.clone(), i, first + i as u64));
        let counters = ProcessCounters::now();
        let start = Instant::now();
        let checked = w.ledger.presign_ahead("bench-presign".into(), 2, move || next.next(), || false)?;
        for (batch, presigned) in checked {
            let applied = w.ledger.apply_presigned(&batch.committed(), presigned)?.context("a batch applied twice")?;
            anyhow::ensure!(applied.txs.len() == APPLY_BATCH, "a batch applied {} transactions", applied.txs.len());
        }
        let rate = (batches * APPLY_BATCH) as f64 / start.elapsed().as_secs_f64();
        let written = counters.zip(ProcessCounters::now()).map_or(f64::NAN, |(a, b)| b.since(&a).write_bytes as f64);
        Ok((rate, written / (batches * APPLY_BATCH) as f64))
    };
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build()?.install(|| run(&mut one))?;
    let spread = run(&mut all)?;
    // Closed, so that none of their background writes falls in the windows below.
    drop((one, all));
    let (near, near_written) = pipelined(&beside)?;
    let kept_ledger = piped;
    let (piped, piped_written) = pipelined(&kept_ledger)?;
    let reads = ledger_reads(&kept_ledger.ledger, &payloads, measure)?;
    let threads = rayon::current_num_threads();
    let params = |t: usize| format!("batch={APPLY_BATCH},tx_bytes={bytes},durability=sync,signature_threads={t}");
    let mut base = Record::throughput("consensus::ledger_apply", params(1), single, None);
    base.unit = "tx/s".into();
    let mut par = Record::throughput("consensus::ledger_apply", params(threads), spread, Some(single));
    par.unit = "tx/s".into();
    let mut pipe =
        Record::throughput("consensus::ledger_apply", format!("{},pipelined", params(threads)), piped, Some(spread));
    pipe.unit = "tx/s".into();
    let archived = format!("{},pipelined,beside_archive", params(threads));
    let mut beside_rate = Record::throughput("consensus::ledger_apply", archived.clone(), near, Some(piped));
    beside_rate.unit = "tx/s".into();
    let kept = format!("{},pipelined", params(threads));
    let written = |params: String, value: f64, baseline: Option<f64>| {
        let mut r = Record::throughput("consensus::ledger_written_per_tx", params, value, baseline);
        r.unit = "bytes".into();
        r
    };
    let mut records = vec![
        base,
        par,
        pipe,
        beside_rate,
        written(kept, piped_written, None),
        written(archived, near_written, Some(piped_written)),
    ];
    records.extend(reads);
    Ok(records)
}

/// Reads of single transactions from a ledger whose blocks refer to batches of
/// [`APPLY_BATCH`] transactions (`payloads`, applied): `Ledger::tx` (one transaction read
/// from its batch) and `Ledger::inclusion_proof` (no transaction read), each against
/// opening the transaction's whole block (`Ledger::block`: every transaction of its batch
/// read and hashed), which is what both did before. The baseline skips the transaction
/// index lookup the other two include.
fn ledger_reads(
    ledger: &dualchain_ledger::Ledger,
    payloads: &[Vec<Vec<u8>>],
    measure: Duration,
) -> Result<Vec<Record>> {
    use std::hint::black_box;
    // Some transactions of every batch, spread over its positions.
    let located = payloads
        .iter()
        .flat_map(|b| b.iter().step_by(97))
        .map(|p| {
            let hash = dualchain_ledger::tx::tx_hash(p);
            let (loc, _) = ledger.tx(&hash)?.context("an applied transaction is not on the ledger")?;
            Ok((hash, loc))
        })
        .collect::<Result<Vec<_>>>()?;
    let each = measure / 3;
    let mut failed = None;
    let mut keep = |r: Result<bool, dualchain_ledger::LedgerError>| match r {
        Ok(true) => {}
        Ok(false) => failed = Some("a read found nothing".to_string()),
        Err(e) => failed = Some(e.to_string()),
    };
    let whole = ops_per_second(each, located.len(), || {
        for (_, loc) in &located {
            keep(
                ledger
                    .block(loc.chain, loc.height)
                    .map(|b| black_box(b.and_then(|b| b.entries.get(loc.position as usize).cloned())).is_some()),
            );
        }
    });
    let one = ops_per_second(each, located.len(), || {
        for (hash, _) in &located {
            keep(ledger.tx(hash).map(|t| black_box(t).is_some()));
        }
    });
    let proof = ops_per_second(each, located.len(), || {
        for (hash, _) in &located {
            keep(ledger.inclusion_proof(hash).map(|p| black_box(p).is_some()));
        }
    });
    if let Some(e) = failed {
        anyhow::bail!("a ledger read failed: {e}");
    }
    let params = |what: &str| format!("batch={APPLY_BATCH},kept_batches,read={what}");
    let mut base = Record::throughput("consensus::ledger_read", params("whole_block"), whole, None);
    base.unit = "reads/s".into();
    let mut tx = Record::throughput("consensus::ledger_read", params("tx"), one, Some(whole));
    tx.unit = "reads/s".into();
    let mut pr = Record::throughput("consensus::ledger_read", params("inclusion_proof"), proof, Some(whole));
    pr.unit = "reads/s".into();
    dualchain_progress::suspend(|| {
        eprintln!(
            "  ledger reads ({} transactions of {}-transaction batches): one transaction {one:.0}/s, \
             its inclusion proof {proof:.0}/s, against its whole block {whole:.0}/s ({:.1}x, {:.1}x)",
            located.len(),
            APPLY_BATCH,
            one / whole,
            proof / whole
        )
    });
    Ok(vec![base, tx, pr])
}

/// The validators' check of forwarded requests (`MemberRequests`: decode, client and
/// number against the transaction, signature under the member's key from the ledger), on
/// one core: a forward of [`CHUNK`] members' transactions checked at once (one batch
/// verification), against the same requests checked one per call (the baseline).
/// `BENCH_CONSENSUS_CHECK=1` runs it alone.
fn request_check(measure: Duration) -> Result<Vec<Record>> {
    let (check, requests) = signed_requests(CHUNK)?;
    let bytes = requests.iter().map(|r| r.payload.len()).sum::<usize>() / requests.len();
    anyhow::ensure!(check.check(&requests).iter().all(Result::is_ok), "a genuine request was refused");
    let one_by_one = ops_per_second(measure, requests.len(), || {
        for r in &requests {
            std::hint::black_box(check.check(std::slice::from_ref(r)));
        }
    });
    let batched = ops_per_second(measure, requests.len(), || {
        std::hint::black_box(check.check(&requests));
    });
    let params = |how: &str| format!("forward={CHUNK},tx_bytes={bytes},{how},threads=1");
    let mut base = Record::throughput("consensus::request_check", params("one_per_call"), one_by_one, None);
    base.unit = "req/s".into();
    let mut batch = Record::throughput("consensus::request_check", params("batch"), batched, Some(one_by_one));
    batch.unit = "req/s".into();
    Ok(vec![base, batch])
}

/// `count` requests of 16 members, each its member's signed transaction of about the
/// consensus suite's size (a revocation with a long reason), and the validators' check of
/// them against a ledger where the members are registered.
fn signed_requests(count: usize) -> Result<(dualchain_node::validator::MemberRequests, Vec<Request>)> {
    use dualchain_ledger::tx::TxKind;
    use dualchain_testkit::members::{request, signed, MemberLedger};
    use rayon::prelude::*;

    let mut w = MemberLedger::new(1)?;
    let members = bench_members(&mut w)?;
    let domain = w.ledger.tx_domain();
    let requests: Vec<Request> = (0..count)
        .into_par_iter()
        .map(|i| {
            let (id, key) = &members[i % members.len()];
            let grant: [u8; 32] = std::array::from_fn(|k| (i >> (8 * (k % 8))) as u8);
            let kind = TxKind::RevokeGrant { grant, reason: "x".repeat(120) };
            Ok(request(&signed(id, 10 + (i / members.len()) as u64, kind, key, domain)?))
        })
        .collect::<Result<_>>()?;
    Ok((dualchain_node::validator::MemberRequests { ledger: w.ledger.clone() }, requests))
}

/// A pool of members' signed transactions, the validators' check of them, their mean size.
type SignedPool = (dualchain_node::validator::MemberRequests, Option<Arc<Vec<Request>>>, usize);

/// Members' signed transactions enough for `rate` tx/s over a whole point, as a pool
/// ([`Feed::pool`]), with the validators' check of them and their mean size.
fn signed_pool(rate: f64, (warmup, measure): (Duration, Duration), progress: &Progress) -> Result<SignedPool> {
    let count = (rate * (warmup + measure).as_secs_f64()) as usize;
    progress.set_message(format!("signing {count} members' transactions"));
    let (check, requests) = signed_requests(count)?;
    let bytes = requests.iter().map(|r| r.payload.len()).sum::<usize>() / requests.len();
    Ok((check, Some(Arc::new(requests)), bytes))
}

/// The closed-loop maximum of `n` replicas at the default window for each feed, each in a
/// fresh cluster of this run.
fn max_points(n: usize, feeds: &[Feed], timing: (Duration, Duration), progress: &Progress) -> Result<Vec<Point>> {
    let window = Config::new(n, 0).window_len;
    feeds
        .iter()
        .map(|feed| Ok(run_shape(n, window, Admission::On, feed, &[Load::Max], timing, progress)?.remove(0).1))
        .collect()
}

/// Signed requests through the whole engine (`BENCH_CONSENSUS_SIGNED=1` alone): n = 4 at
/// the default window, members' signed transactions submitted closed-loop at a backup,
/// which forwards them to the primary, where each forward is batch-verified against the
/// ledger's member keys before it enters ordering; against the same requests admitted
/// unchecked (the baseline), each in a fresh cluster of this run.
fn signed(timing: (Duration, Duration), progress: &Progress) -> Result<Vec<Record>> {
    let (n, window) = (4, Config::new(4, 0).window_len);
    // Enough for 150k tx/s over the whole point, about twice the closed-loop peak here.
    let (check, pool, bytes) = signed_pool(150_000.0, timing, progress)?;
    let feeds = [None, Some(Arc::new(check) as Arc<dyn RequestCheck>)].map(|check| Feed {
        entry: 1,
        check,
        pool: pool.clone(),
        ..Feed::default()
    });
    let [unchecked, checked] = &max_points(n, &feeds, timing, progress)?[..] else {
        anyhow::bail!("two points expected")
    };
    let params = |check: &str| {
        format!("n={n},window={window},offered=max,entry=backup,tx_bytes={bytes},signatures={check},durability=sync")
    };
    let mut records = point_records(&params("unchecked"), unchecked, None);
    records.extend(point_records(&params("batch-verified"), checked, Some(unchecked)));
    dualchain_progress::suspend(|| {
        eprintln!(
            "  signed requests: {:.0} tx/s batch-verified against {:.0} unchecked ({:.2}x)",
            checked.tx_per_s,
            unchecked.tx_per_s,
            checked.tx_per_s / unchecked.tx_per_s
        )
    });
    Ok(records)
}

/// Ordering plus execution (`BENCH_CONSENSUS_EXECUTION=1` alone): n = 4 at the default
/// window, members' signed transactions submitted closed-loop at the primary, first
/// ordered alone (deliveries dropped), then in a fresh cluster where every replica
/// applies what it delivers to its own ledger on RocksDB as a validator does (pipelined
/// signature checks). Reports what the slowest ledger applied per second against ordering
/// alone, in the same run; every replica and ledger shares this machine's cores.
fn execution(timing: (Duration, Duration), progress: &Progress) -> Result<Vec<Record>> {
    let (n, window) = (4, Config::new(4, 0).window_len);
    let (_, pool, bytes) = signed_pool(200_000.0, timing, progress)?;
    let feeds = [false, true].map(|execute| Feed { pool: pool.clone(), execute, ..Feed::default() });
    let [alone, executed] = &max_points(n, &feeds, timing, progress)?[..] else { anyhow::bail!("two points expected") };
    let params = |what: &str| format!("n={n},window={window},offered=max,tx_bytes={bytes},{what},durability=sync");
    let mut records = point_records(&params("ordering"), alone, None);
    records.extend(point_records(&params("ordering+ledgers"), executed, Some(alone)));
    let mut applied = Record::throughput(
        "consensus::ledger_applied",
        params("ordering+ledgers"),
        executed.applied_per_s,
        Some(alone.tx_per_s),
    );
    applied.unit = "tx/s".into();
    records.push(applied);
    dualchain_progress::suspend(|| {
        eprintln!(
            "  ordering plus execution: the slowest ledger applied {:.0} tx/s ({:.2}x ordering alone, {:.0} tx/s); \
             ordered meanwhile {:.0} tx/s",
            executed.applied_per_s,
            executed.applied_per_s / alone.tx_per_s,
            alone.tx_per_s,
            executed.tx_per_s
        )
    });
    Ok(records)
}

/// Dissemination apart from ordering against the design before it
/// (`BENCH_CONSENSUS_DISSEMINATION=1` alone): n = 4 and n = 7 at the default window,
/// closed loop, with the chunks submitted at every replica in turn (each member's node at
/// its own validator); dissemination off (backups forward to the primary, which sends
/// every batch whole: the baseline) and on, each in a fresh cluster of this run.
fn dissemination(timing: (Duration, Duration), progress: &Progress) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for n in [4usize, 7] {
        let window = Config::new(n, 0).window_len;
        let feeds = [true, false].map(|forwarding| Feed { spread: true, forwarding, ..Feed::default() });
        let [before, after] = &max_points(n, &feeds, timing, progress)?[..] else {
            anyhow::bail!("two points expected")
        };
        let params = |d: &str| {
            format!("n={n},window={window},offered=max,entry=every-replica,dissemination={d},tx_bytes={PAYLOAD_LEN},durability=sync")
        };
        records.extend(point_records(&params("off"), before, None));
        records.extend(point_records(&params("on"), after, Some(before)));
        dualchain_progress::suspend(|| {
            eprintln!(
                "  dissemination n={n}: {:.0} tx/s (p50 {:.1} ms, p99 {:.1} ms) against {:.0} tx/s forwarding to the \
                 primary ({:.2}x); CPU s per 1000 tx {:.3} against {:.3}; bytes written per tx {:.0} against {:.0}",
                after.tx_per_s,
                after.p50_ms,
                after.p99_ms,
                before.tx_per_s,
                after.tx_per_s / before.tx_per_s,
                after.cpu_per_1000_tx(),
                before.cpu_per_1000_tx(),
                after.write_bytes_per_tx(),
                before.write_bytes_per_tx()
            )
        });
    }
    Ok(records)
}

/// Records of one point: committed tx/s and p50/p99 latency, each against `baseline`.
fn point_records(params: &str, point: &Point, baseline: Option<&Point>) -> Vec<Record> {
    let mut r =
        Record::throughput("consensus::commit", params.to_string(), point.tx_per_s, baseline.map(|b| b.tx_per_s));
    r.unit = "tx/s".into();
    let mut out = vec![r];
    for (name, v, bv, unit) in [
        ("consensus::latency_p50", point.p50_ms, baseline.map(|b| b.p50_ms), "ms"),
        ("consensus::latency_p99", point.p99_ms, baseline.map(|b| b.p99_ms), "ms"),
        ("consensus::cpu_per_1000_tx", point.cpu_per_1000_tx(), baseline.map(Point::cpu_per_1000_tx), "s"),
        ("consensus::written_per_tx", point.write_bytes_per_tx(), baseline.map(Point::write_bytes_per_tx), "bytes"),
    ] {
        out.push(Record {
            name: name.into(),
            params: params.to_string(),
            value: v,
            unit: unit.into(),
            baseline: bv,
            ratio: bv.map(|b| v / b),
        });
    }
    out
}

/// The overload point (n = 4, default window): the closed-loop peak, then twice the peak
/// offered open-loop, with admission control and without (the baseline). Reported as
/// ratios to the same run's peak: committed throughput at 2× (goal ≥ 0.9) and p99 at 2×
/// (goal ≤ 2).
fn overload(timing: (Duration, Duration), progress: &Progress) -> Result<Vec<Record>> {
    let n = 4;
    let window = Config::new(n, 0).window_len;
    let mut records = Vec::new();
    let feed = Feed { forwarding: std::env::var_os("BENCH_CONSENSUS_FORWARDING").is_some(), ..Feed::default() };
    for admission in [Admission::Off, Admission::On] {
        let points = run_shape(n, window, admission, &feed, &[Load::Max, Load::TimesPeak(2.0)], timing, progress)?;
        let [(_, peak), (_, over)] = &points[..] else { anyhow::bail!("two overload points expected") };
        let on = if admission == Admission::On { "on" } else { "off" };
        let requests = if feed.forwarding { "forwarded" } else { "parts" };
        let params =
            format!("n={n},window={window},offered=2x-peak,admission={on},requests={requests},tx_bytes={PAYLOAD_LEN}");
        records.extend(point_records(&params, over, Some(peak)));
        dualchain_progress::suspend(|| {
            eprintln!(
                "  overload admission={on}: at 2x the peak ({:.0} tx/s) {:.2} of the peak's throughput, p99 {:.2}x \
                 the peak's, {:.1} % refused",
                peak.tx_per_s,
                over.tx_per_s / peak.tx_per_s,
                over.p99_ms / peak.p99_ms,
                100.0 * over.refused as f64 / over.offered.max(1) as f64
            )
        });
    }
    Ok(records)
}
