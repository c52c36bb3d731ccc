//! Dissemination apart from ordering, as Narwhal's workers and availability certificates
//! (Danezis, Kokoris-Kogias, Sonnino, Spiegelman, "Narwhal and Tusk", EuroSys 2022, §3–4)
//! and Mir-BFT's batches that every replica disseminates (Stathakopoulou, David, Pavlovic,
//! Vukolić, "Mir-BFT", J. Systems Research 2022), under PBFT's ordering.
//!
//! - **Parts.** A replica cuts the requests of its own clients into parts ([`Batch`]es
//!   without a time, named by their digest) and sends each to every replica
//!   ([`Disseminate`]). A replica that holds a part votes so to its origin ([`Holding`]);
//!   a quorum of votes is an availability certificate ([`Available`]), which the origin
//!   sends to every replica. At least one correct replica (f + 1 when n = 3f + 1) holds
//!   every certified part.
//! - **Ordering references.** The primary proposes certified parts by reference
//!   ([`Refs`] in [`Message::Propose`]): the pre-prepare's header is signed over the digest
//!   of [`Batch::join`] of the parts, the batch every replica rebuilds from the parts it
//!   holds. So the primary sends each request once at most (as the origin of its own
//!   clients' parts), not n − 1 times, and every replica sends its own clients' requests
//!   once to each peer instead of through the primary.
//! - **Missing parts.** A backup that lacks a named part checks its certificate (a
//!   primary that names a part no quorum holds is refused at once and reported) and
//!   fetches the part from the replicas that voted for it, in turn. It prepares only once
//!   it holds the whole batch, which it then stores (once, as before), so a commit means a
//!   quorum stored the batch: a Byzantine primary cannot get a batch ordered that no
//!   correct replica holds.
//! - **Crash of an origin.** Parts are held in memory: a vote says "I hold it", which a
//!   crash undoes; the batch is stored durably before any prepare, so safety never rests on
//!   parts. A part whose origin went silent before its certificate formed is adopted by
//!   any replica that holds it after a progress timeout (it collects the votes itself);
//!   requests still waiting a retransmission period are cut into a new part by their
//!   home replica. Duplicates this may order are executed once (the de-duplication of
//!   [`super::Delivered::fresh`]).
//!
//! Beyond DESIGN.md, which has the primary carry every batch. Bounds: the parts a replica
//! holds are bounded in bytes per origin, the certificates it keeps in number per sender;
//! certificates are checked when they are used (proposing, or naming a part this replica
//! lacks), not when they arrive.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::message::{
    Available, Batch, BatchReply, CertError, Digest, Disseminate, FetchBatch, Header, Holding, Message, Refs,
    ReplicaId, Request, RequestKey, Signed,
};

use super::{Replica, Target};

/// Certificates of parts not yet ordered that one sender may have this replica keep.
const CERTS_PER_SENDER_MAX: usize = 4096;

/// A part this replica holds.
pub(super) struct Part {
    batch: Arc<Batch>,
    /// The replica that sent it (its origin, or the peer it was fetched from), for the
    /// bound in bytes.
    from: ReplicaId,
    keys: Vec<RequestKey>,
    /// The sequence number of the proposal that named it, in this or an earlier view.
    ordered: Option<u64>,
    since_ms: u64,
}

struct Cert {
    cert: Available,
    sender: ReplicaId,
    at_ms: u64,
    checked: bool,
}

/// This replica's dissemination state.
#[derive(Default)]
pub(super) struct Parts {
    held: BTreeMap<Digest, Part>,
    bytes_from: BTreeMap<ReplicaId, usize>,
    /// Parts this replica sent (or adopted), collecting votes since the time given.
    collecting: BTreeMap<Digest, (BTreeMap<ReplicaId, Signed<Holding>>, u64)>,
    certs: BTreeMap<Digest, Cert>,
    certs_from: BTreeMap<ReplicaId, usize>,
    /// Certified parts not yet ordered, in the order their certificates came.
    available: VecDeque<Digest>,
    /// Proposals by reference waiting for parts this replica lacks, by sequence number.
    waiting: BTreeMap<u64, (Signed<Header>, Arc<Refs>)>,
    /// Parts asked for: how many times, and when last.
    fetching: BTreeMap<Digest, (usize, u64)>,
}

impl Parts {
    fn drop_part(&mut self, digest: &Digest) {
        if let Some(p) = self.held.remove(digest) {
            if let Some(b) = self.bytes_from.get_mut(&p.from) {
                *b = b.saturating_sub(p.batch.encoded().len());
            }
        }
        self.drop_cert(digest);
    }

    fn drop_cert(&mut self, digest: &Digest) {
        if let Some(c) = self.certs.remove(digest) {
            if let Some(n) = self.certs_from.get_mut(&c.sender) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl Replica {
    /// A part this replica holds (the simulator's Byzantine replicas rewrite proposals
    /// with it).
    #[cfg(feature = "sim")]
    pub fn held_part(&self, digest: &Digest) -> Option<Arc<Batch>> {
        self.parts.held.get(digest).map(|p| p.batch.clone())
    }

    /// Bytes of parts one peer may have this replica hold: an equal share of the pending
    /// bound.
    fn part_bytes_max(&self) -> usize {
        self.cfg.pending_bytes_max / self.membership().n().max(1)
    }

    /// Cuts this replica's requests (with their keys) into a part and sends it to every
    /// replica.
    pub(super) fn cut_part(&mut self, keyed: Vec<(RequestKey, Request)>) {
        if keyed.is_empty() {
            return;
        }
        let (keys, requests): (Vec<RequestKey>, Vec<Request>) = keyed.into_iter().unzip();
        let part = Arc::new(Batch::new(requests));
        let digest = part.digest();
        let me = self.cfg.id;
        if !self.parts.held.contains_key(&digest) {
            *self.parts.bytes_from.entry(me).or_default() += part.encoded().len();
            self.parts
                .held
                .insert(digest, Part { batch: part.clone(), from: me, keys, ordered: None, since_ms: self.now_ms });
        }
        self.collect_votes(digest);
        let msg = Message::Disseminate(self.sign(Disseminate { part }));
        self.send(Target::All, msg);
    }

    /// Keys of requests in this replica's own parts that something still carries: parts
    /// collecting votes, certified, or ordered.
    pub(super) fn own_parts_cover(&self) -> std::collections::HashSet<RequestKey> {
        let me = self.cfg.id;
        self.parts
            .held
            .iter()
            .filter(|(d, p)| {
                p.from == me
                    && (p.ordered.is_some()
                        || self.parts.collecting.contains_key(*d)
                        || self.parts.certs.contains_key(*d))
            })
            .flat_map(|(_, p)| p.keys.iter().copied())
            .collect()
    }

    /// Disseminates again, to every member, this replica's own parts whose requests still
    /// wait (oldest first, up to one batch of requests). Called when its view change has
    /// stalled with no higher view to join: the others may be content in the view it left
    /// and not hold those requests, having lost the parts they voted for in a restart (a
    /// certified part is not cut again, and its certificate goes to the primary of this
    /// replica's view only). Then no timer of theirs runs, and the view change never gathers
    /// 2f + 1. Whoever lacks a part holds its requests again and its timer runs: PBFT's
    /// client retransmission to every replica (§2.1), done by the replica that vouches for
    /// the requests.
    pub(super) fn redisseminate_own_parts(&mut self) {
        let me = self.cfg.id;
        let mut own: Vec<(u64, &Part)> = self
            .parts
            .held
            .values()
            .filter(|p| p.from == me && p.keys.iter().any(|k| self.pending.contains_key(k)))
            .map(|p| (p.since_ms, p))
            .collect();
        own.sort_by_key(|(since, p)| (*since, p.batch.digest()));
        let mut again = Vec::new();
        let mut requests = 0;
        for (_, p) in own {
            if !again.is_empty() && requests + p.keys.len() > self.cfg.batch_len_max {
                break;
            }
            requests += p.keys.len();
            again.push(p.batch.clone());
        }
        for part in again {
            let msg = Message::Disseminate(self.sign(Disseminate { part }));
            self.send(Target::All, msg);
        }
    }

    /// Starts collecting votes for a held part, with this replica's own.
    fn collect_votes(&mut self, digest: Digest) {
        let vote = self.sign(Holding { digest });
        let mut votes = BTreeMap::new();
        votes.insert(vote.from, vote);
        self.parts.collecting.insert(digest, (votes, self.now_ms));
        self.maybe_certify(digest);
    }

    pub(super) fn on_disseminate(&mut self, d: Signed<Disseminate>) {
        let from = d.from;
        let part = d.body.part;
        let digest = part.digest();
        if !self.parts.held.contains_key(&digest) && !self.hold_part(from, part) {
            return;
        }
        if self.is_member() {
            let vote = Message::Holding(self.sign(Holding { digest }));
            self.send(Target::One(from), vote);
        }
    }

    /// Takes a part (disseminated or fetched): its requests join the pending set (their
    /// timers start: a primary that never orders them is suspected), and proposals waiting
    /// for it go on. False when over the sender's bound.
    fn hold_part(&mut self, from: ReplicaId, part: Arc<Batch>) -> bool {
        let len = part.encoded().len();
        let held = self.parts.bytes_from.get(&from).copied().unwrap_or(0);
        if held + len > self.part_bytes_max() {
            self.drop_msg("parts over the sender's bound");
            return false;
        }
        let mut keys = Vec::with_capacity(part.requests().len());
        for r in part.requests() {
            let key = r.key();
            keys.push(key);
            if self.passed_on_fits(&key, r.encoded_len()) {
                self.admit(key, r.clone(), false, false);
            }
        }
        *self.parts.bytes_from.entry(from).or_default() += len;
        let digest = part.digest();
        self.parts.held.insert(digest, Part { batch: part, from, keys, ordered: None, since_ms: self.now_ms });
        self.parts.fetching.remove(&digest);
        self.resume_waiting();
        true
    }

    pub(super) fn on_holding(&mut self, v: Signed<Holding>) {
        let Some((votes, _)) = self.parts.collecting.get_mut(&v.body.digest) else {
            return; // Certified already, or not this replica's part.
        };
        votes.entry(v.from).or_insert(v.clone());
        self.maybe_certify(v.body.digest);
    }

    fn maybe_certify(&mut self, digest: Digest) {
        let quorum = self.membership().quorum();
        let Some((votes, _)) = self.parts.collecting.get(&digest) else { return };
        let counted: Vec<Signed<Holding>> =
            votes.values().filter(|v| self.membership().contains(v.from)).take(quorum).cloned().collect();
        if counted.len() < quorum {
            return;
        }
        self.parts.collecting.remove(&digest);
        let cert = Available { digest, votes: counted };
        let msg = Message::Available(self.sign(cert.clone()));
        self.send(Target::All, msg);
        let me = self.cfg.id;
        self.note_available(cert, me, true);
    }

    pub(super) fn on_available(&mut self, a: Signed<Available>) {
        self.note_available(a.body, a.from, false);
    }

    fn note_available(&mut self, cert: Available, sender: ReplicaId, checked: bool) {
        let digest = cert.digest;
        if self.parts.certs.contains_key(&digest) || self.parts.held.get(&digest).is_some_and(|p| p.ordered.is_some()) {
            return;
        }
        let count = self.parts.certs_from.entry(sender).or_default();
        if *count >= CERTS_PER_SENDER_MAX {
            return self.drop_msg("certificates over the sender's bound");
        }
        *count += 1;
        self.parts.certs.insert(digest, Cert { cert, sender, at_ms: self.now_ms, checked });
        self.parts.available.push_back(digest);
    }

    /// Checks a certificate against the current validator set.
    fn check_cert(&self, cert: &Available) -> Result<(), CertError> {
        let m = self.membership();
        cert.check(m.quorum(), |r| m.contains(r), self.epochs.roster())
    }

    /// Asks a holder of a part for it, another one at each retry.
    fn fetch_part(&mut self, digest: Digest, holders: &[ReplicaId]) {
        let now = self.now_ms;
        let me = self.cfg.id;
        let retransmit = self.cfg.retransmit_ms;
        let entry = self.parts.fetching.entry(digest).or_insert((0, 0));
        if entry.0 > 0 && now < entry.1 + retransmit {
            return;
        }
        let others: Vec<ReplicaId> = holders.iter().copied().filter(|h| *h != me).collect();
        let Some(&peer) = others.get(entry.0 % others.len().max(1)) else { return };
        entry.0 += 1;
        entry.1 = now;
        let msg = Message::FetchBatch(self.sign(FetchBatch { digest }));
        self.send(Target::One(peer), msg);
    }

    /// A fetched batch that is a part this replica asked for.
    pub(super) fn on_part_reply(&mut self, from: ReplicaId, part: Arc<Batch>) -> bool {
        if !part.is_part() || !self.parts.fetching.contains_key(&part.digest()) {
            return false;
        }
        self.hold_part(from, part);
        true
    }

    /// A held part, for a peer's fetch.
    pub(super) fn serve_part(&mut self, to: ReplicaId, digest: &Digest) -> bool {
        let Some(batch) = self.parts.held.get(digest).map(|p| p.batch.clone()) else { return false };
        let msg = Message::BatchReply(self.sign(BatchReply { batch }));
        self.send(Target::One(to), msg);
        true
    }

    // ---- the primary ------------------------------------------------------------------

    /// The primary proposes certified parts it holds, by reference, while the pipeline
    /// window is open: at once when a batch is full, else after the proposal delay.
    pub(super) fn propose_parts(&mut self) {
        while self.window_open() {
            let (ready, oldest) = self.parts_ready();
            if ready == 0 {
                if self.pending_boundary().is_none() {
                    return;
                }
                self.propose_null();
                continue;
            }
            let full = ready >= self.cfg.batch_len_max;
            if !full && oldest.is_some_and(|t| self.now_ms < t + self.proposal_delay_ms()) {
                return;
            }
            if !self.propose_from_parts() {
                return;
            }
        }
    }

    /// Requests in certified parts ready to order (counted up to one batch), and when the
    /// oldest of those was certified.
    fn parts_ready(&mut self) -> (usize, Option<u64>) {
        let mut ready = 0;
        let mut oldest = None;
        let mut missing = Vec::new();
        for d in &self.parts.available {
            let Some(c) = self.parts.certs.get(d) else { continue };
            match self.parts.held.get(d) {
                Some(p) if p.ordered.is_none() => {
                    ready += p.keys.len();
                    oldest = Some(oldest.map_or(c.at_ms, |o: u64| o.min(c.at_ms)));
                }
                Some(_) => {}
                None => missing.push((*d, c.cert.holders().collect::<Vec<_>>())),
            }
            if ready >= self.cfg.batch_len_max {
                break;
            }
        }
        for (d, holders) in missing {
            self.fetch_part(d, &holders);
        }
        (ready, oldest)
    }

    /// Builds and proposes one batch from the front of the certified parts; false when
    /// none could go in.
    fn propose_from_parts(&mut self) -> bool {
        let mut chosen: Vec<Digest> = Vec::new();
        let mut deferred = Vec::new();
        let (mut count, mut bytes) = (0usize, 12usize);
        while let Some(d) = self.parts.available.pop_front() {
            let Some(part) = self.parts.held.get(&d) else {
                if self.parts.certs.contains_key(&d) {
                    deferred.push(d); // Being fetched.
                }
                continue;
            };
            if part.ordered.is_some() || !part.keys.iter().any(|k| self.pending.contains_key(k)) {
                // Ordered before, or every request of it executed through another part.
                continue;
            }
            let (len, size) = (part.keys.len(), part.batch.encoded().len() - 12);
            if !chosen.is_empty() && (count + len > self.cfg.batch_len_max || bytes + size > self.cfg.batch_bytes_max) {
                self.parts.available.push_front(d);
                break;
            }
            let Some(c) = self.parts.certs.get(&d) else { continue };
            let m = self.membership();
            if !c.cert.counts(m.quorum(), |r| m.contains(r)) {
                // Certified under an earlier validator set: adopted again
                // (`retransmit_parts`).
                self.parts.drop_cert(&d);
                self.drop_msg("a certificate short of this set's quorum");
                continue;
            }
            if !c.checked {
                if let Err(e) = self.check_cert(&c.cert) {
                    let sender = c.sender;
                    self.parts.drop_cert(&d);
                    match e {
                        CertError::Forged(why) => self.fault(sender, why),
                        // Certified under another validator set: the part is adopted
                        // again (`retransmit_parts`).
                        CertError::Short => self.drop_msg("a certificate short of this set's quorum"),
                    }
                    continue;
                }
            }
            if let Some(c) = self.parts.certs.get_mut(&d) {
                c.checked = true;
            }
            count += len;
            bytes += size;
            chosen.push(d);
        }
        for d in deferred.into_iter().rev() {
            self.parts.available.push_front(d);
        }
        if chosen.is_empty() {
            return false;
        }
        let time_ms = self.wall_ms.max(self.time_ms);
        let batch = {
            let parts: Vec<&Batch> = chosen.iter().map(|d| self.parts.held[d].batch.as_ref()).collect();
            Batch::join(time_ms, &parts)
        };
        let Some(batch) = batch else {
            // Within the configured bounds a join always fits; never expected.
            debug_assert!(false, "parts chosen within the batch bounds do not join");
            return false;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.slots.get(&seq).is_some_and(|s| s.view == self.view && s.pre_prepare.is_some()) {
            // Already assigned in this view (never expected): back to the queue rather than
            // equivocate.
            for d in chosen.into_iter().rev() {
                self.parts.available.push_front(d);
            }
            return false;
        }
        let parts = chosen.iter().map(|d| self.parts.certs[d].cert.clone()).collect();
        for d in &chosen {
            if let Some(p) = self.parts.held.get_mut(d) {
                p.ordered = Some(seq);
            }
        }
        let refs = Arc::new(Refs { time_ms, parts });
        let header = self.sign(Header { view: self.view, seq, digest: batch.digest() });
        self.accept_pre_prepare(header, Arc::new(batch), Some(refs));
        true
    }

    // ---- backups ----------------------------------------------------------------------

    /// A proposal by reference: rebuilt from held parts, or waits for the missing ones
    /// after their certificates are checked.
    pub(super) fn on_propose(&mut self, h: Signed<Header>, refs: Arc<Refs>) {
        if !self.pre_prepare_admissible(&h) {
            return;
        }
        let seq = h.body.seq;
        if self.slots.get(&seq).is_some_and(|s| s.view == h.body.view && s.batch.is_some()) {
            return self.drop_msg("duplicate");
        }
        if refs.parts.is_empty() {
            return self.fault(h.from, "a proposal without parts");
        }
        let missing: Vec<&Available> = refs.parts.iter().filter(|c| !self.parts.held.contains_key(&c.digest)).collect();
        if missing.is_empty() {
            return self.assemble(h, &refs);
        }
        for c in &missing {
            match self.check_cert(c) {
                Ok(()) => {}
                Err(CertError::Forged(why)) => return self.fault(h.from, why),
                // Valid votes of a set this replica does not count (it may be at another
                // epoch than the primary): not proof of a fault.
                Err(CertError::Short) => return self.drop_msg("a proposal naming a part short of a quorum"),
            }
        }
        let wanted: Vec<(Digest, Vec<ReplicaId>)> = missing.iter().map(|c| (c.digest, c.holders().collect())).collect();
        self.parts.waiting.insert(seq, (h, refs.clone()));
        for (d, holders) in wanted {
            self.fetch_part(d, &holders);
        }
    }

    /// Rebuilds a proposal's batch from held parts and takes it as a pre-prepare.
    fn assemble(&mut self, h: Signed<Header>, refs: &Refs) {
        let joined = {
            let parts: Vec<&Batch> = refs.parts.iter().map(|c| self.parts.held[&c.digest].batch.as_ref()).collect();
            Batch::join(refs.time_ms, &parts)
        };
        let Some(batch) = joined else {
            return self.fault(h.from, "a proposal over the batch bounds");
        };
        if batch.digest() != h.body.digest {
            return self.fault(h.from, "a proposal whose parts do not make its batch");
        }
        for c in &refs.parts {
            if let Some(p) = self.parts.held.get_mut(&c.digest) {
                p.ordered = Some(h.body.seq);
            }
        }
        self.on_pre_prepare(h, Arc::new(batch));
    }

    /// Proposals whose parts have all arrived go on; those of other views or executed
    /// sequence numbers are dropped.
    fn resume_waiting(&mut self) {
        let ready: Vec<u64> = self
            .parts
            .waiting
            .iter()
            .filter(|(_, (_, refs))| refs.parts.iter().all(|c| self.parts.held.contains_key(&c.digest)))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in ready {
            if let Some((h, refs)) = self.parts.waiting.remove(&seq) {
                if h.body.view == self.view && seq > self.last_executed {
                    self.assemble(h, &refs);
                }
            }
        }
    }

    // ---- timers, view changes, checkpoints -----------------------------------------------

    /// Re-sends parts still short of a certificate to the replicas that have not voted,
    /// adopts parts whose origin went silent, and asks again for missing parts.
    pub(super) fn retransmit_parts(&mut self) {
        let now = self.now_ms;
        let stale = now.saturating_sub(self.cfg.retransmit_ms);
        let me = self.cfg.id;
        // Adopt: a part held a progress timeout without a certificate, still pending.
        let timeout = self.timeout_ms();
        let orphans: Vec<Digest> = self
            .parts
            .held
            .iter()
            .filter(|(d, p)| {
                p.from != me
                    && p.ordered.is_none()
                    && p.since_ms + timeout <= now
                    && !self.parts.certs.contains_key(*d)
                    && !self.parts.collecting.contains_key(*d)
                    && p.keys.iter().any(|k| self.pending.contains_key(k))
            })
            .map(|(d, _)| *d)
            .collect();
        for d in orphans {
            self.collect_votes(d);
        }
        let members = self.membership().members.clone();
        let mut resend = Vec::new();
        for (d, (votes, since)) in self.parts.collecting.iter_mut() {
            if *since > stale {
                continue;
            }
            *since = now;
            if let Some(p) = self.parts.held.get(d) {
                let missing: Vec<ReplicaId> =
                    members.iter().copied().filter(|r| *r != me && !votes.contains_key(r)).collect();
                resend.push((p.batch.clone(), missing));
            }
        }
        for (part, to) in resend {
            let msg = Message::Disseminate(self.sign(Disseminate { part }));
            for peer in to {
                self.send(Target::One(peer), msg.clone());
            }
        }
        // Certificates of own parts the primary has not ordered a retransmission period
        // after they formed: again to the primary (the first may have been lost with a
        // connection; a new part is cut only for requests no part carries).
        let primary = self.primary_of(self.view);
        if primary != me {
            let again: Vec<Available> = self
                .parts
                .certs
                .iter()
                .filter(|(d, c)| {
                    c.sender == me
                        && c.at_ms <= stale
                        && self.parts.held.get(*d).is_some_and(|p| {
                            p.from == me && p.ordered.is_none() && p.keys.iter().any(|k| self.pending.contains_key(k))
                        })
                })
                .map(|(_, c)| c.cert.clone())
                .collect();
            for cert in again {
                let msg = Message::Available(self.sign(cert));
                self.send(Target::One(primary), msg);
            }
        }
        let waiting: Vec<(Digest, Vec<ReplicaId>)> = self
            .parts
            .waiting
            .values()
            .flat_map(|(_, refs)| refs.parts.iter())
            .filter(|c| !self.parts.held.contains_key(&c.digest))
            .map(|c| (c.digest, c.holders().collect()))
            .collect();
        for (d, holders) in waiting {
            self.fetch_part(d, &holders);
        }
    }

    /// On entering a view: parts ordered above the last executed batch may not be ordered
    /// in this view (unless a prepared certificate carries them, which the de-duplication
    /// at execution then meets), so they are available again, as are stranded parts
    /// ([`Replica::release_stranded_parts`]); proposals of older views waiting for parts
    /// are dropped.
    pub(super) fn requeue_parts(&mut self) {
        self.release_parts(self.last_executed);
        let view = self.view;
        self.parts.waiting.retain(|_, (h, _)| h.body.view >= view);
    }

    /// Parts stranded by a view change: ordered at a sequence number that has executed
    /// since, with another batch (their requests still wait, which they would not had
    /// the part executed there). They are no longer ordered, and available again where
    /// certified. Kept as ordered, a checkpoint past that number would drop them, and a
    /// primary would hold requests that no part of its carries: it would never propose
    /// them, and backups that do not hold them would never time out on them.
    fn release_stranded_parts(&mut self) {
        self.release_parts(u64::MAX);
    }

    /// Makes held parts no longer ordered, and available again if certified (oldest
    /// certificate first): those ordered above `above`, and stranded ones (ordered at or
    /// below the last executed batch, a request of theirs still waiting).
    fn release_parts(&mut self, above: u64) {
        let (pending, executed) = (&self.pending, self.last_executed);
        let mut again: Vec<(u64, Digest)> = Vec::new();
        for (d, p) in self.parts.held.iter_mut() {
            let Some(seq) = p.ordered else { continue };
            let stranded = || seq <= executed && p.keys.iter().any(|k| pending.contains_key(k));
            if seq > above || stranded() {
                p.ordered = None;
                if let Some(c) = self.parts.certs.get(d) {
                    again.push((c.at_ms, *d));
                }
            }
        }
        again.sort_unstable();
        let queued: BTreeSet<Digest> = self.parts.available.iter().copied().collect();
        for (_, d) in again.into_iter().rev() {
            if !queued.contains(&d) {
                self.parts.available.push_front(d);
            }
        }
    }

    /// At a stable checkpoint: parts ordered at or below it, and parts none of whose
    /// requests still wait, are dropped with their certificates; so are certificates of
    /// parts never received that are older than a few progress timeouts.
    pub(super) fn sweep_parts(&mut self, stable: u64) {
        self.release_stranded_parts();
        let now = self.now_ms;
        let horizon = 4 * self.cfg.view_change_timeout_ms;
        let gone: Vec<Digest> = self
            .parts
            .held
            .iter()
            .filter(|(d, p)| {
                p.ordered.is_some_and(|s| s <= stable)
                    || (p.ordered.is_none()
                        && !self.parts.collecting.contains_key(*d)
                        && !p.keys.iter().any(|k| self.pending.contains_key(k)))
            })
            .map(|(d, _)| *d)
            .collect();
        for d in &gone {
            self.parts.drop_part(d);
            self.parts.collecting.remove(d);
        }
        let stale_certs: Vec<Digest> = self
            .parts
            .certs
            .iter()
            .filter(|(d, c)| !self.parts.held.contains_key(*d) && c.at_ms + horizon <= now)
            .map(|(d, _)| *d)
            .collect();
        for d in &stale_certs {
            self.parts.drop_cert(d);
            self.parts.fetching.remove(d);
        }
        let (held, certs) = (&self.parts.held, &self.parts.certs);
        self.parts.available.retain(|d| certs.contains_key(d) && held.get(d).is_none_or(|p| p.ordered.is_none()));
        self.parts.waiting = self.parts.waiting.split_off(&(stable + 1));
        let fetching_keep: BTreeSet<Digest> =
            self.parts.waiting.values().flat_map(|(_, r)| r.parts.iter().map(|c| c.digest)).collect();
        self.parts.fetching.retain(|d, _| fetching_keep.contains(d) || certs.contains_key(d));
    }
}

impl Replica {
    /// Where the first `max` pending requests stand: buffered, queued, proposed, and the
    /// parts held that carry them (for a simulator report of a stalled run).
    #[cfg(feature = "sim")]
    pub fn pending_report(&self, max: usize) -> String {
        let mut out = String::new();
        let next = self.last_executed + 1;
        if let Some(slot) = self.slots.get(&next) {
            out.push_str(&format!(
                "\n    slot {next}: view {} pre-prepare {:?} batch {} refs {} prepares {:?} commits {:?} prepared in view {:?}; \
                 awaiting batches {}, proposals waiting for parts {:?}",
                slot.view,
                slot.pre_prepare.as_ref().map(|h| (h.body.view, h.from)),
                slot.batch.is_some(),
                slot.refs.is_some(),
                slot.prepares.keys().collect::<Vec<_>>(),
                slot.commits.keys().collect::<Vec<_>>(),
                slot.prepared.as_ref().map(|p| p.pre_prepare.body.view),
                self.awaiting_batch.len(),
                self.parts.waiting.keys().collect::<Vec<_>>(),
            ));
        }
        if self.pending.len() > max {
            out.push_str(&format!("\n    (the first {max} of {} pending requests)", self.pending.len()));
        }
        for (key, p) in self.pending.iter().take(max) {
            let parts: Vec<String> = self
                .parts
                .held
                .iter()
                .filter(|(_, part)| part.keys.contains(key))
                .map(|(d, part)| {
                    format!(
                        "part from {} ordered {:?} since {} collecting {:?} cert {} available {}",
                        part.from,
                        part.ordered,
                        part.since_ms,
                        self.parts.collecting.get(d).map(|(v, at)| (v.keys().copied().collect::<Vec<_>>(), *at)),
                        self.parts.certs.contains_key(d),
                        self.parts.available.contains(d)
                    )
                })
                .collect();
            out.push_str(&format!(
                "\n    request {}/{} own {} arrived {} buffered {} queued {} proposed {} parts {:?}",
                p.request.client,
                p.request.id,
                p.own,
                p.arrival_ms,
                self.forward_buf.iter().any(|(k, _)| k == key),
                self.queue.contains(key),
                self.proposed.contains(key),
                parts
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use dualchain_crypto::sign::SigningKeypair;
    use rand::SeedableRng;

    use super::*;
    use crate::config::Config;

    /// The primary of view 0 with its own client's request in a part that replicas 1 and 2
    /// voted for, certified and proposed at sequence number 1.
    fn primary_with_an_ordered_part() -> (Replica, Digest) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let keys: Vec<_> = (0..4).map(|_| SigningKeypair::generate(&mut rng)).collect();
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let mut cfg = Config::new(4, 0);
        cfg.batch_delay_ms = 0;
        let mut r = Replica::new(cfg, keys[0].clone(), publics).unwrap();
        let out = r.submit(0, Request { client: 5, id: 0, payload: vec![1; 16] }).unwrap();
        let digest = out
            .send
            .iter()
            .find_map(|(_, m)| match m.as_ref() {
                Message::Disseminate(d) => Some(d.body.part.digest()),
                _ => None,
            })
            .expect("the request went out in a part");
        for voter in [1, 2] {
            r.receive(0, Message::Holding(Signed::sign(&keys[voter as usize], voter, Holding { digest })));
        }
        assert_eq!(r.parts.held[&digest].ordered, Some(1), "certified and proposed at 1");
        (r, digest)
    }

    /// A part stranded by a view change (its sequence number executed another batch, its
    /// request still waits) is proposed again, and a checkpoint past that number does not
    /// drop it: before, the primary went on holding the request with no part to propose it
    /// by, and backups that lacked it never timed out (swarm seed 1000778).
    #[test]
    fn a_part_stranded_by_a_view_change_is_proposed_again_not_dropped() {
        let (mut r, digest) = primary_with_an_ordered_part();
        // Sequence number 1 executed another batch (the view changed before this
        // replica's proposal prepared, and it caught up by state transfer).
        r.last_executed = 1;
        r.sweep_parts(1);
        let part = r.parts.held.get(&digest).expect("still held: its request waits");
        assert_eq!(part.ordered, None);
        assert_eq!(r.parts.available.iter().collect::<Vec<_>>(), [&digest], "available to propose again");
        assert_eq!(r.pending_len(), 1);
    }

    /// A part whose sequence number executed it is dropped at the checkpoint past it.
    #[test]
    fn a_part_that_executed_is_dropped_at_the_checkpoint_past_it() {
        let (mut r, digest) = primary_with_an_ordered_part();
        let key = r.parts.held[&digest].keys[0];
        r.pending.remove(&key);
        r.last_executed = 1;
        r.sweep_parts(1);
        assert!(!r.parts.held.contains_key(&digest));
        assert!(r.parts.available.is_empty());
    }
}
