//! Storage of dualchain (DESIGN.md §7): the one place a node keeps data.
//!
//! | module | |
//! | --- | --- |
//! | [`engine`] | the `KvEngine` trait, column families, write batches |
//! | [`rocks`] | the RocksDB engine (tuned per column family, synced WAL) |
//! | [`memory`] | an in-memory engine for unit tests |
//! | [`wrappers`] | `Faulty` (injected errors, torn batches) and `Metered` |
//! | [`atomic`] | all-or-nothing commits on any engine, with recovery |
//! | [`record`] | the versioned, checksummed envelope of every record |
//! | [`ledger`] | blocks of both chains, transaction index, state |
//! | [`consensus`] | the PBFT log, checkpoints, view and the archive of committed batches |
//! | [`cpc`] | the CPC store: blobs, capsules, manifests (H1′), grants, batch re-encryption jobs |

#![forbid(unsafe_code)]

pub mod atomic;
pub mod consensus;
pub mod cpc;
pub mod engine;
pub mod error;
pub mod ledger;
pub mod memory;
pub mod record;
pub mod rocks;
pub mod wrappers;

pub use engine::{Cf, KvEngine, WriteBatch};
pub use error::{Result, StorageError};
