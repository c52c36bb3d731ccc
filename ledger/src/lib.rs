//! The dual ledger (DESIGN.md §2): signed member transactions, the data chain and the
//! access chain built from each committed PBFT batch with cross-links and commit
//! certificates, and the native contracts `registry`, `abe`, `zk` and `access`.
//!
//! Execution is a deterministic function of the committed history: the input of a batch
//! is its sequence number, view, agreed time (the consensus layer's `Delivered::time_ms`),
//! digest, commit certificate and request payloads; the output is at most one block per
//! chain and the state changes, written in one atomic store commit together with the
//! applied sequence number. Every transaction gets an outcome recorded in its block,
//! rejected ones with their reason code ([`reason`]); malformed bytes are recorded too,
//! nothing panics. Blocks hash codes, never error text (which is a note beside the block),
//! and each header carries the state root after its batch ([`state::next_state_root`]):
//! identical histories give identical block hashes whatever the library versions.
//!
//! Choices where DESIGN.md is silent (also in the module docs):
//! - Blocks only for chains that received transactions in the batch.
//! - Proofs are verified in one batch per circuit before the batch's transactions execute,
//!   against the state as the previous batch left it (a proof naming a dataset or demand
//!   registered in the same batch is refused; clients wait for finality first). The
//!   batch verifier's random coefficients come from the batch digest, so every validator
//!   reaches the same verdicts. Only proofs that pass the cheap checks (member active,
//!   role, owner, requester) are verified, at most `contracts::zk::PROOFS_PER_MEMBER_MAX`
//!   of one member per batch.
//! - A policy proof names the credential root it used; roots stay acceptable for
//!   [`contracts::ROOT_GRACE_MS`] after a credential is added, and never after any
//!   revocation (revocation must bite immediately).
//! - A dataset's access policy is one statement ([`policy`]); its CP-ABE and
//!   zero-knowledge forms are compiled from it, and the `abe` contract refuses a
//!   registration whose index or policy hash does not match them.
//! - Re-keys travel on chain sealed to the grant's CPC with IBE, so the owner's node, the
//!   CPC and auditors need no side channel and the issuance is recorded.

//!
//! Modules import one another without cycles: `error` ← `reason` ← `consent` ← `tx` ← `merkle`, `state`, `block`;
//! `policy` ← `genesis` ← `contracts` ← `executor`. The compute backend of proof verification (the
//! Miller loops) is passed to [`Ledger::open`] by whoever assembles the node.

#![forbid(unsafe_code)]

pub mod block;
pub mod consent;
pub mod contracts;
pub mod error;
pub mod executor;
pub mod genesis;
pub mod merkle;
pub mod policy;
pub mod reason;
pub mod state;
pub mod tx;

pub use error::LedgerError;
pub use executor::{Applied, AppliedTx, Batches, Committed, Fingerprint, Heights, Ledger, Presigned, ToApply};
pub use genesis::Genesis;
pub use reason::Reason;
