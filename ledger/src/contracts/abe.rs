//! `abe`: datasets, their access policies and the index pointers encrypted under them.
//!
//! The contract cannot decrypt an index (nobody on chain holds attribute keys); it compiles
//! the registration's policy statement into its two forms ([`crate::policy`]) and checks
//! that the index decodes as a ciphertext of the scheme under exactly the CP-ABE form and
//! that the policy hash proofs use is the zero-knowledge form's, so the attribute gate and
//! the proof admit the same members. It checks that the capacity is a supply shape's and
//! the commitments are field elements, and records the dataset with C_D, the statement
//! and the policy hash. Where the records are (the CPC and H1), how many there are and the
//! dataset's name are inside the index only.

use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::Codec;
use dualchain_prover::supply::SupplyShape;

use super::context::{check_text, reject, reject_because, Ctx, Exec};
use crate::policy::AccessPolicy;
use crate::reason::{Reason, TextField};
use crate::state::{dataset_key, DatasetRecord, Erasure};
use crate::tx::{DatasetRegistration, FrBytes};

/// Longest CP-ABE policy text.
pub const POLICY_LEN_MAX: usize = 2048;
/// Most records a dataset holds (the largest supply circuit).
pub const RECORDS_MAX: u64 = 4096;
/// Largest CP-ABE index ciphertext (its policy's size bounds it; this bounds the state).
pub const INDEX_LEN_MAX: usize = 64 << 10;

pub fn register_dataset(ctx: &mut Ctx<'_, '_>, reg: &DatasetRegistration) -> Exec {
    let owner = ctx.require_role(&["hospital"])?.id.clone();
    if reg.dataset == [0; 32] {
        return reject(Reason::DatasetIdZero);
    }
    if ctx.state.get::<DatasetRecord>(&dataset_key(&reg.dataset))?.is_some() {
        return reject(Reason::DatasetExists);
    }
    match SupplyShape::for_records(reg.capacity as usize) {
        Some(s) if s.records() as u64 == reg.capacity => {}
        _ => return reject(Reason::CapacityNotAShape { capacity: reg.capacity, max: RECORDS_MAX }),
    }
    if let Err(e) = reg.commitment.to_fr() {
        return reject_because(Reason::CommitmentInvalid, e);
    }
    if let Err(e) = reg.consent.to_fr() {
        return reject_because(Reason::ConsentCommitmentInvalid, e);
    }
    if let Err(e) = reg.zk_policy_hash.to_fr() {
        return reject_because(Reason::ZkPolicyInvalid, e);
    }
    if reg.policy.len() > POLICY_LEN_MAX {
        return reject(Reason::AbePolicyTooLong { max: POLICY_LEN_MAX });
    }
    let (statement, forms) = match AccessPolicy::parse(&reg.policy).and_then(|p| Ok((p.to_string(), p.compile()?))) {
        Ok(compiled) => compiled,
        Err(e) => return reject_because(Reason::AbePolicyInvalid, e),
    };
    if reg.abe_index.len() > INDEX_LEN_MAX {
        return reject(Reason::AbeIndexTooLarge { max: INDEX_LEN_MAX });
    }
    let index = match <Ac17 as AbeScheme>::Ciphertext::from_bytes(&reg.abe_index) {
        Ok(ct) => ct,
        Err(e) => return reject_because(Reason::AbeIndexInvalid, e),
    };
    if Ac17::policy(&index) != &forms.abe {
        return reject_because(
            Reason::AbeIndexPolicyDiffers,
            format!("the index is under {}, the statement's CP-ABE form is {}", Ac17::policy(&index), forms.abe),
        );
    }
    if reg.zk_policy_hash != FrBytes::from_fr(&forms.dnf.hash()) {
        return reject(Reason::ZkPolicyDiffers);
    }
    if let Err(e) = reg.disclosure.validate() {
        return reject_because(Reason::DisclosureInvalid, e);
    }
    let record = DatasetRecord {
        id: reg.dataset,
        owner,
        commitment: reg.commitment,
        capacity: reg.capacity,
        policy: statement,
        abe_index: reg.abe_index.clone(),
        zk_policy_hash: reg.zk_policy_hash,
        disclosure: reg.disclosure,
        consent: reg.consent,
        consent_version: 0,
        consent_ms: ctx.time_ms,
        erased: None,
        registered_ms: ctx.time_ms,
        tx: ctx.tx_hash,
    };
    ctx.state.put(dataset_key(&reg.dataset), &record);
    Ok(())
}

/// The owner erases a dataset: its record keeps the commitment, the statement and the
/// tombstone (when, why); the CP-ABE index is dropped from state (the registration's block
/// keeps it: names, H1 and counts, no patient data). No demand, access request, re-key or
/// receipt is accepted for it afterwards, and its grants are no longer usable.
pub fn erase_dataset(ctx: &mut Ctx<'_, '_>, dataset: &crate::tx::Hash, reason: &str) -> Exec {
    let sender = ctx.require_role(&["hospital"])?.id.clone();
    check_text(TextField::Reason, reason, 256)?;
    let Some(mut ds) = ctx.state.get::<DatasetRecord>(&dataset_key(dataset))? else {
        return reject(Reason::UnknownDataset);
    };
    if ds.owner != sender {
        return reject(Reason::NotDatasetOwner { owner: ds.owner });
    }
    if ds.erased.is_some() {
        return reject(Reason::DatasetErased);
    }
    ds.erased = Some(Erasure { at_ms: ctx.time_ms, reason: reason.to_string() });
    ds.abe_index = Vec::new();
    ctx.state.put(dataset_key(dataset), &ds);
    Ok(())
}
