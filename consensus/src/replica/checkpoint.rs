//! Checkpoints, log truncation (TOCS 2002 §2.4) and state transfer (§5.3).
//!
//! The checkpoint digest is the replica's *history digest*: a hash chain over the digests
//! of every executed batch, `h_s = H(h_{s−1} ‖ s ‖ d_s)`. Replicas that executed the same
//! batches in the same order agree on it; the ledger built from them is then identical
//! (its execution is deterministic). The paper checkpoints the service state itself; here
//! the ledger's state is a function of the history, so agreeing on the history suffices and
//! keeps the core independent of the application.
//!
//! A checkpoint becomes stable with 2f + 1 matching votes. A replica slightly behind
//! (within half the watermark span) waits until it executes that far itself; one further
//! behind moves its low watermark at once and catches up by state transfer.
//! State transfer moves committed entries, each verified by its own commit certificate, so
//! any single peer can serve it and a lying peer can only withhold.

use crate::message::{
    verify_all, CheckpointProof, CheckpointVote, CommittedEntry, Message, Phase, Signed, StateReply, STATE_ENTRIES_MAX,
};

use super::{Event, Replica, Target};

impl Replica {
    pub(super) fn take_checkpoint(&mut self, seq: u64) {
        // Reached a checkpoint that became stable before this replica executed up to it.
        if self.stable.seq == seq && self.stable.digest != self.history {
            self.out.events.push(Event::Diverged(seq));
        }
        self.own_checkpoints.insert(seq, self.history);
        if self.epochs.governing(seq).contains(self.cfg.id) {
            let vote = self.sign(CheckpointVote { seq, digest: self.history });
            self.checkpoint_votes.entry(seq).or_default().insert(vote.from, vote.clone());
            self.send(Target::All, Message::Checkpoint(vote));
        }
        self.check_stable(seq);
    }

    pub(super) fn on_checkpoint(&mut self, c: Signed<CheckpointVote>) {
        let seq = c.body.seq;
        if seq % self.cfg.checkpoint_interval != 0 || seq == 0 {
            return self.drop_msg("checkpoint off the interval");
        }
        if seq <= self.stable.seq {
            return; // Old news.
        }
        if !self.epochs.governing(seq).contains(c.from) {
            // Not (yet, as far as this replica knows) a voter at that sequence number.
            return self.drop_msg("checkpoint vote from outside the set");
        }
        self.note_seen_from(c.from, seq);
        if seq > self.last_executed + 4 * self.cfg.watermark_span {
            // Far ahead: remember that we are behind, keep no state for it.
            self.note_seen(seq);
            return self.drop_msg("checkpoint far above the watermarks");
        }
        self.note_seen(seq);
        let votes = self.checkpoint_votes.entry(seq).or_default();
        if votes.contains_key(&c.from) {
            return self.drop_msg("duplicate");
        }
        votes.insert(c.from, c);
        self.check_stable(seq);
    }

    /// Makes the checkpoint at `seq` stable once 2f + 1 replicas vote for one digest.
    fn check_stable(&mut self, seq: u64) {
        if seq <= self.stable.seq {
            return;
        }
        let Some(votes) = self.checkpoint_votes.get(&seq) else { return };
        let quorum = self.epochs.governing(seq).quorum();
        let mut by_digest: std::collections::HashMap<[u8; 32], Vec<Signed<CheckpointVote>>> = Default::default();
        for v in votes.values() {
            by_digest.entry(v.body.digest).or_default().push(v.clone());
        }
        let Some((digest, votes)) = by_digest.into_iter().find(|(_, v)| v.len() >= quorum) else { return };
        if seq > self.last_executed && seq <= self.last_executed + self.cfg.watermark_span / 2 {
            // Slightly behind: the batches up to `seq` are in this replica's log or on their
            // way. Truncating now would throw them away and force a state transfer; the
            // checkpoint becomes stable when this replica executes `seq`.
            return;
        }
        if let Some(own) = self.own_checkpoints.get(&seq) {
            if *own != digest {
                self.out.events.push(Event::Diverged(seq));
                return;
            }
        }
        let proof = CheckpointProof { seq, digest, votes: votes.into_iter().take(quorum).collect() };
        self.make_stable(proof);
    }

    /// Sweeps the stored batches up to `upto` that the archive does not refer to (the
    /// caller has executed up to it and a stable checkpoint covers it). A replica whose
    /// checkpoint became stable while it lagged sweeps the rest as its state transfer
    /// executes up to the checkpoint ([`Replica::apply_entry`]).
    pub(super) fn sweep_batches(&mut self, upto: u64) {
        let rest = self.stored_batches.split_off(&(upto + 1, [0; 32]));
        let done = std::mem::replace(&mut self.stored_batches, rest);
        self.out.persist.sweep.extend(done.into_iter().filter(|(_, archived)| !archived).map(|(k, _)| k));
    }

    /// Moves the low watermark to a verified stable checkpoint and truncates the log.
    pub(super) fn make_stable(&mut self, proof: CheckpointProof) {
        let seq = proof.seq;
        if seq <= self.stable.seq {
            return;
        }
        let epoch = self.membership().epoch;
        if !self.replaying {
            self.out.persist.checkpoint = Some((seq, proof.to_bytes()));
            self.out.persist.stable = Some(seq);
            // Batches at executed sequence numbers up to the checkpoint that the archive
            // does not refer to will never be needed again (their records go with this
            // write); an unexecuted one may still be, and waits for a later checkpoint.
            self.sweep_batches(seq.min(self.last_executed));
        }
        self.stable = proof;
        self.sweep_parts(seq);
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.own_checkpoints = self.own_checkpoints.split_off(&seq);
        let live: std::collections::HashSet<[u8; 32]> = self
            .slots
            .values()
            .flat_map(|s| {
                s.batch.iter().map(|b| b.digest()).chain(s.prepared.iter().map(|p| p.pre_prepare.body.digest))
            })
            .collect();
        self.batches.retain(|d, _| live.contains(d));
        self.awaiting_batch.retain(|_, seqs| {
            seqs.retain(|s| *s > seq);
            !seqs.is_empty()
        });
        if self.next_seq <= seq {
            self.next_seq = seq + 1;
        }
        self.out.events.push(Event::Stable(seq));
        if self.membership().epoch != epoch {
            self.enter_epoch();
        }
        if seq > self.last_executed {
            // Behind the consortium: fetch now rather than after the stall timer.
            self.note_seen(seq);
            self.state_fetch_at_ms = self.now_ms;
        }
    }

    /// Asks one peer (rotating) for committed entries when execution stalls while others
    /// are ahead.
    pub(super) fn maybe_fetch_state(&mut self) {
        if self.replaying {
            return;
        }
        // A replica outside the set (joining) hears of no progress: it asks all the same.
        let behind = self.seen_seq > self.last_executed || self.stable.seq > self.last_executed || !self.is_member();
        if !behind || self.now_ms < self.state_fetch_at_ms {
            return;
        }
        let stalled = self.now_ms >= self.progress_ms + self.cfg.state_fetch_ms;
        if !stalled && self.stable.seq <= self.last_executed {
            return;
        }
        self.state_peer = self.next_state_peer();
        let from_seq = self.last_executed + 1;
        let peer = self.state_peer;
        let msg = Message::FetchState(self.sign(crate::message::FetchState { from_seq }));
        self.send(Target::One(peer), msg);
        self.out.events.push(Event::StateRequested { peer, from_seq });
        self.state_fetch_at_ms = self.now_ms + self.cfg.state_fetch_ms;
    }

    /// The peer to ask for state: the next, in rotation, of those that showed a sequence
    /// number above this replica's execution within the last two retransmission periods
    /// (they hold what is missing, and their messages arrive); any other peer in rotation
    /// when none did. A rotation over every peer alone spends a whole `state_fetch_ms` on
    /// each peer cut off.
    fn next_state_peer(&mut self) -> crate::ReplicaId {
        let fresh = self.now_ms.saturating_sub(2 * self.cfg.retransmit_ms);
        let last = self.last_executed;
        self.seq_ahead.retain(|_, (seq, at)| *seq > last && *at >= fresh);
        let me = self.cfg.id;
        let members = &self.membership().members;
        // The set's members after the last peer asked, in rotation.
        let start = members.partition_point(|p| *p <= self.state_peer);
        let rotation = || members[start..].iter().chain(&members[..start]).copied().filter(move |p| *p != me);
        rotation().find(|p| self.seq_ahead.contains_key(p)).or_else(|| rotation().next()).unwrap_or(self.state_peer)
    }

    /// The answer to a peer's state request: `entries` are this replica's archived
    /// committed entries from the requested sequence number on (at most
    /// [`STATE_ENTRIES_MAX`]; the host bounds their bytes).
    pub fn state_reply(&self, mut entries: Vec<CommittedEntry>) -> Message {
        entries.truncate(STATE_ENTRIES_MAX);
        Message::StateReply(self.sign(StateReply { entries, checkpoint: self.stable.clone() }))
    }

    pub(super) fn on_state_reply(&mut self, reply: Signed<StateReply>) {
        let mut applied = false;
        let mut newest = None;
        let StateReply { entries, checkpoint } = reply.body;
        for entry in entries {
            if entry.seq <= self.last_executed {
                continue;
            }
            if entry.seq != self.last_executed + 1 {
                break;
            }
            if !self.check_commit_certificate(&entry) {
                self.fault(reply.from, "bad commit certificate");
                break;
            }
            self.slots.remove(&entry.seq);
            newest = Some((entry.view, entry.seq));
            self.apply_entry(entry);
            self.stats.state_entries_applied += 1;
            applied = true;
        }
        if applied {
            // More may be missing: ask again at once.
            self.state_fetch_at_ms = self.now_ms;
        }
        self.adopt_checkpoint(checkpoint);
        match newest {
            // Outside the set: no view change to join, only the view to follow.
            Some((view, _)) if !self.is_member() => self.view = self.view.max(view),
            // A quorum committed in a later view (this replica was down or cut off while
            // it began): join it; its primary answers the VIEW-CHANGE with its NEW-VIEW.
            Some((view, _)) if view > self.view => self.start_view_change(view),
            // A quorum committed in a lower view than the one this replica is changing to.
            Some((view, seq)) => self.rejoin(view, seq),
            None => {}
        }
    }

    /// A peer's stable checkpoint at a sequence number this replica executed, with the
    /// same history there: stable here too, once its proof verifies. This is how a
    /// validator added by a change gets the change's boundary stable (the old set sent it
    /// no votes for it) even when the new set cannot reach another checkpoint without it.
    fn adopt_checkpoint(&mut self, proof: CheckpointProof) {
        if proof.seq <= self.stable.seq || proof.seq > self.last_executed {
            return;
        }
        if self.own_checkpoints.get(&proof.seq) != Some(&proof.digest) {
            return; // Not the history this replica executed (or no longer held).
        }
        if self.check_checkpoint_proof(&proof) {
            self.make_stable(proof);
        }
    }

    /// A commit certificate: 2f + 1 commits from distinct replicas of the set that governed
    /// the entry's sequence number, for its view, sequence number and batch digest, with
    /// valid signatures.
    pub(super) fn check_commit_certificate(&self, e: &CommittedEntry) -> bool {
        let digest = e.batch.digest();
        let set = self.epochs.governing(e.seq);
        let mut senders = std::collections::HashSet::new();
        let well_formed = e.certificate.iter().all(|v| {
            v.body.phase == Phase::Commit
                && v.body.view == e.view
                && v.body.seq == e.seq
                && v.body.digest == digest
                && set.contains(v.from)
                && senders.insert(v.from)
        });
        if !well_formed || senders.len() < set.quorum() {
            return false;
        }
        let refs: Vec<_> = e.certificate.iter().collect();
        verify_all(&refs, self.epochs.roster()).is_ok()
    }

    /// A checkpoint proof of valid, distinct votes that falls short of the quorum of the
    /// set governing its sequence number here: made by a replica that counted another set
    /// for it (a joining validator that took the proof before it executed the change), not
    /// proof of a fault.
    pub(super) fn checkpoint_proof_short(&self, p: &CheckpointProof) -> bool {
        let mut senders = std::collections::HashSet::new();
        let distinct =
            p.votes.iter().all(|v| v.body.seq == p.seq && v.body.digest == p.digest && senders.insert(v.from));
        let refs: Vec<_> = p.votes.iter().collect();
        p.seq > 0 && distinct && !self.check_checkpoint_proof(p) && verify_all(&refs, self.epochs.roster()).is_ok()
    }

    /// Checks a stable-checkpoint proof (sequence 0 needs none).
    pub(super) fn check_checkpoint_proof(&self, p: &CheckpointProof) -> bool {
        if p.seq == 0 {
            return p.votes.is_empty() && p.digest == [0; 32];
        }
        if p.seq % self.cfg.checkpoint_interval != 0 {
            return false;
        }
        let set = self.epochs.governing(p.seq);
        let mut senders = std::collections::HashSet::new();
        let well_formed = p.votes.iter().all(|v| {
            v.body.seq == p.seq && v.body.digest == p.digest && set.contains(v.from) && senders.insert(v.from)
        });
        if !well_formed || senders.len() < set.quorum() {
            return false;
        }
        let refs: Vec<_> = p.votes.iter().collect();
        verify_all(&refs, self.epochs.roster()).is_ok()
    }
}
