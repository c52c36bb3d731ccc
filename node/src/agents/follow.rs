//! How an agent follows its home validator's ledger: the ledger is the agent's durable
//! outbox.
//!
//! Every reaction an agent owes is derived from an accepted transaction, and the ledger
//! keeps those durably; every reaction checks the ledger before it acts, so running one
//! twice does nothing the second time. So the agent keeps no outbox file of its own:
//! - on start it replays the whole ledger (from height 0 of each chain), which restores
//!   whatever was due when the node stopped or crashed;
//! - when the broadcast of applied batches lags, it replays the ledger from the blocks past
//!   those it saw instead of losing the batches it missed;
//! - a reaction that fails is retried with exponential backoff ([`Retry`]), for as long as
//!   the node runs (the failure is logged and counted each time);
//! - at most [`Retry::running_max`] reactions run at once (a flood of demands queues, it
//!   does not start a task each); waiting reactions keep their transaction in memory up
//!   to [`READY_LOADED_MAX`] and beyond that only its hash (read back from the ledger);
//! - reactions come in two classes: *duties* (re-keys for grants, receipts, credentials)
//!   and *bulk* work that any member can cause in volume ([`is_bulk`]: supply proofs, each
//!   seconds of CPU, asked for by anyone's demand). Duties start first; bulk reactions take
//!   at most [`Retry::bulk_running_max`] of the slots, so a flood of valid demands never
//!   delays a grant's re-key;
//! - on stop ([`Agent::drain`]) it takes nothing new and waits, within a bound, for the
//!   reactions already running.
//!
//! DESIGN.md's agents react once per event; the retries, the lag catch-up and the drain
//! are this module's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use dualchain_ledger::tx::{Hash, SignedTx, TxKind};
use dualchain_ledger::{Applied, Heights, Ledger};
use tokio::sync::{broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{Activity, Log, Reaction};
use crate::member::client::Client;

/// Waiting reactions whose transaction is kept in memory; further ones keep only its hash.
pub const READY_LOADED_MAX: usize = 1024;

/// How reactions are retried and how many run at once.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// The wait before the first retry; it doubles with each failure.
    pub first: Duration,
    /// The longest wait between retries.
    pub max: Duration,
    /// Reactions running at once.
    pub running_max: usize,
    /// Bulk reactions running at once (at most `running_max - 1`: one slot stays a duty's).
    pub bulk_running_max: usize,
}

impl Default for Retry {
    fn default() -> Self {
        Self { first: Duration::from_secs(1), max: Duration::from_secs(300), running_max: 8, bulk_running_max: 2 }
    }
}

/// Bulk work: a reaction any member can cause in volume (a demand costs its author one
/// transaction; its supply proof costs the owner's node seconds of CPU).
pub(crate) fn is_bulk(kind: &TxKind) -> bool {
    matches!(kind, TxKind::Demand { .. } | TxKind::AnonymousDemand(_))
}

impl Retry {
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self.first.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min(self.max)
    }
}

/// A running agent: stop it with [`Agent::drain`].
pub struct Agent {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Agent {
    /// Stops taking new work and waits up to `within` for the reactions running; then
    /// aborts what is left. Returns whether everything finished in time.
    pub async fn drain(mut self, within: Duration) -> bool {
        let _ = self.stop.send(true);
        match tokio::time::timeout(within, &mut self.task).await {
            Ok(_) => true,
            Err(_) => {
                self.task.abort();
                false
            }
        }
    }
}

/// [`follow`] for a member's agent: its home validator's ledger and batches, default retries.
pub(crate) fn follow_home(
    who: &str,
    log: Log,
    client: &Client,
    react: impl Fn(TxKind) -> Option<Reaction> + Send + Sync + 'static,
) -> Agent {
    let home = client.home();
    follow(who, log, home.ledger.clone(), home.subscribe(), Retry::default(), is_bulk, react)
}

/// Follows `ledger` through `events` and runs `react` for every accepted transaction that
/// has a reaction (see the module docs).
pub(crate) fn follow(
    who: &str,
    log: Log,
    ledger: Arc<Ledger>,
    events: broadcast::Receiver<Arc<Applied>>,
    retry: Retry,
    bulk: fn(&TxKind) -> bool,
    react: impl Fn(TxKind) -> Option<Reaction> + Send + Sync + 'static,
) -> Agent {
    let (stop, stopped) = watch::channel(false);
    let f = Follower {
        who: who.to_string(),
        log,
        ledger,
        retry,
        bulk,
        react: Box::new(react),
        seen: HashSet::new(),
        next: Heights::default(),
        ready: [VecDeque::new(), VecDeque::new()],
        loaded: 0,
        running_bulk: 0,
        failures: HashMap::new(),
        retries: BinaryHeap::new(),
        running: JoinSet::new(),
        running_ids: HashMap::new(),
    };
    Agent { task: tokio::spawn(f.run(events, stopped)), stop }
}

type React = Box<dyn Fn(TxKind) -> Option<Reaction> + Send + Sync>;

struct Follower {
    who: String,
    log: Log,
    ledger: Arc<Ledger>,
    retry: Retry,
    bulk: fn(&TxKind) -> bool,
    react: React,
    /// Transactions with a reaction, queued at least once (replays and live events meet here).
    seen: HashSet<Hash>,
    /// The blocks past those seen: where a replay after a lag starts.
    next: Heights,
    /// Reactions due, oldest first, duties (0) and bulk work (1); the transaction while
    /// `loaded < READY_LOADED_MAX`.
    ready: [VecDeque<(Hash, Option<TxKind>)>; 2],
    loaded: usize,
    running_bulk: usize,
    /// Failures so far of each reaction that has not succeeded yet.
    failures: HashMap<Hash, u32>,
    retries: BinaryHeap<Reverse<(Instant, Hash, bool)>>,
    running: JoinSet<Result<()>>,
    running_ids: HashMap<tokio::task::Id, (Hash, bool)>,
}

impl Follower {
    async fn run(mut self, mut events: broadcast::Receiver<Arc<Applied>>, mut stopped: watch::Receiver<bool>) {
        self.replay().await;
        loop {
            self.launch();
            let next_retry = self.retries.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                // A stop, or the handle dropped.
                _ = stopped.changed() => break,
                event = events.recv() => match event {
                    Ok(applied) => {
                        self.next.after(&applied);
                        for t in &applied.txs {
                            if let (Some(tx), true) = (&t.tx, t.outcome.is_accepted()) {
                                self.enqueue(t.hash, tx.kind.clone());
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.fail("following the ledger", format!("missed {n} batches; replaying the ledger"));
                        self.replay().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => self.finished(done),
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {
                    let now = Instant::now();
                    while let Some(Reverse((at, hash, bulk))) = self.retries.peek().copied() {
                        if at > now {
                            break;
                        }
                        self.retries.pop();
                        self.ready[usize::from(bulk)].push_back((hash, None));
                    }
                }
            }
        }
        // Draining: nothing new starts; the running reactions finish (or the caller's
        // bound aborts this task, and them with it).
        while let Some(done) = self.running.join_next_with_id().await {
            self.finished(done);
        }
    }

    fn fail(&self, what: &str, error: String) {
        self.log.push(&self.who, Activity::Failed { what: what.to_string(), error });
    }

    /// Enqueues the accepted transactions of the blocks past those seen (all of them at
    /// start), read off the async workers.
    async fn replay(&mut self) {
        let (ledger, from) = (self.ledger.clone(), self.next);
        match tokio::task::spawn_blocking(move || ledger.accepted_txs_since(from)).await {
            Ok(Ok((past, next))) => {
                self.next = next;
                past.into_iter().for_each(|(hash, tx)| self.enqueue(hash, tx.kind));
            }
            Ok(Err(e)) => self.fail("replaying the ledger", format!("{e:#}")),
            Err(e) => self.fail("replaying the ledger", format!("{e}")),
        }
    }

    fn enqueue(&mut self, hash: Hash, kind: TxKind) {
        if self.seen.contains(&hash) || (self.react)(kind.clone()).is_none() {
            return;
        }
        self.seen.insert(hash);
        let queue = &mut self.ready[usize::from((self.bulk)(&kind))];
        if self.loaded < READY_LOADED_MAX {
            self.loaded += 1;
            queue.push_back((hash, Some(kind)));
        } else {
            queue.push_back((hash, None));
        }
    }

    /// Starts due reactions up to the concurrency bounds, duties first.
    fn launch(&mut self) {
        let bulk_max = self.retry.bulk_running_max.min(self.retry.running_max.saturating_sub(1)).max(1);
        while self.running.len() < self.retry.running_max {
            let bulk = self.ready[0].is_empty();
            if bulk && self.running_bulk >= bulk_max {
                return;
            }
            let Some((hash, kind)) = self.ready[usize::from(bulk)].pop_front() else { return };
            let kind = match kind {
                Some(k) => {
                    self.loaded -= 1;
                    k
                }
                None => match self.stored_kind(&hash) {
                    Ok(k) => k,
                    Err(e) => {
                        self.failed(hash, bulk, e.context("reading the transaction back from the ledger"));
                        continue;
                    }
                },
            };
            let what = kind.name();
            if let Some(fut) = (self.react)(kind) {
                let handle =
                    self.running.spawn(async move { fut.await.map_err(|e| e.context(format!("reacting to {what}"))) });
                self.running_ids.insert(handle.id(), (hash, bulk));
                self.running_bulk += usize::from(bulk);
            }
        }
    }

    fn stored_kind(&self, hash: &Hash) -> Result<TxKind> {
        let (_, entry) =
            self.ledger.tx(hash)?.ok_or_else(|| anyhow!("transaction {} is not on the ledger", hex::encode(hash)))?;
        Ok(SignedTx::from_bytes(&entry.tx)?.tx.kind)
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, Result<()>), tokio::task::JoinError>) {
        let (id, outcome) = match done {
            Ok((id, r)) => (id, r),
            Err(e) => (e.id(), Err(anyhow!("the reaction panicked: {e}"))),
        };
        let Some((hash, bulk)) = self.running_ids.remove(&id) else { return };
        self.running_bulk -= usize::from(bulk);
        match outcome {
            Ok(()) => {
                self.failures.remove(&hash);
            }
            Err(e) => self.failed(hash, bulk, e),
        }
    }

    /// Logs a failed attempt and schedules the next one.
    fn failed(&mut self, hash: Hash, bulk: bool, e: anyhow::Error) {
        let failures = {
            let f = self.failures.entry(hash).or_insert(0);
            *f += 1;
            *f
        };
        let wait = self.retry.backoff(failures);
        self.fail("reacting to the ledger", format!("{e:#} (attempt {failures}; retrying in {wait:?})"));
        self.retries.push(Reverse((Instant::now() + wait, hash, bulk)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use dualchain_crypto::cbsre::DelegatingSecretKey;
    use dualchain_crypto::cert::{AttributeSet, CertificateAuthority, CertificateFields, Role};
    use dualchain_crypto::sign::SigningKeypair;
    use dualchain_crypto::Codec;
    use dualchain_ledger::tx::Tx;
    use dualchain_ledger::{Committed, Genesis};
    use dualchain_prover::backend::CpuBackend;
    use dualchain_storage::memory::MemoryEngine;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    const T0_S: u64 = 1_790_000_000;

    /// A ledger on a memory store and a CA whose members it admits (no proofs here).
    struct World {
        ca: CertificateAuthority,
        ledger: Arc<Ledger>,
        seq: u64,
        rng: ChaCha20Rng,
    }

    impl World {
        fn new() -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let ca = CertificateAuthority::generate("ca", &mut rng).unwrap();
            let genesis = Genesis::without_proofs(ca.public().clone());
            let ledger = Ledger::open(Arc::new(MemoryEngine::new()), genesis, Arc::new(CpuBackend)).unwrap();
            Self { ca, ledger: Arc::new(ledger), seq: 0, rng }
        }

        /// A batch registering one new member per name; returns what it applied.
        fn register(&mut self, names: &[&str]) -> Arc<Applied> {
            let payloads: Vec<Vec<u8>> = names
                .iter()
                .map(|name| {
                    let key = SigningKeypair::generate(&mut self.rng);
                    let cert = self
                        .ca
                        .issue(CertificateFields {
                            serial: 1,
                            subject: name.to_string(),
                            role: Role::Hospital,
                            signing_key: key.public(),
                            delegating_key: DelegatingSecretKey::generate(&mut self.rng).public(),
                            attribute_commitment: AttributeSet::new(["role:hospital"]).unwrap().commit(&[0; 32]),
                            not_before: T0_S - 10,
                            not_after: T0_S + 3600,
                        })
                        .unwrap();
                    let kind = TxKind::RegisterMember { certificate: cert.to_bytes() };
                    SignedTx::sign(Tx { sender: name.to_string(), nonce: 1, kind }, &key, self.ledger.tx_domain())
                        .unwrap()
                        .to_bytes()
                })
                .collect();
            self.seq += 1;
            let applied = self
                .ledger
                .apply(&Committed {
                    seq: self.seq,
                    time_ms: T0_S * 1000 + self.seq,
                    digest: [self.seq as u8; 32],
                    certificate: vec![],
                    payloads: payloads.iter().map(Vec::as_slice).collect(),
                    validator_changes: vec![],
                })
                .unwrap()
                .unwrap();
            assert!(applied.txs.iter().all(|t| t.outcome.is_accepted()), "{:?}", applied.txs);
            Arc::new(applied)
        }
    }

    fn member(kind: &TxKind) -> Option<String> {
        match kind {
            TxKind::RegisterMember { certificate } => {
                Some(dualchain_crypto::cert::Certificate::from_bytes(certificate).unwrap().fields.subject)
            }
            _ => None,
        }
    }

    /// Attempts per member, and a reaction that fails a member's first `fail_first` attempts.
    #[derive(Clone, Default)]
    struct Attempts(Arc<Mutex<HashMap<String, usize>>>);

    impl Attempts {
        fn react(&self, fail_first: usize) -> impl Fn(TxKind) -> Option<Reaction> + Send + Sync + 'static {
            let me = self.clone();
            move |kind| {
                let who = member(&kind)?;
                let me = me.clone();
                Some(Box::pin(async move {
                    let n = {
                        let mut m = me.0.lock().unwrap();
                        let n = m.entry(who.clone()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    anyhow::ensure!(n > fail_first, "{who}: attempt {n} fails");
                    Ok(())
                }) as Reaction)
            }
        }
        fn get(&self) -> HashMap<String, usize> {
            self.0.lock().unwrap().clone()
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    const FAST: Retry =
        Retry { first: Duration::from_millis(10), max: Duration::from_millis(40), running_max: 8, bulk_running_max: 2 };

    fn no_bulk(_: &TxKind) -> bool {
        false
    }

    #[tokio::test]
    async fn replays_from_height_zero_and_retries_failures_with_backoff() {
        let mut w = World::new();
        w.register(&["a"]); // block 0 of the data chain
        w.register(&["b"]);
        let (tx, rx) = broadcast::channel(16);
        let log = Log::default();
        let attempts = Attempts::default();
        let agent = follow("t", log.clone(), w.ledger.clone(), rx, FAST, no_bulk, attempts.react(2));
        until("both reactions to succeed", || attempts.get().values().filter(|n| **n == 3).count() == 2).await;
        // Live events still arrive, and a replayed transaction is not dispatched again.
        tx.send(w.register(&["c"])).unwrap();
        until("the live reaction", || attempts.get().get("c") == Some(&3)).await;
        assert!(agent.drain(Duration::from_secs(5)).await);
        assert_eq!(attempts.get(), HashMap::from([("a".into(), 3), ("b".into(), 3), ("c".into(), 3)]));
        assert_eq!(log.failures(), 6, "each failed attempt is logged");
        assert!(FAST.backoff(1) == FAST.first && FAST.backoff(2) == 2 * FAST.first && FAST.backoff(30) == FAST.max);
    }

    #[tokio::test]
    async fn a_lagging_follower_catches_up_from_the_ledger() {
        let mut w = World::new();
        let (tx, rx) = broadcast::channel(1);
        let log = Log::default();
        let attempts = Attempts::default();
        let agent = follow("t", log.clone(), w.ledger.clone(), rx, FAST, no_bulk, attempts.react(0));
        // Let it replay the empty ledger and wait for batches. On this single-threaded
        // runtime it does not run between the sends: the channel of one keeps only the last
        // batch, and the follower finds itself behind and reads the rest from the ledger.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for name in ["a", "b", "c", "d"] {
            tx.send(w.register(&[name])).unwrap();
        }
        until("every reaction", || attempts.get().len() == 4).await;
        assert!(agent.drain(Duration::from_secs(5)).await);
        assert!(attempts.get().values().all(|n| *n == 1), "each once: {:?}", attempts.get());
        assert!(log
            .entries()
            .iter()
            .any(|(_, a)| matches!(a, Activity::Failed { error, .. } if error.contains("missed"))));
    }

    /// Reactions that each take `work` and count how many run at once, the most at once,
    /// and how many finished.
    #[derive(Clone, Default)]
    struct Busy {
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        done: Arc<AtomicUsize>,
    }

    impl Busy {
        async fn work(self, work: Duration) -> Result<()> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(work).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn done(&self) -> usize {
            self.done.load(Ordering::SeqCst)
        }
        fn peak(&self) -> usize {
            self.peak.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn reactions_run_a_bounded_number_at_once() {
        let mut w = World::new();
        let names: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
        w.register(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let busy = Busy::default();
        let react = {
            let busy = busy.clone();
            move |kind: TxKind| {
                member(&kind)?;
                Some(Box::pin(busy.clone().work(Duration::from_millis(20))) as Reaction)
            }
        };
        let (_tx, rx) = broadcast::channel(4);
        let retry = Retry { running_max: 2, ..FAST };
        let agent = follow("t", Log::default(), w.ledger.clone(), rx, retry, no_bulk, react);
        until("all nine", || busy.done() == 9).await;
        assert!(agent.drain(Duration::from_secs(5)).await);
        assert_eq!(busy.peak(), 2);
    }

    #[tokio::test]
    async fn a_stop_drains_running_reactions_within_its_bound() {
        let mut w = World::new();
        w.register(&["slow"]);
        let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let react = |forever: bool, started: Arc<AtomicUsize>, finished: Arc<AtomicUsize>| {
            move |kind: TxKind| {
                member(&kind)?;
                let (started, finished) = (started.clone(), finished.clone());
                Some(Box::pin(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(if forever { Duration::from_secs(3600) } else { Duration::from_millis(100) })
                        .await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }) as Reaction)
            }
        };
        let spawn = |forever: bool, started: &Arc<AtomicUsize>, finished: &Arc<AtomicUsize>| {
            let (_tx, rx) = broadcast::channel(4);
            follow(
                "t",
                Log::default(),
                w.ledger.clone(),
                rx,
                FAST,
                no_bulk,
                react(forever, started.clone(), finished.clone()),
            )
        };
        let agent = spawn(false, &started, &finished);
        until("the reaction to start", || started.load(Ordering::SeqCst) == 1).await;
        assert!(agent.drain(Duration::from_secs(5)).await, "a reaction of 100 ms drains");
        assert_eq!(finished.load(Ordering::SeqCst), 1, "the running reaction finished before the stop returned");

        let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let agent = spawn(true, &started, &finished);
        until("the reaction to start", || started.load(Ordering::SeqCst) == 1).await;
        let t = Instant::now();
        assert!(!agent.drain(Duration::from_millis(100)).await, "an endless reaction is cut at the bound");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_flood_of_bulk_work_is_bounded_and_never_delays_a_duty() {
        let mut w = World::new();
        let names: Vec<String> = (0..1000).map(|i| format!("bulk-{i}")).collect();
        w.register(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let busy = Busy::default();
        let duty_at = Arc::new(Mutex::new(None));
        let react = {
            let (busy, duty_at) = (busy.clone(), duty_at.clone());
            move |kind: TxKind| {
                if member(&kind)? == "duty" {
                    // When it runs (`react` is also called when it is queued).
                    let (busy, duty_at) = (busy.clone(), duty_at.clone());
                    return Some(Box::pin(async move {
                        *duty_at.lock().unwrap() = Some(busy.done());
                        Ok(())
                    }) as Reaction);
                }
                Some(Box::pin(busy.clone().work(Duration::from_millis(2))) as Reaction)
            }
        };
        fn bulk(kind: &TxKind) -> bool {
            member(kind).is_some_and(|m| m.starts_with("bulk"))
        }
        let (tx, rx) = broadcast::channel(4);
        let agent = follow("t", Log::default(), w.ledger.clone(), rx, FAST, bulk, react);
        until("the flood to start", || busy.done() >= 10).await;
        // A duty arrives behind 990 waiting bulk reactions: it starts at once.
        tx.send(w.register(&["duty"])).unwrap();
        until("the duty", || duty_at.lock().unwrap().is_some()).await;
        let done_before_duty = duty_at.lock().unwrap().unwrap();
        assert!(done_before_duty < 500, "the duty waited for {done_before_duty} bulk reactions");
        until("the whole flood", || busy.done() == 1000).await;
        assert!(agent.drain(Duration::from_secs(5)).await);
        assert_eq!(busy.peak(), FAST.bulk_running_max, "bulk work keeps to its slots");
    }
}
