//! State-root votes: agreement on what executing the history produced.
//!
//! Checkpoints (see [`super::checkpoint`]) agree on the *history*: which batches were
//! executed, in which order. Execution is meant to be deterministic, but a replica whose
//! application state was damaged (a disk error, a bug that reads something outside the
//! history, an operator's hand) executes the same history into a different state and,
//! without a check, carries on silently. So the application reports its state root after
//! each checkpoint's batch ([`Replica::attest`]); the replica signs it and sends it to all
//! ([`crate::message::StateVote`]). When 2f + 1 replicas report one root for a sequence
//! number and this replica's own root differs, it raises [`Event::StateDiverged`] once,
//! naming the sequence number, its root and the quorum's; the host stops applying and
//! alerts. Roots are compared only where the own root is known, so a replica whose
//! application lags compares when it catches up.
//!
//! The application reports when it has applied the batch, which may be well after the core
//! executed it; the votes are therefore separate from the checkpoint votes rather than a
//! field of them (the core never waits for the application). State kept: votes for at most
//! [`ROOTS_KEPT`] checkpoint sequence numbers above the last agreed one, one per replica.

use std::collections::BTreeMap;

use crate::message::{Digest, Message, ReplicaId, Signed, StateVote};

use super::{Event, Output, Replica, Target};

/// Checkpoint sequence numbers above the last agreed one whose votes are kept.
pub const ROOTS_KEPT: u64 = 64;

/// What a replica knows of the state roots.
#[derive(Debug, Default)]
pub(super) struct Roots {
    /// The highest checkpoint whose root this replica shares with a quorum.
    agreed: u64,
    /// Own roots above `agreed`, as the application reported them.
    own: BTreeMap<u64, Digest>,
    /// Votes above `agreed` (own included), by sequence number.
    votes: BTreeMap<u64, BTreeMap<ReplicaId, Signed<StateVote>>>,
    /// The first checkpoint at which this replica's root departed from the quorum's.
    diverged: Option<u64>,
}

/// A departure of this replica's state from the quorum's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    pub seq: u64,
    pub own: Digest,
    pub quorum: Digest,
}

impl Replica {
    /// The application's state root after applying batch `seq`. Only checkpoint sequence
    /// numbers count (others are ignored); each is reported once.
    pub fn attest(&mut self, now_ms: u64, seq: u64, root: Digest) -> Output {
        self.now_ms = self.now_ms.max(now_ms);
        let interval = self.cfg.checkpoint_interval;
        if seq == 0 || seq % interval != 0 || seq <= self.roots.agreed || self.roots.own.contains_key(&seq) {
            return self.take_output();
        }
        self.roots.own.insert(seq, root);
        if self.epochs.governing(seq).contains(self.cfg.id) {
            let vote = self.sign(StateVote { seq, root });
            self.roots.votes.entry(seq).or_default().insert(vote.from, vote.clone());
            self.send(Target::All, Message::StateRoot(vote));
        }
        self.check_roots(seq);
        self.bound_roots();
        self.take_output()
    }

    /// The highest checkpoint whose state root a quorum shares with this replica.
    pub fn agreed_root_seq(&self) -> u64 {
        self.roots.agreed
    }

    /// Where this replica's state departed from the quorum's, if it did.
    pub fn state_divergence(&self) -> Option<u64> {
        self.roots.diverged
    }

    pub(super) fn on_state_root(&mut self, v: Signed<StateVote>) {
        let seq = v.body.seq;
        if seq == 0 || seq % self.cfg.checkpoint_interval != 0 {
            return self.drop_msg("state root off the interval");
        }
        if seq <= self.roots.agreed {
            return; // Old news.
        }
        if !self.epochs.governing(seq).contains(v.from) {
            return self.drop_msg("state root from outside the set");
        }
        if seq > self.roots.agreed + ROOTS_KEPT * self.cfg.checkpoint_interval {
            return self.drop_msg("state root far above the agreed one");
        }
        let votes = self.roots.votes.entry(seq).or_default();
        if votes.contains_key(&v.from) {
            return self.drop_msg("duplicate");
        }
        votes.insert(v.from, v);
        self.check_roots(seq);
        self.bound_roots();
    }

    /// Compares the own root at `seq` with a quorum's, once both are known.
    fn check_roots(&mut self, seq: u64) {
        let (Some(own), Some(votes)) = (self.roots.own.get(&seq).copied(), self.roots.votes.get(&seq)) else {
            return;
        };
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for v in votes.values() {
            *counts.entry(v.body.root).or_default() += 1;
        }
        let quorum = self.epochs.governing(seq).quorum();
        let Some((&root, _)) = counts.iter().find(|(_, c)| **c >= quorum) else { return };
        if root == own {
            self.roots.agreed = seq;
            self.roots.own = self.roots.own.split_off(&(seq + 1));
            self.roots.votes = self.roots.votes.split_off(&(seq + 1));
        } else if self.roots.diverged.is_none() {
            self.roots.diverged = Some(seq);
            self.out.events.push(Event::StateDiverged(Divergence { seq, own, quorum: root }));
        }
    }

    /// Keeps the votes of at most [`ROOTS_KEPT`] sequence numbers (the lowest go first: a
    /// replica whose application lags that far compares again at a later checkpoint).
    fn bound_roots(&mut self) {
        while self.roots.votes.len() as u64 > ROOTS_KEPT {
            self.roots.votes.pop_first();
        }
        while self.roots.own.len() as u64 > ROOTS_KEPT {
            self.roots.own.pop_first();
        }
    }

    /// The own vote for the newest reported root not yet agreed (for retransmission).
    pub(super) fn unagreed_root_vote(&self) -> Option<Message> {
        let (seq, _) = self.roots.own.last_key_value()?;
        let vote = self.roots.votes.get(seq)?.get(&self.cfg.id)?;
        Some(Message::StateRoot(vote.clone()))
    }
}
