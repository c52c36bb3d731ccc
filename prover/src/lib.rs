//! Zero-knowledge proofs of dualchain (DESIGN.md §4.4): Groth16 over BLS12-381.
//!
//! | module | |
//! | --- | --- |
//! | [`policy`] | the requester's circuit: certified attributes satisfy an access policy |
//! | [`anonymous`] | the same without naming the credential: nullifier, one-time key, sealed identity |
//! | [`supply`] | the owner's circuit: a committed dataset meets a data requirement |
//! | [`poseidon`], [`gadgets`], [`field`] | Poseidon (neptune), R1CS gadgets, conversions |
//! | [`shapes`], [`params`] | the registered circuit shapes and their parameter files |
//! | [`groth16`], [`r1cs`] | the proving pipeline: synthesis, QAP, MSMs, randomisation |
//! | [`backend`], [`ntt`] | `MsmBackend` / `NttBackend` and their CPU implementations |
//! | [`verify`] | single and batch verification, proof encoding |
//! | [`edwards`] | Jubjub addition and scalar multiplication in R1CS |
//! | [`escrow`] | t-of-n identity escrow on Jubjub: DKG, sealing, verifiable opening |

#![forbid(unsafe_code)]

pub mod anonymous;
pub mod backend;
pub mod ceremony;
pub mod edwards;
pub mod error;
pub mod escrow;
pub mod field;
pub mod gadgets;
pub mod groth16;
pub mod ntt;
pub mod params;
pub mod policy;
pub mod poseidon;
pub mod r1cs;
pub mod shapes;
pub mod supply;
pub mod verify;

pub use error::ProverError;
