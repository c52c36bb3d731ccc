//! The sans-IO PBFT replica (Castro & Liskov, "Practical Byzantine Fault Tolerance and
//! Proactive Recovery", TOCS 20(4), 2002; OSDI '99). No sockets, clocks or disks: every
//! input carries the time, every effect comes back in an [`Output`] the host performs.
//!
//! Host contract (as raft-rs's `Ready`): perform `output.persist` (one synced write) before
//! any of `output.send`, then hand `output.deliver` to the application. A replica never
//! sends a message whose justification could be lost in a crash.
//!
//! Files: this one holds the state, requests and the normal case (§2.3);
//! [`dissemination`] requests sent as parts by every replica and ordered by reference
//! (Narwhal's workers, beyond DESIGN.md); [`checkpoint`]
//! garbage collection and state transfer (§2.4, §5.3); [`view_change`] view changes (§2.5);
//! [`epoch`] validator set changes taking effect;
//! [`state_root`] agreement on the application's state after checkpoints;
//! [`recovery`] restart from the persisted log, which [`persisted`] reads back and whose
//! archive it encodes (it imports nothing of the replica, so the modules form a DAG; the
//! other files only add `impl Replica` blocks).
//!
//! Who votes is the validator set that governs the sequence numbers above the stable
//! checkpoint ([`crate::membership`]): quorums, primaries and senders are checked against
//! it, and certificates for a given sequence number against the set that governed it.

mod checkpoint;
mod dissemination;
mod epoch;
mod persisted;
mod recovery;
mod state_root;
mod view_change;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_storage::consensus::LogWrite;

use crate::config::{Config, ConfigError};
use crate::membership::{Epochs, Membership, RECONFIGURE_CLIENT};
use crate::message::{
    hash, Batch, BatchReply, CheckpointProof, CheckpointVote, CommittedEntry, Digest, FetchBatch, Forward, Header,
    Message, NewView, Phase, Prepared, Refs, ReplicaId, Request, RequestKey, Signed, ViewChange, Vote,
    REQUEST_PAYLOAD_LEN_MAX,
};

pub use persisted::{archive_bytes, parse_archive, split_archive, split_record, Archived, Recovered, RecoveryError};
pub use state_root::{Divergence, ROOTS_KEPT};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every other replica.
    All,
    One(ReplicaId),
}

/// A committed batch handed to the application, with the positions of the requests that
/// are new (the others were executed before, within the de-duplication horizon).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub entry: CommittedEntry,
    pub fresh: Vec<usize>,
    /// The ledger time after this batch: the running maximum of batch times (UNIX ms),
    /// identical at every replica.
    pub time_ms: u64,
}

/// The reply for one executed request (§2.3 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The executed request's [`RequestKey`]: a client waits for the reply to its own
    /// payload, not to a squatter's of the same `(client, id)`.
    pub key: RequestKey,
    pub seq: u64,
}

/// Things the host may log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This replica started a view change to this view.
    ViewChangeStarted(u64),
    /// This replica entered a view.
    ViewEntered(u64),
    /// A checkpoint became stable.
    Stable(u64),
    /// Asked a peer for committed batches from this sequence number.
    StateRequested { peer: ReplicaId, from_seq: u64 },
    /// A stable checkpoint's digest differs from this replica's history: it executed
    /// something else. Never expected; the replica refetches.
    Diverged(u64),
    /// This replica was alone in a view change to `left` while a quorum went on committing
    /// in `view`: it went back to `view`, where it follows without voting until the
    /// consortium reaches `left` ([`view_change`] explains why that is safe).
    Rejoined { view: u64, left: u64 },
    /// This replica's application state root departs from the one a quorum reported for
    /// the same checkpoint ([`state_root`]): the application must stop and be repaired.
    StateDiverged(Divergence),
    /// A view change to `from` stalled short of 2f + 1; this replica joined `to`, a higher
    /// view another replica is changing to.
    StalledViewChangeJoined { from: u64, to: u64 },
    /// f + 1 replicas were seen ordering in `view`, above this replica's view `from` (it
    /// was cut off or down while they changed view): it moved to `view` to catch up.
    BehindView { view: u64, from: u64 },
    /// A validator set change was executed at `seq`: the set of `epoch` governs the
    /// sequence numbers above `after_seq`.
    Reconfiguration { seq: u64, epoch: u64, after_seq: u64 },
    /// A reconfiguration request executed at `seq` was refused (by every correct replica
    /// alike).
    ReconfigurationRefused { seq: u64, reason: String },
    /// The stable checkpoint reached a change's `after_seq`: this replica now works in
    /// `epoch`, as a voter when `member`.
    EpochEntered { epoch: u64, member: bool },
    /// `peer` signed a message no correct replica sends (a pre-prepare it may not make, an
    /// invalid view change or certificate, ...): the host counts it against the peer and
    /// throttles, then disconnects it (the `standing` module).
    PeerFault { peer: ReplicaId, reason: &'static str },
}

/// Everything a step asks the host to do.
#[derive(Debug, Default)]
pub struct Output {
    /// Write first (one synced write).
    pub persist: LogWrite,
    /// Then send.
    pub send: Vec<(Target, Arc<Message>)>,
    /// Committed batches, in sequence order, to apply.
    pub deliver: Vec<Delivered>,
    /// Replies for executed requests.
    pub replies: Vec<Reply>,
    /// Peers that asked for committed entries from a sequence number: answer with
    /// [`Replica::state_reply`].
    pub serve_state: Vec<(ReplicaId, u64)>,
    pub events: Vec<Event>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.send.is_empty()
            && self.deliver.is_empty()
            && self.replies.is_empty()
            && self.serve_state.is_empty()
            && self.events.is_empty()
    }
}

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the replica's request queue is full; retry later")]
    Busy,
    #[error("a request with this client and id is already pending or executed")]
    Duplicate,
    #[error("request payload larger than {REQUEST_PAYLOAD_LEN_MAX} bytes")]
    TooLarge,
}

/// Counters of what the replica did and dropped.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Messages dropped, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    pub view_changes: u64,
    pub batches_committed: u64,
    pub requests_committed: u64,
    pub state_entries_applied: u64,
    /// Own clients' requests refused by admission control.
    pub refused_busy: u64,
}

/// Per-sequence-number state of the log (§2.3).
#[derive(Debug, Default)]
struct Slot {
    /// The view the fields below belong to.
    view: u64,
    pre_prepare: Option<Signed<Header>>,
    batch: Option<Arc<Batch>>,
    /// The primary's own proposal by reference (what it sends and re-sends for the batch).
    refs: Option<Arc<Refs>>,
    prepares: BTreeMap<ReplicaId, Signed<Vote>>,
    commits: BTreeMap<ReplicaId, Signed<Vote>>,
    sent_prepare: bool,
    sent_commit: bool,
    committed: bool,
    /// The prepared certificate of the highest view (kept across views, for VIEW-CHANGE).
    prepared: Option<Prepared>,
    /// When this replica last sent its messages for the slot (retransmission).
    sent_at_ms: u64,
}

impl Slot {
    fn reset_to(&mut self, view: u64) {
        self.view = view;
        self.pre_prepare = None;
        self.batch = None;
        self.refs = None;
        self.prepares.clear();
        self.commits.clear();
        self.sent_prepare = false;
        self.sent_commit = false;
        self.committed = false;
    }
}

/// Batch delays a part waits to fill ([`Replica::part_delay_ms`]).
const PART_DELAY_FACTOR: u64 = 4;

/// Largest exponent of the view-change timeout.
const VIEW_CHANGE_BACKOFF_MAX: u32 = 3;

struct Pending {
    request: Request,
    arrival_ms: u64,
    /// Submitted to this replica by its own client (its member's node), not passed on by
    /// another replica. A replica vouches for its own clients' requests: while one waits,
    /// it relays it to every replica, so all of them start their timers (§2.1's client
    /// broadcast, done by the replica because a member's node submits to it alone).
    own: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Normal,
    /// Sent VIEW-CHANGE for `self.view`; waiting for its NEW-VIEW. The deadline is armed
    /// only once 2f + 1 view changes for the view are in (§2.5.2), so a replica cut off
    /// from the others does not run through views alone.
    ViewChanging {
        deadline_ms: Option<u64>,
    },
}

/// One PBFT replica.
pub struct Replica {
    cfg: Config,
    key: SigningKeypair,
    /// Every validator key by replica id, and the set of each epoch.
    epochs: Epochs,
    view: u64,
    status: Status,
    /// Consecutive failed view changes (the timeout doubles with each).
    view_change_attempts: u32,
    /// The view this replica sent a VIEW-CHANGE for and then went back from, because a
    /// quorum kept committing in a lower view. Until the consortium reaches it, the replica
    /// follows without voting (see [`view_change`]).
    left_view: Option<u64>,
    /// The highest sequence number this replica had seen when it last sent a VIEW-CHANGE:
    /// a commit above it shows that the quorum went on without this replica.
    seen_at_view_change: u64,
    /// The stable checkpoint: h, the low watermark.
    stable: CheckpointProof,
    slots: BTreeMap<u64, Slot>,
    /// Batches of log entries by digest (any view), for new views and peers' fetches.
    batches: HashMap<Digest, Arc<Batch>>,
    /// New-view pre-prepares waiting for their batch.
    awaiting_batch: HashMap<Digest, Vec<u64>>,
    /// Batches this replica stored (each once: records and the archive refer to them by
    /// digest), by sequence number and digest; `true` once the archive refers to it. The
    /// others are swept when a stable checkpoint passes their sequence number.
    stored_batches: BTreeMap<(u64, Digest), bool>,
    last_executed: u64,
    /// The history digest after `last_executed` (the checkpoint digest, §2.4).
    history: Digest,
    /// The ledger time after `last_executed` (running maximum of batch times).
    time_ms: u64,
    /// The host's wall clock (UNIX ms) as last observed; 0 when the host has none.
    wall_ms: u64,
    /// Own history digests at checkpoint sequence numbers above the stable one.
    own_checkpoints: BTreeMap<u64, Digest>,
    /// Checkpoint votes received, by sequence number.
    checkpoint_votes: BTreeMap<u64, BTreeMap<ReplicaId, Signed<CheckpointVote>>>,
    /// Application state roots, own and reported ([`state_root`]).
    roots: state_root::Roots,
    next_seq: u64,
    pending: BTreeMap<RequestKey, Pending>,
    /// Encoded bytes of the pending requests.
    pending_bytes: usize,
    /// Pending requests in arrival order (entries of executed requests are trimmed lazily).
    arrivals: VecDeque<(u64, RequestKey)>,
    /// Primary: requests not yet proposed, in arrival order.
    queue: VecDeque<RequestKey>,
    queue_bytes: usize,
    /// Primary: requests in proposed, not yet executed batches.
    proposed: BTreeSet<RequestKey>,
    executed: BTreeMap<RequestKey, u64>,
    executed_order: VecDeque<(u64, RequestKey)>,
    /// Dissemination apart from ordering ([`dissemination`]).
    parts: dissemination::Parts,
    /// Backup: requests to pass on to the primary (with dissemination: this replica's
    /// next part), with their keys (a part names its requests' keys: not hashed again).
    forward_buf: Vec<(RequestKey, Request)>,
    forward_bytes: usize,
    forward_since_ms: Option<u64>,
    view_changes: BTreeMap<u64, BTreeMap<ReplicaId, Signed<ViewChange>>>,
    /// (view, sender) of view changes found invalid: a view change's validity depends on its
    /// own contents only, so a correct replica never sends one, and the sender's further view
    /// changes for that view are dropped unchecked (checking costs up to hundreds of
    /// signatures). Views below the current one are forgotten.
    refused_view_changes: BTreeSet<(u64, ReplicaId)>,
    /// Replicas seen ordering in views above this one, by view ([`Replica::note_view_ahead`]).
    ahead: BTreeMap<u64, BTreeSet<ReplicaId>>,
    own_view_change: Option<Signed<ViewChange>>,
    /// When this replica last entered a view change or found it stalled (see
    /// [`view_change`]: a view change without 2f + 1 joins a higher view others hold).
    view_change_since_ms: u64,
    /// The NEW-VIEW that started the current view (re-sent to laggards by the primary).
    new_view: Option<Signed<NewView>>,
    /// Time of the last execution or view entry (the progress timer).
    progress_ms: u64,
    /// When a message from any peer last arrived ([`Replica::isolated`]).
    heard_ms: u64,
    /// The progress timer counts from no earlier than this (set one timeout ahead when
    /// isolation ends, see [`Replica::note_heard`]).
    suspect_from_ms: u64,
    retransmit_at_ms: u64,
    /// The highest sequence number others showed evidence of.
    seen_seq: u64,
    /// Peers that showed a sequence number above this replica's execution: (that number,
    /// when). State requests go to them first (a peer cut off shows nothing).
    seq_ahead: BTreeMap<ReplicaId, (u64, u64)>,
    state_fetch_at_ms: u64,
    state_peer: ReplicaId,
    /// When this replica last served each peer's state request.
    state_served_ms: BTreeMap<ReplicaId, u64>,
    now_ms: u64,
    /// True while replaying the persisted log (no sends, no writes).
    replaying: bool,
    out: Output,
    stats: Stats,
}

impl Replica {
    /// A fresh genesis validator at view 0 with an empty log; `keys` are the genesis
    /// validators'.
    pub fn new(cfg: Config, key: SigningKeypair, keys: Vec<PublicKey>) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Self::with_epochs(cfg, key, keys.clone(), Epochs::genesis(keys))
    }

    /// A validator that joins after genesis, under an id at or above the genesis `n` that a
    /// reconfiguration will name: it starts from genesis (`keys` are the genesis
    /// validators') as a learner, catches up by state transfer, and votes once the change
    /// that names it takes effect ([`crate::membership`]).
    pub fn joining(cfg: Config, key: SigningKeypair, keys: Vec<PublicKey>) -> Result<Self, ConfigError> {
        if (cfg.id as usize) < cfg.n {
            return Err(ConfigError(format!("a joining validator's id {} is below n = {}", cfg.id, cfg.n)));
        }
        Self::with_epochs(cfg, key, keys.clone(), Epochs::genesis(keys))
    }

    /// A replica with the validator sets `epochs` (which extend the genesis `keys`).
    fn with_epochs(
        cfg: Config,
        key: SigningKeypair,
        keys: Vec<PublicKey>,
        epochs: Epochs,
    ) -> Result<Self, ConfigError> {
        cfg.validate_tunables()?;
        if keys.len() != cfg.n {
            return Err(ConfigError(format!("{} replica keys for n = {}", keys.len(), cfg.n)));
        }
        let own = key.public();
        match epochs.roster().get(cfg.id as usize) {
            Some(listed) if *listed != own => {
                return Err(ConfigError("the signing key is not this replica's listed key".into()))
            }
            None if epochs.roster().contains(&own) => {
                return Err(ConfigError("the signing key is listed under another replica id".into()))
            }
            _ => {}
        }
        Ok(Self {
            cfg,
            key,
            epochs,
            view: 0,
            status: Status::Normal,
            view_change_attempts: 0,
            left_view: None,
            seen_at_view_change: 0,
            stable: CheckpointProof::default(),
            slots: BTreeMap::new(),
            batches: HashMap::new(),
            awaiting_batch: HashMap::new(),
            stored_batches: BTreeMap::new(),
            last_executed: 0,
            history: [0; 32],
            time_ms: 0,
            wall_ms: 0,
            own_checkpoints: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            roots: Default::default(),
            next_seq: 1,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            arrivals: VecDeque::new(),
            queue: VecDeque::new(),
            queue_bytes: 0,
            proposed: BTreeSet::new(),
            executed: BTreeMap::new(),
            executed_order: VecDeque::new(),
            parts: dissemination::Parts::default(),
            forward_buf: Vec::new(),
            forward_bytes: 0,
            forward_since_ms: None,
            view_changes: BTreeMap::new(),
            refused_view_changes: BTreeSet::new(),
            ahead: BTreeMap::new(),
            own_view_change: None,
            view_change_since_ms: 0,
            new_view: None,
            progress_ms: 0,
            heard_ms: 0,
            suspect_from_ms: 0,
            retransmit_at_ms: 0,
            seen_seq: 0,
            seq_ahead: BTreeMap::new(),
            state_fetch_at_ms: 0,
            state_peer: 0,
            state_served_ms: BTreeMap::new(),
            now_ms: 0,
            replaying: false,
            out: Output::default(),
            stats: Stats::default(),
        })
    }

    // ---- accessors --------------------------------------------------------------------

    pub fn id(&self) -> ReplicaId {
        self.cfg.id
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn view(&self) -> u64 {
        self.view
    }
    pub fn is_primary(&self) -> bool {
        self.membership().primary(self.view) == self.cfg.id
    }
    /// The validator set this replica works in: the one that governs the sequence numbers
    /// above its stable checkpoint.
    pub fn membership(&self) -> &Membership {
        self.epochs.governing(self.stable.seq + 1)
    }
    /// Every validator set, past, present and scheduled, with the roster of keys.
    pub fn epochs(&self) -> &Epochs {
        &self.epochs
    }
    /// Whether this replica votes in its current set (a joining validator before its
    /// change takes effect, or a removed one, does not).
    pub fn is_member(&self) -> bool {
        self.membership().contains(self.cfg.id)
    }
    /// Who [`Target::All`] means: the other validators of the current set.
    pub fn peers(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        let me = self.cfg.id;
        self.membership().members.iter().copied().filter(move |r| *r != me)
    }
    pub fn in_view_change(&self) -> bool {
        self.status != Status::Normal
    }
    /// Follows the current view without voting (it went back from a view change it was
    /// alone in; see [`Event::Rejoined`]).
    pub fn is_following(&self) -> bool {
        self.follows()
    }
    pub fn last_executed(&self) -> u64 {
        self.last_executed
    }
    pub fn stable_seq(&self) -> u64 {
        self.stable.seq
    }
    /// The history digest after the last executed batch.
    pub fn history(&self) -> Digest {
        self.history
    }
    /// The agreed ledger time after the last executed batch (UNIX ms).
    pub fn ledger_time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Tells the core the host's wall clock (UNIX ms) before a step. The primary stamps
    /// batches with it; backups refuse batches stamped further than
    /// `Config::clock_skew_ms_max` from their own clock.
    pub fn observe_wall_clock(&mut self, unix_ms: u64) {
        self.wall_ms = unix_ms;
    }
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Every validator key the consortium has had, by replica id (frames from other ids
    /// are not this consortium's).
    pub fn public_keys(&self) -> &[PublicKey] {
        self.epochs.roster()
    }

    fn primary_of(&self, view: u64) -> ReplicaId {
        self.membership().primary(view)
    }

    /// The `after_seq` of a scheduled change not yet in effect here: nothing above it is
    /// accepted until it is a stable checkpoint.
    fn pending_boundary(&self) -> Option<u64> {
        let latest = self.epochs.latest();
        (latest.after_seq > self.stable.seq).then_some(latest.after_seq)
    }

    /// True when no peer has been heard from for three retransmission periods (live peers
    /// re-send something every period: votes, a checkpoint vote, their view change, relayed
    /// requests): this replica is cut off, or everyone else is down, so it cannot tell a
    /// faulty primary from its own isolation, and a view change it started could gather no
    /// quorum. Its view-change timers wait (see [`view_change`]: a lone view change leaves
    /// a replica unable to vote until the consortium reaches that view). The window is
    /// shorter than the timeout, so a replica cut off while a request waits is isolated
    /// before its timer fires.
    fn isolated(&self) -> bool {
        let window = (3 * self.cfg.retransmit_ms).min(self.cfg.view_change_timeout_ms);
        self.now_ms >= self.heard_ms + window
    }

    /// A message from a peer arrived. After isolation, the timers start afresh, and the
    /// primary gets two timeouts from the moment this replica can hear again: one for the
    /// links to come back both ways (a QUIC connection whose probes backed off during the
    /// partition, or its replacement), one as usual. Without the first, a replica that
    /// hears the others before they hear it suspects the primary alone.
    fn note_heard(&mut self) {
        if self.isolated() {
            let now = self.now_ms;
            self.progress_ms = now;
            self.suspect_from_ms = now + self.cfg.view_change_timeout_ms;
            self.view_change_since_ms = now;
            if let Status::ViewChanging { deadline_ms: Some(_) } = self.status {
                self.status = Status::ViewChanging { deadline_ms: Some(now + self.timeout_ms()) };
            }
        }
        self.heard_ms = self.now_ms;
    }

    /// The earliest time at which [`Replica::tick`] has something to do.
    pub fn next_deadline_ms(&self) -> u64 {
        let mut t = self.retransmit_at_ms;
        if self.isolated() {
            // No view-change timer runs; a message from a peer restarts them.
        } else if let Status::ViewChanging { deadline_ms } = self.status {
            t = t.min(deadline_ms.unwrap_or(self.view_change_since_ms + self.timeout_ms()));
        } else if let Some(oldest) = self.oldest_pending_ms().filter(|_| !self.is_primary()) {
            t = t.min(oldest.max(self.progress_ms).max(self.suspect_from_ms) + self.timeout_ms());
        }
        if let Some(since) = self.forward_since_ms {
            t = t.min(since + self.cfg.batch_delay_ms);
        }
        if self.is_primary() && !self.queue.is_empty() && self.window_open() {
            let oldest = self.queue.front().and_then(|k| self.pending.get(k)).map_or(self.now_ms, |p| p.arrival_ms);
            t = t.min(oldest + self.proposal_delay_ms());
        }
        if self.seen_seq > self.last_executed {
            t = t.min(self.state_fetch_at_ms.max(self.progress_ms + self.cfg.state_fetch_ms));
        }
        t
    }

    /// How long the primary lets a partial batch fill: the configured delay, once more for
    /// every batch already in flight. An idle pipeline proposes after one delay (low
    /// latency); a busy one waits while earlier batches commit, so batches grow with the
    /// load instead of the pipeline filling with small batches whose fixed costs
    /// (signatures, messages, synced writes) dominate.
    fn proposal_delay_ms(&self) -> u64 {
        let in_flight = self.next_seq.saturating_sub(self.last_executed + 1);
        self.cfg.batch_delay_ms.saturating_mul(1 + in_flight)
    }

    /// How long requests wait to fill a forward or a part. A part costs a holding vote from
    /// every replica and a certificate sent to every replica (signatures each): parts wait
    /// [`PART_DELAY_FACTOR`] batch delays, so that under load they carry hundreds of
    /// requests and those costs stay small per request.
    fn part_delay_ms(&self) -> u64 {
        if self.cfg.dissemination {
            self.cfg.batch_delay_ms.saturating_mul(PART_DELAY_FACTOR)
        } else {
            self.cfg.batch_delay_ms
        }
    }

    /// The arrival time of the oldest pending request (the progress timer's start).
    fn oldest_pending_ms(&self) -> Option<u64> {
        self.arrivals.front().map(|(t, _)| *t)
    }

    /// Drops executed requests from the front of the arrival queue (amortised O(1): every
    /// request enters and leaves it once).
    fn trim_arrivals(&mut self) {
        while let Some((t, key)) = self.arrivals.front() {
            match self.pending.get(key) {
                Some(p) if p.arrival_ms == *t => return,
                _ => {
                    self.arrivals.pop_front();
                }
            }
        }
    }

    fn timeout_ms(&self) -> u64 {
        // Doubling (§2.5.2), capped: unbounded doubling lets replicas that drifted apart
        // wait for minutes before their views meet again.
        self.cfg.view_change_timeout_ms << self.view_change_attempts.min(VIEW_CHANGE_BACKOFF_MAX)
    }

    fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    fn drop_msg(&mut self, reason: &'static str) {
        tracing::trace!(replica = self.cfg.id, reason, "consensus.msg.drop");
        *self.stats.dropped.entry(reason).or_default() += 1;
    }

    /// Drops a validly signed message that proves its signer faulty, and reports it.
    fn fault(&mut self, peer: ReplicaId, reason: &'static str) {
        self.drop_msg(reason);
        self.out.events.push(Event::PeerFault { peer, reason });
    }

    fn send(&mut self, to: Target, m: Message) {
        if !self.replaying {
            tracing::trace!(replica = self.cfg.id, to = ?to, msg = m.name(), at = ?m.position(), "consensus.msg.out");
            self.out.send.push((to, Arc::new(m)));
        }
    }

    /// Persists a message this replica accepted or sent; a pre-prepare's batch is stored
    /// once ([`Replica::store_batch`]) and the record refers to it.
    fn persist_record(&mut self, seq: u64, m: &Message) {
        if self.replaying {
            return;
        }
        if let Message::PrePrepare(_, batch) = m {
            self.store_batch(seq, batch);
        }
        self.out.persist.records.push((seq, persisted::split_record(m)));
    }

    /// Writes `batch` at `seq` unless this replica already stored it there.
    fn store_batch(&mut self, seq: u64, batch: &Batch) {
        if self.replaying {
            return;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = self.stored_batches.entry((seq, batch.digest())) {
            e.insert(false);
            self.out.persist.batches.push((seq, batch.digest(), batch.encoded().to_vec()));
        }
    }

    fn sign<T: crate::message::Body>(&self, body: T) -> Signed<T> {
        Signed::sign(&self.key, self.cfg.id, body)
    }

    /// H = h + L, and never above a scheduled change's boundary ([`crate::membership`]).
    fn high_watermark(&self) -> u64 {
        let h = self.stable.seq + self.cfg.watermark_span;
        self.pending_boundary().map_or(h, |e| h.min(e))
    }

    /// Within the watermarks, and within L of what this replica executed: a replica whose
    /// stable checkpoint jumped ahead of its execution votes no further than L past what it
    /// executed, so a validator set change it has not executed yet can take effect L
    /// sequence numbers later without it ever voting on the far side ([`crate::membership`]).
    fn in_window(&self, seq: u64) -> bool {
        seq > self.stable.seq && seq <= self.high_watermark() && seq <= self.last_executed + self.cfg.watermark_span
    }

    fn window_open(&self) -> bool {
        self.status == Status::Normal
            && self.next_seq <= self.high_watermark()
            && self.next_seq <= self.last_executed + self.cfg.window_len
    }

    fn note_seen(&mut self, seq: u64) {
        self.seen_seq = self.seen_seq.max(seq);
    }

    /// [`Replica::note_seen`] for evidence from one peer: it is ahead, and it answers.
    fn note_seen_from(&mut self, from: ReplicaId, seq: u64) {
        self.note_seen(seq);
        if seq > self.last_executed {
            let e = self.seq_ahead.entry(from).or_default();
            *e = (e.0.max(seq), self.now_ms);
        }
    }

    // ---- inputs -----------------------------------------------------------------------

    /// A client request (from this node's application or a client of this replica).
    pub fn submit(&mut self, now_ms: u64, request: Request) -> Result<Output, Rejected> {
        self.submit_keyed(now_ms, request).map(|(_, out)| out)
    }

    /// [`Replica::submit`], returning the admitted request's key ([`Request::key`]) beside
    /// the output, so the host keys its waiter by it without hashing the payload again.
    ///
    /// Admission control comes before the key: past saturation most requests are refused,
    /// and a refusal then costs two comparisons, not a digest of the payload and two map
    /// lookups. So a request that is both a duplicate and over the bound is refused as
    /// [`Rejected::Busy`]; its retry finds it a duplicate, or admits it.
    pub fn submit_keyed(&mut self, now_ms: u64, request: Request) -> Result<(RequestKey, Output), Rejected> {
        self.now_ms = self.now_ms.max(now_ms);
        if request.payload.len() > REQUEST_PAYLOAD_LEN_MAX {
            return Err(Rejected::TooLarge);
        }
        // Admission control: past saturation the backlog only adds latency.
        if self.pending.len() >= self.cfg.admission_len_max.min(self.cfg.pending_len_max)
            || self.pending_bytes + request.encoded_len() > self.cfg.admission_bytes_max.min(self.cfg.pending_bytes_max)
        {
            self.stats.refused_busy += 1;
            return Err(Rejected::Busy);
        }
        let key = request.key();
        if self.pending.contains_key(&key) || self.executed.contains_key(&key) {
            return Err(Rejected::Duplicate);
        }
        self.admit(key, request, true, true);
        self.after_step();
        Ok((key, self.take_output()))
    }

    /// Takes a request into the pending set under its `key` ([`Request::key`], computed
    /// once by the caller); a backup passes it on to the primary.
    fn admit(&mut self, key: RequestKey, request: Request, forward: bool, own: bool) {
        if !self.cfg.dissemination && self.is_primary() && self.status == Status::Normal {
            self.queue.push_back(key);
            self.queue_bytes += request.encoded_len();
        } else if forward {
            self.forward_bytes += request.encoded_len();
            self.forward_buf.push((key, request.clone()));
            self.forward_since_ms.get_or_insert(self.now_ms);
        }
        if self.pending.is_empty() {
            // The progress timer starts when the first request waits (§2.5.2).
            self.progress_ms = self.now_ms;
        }
        self.arrivals.push_back((self.now_ms, key));
        self.pending_bytes += request.encoded_len();
        self.pending.insert(key, Pending { request, arrival_ms: self.now_ms, own });
    }

    /// A message from a peer whose frame signature the host has verified
    /// ([`crate::message::verify_messages`]). Nested certificates are checked here.
    pub fn receive(&mut self, now_ms: u64, msg: Message) -> Output {
        self.now_ms = self.now_ms.max(now_ms);
        let from = msg.from();
        tracing::trace!(replica = self.cfg.id, from, msg = msg.name(), at = ?msg.position(), "consensus.msg.in");
        if from as usize >= self.epochs.roster().len() || from == self.cfg.id {
            self.drop_msg("unknown sender");
            return self.take_output();
        }
        // Ordering messages count from the current set only; checkpoint and state-root
        // votes are checked against the set of their sequence number, state requests
        // against the current and the scheduled set (a joining validator catches up).
        let ordering = matches!(
            msg,
            Message::Forward(_)
                | Message::PrePrepare(..)
                | Message::Propose(..)
                | Message::Disseminate(_)
                | Message::Holding(_)
                | Message::Available(_)
                | Message::Vote(_)
                | Message::ViewChange(_)
                | Message::NewView(_)
        );
        if ordering && !self.membership().contains(from) {
            self.drop_msg("not a validator of the current set");
            return self.take_output();
        }
        self.note_heard();
        match msg {
            Message::Forward(_) if self.cfg.dissemination => self.drop_msg("forward while disseminating"),
            Message::Forward(f) => self.on_forward(f),
            Message::PrePrepare(h, batch) => self.on_pre_prepare(h, batch),
            Message::Propose(h, refs) => self.on_propose(h, refs),
            Message::Disseminate(d) => self.on_disseminate(d),
            Message::Holding(v) => self.on_holding(v),
            Message::Available(a) => self.on_available(a),
            Message::Vote(v) => self.on_vote(v),
            Message::Checkpoint(c) => self.on_checkpoint(c),
            Message::ViewChange(vc) => self.on_view_change(vc),
            Message::NewView(nv) => self.on_new_view(nv),
            Message::FetchBatch(f) => self.on_fetch_batch(f),
            Message::BatchReply(b) => self.on_batch_reply(b.from, b.body.batch),
            Message::FetchState(f) => {
                // Serving reads up to megabytes from disk: at most once per peer per
                // retransmission period, so a faulty peer cannot turn requests into load.
                let last = self.state_served_ms.get(&f.from).copied();
                if !self.membership().contains(f.from) && !self.epochs.latest().contains(f.from) {
                    self.drop_msg("state request from a replica outside the set");
                } else if f.body.from_seq > self.last_executed + 1
                    || (f.body.from_seq > self.last_executed && self.stable.seq == 0)
                {
                    self.drop_msg("state request beyond execution");
                } else if last.is_some_and(|t| self.now_ms < t + self.cfg.retransmit_ms / 2) {
                    self.drop_msg("state request too soon");
                } else {
                    // Level with this replica: no entries, but its stable checkpoint's proof.
                    self.state_served_ms.insert(f.from, self.now_ms);
                    self.out.serve_state.push((f.from, f.body.from_seq));
                }
            }
            Message::StateReply(s) => self.on_state_reply(s),
            Message::StateRoot(v) => self.on_state_root(v),
        }
        self.after_step();
        self.take_output()
    }

    /// Time passed: cut batches, flush forwards, retransmit, suspect the primary, fetch
    /// state.
    pub fn tick(&mut self, now_ms: u64) -> Output {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        match self.status {
            _ if self.isolated() => {}
            Status::ViewChanging { deadline_ms: Some(deadline_ms) } if now >= deadline_ms => {
                // The new view did not start in time: try the next one (§2.5.2).
                self.view_change_attempts += 1;
                self.start_view_change(self.view + 1);
            }
            Status::ViewChanging { deadline_ms: None } if now >= self.view_change_since_ms + self.timeout_ms() => {
                self.join_stalled_view_change();
            }
            // Backups suspect the primary (§2.5.2); a primary never suspects itself: leaving
            // its own view only adds a view change to whatever stalled it.
            Status::Normal if !self.is_primary() && self.is_member() => {
                // A scheduled change waits on the primary too: it fills the sequence
                // numbers up to the boundary. A primary that makes no progress towards it
                // is suspected as one that leaves a request waiting would be.
                let change_waits = self.epochs.latest().epoch > self.membership().epoch;
                let waiting = self.oldest_pending_ms().or_else(|| change_waits.then_some(self.progress_ms));
                if let Some(oldest) = waiting {
                    if now >= oldest.max(self.progress_ms).max(self.suspect_from_ms) + self.timeout_ms() {
                        self.start_view_change(self.view + 1);
                    }
                }
            }
            _ => {}
        }
        if now >= self.retransmit_at_ms {
            self.retransmit();
            self.retransmit_at_ms = now + self.cfg.retransmit_ms;
        }
        self.maybe_fetch_state();
        self.after_step();
        self.take_output()
    }

    /// Work every step ends with: flush forwards, propose batches, execute.
    fn after_step(&mut self) {
        self.flush_forward(false);
        self.propose();
        self.execute();
        self.trim_arrivals();
    }

    // ---- requests ---------------------------------------------------------------------

    fn on_forward(&mut self, f: Signed<Forward>) {
        for request in f.body.requests {
            let key = request.key();
            if !self.passed_on_fits(&key, request.encoded_len()) {
                continue;
            }
            if request.payload.len() > REQUEST_PAYLOAD_LEN_MAX {
                self.drop_msg("request too large");
                continue;
            }
            self.admit(key, request, false, false);
        }
    }

    /// Whether a request another replica passed on (forwarded, or in a part) is new here
    /// and fits the pending bounds (a full set drops it, counted).
    fn passed_on_fits(&mut self, key: &RequestKey, encoded_len: usize) -> bool {
        if self.pending.contains_key(key) || self.executed.contains_key(key) {
            return false;
        }
        if self.pending.len() >= self.cfg.pending_len_max
            || self.pending_bytes + encoded_len > self.cfg.pending_bytes_max
        {
            self.drop_msg("request queue full");
            return false;
        }
        true
    }

    fn flush_forward(&mut self, force: bool) {
        let Some(since) = self.forward_since_ms else { return };
        if !self.cfg.dissemination && self.is_primary() && self.status == Status::Normal {
            // This replica became primary: its own requests are queued directly.
            self.forward_buf.clear();
            self.forward_bytes = 0;
            self.forward_since_ms = None;
            return;
        }
        let due = force
            || self.forward_bytes >= self.cfg.batch_bytes_max / 2
            || self.forward_buf.len() >= self.cfg.batch_len_max
            || self.now_ms >= since + self.part_delay_ms();
        // Parts flow in view changes too; only forwards wait for a primary.
        if !due || (self.status != Status::Normal && !self.cfg.dissemination) {
            return;
        }
        let keyed = std::mem::take(&mut self.forward_buf);
        self.forward_bytes = 0;
        self.forward_since_ms = None;
        if self.cfg.dissemination {
            return self.cut_part(keyed);
        }
        let primary = self.primary_of(self.view);
        let requests = keyed.into_iter().map(|(_, r)| r).collect();
        let msg = Message::Forward(self.sign(Forward { requests }));
        self.send(Target::One(primary), msg);
    }

    /// The primary assigns sequence numbers to batches while the pipeline window is open
    /// (§2.3, with the window of §2.4's watermarks).
    fn propose(&mut self) {
        if !self.is_primary() || self.replaying || self.follows() {
            return;
        }
        if self.cfg.dissemination {
            return self.propose_parts();
        }
        while self.window_open() {
            if self.queue.is_empty() {
                if self.pending_boundary().is_none() {
                    return;
                }
                self.propose_null();
                continue;
            }
            let oldest = self.queue.front().and_then(|k| self.pending.get(k)).map(|p| p.arrival_ms);
            let full = self.queue.len() >= self.cfg.batch_len_max || self.queue_bytes >= self.cfg.batch_bytes_max;
            let due = oldest.is_none_or(|t| self.now_ms >= t + self.proposal_delay_ms());
            if !full && !due {
                return;
            }
            let mut requests = Vec::new();
            let mut bytes = 4;
            while let Some(key) = self.queue.front().copied() {
                let Some(p) = self.pending.get(&key) else {
                    self.queue.pop_front();
                    continue;
                };
                let len = p.request.encoded_len();
                if !requests.is_empty()
                    && (requests.len() >= self.cfg.batch_len_max || bytes + len > self.cfg.batch_bytes_max)
                {
                    break;
                }
                self.queue.pop_front();
                self.queue_bytes = self.queue_bytes.saturating_sub(len);
                if self.executed.contains_key(&key) || !self.proposed.insert(key) {
                    continue;
                }
                bytes += len;
                requests.push(p.request.clone());
            }
            if requests.is_empty() {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            if self.slots.get(&seq).is_some_and(|s| s.view == self.view && s.pre_prepare.is_some()) {
                // Already assigned in this view (never expected: recovery restores next_seq);
                // re-queue rather than equivocate.
                for r in requests.iter().rev() {
                    let key = r.key();
                    self.proposed.remove(&key);
                    self.queue.push_front(key);
                    self.queue_bytes += r.encoded_len();
                }
                continue;
            }
            let time_ms = self.wall_ms.max(self.time_ms);
            let batch = Arc::new(Batch::with_time(time_ms, requests));
            let header = self.sign(Header { view: self.view, seq, digest: batch.digest() });
            self.accept_pre_prepare(header, batch, None);
        }
    }

    /// A validator set change waits for the checkpoint at its boundary: the primary fills
    /// the sequence numbers up to it with null batches (the watermarks stop at it).
    fn propose_null(&mut self) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.slots.get(&seq).is_some_and(|s| s.view == self.view && s.pre_prepare.is_some()) {
            let batch = Arc::new(Batch::null());
            let header = self.sign(Header { view: self.view, seq, digest: batch.digest() });
            self.accept_pre_prepare(header, batch, None);
        }
    }

    // ---- normal case (§2.3) -----------------------------------------------------------

    fn on_pre_prepare(&mut self, h: Signed<Header>, batch: Arc<Batch>) {
        let hd = h.body;
        if hd.digest != batch.digest() {
            self.note_seen(hd.seq);
            return self.fault(h.from, "batch does not match its digest");
        }
        if !self.pre_prepare_admissible(&h) {
            return;
        }
        if let Some(slot) = self.slots.get(&hd.seq) {
            if slot.view == hd.view {
                if let Some(existing) = &slot.pre_prepare {
                    if existing.body.digest != hd.digest {
                        // The primary equivocates: keep the first, the view change follows.
                        return self.fault(h.from, "conflicting pre-prepare");
                    }
                    if slot.batch.is_some() {
                        return self.drop_msg("duplicate");
                    }
                    // A new view named this digest; here is its batch (its time was
                    // checked when it was first proposed).
                    self.awaiting_batch.remove(&hd.digest);
                    self.accept_pre_prepare(h, batch, None);
                    return;
                }
            }
        }
        if !self.time_acceptable(&batch) {
            return self.drop_msg("batch time too far from this replica's clock");
        }
        self.accept_pre_prepare(h, batch, None);
    }

    /// The checks of a pre-prepare (whole or by reference) that need its header only.
    fn pre_prepare_admissible(&mut self, h: &Signed<Header>) -> bool {
        let hd = h.body;
        self.note_seen(hd.seq);
        if hd.view != self.view || self.status != Status::Normal {
            self.note_view_ahead(h.from, hd.view);
            self.drop_msg("pre-prepare of another view");
            return false;
        }
        // The window first: who is primary depends on the validator set, and a replica
        // on the other side of a set change sends what its set allows.
        if !self.in_window(hd.seq) {
            self.drop_msg("pre-prepare outside the watermarks");
            return false;
        }
        if h.from != self.primary_of(hd.view) {
            self.fault(h.from, "pre-prepare not from the primary");
            return false;
        }
        if hd.seq <= self.last_executed {
            self.drop_msg("pre-prepare for an executed sequence number");
            return false;
        }
        true
    }

    /// A backup checks the primary's time against its own clock (when the host gives it
    /// one). Null batches carry no time.
    fn time_acceptable(&self, batch: &Batch) -> bool {
        if self.wall_ms == 0 || (batch.is_null() && batch.time_ms() == 0) {
            return true;
        }
        batch.time_ms().abs_diff(self.wall_ms) <= self.cfg.clock_skew_ms_max
    }

    /// Logs a pre-prepare (with its batch) and, on a backup, sends PREPARE. The primary
    /// sends it by reference when `refs` names its parts ([`dissemination`]), else whole.
    fn accept_pre_prepare(&mut self, h: Signed<Header>, batch: Arc<Batch>, refs: Option<Arc<Refs>>) {
        let hd = h.body;
        let view = self.view;
        let now = self.now_ms;
        let slot = self.slots.entry(hd.seq).or_default();
        if slot.view != view {
            slot.reset_to(view);
        }
        if slot.pre_prepare.as_ref().is_some_and(|p| p.body.digest != hd.digest) {
            // One pre-prepare per sequence number and view, whatever the caller thought.
            debug_assert!(false, "second pre-prepare for sequence {} in view {view}", hd.seq);
            return;
        }
        self.batches.insert(batch.digest(), batch.clone());
        self.persist_record(hd.seq, &Message::PrePrepare(h.clone(), batch.clone()));
        let slot = self.slots.get_mut(&hd.seq).expect("just inserted");
        // Votes that arrived first for another digest do not count toward this one.
        slot.prepares.retain(|_, v| v.body.digest == hd.digest);
        slot.commits.retain(|_, v| v.body.digest == hd.digest);
        slot.pre_prepare = Some(h.clone());
        slot.batch = Some(batch.clone());
        slot.refs = refs.clone();
        slot.sent_at_ms = now;
        if self.primary_of(view) == self.cfg.id {
            let msg = match refs {
                Some(refs) => Message::Propose(h, refs),
                None => Message::PrePrepare(h, batch),
            };
            self.send(Target::All, msg);
        } else if !self.follows() && self.is_member() {
            let vote = self.sign(Vote { phase: Phase::Prepare, view, seq: hd.seq, digest: hd.digest });
            let msg = Message::Vote(vote.clone());
            self.persist_record(hd.seq, &msg);
            let slot = self.slots.get_mut(&hd.seq).expect("just inserted");
            slot.prepares.insert(vote.from, vote);
            slot.sent_prepare = true;
            self.send(Target::All, msg);
        }
        self.advance(hd.seq);
    }

    fn on_vote(&mut self, v: Signed<Vote>) {
        let vb = v.body;
        self.note_seen_from(v.from, vb.seq);
        if vb.view != self.view || self.status != Status::Normal {
            self.note_view_ahead(v.from, vb.view);
            return self.drop_msg("vote of another view");
        }
        if !self.in_window(vb.seq) {
            return self.drop_msg("vote outside the watermarks");
        }
        if vb.seq <= self.last_executed {
            return; // Late vote for an executed batch: harmless, not counted.
        }
        if vb.phase == Phase::Prepare && v.from == self.primary_of(vb.view) {
            return self.fault(v.from, "prepare from the primary");
        }
        let view = self.view;
        let slot = self.slots.entry(vb.seq).or_default();
        if slot.view != view {
            slot.reset_to(view);
        }
        if let Some(pp) = &slot.pre_prepare {
            if pp.body.digest != vb.digest {
                return self.drop_msg("vote for another digest");
            }
        }
        let votes = match vb.phase {
            Phase::Prepare => &mut slot.prepares,
            Phase::Commit => &mut slot.commits,
        };
        if let Some(existing) = votes.get(&v.from) {
            let reason = if existing.body.digest == vb.digest { "duplicate" } else { "conflicting vote" };
            return self.drop_msg(reason);
        }
        votes.insert(v.from, v.clone());
        self.persist_record(vb.seq, &Message::Vote(v));
        self.advance(vb.seq);
    }

    /// prepared(m, v, n, i): the pre-prepare and 2f matching prepares from backups.
    fn advance(&mut self, seq: u64) {
        let quorum = self.membership().quorum();
        let f2 = self.membership().prepares_needed();
        let me = self.cfg.id;
        // A replica outside the set votes for nothing either.
        let follows = self.follows() || !self.is_member();
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        let Some(pp) = slot.pre_prepare.clone() else { return };
        if slot.batch.is_none() {
            return;
        }
        if follows {
            // A follower votes for nothing; 2f + 1 commits from others are a commit
            // certificate (what state transfer accepts).
            if !slot.committed && slot.commits.len() >= quorum {
                slot.committed = true;
            }
            return;
        }
        if !slot.sent_commit && slot.prepares.len() >= f2 {
            let prepares: Vec<_> = slot.prepares.values().take(f2).cloned().collect();
            slot.prepared = Some(Prepared { pre_prepare: pp.clone(), prepares });
            slot.sent_commit = true;
            let vote = Signed::sign(
                &self.key,
                me,
                Vote { phase: Phase::Commit, view: pp.body.view, seq, digest: pp.body.digest },
            );
            slot.commits.insert(me, vote.clone());
            let msg = Message::Vote(vote);
            self.persist_record(seq, &msg);
            self.send(Target::All, msg);
        }
        let slot = self.slots.get_mut(&seq).expect("present");
        // committed-local: prepared and 2f + 1 matching commits (own included). Or, not
        // prepared here (a prepare lost with a peer cut off just then), 2f + 1 matching
        // commits from others: a commit certificate, what state transfer accepts. Without
        // this the replica would wait for a state transfer, and a consortium left with
        // exactly 2f + 1 voters would stall with it.
        if !slot.committed && slot.commits.len() >= quorum {
            slot.committed = true;
        }
    }

    /// Executes committed batches in sequence order (§2.3 step 5).
    fn execute(&mut self) {
        loop {
            let seq = self.last_executed + 1;
            let Some(slot) = self.slots.get(&seq) else { return };
            if !slot.committed {
                return;
            }
            let (Some(pp), Some(batch)) = (&slot.pre_prepare, &slot.batch) else { return };
            let certificate: Vec<_> = slot.commits.values().take(self.membership().quorum()).cloned().collect();
            let entry = CommittedEntry { seq, view: pp.body.view, batch: batch.clone(), certificate };
            self.apply_entry(entry);
        }
    }

    /// Executes one committed entry at `last_executed + 1` (from the log or a state
    /// transfer): de-duplicates, replies, archives, checkpoints.
    fn apply_entry(&mut self, entry: CommittedEntry) {
        let seq = entry.seq;
        debug_assert_eq!(seq, self.last_executed + 1);
        let mut fresh = Vec::with_capacity(entry.batch.requests().len());
        for (i, r) in entry.batch.requests().iter().enumerate() {
            let key = r.key();
            self.proposed.remove(&key);
            if let Some(p) = self.pending.remove(&key) {
                self.pending_bytes = self.pending_bytes.saturating_sub(p.request.encoded_len());
                if self.queue.front() == Some(&key) {
                    self.queue.pop_front();
                }
                self.queue_bytes = self.queue_bytes.saturating_sub(p.request.encoded_len());
            }
            if self.executed.contains_key(&key) {
                continue;
            }
            self.executed.insert(key, seq);
            self.executed_order.push_back((seq, key));
            fresh.push(i);
            if !self.replaying {
                self.out.replies.push(Reply { key, seq });
            }
        }
        while let Some(&(s, key)) = self.executed_order.front() {
            if s + self.cfg.dedup_horizon > seq {
                break;
            }
            self.executed_order.pop_front();
            self.executed.remove(&key);
        }
        self.history = hash("history", &[&self.history, &seq.to_be_bytes(), &entry.batch.digest()]);
        self.time_ms = self.time_ms.max(entry.batch.time_ms());
        self.last_executed = seq;
        for &i in &fresh {
            let r = &entry.batch.requests()[i];
            if r.client == RECONFIGURE_CLIENT {
                self.reconfigure(seq, r);
            }
        }
        self.progress_ms = self.now_ms;
        self.view_change_attempts = 0;
        self.stats.batches_committed += 1;
        self.stats.requests_committed += fresh.len() as u64;
        if self.next_seq <= seq {
            self.next_seq = seq + 1;
        }
        if !self.replaying {
            self.store_batch(seq, &entry.batch);
            self.stored_batches.insert((seq, entry.batch.digest()), true);
            if seq <= self.stable.seq {
                // Catching up to a checkpoint that became stable while this replica lagged.
                self.sweep_batches(seq);
            }
            self.out.persist.committed.push((seq, persisted::split_archive(&self.history, self.time_ms, &entry)));
            self.out.deliver.push(Delivered { entry, fresh, time_ms: self.time_ms });
        }
        if seq % self.cfg.checkpoint_interval == 0 {
            self.take_checkpoint(seq);
        }
    }

    // ---- retransmission ---------------------------------------------------------------

    /// Re-sends this replica's messages that may not have arrived: votes and pre-prepares
    /// of unfinished slots, its latest checkpoint vote, its view change, the new view.
    fn retransmit(&mut self) {
        if self.replaying || !self.is_member() {
            // A replica outside the set only fetches state (`maybe_fetch_state`).
            return;
        }
        let now = self.now_ms;
        self.relay_own_requests();
        if self.cfg.dissemination {
            self.retransmit_parts();
        }
        if self.status != Status::Normal {
            if let Some(vc) = self.own_view_change.clone() {
                self.send(Target::All, Message::ViewChange(vc));
            }
            return;
        }
        self.flush_forward(true);
        let me = self.cfg.id;
        let stale = now.saturating_sub(self.cfg.retransmit_ms);
        let mut resend = Vec::new();
        // A follower sends no ordering message, not even again one it sent before its
        // view change (see `view_change`: what it signed since must stay in that message).
        let follows = self.follows();
        for slot in self.slots.range_mut(self.last_executed + 1..).map(|(_, s)| s) {
            if follows || slot.view != self.view || slot.sent_at_ms > stale {
                continue;
            }
            slot.sent_at_ms = now;
            if let (Some(pp), Some(batch)) = (&slot.pre_prepare, &slot.batch) {
                if pp.from == me {
                    resend.push(match &slot.refs {
                        Some(refs) => Message::Propose(pp.clone(), refs.clone()),
                        None => Message::PrePrepare(pp.clone(), batch.clone()),
                    });
                }
            }
            if let Some(v) = slot.prepares.get(&me) {
                resend.push(Message::Vote(v.clone()));
            }
            if let Some(v) = slot.commits.get(&me) {
                resend.push(Message::Vote(v.clone()));
            }
        }
        // Batches a new view named that no peer has sent yet: asked for again (the first
        // request, or its answer, may have been lost with a connection).
        let mut awaiting: Vec<Digest> = self.awaiting_batch.keys().copied().collect();
        awaiting.sort_unstable();
        for digest in awaiting {
            resend.push(Message::FetchBatch(self.sign(FetchBatch { digest })));
        }
        // A heartbeat of progress: this replica's commit for its last executed batch (or its
        // vote for the stable checkpoint), so a replica that missed the end of a burst learns
        // it is behind and fetches state.
        if let Some(v) = self.slots.get(&self.last_executed).and_then(|s| s.commits.get(&me)).filter(|_| !follows) {
            resend.push(Message::Vote(v.clone()));
        } else if let Some(v) = self.stable.votes.iter().find(|v| v.from == me) {
            resend.push(Message::Checkpoint(v.clone()));
        }
        for m in resend {
            self.send(Target::All, m);
        }
        if let Some(vote) = self
            .checkpoint_votes
            .range(self.stable.seq + 1..)
            .next_back()
            .and_then(|(_, votes)| votes.get(&me).cloned())
        {
            self.send(Target::All, Message::Checkpoint(vote));
        }
        if let Some(vote) = self.unagreed_root_vote() {
            self.send(Target::All, vote);
        }
        // Requests other replicas passed on, which the primary may have lost: again to it.
        // (Disseminated parts are adopted instead, `retransmit_parts`.)
        if !self.is_primary() && !self.cfg.dissemination {
            let stale = self.stale_requests(false, |_| true);
            if !stale.is_empty() {
                let primary = self.primary_of(self.view);
                let requests = stale.into_iter().map(|(_, r)| r).collect();
                let msg = Message::Forward(self.sign(Forward { requests }));
                self.send(Target::One(primary), msg);
            }
        }
    }

    /// This replica's own clients' requests that have waited a retransmission period go to
    /// every replica, in any state: each correct replica then holds them and starts its
    /// timer, so a primary that never saw them (crashed, partitioned, or ignoring this
    /// replica) is suspected by enough replicas to be replaced, and a primary that is
    /// fine orders them even while this replica is out of its view (see [`view_change`]).
    fn relay_own_requests(&mut self) {
        if !self.has_stale_requests() {
            return;
        }
        if self.cfg.dissemination {
            // With dissemination, a request in a part of this replica's that is collecting
            // votes (re-sent by `retransmit_parts`), certified or ordered waits for that
            // part; the others (their part dropped: a certificate of an earlier validator
            // set) go into a new part. Cutting every stale request again would, past
            // saturation, disseminate the backlog once more every retransmission period.
            let covered = self.own_parts_cover();
            let stale = self.stale_requests(true, |k| !covered.contains(k));
            return self.cut_part(stale);
        }
        let stale = self.stale_requests(true, |_| true);
        if !stale.is_empty() {
            let requests = stale.into_iter().map(|(_, r)| r).collect();
            let msg = Message::Forward(self.sign(Forward { requests }));
            self.send(Target::All, msg);
        }
    }

    /// Whether any pending request arrived a retransmission period ago or more.
    fn has_stale_requests(&self) -> bool {
        self.oldest_pending_ms().is_some_and(|t| t + self.cfg.retransmit_ms <= self.now_ms)
    }

    /// Up to one batch (in count and bytes) of pending requests, own or passed on, whose
    /// key passes `keep` and that arrived a retransmission period ago or more, oldest
    /// first, with their keys.
    fn stale_requests(&self, own: bool, keep: impl Fn(&RequestKey) -> bool) -> Vec<(RequestKey, Request)> {
        if !self.has_stale_requests() {
            return Vec::new();
        }
        let now = self.now_ms;
        let mut stale: Vec<(&RequestKey, &Pending)> = self
            .pending
            .iter()
            .filter(|(k, p)| p.own == own && p.arrival_ms + self.cfg.retransmit_ms <= now && keep(k))
            .collect();
        stale.sort_by_key(|(_, p)| p.arrival_ms);
        let mut out = Vec::new();
        let mut bytes = 0;
        for (k, p) in stale.into_iter().take(self.cfg.batch_len_max) {
            bytes += p.request.encoded_len();
            if !out.is_empty() && bytes > self.cfg.batch_bytes_max {
                break;
            }
            out.push((*k, p.request.clone()));
        }
        out
    }

    // ---- batches for new views --------------------------------------------------------

    fn on_fetch_batch(&mut self, f: Signed<FetchBatch>) {
        match self.batches.get(&f.body.digest).cloned() {
            Some(batch) => {
                let msg = Message::BatchReply(self.sign(BatchReply { batch }));
                self.send(Target::One(f.from), msg);
            }
            None if self.serve_part(f.from, &f.body.digest) => {}
            None => self.drop_msg("unknown batch requested"),
        }
    }

    fn on_batch_reply(&mut self, from: ReplicaId, batch: Arc<Batch>) {
        if self.on_part_reply(from, batch.clone()) {
            return;
        }
        let Some(seqs) = self.awaiting_batch.remove(&batch.digest()) else {
            return self.drop_msg("unrequested batch");
        };
        self.batches.insert(batch.digest(), batch.clone());
        for seq in seqs {
            let Some(slot) = self.slots.get(&seq) else { continue };
            let Some(pp) = slot.pre_prepare.clone() else { continue };
            if slot.batch.is_none() && pp.body.digest == batch.digest() && pp.body.view == self.view {
                self.accept_pre_prepare(pp, batch.clone(), None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
