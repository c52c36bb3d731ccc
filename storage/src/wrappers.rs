//! Engine wrappers: [`Faulty`] injects I/O errors and torn batches for crash tests;
//! [`Metered`] counts operations and bytes for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::{Cf, Entry, KvEngine, Poison, WriteBatch};
use crate::error::{Result, StorageError};
use crate::memory::MemoryEngine;

/// What a [`Faulty`] engine does at its n-th write (counting from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write fails and nothing of it lands (a crash before the WAL sync).
    FailAt { write: u64 },
    /// The first `keep` operations of the write land, then the engine dies: a torn batch,
    /// as on storage without atomic batches.
    TearAt { write: u64, keep: usize },
}

/// A memory engine that fails on schedule. After the fault every write fails, as if the
/// process had crashed; [`Faulty::inner`] is the surviving "disk" to reopen stores on.
pub struct Faulty {
    inner: Arc<MemoryEngine>,
    fault: Option<Fault>,
    writes: AtomicU64,
    poison: Poison,
}

impl Faulty {
    pub fn new(inner: Arc<MemoryEngine>, fault: Option<Fault>) -> Self {
        Self { inner, fault, writes: AtomicU64::new(0), poison: Poison::default() }
    }
    pub fn inner(&self) -> Arc<MemoryEngine> {
        self.inner.clone()
    }
    /// Writes attempted so far (including the failed one).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
}

impl KvEngine for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }
    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.poison.check()?;
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Some(Fault::FailAt { write }) if write == n => {
                self.poison.set(format!("injected I/O error at write {n}"));
                Err(StorageError::Io(format!("injected I/O error at write {n}")))
            }
            Some(Fault::TearAt { write, keep }) if write == n => {
                for op in batch.ops.iter().take(keep) {
                    self.inner.apply_op(op);
                }
                self.poison.set(format!("injected torn write at write {n} after {keep} operations"));
                Err(StorageError::Io(format!("injected torn write at write {n}")))
            }
            _ => self.inner.write(batch),
        }
    }
    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        self.inner.scan(cf, from, to, limit)
    }
    /// A tearing engine does not apply batches atomically; stores then use their intent
    /// protocol (see `crate::atomic`).
    fn atomic_batches(&self) -> bool {
        !matches!(self.fault, Some(Fault::TearAt { .. }))
    }
}

/// Operation counters of a [`Metered`] engine. Fields are cumulative since creation.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    /// Point reads.
    pub gets: AtomicU64,
    /// Range scans.
    pub scans: AtomicU64,
    /// Entries returned by scans.
    pub scanned_entries: AtomicU64,
    /// Successful batch writes.
    pub writes: AtomicU64,
    /// Operations in successful batches.
    pub written_ops: AtomicU64,
    /// Key and value bytes in successful batches.
    pub written_bytes: AtomicU64,
    /// Failed writes.
    pub write_errors: AtomicU64,
    /// Nanoseconds spent in writes (including the sync).
    pub write_nanos: AtomicU64,
}

/// Counts every operation of the wrapped engine.
pub struct Metered<E> {
    inner: E,
    pub metrics: Arc<StorageMetrics>,
}

impl<E: KvEngine> Metered<E> {
    pub fn new(inner: E) -> Self {
        Self { inner, metrics: Arc::new(StorageMetrics::default()) }
    }
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: KvEngine> KvEngine for Metered<E> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.metrics.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(cf, key)
    }
    fn write(&self, batch: WriteBatch) -> Result<()> {
        let (ops, bytes) = (batch.len() as u64, batch.payload_bytes() as u64);
        let start = std::time::Instant::now();
        let r = self.inner.write(batch);
        self.metrics.write_nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match &r {
            Ok(()) => {
                self.metrics.writes.fetch_add(1, Ordering::Relaxed);
                self.metrics.written_ops.fetch_add(ops, Ordering::Relaxed);
                self.metrics.written_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                self.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }
    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let r = self.inner.scan(cf, from, to, limit)?;
        self.metrics.scans.fetch_add(1, Ordering::Relaxed);
        self.metrics.scanned_entries.fetch_add(r.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    fn atomic_batches(&self) -> bool {
        self.inner.atomic_batches()
    }
}

impl<E: KvEngine + ?Sized> KvEngine for Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(cf, key)
    }
    fn write(&self, batch: WriteBatch) -> Result<()> {
        (**self).write(batch)
    }
    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        (**self).scan(cf, from, to, limit)
    }
    fn atomic_batches(&self) -> bool {
        (**self).atomic_batches()
    }
}
