//! The consensus store: the PBFT log, checkpoints, the replica's view and the archive of
//! committed batches with their commit certificates (DESIGN.md §5, §7).
//!
//! The consensus crate persists opaque, self-describing records; this module only knows
//! sequence numbers. Keys (big-endian numbers sort numerically):
//! - `consensus_log`: `r ‖ seq ‖ id₈` → log record (a message the replica accepted or
//!   sent; `id` is a SHA-256 prefix of the record's leading, identifying bytes, so writing
//!   one twice is idempotent);
//!   `c ‖ seq` → committed batch with its certificate (never truncated: it is what state
//!   transfer serves to a lagging replica);
//! - `checkpoints`: `seq` → checkpoint proof;
//! - `meta`: `pbft/view` → current view, `pbft/stable` → stable checkpoint sequence,
//!   `pbft/committed` → highest archived sequence, `pbft/membership` → the validator
//!   set's history (written when a reconfiguration is executed, with the entry that
//!   executed it).
//!
//! Every [`ConsensusStore::write`] is one all-or-nothing, synced commit, so the engine
//! groups what one step of the core produced (and what several steps produced while the
//! disk was busy) into one write: a replica never sends a message whose justification is
//! not on disk, and pays one sync per group, not per message.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::atomic;
use crate::engine::{Cf, KvEngine, WriteBatch};
use crate::error::{Result, StorageError};
use crate::record::{self, be};

/// Largest log record, checkpoint proof or committed entry.
pub const ENTRY_LEN_MAX: usize = 96 << 20;

const VIEW_KEY: &[u8] = b"pbft/view";
const STABLE_KEY: &[u8] = b"pbft/stable";
const LAST_COMMITTED_KEY: &[u8] = b"pbft/committed";
const MEMBERSHIP_KEY: &[u8] = b"pbft/membership";
/// A sequence number no batch may carry: nothing could follow it.
const SEQ_NONE: u64 = u64::MAX;

/// What one synced commit writes.
#[derive(Debug, Default, Clone)]
pub struct LogWrite {
    /// Log records by sequence number.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The replica's new view.
    pub view: Option<u64>,
    /// A checkpoint proof to keep.
    pub checkpoint: Option<(u64, Vec<u8>)>,
    /// A checkpoint that became stable: records at or below it and older checkpoints go.
    pub stable: Option<u64>,
    /// Committed batches to archive.
    pub committed: Vec<(u64, Vec<u8>)>,
    /// The validator set's history, replaced whole (opaque to the store).
    pub membership: Option<Vec<u8>>,
}

impl LogWrite {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.view.is_none()
            && self.checkpoint.is_none()
            && self.stable.is_none()
            && self.committed.is_empty()
            && self.membership.is_none()
    }

    /// Appends `other` after `self` (later values win).
    pub fn merge(&mut self, other: LogWrite) {
        self.records.extend(other.records);
        self.committed.extend(other.committed);
        if other.view.is_some() {
            self.view = other.view;
        }
        if other.checkpoint.is_some() {
            self.checkpoint = other.checkpoint;
        }
        if other.stable.is_some() {
            self.stable = other.stable.max(self.stable);
        }
        if other.membership.is_some() {
            self.membership = other.membership;
        }
    }
}

/// Bytes of a record that identify it: a consensus record starts with its signed header
/// (kind, sender, view, sequence number, digest, signature), so two records that agree on
/// these bytes are the same record. Hashing only them keeps the key cheap for records that
/// carry megabyte batches.
const RECORD_ID_LEN: usize = 160;

fn record_key(seq: u64, record: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'r');
    k.extend_from_slice(&be(seq));
    k.extend_from_slice(&Sha256::digest(&record[..record.len().min(RECORD_ID_LEN)])[..8]);
    k
}

fn committed_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'c'];
    k.extend_from_slice(&be(seq));
    k
}

fn seq_of(key: &[u8]) -> Result<u64> {
    key.get(1..9).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(|| StorageError::Corrupt {
        cf: Cf::ConsensusLog.name(),
        key: crate::error::key_hex(key),
        reason: "key too short".into(),
    })
}

/// The consensus view of the store.
pub struct ConsensusStore {
    engine: Arc<dyn KvEngine>,
}

impl ConsensusStore {
    /// Opens the consensus view, finishing any interrupted commit first.
    pub fn open(engine: Arc<dyn KvEngine>) -> Result<Self> {
        atomic::recover(engine.as_ref())?;
        Ok(Self { engine })
    }

    /// Writes `w` in one synced, all-or-nothing commit.
    pub fn write(&self, w: &LogWrite) -> Result<()> {
        let too_large = |what: &str| StorageError::Invalid(format!("{what} larger than {ENTRY_LEN_MAX} bytes"));
        let mut wb = WriteBatch::new();
        for (seq, rec) in &w.records {
            if rec.len() > ENTRY_LEN_MAX {
                return Err(too_large("consensus-log record"));
            }
            wb.put(Cf::ConsensusLog, record_key(*seq, rec), record::seal(rec));
        }
        for (seq, entry) in &w.committed {
            if entry.len() > ENTRY_LEN_MAX {
                return Err(too_large("committed entry"));
            }
            if *seq == SEQ_NONE {
                return Err(StorageError::Invalid(format!("committed sequence number {seq} leaves no successor")));
            }
            wb.put(Cf::ConsensusLog, committed_key(*seq), record::seal(entry));
        }
        if let Some(last) = w.committed.iter().map(|(s, _)| *s).max() {
            if self.last_committed()?.is_none_or(|current| last > current) {
                wb.put(Cf::Meta, LAST_COMMITTED_KEY.to_vec(), record::seal(&be(last)));
            }
        }
        if let Some(view) = w.view {
            wb.put(Cf::Meta, VIEW_KEY.to_vec(), record::seal(&be(view)));
        }
        if let Some(m) = &w.membership {
            if m.len() > ENTRY_LEN_MAX {
                return Err(too_large("membership"));
            }
            wb.put(Cf::Meta, MEMBERSHIP_KEY.to_vec(), record::seal(m));
        }
        if let Some((seq, proof)) = &w.checkpoint {
            if proof.len() > ENTRY_LEN_MAX {
                return Err(too_large("checkpoint"));
            }
            wb.put(Cf::Checkpoints, be(*seq).to_vec(), record::seal(proof));
        }
        if let Some(stable) = w.stable {
            let has_proof = w.checkpoint.as_ref().is_some_and(|(s, _)| *s == stable)
                || self.engine.get(Cf::Checkpoints, &be(stable))?.is_some();
            if !has_proof {
                return Err(StorageError::NotFound(format!("checkpoint {stable}")));
            }
            if let Some((current, _)) = self.stable_checkpoint()? {
                if stable < current {
                    return Err(StorageError::Conflict(format!(
                        "checkpoint {stable} is older than the stable checkpoint {current}"
                    )));
                }
            }
            let mut to = vec![b'r'];
            to.extend_from_slice(&be(stable.saturating_add(1)));
            wb.delete_range(Cf::ConsensusLog, vec![b'r'], to);
            wb.delete_range(Cf::Checkpoints, be(0).to_vec(), be(stable).to_vec());
            wb.put(Cf::Meta, STABLE_KEY.to_vec(), record::seal(&be(stable)));
        }
        atomic::commit(self.engine.as_ref(), wb)
    }

    /// The persisted view (0 before any view change).
    pub fn view(&self) -> Result<u64> {
        match record::get(self.engine.as_ref(), Cf::Meta, VIEW_KEY)? {
            Some(p) => record::read_u64(Cf::Meta, VIEW_KEY, &p),
            None => Ok(0),
        }
    }

    /// The validator set's history as last written (none before the first
    /// reconfiguration).
    pub fn membership(&self) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), Cf::Meta, MEMBERSHIP_KEY)
    }

    /// Log records with `seq >= from`, in sequence order.
    pub fn records(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut start = vec![b'r'];
        start.extend_from_slice(&be(from));
        let rows = self.engine.scan(Cf::ConsensusLog, &start, Some(b"s"), usize::MAX)?;
        rows.into_iter().map(|(k, v)| Ok((seq_of(&k)?, record::open(Cf::ConsensusLog, &k, &v)?.to_vec()))).collect()
    }

    /// The stable checkpoint and its proof.
    pub fn stable_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(p) = record::get(self.engine.as_ref(), Cf::Meta, STABLE_KEY)? else { return Ok(None) };
        let seq = record::read_u64(Cf::Meta, STABLE_KEY, &p)?;
        match record::get(self.engine.as_ref(), Cf::Checkpoints, &be(seq))? {
            Some(proof) => Ok(Some((seq, proof))),
            None => Err(StorageError::Corrupt {
                cf: Cf::Checkpoints.name(),
                key: seq.to_string(),
                reason: "the stable checkpoint's proof is missing".into(),
            }),
        }
    }

    /// A kept checkpoint proof.
    pub fn checkpoint(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), Cf::Checkpoints, &be(seq))
    }

    /// The committed entry at `seq`.
    pub fn committed(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), Cf::ConsensusLog, &committed_key(seq))
    }

    /// Committed entries with `from <= seq < to`, at most `limit`, in order.
    pub fn committed_range(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self.engine.scan(Cf::ConsensusLog, &committed_key(from), Some(&committed_key(to)), limit)?;
        rows.into_iter().map(|(k, v)| Ok((seq_of(&k)?, record::open(Cf::ConsensusLog, &k, &v)?.to_vec()))).collect()
    }

    /// The highest archived committed sequence number (never `u64::MAX`: readers ask for
    /// the entries up to `last + 1`).
    pub fn last_committed(&self) -> Result<Option<u64>> {
        match record::get(self.engine.as_ref(), Cf::Meta, LAST_COMMITTED_KEY)? {
            Some(p) => match record::read_u64(Cf::Meta, LAST_COMMITTED_KEY, &p)? {
                SEQ_NONE => Err(record::corrupt(Cf::Meta, LAST_COMMITTED_KEY, "sequence number u64::MAX")),
                last => Ok(Some(last)),
            },
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEngine;

    /// Found by the `storage_record` fuzz target: a last-committed record of `u64::MAX` made
    /// the replica's recovery read (`last + 1`) overflow. It is corruption, and the store
    /// never writes it.
    #[test]
    fn a_last_committed_of_u64_max_is_corrupt() {
        let engine = Arc::new(MemoryEngine::new());
        let store = ConsensusStore::open(engine.clone()).unwrap();
        let write = |seq| LogWrite { committed: vec![(seq, b"entry".to_vec())], ..LogWrite::default() };
        store.write(&write(u64::MAX - 1)).unwrap();
        assert_eq!(store.last_committed().unwrap(), Some(u64::MAX - 1));
        assert!(matches!(store.write(&write(u64::MAX)), Err(StorageError::Invalid(_))));
        let mut wb = WriteBatch::new();
        wb.put(Cf::Meta, LAST_COMMITTED_KEY.to_vec(), record::seal(&be(u64::MAX)));
        engine.write(wb).unwrap();
        assert!(matches!(store.last_committed(), Err(StorageError::Corrupt { .. })));
    }
}
