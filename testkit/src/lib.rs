//! dualchain's test kit, linked by the tests, the benchmarks and the demo but never by the
//! `dualchain` binary:
//!
//! | module | what |
//! | --- | --- |
//! | [`consortium`] | an in-process consortium (4 validators over loopback QUIC with mutual TLS, RocksDB stores, members' agents) and the sharing flow's steps |
//! | [`demo`] | the demo (`dualchain-demo`): the whole flow with timings and a summary |
//! | [`ports`] | loopback ports reserved across the test processes of a host |
//! | [`procs`] | a consortium of `dualchain node` processes on this host |
//! | [`fhir`] | synthetic bedside-monitor FHIR R4 Observations and Bundles |
//! | [`members`] | a ledger whose members a test CA registers, and signed requests (the request check) |
//!
//! Its tests:
//! - `tests/flow.rs`: the whole flow, and every refusal it must produce (unauthorised
//!   requester, supply proof for a dataset that misses the demand, revoked member,
//!   revoked credential, revoked and expired grants).
//! - `tests/restart.rs`: a validator stopped mid-flow and restarted from its store.
//! - `tests/demo.rs`: the demo end to end.

#![forbid(unsafe_code)]

pub mod chaos;
pub mod consortium;
pub mod demo;
pub mod fhir;
pub mod members;
pub mod netns;
pub mod ports;
pub mod procs;
