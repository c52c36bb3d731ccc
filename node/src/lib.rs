//! The dualchain node appliance: the `dualchain` command line and the assembly of
//! consensus, ledger, storage and prover into one consortium node.
//!
//! Modules, in the order a reader meets them (each uses only those above it):
//!
//! | module | what |
//! | --- | --- |
//! | [`clock`], [`files`] | the wall clock; private writes, secret files, hex encodings |
//! | [`config`] | a deployed consortium's files: `consortium.toml`, `node.toml` |
//! | [`fhir`] | FHIR R4 as the node reads it: timestamps, Observations as supply records |
//! | [`validator`] | consensus engine + ledger, applied exactly once and in order across restarts |
//! | [`member`] | a member's keys, its client (signed transactions), the sharing steps |
//! | [`genesis`] | a consortium's genesis: per institution (`keygen`, `assemble`, `join`), the ceremony, or `init` on one machine for a test consortium |
//! | [`agents`] | what the owner's, the CPC's and the KGC's nodes do as the ledger moves |
//! | [`runtime`], [`metrics`] | the parts of a running node; its scrape-time series |
//! | [`api`] | the HTTP/JSON API: FHIR in and out, the sharing flow, CPC endpoints, the client |
//! | [`reconfigure`] | validator set changes as operators make them: `validator propose`, `approve`, `submit` |
//! | [`enrollment`] | a member's first start after a per-institution genesis: its IBE and CP-ABE keys from the authorities |
//! | [`service`] | assembles a node from its files, serves it, shuts it down (`dualchain node`) |
//! | [`cli`] | the command line: `keygen`, `assemble`, `join`, `issue`, `validator`, `ceremony`, `init`, `node`, `client` |
//!
//! The in-process consortium of the demo and the end-to-end tests, the process-cluster
//! helpers and the synthetic FHIR data live in the `dualchain-testkit` crate, which the
//! `dualchain` binary does not link.

#![forbid(unsafe_code)]

pub mod agents;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod enrollment;
pub mod fhir;
pub mod files;
pub mod genesis;
pub mod member;
pub mod metrics;
pub mod reconfigure;
pub mod runtime;
pub mod service;
pub mod validator;
pub mod x509;
