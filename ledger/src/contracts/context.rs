//! What every contract works with: the context of a transaction ([`Ctx`]), the ways a
//! contract refuses ([`Refusal`]) and the checks they share. The contracts import it; it
//! imports none of them, nor the dispatcher in the parent module.

use dualchain_prover::policy::CredentialTree;

use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::reason::{ProofFault, Reason, TextField};
use crate::state::{MemberRecord, Overlay};
use crate::tx::Hash;

/// Why a transaction was refused, or a failure of the node itself.
#[derive(Debug)]
pub enum Refusal {
    /// Recorded in the block as the transaction's outcome; the transaction wrote nothing.
    /// `detail` is the text of the error behind the code, if any: a note beside the
    /// block, outside its hash.
    Rejected { reason: Reason, detail: Option<String> },
    /// A decision against the sender that is itself state (an access denial): recorded as
    /// the outcome, and the contract's writes stand.
    Denied(Reason),
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
pub fn reject<T>(reason: Reason) -> Result<T, Refusal> {
    Err(Refusal::Rejected { reason, detail: None })
}

/// Refuses with a reason and the words of the error behind it (kept beside the block).
pub fn reject_because<T>(reason: Reason, error: impl std::fmt::Display) -> Result<T, Refusal> {
    Err(Refusal::Rejected { reason, detail: Some(error.to_string()) })
}

/// What a contract sees of the batch and the transaction.
pub struct Ctx<'a, 's> {
    pub state: &'a mut Overlay<'s>,
    pub genesis: &'a Genesis,
    pub tree: &'a mut CredentialTree,
    pub seq: u64,
    pub time_ms: u64,
    pub tx_hash: Hash,
    /// The sender's record (absent for a registration and for a pseudonym).
    pub sender: Option<&'a MemberRecord>,
    /// The sender's name where it is a pseudonym (`crate::tx::pseudonym_of`): its
    /// signature verified under the one-time key the name holds.
    pub pseudonym: Option<&'a str>,
    /// The batch verifier's verdict on this transaction's proof, if it carries one.
    pub proof_verdict: Option<Result<(), ProofFault>>,
}

impl Ctx<'_, '_> {
    pub fn sender(&self) -> Result<&MemberRecord, Refusal> {
        self.sender.ok_or_else(|| Refusal::Fatal(LedgerError::Malformed("sender record missing".into())))
    }

    /// Who sent the transaction and in what role: a member, or a pseudonym with no role.
    pub fn sender_and_role(&self) -> Result<(&str, &str), Refusal> {
        match self.pseudonym {
            Some(p) => Ok((p, "")),
            None => self.sender().map(|m| (m.id.as_str(), m.role.as_str())),
        }
    }

    /// The sender holds one of `roles`.
    pub fn require_role(&self, roles: &[&str]) -> Result<&MemberRecord, Refusal> {
        let s = self.sender()?;
        if roles.contains(&s.role.as_str()) {
            Ok(s)
        } else {
            let roles = roles.iter().map(|r| r.to_string()).collect();
            reject(Reason::RoleRequired { roles, member: s.id.clone(), role: s.role.clone() })
        }
    }
}

/// A bounded, printable reason or name.
pub fn check_text(field: TextField, s: &str, max: usize) -> Exec {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return reject(Reason::TextInvalid { field, max });
    }
    Ok(())
}
