//! `access`: break-glass, emergency access to a patient's records at another hospital.
//!
//! The pattern is the "break-glass" of emergency access control (Ferreira et al., "How to
//! Securely Break into RBAC: the BTG-RBAC Model", ACSAC 2009): in an emergency a
//! clinician may override the access policy, on condition that the override is recorded
//! before any data flows, is limited, and is reviewed afterwards. Purposes of use are HL7
//! v3 `PurposeOfUse` codes; break-glass serves `ETREAT` (emergency treatment) only.
//!
//! - [`request`]: a hospital member with an active credential asks another hospital for
//!   the records of named patients. The identity checks all hold (registered, not
//!   revoked, certificate valid, credential active); what is bypassed is the zero-knowledge
//!   policy and the demand with its supply proof. The patients and the justification are
//!   sealed to the owner with IBE; the chain keeps only their SHA-256, the purpose, the
//!   parties and the time limit (at most [`DURATION_MAX_S`]). A clinician has at most
//!   [`OPEN_MAX`] uses awaiting one owner's review, so an override cannot become a habit
//!   (counted per owner: an owner that never reviews blocks requests to itself only).
//! - [`grant`]: the owner's node answers with grants over the named patients' records,
//!   re-key issued in the same transaction, ending when the request's time does.
//! - [`review`]: a reviewer at the owner marks the use justified or not. An unjustified
//!   use ends its grants at once and may ask the KGC to withdraw the clinician's
//!   credential; the KGC's node does that with the usual `RevokeCredential`.
//!
//! What the chain shows every member: that `requester` broke the glass at `owner` at a
//! time, for how long, how many grants it produced, and the review's verdict and note.
//! It does not show which patients, why, or which records.

use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::Codec;

use super::access::{check_sealed, put_grant};
use super::context::{check_text, reject, reject_because, Ctx, Exec, Refusal};
use crate::reason::{Reason, TextField};
use crate::state::{
    break_glass_key, break_glass_open_key, break_glass_owner_key, dataset_key, grant_key, member_key, BreakGlassRecord,
    BreakGlassReview, DatasetRecord, GrantRecord, GrantRef, GrantStatus, MemberRecord,
};
use crate::tx::{FrBytes, Hash};

/// The purposes of use break-glass serves (HL7 v3 ActReason `PurposeOfUse`).
pub const PURPOSES: &[&str] = &["ETREAT"];
/// Longest break-glass access: 12 hours.
pub const DURATION_MAX_S: u64 = 12 * 3600;
/// Break-glass uses of one clinician that may await one owner's review at once.
pub const OPEN_MAX: u16 = 3;
/// Grants one break-glass request may yield (one per dataset holding the patients).
pub const GRANTS_MAX: usize = 16;
/// Largest sealed scope (patients and justification, IBE-sealed to the owner).
pub const SEALED_SCOPE_LEN_MAX: usize = 8192;
/// Largest sealed pointer (the dataset's index entry, IBE-sealed to the requester).
pub const SEALED_POINTER_LEN_MAX: usize = 4096;
/// Longest review note.
pub const NOTE_LEN_MAX: usize = 512;

fn record(ctx: &Ctx<'_, '_>, id: &Hash) -> Result<BreakGlassRecord, Refusal> {
    match ctx.state.get::<BreakGlassRecord>(&break_glass_key(id))? {
        Some(r) => Ok(r),
        None => reject(Reason::UnknownBreakGlass),
    }
}

/// Whether `bytes` is an IBE ciphertext of at most `max` bytes sealed to `to`.
fn sealed_to(bytes: &[u8], to: &str, max: usize, too_large: Reason, invalid: Reason) -> Exec {
    if bytes.len() > max {
        return reject(too_large);
    }
    match IbeCiphertext::from_bytes(bytes) {
        Ok(c) if c.identity == to => Ok(()),
        Ok(c) => reject_because(invalid, format!("sealed to {}, not to {to}", c.identity)),
        Err(e) => reject_because(invalid, e),
    }
}

pub struct Request<'a> {
    pub id: &'a Hash,
    pub owner: &'a str,
    pub purpose: &'a str,
    pub duration_s: u64,
    pub scope_digest: &'a Hash,
    pub sealed_scope: &'a [u8],
}

/// A clinician breaks the glass (see the module documentation).
pub fn request(ctx: &mut Ctx<'_, '_>, r: Request<'_>) -> Exec {
    let clinician = ctx.require_role(&["hospital"])?.clone();
    if clinician.credential.is_none() || clinician.credential_revoked.is_some() {
        return reject(Reason::NoActiveCredential { member: clinician.id });
    }
    if !PURPOSES.contains(&r.purpose) {
        return reject(Reason::PurposeUnsupported { allowed: PURPOSES.iter().map(|p| p.to_string()).collect() });
    }
    if !(1..=DURATION_MAX_S).contains(&r.duration_s) {
        return reject(Reason::DurationOutOfRange { max: DURATION_MAX_S });
    }
    if ctx.state.get::<BreakGlassRecord>(&break_glass_key(r.id))?.is_some() {
        return reject(Reason::RequestIdUsed);
    }
    match ctx.state.get::<MemberRecord>(&member_key(r.owner))? {
        Some(m) if m.role == "hospital" && m.revoked.is_none() && m.id != clinician.id => {}
        _ => return reject(Reason::BreakGlassOwnerInvalid { owner: r.owner.to_string() }),
    }
    sealed_to(
        r.sealed_scope,
        r.owner,
        SEALED_SCOPE_LEN_MAX,
        Reason::SealedScopeTooLarge { max: SEALED_SCOPE_LEN_MAX },
        Reason::SealedScopeInvalid,
    )?;
    let open_key = break_glass_open_key(&clinician.id, r.owner);
    let open = ctx.state.get::<u16>(&open_key)?.unwrap_or(0);
    if open >= OPEN_MAX {
        return reject(Reason::BreakGlassUnreviewed { max: OPEN_MAX });
    }
    ctx.state.put(open_key, &(open + 1));
    let rec = BreakGlassRecord {
        id: *r.id,
        requester: clinician.id,
        owner: r.owner.to_string(),
        purpose: r.purpose.to_string(),
        scope_digest: *r.scope_digest,
        requested_ms: ctx.time_ms,
        until_ms: ctx.time_ms.saturating_add(r.duration_s * 1000),
        grants: Vec::new(),
        review: None,
        tx: ctx.tx_hash,
    };
    ctx.state.put(break_glass_owner_key(r.owner, ctx.seq, r.id), r.id);
    ctx.state.put(break_glass_key(r.id), &rec);
    Ok(())
}

pub struct Grant<'a> {
    pub request: &'a Hash,
    pub grant: &'a Hash,
    pub dataset: &'a Hash,
    pub sealed_token: &'a [u8],
    pub sealed_pseudonyms: &'a [u8],
    pub sealed_pointer: &'a [u8],
}

/// The owner's node grants a break-glass request the records of one of its datasets.
pub fn grant(ctx: &mut Ctx<'_, '_>, a: Grant<'_>) -> Exec {
    let owner = ctx.sender()?.id.clone();
    let mut bg = record(ctx, a.request)?;
    if bg.owner != owner {
        return reject(Reason::NotBreakGlassOwner { owner: bg.owner });
    }
    if bg.review.is_some() {
        return reject(Reason::BreakGlassReviewed);
    }
    if ctx.time_ms >= bg.until_ms {
        return reject(Reason::BreakGlassExpired);
    }
    if bg.grants.len() >= GRANTS_MAX {
        return reject(Reason::BreakGlassGrantsSpent { max: GRANTS_MAX });
    }
    // The clinician's standing is checked again at each grant: a credential withdrawn or a
    // member revoked since the request gets nothing more.
    match ctx.state.get::<MemberRecord>(&member_key(&bg.requester))? {
        Some(m) if m.revoked.is_none() && m.credential.is_some() && m.credential_revoked.is_none() => {}
        _ => return reject(Reason::NoActiveCredential { member: bg.requester }),
    }
    match ctx.state.get::<DatasetRecord>(&dataset_key(a.dataset))? {
        Some(ds) if ds.owner != owner => return reject(Reason::NotDatasetOwner { owner: ds.owner }),
        Some(ds) if ds.erased.is_some() => return reject(Reason::DatasetErased),
        Some(_) => {}
        None => return reject(Reason::UnknownDataset),
    }
    if *a.grant == [0; 32] || ctx.state.get::<GrantRecord>(&grant_key(a.grant))?.is_some() {
        return reject(Reason::GrantIdUsed);
    }
    let mut g = GrantRecord {
        id: *a.grant,
        dataset: *a.dataset,
        demand: [0; 32],
        requester: bg.requester.clone(),
        owner,
        cpc: String::new(),
        granted_ms: ctx.time_ms,
        expires_ms: bg.until_ms,
        status: GrantStatus::Active,
        sealed_token: None,
        sealed_pseudonyms: None,
        receipts: 0,
        break_glass: Some(*a.request),
        sealed_pointer: None,
    };
    g.cpc = check_sealed(ctx, &g, a.sealed_token, a.sealed_pseudonyms)?;
    sealed_to(
        a.sealed_pointer,
        &bg.requester,
        SEALED_POINTER_LEN_MAX,
        Reason::SealedPointerInvalid,
        Reason::SealedPointerInvalid,
    )?;
    g.sealed_token = Some(a.sealed_token.to_vec());
    g.sealed_pseudonyms = Some(a.sealed_pseudonyms.to_vec()).filter(|p| !p.is_empty());
    g.sealed_pointer = Some(a.sealed_pointer.to_vec());
    put_grant(ctx, &g);
    bg.grants.push(GrantRef(*a.grant));
    ctx.state.put(break_glass_key(a.request), &bg);
    Ok(())
}

/// A reviewer at the owner marks a break-glass use justified or not (see the module
/// documentation). Reviewed once; an unjustified use's grants end here.
/// `member`'s active credential: its leaf in the credential tree.
fn active_credential(ctx: &Ctx<'_, '_>, member: &str) -> Result<Option<FrBytes>, Refusal> {
    let Some(m) = ctx.state.get::<MemberRecord>(&member_key(member))? else { return Ok(None) };
    match (m.credential, &m.credential_revoked) {
        (Some(index), None) => Ok(ctx.state.get::<FrBytes>(&super::registry::leaf_key(index))?),
        _ => Ok(None),
    }
}

pub fn review(ctx: &mut Ctx<'_, '_>, id: &Hash, justified: bool, note: &str, revoke_credential: bool) -> Exec {
    check_text(TextField::Reason, note, NOTE_LEN_MAX)?;
    let owner = ctx.sender()?.id.clone();
    let mut bg = record(ctx, id)?;
    if bg.owner != owner {
        return reject(Reason::NotBreakGlassOwner { owner: bg.owner });
    }
    if bg.review.is_some() {
        return reject(Reason::BreakGlassReviewed);
    }
    if justified && revoke_credential {
        return reject(Reason::RevocationOfJustified);
    }
    if !justified {
        for GrantRef(gid) in &bg.grants {
            let Some(mut g) = ctx.state.get::<GrantRecord>(&grant_key(gid))? else { continue };
            if g.status == GrantStatus::Active {
                g.status = GrantStatus::Revoked {
                    reason: format!("break-glass reviewed unjustified by {owner}"),
                    at_ms: ctx.time_ms,
                };
                put_grant(ctx, &g);
            }
        }
    }
    let open_key = break_glass_open_key(&bg.requester, &bg.owner);
    let open = ctx.state.get::<u16>(&open_key)?.unwrap_or(0);
    ctx.state.put(open_key, &open.saturating_sub(1));
    let credential = match revoke_credential {
        true => active_credential(ctx, &bg.requester)?,
        false => None,
    };
    bg.review = Some(BreakGlassReview {
        justified,
        note: note.to_string(),
        revoke_credential,
        at_ms: ctx.time_ms,
        tx: ctx.tx_hash,
        credential,
    });
    ctx.state.put(break_glass_key(id), &bg);
    Ok(())
}
