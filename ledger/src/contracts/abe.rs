//! `abe`: datasets, their access policies and the index pointers encrypted under them.
//!
//! The contract cannot decrypt an index (nobody on chain holds attribute keys); it checks
//! that the CP-ABE policy parses into the binary form the scheme handles, that the index
//! decodes as a ciphertext of the scheme, and that the zero-knowledge form of the policy is
//! a valid DNF, and it records the dataset with H1, C_D and the policy hash proofs use.

use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::{AbeScheme, Policy};
use dualchain_crypto::cbsre::DatasetId;
use dualchain_crypto::Codec;
use dualchain_prover::supply::SupplyShape;

use super::context::{check_text, reject, reject_because, Ctx, Exec};
use crate::reason::{Reason, TextField};
use crate::state::{dataset_key, member_key, DatasetRecord, MemberRecord};
use crate::tx::{policy_from_spec, DatasetRegistration, FrBytes, NAME_LEN_MAX};

/// Longest CP-ABE policy text.
pub const POLICY_LEN_MAX: usize = 2048;
/// Most records a dataset holds (the largest supply circuit).
pub const RECORDS_MAX: u64 = 4096;

pub fn register_dataset(ctx: &mut Ctx<'_, '_>, reg: &DatasetRegistration) -> Exec {
    let owner = ctx.require_role(&["hospital"])?.id.clone();
    check_text(TextField::DatasetName, &reg.name, NAME_LEN_MAX)?;
    if reg.dataset != DatasetId::derive(&owner, &reg.name).0 {
        return reject(Reason::DatasetIdNotDerived);
    }
    if ctx.state.get::<DatasetRecord>(&dataset_key(&reg.dataset))?.is_some() {
        return reject(Reason::DatasetExists);
    }
    if reg.records == 0 || SupplyShape::for_records(reg.records as usize).is_none() {
        return reject(Reason::RecordsOutOfRange { records: reg.records, max: RECORDS_MAX });
    }
    match ctx.state.get::<MemberRecord>(&member_key(&reg.cpc))? {
        Some(c) if c.role == "cpc" && c.revoked.is_none() => {}
        Some(_) => return reject(Reason::NotActiveCpc { cpc: reg.cpc.clone() }),
        None => return reject(Reason::UnknownCpc { cpc: reg.cpc.clone() }),
    }
    if let Err(e) = reg.commitment.to_fr() {
        return reject_because(Reason::CommitmentInvalid, e);
    }
    if reg.abe_policy.len() > POLICY_LEN_MAX {
        return reject(Reason::AbePolicyTooLong { max: POLICY_LEN_MAX });
    }
    if let Err(e) = Policy::parse(&reg.abe_policy) {
        return reject_because(Reason::AbePolicyInvalid, e);
    }
    if let Err(e) = <Ac17 as AbeScheme>::Ciphertext::from_bytes(&reg.abe_index) {
        return reject_because(Reason::AbeIndexInvalid, e);
    }
    let zk_policy = match policy_from_spec(&reg.zk_policy) {
        Ok(p) => p,
        Err(e) => return reject_because(Reason::ZkPolicyInvalid, e),
    };
    let record = DatasetRecord {
        id: reg.dataset,
        name: reg.name.clone(),
        owner,
        h1: reg.h1,
        commitment: reg.commitment,
        records: reg.records,
        cpc: reg.cpc.clone(),
        abe_policy: reg.abe_policy.clone(),
        abe_index: reg.abe_index.clone(),
        zk_policy: reg.zk_policy.clone(),
        zk_policy_hash: FrBytes::from_fr(&zk_policy.hash()),
        registered_ms: ctx.time_ms,
        tx: ctx.tx_hash,
    };
    ctx.state.put(dataset_key(&reg.dataset), &record);
    Ok(())
}
