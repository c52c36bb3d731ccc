//! Replica configuration, with the relationships between its bounds checked.

use thiserror::Error;

use crate::message::{ReplicaId, BATCH_BYTES_MAX, BATCH_REQUESTS_MAX, REPLICAS_MAX, WATERMARK_SPAN_MAX};

/// Tunables of one replica. Every replica of a consortium uses the same `n`,
/// `checkpoint_interval` and `watermark_span` (they decide which messages are valid); the
/// others are local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of replicas at genesis, n = 3f + 1 (larger n tolerates ⌊(n − 1)/3⌋ faults);
    /// the set may change later (the `membership` module).
    pub n: usize,
    /// This replica's index.
    pub id: ReplicaId,
    /// K: a checkpoint every K sequence numbers (§2.4).
    pub checkpoint_interval: u64,
    /// L = H − h: sequence numbers accepted above the stable checkpoint (§2.4).
    pub watermark_span: u64,
    /// Batches the primary keeps in flight beyond the last executed one (the pipeline; 1
    /// turns pipelining off).
    pub window_len: u64,
    /// Most requests per batch.
    pub batch_len_max: usize,
    /// Most encoded bytes per batch.
    pub batch_bytes_max: usize,
    /// How long the primary waits to fill a batch.
    pub batch_delay_ms: u64,
    /// How long a request may wait for execution before this replica suspects the primary
    /// (doubles with each failed view change, §2.5.2).
    pub view_change_timeout_ms: u64,
    /// How often unanswered messages are re-sent (the simulated network and reconnects lose
    /// messages; PBFT assumes retransmission, §2.1).
    pub retransmit_ms: u64,
    /// How long execution may stall, with evidence that others are ahead, before this
    /// replica asks a peer for committed batches (§5.3).
    pub state_fetch_ms: u64,
    /// Most requests waiting at this replica (back-pressure beyond it).
    pub pending_len_max: usize,
    /// Admission control: a replica refuses its own clients' new requests
    /// ([`crate::Rejected::Busy`]) while this many requests, or
    /// [`Config::admission_bytes_max`] bytes of them, wait at it. Past saturation the backlog
    /// would only grow, and with it every request's latency; refused, the client backs off
    /// and what is admitted commits at the rate the consortium sustains. Requests passed on
    /// by other replicas are not refused here (their home admitted them), only bounded by
    /// [`Config::pending_len_max`] and [`Config::pending_bytes_max`].
    pub admission_len_max: usize,
    pub admission_bytes_max: usize,
    /// Bytes of all pending requests (own and passed on) a replica holds at most.
    pub pending_bytes_max: usize,
    /// Sequence numbers over which an executed request id is remembered for
    /// de-duplication.
    pub dedup_horizon: u64,
    /// Largest difference between a batch's time and a backup's clock that the backup
    /// accepts (clocks are NTP-synchronised; a primary stamping far-off times is refused and
    /// replaced by the view change).
    pub clock_skew_ms_max: u64,
    /// Dissemination apart from ordering (the replica's `dissemination` module): every
    /// replica sends the requests it takes to every replica as parts, and the primary
    /// orders references to parts a quorum holds. Off, a backup passes requests on to the
    /// primary, which sends each batch whole (the design before; kept as the baseline the
    /// benchmark compares against). Every replica of a consortium uses the same setting.
    pub dissemination: bool,
}

impl Config {
    /// Defaults for a consortium of `n`, seen from replica `id`.
    pub fn new(n: usize, id: ReplicaId) -> Self {
        Self {
            n,
            id,
            checkpoint_interval: 64,
            watermark_span: 256,
            window_len: 16,
            batch_len_max: 8192,
            batch_bytes_max: 2 << 20,
            batch_delay_ms: 2,
            view_change_timeout_ms: 2000,
            retransmit_ms: 500,
            state_fetch_ms: 1000,
            pending_len_max: 1 << 18,
            admission_len_max: 8192,
            admission_bytes_max: 4 << 20,
            pending_bytes_max: 256 << 20,
            dedup_horizon: 4096,
            clock_skew_ms_max: 10_000,
            dissemination: true,
        }
    }

    /// Timing for replicas on one host (loopback): shorter checkpoints, timers and
    /// retransmissions, so restarts and view changes settle in tests and the demo within
    /// seconds.
    pub fn loopback(n: usize, id: ReplicaId) -> Self {
        Self {
            checkpoint_interval: 16,
            watermark_span: 64,
            view_change_timeout_ms: 1500,
            retransmit_ms: 200,
            state_fetch_ms: 300,
            ..Self::new(n, id)
        }
    }

    /// Timing for validators in data centers far apart (one-way delays up to 150 ms, RTT up
    /// to 300 ms with jitter): the progress timer is 4 s (a commit from a member's node
    /// takes four one-way delays, about 600 ms at worst, plus batching; a timer within a
    /// few RTTs replaces a correct primary on every jitter spike), retransmission every
    /// second (above the worst RTT, so a message in flight is not sent again), state fetch
    /// after 2 s without progress, and 10 ms to fill a batch (negligible beside the RTT,
    /// and it lets batches grow). Checkpoints and watermarks stay as [`Config::new`].
    pub fn wan(n: usize, id: ReplicaId) -> Self {
        Self {
            batch_delay_ms: 10,
            view_change_timeout_ms: 4000,
            retransmit_ms: 1000,
            state_fetch_ms: 2000,
            ..Self::new(n, id)
        }
    }

    /// Checks a genesis validator's configuration: the tunables, and an id below `n`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_tunables()?;
        if self.id as usize >= self.n {
            return Err(ConfigError(format!("replica id {} is not below n = {}", self.id, self.n)));
        }
        Ok(())
    }

    /// Checks everything but the id's place: `n` (the genesis validators) and the bounds.
    /// A validator joining after genesis has an id at or above `n`
    /// (`Replica::joining`).
    pub fn validate_tunables(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError(why));
        if self.n < 4 || self.n > REPLICAS_MAX {
            return bad(format!("n = {} must be in 4..={REPLICAS_MAX} (n = 3f + 1 with f ≥ 1)", self.n));
        }
        if self.id as usize >= REPLICAS_MAX {
            return bad(format!("replica id {} is not below {REPLICAS_MAX}", self.id));
        }
        if self.checkpoint_interval == 0 || self.watermark_span % self.checkpoint_interval != 0 {
            return bad("the watermark span must be a positive multiple of the checkpoint interval".into());
        }
        if self.watermark_span < 2 * self.checkpoint_interval || self.watermark_span > WATERMARK_SPAN_MAX {
            return bad(format!(
                "the watermark span must be at least two checkpoint intervals and at most {WATERMARK_SPAN_MAX}"
            ));
        }
        if self.window_len == 0 || self.window_len > self.watermark_span {
            return bad("the pipeline window must be in 1..=watermark span".into());
        }
        if self.batch_len_max == 0 || self.batch_len_max > BATCH_REQUESTS_MAX {
            return bad(format!("batch_len_max must be in 1..={BATCH_REQUESTS_MAX}"));
        }
        if self.batch_bytes_max < 1024 || self.batch_bytes_max > BATCH_BYTES_MAX {
            return bad(format!("batch_bytes_max must be in 1024..={BATCH_BYTES_MAX}"));
        }
        if self.view_change_timeout_ms == 0 || self.retransmit_ms == 0 || self.state_fetch_ms == 0 {
            return bad("timeouts must be positive".into());
        }
        if self.pending_len_max == 0 || self.dedup_horizon == 0 {
            return bad("pending_len_max and dedup_horizon must be positive".into());
        }
        if self.admission_len_max == 0 || self.admission_bytes_max == 0 || self.pending_bytes_max == 0 {
            return bad("admission_len_max, admission_bytes_max and pending_bytes_max must be positive".into());
        }
        Ok(())
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, Error)]
#[error("invalid consensus configuration: {0}")]
pub struct ConfigError(pub String);
