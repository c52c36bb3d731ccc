//! End-to-end tests of dualchain: in-process consortia (4 validators over loopback QUIC
//! with mutual TLS, RocksDB stores, members' nodes) running the sharing flow.
//!
//! - `tests/flow.rs`: the whole flow, and every refusal it must produce (unauthorised
//!   requester, supply proof for a dataset that misses the demand, revoked member,
//!   revoked credential, revoked and expired grants).
//! - `tests/restart.rs`: a validator stopped mid-flow and restarted from its store.

#![forbid(unsafe_code)]
