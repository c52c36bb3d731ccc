//! `audit`: opening who made an anonymous demand (issue 17 item 3: "sealed for audit so
//! that a quorum of audit authorities … can open it, and no single authority can").
//!
//! Two decisions, by different parties, and both on the record:
//! 1. the membership quorum approves a case against one pseudonym, with its reason
//!    ([`open_case`], the same quorum that revokes a member): no authority opens an
//!    identity because it wants to, and no member alone makes them;
//! 2. each audit authority (the escrow committee, [`super::escrow`]) posts its decryption
//!    share of the pseudonym's sealed identity, with its Chaum–Pedersen proof bound to the
//!    case ([`share`]); the contract checks each against the authority's verification
//!    key, and at t of them opens the credential index and records the member it belongs
//!    to. A share given for one case is worthless for another.
//!
//! The opening is public on chain: accountability is the point of opening. Nothing else of
//! the member's anonymous requests is linked by it (each has its own pseudonym and
//! sealed identity).

use dualchain_crypto::Codec;
use dualchain_prover::escrow::{DecryptionShare, Sealed};
use sha2::{Digest as _, Sha256};

use super::context::{check_text, reject, reject_because, Ctx, Exec};
use super::registry::{approve, lapsed, parameters};
use crate::error::LedgerError;
use crate::reason::{Reason, TextField};
use crate::state::{audit_case_key, pseudonym_key, AuditCaseRecord, AuditOpening, MemberRecord};
use crate::state::{PseudonymRecord, MEMBER_PREFIX};
use crate::tx::{Hash, ANONYMOUS_LEAF_OFFSET};

/// A case's id: SHA-256 over the pseudonym and the reason, so each reason given against a
/// pseudonym is its own case with its own approvals.
pub fn case_id(pseudonym: &str, case: &str) -> Hash {
    Sha256::new()
        .chain_update(b"dualchain/v1/audit-case")
        .chain_update((pseudonym.len() as u64).to_be_bytes())
        .chain_update(pseudonym.as_bytes())
        .chain_update(case.as_bytes())
        .finalize()
        .into()
}

/// A member's approval of opening `pseudonym` for `case`.
pub fn open_case(ctx: &mut Ctx<'_, '_>, pseudonym: &str, case: &str) -> Exec {
    check_text(TextField::Reason, case, 256)?;
    if ctx.state.get::<PseudonymRecord>(&pseudonym_key(pseudonym))?.is_none() {
        return reject(Reason::UnknownPseudonym);
    }
    let id = case_id(pseudonym, case);
    let now = ctx.time_ms;
    let mut rec = match ctx.state.get::<AuditCaseRecord>(&audit_case_key(&id))? {
        // Approvals lapse as a revocation's do; an approved case stays approved.
        Some(r) if r.approved_ms.is_some() || !lapsed(r.opened_ms, now) => r,
        _ => AuditCaseRecord {
            id,
            pseudonym: pseudonym.into(),
            case: case.into(),
            opened_ms: now,
            approvals: Vec::new(),
            approved_ms: None,
            shares: Vec::new(),
            opening: None,
        },
    };
    let standing = approve(ctx, &mut rec.approvals, |by| Reason::AuditAlreadyApproved { by })?;
    if rec.approved_ms.is_none() && standing >= parameters(ctx.state, ctx.genesis)?.membership_quorum {
        rec.approved_ms = Some(now);
    }
    ctx.state.put(audit_case_key(&id), &rec);
    Ok(())
}

/// An audit authority's decryption share for an approved case.
pub fn share(ctx: &mut Ctx<'_, '_>, case: &Hash, share: &[u8]) -> Exec {
    let (committee, _, index) = super::escrow::authority(ctx)?;
    let Some(mut rec) = ctx.state.get::<AuditCaseRecord>(&audit_case_key(case))? else {
        return reject(Reason::AuditCaseUnknown);
    };
    if rec.approved_ms.is_none() {
        return reject(Reason::AuditCaseNotApproved);
    }
    if rec.opening.is_some() {
        return reject(Reason::AuditCaseOpened);
    }
    if rec.shares.iter().any(|(i, _)| *i == index) {
        return reject(Reason::AuditShareDuplicate);
    }
    let s = match DecryptionShare::from_bytes(share) {
        Ok(s) if s.index() == index => s,
        Ok(s) => return reject_because(Reason::AuditShareInvalid, format!("authority {}'s share", s.index())),
        Err(e) => return reject_because(Reason::AuditShareInvalid, e),
    };
    let key = super::escrow::key(ctx.state, ctx.genesis)?
        .ok_or_else(|| LedgerError::Corrupt("an approved audit case without an escrow key".into()))?;
    let pseudonym = ctx
        .state
        .get::<PseudonymRecord>(&pseudonym_key(&rec.pseudonym))?
        .ok_or_else(|| LedgerError::Corrupt("an audit case of an unknown pseudonym".into()))?;
    let sealed = Sealed::from_bytes(&pseudonym.sealed_identity).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    if let Err(e) = key.verify_share(&sealed, &s, case) {
        return reject_because(Reason::AuditShareInvalid, e);
    }
    rec.shares.push((index, hex::encode(share)));
    if rec.shares.len() >= usize::from(committee.threshold()) {
        let shares = rec
            .shares
            .iter()
            .map(|(_, h)| DecryptionShare::from_bytes(&hex::decode(h).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        // Each share verified; the value was proven a leaf index when the demand was made.
        let opened = match key.open(&sealed, &shares, case) {
            Ok(v) => v,
            Err(e) => return reject_because(Reason::AuditShareInvalid, e),
        };
        let credential = opened.checked_sub(ANONYMOUS_LEAF_OFFSET);
        let mut member = None;
        for m in ctx.state.prefix::<MemberRecord>(MEMBER_PREFIX)? {
            if credential.is_some() && m.credential == credential {
                member = Some(m.id);
                break;
            }
        }
        rec.opening = Some(AuditOpening { index: opened, member, at_ms: ctx.time_ms });
    }
    ctx.state.put(audit_case_key(case), &rec);
    Ok(())
}
