//! Zero-knowledge proofs of dualchain (DESIGN.md §4.4). **No code yet.**
//!
//! Role: the Groth16 (BLS12-381) circuits `policy` (a requester's certified attributes
//! satisfy a dataset's access policy) and `supply` (an owner's committed dataset meets a
//! data requirement), written against `bellpepper-core` with Poseidon from `neptune`; their
//! per-shape parameters; a proving pipeline whose MSM and NTT sit behind backend traits;
//! and single and batch verification.

#![forbid(unsafe_code)]
