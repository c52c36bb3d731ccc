//! Restart from the persisted log (the crash-recovery half of TOCS 2002 §4; proactive
//! recovery itself is out of scope).
//!
//! What a replica persisted before acting — its view (and whether it was changing view),
//! every pre-prepare and vote it accepted or sent, its stable checkpoint proof, the
//! validator sets it executed changes to, and the archive of executed entries — is
//! replayed without sending anything. The replica then
//! knows every pre-prepare it accepted (so it never prepares a conflicting one in the
//! same view), every prepared certificate (so its next VIEW-CHANGE reports them), and
//! what it executed (history digest and the de-duplication set). Batches committed but not
//! yet archived are executed and delivered again right after the replay; the application
//! applies each sequence number once.

use std::collections::BTreeMap;

use dualchain_crypto::sign::{PublicKey, SigningKeypair};

use crate::config::Config;
use crate::membership::Epochs;
use crate::message::{CheckpointProof, Message, Phase, Prepared, Signed, Vote};

use super::persisted::{parse_archive, Archived, Recovered, RecoveryError};
use super::{Output, Replica, Status};

/// A pre-prepare and prepares of a view before the current one, by (sequence, view).
type OlderSlot = (Option<Signed<crate::message::Header>>, Vec<Signed<Vote>>);

impl Replica {
    /// Rebuilds a replica from its store. The returned output carries what must happen now:
    /// batches committed but not yet archived, and a view change in progress.
    pub fn recover(
        cfg: Config,
        key: SigningKeypair,
        keys: Vec<PublicKey>,
        rec: Recovered,
        now_ms: u64,
    ) -> Result<(Self, Output), RecoveryError> {
        let epochs = match &rec.membership {
            Some(bytes) => Epochs::from_bytes(bytes, &keys)?,
            None => Epochs::genesis(keys.clone()),
        };
        let mut r = Replica::with_epochs(cfg, key, keys, epochs)?;
        r.now_ms = now_ms;
        r.replaying = true;
        r.stored_batches = rec.stored_batches.iter().copied().collect();
        if let Some(bytes) = &rec.stable {
            let proof = CheckpointProof::from_bytes(bytes)?;
            if !r.check_checkpoint_proof(&proof) {
                return Err(RecoveryError::Inconsistent("the stable checkpoint proof does not verify".into()));
            }
            r.stable = proof;
            r.next_seq = r.stable.seq + 1;
        }
        let mut last_seq = None;
        for bytes in &rec.recent {
            let Archived { history, time_ms, entry } = parse_archive(bytes)?;
            if last_seq.is_some_and(|s| entry.seq != s + 1) {
                return Err(RecoveryError::Inconsistent("archived entries are not consecutive".into()));
            }
            last_seq = Some(entry.seq);
            for req in entry.batch.requests() {
                let k = req.key();
                if r.executed.insert(k, entry.seq).is_none() {
                    r.executed_order.push_back((entry.seq, k));
                }
            }
            r.last_executed = entry.seq;
            r.history = history;
            r.time_ms = time_ms;
        }
        r.next_seq = r.next_seq.max(r.last_executed + 1);
        r.view = rec.view_word >> 1;
        let changing = rec.view_word & 1 == 1;

        // Replay: messages of the current view go through the normal path; older views
        // only contribute prepared certificates.
        let mut older: BTreeMap<(u64, u64), OlderSlot> = BTreeMap::new();
        for (seq, bytes) in &rec.records {
            let msg = Message::from_bytes(bytes)?;
            match msg {
                Message::PrePrepare(h, batch) if h.body.view == r.view && !changing => {
                    r.note_seen(*seq);
                    if h.body.seq > r.last_executed && r.in_window(h.body.seq) && h.body.digest == batch.digest() {
                        r.accept_pre_prepare(h, batch, None);
                    }
                }
                // Own votes are re-created by the replay (Ed25519 signatures are
                // deterministic, so they are the same messages).
                Message::Vote(v) if v.body.view == r.view && !changing && v.from != r.cfg.id => r.on_vote(v),
                Message::PrePrepare(h, batch) => {
                    r.batches.insert(batch.digest(), batch);
                    let k = (h.body.seq, h.body.view);
                    older.entry(k).or_default().0 = Some(h);
                }
                Message::Vote(v) if v.body.phase == Phase::Prepare => {
                    older.entry((v.body.seq, v.body.view)).or_default().1.push(v);
                }
                _ => {}
            }
        }
        // A primary must not reuse a sequence number it assigned before the crash.
        let assigned = r.slots.iter().filter(|(_, s)| s.pre_prepare.is_some()).map(|(seq, _)| *seq).max();
        if let Some(seq) = assigned {
            r.next_seq = r.next_seq.max(seq + 1);
        }
        let f2 = r.membership().prepares_needed();
        for ((seq, view), (pp, prepares)) in older {
            let Some(pp) = pp else { continue };
            let mut senders = std::collections::HashSet::new();
            let prepares: Vec<_> = prepares
                .into_iter()
                .filter(|v| v.body.digest == pp.body.digest && v.from != pp.from && senders.insert(v.from))
                .take(f2)
                .collect();
            if prepares.len() < f2 || seq <= r.stable.seq {
                continue;
            }
            let slot = r.slots.entry(seq).or_default();
            if slot.prepared.as_ref().is_none_or(|p| p.pre_prepare.body.view < view) {
                slot.prepared = Some(Prepared { pre_prepare: pp, prepares });
            }
        }
        r.replaying = false;
        r.progress_ms = now_ms;
        r.retransmit_at_ms = now_ms;
        if changing {
            r.status = Status::ViewChanging { deadline_ms: None };
            r.view_change_since_ms = now_ms;
            r.broadcast_view_change();
        }
        r.after_step();
        let out = r.take_output();
        Ok((r, out))
    }
}
