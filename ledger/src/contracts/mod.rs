//! The native contracts: deterministic Rust over the state overlay, no VM.
//!
//! A contract function checks everything first and writes only once the transaction is
//! accepted, so a refusal leaves no trace but its recorded reason.

pub mod abe;
pub mod access;
pub mod registry;
pub mod zk;

use dualchain_prover::policy::CredentialTree;

use crate::executor::Genesis;
use crate::state::{MemberRecord, Overlay};
use crate::tx::{Hash, TxKind};
use crate::LedgerError;

/// A superseded credential root stays acceptable this long (ledger time) after a new
/// credential is added, so proofs in flight when a member joins still land.
pub const ROOT_GRACE_MS: u64 = 10 * 60 * 1000;

/// Why a transaction was refused, or a failure of the node itself.
#[derive(Debug)]
pub enum Refusal {
    /// Recorded in the block as the transaction's outcome; the transaction wrote nothing.
    Rejected(String),
    /// A decision against the sender that is itself state (an access denial): recorded as
    /// the outcome, and the contract's writes stand.
    Denied(String),
    /// The ledger cannot go on (storage failure, corrupt state): the batch is not applied.
    Fatal(LedgerError),
}

impl From<LedgerError> for Refusal {
    fn from(e: LedgerError) -> Self {
        Refusal::Fatal(e)
    }
}

pub type Exec = Result<(), Refusal>;

/// Refuses with a reason.
pub fn reject<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Rejected(reason.into()))
}

/// What a contract sees of the batch and the transaction.
pub struct Ctx<'a, 's> {
    pub state: &'a mut Overlay<'s>,
    pub genesis: &'a Genesis,
    pub tree: &'a mut CredentialTree,
    pub seq: u64,
    pub time_ms: u64,
    pub tx_hash: Hash,
    /// The sender's record (absent only for a registration).
    pub sender: Option<&'a MemberRecord>,
    /// The batch verifier's verdict on this transaction's proof, if it carries one.
    pub proof_verdict: Option<Result<(), String>>,
}

impl Ctx<'_, '_> {
    pub fn sender(&self) -> Result<&MemberRecord, Refusal> {
        self.sender.ok_or_else(|| Refusal::Fatal(LedgerError::Malformed("sender record missing".into())))
    }

    /// The sender holds one of `roles`.
    pub fn require_role(&self, roles: &[&str], action: &str) -> Result<&MemberRecord, Refusal> {
        let s = self.sender()?;
        if roles.contains(&s.role.as_str()) {
            Ok(s)
        } else {
            reject(format!("{action} needs role {}; {} is {}", roles.join(" or "), s.id, s.role))
        }
    }
}

/// Runs a verified transaction's contract.
pub fn dispatch(ctx: &mut Ctx<'_, '_>, kind: &TxKind) -> Exec {
    match kind {
        TxKind::RegisterMember { certificate } => registry::register_member(ctx, certificate),
        TxKind::IssueCredential { member, leaf } => registry::issue_credential(ctx, member, leaf),
        TxKind::RevokeCredential { member, reason } => registry::revoke_credential(ctx, member, reason),
        TxKind::RevokeMember { member, reason } => registry::revoke_member(ctx, member, reason),
        TxKind::RegisterDataset(reg) => abe::register_dataset(ctx, reg),
        TxKind::Demand { demand, dataset, requirement } => access::demand(ctx, demand, dataset, requirement),
        TxKind::SupplyProof { demand, .. } => zk::supply_proof(ctx, demand),
        TxKind::RequestAccess { request, demand, root, duration_s, .. } => {
            zk::request_access(ctx, request, demand, root, *duration_s)
        }
        TxKind::IssueReKey { grant, sealed_token } => access::issue_rekey(ctx, grant, sealed_token),
        TxKind::RevokeGrant { grant, reason } => access::revoke_grant(ctx, grant, reason),
        TxKind::Receipt { grant, records, results_digest } => access::receipt(ctx, grant, *records, results_digest),
    }
}

/// A bounded, printable reason or name.
pub fn check_text(what: &str, s: &str, max: usize) -> Exec {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return reject(format!("{what} must be 1..={max} printable characters"));
    }
    Ok(())
}
