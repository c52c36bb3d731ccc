//! The dualchain node appliance: the `dualchain` command line and, as later parts land,
//! the wiring of consensus, storage, prover and API into one node.
//!
//! Today it holds [`demo`], the cryptographic part of the sharing flow (DESIGN.md §3 steps
//! 2–9 without chain and storage) run in one process, [`fhir`], the synthetic
//! bedside-monitor data the demo shares, and [`zk`], the node's use of the prover.

#![forbid(unsafe_code)]

pub mod demo;
pub mod fhir;
pub mod zk;
