//! The consensus store: the PBFT log, checkpoints, the replica's view and the archive of
//! committed batches with their commit certificates (DESIGN.md §5, §7).
//!
//! The consensus crate persists opaque, self-describing records; this module only knows
//! sequence numbers and batch digests. Keys (big-endian numbers sort numerically):
//! - `consensus_log`: `b ‖ seq ‖ digest₃₂` → a batch, written once per replica
//!   (content-addressed within its sequence number, so a batch proposed again at the same
//!   number in a later view is the same record, and sweeping one number's leftovers never
//!   touches another's);
//!   `r ‖ seq ‖ id₈` → log record (a message the replica accepted or sent; `id` is a
//!   SHA-256 prefix of the record's leading, identifying bytes, so writing one twice is
//!   idempotent);
//!   `c ‖ seq` → committed entry with its certificate (never truncated: it is what state
//!   transfer serves to a lagging replica);
//! - `checkpoints`: `seq` → checkpoint proof;
//! - `meta`: `pbft/view` → current view, `pbft/stable` → stable checkpoint sequence,
//!   `pbft/committed` → highest archived sequence, `pbft/membership` → the validator
//!   set's history (written when a reconfiguration is executed, with the entry that
//!   executed it).
//!
//! ## Each batch once
//!
//! A pre-prepare record and the committed entry at the same sequence number carry the same
//! batch. Both are stored as a [`Split`]: the bytes before and after the batch, and the
//! batch's digest; the batch itself is one `b` record. Reads join them, so callers see
//! the records they wrote. Before, every batch was written twice per replica, inside the
//! pre-prepare record and again inside the archive entry; with RocksDB each of those is
//! written again when the memtable is flushed. The `b` records the archive does not refer
//! to (batches of views that never committed them) are swept with the log records when a
//! checkpoint becomes stable ([`LogWrite::sweep`]); the ones it refers to stay as long as
//! the archive does.
//!
//! A store written in the format before this one (records with their batches inline) has
//! no format marker; [`ConsensusStore::open`] refuses it by name rather than misread it.
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
/// The format of this column family's records (see the module docs).
const FORMAT_KEY: &[u8] = b"pbft/format";
const FORMAT: u64 = 2;
/// A sequence number no batch may carry: nothing could follow it.
const SEQ_NONE: u64 = u64::MAX;

/// A batch digest (SHA-256, as the consensus crate computes it).
pub type BatchDigest = [u8; 32];

/// A log record or committed entry as written: `head ‖ batch ‖ tail`, where the batch is
/// stored once under its sequence number and digest ([`LogWrite::batches`]), or the
/// whole record in `head` where it carries no batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    pub head: Vec<u8>,
    pub batch: Option<BatchDigest>,
    pub tail: Vec<u8>,
}

impl From<Vec<u8>> for Split {
    fn from(head: Vec<u8>) -> Self {
        Self { head, batch: None, tail: Vec::new() }
    }
}

impl Split {
    /// Bytes stored for it, without the batch.
    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// `flag ‖ [digest ‖ head length (u32)] ‖ head ‖ tail`.
    fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() + 37);
        match &self.batch {
            None => {
                out.push(0);
                out.extend_from_slice(&self.head);
            }
            Some(d) => {
                out.push(1);
                out.extend_from_slice(d);
                out.extend_from_slice(&(self.head.len() as u32).to_be_bytes());
                out.extend_from_slice(&self.head);
                out.extend_from_slice(&self.tail);
            }
        }
        out
    }

    fn from_stored(cf: Cf, key: &[u8], payload: &[u8]) -> Result<Self> {
        record::decode(cf, key, payload, |r| match r.u8()? {
            0 => Ok(Self { head: r.rest().to_vec(), batch: None, tail: Vec::new() }),
            1 => {
                let digest = r.array()?;
                let head_len = r.u32()? as usize;
                let head = r.take(head_len)?.to_vec();
                Ok(Self { head, batch: Some(digest), tail: r.rest().to_vec() })
            }
            value => Err(dualchain_crypto::DecodeError::UnknownVariant { what: "stored record form", value }),
        })
    }
}

/// What one synced commit writes.
#[derive(Debug, Default, Clone)]
pub struct LogWrite {
    /// Batches by sequence number and digest, each written once: records and committed
    /// entries refer to them.
    pub batches: Vec<(u64, BatchDigest, Vec<u8>)>,
    /// Log records by sequence number.
    pub records: Vec<(u64, Split)>,
    /// The replica's new view.
    pub view: Option<u64>,
    /// A checkpoint proof to keep.
    pub checkpoint: Option<(u64, Vec<u8>)>,
    /// A checkpoint that became stable: records at or below it and older checkpoints go.
    pub stable: Option<u64>,
    /// Committed entries to archive; a batch they refer to is in this write or an
    /// earlier one.
    pub committed: Vec<(u64, Split)>,
    /// Batches no committed entry refers to, at sequence numbers the stable checkpoint
    /// passed: deleted (after this write's puts).
    pub sweep: Vec<(u64, BatchDigest)>,
    /// The validator set's history, replaced whole (opaque to the store).
    pub membership: Option<Vec<u8>>,
}

impl LogWrite {
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
            && self.sweep.is_empty()
            && self.records.is_empty()
            && self.view.is_none()
            && self.checkpoint.is_none()
            && self.stable.is_none()
            && self.committed.is_empty()
            && self.membership.is_none()
    }

    /// Appends `other` after `self` (later values win).
    pub fn merge(&mut self, other: LogWrite) {
        self.batches.extend(other.batches);
        self.records.extend(other.records);
        self.committed.extend(other.committed);
        self.sweep.extend(other.sweep);
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

fn batch_key(seq: u64, digest: &BatchDigest) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.push(b'b');
    k.extend_from_slice(&be(seq));
    k.extend_from_slice(digest);
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
    /// Opens the consensus view, finishing any interrupted commit first. A store written
    /// in an older format is refused (see the module docs).
    pub fn open(engine: Arc<dyn KvEngine>) -> Result<Self> {
        atomic::recover(engine.as_ref())?;
        match record::get(engine.as_ref(), Cf::Meta, FORMAT_KEY)? {
            Some(p) => match record::read_u64(Cf::Meta, FORMAT_KEY, &p)? {
                FORMAT => {}
                other => {
                    return Err(StorageError::Invalid(format!(
                        "the consensus log is in format {other}; this version reads format {FORMAT}"
                    )))
                }
            },
            None => {
                let any = engine.scan(Cf::ConsensusLog, b"", None, 1)?;
                if !any.is_empty() || engine.get(Cf::Meta, LAST_COMMITTED_KEY)?.is_some() {
                    return Err(StorageError::Invalid(
                        "the consensus log was written by an older dualchain (batches inline in its records); \
                         this version does not read that format"
                            .into(),
                    ));
                }
                let mut wb = WriteBatch::new();
                wb.put(Cf::Meta, FORMAT_KEY.to_vec(), record::seal(&be(FORMAT)));
                atomic::commit(engine.as_ref(), wb)?;
            }
        }
        Ok(Self { engine })
    }

    /// Writes `w` in one synced, all-or-nothing commit.
    pub fn write(&self, w: &LogWrite) -> Result<()> {
        let too_large = |what: &str| StorageError::Invalid(format!("{what} larger than {ENTRY_LEN_MAX} bytes"));
        let mut wb = WriteBatch::new();
        for (seq, digest, batch) in &w.batches {
            if batch.len() > ENTRY_LEN_MAX {
                return Err(too_large("batch"));
            }
            wb.put(Cf::ConsensusLog, batch_key(*seq, digest), record::seal(batch));
        }
        for (seq, rec) in &w.records {
            if rec.len() > ENTRY_LEN_MAX {
                return Err(too_large("consensus-log record"));
            }
            wb.put(Cf::ConsensusLog, record_key(*seq, &rec.head), record::seal(&rec.to_stored()));
        }
        for (seq, entry) in &w.committed {
            if entry.len() > ENTRY_LEN_MAX {
                return Err(too_large("committed entry"));
            }
            if *seq == SEQ_NONE {
                return Err(StorageError::Invalid(format!("committed sequence number {seq} leaves no successor")));
            }
            wb.put(Cf::ConsensusLog, committed_key(*seq), record::seal(&entry.to_stored()));
        }
        for (seq, digest) in &w.sweep {
            wb.delete(Cf::ConsensusLog, batch_key(*seq, digest));
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

    /// Reads a stored record or entry back whole, its batch joined in.
    fn joined(&self, key: &[u8], raw: &[u8]) -> Result<(u64, Vec<u8>)> {
        let seq = seq_of(key)?;
        let split = Split::from_stored(Cf::ConsensusLog, key, record::open(Cf::ConsensusLog, key, raw)?)?;
        let Some(digest) = split.batch else { return Ok((seq, split.head)) };
        let batch = self.batch(seq, &digest)?.ok_or_else(|| {
            record::corrupt(
                Cf::ConsensusLog,
                key,
                format!("the batch it refers to ({}) is missing", crate::error::key_hex(&digest)),
            )
        })?;
        let mut out = split.head;
        out.reserve(batch.len() + split.tail.len());
        out.extend_from_slice(&batch);
        out.extend_from_slice(&split.tail);
        Ok((seq, out))
    }

    /// The batch stored at `seq` with this digest.
    pub fn batch(&self, seq: u64, digest: &BatchDigest) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), Cf::ConsensusLog, &batch_key(seq, digest))
    }

    /// The digests of the batches stored at sequence numbers `from <= seq < to`.
    pub fn batch_digests(&self, from: u64, to: u64) -> Result<Vec<(u64, BatchDigest)>> {
        let (start, end) = ([&b"b"[..], &be(from)].concat(), [&b"b"[..], &be(to)].concat());
        let rows = self.engine.scan(Cf::ConsensusLog, &start, Some(&end), usize::MAX)?;
        rows.into_iter()
            .map(|(k, _)| {
                let digest = k
                    .get(9..41)
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| record::corrupt(Cf::ConsensusLog, &k, "batch key without its digest"))?;
                Ok((seq_of(&k)?, digest))
            })
            .collect()
    }

    /// The digest of the batch the committed entry at `seq` refers to (none for an entry
    /// stored whole).
    pub fn committed_batch(&self, seq: u64) -> Result<Option<BatchDigest>> {
        let key = committed_key(seq);
        match self.engine.get(Cf::ConsensusLog, &key)? {
            Some(raw) => {
                Ok(Split::from_stored(Cf::ConsensusLog, &key, record::open(Cf::ConsensusLog, &key, &raw)?)?.batch)
            }
            None => Ok(None),
        }
    }

    /// Log records with `seq >= from`, in sequence order, whole.
    pub fn records(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut start = vec![b'r'];
        start.extend_from_slice(&be(from));
        let rows = self.engine.scan(Cf::ConsensusLog, &start, Some(b"s"), usize::MAX)?;
        rows.into_iter().map(|(k, v)| self.joined(&k, &v)).collect()
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

    /// The committed entry at `seq`, whole.
    pub fn committed(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let key = committed_key(seq);
        match self.engine.get(Cf::ConsensusLog, &key)? {
            Some(raw) => Ok(Some(self.joined(&key, &raw)?.1)),
            None => Ok(None),
        }
    }

    /// Committed entries with `from <= seq < to`, at most `limit`, in order, whole.
    pub fn committed_range(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self.engine.scan(Cf::ConsensusLog, &committed_key(from), Some(&committed_key(to)), limit)?;
        rows.into_iter().map(|(k, v)| self.joined(&k, &v)).collect()
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
        let write = |seq| LogWrite { committed: vec![(seq, b"entry".to_vec().into())], ..LogWrite::default() };
        store.write(&write(u64::MAX - 1)).unwrap();
        assert_eq!(store.last_committed().unwrap(), Some(u64::MAX - 1));
        assert!(matches!(store.write(&write(u64::MAX)), Err(StorageError::Invalid(_))));
        let mut wb = WriteBatch::new();
        wb.put(Cf::Meta, LAST_COMMITTED_KEY.to_vec(), record::seal(&be(u64::MAX)));
        engine.write(wb).unwrap();
        assert!(matches!(store.last_committed(), Err(StorageError::Corrupt { .. })));
    }
}
