//! The dual ledger of dualchain (DESIGN.md §2). **No code yet.**
//!
//! Role: member-signed transactions; the data chain and the access chain cut from each
//! committed PBFT batch, with cross-links and commit certificates; and the deterministic
//! native contracts `registry`, `abe`, `zk` and `access`.

#![forbid(unsafe_code)]
