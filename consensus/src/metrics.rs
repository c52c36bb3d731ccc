//! Prometheus metrics of the consensus engine (prefix `dualchain_consensus_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of a dropped message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Label naming a peer replica.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

/// Label of a refused forwarded request: the peer that forwarded it, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    pub peer: String,
    pub reason: String,
}

/// The engine's metrics. Cheap to clone (every field is a shared handle).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Batches committed and executed (including null batches after view changes).
    pub committed_batches: Counter,
    /// Requests committed and executed (each once).
    pub committed_requests: Counter,
    /// Time from a request's submission at this replica to its execution.
    pub commit_latency_seconds: Histogram,
    /// View changes this replica started.
    pub view_changes: Counter,
    /// 1 while the replica follows its view without voting (after a lone view change).
    pub following: Gauge,
    /// The current view.
    pub view: Gauge,
    /// Requests waiting at this replica.
    pub pending_requests: Gauge,
    /// Verified messages waiting for the core.
    pub inbound_queue: Gauge,
    /// Frames waiting to be sent, per peer.
    pub outbound_queue: Family<PeerLabel, Gauge>,
    /// Messages dropped, by reason (malformed, bad signature, wrong sender, the core's
    /// reasons, full queues).
    pub dropped_messages: Family<ReasonLabel, Counter>,
    /// Duration of each synced log write.
    pub persist_seconds: Histogram,
    /// Committed entries applied from state transfer.
    pub state_entries: Counter,
    /// Connections (re-)established to peers.
    pub connections: Counter,
    /// The highest checkpoint whose application state root a quorum shares with this
    /// replica.
    pub state_root_agreed: Gauge,
    /// The checkpoint at which this replica's state root departed from the quorum's (0:
    /// never). Non-zero means the ledger stopped applying and needs an operator.
    pub state_diverged_seq: Gauge,
    /// Faults counted against each peer: invalid frames and validly signed messages no
    /// correct replica sends ([`crate::standing`]).
    pub peer_faults: Family<PeerLabel, Counter>,
    /// Times each peer was throttled.
    pub peer_throttles: Family<PeerLabel, Counter>,
    /// Times each peer was banned (disconnected and refused for a while).
    pub peer_bans: Family<PeerLabel, Counter>,
    /// Forwarded requests refused before ordering, by forwarding peer and reason
    /// (the engine's request check).
    pub refused_requests: Family<RefusedLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            committed_batches: Counter::default(),
            committed_requests: Counter::default(),
            commit_latency_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            view_changes: Counter::default(),
            following: Gauge::default(),
            view: Gauge::default(),
            pending_requests: Gauge::default(),
            inbound_queue: Gauge::default(),
            outbound_queue: Family::default(),
            dropped_messages: Family::default(),
            persist_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            state_entries: Counter::default(),
            connections: Counter::default(),
            state_root_agreed: Gauge::default(),
            state_diverged_seq: Gauge::default(),
            peer_faults: Family::default(),
            peer_throttles: Family::default(),
            peer_bans: Family::default(),
            refused_requests: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("dualchain_consensus");
        r.register("committed_batches", "Batches committed and executed", m.committed_batches.clone());
        r.register("committed_requests", "Requests committed and executed", m.committed_requests.clone());
        r.register(
            "commit_latency_seconds",
            "Time from submission at this replica to execution",
            m.commit_latency_seconds.clone(),
        );
        r.register("view_changes", "View changes started by this replica", m.view_changes.clone());
        r.register("view", "Current view", m.view.clone());
        r.register(
            "following",
            "1 while this replica follows its view without voting, after a view change it was alone in",
            m.following.clone(),
        );
        r.register("pending_requests", "Requests waiting at this replica", m.pending_requests.clone());
        r.register("inbound_queue", "Verified messages waiting for the core", m.inbound_queue.clone());
        r.register("outbound_queue", "Frames waiting to be sent per peer", m.outbound_queue.clone());
        r.register("dropped_messages", "Messages dropped, by reason", m.dropped_messages.clone());
        r.register("persist_seconds", "Duration of each synced consensus-log write", m.persist_seconds.clone());
        r.register("state_entries", "Committed entries applied by state transfer", m.state_entries.clone());
        r.register("connections", "Connections established to peers", m.connections.clone());
        r.register(
            "state_root_agreed",
            "Highest checkpoint whose state root a quorum shares with this replica",
            m.state_root_agreed.clone(),
        );
        r.register(
            "state_diverged_seq",
            "Checkpoint at which this replica's state root departed from the quorum's (0: never)",
            m.state_diverged_seq.clone(),
        );
        r.register(
            "peer_faults",
            "Faults counted against each peer (invalid frames or content)",
            m.peer_faults.clone(),
        );
        r.register("peer_throttles", "Times each peer was throttled for its faults", m.peer_throttles.clone());
        r.register("peer_bans", "Times each peer was disconnected and refused for its faults", m.peer_bans.clone());
        r.register(
            "refused_requests",
            "Forwarded requests refused before ordering, by forwarding peer and reason",
            m.refused_requests.clone(),
        );
        m
    }

    /// Metrics registered nowhere (tests, benches).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    pub fn dropped(&self, reason: &str) {
        self.dropped_messages.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }
}
