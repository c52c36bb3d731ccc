//! `consent`: a hospital replaces its datasets' consent commitments C_K
//! ([`crate::consent`]) after a patient's consent changed. The chain holds only the
//! commitments (hiding: each has a fresh salt), never a patient or a Consent's content;
//! the owner's node may re-commit every dataset it holds at each change, so the chain
//! does not show which datasets hold that patient's records either.
//!
//! Supply proofs verified after the transaction are checked against the new commitment:
//! a demand proven before it keeps its proof, and its grant's re-key (issued by the owner's
//! node from the consent state current then) still leaves out the records whose consent
//! no longer permits the demand's use.

use std::collections::HashSet;

use super::context::{reject, reject_because, Ctx, Exec};
use crate::reason::Reason;
use crate::state::{dataset_key, DatasetRecord};
use crate::tx::ConsentCommitment;

/// Most datasets one `CommitConsent` names.
pub const COMMITMENTS_MAX: usize = 256;

pub fn commit(ctx: &mut Ctx<'_, '_>, commitments: &[ConsentCommitment]) -> Exec {
    let sender = ctx.require_role(&["hospital"])?.id.clone();
    if commitments.is_empty() || commitments.len() > COMMITMENTS_MAX {
        return reject(Reason::ConsentCommitmentsOutOfRange { max: COMMITMENTS_MAX });
    }
    let mut seen = HashSet::new();
    let mut updated = Vec::with_capacity(commitments.len());
    for c in commitments {
        if !seen.insert(c.dataset) {
            return reject(Reason::ConsentDatasetRepeated);
        }
        if let Err(e) = c.commitment.to_fr() {
            return reject_because(Reason::ConsentCommitmentInvalid, e);
        }
        let Some(mut ds) = ctx.state.get::<DatasetRecord>(&dataset_key(&c.dataset))? else {
            return reject(Reason::UnknownDataset);
        };
        if ds.owner != sender {
            return reject(Reason::NotDatasetOwner { owner: ds.owner });
        }
        if ds.erased.is_some() {
            return reject(Reason::DatasetErased);
        }
        ds.consent = c.commitment;
        ds.consent_version += 1;
        ds.consent_ms = ctx.time_ms;
        updated.push(ds);
    }
    for ds in updated {
        ctx.state.put(dataset_key(&ds.id), &ds);
    }
    Ok(())
}
