//! Storage of dualchain (DESIGN.md §7). **No code yet.**
//!
//! Role: the one place a node keeps data — a `KvEngine` trait with a RocksDB engine
//! (column families `blocks/data`, `blocks/access`, `tx_index`, `state`, `consensus_log`,
//! `checkpoints`, `cpc/manifests`, `cpc/capsules`, `cpc/blobs`, `cpc/grants`) and an
//! in-memory engine, fault-injection and metering wrappers, the ledger stores, and the CPC
//! store built for batch re-encryption.

#![forbid(unsafe_code)]
