//! The dualchain node appliance: the `dualchain` command line and the wiring of
//! consensus, ledger, storage and prover into consortium members.
//!
//! - [`consortium`]: a validator (consensus engine + ledger, applied exactly once and in
//!   order across restarts) and a member's client (signed transactions, finality).
//! - [`members`]: a member's keys and the off-chain steps of joining.
//! - [`agents`]: what owners' and CPCs' nodes do on their own as the ledger moves.
//! - [`flow`]: the sharing flow of DESIGN.md §3 in an in-process consortium.
//! - [`demo`]: `dualchain demo`, the whole flow with timings and a summary.
//! - [`sharing`]: the member-side steps of the flow, shared by [`flow`] and [`service`].
//! - [`init`] and [`config`]: a deployed consortium's genesis and files; [`service`]: one
//!   node as a long-running process (`dualchain node`); [`api`]: its HTTP/JSON API (FHIR
//!   in, FHIR out); [`api_client`]: signed calls to it (`dualchain client`, node to node).
//! - [`fhir`]: synthetic bedside-monitor FHIR R4 Observations; [`zk`]: parameter files
//!   and the policies of the flow.

#![forbid(unsafe_code)]

pub mod agents;
pub mod api;
pub mod api_client;
pub mod config;
pub mod consortium;
pub mod demo;
pub mod fhir;
pub mod flow;
pub mod init;
pub mod members;
pub mod procs;
pub mod service;
pub mod sharing;
pub mod zk;
