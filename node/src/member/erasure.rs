//! A hospital's erasure journal: what it erased, when, why, and (for a patient's erasure)
//! whose records and which dataset now holds the rest.
//!
//! The chain keeps a tombstone per erased dataset (`EraseDataset`: when and why, nothing
//! of the data), and that is all any other member learns. Which patient an erasure was for
//! is the hospital's own knowledge: a record of the request that the data protection
//! officer must be able to show (GDPR art. 5(2), accountability), kept here alone and shown
//! to the hospital alone, as an `AuditEvent` of its access log
//! (the API's audit module). It names the patient by reference and holds none of the
//! erased records.
//!
//! Kept in the hospital's journal store ([`super::journal`]), written through (synced)
//! before the erasure is reported.
//!
//! An erasure is journalled twice: as *pending*, with the signed `EraseDataset`'s hash,
//! before the transaction is submitted, and as final once the tombstone is on the ledger
//! (batch and time read from there). A node that crashes in between finds the pending
//! entry when it restarts: its owner agent replays the tombstone and settles the entry,
//! and a retried erasure answers with it, so no erasure is left out of the hospital's
//! record. Pending entries are not shown as erasures.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use dualchain_ledger::tx::Hash;
use dualchain_storage::KvEngine;
use serde::{Deserialize, Serialize};

use super::journal::Journal;

/// One erased dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// The `EraseDataset` transaction.
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub tx: Hash,
    /// The batch it was final in.
    #[serde(default)]
    pub seq: u64,
    /// When it was final (ledger time, ms).
    pub at_ms: u64,
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub dataset: Hash,
    /// The reason written in the tombstone.
    pub reason: String,
    /// For a patient's erasure: the patient's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Records erased (all of the dataset's, or the patient's).
    pub records: usize,
    /// For a patient's erasure: the dataset registered with the other patients' records
    /// (none when the patient's were all it held).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "dualchain_ledger::tx::hex_bytes::opt_id")]
    pub replaced_by: Option<Hash>,
    /// Signed and about to be submitted, not yet seen final (`seq` and `at_ms` are 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// The journal, oldest first.
pub struct ErasureLog {
    journal: Journal,
    /// Each entry with its sequence in the journal.
    entries: Vec<(u64, Erasure)>,
}

impl Default for ErasureLog {
    fn default() -> Self {
        Self { journal: Journal::new(None, JOURNAL), entries: Vec::new() }
    }
}

/// The log's journal in the hospital's store.
const JOURNAL: &str = "erasure";

impl ErasureLog {
    /// The journal kept in `store` (none: in memory only). An `erasures.json` an earlier
    /// build left at `legacy` is imported into an empty journal.
    pub fn open(store: Option<Arc<dyn KvEngine>>, legacy: Option<&Path>) -> Result<Self> {
        let journal = Journal::new(store, JOURNAL);
        let mut entries: Vec<(u64, Erasure)> = journal.load()?;
        if let Some(legacy) = legacy {
            entries.extend(journal.import(legacy, entries.is_empty())?);
        }
        Ok(Self { journal, entries })
    }

    /// Journals an erasure about to be submitted (as pending, on disk first); one already
    /// journalled (same transaction) is not added twice.
    pub fn intend(&mut self, mut e: Erasure) -> Result<()> {
        if self.entries.iter().any(|(_, x)| x.tx == e.tx) {
            return Ok(());
        }
        e.pending = true;
        let seq = self.entries.last().map_or(0, |(s, _)| s + 1);
        self.journal.write(&[(seq, &e)], &[])?;
        self.entries.push((seq, e));
        Ok(())
    }

    /// Marks the pending erasure `tx` final in batch `seq` at ledger time `at_ms`, on disk
    /// first. Other pending attempts at the same dataset go (they were refused or never
    /// ordered), in the same write. Returns the final entry.
    pub fn settle(&mut self, tx: &Hash, seq: u64, at_ms: u64) -> Result<Erasure> {
        let Some((at, mut e)) = self.entries.iter().find(|(_, x)| x.tx == *tx).cloned() else {
            bail!("no erasure {} is journalled", hex::encode(tx))
        };
        if !e.pending {
            return Ok(e);
        }
        (e.pending, e.seq, e.at_ms) = (false, seq, at_ms);
        let others: Vec<u64> = self
            .entries
            .iter()
            .filter(|(s, x)| *s != at && x.pending && x.dataset == e.dataset)
            .map(|(s, _)| *s)
            .collect();
        self.journal.write(&[(at, &e)], &others)?;
        self.entries.retain(|(s, _)| !others.contains(s));
        if let Some(slot) = self.entries.iter_mut().find(|(s, _)| *s == at) {
            slot.1 = e.clone();
        }
        Ok(e)
    }

    /// The final erasures, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &Erasure> {
        self.entries.iter().map(|(_, e)| e).filter(|e| !e.pending)
    }

    /// The final erasure of `dataset`, if noted.
    pub fn of(&self, dataset: &Hash) -> Option<&Erasure> {
        self.all().find(|e| e.dataset == *dataset)
    }

    /// The pending attempts at erasing `dataset`.
    pub fn pending(&self, dataset: &Hash) -> Vec<Erasure> {
        self.entries.iter().map(|(_, e)| e).filter(|e| e.pending && e.dataset == *dataset).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_survives_a_reopen_and_settles_each_transaction_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = || Some(super::super::journal::open_store(&dir.path().join("member")).unwrap());
        let mut log = ErasureLog::open(store(), None).unwrap();
        let whole = Erasure {
            tx: [1; 32],
            seq: 0,
            at_ms: 0,
            dataset: [2; 32],
            reason: "retention ended".into(),
            patient: None,
            records: 64,
            replaced_by: None,
            pending: false,
        };
        let patient = Erasure {
            tx: [3; 32],
            dataset: [4; 32],
            patient: Some("Patient/p1".into()),
            records: 3,
            replaced_by: Some([5; 32]),
            ..whole.clone()
        };
        // A crash after the first attempt was signed: a second attempt at the same dataset.
        let retried = Erasure { tx: [6; 32], ..patient.clone() };
        log.intend(whole.clone()).unwrap();
        log.intend(patient.clone()).unwrap();
        log.intend(patient.clone()).unwrap();
        drop(log);
        let mut reopened = ErasureLog::open(store(), None).unwrap();
        // Pending: journalled, not shown.
        assert_eq!(reopened.all().count(), 0);
        assert!(reopened.of(&[2; 32]).is_none());
        assert_eq!(reopened.pending(&[4; 32]).len(), 1);
        reopened.intend(retried.clone()).unwrap();
        assert_eq!(reopened.pending(&[4; 32]).len(), 2);

        let settled = reopened.settle(&[1; 32], 9, 5).unwrap();
        assert_eq!(settled, Erasure { seq: 9, at_ms: 5, ..whole.clone() });
        // The first attempt was the one ordered: the retry's entry goes with it.
        let first = reopened.settle(&[3; 32], 11, 7).unwrap();
        assert!(reopened.pending(&[4; 32]).is_empty());
        assert!(reopened.settle(&[6; 32], 12, 8).is_err());
        // Settling again changes nothing.
        assert_eq!(reopened.settle(&[3; 32], 13, 9).unwrap(), first);

        drop(reopened);
        let reopened = ErasureLog::open(store(), None).unwrap();
        assert_eq!(reopened.all().cloned().collect::<Vec<_>>(), vec![settled, first.clone()]);
        assert!(reopened.pending(&[4; 32]).is_empty(), "the dropped attempt stays dropped");
        assert_eq!(reopened.of(&[4; 32]), Some(&first));
        assert!(reopened.of(&[5; 32]).is_none());
        drop(reopened);
        // A journal an earlier build kept as one JSON list is imported into an empty one.
        let legacy = dir.path().join("erasures.json");
        std::fs::write(&legacy, serde_json::to_vec(&[&first]).unwrap()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let imported = ErasureLog::open(Some(super::super::journal::open_store(other.path()).unwrap()), Some(&legacy));
        assert_eq!(imported.unwrap().of(&[4; 32]), Some(&first));
    }
}
