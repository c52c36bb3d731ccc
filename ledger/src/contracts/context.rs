//! What every contract works with: the context of a transaction ([`Ctx`]), the ways a
//! contract refuses ([`Refusal`]) and the checks they share. The contracts import it; it
//! imports none of them, nor the dispatcher in the parent module.

use dualchain_prover::policy::CredentialTree;

use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::state::{MemberRecord, Overlay};
use crate::tx::Hash;

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

/// A bounded, printable reason or name.
pub fn check_text(what: &str, s: &str, max: usize) -> Exec {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return reject(format!("{what} must be 1..={max} printable characters"));
    }
    Ok(())
}
