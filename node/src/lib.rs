//! The dualchain node appliance: the `dualchain` command line and, as later parts land,
//! the wiring of consensus, storage, prover and API into one node.
//!
//! Today it holds [`demo`], the cryptographic part of the sharing flow (DESIGN.md §3 steps
//! 2–4 and 8–9) run in one process, and [`fhir`], the synthetic bedside-monitor data the
//! demo shares.

#![forbid(unsafe_code)]

pub mod demo;
pub mod fhir;
