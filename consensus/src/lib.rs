//! Consensus of dualchain (DESIGN.md §5): Castro–Liskov PBFT, n = 3f + 1.
//!
//! | module | |
//! | --- | --- |
//! | [`message`] | messages, wire encoding, Ed25519 signatures (batch-verified) |
//! | [`config`] | replica tunables and their checked relationships |
//! | [`membership`] | the validator set of each epoch, and the ordered, approved request that changes it |
//! | [`replica`] | the sans-IO core: batching, dissemination apart from ordering (parts, availability certificates, proposals by reference), admission control, pipeline window, pre-prepare/prepare/commit, checkpoints, agreement on the application's state roots, view change, state transfer, recovery |
//! | `sim` | the deterministic simulator (cargo feature `sim`, off by default; a test harness): seeded network and clock, faults, Byzantine replicas, safety and liveness checks (a correct replica is never blamed for a fault) |
//! | [`tls`] | the consortium's TLS CA and node certificates (rcgen), mutual-TLS configurations (rustls) |
//! | [`engine`] | the replica over tokio + quinn QUIC, with the log in RocksDB |
//! | [`standing`] | peers whose messages prove them faulty: counted, throttled, then banned for a while |
//! | [`local`] | an in-process consortium on loopback (demo, tests, benchmarks) |
//! | [`metrics`] | Prometheus metrics of the engine |

#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod local;
pub mod membership;
pub mod message;
pub mod metrics;
mod outbox;
pub mod replica;
#[cfg(feature = "sim")]
pub mod sim;
pub mod standing;
pub mod tls;

pub use config::Config;
pub use message::{Batch, CommittedEntry, Message, ReplicaId, Request};
pub use replica::{Delivered, Output, Rejected, Replica, Reply, Target};
