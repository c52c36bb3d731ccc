//! Validator set changes as the replica executes them and enters their epochs
//! ([`crate::membership`] holds the rules and why they are safe).

use crate::message::Request;

use super::{Event, Replica, Status};

impl Replica {
    /// Executes a reconfiguration request committed at `seq` (fresh, in execution order, so
    /// every correct replica decides alike): schedules the new set, persisting the history
    /// in the same write as the entry's archive, or refuses it.
    pub(super) fn reconfigure(&mut self, seq: u64, request: &Request) {
        let (span, interval) = (self.cfg.watermark_span, self.cfg.checkpoint_interval);
        match self.epochs.schedule(request, seq, span, interval) {
            Ok(after_seq) => {
                let epoch = self.epochs.latest().epoch;
                tracing::info!(replica = self.cfg.id, seq, epoch, after_seq, "consensus.reconfiguration");
                if !self.replaying {
                    self.out.persist.membership = Some(self.epochs.to_bytes());
                }
                self.out.events.push(Event::Reconfiguration { seq, epoch, after_seq });
                if self.stable.seq >= after_seq {
                    // A learner whose stable checkpoint got there first.
                    self.enter_epoch();
                }
            }
            Err(e) => {
                tracing::warn!(replica = self.cfg.id, seq, reason = %e, "consensus.reconfiguration.refused");
                self.out.events.push(Event::ReconfigurationRefused { seq, reason: e.to_string() });
            }
        }
    }

    /// The stable checkpoint reached a change's boundary: from here on the new set votes.
    /// What was gathered under the old set for views (view changes, views seen ahead, a
    /// view left) no longer counts; a view change in progress starts over in the new set,
    /// and waiting requests go to the new primary.
    pub(super) fn enter_epoch(&mut self) {
        let member = self.is_member();
        let epoch = self.membership().epoch;
        tracing::info!(replica = self.cfg.id, epoch, member, "consensus.epoch");
        self.out.events.push(Event::EpochEntered { epoch, member });
        self.view_changes.clear();
        self.refused_view_changes.clear();
        self.ahead.clear();
        self.seq_ahead.clear();
        self.left_view = None;
        self.new_view = None;
        self.proposed.clear();
        self.queue.clear();
        self.queue_bytes = 0;
        self.progress_ms = self.now_ms;
        if !member {
            self.status = Status::Normal;
            self.own_view_change = None;
            return;
        }
        if self.status != Status::Normal {
            self.broadcast_view_change();
        } else {
            self.hand_over_pending();
        }
    }
}
