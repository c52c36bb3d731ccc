//! Break-glass over the API (the contract: `dualchain_ledger::contracts::emergency`; the
//! owner's reaction: [`crate::agents::owner`]):
//!
//! - `POST /break-glass`: a clinician's hospital asks another hospital for emergency
//!   access to named patients' records (`ETREAT`), with a justification; both sealed to
//!   the owner. Final on chain before any data flows.
//! - `GET /break-glass/{id}` (`?wait=`: until the owner's grants are there): the request
//!   for its clinician or its owner; the owner also sees the opened scope.
//! - `GET /break-glass` (`?pending=true`): the owner's review queue, each entry with its
//!   opened scope.
//! - `POST /break-glass/{id}/review`: the owner's reviewer marks the use justified or not
//!   (an unjustified one ends its grants; `revoke_credential` asks the KGC to withdraw the
//!   clinician's credential).
//!
//! The records of a break-glass grant are fetched as any grant's: `GET /grants/{id}/records`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dualchain_crypto::cert::Role;
use dualchain_ledger::contracts::emergency;
use dualchain_ledger::state::BreakGlassRecord;
use dualchain_ledger::tx::{Hash, Outcome, SignedTx, TxKind};
use dualchain_ledger::Ledger;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, poll, wait_param, Signed};
use super::error::{fhir_json, ok_json, ApiError, ApiResult};
use super::wire::final_json;
use super::ApiState;
use crate::member::emergency::Scope;
use crate::member::Member;
use crate::runtime::unix_ms;

/// A break-glass request as a clinician's hospital posts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassSpec {
    /// The hospital holding the records.
    pub owner: String,
    /// The patients, as the owner references them (`Patient/...`).
    pub patients: Vec<String>,
    pub justification: String,
    /// HL7 v3 PurposeOfUse (`ETREAT`, the default).
    #[serde(default = "etreat")]
    pub purpose: String,
    /// How long the access lasts (default 4 hours, at most 12).
    #[serde(default = "four_hours")]
    pub duration_s: u64,
}

fn etreat() -> String {
    "ETREAT".into()
}
fn four_hours() -> u64 {
    4 * 3600
}

/// A reviewer's verdict.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSpec {
    pub justified: bool,
    /// Public on chain (every member reads it): no patient details.
    pub note: String,
    #[serde(default)]
    pub revoke_credential: bool,
}

pub async fn post_break_glass(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let spec: BreakGlassSpec = s.json()?;
    if !emergency::PURPOSES.contains(&spec.purpose.as_str()) {
        return Err(ApiError::invalid(
            "bad-purpose",
            format!("break-glass serves the purposes of use {}", emergency::PURPOSES.join(", ")),
        ));
    }
    match node.ledger.member(&spec.owner)? {
        Some(m) if m.role == "hospital" && m.revoked.is_none() && m.id != h.member.id => {}
        _ => return Err(ApiError::invalid("bad-owner", format!("{} is not another active hospital", spec.owner))),
    }
    let mut rng = rand::rngs::OsRng;
    let scope = Scope::new(&mut rng, spec.patients, spec.justification)
        .map_err(|e| ApiError::invalid("bad-scope", format!("{e:#}")))?;
    let (sealed_scope, scope_digest) = scope.seal(&mut rng, &node.ibe, &spec.owner).map_err(ApiError::internal)?;
    let mut request = [0u8; 32];
    rng.fill_bytes(&mut request);
    let kind = TxKind::BreakGlass {
        request,
        owner: spec.owner,
        purpose: spec.purpose,
        duration_s: spec.duration_s,
        scope_digest,
        sealed_scope,
    };
    let f = h.client.submit(kind).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable(
            "rejected",
            format!("the ledger rejected the break-glass request: {reason}"),
        ));
    }
    let mut v = final_json(&f);
    v["request"] = json!(hex::encode(request));
    Ok(fhir_json(StatusCode::CREATED, &v))
}

pub async fn get_break_glass(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let id = parse_id(&id, "break-glass request")?;
    let wait = wait_param(node, &s)?;
    let ledger = node.ledger.clone();
    let bg = ledger.break_glass(&id)?.ok_or_else(|| ApiError::not_found("unknown-request", "no such request"))?;
    if bg.requester != h.member.id && bg.owner != h.member.id {
        return Err(ApiError::forbidden("not-yours", "only its clinician and its owner see a break-glass request"));
    }
    let answered = |r: &BreakGlassRecord| !r.grants.is_empty() || r.review.is_some() || unix_ms() >= r.until_ms;
    let bg = poll(wait, || Ok(ledger.break_glass(&id)?.filter(answered))).await?.unwrap_or(bg);
    ok_json(&record_json(&ledger, &h.member, &bg))
}

pub async fn list_break_glass(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let pending = match s.param("pending").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("bad-parameter", "pending is true or false")),
    };
    let queue: Vec<Value> = node
        .ledger
        .break_glass_to(&h.member.id)?
        .iter()
        .filter(|r| !pending || r.review.is_none())
        .map(|r| record_json(&node.ledger, &h.member, r))
        .collect();
    ok_json(&json!({"owner": h.member.id, "requests": queue}))
}

pub async fn review_break_glass(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let id = parse_id(&id, "break-glass request")?;
    let spec: ReviewSpec = s.json()?;
    let f = review(node, h, id, spec).await?;
    ok_json(&final_json(&f))
}

/// Files a review of break-glass request `id` as the hosted owner `h`; refusals by name.
pub async fn review(
    node: &crate::runtime::Node,
    h: &crate::runtime::Hosted,
    id: Hash,
    spec: ReviewSpec,
) -> Result<crate::member::client::Final, ApiError> {
    let bg = node.ledger.break_glass(&id)?.ok_or_else(|| ApiError::not_found("unknown-request", "no such request"))?;
    if bg.owner != h.member.id {
        return Err(ApiError::forbidden("not-yours", format!("only {} reviews this request", bg.owner)));
    }
    if bg.review.is_some() {
        return Err(ApiError::conflict("reviewed", "the request is already reviewed"));
    }
    let kind = TxKind::ReviewBreakGlass {
        request: id,
        justified: spec.justified,
        note: spec.note,
        revoke_credential: spec.revoke_credential,
    };
    let f = h.client.submit(kind).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the review: {reason}")));
    }
    Ok(f)
}

/// A request as JSON for `me`; its owner also gets the opened scope (patients and
/// justification), read from the request's transaction on the ledger.
pub fn record_json(ledger: &Ledger, me: &Member, r: &BreakGlassRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["pending"] = json!(r.review.is_none());
    if r.owner == me.id {
        v["scope"] = match opened_scope(ledger, me, r) {
            Ok(s) => json!({"patients": s.patients, "justification": s.justification}),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
    }
    v
}

fn opened_scope(ledger: &Ledger, me: &Member, r: &BreakGlassRecord) -> anyhow::Result<Scope> {
    let (_, entry) =
        ledger.tx(&r.tx)?.ok_or_else(|| anyhow::anyhow!("the request's transaction is not on this ledger"))?;
    let stx = SignedTx::from_bytes(&entry.tx).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let TxKind::BreakGlass { sealed_scope, scope_digest, .. } = stx.tx.kind else {
        anyhow::bail!("the request's transaction is not a break-glass request");
    };
    Scope::open(me.ibe_key()?, &sealed_scope, &scope_digest)
}
