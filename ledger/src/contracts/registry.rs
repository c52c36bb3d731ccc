//! `registry`: members and their certificates, the credential tree, and membership by
//! quorum: revocations and admissions.
//!
//! A member certificate must chain to the consortium CA ([`check_certificate`]), but
//! whoever holds the CA's key neither adds nor removes a member alone (issue 19: a member
//! joins when "approved by a quorum of existing institutions"; "a member leaves or is
//! removed with the same quorum"):
//! - a member named at genesis ([`crate::genesis::Founders`]) registers on its certificate
//!   alone ([`register_member`]), and so does every renewal: a registered member's
//!   certificate, same id, higher serial;
//! - any other certified member's `RegisterMember` opens its admission
//!   ([`AdmissionRecord`], holding the certificate): it is not registered, so nothing else
//!   it signs counts, until members in good standing reaching the membership quorum
//!   ([`crate::genesis::Genesis::membership_quorum`]) approved that very certificate
//!   ([`admit_member`], which names its SHA-256). It is then registered exactly as a
//!   founder's registration would, and renews as a founder does;
//! - a member is revoked by the same quorum ([`revoke_member`]), its own approval counting
//!   (leaving), and a revoked id never registers again, by admission or renewal.
//!
//! Approvals of either kind count while their members are in good standing (registered,
//! not revoked), and lapse [`APPROVALS_OPEN_MS`] after their record opened.

use dualchain_crypto::cert::{Certificate, NoRevocations};
use dualchain_crypto::{Codec, CryptoError};
use dualchain_prover::field::fr_to_bytes;
use ff::Field;

use super::context::{check_text, reject, reject_because, Ctx, Exec, Refusal};
use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::reason::{CertProblem, Denial, Reason, TextField};
use crate::state::{
    admission_key, member_key, parameters_proposal_key, revocation_key, root_key, AdmissionRecord, Approval,
    MemberRecord, Overlay, Parameters, ParametersProposal, ParametersRecord, RegistryRecord, RevocationRecord,
    RootRecord, MEMBER_PREFIX, PARAMETERS_KEY, REGISTRY_KEY,
};
use crate::tx::{certificate_sha256, FrBytes, Hash, ANONYMOUS_LEAF_OFFSET, NAME_LEN_MAX};

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

/// Registers a certified member: a founder at once, a renewal (a registered member's
/// certificate with a higher serial) at once; any other member's registration opens its
/// admission instead (`open_admission`). A revoked member registers nothing.
pub fn register_member(ctx: &mut Ctx<'_, '_>, certificate: &[u8]) -> Exec {
    let cert = check_certificate(ctx, certificate)?;
    let id = cert.fields.subject.clone();
    check_text(TextField::MemberId, &id, NAME_LEN_MAX)?;
    if crate::tx::is_pseudonym(&id) {
        // A member by a pseudonym's name would sign for that pseudonym's demands.
        return reject_because(
            Reason::CertificateRefused { problem: CertProblem::WrongSubject },
            format!("member ids may not start with {:?}, which names pseudonyms", crate::tx::PSEUDONYM_PREFIX),
        );
    }
    let previous: Option<MemberRecord> = ctx.state.get(&member_key(&id))?;
    match &previous {
        Some(p) => {
            if let Some(r) = &p.revoked {
                return reject(Reason::MemberRevoked { member: id, revocation: r.clone() });
            }
            if cert.fields.serial <= p.serial {
                return reject(Reason::SerialNotHigher { member: id, registered: p.serial });
            }
        }
        None if !ctx.genesis.founders.contains(&id) => return open_admission(ctx, &id, certificate),
        None => {}
    }
    let record = member_record(ctx, &cert, certificate, previous);
    ctx.state.put(member_key(&id), &record);
    Ok(())
}

/// The record that registers `cert` (encoded as `bytes`) at ledger time; a renewal keeps
/// the credential of the `previous` record.
fn member_record(ctx: &Ctx<'_, '_>, cert: &Certificate, bytes: &[u8], previous: Option<MemberRecord>) -> MemberRecord {
    MemberRecord {
        id: cert.fields.subject.clone(),
        role: cert.fields.role.as_str().to_string(),
        serial: cert.fields.serial,
        certificate: bytes.to_vec(),
        signing_key: *cert.fields.signing_key.as_bytes(),
        not_after: cert.fields.not_after,
        revoked: None,
        credential: previous.as_ref().and_then(|p| p.credential),
        credential_revoked: previous.and_then(|p| p.credential_revoked),
        registered_ms: ctx.time_ms,
    }
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

/// Whether an anonymous demand's root still stands when its pseudonym asks for access:
/// `Some` denial if a revocation came since (staleness does not count: the root was
/// current when the demand was made).
pub fn root_revoked(ctx: &Ctx<'_, '_>, root: &FrBytes) -> Result<Option<Denial>, Refusal> {
    let reg = registry(ctx)?;
    Ok(match ctx.state.get::<RootRecord>(&root_key(root))? {
        None => Some(Denial::RootUnknown),
        Some(r) if r.epoch != reg.epoch => Some(Denial::RootPredatesRevocation),
        Some(_) => None,
    })
}

/// A leaf the KGC publishes: a canonical, non-zero field element.
fn leaf_value(leaf: &FrBytes) -> Result<blstrs::Scalar, Refusal> {
    match leaf.to_fr() {
        Ok(v) if !bool::from(v.is_zero()) => Ok(v),
        Ok(_) => reject(Reason::CredentialLeafZero),
        Err(e) => reject_because(Reason::CredentialLeafInvalid, e),
    }
}

/// Sets one leaf of the tree and its stored copy.
fn set_leaf(ctx: &mut Ctx<'_, '_>, index: u64, value: blstrs::Scalar) {
    ctx.tree.set(index, value);
    ctx.state.put(leaf_key(index), &FrBytes(fr_to_bytes(&value)));
}

/// Issues (or reissues) `member`'s credential: its leaf, and its anonymous leaf at the
/// index plus [`ANONYMOUS_LEAF_OFFSET`] (a reissue without one clears the old one, so no
/// leaf of outdated attributes stays usable).
pub fn issue_credential(ctx: &mut Ctx<'_, '_>, member: &str, leaf: &FrBytes, anonymous: Option<&FrBytes>) -> Exec {
    ctx.require_role(&["kgc"])?;
    let Some(mut m) = ctx.state.get::<MemberRecord>(&member_key(member))? else {
        return reject(Reason::UnknownMember { member: member.into() });
    };
    if let Some(r) = &m.revoked {
        return reject(Reason::MemberRevoked { member: member.into(), revocation: r.clone() });
    }
    let value = leaf_value(leaf)?;
    let anonymous = anonymous.map(leaf_value).transpose()?;
    let mut reg = registry(ctx)?;
    let index = match m.credential {
        Some(i) => i,
        None if reg.next_leaf >= ANONYMOUS_LEAF_OFFSET => {
            return reject_because(Reason::CredentialLeafInvalid, "the credential tree is full")
        }
        None => {
            reg.next_leaf += 1;
            reg.next_leaf - 1
        }
    };
    set_leaf(ctx, index, value);
    let had_anonymous = ctx.state.get::<FrBytes>(&leaf_key(index + ANONYMOUS_LEAF_OFFSET))?.is_some();
    match anonymous {
        Some(a) => set_leaf(ctx, index + ANONYMOUS_LEAF_OFFSET, a),
        None if had_anonymous => set_leaf(ctx, index + ANONYMOUS_LEAF_OFFSET, blstrs::Scalar::ZERO),
        None => {}
    }
    // Replacing a credential retires the roots over the old leaf, as a revocation does:
    // a proof made, or an anonymous demand pending, under attributes the member no longer
    // has does not go on counting.
    let replaced = m.credential.is_some();
    m.credential = Some(index);
    m.credential_revoked = None;
    ctx.state.put(member_key(member), &m);
    publish_root(ctx, reg, replaced)
}

fn withdraw_credential(ctx: &mut Ctx<'_, '_>, m: &mut MemberRecord, reason: &str) -> Exec {
    let Some(index) = m.credential else { return Ok(()) };
    set_leaf(ctx, index, blstrs::Scalar::ZERO);
    if ctx.state.get::<FrBytes>(&leaf_key(index + ANONYMOUS_LEAF_OFFSET))?.is_some() {
        set_leaf(ctx, index + ANONYMOUS_LEAF_OFFSET, blstrs::Scalar::ZERO);
    }
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

/// The parameters in effect: the last set the membership quorum approved, or genesis'.
pub fn parameters(state: &Overlay<'_>, genesis: &Genesis) -> Result<Parameters, LedgerError> {
    Ok(state.get::<ParametersRecord>(PARAMETERS_KEY)?.map_or_else(|| genesis.parameters(), |r| r.parameters))
}

/// The shortest and longest grant limit a parameter change may set (a minute, ten years).
pub const GRANT_DURATION_LIMITS_S: (u64, u64) = (60, 10 * 365 * 24 * 3600);

/// A member's approval of the consortium parameters `p` (any registered member in good
/// standing may give one). At the approval that brings the approvals of members in good
/// standing to the membership quorum in effect, `p` replaces the parameters in effect for
/// every later transaction: a new membership quorum counts from the next revocation,
/// admission or change on, a new grant limit from the next request for access (a request
/// in the same batch as the change was checked before its proof against the limit before
/// the batch). Refused: parameters equal to those in effect, a grant limit outside
/// [`GRANT_DURATION_LIMITS_S`], a membership quorum of 0 or above the members in good
/// standing (the consortium could never decide again), a second approval by the same
/// member. Approvals lapse after [`APPROVALS_OPEN_MS`].
pub fn change_parameters(ctx: &mut Ctx<'_, '_>, p: &Parameters) -> Exec {
    let current = parameters(ctx.state, ctx.genesis)?;
    if *p == current {
        return reject(Reason::ParametersUnchanged);
    }
    let (min, max) = GRANT_DURATION_LIMITS_S;
    if !(min..=max).contains(&p.grant_duration_max_s) {
        return reject(Reason::ParameterOutOfRange { parameter: "grant_duration_max_s".into(), min, max });
    }
    let standing = ctx.state.prefix::<MemberRecord>(MEMBER_PREFIX)?.iter().filter(|m| m.revoked.is_none()).count();
    if p.membership_quorum == 0 || p.membership_quorum as usize > standing {
        let parameter = "membership_quorum".into();
        return reject(Reason::ParameterOutOfRange { parameter, min: 1, max: standing as u64 });
    }
    let key = parameters_proposal_key(&p.digest());
    let now = ctx.time_ms;
    let mut r = match ctx.state.get::<ParametersProposal>(&key)? {
        Some(r) if !lapsed(r.opened_ms, now) && r.applied_ms.is_none() => r,
        // None yet, lapsed, or applied before (a set in effect again needs fresh approvals).
        _ => ParametersProposal { parameters: *p, opened_ms: now, approvals: Vec::new(), applied_ms: None },
    };
    let approved = approve(ctx, &mut r.approvals, |by| Reason::ParametersAlreadyApproved { by })?;
    if approved >= current.membership_quorum {
        ctx.state.put(PARAMETERS_KEY.to_vec(), &ParametersRecord { parameters: *p, since_ms: now, tx: ctx.tx_hash });
        r.applied_ms = Some(now);
    }
    ctx.state.put(key, &r);
    Ok(())
}

/// How long approvals of a revocation or an admission stay open (ledger time): 30 days
/// from the approval that opened the record.
pub const APPROVALS_OPEN_MS: u64 = 30 * 24 * 3600 * 1000;

/// Whether the approvals of a record opened at `opened_ms` have lapsed at `now_ms`.
pub(super) fn lapsed(opened_ms: u64, now_ms: u64) -> bool {
    now_ms >= opened_ms.saturating_add(APPROVALS_OPEN_MS)
}

/// Adds the sender's approval to `approvals` (refused with `already(sender)` if it
/// approved before) and returns how many of them are now by members in good standing:
/// registered and not revoked, so an approver revoked since it approved no longer counts.
pub(super) fn approve(
    ctx: &Ctx<'_, '_>,
    approvals: &mut Vec<Approval>,
    already: impl FnOnce(String) -> Reason,
) -> Result<u32, Refusal> {
    let by = ctx.sender()?.id.clone();
    if approvals.iter().any(|a| a.by == by) {
        return reject(already(by));
    }
    approvals.push(Approval { by, at_ms: ctx.time_ms, tx: ctx.tx_hash });
    let mut standing = 0u32;
    for a in approvals.iter() {
        if ctx.state.get::<MemberRecord>(&member_key(&a.by))?.is_some_and(|x| x.revoked.is_none()) {
            standing += 1;
        }
    }
    Ok(standing)
}

/// A member's approval of revoking `member` (any registered member may give one, the
/// member itself included, which is how a member leaves). The member is revoked, and its
/// credential withdrawn, at the approval that brings the approvals of members still in
/// good standing to the membership quorum ([`crate::genesis::Genesis::membership_quorum`]),
/// with the reason the first approver gave; from then on nothing it signs counts. Until
/// then the member is unaffected, and the [`RevocationRecord`] shows who approved.
/// Approvals lapse after [`APPROVALS_OPEN_MS`].
pub fn revoke_member(ctx: &mut Ctx<'_, '_>, member: &str, reason: &str) -> Exec {
    check_text(TextField::Reason, reason, 256)?;
    let Some(mut m) = ctx.state.get::<MemberRecord>(&member_key(member))? else {
        return reject(Reason::UnknownMember { member: member.into() });
    };
    if m.revoked.is_some() {
        return reject(Reason::MemberAlreadyRevoked { member: member.into() });
    }
    let now = ctx.time_ms;
    let mut r = match ctx.state.get::<RevocationRecord>(&revocation_key(member))? {
        Some(r) if !lapsed(r.opened_ms, now) => r,
        // None yet, or its approvals lapsed: this approval opens one.
        _ => RevocationRecord {
            member: member.into(),
            reason: reason.into(),
            opened_ms: now,
            approvals: Vec::new(),
            revoked_ms: None,
        },
    };
    let standing =
        approve(ctx, &mut r.approvals, |by| Reason::RevocationAlreadyApproved { member: member.into(), by })?;
    if standing >= parameters(ctx.state, ctx.genesis)?.membership_quorum {
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

/// A certified member not named at genesis asks to join ([`register_member`]): its
/// admission opens with this certificate and no approvals. Refused while one is open for
/// this very certificate (its approvals stand); a registration with another certificate,
/// or after the approvals lapsed, opens it afresh, the earlier approvals dropped.
fn open_admission(ctx: &mut Ctx<'_, '_>, member: &str, certificate: &[u8]) -> Exec {
    let digest = certificate_sha256(certificate);
    let now = ctx.time_ms;
    if let Some(a) = ctx.state.get::<AdmissionRecord>(&admission_key(member))? {
        if a.certificate_sha256 == digest && !lapsed(a.opened_ms, now) {
            return reject(Reason::AdmissionPending { member: member.into() });
        }
    }
    let record = AdmissionRecord {
        member: member.into(),
        certificate: certificate.to_vec(),
        certificate_sha256: digest,
        opened_ms: now,
        approvals: Vec::new(),
        admitted_ms: None,
    };
    ctx.state.put(admission_key(member), &record);
    Ok(())
}

/// A member's approval of admitting `member` with the certificate whose SHA-256 is
/// `certificate_sha256` (any registered member in good standing may give one). At the
/// approval that brings the approvals of members in good standing to the membership
/// quorum, the certificate is checked again at ledger time and the member registered as
/// [`register_member`] registers a founder; the [`AdmissionRecord`] keeps who approved.
/// Refused for a member registered already or revoked, without an open admission, or for
/// another certificate than the admission's (a new certificate needs fresh approvals).
/// Approvals lapse after [`APPROVALS_OPEN_MS`]: the next one opens the record afresh.
pub fn admit_member(ctx: &mut Ctx<'_, '_>, member: &str, certificate_sha256: &Hash) -> Exec {
    if let Some(m) = ctx.state.get::<MemberRecord>(&member_key(member))? {
        return match m.revoked {
            Some(revocation) => reject(Reason::MemberRevoked { member: member.into(), revocation }),
            None => reject(Reason::MemberAlreadyRegistered { member: member.into() }),
        };
    }
    let Some(mut a) = ctx.state.get::<AdmissionRecord>(&admission_key(member))? else {
        return reject(Reason::UnknownAdmission { member: member.into() });
    };
    if a.certificate_sha256 != *certificate_sha256 {
        return reject(Reason::AdmissionCertificateDiffers { member: member.into() });
    }
    let now = ctx.time_ms;
    if lapsed(a.opened_ms, now) {
        a.opened_ms = now;
        a.approvals.clear();
    }
    let standing = approve(ctx, &mut a.approvals, |by| Reason::AdmissionAlreadyApproved { member: member.into(), by })?;
    if standing >= parameters(ctx.state, ctx.genesis)?.membership_quorum {
        // Valid when it opened, the certificate may have expired while members approved.
        let cert = check_certificate(ctx, &a.certificate)?;
        let record = member_record(ctx, &cert, &a.certificate, None);
        ctx.state.put(member_key(member), &record);
        a.admitted_ms = Some(now);
    }
    ctx.state.put(admission_key(member), &a);
    Ok(())
}
