//! Chaos on real processes: `dualchain node` processes, each in its own network namespace
//! ([`crate::netns`]), under a steady load of uploads and access requests through the API,
//! while faults are made and lifted one after another: SIGKILL and restart of a validator,
//! of the primary and of the CPC; partitions of a minority, of the member's own node, and
//! one that leaves no side a quorum; 100 ms of delay with 5 % loss on every link; one
//! node's wall clock skewed.
//!
//! What is measured per fault: uploads acknowledged while it lasted, the longest time no
//! upload was acknowledged, and the time from the fault's end to the first acknowledgement
//! after it (liveness back). What is checked at the end: every node holds the same blocks;
//! no transaction is applied twice; every acknowledged upload is registered exactly once;
//! every granted access request is eventually served with exactly the uploaded records.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_ledger::block::Block;
use dualchain_ledger::reason::Reason;
use dualchain_ledger::tx::{SignedTx, TxKind};
use dualchain_node::api::client::ApiClient;
use dualchain_node::config::NodeConfig;
use dualchain_storage::ledger::Chain;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use crate::netns::NetLab;
use crate::procs::{Hosts, ProcessCluster};

/// Per request: the longest a client waits before it counts the request as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Concurrent uploaders: several, so that the end of a stall is seen within a second.
const UPLOADERS: usize = 3;
/// The longest liveness may take to come back after a fault ends before the run fails.
pub const RECOVERY_MAX: Duration = Duration::from_secs(90);
/// A skew the API tolerates (`[api] clock_skew_s` = 60 by default).
const SKEW: &str = "+30s";
/// libfaketime, thread-safe build (Debian's package faketime).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// A fault the harness makes and lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a validator that is neither the primary, the uploader's node nor the CPC's.
    KillValidator,
    /// SIGKILL the current primary.
    KillPrimary,
    /// SIGKILL the CPC's node (uploads need it to store records).
    KillCpc,
    /// Cut off f validators other than the primary and the uploader's node: the rest go on.
    PartitionMinority,
    /// Cut off the primary (with f - 1 others, never the uploader's node or the CPC's): the
    /// rest must replace it, as for a killed primary, though its connections stay open.
    PartitionPrimary,
    /// Cut off the uploader's own node (with f - 1 others).
    PartitionHome,
    /// Split so that no side holds 2f + 1 validators.
    PartitionNoQuorum,
    /// 100 ms of delay and 5 % loss on what every node sends.
    Netem,
    /// The uploader's node restarted with its wall clock 30 s ahead.
    ClockSkew,
    /// Cut off the research institute's node alone (the load's requester; never the primary,
    /// the uploader's node or the CPC's on 4 nodes): the rest go on. Not in [`Fault::ALL`];
    /// `PartitionMinority` picks it at random.
    PartitionRequester,
}

impl Fault {
    /// Every fault, the cut-off primary first: on 4 nodes the primary of view 0 is the
    /// only one that is neither the member's node nor the CPC's until views move on (a
    /// fault that touches the primary when it is one of those touches another validator;
    /// the table's `primary` column shows which).
    pub const ALL: [Fault; 9] = [
        Fault::PartitionPrimary,
        Fault::KillValidator,
        Fault::KillPrimary,
        Fault::KillCpc,
        Fault::PartitionMinority,
        Fault::PartitionHome,
        Fault::PartitionNoQuorum,
        Fault::Netem,
        Fault::ClockSkew,
    ];
}

/// What one fault cost.
#[derive(Debug, Clone)]
pub struct FaultReport {
    pub fault: Fault,
    /// The nodes it touched.
    pub nodes: Vec<usize>,
    /// The primary when it was made (the home node's view).
    pub primary: usize,
    pub held: Duration,
    /// Uploads acknowledged while the fault lasted.
    pub acked_during: usize,
    /// The longest time with no acknowledgement, within the fault and until liveness came back.
    pub longest_stall: Duration,
    /// From the fault's end to the first upload acknowledged after it.
    pub recovery: Duration,
    /// For the nodes a fault touched (the one restarted, those cut off): from the fault's
    /// end until each answers ready, out of any view change, with at least what the home
    /// node had applied then.
    pub rejoined: Option<Duration>,
    /// Nodes following without voting once it was over (each waits for the consortium's
    /// next view change; see `dualchain_consensus::replica::view_change`).
    pub following: Vec<usize>,
    /// Uploads that failed (an error, or no answer within the request timeout) from the
    /// fault's start until liveness came back, and the first such failure's reason: what
    /// the uploaders saw during a stall.
    pub failed_during: usize,
    pub first_failure: Option<String>,
}

#[derive(Debug, Clone)]
struct Upload {
    dataset: String,
    observations: Vec<Value>,
    at: Duration,
}

#[derive(Default)]
struct Shared {
    uploads: Mutex<Vec<Upload>>,
    /// Granted requests: (request id, dataset).
    grants: Mutex<Vec<(String, String)>>,
    /// Failed uploads: when, and why.
    failures: Mutex<Vec<(Duration, String)>>,
    stop: AtomicBool,
}

/// A consortium of processes in a lab, with its load running.
pub struct Chaos {
    pub cluster: ProcessCluster,
    lab: NetLab,
    n: usize,
    started: Instant,
    shared: Arc<Shared>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    rng: rand_chacha::ChaCha8Rng,
    /// Node indices by role.
    pub home: usize,
    pub requester: usize,
    pub cpc: usize,
}

fn f_of(n: usize) -> usize {
    (n - 1) / 3
}

impl Chaos {
    /// `dualchain init` for `n` nodes in a new lab, every node started and ready, the load
    /// running (uploads by the first hospital, demands and access requests by the first
    /// research institute).
    pub async fn start(bin: &Path, dir: &Path, n: usize, params: &Path, seed: u64) -> Result<Self> {
        let lab = NetLab::new(n)?;
        let cluster = ProcessCluster::init_on(bin, dir, n, params, Hosts::Lab(&lab))?;
        let role = |r: &str| cluster.consortium.members.iter().find(|m| m.role == r).map(|m| m.node as usize);
        let home = role("hospital").ok_or_else(|| anyhow!("no hospital in the consortium"))?;
        let requester = role("research").ok_or_else(|| anyhow!("no research institute"))?;
        let cpc = role("cpc").ok_or_else(|| anyhow!("no CPC"))?;
        cluster.wait_ready(&(0..n).collect::<Vec<_>>(), Duration::from_secs(300)).await?;
        // A new consortium disseminates requests apart from ordering: the faults are made
        // on that path.
        for i in 0..n {
            let requests = cluster.health(i).await.map(|h| h["requests"].clone());
            ensure!(requests == Some(Value::from("parts")), "node {i} does not disseminate: {requests:?}");
        }
        let mut c = Self {
            cluster,
            lab,
            n,
            started: Instant::now(),
            shared: Arc::default(),
            workers: Vec::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            home,
            requester,
            cpc,
        };
        c.start_load()?;
        Ok(c)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn start_load(&mut self) -> Result<()> {
        let next = Arc::new(AtomicU64::new(0));
        for _ in 0..UPLOADERS {
            let (client, _) = self.cluster.client(self.home)?;
            let (shared, next, started) = (self.shared.clone(), next.clone(), self.started);
            self.workers.push(tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let (body, observations) = crate::fhir::ward_bundle(&client.member, 2, 3, k);
                    // Six observations: demands for a single record allowed (the load asks
                    // for every record).
                    let path = format!("/fhir?dataset=chaos-{k}&min_cohort=1");
                    let call = client.call::<Value>(Method::POST, &path, Some(&body));
                    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                        Ok(Ok(up)) => {
                            if let Some(dataset) = dualchain_node::api::fhir_routes::upload_tag(&up, "dataset") {
                                let u = Upload { dataset: dataset.into(), observations, at: started.elapsed() };
                                shared.uploads.lock().unwrap().push(u);
                            }
                        }
                        failed => {
                            let why = match failed {
                                Ok(Err(e)) => format!("{e:#}"),
                                _ => format!("no answer within {REQUEST_TIMEOUT:?}"),
                            };
                            shared.failures.lock().unwrap().push((started.elapsed(), why));
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                }
            }));
        }
        let (client, _) = self.cluster.client(self.requester)?;
        let shared = self.shared.clone();
        self.workers.push(tokio::spawn(async move {
            let mut asked = HashSet::new();
            while !shared.stop.load(Ordering::Relaxed) {
                let last = shared.uploads.lock().unwrap().last().map(|u| u.dataset.clone());
                match last {
                    Some(dataset) if asked.insert(dataset.clone()) => {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT * 8, request(&client, &shared, &dataset)).await;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }));
        Ok(())
    }

    fn acks_since(&self, since: Duration) -> Vec<Duration> {
        self.shared.uploads.lock().unwrap().iter().map(|u| u.at).filter(|t| *t >= since).collect()
    }

    /// Waits for an upload acknowledged at or after `since`; returns when it came.
    async fn first_ack_since(&self, since: Duration, max: Duration) -> Result<Duration> {
        let deadline = Instant::now() + max;
        loop {
            if let Some(t) = self.acks_since(since).into_iter().min() {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("no upload acknowledged within {max:?} of {since:?}; logs:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an upload is acknowledged after `end` and until every node in `back` (a
    /// restarted node, or those a partition cut off) is ready, out of any view change, and
    /// has applied what the home node had at `end`; returns when each came.
    async fn recover(&self, end: Duration, back_nodes: &[usize]) -> Result<(Duration, Option<Duration>)> {
        let home = self.cluster.health(self.home).await;
        let applied_at_end = home.as_ref().and_then(|h| h["ledger"]["applied_seq"].as_u64());
        let deadline = Instant::now() + RECOVERY_MAX;
        let (mut back, mut rejoined) = (None, None);
        let mut waiting: Vec<usize> = back_nodes.to_vec();
        loop {
            if back.is_none() {
                back = self.acks_since(end).into_iter().min();
            }
            let mut still = Vec::new();
            for &node in &waiting {
                let h = self.cluster.health(node).await;
                // Out of any view change. It may be following without voting (after a view
                // change the others never joined); the report lists such nodes.
                let caught_up = h.as_ref().is_some_and(|h| {
                    h["ready"] == true
                        && h["in_view_change"] == false
                        && h["ledger"]["applied_seq"].as_u64() >= applied_at_end
                });
                if !caught_up {
                    still.push(node);
                }
            }
            waiting = still;
            if waiting.is_empty() && rejoined.is_none() && !back_nodes.is_empty() {
                rejoined = Some(self.now());
            }
            if let Some(back) = back {
                if waiting.is_empty() {
                    return Ok((back, rejoined));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "not recovered within {RECOVERY_MAX:?} (acknowledged: {back:?}, not caught up: {waiting:?}); logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        (0..self.n).map(|i| format!("--- node {i}\n{}", self.cluster.log(i))).collect::<Vec<_>>().join("\n")
    }

    async fn primary(&self) -> Result<usize> {
        let h = self.cluster.health(self.home).await.ok_or_else(|| anyhow!("no health from the home node"))?;
        Ok(h["view"].as_u64().ok_or_else(|| anyhow!("no view in {h}"))? as usize % self.n)
    }

    /// `k` nodes chosen at random among those not in `except`.
    fn pick(&mut self, k: usize, except: &[usize]) -> Vec<usize> {
        let mut pool: Vec<usize> = (0..self.n).filter(|i| !except.contains(i)).collect();
        let mut out = Vec::new();
        while out.len() < k && !pool.is_empty() {
            out.push(pool.swap_remove(self.rng.gen_range(0..pool.len())));
        }
        out
    }

    /// Makes `fault`, holds it for `hold`, lifts it, and measures what it cost.
    pub async fn run_fault(&mut self, fault: Fault, hold: Duration) -> Result<FaultReport> {
        // Every run starts from a live consortium.
        self.first_ack_since(self.now(), RECOVERY_MAX).await.context("not live before the fault")?;
        let f = f_of(self.n);
        let (home, cpc) = (self.home, self.cpc);
        let begin = self.now();
        let primary_at_start = self.primary().await?;
        let nodes = match fault {
            Fault::KillValidator => {
                let primary = self.primary().await?;
                let v = self.pick(1, &[home, cpc, primary]);
                self.cluster.kill(v[0])?;
                v
            }
            Fault::KillPrimary => {
                let p = self.primary().await?;
                // The home node's member cannot upload while its own node is down; that is
                // the node-restart case, measured by ClockSkew's restart.
                let p = if p == home { self.pick(1, &[home, cpc])[0] } else { p };
                self.cluster.kill(p)?;
                vec![p]
            }
            Fault::KillCpc => {
                self.cluster.kill(cpc)?;
                vec![cpc]
            }
            Fault::PartitionMinority => {
                let primary = self.primary().await?;
                let v = self.pick(f, &[home, cpc, primary]);
                self.lab.partition(&v)?;
                v
            }
            Fault::PartitionRequester => {
                ensure!(
                    ![home, cpc, self.primary().await?].contains(&self.requester),
                    "the requester's node is the primary, the uploader's or the CPC's"
                );
                self.lab.partition(&[self.requester])?;
                vec![self.requester]
            }
            Fault::PartitionPrimary => {
                let p = self.primary().await?;
                let p = if p == home || p == cpc { self.pick(1, &[home, cpc])[0] } else { p };
                let mut v = self.pick(f - 1, &[home, cpc, p]);
                v.insert(0, p);
                self.lab.partition(&v)?;
                v
            }
            Fault::PartitionHome => {
                let mut v = self.pick(f - 1, &[home, cpc]);
                v.push(home);
                self.lab.partition(&v)?;
                v
            }
            Fault::PartitionNoQuorum => {
                // n - 2f on the other side, 2f on the home side: fewer than 2f + 1 on
                // each (n < 4f + 1 for n = 3f + 1), so neither commits.
                let other = self.pick(self.n - 2 * f, &[home]);
                self.lab.partition(&other)?;
                other
            }
            Fault::Netem => {
                for i in 0..self.n {
                    self.lab.impair(i, Duration::from_millis(100), 5)?;
                }
                (0..self.n).collect()
            }
            Fault::ClockSkew => {
                self.cluster.terminate(home)?;
                // libfaketime preloaded by `env`, which execs the node: the `faketime` program
                // forks, so a signal sent to it would not reach the node. Only the wall clock
                // is skewed; the monotonic clock (timers, timeouts) runs true, as under NTP.
                ensure!(Path::new(FAKETIME_LIB).exists(), "{FAKETIME_LIB} is missing (Debian package faketime)");
                let preload = format!("LD_PRELOAD={FAKETIME_LIB}");
                let skew = format!("FAKETIME={SKEW}");
                self.cluster.spawn_with(home, &["env", &preload, &skew, "FAKETIME_DONT_FAKE_MONOTONIC=1"])?;
                self.cluster.wait_ready(&[home], RECOVERY_MAX).await?;
                vec![home]
            }
        };
        tokio::time::sleep(hold).await;
        let end = self.now();
        match fault {
            Fault::KillValidator | Fault::KillPrimary | Fault::KillCpc => self.cluster.spawn(nodes[0])?,
            Fault::PartitionMinority
            | Fault::PartitionPrimary
            | Fault::PartitionHome
            | Fault::PartitionNoQuorum
            | Fault::PartitionRequester => self.lab.heal()?,
            Fault::Netem => {
                for i in 0..self.n {
                    self.lab.clear_impairment(i)?;
                }
            }
            Fault::ClockSkew => {
                self.cluster.terminate(home)?;
                self.cluster.spawn(home)?;
            }
        }
        // Nodes that must come back: the one restarted, or those cut off (all of them after
        // a split with no quorum). The next fault starts only once they have, so that
        // faults never add up to more than f.
        let back_nodes: Vec<usize> = match fault {
            Fault::KillValidator | Fault::KillPrimary | Fault::KillCpc | Fault::ClockSkew => vec![nodes[0]],
            Fault::PartitionMinority | Fault::PartitionPrimary | Fault::PartitionHome | Fault::PartitionRequester => {
                nodes.clone()
            }
            Fault::PartitionNoQuorum | Fault::Netem => (0..self.n).collect(),
        };
        let (back, rejoined) =
            self.recover(end, &back_nodes).await.with_context(|| format!("after {fault:?} on {nodes:?}"))?;
        let mut following = Vec::new();
        for i in 0..self.n {
            if self.cluster.health(i).await.is_some_and(|h| h["following"] == true) {
                following.push(i);
            }
        }
        let acks = self.acks_since(begin);
        let mut stall = Duration::ZERO;
        let mut prev = begin;
        for t in acks.iter().copied().filter(|t| *t <= back).chain([back]) {
            stall = stall.max(t.saturating_sub(prev));
            prev = prev.max(t);
        }
        let failed: Vec<(Duration, String)> =
            self.shared.failures.lock().unwrap().iter().filter(|(t, _)| *t >= begin && *t <= back).cloned().collect();
        let report = FaultReport {
            fault,
            nodes,
            primary: primary_at_start,
            held: end - begin,
            acked_during: acks.iter().filter(|t| **t < end).count(),
            longest_stall: stall,
            recovery: back.saturating_sub(end),
            rejoined: rejoined.map(|t| t.saturating_sub(end)),
            following,
            failed_during: failed.len(),
            first_failure: failed
                .first()
                .map(|(t, why)| format!("at +{:.1} s: {why}", t.saturating_sub(begin).as_secs_f64())),
        };
        eprintln!("chaos: {report:?}");
        Ok(report)
    }

    /// Stops the load, waits until every granted request has been served and every node
    /// holds the same ledger, stops every node with SIGTERM and checks their stores.
    /// Returns (uploads acknowledged, grants served, time to identical ledgers).
    pub async fn finish(mut self) -> Result<(usize, usize, Duration)> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in std::mem::take(&mut self.workers) {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 10, w).await;
        }
        let uploads = self.shared.uploads.lock().unwrap().clone();
        let grants = self.shared.grants.lock().unwrap().clone();
        ensure!(!uploads.is_empty(), "no upload was acknowledged");
        ensure!(!grants.is_empty(), "no access request was granted");

        // Every granted request is served, those the load did not finish included.
        let (client, _) = self.cluster.client(self.requester)?;
        let by_dataset: HashMap<&str, &Upload> = uploads.iter().map(|u| (u.dataset.as_str(), u)).collect();
        for (grant, dataset) in &grants {
            let records: Value = client
                .call(Method::GET, &format!("/grants/{grant}/records?wait=120"), None)
                .await
                .with_context(|| format!("grant {grant} not served"))?;
            let got = crate::fhir::matches(&records);
            if let Some(u) = by_dataset.get(dataset.as_str()) {
                // The load's demands ask for every heart rate: the grant delivers those,
                // under pseudonyms of the grant.
                let want = crate::fhir::with_code(&u.observations, "8867-4");
                crate::fhir::delivered_as(&got, &want, grant)
                    .map_err(|e| anyhow!("grant {grant} served other records than the upload's heart rates: {e}"))?;
            }
        }

        let t = Instant::now();
        self.cluster.wait_identical(Duration::from_secs(120)).await.with_context(|| self.logs())?;
        let converged = t.elapsed();
        for i in 0..self.n {
            self.cluster.terminate(i)?;
        }
        self.check_stores(&uploads)?;
        Ok((uploads.len(), grants.len(), converged))
    }

    /// Identical blocks on every node; no transaction applied twice; every acknowledged
    /// upload registered exactly once.
    fn check_stores(&self, uploads: &[Upload]) -> Result<()> {
        let stores = (0..self.n)
            .map(|i| {
                let cfg = NodeConfig::load(&self.cluster.config(i))?;
                dualchain_node::service::open_stopped_ledger(&cfg)
            })
            .collect::<Result<Vec<_>>>()?;
        // Node 0's blocks are opened with the transactions of its archived batches.
        let archive = dualchain_node::validator::ArchivedBatches::open(stores[0].1.clone())?;
        let stores: Vec<_> = stores.into_iter().map(|(s, _)| s).collect();
        let mut registered: HashMap<String, usize> = HashMap::new();
        for chain in [Chain::Data, Chain::Access] {
            let tips: Vec<_> = stores.iter().map(|s| s.tip(chain)).collect::<Result<_, _>>()?;
            ensure!(tips.iter().all(|t| *t == tips[0]), "{chain:?} tips differ: {tips:?}");
            let mut applied = HashSet::new();
            for h in 0..tips[0].as_ref().map_or(0, |t| t.height + 1) {
                let stored = stores[0].block(chain, h)?.ok_or_else(|| anyhow!("no {chain:?} block {h}"))?;
                for (i, s) in stores.iter().enumerate().skip(1) {
                    let other = s.block(chain, h)?.map(|b| b.hash);
                    ensure!(other == Some(stored.hash), "node {i} differs at {chain:?} block {h}");
                }
                let batch = |seq, digest: &_| dualchain_ledger::Batches::payloads(&archive, seq, digest);
                for e in &Block::open(&stored, batch)?.entries {
                    if e.outcome.reason() == Some(&Reason::Duplicate) {
                        ensure!(applied.contains(&e.hash()), "a duplicate of nothing in {chain:?} block {h}");
                        continue;
                    }
                    ensure!(applied.insert(e.hash()), "a transaction applied twice in {chain:?} block {h}");
                    if !e.outcome.is_accepted() {
                        continue;
                    }
                    if let Ok(TxKind::RegisterDataset(r)) = SignedTx::from_bytes(&e.tx).map(|s| s.tx.kind) {
                        *registered.entry(hex::encode(r.dataset)).or_default() += 1;
                    }
                }
            }
        }
        for u in uploads {
            let times = registered.get(&u.dataset).copied().unwrap_or(0);
            ensure!(times == 1, "acknowledged upload {} registered {times} times", u.dataset);
        }
        Ok(())
    }
}

/// One access request by the load's requester: a demand on `dataset`, its supply, the
/// request, and (if granted) the records.
async fn request(client: &ApiClient, shared: &Shared, dataset: &str) -> Result<()> {
    let spec = json!({
        "dataset": dataset, "code": "8867-4", "unit": "/min", "value_min": 0.0, "value_max": 400.0,
        "since": 0, "until": 4_000_000_000u64, "threshold": 1,
    });
    let d: Value = client.call(Method::POST, "/demands", Some(&spec)).await?;
    let demand = d["demand"].as_str().ok_or_else(|| anyhow!("no demand id in {d}"))?.to_string();
    let d: Value = client.call(Method::GET, &format!("/demands/{demand}?wait=60"), None).await?;
    ensure!(!d["supplied_by"].is_null(), "not supplied: {d}");
    let a: Value = client.call(Method::POST, "/access", Some(&json!({"demand": demand, "duration_s": 3600}))).await?;
    ensure!(a["granted"] == true, "not granted: {a}");
    let grant = a["request"].as_str().ok_or_else(|| anyhow!("no request id in {a}"))?.to_string();
    shared.grants.lock().unwrap().push((grant.clone(), dataset.to_string()));
    let _: Value = client.call(Method::GET, &format!("/grants/{grant}/records?wait=60"), None).await?;
    Ok(())
}

/// The fault matrix as a Markdown table.
pub fn table(n: usize, reports: &[FaultReport]) -> String {
    let mut s = format!(
        "| n = {n}: fault | nodes | primary | held | acked during | longest stall | first ack after the end | touched nodes caught up | following after |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in reports {
        s.push_str(&format!(
            "| {:?} | {:?} | {} | {:.1} s | {} | {:.1} s | {:.1} s | {} | {:?} |\n",
            r.fault,
            r.nodes,
            r.primary,
            r.held.as_secs_f64(),
            r.acked_during,
            r.longest_stall.as_secs_f64(),
            r.recovery.as_secs_f64(),
            r.rejoined.map_or("—".to_string(), |t| format!("{:.1} s", t.as_secs_f64())),
            r.following
        ));
    }
    s
}
