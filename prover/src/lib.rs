//! Zero-knowledge proofs of dualchain (DESIGN.md §4.4): Groth16 over BLS12-381.
//!
//! | module | |
//! | --- | --- |
//! | [`policy`] | the requester's circuit: certified attributes satisfy an access policy |
//! | [`supply`] | the owner's circuit: a committed dataset meets a data requirement |
//! | [`poseidon`], [`gadgets`], [`field`] | Poseidon (neptune), R1CS gadgets, conversions |

#![forbid(unsafe_code)]

pub mod error;
pub mod field;
pub mod gadgets;
pub mod policy;
pub mod poseidon;
pub mod supply;

pub use error::ProverError;
