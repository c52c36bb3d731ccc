//! The replica's persisted state as the host reads it back ([`Recovered`]), why it may not
//! recover ([`RecoveryError`]), and the encoding of archived committed entries. The replica
//! (its commit path and its recovery) uses this module; it uses nothing of the replica's.

use dualchain_crypto::encoding::Reader;
use dualchain_crypto::error::DecodeError;
use dualchain_storage::consensus::{ConsensusStore, Split};
use dualchain_storage::StorageError;

use crate::config::ConfigError;
use crate::message::{CommittedEntry, Digest, Message};

/// What the host read back from its store.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// The persisted view word (`view << 1 | changing`).
    pub view_word: u64,
    /// The stable checkpoint proof.
    pub stable: Option<Vec<u8>>,
    /// Log records above the stable checkpoint, by sequence number.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The newest archived entries ([`archive_bytes`]), oldest first: at least the last one,
    /// and the last `dedup_horizon` of them for de-duplication.
    pub recent: Vec<Vec<u8>>,
    /// The validator sets' history ([`crate::membership::Epochs`]), once a change was
    /// executed.
    pub membership: Option<Vec<u8>>,
    /// The batches stored past the last sweep, by sequence number and digest, and whether
    /// the archive refers to each (the others are swept at a later stable checkpoint).
    pub stored_batches: Vec<((u64, Digest), bool)>,
}

impl Recovered {
    /// Reads what `Replica::recover` needs from a consensus store: the view word, the
    /// stable checkpoint proof, the log records and the newest `dedup_horizon` archived
    /// entries.
    pub fn read(store: &ConsensusStore, dedup_horizon: u64) -> Result<Self, StorageError> {
        let recent = match store.last_committed()? {
            Some(last) => store
                .committed_range(last.saturating_sub(dedup_horizon) + 1, last + 1, usize::MAX)?
                .into_iter()
                .map(|(_, b)| b)
                .collect(),
            None => Vec::new(),
        };
        let stable = store.stable_checkpoint()?;
        // Sweeps reach the stable checkpoint or the last executed entry, whichever is lower.
        let swept = stable.as_ref().map_or(0, |(s, _)| *s).min(store.last_committed()?.unwrap_or(0));
        let mut stored_batches = Vec::new();
        for (seq, digest) in store.batch_digests(swept + 1, u64::MAX)? {
            stored_batches.push(((seq, digest), store.committed_batch(seq)? == Some(digest)));
        }
        Ok(Self {
            view_word: store.view()?,
            stable: stable.map(|(_, p)| p),
            records: store.records(0)?,
            recent,
            membership: store.membership()?,
            stored_batches,
        })
    }
}

/// Why a store could not be recovered: its contents are not what this code wrote.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("stored consensus data is malformed: {0}")]
    Decode(#[from] DecodeError),
    #[error("stored consensus data is inconsistent: {0}")]
    Inconsistent(String),
}

/// An archived committed entry with what executing it produced.
#[derive(Debug, Clone)]
pub struct Archived {
    /// The history digest after the entry.
    pub history: Digest,
    /// The ledger time after the entry (the running maximum of batch times).
    pub time_ms: u64,
    pub entry: CommittedEntry,
}

/// Encodes an archived entry: `history ‖ time ‖ entry`.
pub fn archive_bytes(history: &Digest, time_ms: u64, entry: &CommittedEntry) -> Vec<u8> {
    let mut out = history.to_vec();
    out.extend_from_slice(&time_ms.to_be_bytes());
    entry.encode(&mut out);
    out
}

/// [`archive_bytes`] as stored: around the batch, which is stored once under its
/// sequence number and digest.
pub fn split_archive(history: &Digest, time_ms: u64, entry: &CommittedEntry) -> Split {
    let mut head = history.to_vec();
    head.extend_from_slice(&time_ms.to_be_bytes());
    let tail = entry.encode_around_batch(&mut head);
    Split { head, batch: Some(entry.batch.digest()), tail }
}

/// A log record as stored: a pre-prepare around its batch (stored once under its
/// sequence number and digest), any other message whole.
pub fn split_record(m: &Message) -> Split {
    match (m.head_before_batch(), m) {
        (Some(head), Message::PrePrepare(_, batch)) => Split { head, batch: Some(batch.digest()), tail: Vec::new() },
        _ => m.to_bytes().into(),
    }
}

/// Decodes an archived entry.
pub fn parse_archive(bytes: &[u8]) -> Result<Archived, DecodeError> {
    let mut r = Reader::new(bytes, "archived entry");
    let history: Digest = r.array()?;
    let time_ms = r.u64()?;
    Ok(Archived { history, time_ms, entry: CommittedEntry::from_bytes(r.rest())? })
}
