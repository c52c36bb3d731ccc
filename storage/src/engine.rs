//! The key-value engine abstraction every store is written against.
//!
//! Contract of a [`KvEngine`]:
//! - [`KvEngine::write`] applies a [`WriteBatch`] durably (synced to stable storage before
//!   it returns `Ok`) and, where [`KvEngine::atomic_batches`] is true, atomically.
//! - After a failed write or sync the engine is *poisoned*: every later write fails with
//!   [`StorageError::Poisoned`]. Reads still work; recovery is reopening.
//! - Scans are ordered by key within one column family.

use crate::error::{Result, StorageError};

/// Column families (DESIGN.md §7, plus the CPC's results, jobs and a meta family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    BlocksData,
    BlocksAccess,
    TxIndex,
    State,
    ConsensusLog,
    Checkpoints,
    CpcManifests,
    CpcCapsules,
    CpcBlobs,
    CpcGrants,
    /// Re-encrypted capsules per grant (not in DESIGN.md §7: results live apart from inputs).
    CpcResults,
    /// Re-encryption job progress and receipts.
    CpcJobs,
    /// Store metadata: heights, recovery intents.
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 13] = [
        Cf::BlocksData,
        Cf::BlocksAccess,
        Cf::TxIndex,
        Cf::State,
        Cf::ConsensusLog,
        Cf::Checkpoints,
        Cf::CpcManifests,
        Cf::CpcCapsules,
        Cf::CpcBlobs,
        Cf::CpcGrants,
        Cf::CpcResults,
        Cf::CpcJobs,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::BlocksData => "blocks/data",
            Cf::BlocksAccess => "blocks/access",
            Cf::TxIndex => "tx_index",
            Cf::State => "state",
            Cf::ConsensusLog => "consensus_log",
            Cf::Checkpoints => "checkpoints",
            Cf::CpcManifests => "cpc/manifests",
            Cf::CpcCapsules => "cpc/capsules",
            Cf::CpcBlobs => "cpc/blobs",
            Cf::CpcGrants => "cpc/grants",
            Cf::CpcResults => "cpc/results",
            Cf::CpcJobs => "cpc/jobs",
            Cf::Meta => "meta",
        }
    }

    pub(crate) fn code(self) -> u8 {
        Cf::ALL.iter().position(|c| *c == self).expect("every cf is listed") as u8
    }

    pub(crate) fn from_code(c: u8) -> Option<Cf> {
        Cf::ALL.get(c as usize).copied()
    }
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes keys in `[from, to)`.
    DeleteRange {
        cf: Cf,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// An ordered list of operations applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<Op>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put { cf, key: key.into(), value: value.into() });
    }
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete { cf, key: key.into() });
    }
    pub fn delete_range(&mut self, cf: Cf, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(Op::DeleteRange { cf, from: from.into(), to: to.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Bytes of keys and values, for metrics.
    pub fn payload_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => key.len() + value.len(),
                Op::Delete { key, .. } => key.len(),
                Op::DeleteRange { from, to, .. } => from.len() + to.len(),
            })
            .sum()
    }
}

/// A key-value pair returned by a scan.
pub type Entry = (Vec<u8>, Vec<u8>);

pub trait KvEngine: Send + Sync {
    /// Short name for logs (`rocksdb`, `memory`).
    fn name(&self) -> &'static str;
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies the batch durably; see the module docs for atomicity and poisoning.
    fn write(&self, batch: WriteBatch) -> Result<()>;
    /// Up to `limit` entries with `from <= key < to` (no upper bound when `to` is `None`),
    /// in key order.
    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>>;
    /// Whether a batch is applied all-or-nothing even across a crash.
    fn atomic_batches(&self) -> bool {
        true
    }
}

/// Shared poisoning logic for engines and wrappers.
#[derive(Debug, Default)]
pub struct Poison(std::sync::Mutex<Option<String>>);

impl Poison {
    pub fn check(&self) -> Result<()> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(reason) => Err(StorageError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }
    pub fn set(&self, reason: String) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(reason);
        }
    }
}

/// The smallest key greater than every key with this prefix, for range ends.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}
