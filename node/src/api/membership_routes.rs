//! Membership by quorum (issue 19; the ledger's side is `registry` in `dualchain_ledger`):
//! `POST /members/{id}/revoke` and `POST /members/{id}/admit`, each one member's approval
//! of revoking a member or of admitting one not named at genesis, and
//! `GET /members/{id}/admission`, a pending (or completed) admission with the certificate
//! it is for, which an approver checks before approving; `POST /audit-cases` and
//! `GET /audit-cases/{id}`, one member's approval of opening who made an anonymous demand
//! and the case as it stands. Any member may call them through its own node; the ledger
//! counts approvals of members in good standing against the consortium's membership
//! quorum (consortium.toml's `revocation_quorum`).

use axum::extract::{Path, State};
use dualchain_crypto::cert::Certificate;
use dualchain_crypto::Codec;
use dualchain_ledger::state::AdmissionRecord;
use dualchain_ledger::tx::{Outcome, TxKind};
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, Signed};
use super::error::{ok_json, ApiError, ApiResult};
use super::wire::{final_json, AdmitSpec, RevokeSpec};
use super::ApiState;
use crate::runtime::Node;

/// `GET /consortium/parameters`: the parameters in effect (`grant_duration_max_s`,
/// `membership_quorum`), and `changed: {since_ms, tx}` once members changed genesis'.
pub async fn get_parameters(State(api): State<ApiState>, _s: Signed) -> ApiResult {
    ok_json(&parameters_json(&api.node)?)
}

fn parameters_json(node: &Node) -> Result<Value, ApiError> {
    let (p, record) = node.ledger.parameters()?;
    Ok(json!({
        "grant_duration_max_s": p.grant_duration_max_s,
        "membership_quorum": p.membership_quorum,
        "changed": record.map(|r| json!({"since_ms": r.since_ms, "tx": hex::encode(r.tx)})),
    }))
}

/// `POST /consortium/parameters` with `{grant_duration_max_s, membership_quorum}`: this
/// member approves that parameter set (`registry::change_parameters`). At the membership
/// quorum in effect it replaces the parameters in effect. The answer: the transaction's
/// outcome, `proposal: {approvals, quorum, applied}` and `in_effect` (as `GET`).
pub async fn change_parameters(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let p: dualchain_ledger::state::Parameters = s.json()?;
    let quorum = node.ledger.parameters()?.0.membership_quorum;
    let f = h
        .client
        .submit(TxKind::ChangeParameters {
            grant_duration_max_s: p.grant_duration_max_s,
            membership_quorum: p.membership_quorum,
        })
        .await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the parameter change: {reason}")));
    }
    let mut v = final_json(&f);
    if let Some(r) = node.ledger.parameters_proposal(&p)? {
        v["proposal"] = json!({
            "parameters": r.parameters, "opened_ms": r.opened_ms, "approvals": r.approvals,
            "quorum": quorum, "applied": r.applied_ms.is_some(),
        });
    }
    v["in_effect"] = parameters_json(node)?;
    ok_json(&v)
}

/// `POST /members/{id}/revoke`: this member approves revoking member `id`. Once members
/// of the consortium's membership quorum approved (`registry::revoke_member`), nothing
/// the member signs counts on the ledger, and every node refuses its signed calls. The
/// answer says whether this approval completed the revocation, and who approved so far:
/// `revocation: {reason, approvals: [{by, at_ms, tx}], quorum, revoked}`.
pub async fn revoke_member(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let spec: RevokeSpec = if s.body.is_empty() { RevokeSpec::default() } else { s.json()? };
    match node.ledger.member(&id)? {
        None => return Err(ApiError::not_found("unknown-member", format!("{id} is not a registered member"))),
        Some(m) if m.revoked.is_some() => {
            return Err(ApiError::conflict("revoked", format!("{id} is already revoked")))
        }
        Some(_) => {}
    }
    let reason = if spec.reason.is_empty() { format!("revoked by {}", h.member.id) } else { spec.reason };
    let f = h.client.submit(TxKind::RevokeMember { member: id.clone(), reason }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the revocation: {reason}")));
    }
    let mut v = final_json(&f);
    // As of the approval's block at this node's ledger (a later approval may have landed).
    if let Some(r) = node.ledger.revocation(&id)? {
        let quorum = node.ledger.parameters()?.0.membership_quorum;
        v["revocation"] = json!({
            "reason": r.reason, "approvals": r.approvals, "quorum": quorum, "revoked": r.revoked_ms.is_some(),
        });
    }
    ok_json(&v)
}

/// `POST /members/{id}/admit` with `{certificate_sha256}`: this member approves admitting
/// `id`, a member not named at genesis whose registration opened an admission, with the
/// certificate of that SHA-256 (the one `dualchain issue` printed; `GET
/// /members/{id}/admission` shows it). Once members of the membership quorum approved that
/// certificate (`registry::admit_member`), `id` is registered. The answer:
/// `admission: {certificate_sha256, opened_ms, approvals: [{by, at_ms, tx}], quorum,
/// admitted}`.
pub async fn admit_member(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let spec: AdmitSpec = s.json()?;
    let certificate_sha256 = parse_id(&spec.certificate_sha256, "certificate_sha256")?;
    if let Some(m) = node.ledger.member(&id)? {
        return Err(match m.revoked {
            Some(_) => ApiError::conflict("revoked", format!("{id} is revoked; it is never admitted again")),
            None => ApiError::conflict("registered", format!("{id} is a registered member already")),
        });
    }
    let pending = pending_admission(node, &id)?;
    if pending.certificate_sha256 != certificate_sha256 {
        return Err(ApiError::conflict(
            "certificate-differs",
            format!(
                "{id}'s admission is for the certificate of SHA-256 {}, not {}",
                hex::encode(pending.certificate_sha256),
                spec.certificate_sha256
            ),
        ));
    }
    let f = h.client.submit(TxKind::AdmitMember { member: id.clone(), certificate_sha256 }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the admission: {reason}")));
    }
    let mut v = final_json(&f);
    // As of the approval's block at this node's ledger (a later approval may have landed).
    if let Some(r) = node.ledger.admission(&id)? {
        v["admission"] = admission_json(node, &r);
    }
    ok_json(&v)
}

/// `GET /members/{id}/admission`: the admission of `id` as this node's ledger holds it,
/// with what its certificate certifies (subject, role, serial, validity, keys), so that
/// an approver checks them, and the digest it approves, before `POST .../admit`.
pub async fn get_admission(State(api): State<ApiState>, Path(id): Path<String>, _s: Signed) -> ApiResult {
    let node = &api.node;
    let r = pending_admission(node, &id)?;
    let mut v = admission_json(node, &r);
    let cert = Certificate::from_bytes(&r.certificate).map_err(ApiError::internal)?;
    let f = &cert.fields;
    v["certificate"] = json!({
        "subject": f.subject, "role": f.role.as_str(), "serial": f.serial,
        "not_before": f.not_before, "not_after": f.not_after,
        "signing_key": hex::encode(f.signing_key.as_bytes()),
        "delegating_key": hex::encode(f.delegating_key.to_bytes()),
    });
    ok_json(&v)
}

fn pending_admission(node: &Node, id: &str) -> Result<AdmissionRecord, ApiError> {
    node.ledger.admission(id)?.ok_or_else(|| {
        ApiError::not_found("unknown-admission", format!("no admission of {id} is open: its node registers it first"))
    })
}

fn admission_json(node: &Node, r: &AdmissionRecord) -> Value {
    let quorum =
        node.ledger.parameters().map_or_else(|_| node.ledger.genesis().membership_quorum(), |p| p.0.membership_quorum);
    json!({
        "member": r.member,
        "certificate_sha256": hex::encode(r.certificate_sha256),
        "opened_ms": r.opened_ms,
        "approvals": r.approvals,
        "quorum": quorum,
        "admitted": r.admitted_ms.is_some(),
    })
}

/// `POST /audit-cases` with `{pseudonym, case}`: this member approves opening who made the
/// anonymous demand of `pseudonym`, for the reason `case` (`contracts::audit`). At the
/// membership quorum the audit authorities' nodes give their decryption shares, and the
/// ledger records the member once t of them are in. The answer: the transaction's
/// outcome and the case as `GET /audit-cases/{id}` shows it.
pub async fn open_audit_case(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let spec: super::wire::AuditCaseSpec = s.json()?;
    let f = h.client.submit(TxKind::OpenAudit { pseudonym: spec.pseudonym.clone(), case: spec.case.clone() }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the approval: {reason}")));
    }
    let id = dualchain_ledger::contracts::audit::case_id(&spec.pseudonym, &spec.case);
    let mut v = final_json(&f);
    v["case"] = audit_case_json(node, &id)?;
    ok_json(&v)
}

/// `GET /audit-cases/{id}`: an audit case, its approvals and quorum, the authorities that
/// gave their share, and what it opened (`opening.member`).
pub async fn get_audit_case(State(api): State<ApiState>, Path(id): Path<String>, _s: Signed) -> ApiResult {
    let id = parse_id(&id, "audit case")?;
    ok_json(&audit_case_json(&api.node, &id)?)
}

fn audit_case_json(node: &Node, id: &dualchain_ledger::tx::Hash) -> Result<Value, ApiError> {
    let c = node.ledger.audit_case(id)?.ok_or_else(|| ApiError::not_found("unknown-audit-case", "no such case"))?;
    Ok(json!({
        "id": hex::encode(c.id), "pseudonym": c.pseudonym, "case": c.case, "opened_ms": c.opened_ms,
        "approvals": c.approvals, "quorum": node.ledger.parameters()?.0.membership_quorum,
        "approved_ms": c.approved_ms, "shares_from": c.shares.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        "opening": c.opening,
    }))
}
