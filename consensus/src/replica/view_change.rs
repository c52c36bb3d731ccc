//! View changes (TOCS 2002 §2.5; liveness rules of §2.5.2).
//!
//! A replica that suspects the primary moves to view v + 1 and broadcasts VIEW-CHANGE with
//! its stable checkpoint proof C and the prepared certificates P above it. The primary of
//! v + 1 collects 2f + 1 valid ones and broadcasts NEW-VIEW with them and the set O of
//! pre-prepares it derives: for every n between the highest stable checkpoint (min-s) and
//! the highest prepared sequence number (max-s), the digest of the prepared certificate of
//! the highest view, or the null batch. Backups recompute O and check it. A replica that
//! sees f + 1 view changes for higher views joins the smallest; the timeout doubles with
//! each view change that does not complete.
//!
//! The replica's view is persisted as `view << 1 | changing` before it acts in it, so a
//! restarted replica neither goes back to an old view nor accepts messages of a view it
//! has left.
//!
//! **Going back from a lone view change** (beyond the paper). A member's node submits to
//! its own replica only, so a replica can suspect a primary that the others never hear
//! from, send VIEW-CHANGE for v + 1 alone, and never see the 2f + 1 it needs: PBFT leaves
//! it there (its clients would broadcast; ours do not), which locked a member out for good
//! on a real cluster. Two rules fix it:
//! - A replica relays its own clients' waiting requests to every replica (the client
//!   broadcast of §2.1, done by the replica), so every correct replica starts its timer and
//!   a dead primary is replaced by 2f + 1 view changes.
//! - A replica still gathering view changes for w that receives, by state transfer, an
//!   entry committed in a view v < w above anything it had seen when it sent VIEW-CHANGE,
//!   knows a quorum went on without it. It goes back to v and *follows*: it logs
//!   pre-prepares, executes batches once it holds 2f + 1 commits from others, forwards its
//!   clients' requests, but sends no PREPARE, COMMIT, PRE-PREPARE or NEW-VIEW in any view
//!   below w. That keeps its VIEW-CHANGE for w true: every certificate the replica could
//!   report is still in it, since it voted for nothing after signing it. A NEW-VIEW for w
//!   built with that message therefore loses nothing committed in between (any commit in
//!   a view below w had 2f + 1 committers other than this replica, f + 1 of them in any
//!   other 2f members of the NEW-VIEW's quorum). It votes again once the consortium enters
//!   a view ≥ w. Its persisted view word stays `w << 1 | 1` meanwhile, so after a restart
//!   it is in the view change again and goes back the same way; when it suspects the
//!   primary itself, it moves straight to w, whose VIEW-CHANGE the others already hold.
//!
//! **Fewer lone view changes** (beyond the paper; found with real processes in network
//! namespaces, `node/tests/chaos.rs`, where a cut-off validator stalled the consortium for
//! up to 15 s after the heal). Three rules:
//! - A replica that has heard from no peer for three retransmission periods is *isolated*:
//!   its view-change timers wait, and restart from the first message it hears again,
//!   with one timeout more for the links to come back both ways. Cut
//!   off, it cannot tell a faulty primary from its own isolation, and a view change it
//!   started could gather no quorum; it would only leave it following after the heal.
//! - A primary never suspects itself: a correct primary leaving its own view only adds a
//!   view change to whatever stalled it (the backups' timers replace a faulty one, §2.5.2).
//! - A replica that sees f + 1 replicas send pre-prepares or votes in a view above its own
//!   knows a correct replica is in that view, so its NEW-VIEW exists: it moves to that view
//!   at once (rather than after its own timeout, or never, if no request waits at it), and
//!   the view's primary answers its VIEW-CHANGE with the NEW-VIEW. f replicas cannot move
//!   anyone this way. A follower does not go below the view it left.
//!
//! Pre-prepares a NEW-VIEW names whose batch this replica lacks are asked for again every
//! retransmission period until a peer sends the batch (the first request or its answer
//! can be lost with a connection).
//!
//! **Joining a stalled split** (beyond the paper). The paper's timer starts only once a
//! replica holds 2f + 1 VIEW-CHANGEs for its view, and the f + 1 rule moves it up only when
//! f + 1 others are above. Loss, crashes and restarts can leave the correct replicas split
//! below both thresholds — two at view v, one at v + 1, the fourth faulty — and then no
//! timer runs and nobody moves: the simulator found such a run (seed 1001841). So a replica
//! whose view change has gathered fewer than 2f + 1 for a whole timeout joins the smallest
//! higher view that another replica is changing to. It never invents a view, so the
//! replicas meet at the highest one someone holds; joining a higher view is always safe
//! (it only gives up the lower one), and the doubling timeout keeps it from racing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::message::{
    null_digest, verify_all, Batch, CheckpointProof, Digest, FetchBatch, Forward, Header, Message, NewView, Phase,
    Prepared, ReplicaId, Signed, ViewChange,
};

use super::{Event, Replica, Status, Target};

/// Views above this are refused (`view << 1` must not overflow when persisted).
pub(super) const VIEW_MAX: u64 = 1 << 62;
/// View changes are kept for at most this many views above the current one (memory bound;
/// a replica further behind catches up through the NEW-VIEW its primary re-sends).
const VIEWS_AHEAD_MAX: u64 = 64;

impl Replica {
    pub(super) fn start_view_change(&mut self, view: u64) {
        // A replica that left view w never goes back below it (see the module docs).
        let view = match self.left_view {
            Some(left) if view < left => left,
            _ => view,
        };
        if view <= self.view || view >= VIEW_MAX || !self.is_member() {
            return;
        }
        self.view = view;
        self.status = Status::ViewChanging { deadline_ms: None };
        self.view_change_since_ms = self.now_ms;
        self.stats.view_changes += 1;
        self.out.events.push(Event::ViewChangeStarted(view));
        self.broadcast_view_change();
    }

    /// Signs, persists and sends VIEW-CHANGE for the view this replica is moving to.
    pub(super) fn broadcast_view_change(&mut self) {
        let view = self.view;
        let prepared: Vec<Prepared> =
            self.slots.range(self.stable.seq + 1..).filter_map(|(_, s)| s.prepared.clone()).collect();
        let vc = self.sign(ViewChange { view, checkpoint: self.stable.clone(), prepared });
        self.seen_at_view_change = self.seen_seq.max(self.last_executed);
        if !self.replaying {
            self.out.persist.view = Some(view << 1 | 1);
        }
        self.own_view_change = Some(vc.clone());
        self.view_changes.retain(|v, _| *v >= view);
        self.remember_view_change(vc.clone());
        self.send(Target::All, Message::ViewChange(vc));
        self.proposed.clear();
        self.queue.clear();
        self.queue_bytes = 0;
        self.try_new_view(view);
    }

    /// A view change that gathered fewer than 2f + 1 VIEW-CHANGEs for a whole timeout: join
    /// the smallest higher view another replica is changing to, if any (see the module
    /// docs); otherwise disseminate this replica's waiting parts again
    /// ([`Replica::redisseminate_own_parts`]) and wait another timeout.
    pub(super) fn join_stalled_view_change(&mut self) {
        let me = self.cfg.id;
        let higher =
            self.view_changes.range(self.view + 1..).find(|(_, vcs)| vcs.keys().any(|r| *r != me)).map(|(v, _)| *v);
        self.view_change_since_ms = self.now_ms;
        match higher {
            Some(view) => {
                self.view_change_attempts += 1;
                self.out.events.push(Event::StalledViewChangeJoined { from: self.view, to: view });
                self.start_view_change(view);
            }
            None if self.cfg.dissemination => self.redisseminate_own_parts(),
            None => {}
        }
    }

    /// Keeps a valid view change (views from the current one to [`VIEWS_AHEAD_MAX`] above
    /// it, one per replica and view) and arms the view-change timer once 2f + 1 are in for
    /// the view this replica is moving to.
    /// A validly signed pre-prepare or vote of view `view` from `from`, dropped as not of
    /// this replica's view. Once f + 1 replicas are seen ordering in the same higher view,
    /// at least one correct replica is in it, so its NEW-VIEW exists and this replica is
    /// behind: it moves to that view, and the view's primary answers its VIEW-CHANGE with
    /// the NEW-VIEW (see [`Replica::on_view_change`]).
    pub(super) fn note_view_ahead(&mut self, from: ReplicaId, view: u64) {
        if view <= self.view || view > self.view + VIEWS_AHEAD_MAX {
            return;
        }
        let current = self.view;
        self.ahead.retain(|v, _| *v > current);
        let seen = self.ahead.entry(view).or_default();
        seen.insert(from);
        if seen.len() <= self.membership().f() {
            return;
        }
        // A follower never goes below the view it left (see the module docs).
        if self.left_view.is_some_and(|left| view < left) {
            return;
        }
        self.out.events.push(Event::BehindView { view, from: current });
        self.start_view_change(view);
    }

    fn remember_view_change(&mut self, vc: Signed<ViewChange>) {
        self.view_changes.entry(vc.body.view).or_default().insert(vc.from, vc);
        if let Status::ViewChanging { deadline_ms: None } = self.status {
            let quorum = self.membership().quorum();
            if self.view_changes.get(&self.view).is_some_and(|vcs| vcs.len() >= quorum) {
                self.status = Status::ViewChanging { deadline_ms: Some(self.now_ms + self.timeout_ms()) };
            }
        }
    }

    pub(super) fn on_view_change(&mut self, vc: Signed<ViewChange>) {
        let v = vc.body.view;
        if v < self.view || (v == self.view && self.status == Status::Normal) {
            // The sender is behind: the primary of the current view re-sends its NEW-VIEW.
            if self.status == Status::Normal && self.is_primary() {
                if let Some(nv) = self.new_view.clone() {
                    self.send(Target::One(vc.from), Message::NewView(nv));
                }
            }
            return self.drop_msg("view change for an old view");
        }
        if v >= VIEW_MAX || v > self.view + VIEWS_AHEAD_MAX {
            return self.drop_msg("view number out of range");
        }
        if self.view_changes.get(&v).is_some_and(|vcs| vcs.contains_key(&vc.from)) {
            return self.drop_msg("duplicate");
        }
        if self.refused_view_changes.contains(&(v, vc.from)) {
            return self.drop_msg("view change from a replica refused in that view");
        }
        if !self.in_set_of(&vc.body.checkpoint) {
            return self.drop_msg("view change of another validator set");
        }
        if !self.check_view_change(&vc) {
            if self.checkpoint_proof_short(&vc.body.checkpoint) {
                return self.drop_msg("view change whose checkpoint proof counts another set");
            }
            let view = self.view;
            self.refused_view_changes.retain(|(w, _)| *w >= view);
            self.refused_view_changes.insert((v, vc.from));
            return self.fault(vc.from, "invalid view change");
        }
        self.remember_view_change(vc);
        // §2.5.2: f + 1 other replicas want higher views — join the smallest of them.
        let above: BTreeMap<ReplicaId, u64> = self
            .view_changes
            .range(self.view + 1..)
            .flat_map(|(view, vcs)| vcs.keys().map(move |r| (*r, *view)))
            .filter(|(r, _)| *r != self.cfg.id)
            .collect();
        if above.len() > self.membership().f() {
            let smallest = above.values().copied().min().expect("more than f entries");
            self.start_view_change(smallest);
        }
        self.try_new_view(v);
    }

    /// Whether a view change (or a NEW-VIEW) with stable checkpoint `cp` belongs to this
    /// replica's validator set: the set that governs above the checkpoint. One of an earlier
    /// set comes from a replica behind (it catches up by state transfer); one of a later set
    /// shows a stable checkpoint this replica adopts first, when its proof holds, and then
    /// belongs.
    fn in_set_of(&mut self, cp: &CheckpointProof) -> bool {
        let theirs = self.epochs.governing(cp.seq + 1).epoch;
        if theirs > self.membership().epoch && self.check_checkpoint_proof(cp) {
            self.make_stable(cp.clone());
        }
        theirs == self.membership().epoch
    }

    /// A view change is valid when its checkpoint proof holds and every prepared certificate
    /// is a pre-prepare of an earlier view from that view's primary with 2f matching
    /// prepares from distinct backups, inside the watermarks of the checkpoint.
    fn check_view_change(&self, vc: &Signed<ViewChange>) -> bool {
        let b = &vc.body;
        let set = self.membership();
        if !self.check_checkpoint_proof(&b.checkpoint) || self.epochs.governing(b.checkpoint.seq + 1) != set {
            return false;
        }
        let low = b.checkpoint.seq;
        let mut seqs = std::collections::HashSet::new();
        let mut headers = Vec::new();
        let mut votes = Vec::new();
        for p in &b.prepared {
            let h = &p.pre_prepare.body;
            if h.view >= b.view
                || p.pre_prepare.from != set.primary(h.view)
                || h.seq <= low
                || h.seq > low + self.cfg.watermark_span
                || !seqs.insert(h.seq)
            {
                return false;
            }
            let mut senders = std::collections::HashSet::new();
            let ok = p.prepares.iter().all(|v| {
                v.body.phase == Phase::Prepare
                    && v.body.view == h.view
                    && v.body.seq == h.seq
                    && v.body.digest == h.digest
                    && v.from != p.pre_prepare.from
                    && set.contains(v.from)
                    && senders.insert(v.from)
            });
            if !ok || senders.len() < set.prepares_needed() {
                return false;
            }
            headers.push(&p.pre_prepare);
            votes.extend(p.prepares.iter());
        }
        let keys = self.epochs.roster();
        verify_all(&headers, keys).is_ok() && verify_all(&votes, keys).is_ok()
    }

    /// The stable checkpoint (min-s) and the set O the new primary must send (§2.5).
    fn derive_new_view(&self, view: u64, vcs: &[Signed<ViewChange>]) -> (CheckpointProof, Vec<Header>) {
        let checkpoint = vcs.iter().map(|vc| &vc.body.checkpoint).max_by_key(|c| c.seq).cloned().unwrap_or_default();
        let mut best: BTreeMap<u64, (u64, Digest)> = BTreeMap::new();
        for p in vcs.iter().flat_map(|vc| vc.body.prepared.iter()) {
            let h = p.pre_prepare.body;
            if h.seq <= checkpoint.seq {
                continue;
            }
            let e = best.entry(h.seq).or_insert((h.view, h.digest));
            if h.view > e.0 {
                *e = (h.view, h.digest);
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(checkpoint.seq);
        let null = null_digest();
        let headers = (checkpoint.seq + 1..=max_s)
            .map(|seq| Header { view, seq, digest: best.get(&seq).map_or(null, |(_, d)| *d) })
            .collect();
        (checkpoint, headers)
    }

    /// The new primary sends NEW-VIEW once it holds 2f + 1 view changes for its view.
    fn try_new_view(&mut self, view: u64) {
        if self.primary_of(view) != self.cfg.id || self.view != view || self.status == Status::Normal || self.follows()
        {
            return;
        }
        let quorum = self.membership().quorum();
        let Some(vcs) = self.view_changes.get(&view) else { return };
        if vcs.len() < quorum {
            return;
        }
        let vcs: Vec<_> = vcs.values().take(quorum).cloned().collect();
        let (_, headers) = self.derive_new_view(view, &vcs);
        let pre_prepares = headers.into_iter().map(|h| self.sign(h)).collect();
        let nv = self.sign(NewView { view, view_changes: vcs, pre_prepares });
        self.send(Target::All, Message::NewView(nv.clone()));
        self.enter_view(nv);
    }

    pub(super) fn on_new_view(&mut self, nv: Signed<NewView>) {
        let v = nv.body.view;
        if v < self.view || (v == self.view && self.status == Status::Normal) || v >= VIEW_MAX {
            return self.drop_msg("new view for an old view");
        }
        let checkpoint = nv.body.view_changes.iter().map(|vc| &vc.body.checkpoint).max_by_key(|c| c.seq).cloned();
        if checkpoint.is_some_and(|cp| !self.in_set_of(&cp)) {
            return self.drop_msg("new view of another validator set");
        }
        if nv.from != self.primary_of(v) {
            return self.fault(nv.from, "new view not from the view's primary");
        }
        if !self.check_new_view(&nv) {
            return self.fault(nv.from, "invalid new view");
        }
        self.enter_view(nv);
    }

    fn check_new_view(&self, nv: &Signed<NewView>) -> bool {
        let b = &nv.body;
        let mut senders = std::collections::HashSet::new();
        let set = self.membership();
        if !b.view_changes.iter().all(|vc| vc.body.view == b.view && set.contains(vc.from) && senders.insert(vc.from))
            || senders.len() < set.quorum()
        {
            return false;
        }
        let refs: Vec<_> = b.view_changes.iter().collect();
        if verify_all(&refs, self.epochs.roster()).is_err()
            || !b.view_changes.iter().all(|vc| self.check_view_change(vc))
        {
            return false;
        }
        let (_, headers) = self.derive_new_view(b.view, &b.view_changes);
        if headers.len() != b.pre_prepares.len()
            || !headers.iter().zip(&b.pre_prepares).all(|(h, pp)| pp.body == *h && pp.from == nv.from)
        {
            return false;
        }
        let refs: Vec<_> = b.pre_prepares.iter().collect();
        verify_all(&refs, self.epochs.roster()).is_ok()
    }

    /// Enters the view of a valid NEW-VIEW: adopts its checkpoint, logs its pre-prepares
    /// (fetching batches this replica lacks) and hands pending requests to the new primary.
    pub(super) fn enter_view(&mut self, nv: Signed<NewView>) {
        let view = nv.body.view;
        self.view = view;
        self.status = Status::Normal;
        self.progress_ms = self.now_ms;
        self.own_view_change = None;
        self.view_changes.retain(|v, _| *v > view);
        if self.left_view.is_some_and(|left| view >= left) {
            self.left_view = None;
        }
        // A follower keeps `left << 1 | 1` on disk (see the module docs).
        if !self.replaying && !self.follows() {
            self.out.persist.view = Some(view << 1);
        }
        self.out.events.push(Event::ViewEntered(view));
        let (checkpoint, _) = self.derive_new_view(view, &nv.body.view_changes);
        if checkpoint.seq > self.stable.seq {
            self.make_stable(checkpoint);
        }
        // The view's sequence numbers go on from the NEW-VIEW's last pre-prepare (§2.5.2).
        // Not from where this replica got as primary of an earlier view: what it proposed
        // there beyond that prepared nowhere, and a next number above it would leave a gap
        // that no view fills, with execution waiting on it for good. Only a number this
        // replica already pre-prepared in this view (logged before a restart) is skipped.
        let max_s = nv.body.pre_prepares.last().map_or(self.stable.seq, |h| h.body.seq);
        let me = self.cfg.id;
        let proposed_here = self
            .slots
            .iter()
            .filter(|(_, s)| s.view == view && s.pre_prepare.as_ref().is_some_and(|h| h.from == me))
            .map(|(seq, _)| seq + 1)
            .max()
            .unwrap_or(0);
        self.next_seq = (max_s + 1).max(self.last_executed + 1).max(self.stable.seq + 1).max(proposed_here);
        let null = null_digest();
        for h in nv.body.pre_prepares.clone() {
            let seq = h.body.seq;
            if seq <= self.last_executed || !self.in_window(seq) {
                continue;
            }
            let batch = if h.body.digest == null {
                Some(Arc::new(Batch::null()))
            } else {
                self.batches.get(&h.body.digest).cloned()
            };
            match batch {
                Some(batch) => self.accept_pre_prepare(h, batch, None),
                None => {
                    let slot = self.slots.entry(seq).or_default();
                    slot.reset_to(view);
                    slot.pre_prepare = Some(h.clone());
                    self.awaiting_batch.entry(h.body.digest).or_default().push(seq);
                    let msg = Message::FetchBatch(self.sign(FetchBatch { digest: h.body.digest }));
                    self.send(Target::All, msg);
                }
            }
        }
        self.new_view = Some(nv);
        self.hand_over_pending();
    }

    /// True while this replica follows a view below the one it left (it must not vote).
    pub(super) fn follows(&self) -> bool {
        self.left_view.is_some_and(|left| self.view < left)
    }

    /// Goes back from a view change nobody joined to `view`, where a quorum committed the
    /// entry this replica just received by state transfer (see the module docs).
    pub(super) fn rejoin(&mut self, view: u64, committed_seq: u64) {
        let left = self.view;
        let alone = matches!(self.status, Status::ViewChanging { deadline_ms: None });
        if !alone || view >= left || committed_seq <= self.seen_at_view_change {
            return;
        }
        self.left_view = Some(self.left_view.map_or(left, |l| l.max(left)));
        self.view = view;
        self.status = Status::Normal;
        self.own_view_change = None;
        self.progress_ms = self.now_ms;
        self.view_change_attempts = 0;
        self.new_view = None;
        self.out.events.push(Event::Rejoined { view, left });
        self.hand_over_pending();
    }

    /// Requests still waiting go to the current primary (§2.5: clients retransmit; here the
    /// backups hold them for their clients).
    pub(super) fn hand_over_pending(&mut self) {
        if self.cfg.dissemination {
            // Every replica holds the parts; the new primary orders what is certified.
            return self.requeue_parts();
        }
        let view = self.view;
        let mut waiting: Vec<_> = self.pending.iter().map(|(k, p)| (p.arrival_ms, *k)).collect();
        waiting.sort_unstable();
        if self.is_primary() {
            self.queue = waiting.iter().map(|(_, k)| *k).collect();
            self.queue_bytes =
                self.queue.iter().filter_map(|k| self.pending.get(k)).map(|p| p.request.encoded_len()).sum();
        } else {
            self.forward_buf.clear();
            self.forward_bytes = 0;
            self.forward_since_ms = None;
            let primary = self.primary_of(view);
            for chunk in waiting.chunks(self.cfg.batch_len_max) {
                let requests =
                    chunk.iter().filter_map(|(_, k)| self.pending.get(k)).map(|p| p.request.clone()).collect();
                let msg = Message::Forward(self.sign(Forward { requests }));
                self.send(Target::One(primary), msg);
            }
        }
    }
}
