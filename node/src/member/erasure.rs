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
//! One 0600 file, `erasures.json` in the node's data directory, written through (synced)
//! before the erasure is reported.

use anyhow::{Context, Result};
use dualchain_ledger::tx::Hash;
use serde::{Deserialize, Serialize};

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
}

/// The journal, oldest first.
#[derive(Debug, Default)]
pub struct ErasureLog {
    path: Option<std::path::PathBuf>,
    entries: Vec<Erasure>,
}

impl ErasureLog {
    /// The journal kept at `path` (none: in memory only).
    pub fn open(path: Option<std::path::PathBuf>) -> Result<Self> {
        let mut log = Self { path, entries: Vec::new() };
        let Some(path) = &log.path else { return Ok(log) };
        match std::fs::read(path) {
            Ok(bytes) => {
                log.entries = serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        Ok(log)
    }

    /// Adds an erasure, on disk first; one already noted (same transaction) is not added
    /// twice.
    pub fn note(&mut self, e: Erasure) -> Result<()> {
        if self.entries.iter().any(|x| x.tx == e.tx) {
            return Ok(());
        }
        if let Some(path) = &self.path {
            let mut all = self.entries.clone();
            all.push(e.clone());
            crate::files::write_private(path, &serde_json::to_vec(&all)?)?;
        }
        self.entries.push(e);
        Ok(())
    }

    pub fn all(&self) -> &[Erasure] {
        &self.entries
    }

    /// The erasure of `dataset`, if noted.
    pub fn of(&self, dataset: &Hash) -> Option<&Erasure> {
        self.entries.iter().find(|e| e.dataset == *dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_survives_a_reopen_and_notes_each_transaction_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erasures.json");
        let mut log = ErasureLog::open(Some(path.clone())).unwrap();
        let whole = Erasure {
            tx: [1; 32],
            seq: 9,
            at_ms: 5,
            dataset: [2; 32],
            reason: "retention ended".into(),
            patient: None,
            records: 64,
            replaced_by: None,
        };
        let patient = Erasure {
            tx: [3; 32],
            dataset: [4; 32],
            patient: Some("Patient/p1".into()),
            records: 3,
            replaced_by: Some([5; 32]),
            ..whole.clone()
        };
        log.note(whole.clone()).unwrap();
        log.note(patient.clone()).unwrap();
        log.note(patient.clone()).unwrap();
        let reopened = ErasureLog::open(Some(path.clone())).unwrap();
        assert_eq!(reopened.all(), &[whole, patient.clone()]);
        assert_eq!(reopened.of(&[4; 32]), Some(&patient));
        assert!(reopened.of(&[5; 32]).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A damaged journal is an error, not an empty one.
        std::fs::write(&path, b"[{").unwrap();
        assert!(ErasureLog::open(Some(path)).is_err());
    }
}
