//! The RocksDB engine: one database, one column family per [`Cf`], tuned per family.
//!
//! - A shared LRU block cache; index and filter blocks are cached with the data.
//! - Bloom filters (10 bits per key) on every family: point lookups by height, hash,
//!   grant and key are the common case.
//! - Compression by content: LZ4 for structured families (blocks take ZSTD at the
//!   bottommost level), none for ciphertexts, capsules and curve points, which do not
//!   compress. `cpc/blobs` stores large values in RocksDB's blob files.
//! - Every acknowledged write is synced to the WAL (`WriteOptions::set_sync(true)`) and
//!   applied as one `WriteBatch`, so a batch is durable and atomic across crashes.
//! - A failed write poisons the instance ([`crate::engine::Poison`]).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    WriteOptions, DB,
};

use crate::engine::{Cf, Entry, KvEngine, Op, Poison, WriteBatch};
use crate::error::{Result, StorageError};

/// Tunables of the RocksDB engine.
#[derive(Debug, Clone)]
pub struct RocksConfig {
    pub block_cache_bytes: usize,
    /// Sync the WAL on every write (on for every acknowledged write; benchmarks may compare).
    pub sync_writes: bool,
}

impl Default for RocksConfig {
    fn default() -> Self {
        Self { block_cache_bytes: 256 << 20, sync_writes: true }
    }
}

pub struct RocksEngine {
    db: DB,
    sync_writes: bool,
    poison: Poison,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

fn cf_options(cf: Cf, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut o = Options::default();
    match cf {
        Cf::BlocksData | Cf::BlocksAccess => {
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        Cf::CpcCapsules | Cf::CpcResults => {
            o.set_compression_type(DBCompressionType::None);
        }
        // Large values written once and read rarely: uncompressed (ciphertexts and batches of
        // signed transactions do not compress), kept in blob files so compaction does not
        // rewrite them.
        Cf::CpcBlobs | Cf::ConsensusLog => {
            o.set_compression_type(DBCompressionType::None);
            o.set_enable_blob_files(true);
            o.set_min_blob_size(4096);
            o.set_write_buffer_size(64 << 20);
            table.set_block_size(64 << 10);
        }
        _ => o.set_compression_type(DBCompressionType::Lz4),
    }
    o.set_block_based_table_factory(&table);
    o
}

fn io(e: rocksdb::Error) -> StorageError {
    StorageError::Io(e.into_string())
}

impl RocksEngine {
    pub fn open(path: &Path, config: &RocksConfig) -> Result<Self> {
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(2));
        db_opts.set_keep_log_file_num(8);
        db_opts.set_paranoid_checks(true);
        let cfs = Cf::ALL.iter().map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(*cf, &cache)));
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(io)?;
        Ok(Self { db, sync_writes: config.sync_writes, poison: Poison::default() })
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name()).ok_or_else(|| StorageError::Io(format!("column family {} is missing", cf.name())))
    }
}

impl KvEngine for RocksEngine {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.handle(cf)?, key).map_err(io)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.poison.check()?;
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                Op::Put { cf, key, value } => wb.put_cf(self.handle(*cf)?, key, value),
                Op::Delete { cf, key } => wb.delete_cf(self.handle(*cf)?, key),
                Op::DeleteRange { cf, from, to } => wb.delete_range_cf(self.handle(*cf)?, from, to),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        self.db.write_opt(wb, &wo).map_err(|e| {
            let e = io(e);
            self.poison.set(e.to_string());
            e
        })
    }

    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.handle(cf)?, IteratorMode::From(from, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(io)?;
            if to.is_some_and(|t| &*k >= t) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }
}
