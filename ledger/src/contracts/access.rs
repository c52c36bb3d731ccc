//! `access`: demands, grants, re-key issuance, receipts, the audit trail, expiry.

use dualchain_crypto::cbsre::Signcrypted;
use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::Codec;

use super::context::{check_text, reject, reject_because, Ctx, Exec, Refusal};
use crate::consent::{use_index, Purpose, RECIPIENT_ROLES};
use crate::reason::{Reason, TextField};
use crate::state::{
    audit_key, dataset_key, demand_count_key, demand_key, grant_key, member_key, DatasetRecord, DemandRecord,
    GrantRecord, MemberRecord,
};
use crate::state::{AccessEvent, AccessRecord, GrantStatus};
use dualchain_prover::supply::Requirement;

use crate::tx::{DemandNullifier, FrBytes, Hash};

pub fn put_grant(ctx: &mut Ctx<'_, '_>, g: &GrantRecord) {
    ctx.state.put(grant_key(&g.id), g);
}

pub(super) fn grant(ctx: &Ctx<'_, '_>, id: &Hash) -> Result<GrantRecord, Refusal> {
    match ctx.state.get::<GrantRecord>(&grant_key(id))? {
        Some(g) => Ok(g),
        None => reject(Reason::UnknownGrant),
    }
}

/// Refuses work under a grant whose dataset its owner erased.
fn require_not_erased(ctx: &Ctx<'_, '_>, g: &GrantRecord) -> Exec {
    match ctx.state.get::<DatasetRecord>(&dataset_key(&g.dataset))? {
        Some(ds) if ds.erased.is_some() => reject(Reason::DatasetErased),
        _ => Ok(()),
    }
}

pub fn demand(
    ctx: &mut Ctx<'_, '_>,
    id: &Hash,
    dataset: &Hash,
    r: &Requirement,
    purpose: Purpose,
    nullifier: Option<&DemandNullifier>,
) -> Exec {
    let sender = ctx.require_role(&["research", "hospital"])?.clone();
    let (requester, role) = (sender.id.clone(), sender.role.clone());
    let Some(use_index) = use_index(purpose, &role) else {
        return reject(Reason::RoleRequired {
            roles: RECIPIENT_ROLES.iter().map(|r| r.to_string()).collect(),
            member: requester,
            role,
        });
    };
    let ds = check_demand(ctx, id, dataset, r)?;
    // How often this requester may ask (the anonymous path counts with nullifiers).
    let policy = ds.disclosure;
    let count_key = demand_count_key(dataset, &requester, policy.epoch_of(ctx.time_ms));
    let count = ctx.state.get::<u16>(&count_key)?.unwrap_or(0);
    if count >= policy.demands_per_epoch {
        return reject(Reason::DemandBudgetSpent { budget: policy.demands_per_epoch, epoch_h: policy.epoch_h });
    }
    // And, where the member can also ask anonymously, with its credential's nullifiers,
    // which its anonymous demands spend too.
    super::budget::spend_named_nullifier(ctx, &sender, id, nullifier)?;
    ctx.state.put(count_key, &(count + 1));
    put_demand(ctx, id, dataset, requester, r, purpose, use_index);
    Ok(())
}

/// The checks every demand passes, named or anonymous: its id unused, its dataset known
/// and not erased, its requirement well formed and within the owner's disclosure policy
/// (how finely it may ask). The dataset.
pub(super) fn check_demand(
    ctx: &Ctx<'_, '_>,
    id: &Hash,
    dataset: &Hash,
    r: &Requirement,
) -> Result<DatasetRecord, Refusal> {
    if ctx.state.get::<DemandRecord>(&demand_key(id))?.is_some() {
        return reject(Reason::DemandIdUsed);
    }
    let Some(ds) = ctx.state.get::<DatasetRecord>(&dataset_key(dataset))? else {
        return reject(Reason::UnknownDataset);
    };
    if ds.erased.is_some() {
        return reject(Reason::DatasetErased);
    }
    if let Err(e) = r.validate() {
        return reject_because(Reason::RequirementInvalid, e);
    }
    if let Err(reason) = ds.disclosure.check(r) {
        return reject(reason);
    }
    Ok(ds)
}

/// Records an accepted demand.
pub(super) fn put_demand(
    ctx: &mut Ctx<'_, '_>,
    id: &Hash,
    dataset: &Hash,
    requester: String,
    r: &Requirement,
    purpose: Purpose,
    use_index: u8,
) {
    let record = DemandRecord {
        id: *id,
        dataset: *dataset,
        requester,
        requirement: *r,
        requirement_hash: FrBytes::from_fr(&r.hash()),
        purpose,
        use_index,
        published_ms: ctx.time_ms,
        supplied_by: None,
    };
    ctx.state.put(demand_key(id), &record);
}

/// Largest sealed re-key token (an IBE ciphertext of a token).
pub const SEALED_TOKEN_LEN_MAX: usize = 4096;
/// Largest sealed pseudonym list: 4096 records, each of its own patient (16 bytes of
/// pseudonym and 2 of position), with the sealing's overhead (an IBE ciphertext's, or a
/// signcryption's for an anonymous requester: each under 1 KiB).
pub const SEALED_PSEUDONYMS_LEN_MAX: usize = 4096 * 18 + 1024;
/// The content type under which an owner signcrypts an anonymous grant's patient
/// pseudonyms to the requester's one-time delegating key.
pub const ANONYMOUS_PSEUDONYMS_TYPE: &str = "dualchain:grant-pseudonyms";

pub fn issue_rekey(ctx: &mut Ctx<'_, '_>, id: &Hash, sealed_token: &[u8], sealed_pseudonyms: &[u8]) -> Exec {
    let sender = ctx.sender()?.id.clone();
    let mut g = grant(ctx, id)?;
    if g.owner != sender {
        return reject(Reason::NotGrantOwner { owner: g.owner });
    }
    g.usable(ctx.time_ms).map_err(|reason| Refusal::Rejected { reason, detail: None })?;
    require_not_erased(ctx, &g)?;
    if g.sealed_token.is_some() {
        return reject(Reason::RekeyAlreadyIssued);
    }
    g.cpc = check_sealed(ctx, &g, sealed_token, sealed_pseudonyms)?;
    if !sealed_pseudonyms.is_empty() {
        g.sealed_pseudonyms = Some(sealed_pseudonyms.to_vec());
    }
    g.sealed_token = Some(sealed_token.to_vec());
    put_grant(ctx, &g);
    Ok(())
}

/// Checks a grant's sealed re-key token (an IBE ciphertext to an active CPC) and sealed
/// pseudonyms (an IBE ciphertext to the requester, or none); the CPC the token names.
pub(super) fn check_sealed(
    ctx: &Ctx<'_, '_>,
    g: &GrantRecord,
    sealed_token: &[u8],
    sealed_pseudonyms: &[u8],
) -> Result<String, Refusal> {
    if sealed_token.len() > SEALED_TOKEN_LEN_MAX {
        return reject(Reason::SealedTokenTooLarge { max: SEALED_TOKEN_LEN_MAX });
    }
    // The token is sealed to the dataset's CPC, which only the owner and the grantee know
    // (from the index); its IBE identity names it here, and it must be an active CPC.
    let cpc = match IbeCiphertext::from_bytes(sealed_token) {
        Ok(c) => c.identity,
        Err(e) => return reject_because(Reason::SealedTokenInvalid, e),
    };
    match ctx.state.get::<MemberRecord>(&member_key(&cpc))? {
        Some(m) if m.role == "cpc" && m.revoked.is_none() => {}
        Some(_) => return reject(Reason::NotActiveCpc { cpc }),
        None => return reject(Reason::UnknownCpc { cpc }),
    }
    if sealed_pseudonyms.len() > SEALED_PSEUDONYMS_LEN_MAX {
        return reject(Reason::SealedPseudonymsTooLarge { max: SEALED_PSEUDONYMS_LEN_MAX });
    }
    // The patients' pseudonyms are for the requester alone: sealed to its IBE identity, or
    // for an anonymous requester (which has no IBE identity: asking the KGC for one would
    // name it) signcrypted by the owner to the one-time delegating key of its demand
    // (whose recipient the KEM does not show: the requester checks it by opening).
    if !sealed_pseudonyms.is_empty() && crate::tx::is_pseudonym(&g.requester) {
        match Signcrypted::from_bytes(sealed_pseudonyms) {
            Ok(s)
                if s.header.owner == g.owner
                    && s.header.dataset.0 == g.dataset
                    && s.header.content_type == ANONYMOUS_PSEUDONYMS_TYPE => {}
            Ok(s) => {
                return reject_because(
                    Reason::SealedPseudonymsInvalid,
                    format!(
                        "signcrypted as {} of dataset {} by {}, not as {ANONYMOUS_PSEUDONYMS_TYPE} of the grant's \
                         dataset by its owner",
                        s.header.content_type,
                        hex::encode(s.header.dataset.0),
                        s.header.owner
                    ),
                )
            }
            Err(e) => return reject_because(Reason::SealedPseudonymsInvalid, e),
        }
    } else if !sealed_pseudonyms.is_empty() {
        match IbeCiphertext::from_bytes(sealed_pseudonyms) {
            Ok(c) if c.identity == g.requester => {}
            Ok(c) => {
                return reject_because(
                    Reason::SealedPseudonymsInvalid,
                    format!("sealed to {}, not to the requester {}", c.identity, g.requester),
                )
            }
            Err(e) => return reject_because(Reason::SealedPseudonymsInvalid, e),
        }
    }
    Ok(cpc)
}

pub fn revoke_grant(ctx: &mut Ctx<'_, '_>, id: &Hash, reason: &str) -> Exec {
    check_text(TextField::Reason, reason, 256)?;
    let (sender, role) = ctx.sender_and_role()?;
    let (sender, role) = (sender.to_string(), role.to_string());
    let mut g = grant(ctx, id)?;
    if sender != g.owner && sender != g.requester && role != "kgc" {
        return reject(Reason::NotGrantParty);
    }
    if let GrantStatus::Revoked { .. } = g.status {
        return reject(Reason::GrantAlreadyRevoked);
    }
    g.status = GrantStatus::Revoked { reason: reason.to_string(), at_ms: ctx.time_ms };
    put_grant(ctx, &g);
    Ok(())
}

/// A receipt (the grant's CPC re-encrypted its records) or a fetch (the CPC serves them to
/// the requester; only once re-encrypted): the grant's CPC writes the access record, while
/// the grant is usable and its dataset not erased.
pub fn record_access(
    ctx: &mut Ctx<'_, '_>,
    event: AccessEvent,
    id: &Hash,
    records: u64,
    results_digest: &Hash,
) -> Exec {
    let sender = ctx.sender()?.id.clone();
    let mut g = grant(ctx, id)?;
    if g.sealed_token.is_none() || (event == AccessEvent::Fetched && g.receipts == 0) {
        return reject(Reason::NoRekey);
    }
    if g.cpc != sender {
        return reject(Reason::NotGrantCpc { cpc: g.cpc });
    }
    g.usable(ctx.time_ms).map_err(|reason| Refusal::Rejected { reason, detail: None })?;
    require_not_erased(ctx, &g)?;
    let Some(ds) = ctx.state.get::<DatasetRecord>(&dataset_key(&g.dataset))? else {
        return reject(Reason::GrantDatasetUnknown);
    };
    if records == 0 || records > ds.capacity {
        return reject(Reason::ReceiptRecordsOutOfRange { records, capacity: ds.capacity });
    }
    if event == AccessEvent::Reencrypted {
        g.receipts += 1;
    }
    let record = AccessRecord {
        event,
        dataset: g.dataset,
        grant: g.id,
        requester: g.requester.clone(),
        owner: g.owner.clone(),
        cpc: g.cpc.clone(),
        records,
        results_digest: *results_digest,
        at_ms: ctx.time_ms,
        receipt_tx: ctx.tx_hash,
    };
    ctx.state.put(audit_key(&g.dataset, ctx.seq, &ctx.tx_hash), &record);
    put_grant(ctx, &g);
    Ok(())
}
