//! The dualchain node appliance: the `dualchain` command line and the wiring of
//! consensus, ledger, storage and prover into consortium members.
//!
//! - [`consortium`]: a validator (consensus engine + ledger, applied exactly once and in
//!   order across restarts) and a member's client (signed transactions, finality).
//! - [`members`]: a member's keys and the off-chain steps of joining.
//! - [`agents`]: what owners' and CPCs' nodes do on their own as the ledger moves.
//! - [`flow`]: the sharing flow of DESIGN.md §3 in an in-process consortium.
//! - [`demo`]: `dualchain demo`, the whole flow with timings and a summary.
//! - [`fhir`]: synthetic bedside-monitor FHIR R4 Observations; [`zk`]: parameter files
//!   and the policies of the flow.

#![forbid(unsafe_code)]

pub mod agents;
pub mod consortium;
pub mod demo;
pub mod fhir;
pub mod flow;
pub mod members;
pub mod zk;
