//! `registry`: members and their certificates, the credential tree, revocations.

use dualchain_crypto::cert::{Certificate, NoRevocations};
use dualchain_crypto::{Codec, CryptoError};
use dualchain_prover::field::fr_to_bytes;
use ff::Field;

use super::context::{check_text, reject, reject_because, Ctx, Exec, Refusal};
use crate::reason::{CertProblem, Denial, Reason, TextField};
use crate::state::{
    member_key, revocation_key, root_key, Approval, MemberRecord, RegistryRecord, RevocationRecord, RootRecord,
    REGISTRY_KEY,
};
use crate::tx::{FrBytes, NAME_LEN_MAX};

/// A superseded credential root stays acceptable this long (ledger time) after a new
/// credential is added, so proofs in flight when a member joins still land.
pub const ROOT_GRACE_MS: u64 = 10 * 60 * 1000;

/// Verifies a member certificate against the genesis CA at ledger time.
pub fn check_certificate(ctx: &Ctx<'_, '_>, bytes: &[u8]) -> Result<Certificate, Refusal> {
    let cert = match Certificate::from_bytes(bytes) {
        Ok(c) => c,
        Err(e) => return reject_because(Reason::CertificateUndecodable, e),
    };
    if let Err(e) = cert.verify(&ctx.genesis.ca, ctx.time_ms / 1000, &NoRevocations) {
        let problem = match &e {
            CryptoError::Certificate { reason, .. } => CertProblem::from(reason),
            _ => CertProblem::Other,
        };
        return reject_because(Reason::CertificateRefused { problem }, e);
    }
    Ok(cert)
}

pub fn register_member(ctx: &mut Ctx<'_, '_>, certificate: &[u8]) -> Exec {
    let cert = check_certificate(ctx, certificate)?;
    let id = cert.fields.subject.clone();
    check_text(TextField::MemberId, &id, NAME_LEN_MAX)?;
    let previous: Option<MemberRecord> = ctx.state.get(&member_key(&id))?;
    if let Some(p) = &previous {
        if let Some(r) = &p.revoked {
            return reject(Reason::MemberRevoked { member: id, revocation: r.clone() });
        }
        if cert.fields.serial <= p.serial {
            return reject(Reason::SerialNotHigher { member: id, registered: p.serial });
        }
    }
    let record = MemberRecord {
        id: id.clone(),
        role: cert.fields.role.as_str().to_string(),
        serial: cert.fields.serial,
        certificate: certificate.to_vec(),
        signing_key: *cert.fields.signing_key.as_bytes(),
        not_after: cert.fields.not_after,
        revoked: None,
        credential: previous.as_ref().and_then(|p| p.credential),
        credential_revoked: previous.and_then(|p| p.credential_revoked),
        registered_ms: ctx.time_ms,
    };
    ctx.state.put(member_key(&id), &record);
    Ok(())
}

fn registry(ctx: &Ctx<'_, '_>) -> Result<RegistryRecord, Refusal> {
    Ok(ctx.state.get(REGISTRY_KEY)?.unwrap_or_default())
}

/// Publishes the tree's new root; `revocation` retires every earlier root at once.
fn publish_root(ctx: &mut Ctx<'_, '_>, mut reg: RegistryRecord, revocation: bool) -> Exec {
    if let Some(old) = reg.root {
        if let Some(mut r) = ctx.state.get::<RootRecord>(&root_key(&old))? {
            r.superseded_ms.get_or_insert(ctx.time_ms);
            ctx.state.put(root_key(&old), &r);
        }
    }
    if revocation {
        reg.epoch += 1;
    }
    let root = FrBytes::from_fr(&ctx.tree.root());
    reg.root = Some(root);
    ctx.state.put(root_key(&root), &RootRecord { epoch: reg.epoch, superseded_ms: None });
    ctx.state.put(REGISTRY_KEY.to_vec(), &reg);
    Ok(())
}

pub fn leaf_key(index: u64) -> Vec<u8> {
    format!("cred/{index:020}").into_bytes()
}
pub const LEAF_PREFIX: &[u8] = b"cred/";

/// Whether `root` may be named by a policy proof at ledger time: `Some` denial if not.
pub fn root_denial(ctx: &Ctx<'_, '_>, root: &FrBytes) -> Result<Option<Denial>, Refusal> {
    let reg = registry(ctx)?;
    let Some(r) = ctx.state.get::<RootRecord>(&root_key(root))? else {
        return Ok(Some(Denial::RootUnknown));
    };
    if r.epoch != reg.epoch {
        return Ok(Some(Denial::RootPredatesRevocation));
    }
    if r.superseded_ms.is_some_and(|at| ctx.time_ms.saturating_sub(at) > ROOT_GRACE_MS) {
        return Ok(Some(Denial::RootStale));
    }
    Ok(None)
}

pub fn issue_credential(ctx: &mut Ctx<'_, '_>, member: &str, leaf: &FrBytes) -> Exec {
    ctx.require_role(&["kgc"])?;
    let Some(mut m) = ctx.state.get::<MemberRecord>(&member_key(member))? else {
        return reject(Reason::UnknownMember { member: member.into() });
    };
    if let Some(r) = &m.revoked {
        return reject(Reason::MemberRevoked { member: member.into(), revocation: r.clone() });
    }
    let value = match leaf.to_fr() {
        Ok(v) if !bool::from(v.is_zero()) => v,
        Ok(_) => return reject(Reason::CredentialLeafZero),
        Err(e) => return reject_because(Reason::CredentialLeafInvalid, e),
    };
    let mut reg = registry(ctx)?;
    let index = match m.credential {
        Some(i) => i,
        None => {
            reg.next_leaf += 1;
            reg.next_leaf - 1
        }
    };
    ctx.tree.set(index, value);
    ctx.state.put(leaf_key(index), &FrBytes(fr_to_bytes(&value)));
    m.credential = Some(index);
    m.credential_revoked = None;
    ctx.state.put(member_key(member), &m);
    publish_root(ctx, reg, false)
}

fn withdraw_credential(ctx: &mut Ctx<'_, '_>, m: &mut MemberRecord, reason: &str) -> Exec {
    let Some(index) = m.credential else { return Ok(()) };
    ctx.tree.set(index, blstrs::Scalar::ZERO);
    ctx.state.put(leaf_key(index), &FrBytes(fr_to_bytes(&blstrs::Scalar::ZERO)));
    m.credential_revoked = Some(reason.to_string());
    let reg = registry(ctx)?;
    publish_root(ctx, reg, true)
}

pub fn revoke_credential(ctx: &mut Ctx<'_, '_>, member: &str, reason: &str) -> Exec {
    ctx.require_role(&["kgc"])?;
    check_text(TextField::Reason, reason, 256)?;
    let Some(mut m) = ctx.state.get::<MemberRecord>(&member_key(member))? else {
        return reject(Reason::UnknownMember { member: member.into() });
    };
    if m.credential.is_none() || m.credential_revoked.is_some() {
        return reject(Reason::NoActiveCredential { member: member.into() });
    }
    withdraw_credential(ctx, &mut m, reason)?;
    ctx.state.put(member_key(member), &m);
    Ok(())
}

/// How long approvals of a revocation stay open (ledger time): 30 days.
pub const REVOCATION_OPEN_MS: u64 = 30 * 24 * 3600 * 1000;

/// A member's approval of revoking `member` (any registered member may give one, the
/// member itself included, which is how a member leaves). The member is revoked, and its
/// credential withdrawn, at the approval that brings the approvals of members still in
/// good standing to the genesis' `revocation_quorum`, with the reason the first approver
/// gave; from then on nothing it signs counts. Until then the member is unaffected, and
/// the [`RevocationRecord`] shows who approved. Approvals lapse after
/// [`REVOCATION_OPEN_MS`].
pub fn revoke_member(ctx: &mut Ctx<'_, '_>, member: &str, reason: &str) -> Exec {
    let by = ctx.sender()?.id.clone();
    check_text(TextField::Reason, reason, 256)?;
    let Some(mut m) = ctx.state.get::<MemberRecord>(&member_key(member))? else {
        return reject(Reason::UnknownMember { member: member.into() });
    };
    if m.revoked.is_some() {
        return reject(Reason::MemberAlreadyRevoked { member: member.into() });
    }
    let now = ctx.time_ms;
    let mut r = match ctx.state.get::<RevocationRecord>(&revocation_key(member))? {
        Some(r) if now < r.opened_ms.saturating_add(REVOCATION_OPEN_MS) => r,
        // None yet, or its approvals lapsed: this approval opens one.
        _ => RevocationRecord {
            member: member.into(),
            reason: reason.into(),
            opened_ms: now,
            approvals: Vec::new(),
            revoked_ms: None,
        },
    };
    if r.approvals.iter().any(|a| a.by == by) {
        return reject(Reason::RevocationAlreadyApproved { member: member.into(), by });
    }
    r.approvals.push(Approval { by, at_ms: now, tx: ctx.tx_hash });
    // Approvals count while their members are not revoked themselves.
    let mut standing = 0u32;
    for a in &r.approvals {
        if ctx.state.get::<MemberRecord>(&member_key(&a.by))?.is_some_and(|x| x.revoked.is_none()) {
            standing += 1;
        }
    }
    if standing >= ctx.genesis.revocation_quorum.max(1) {
        if m.credential_revoked.is_none() {
            withdraw_credential(ctx, &mut m, &r.reason)?;
        }
        m.revoked = Some(r.reason.clone());
        r.revoked_ms = Some(now);
        ctx.state.put(member_key(member), &m);
    }
    ctx.state.put(revocation_key(member), &r);
    Ok(())
}
