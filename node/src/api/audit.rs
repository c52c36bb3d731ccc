//! The access log as FHIR R4 `AuditEvent`s: `GET /fhir/AuditEvent`, for a dataset's owner.
//!
//! Each access record of the ledger is one `AuditEvent`: a CPC's receipt that it
//! re-encrypted a grant's records (subtype `reencrypted`, action `E`), or its record of a
//! fetch by the grant's requester, written on chain before it served the records (subtype
//! `fetched`, action `R`); both of type DICOM `110106` "Export", outcome `0`, recorded at
//! the transaction's ledger time, purpose `HRESCH` (grants share data for research); agents the
//! requester (`requestor: true`), the owner and the CPC that re-encrypted, each by member id
//! (system `urn:dualchain:member`); entities the dataset (`urn:dualchain:dataset`), the
//! grant (`urn:dualchain:grant`) and the number of records and digest of the results; the
//! source the consortium's access chain. The receipt's inclusion proof rides in extensions
//! (`urn:dualchain:inclusion-proof`: chain, height, transaction; `urn:dualchain:proof-verified`:
//! whether it checks against this node's block). The `id` is the receipt transaction's
//! hash, stable on every node.
//!
//! Break-glass: a delivery under a break-glass grant has purpose `ETREAT` and names its
//! request (`urn:dualchain:break-glass`); each break-glass request made to the owner is
//! an `AuditEvent` of its own, type DICOM `110113` "Security Alert", subtype `110127`
//! "Emergency Override Started", purpose `ETREAT`, the clinician as requestor, the
//! datasets and grants it produced and its review (pending, justified, unjustified) as
//! entities, with the request transaction's inclusion proof.
//!
//! Search parameters: `entity` (a dataset's id: only the owner's own datasets; without
//! it, all of them), `agent` (a member id), `date` (on `recorded`), `_count`, `_offset`
//! ([`super::search`]). Only the member that owns the datasets searches them, with a
//! signature or a token with `system/AuditEvent.read`. Patient-level entities are not
//! recorded on chain (a receipt names no patient), so `entity` takes datasets only.

use axum::extract::State;
use axum::http::HeaderMap;
use dualchain_crypto::cert::Role;
use dualchain_ledger::block::InclusionProof;
use dualchain_ledger::state::{AccessEvent, AccessRecord, BreakGlassRecord};
use dualchain_ledger::tx::Hash;
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, Fhir};
use super::error::{ok_json, ApiError, ApiResult};
use super::search::{Search, Searched};
use super::smart::Interaction;
use super::ApiState;
use crate::fhir::rfc3339;
use crate::runtime::Node;

fn member(id: &str, requestor: bool, role: &str) -> Value {
    json!({"who": {"identifier": {"system": "urn:dualchain:member", "value": id}}, "requestor": requestor,
        "type": {"text": role}})
}

fn purpose(code: &str, display: &str) -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code,
        "display": display}]}])
}

fn system_object(system: &str, value: String) -> Value {
    json!({"what": {"identifier": {"system": system, "value": value}},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
            "display": "System Object"}})
}

/// The extensions carrying an inclusion proof, and the event's `source`.
fn provenance(node: &Node, proof: &InclusionProof, verified: bool) -> (Value, Value) {
    let chain = format!("{:?}", proof.chain).to_lowercase();
    let extension = json!([
        {"url": "urn:dualchain:inclusion-proof", "valueString":
            format!("{chain} chain, block {}, transaction {}", proof.height, hex::encode(proof.tx_hash))},
        {"url": "urn:dualchain:proof-verified", "valueBoolean": verified},
    ]);
    let source = json!({
        "site": node.consortium.name,
        "observer": {"identifier": {"system": "urn:dualchain:chain", "value": chain}},
        "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
            "display": "Application Server"}],
    });
    (extension, source)
}

/// An access record as a FHIR `AuditEvent` (`break_glass`: the request its grant answers).
pub fn audit_event(
    node: &Node,
    record: &AccessRecord,
    proof: &InclusionProof,
    verified: bool,
    break_glass: Option<&Hash>,
) -> Value {
    let (extension, source) = provenance(node, proof, verified);
    let (subtype, display, action) = match record.event {
        AccessEvent::Reencrypted => ("reencrypted", "the CPC re-encrypted the grant's records", "E"),
        AccessEvent::Fetched => ("fetched", "the requester fetched the grant's records", "R"),
    };
    let mut entity = vec![
        {
            let mut e = system_object("urn:dualchain:dataset", hex::encode(record.dataset));
            e["detail"] = json!([
                {"type": "records delivered", "valueString": record.records.to_string()},
                {"type": "results digest", "valueString": hex::encode(record.results_digest)},
            ]);
            e
        },
        system_object("urn:dualchain:grant", hex::encode(record.grant)),
    ];
    if let Some(request) = break_glass {
        entity.push(system_object("urn:dualchain:break-glass", hex::encode(request)));
    }
    json!({
        "resourceType": "AuditEvent",
        "id": hex::encode(record.receipt_tx),
        "extension": extension,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "urn:dualchain:access-event", "code": subtype, "display": display}],
        "action": action,
        "recorded": rfc3339(record.at_ms / 1000),
        "outcome": "0",
        "purposeOfEvent": match break_glass {
            Some(_) => purpose("ETREAT", "Emergency Treatment"),
            None => purpose("HRESCH", "healthcare research"),
        },
        "agent": [
            member(&record.requester, true, "requester (grantee)"),
            member(&record.owner, false, "owner (custodian of the data)"),
            member(&record.cpc, false, "cloud privacy center (re-encrypted the records)"),
        ],
        "source": source,
        "entity": entity,
    })
}

/// A break-glass request made to the owner as a FHIR `AuditEvent` (see the module docs);
/// `datasets`: those its grants are on, in order.
pub fn break_glass_event(
    node: &Node,
    r: &BreakGlassRecord,
    datasets: &[Hash],
    proof: &InclusionProof,
    verified: bool,
) -> Value {
    let (extension, source) = provenance(node, proof, verified);
    let review = match &r.review {
        None => "pending".to_string(),
        Some(v) if v.justified => format!("justified: {}", v.note),
        Some(v) => format!("unjustified: {}", v.note),
    };
    let mut request = system_object("urn:dualchain:break-glass", hex::encode(r.id));
    request["detail"] = json!([
        {"type": "review", "valueString": review},
        {"type": "until", "valueString": rfc3339(r.until_ms / 1000)},
    ]);
    let mut entity = vec![request];
    entity.extend(datasets.iter().map(|d| system_object("urn:dualchain:dataset", hex::encode(d))));
    entity.extend(r.grants.iter().map(|g| system_object("urn:dualchain:grant", hex::encode(g.0))));
    json!({
        "resourceType": "AuditEvent",
        "id": hex::encode(r.tx),
        "extension": extension,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110113",
            "display": "Security Alert"},
        "subtype": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110127",
            "display": "Emergency Override Started"}],
        "action": "E",
        "recorded": rfc3339(r.requested_ms / 1000),
        "outcome": "0",
        "purposeOfEvent": purpose(&r.purpose, "Emergency Treatment"),
        "agent": [
            member(&r.requester, true, "clinician's institution (broke the glass)"),
            member(&r.owner, false, "owner (custodian of the data)"),
        ],
        "source": source,
        "entity": entity,
    })
}

/// A break-glass request made to an owner, as its access log shows it.
pub struct BreakGlassEntry {
    pub record: BreakGlassRecord,
    /// The datasets its grants are on, in grant order.
    pub datasets: Vec<Hash>,
    /// The request transaction's inclusion proof, and whether it checks against this
    /// node's block.
    pub proof: Option<InclusionProof>,
    pub verified: bool,
}

/// The break-glass requests made to `owner`, oldest first (for `GET /fhir/AuditEvent` and
/// the console's access log).
pub fn break_glass_log(node: &Node, owner: &str) -> Result<Vec<BreakGlassEntry>, ApiError> {
    let mut out = Vec::new();
    for record in node.ledger.break_glass_to(owner)? {
        let proof = node.ledger.inclusion_proof(&record.tx)?;
        let verified = match &proof {
            Some(p) => super::flow_routes::proof_checks(node, p)?,
            None => false,
        };
        let mut datasets = Vec::new();
        for g in &record.grants {
            if let Some(g) = node.ledger.grant(&g.0)? {
                datasets.push(g.dataset);
            }
        }
        out.push(BreakGlassEntry { record, datasets, proof, verified });
    }
    Ok(out)
}

/// `GET /fhir/AuditEvent`.
pub async fn search_audit_events(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    s.allow("AuditEvent", Interaction::Search)?;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let search = Search::parse_for(
        Searched::AuditEvent,
        s.query.as_deref().unwrap_or_default(),
        super::search::strict(&headers),
    )?;
    // The datasets searched: those named (each the searcher's own), or all of its own.
    let named = search.entities();
    let datasets: Vec<dualchain_ledger::tx::Hash> = if named.is_empty() {
        let owner = h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only data owners"))?;
        let mut ids: Vec<_> = owner.datasets.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        ids.sort();
        ids
    } else {
        let mut ids = Vec::new();
        for e in &named {
            let id = parse_id(e, "entity")?;
            match node.ledger.dataset(&id)? {
                Some(d) if d.owner == h.member.id => ids.push(id),
                Some(_) => return Err(ApiError::forbidden("not-yours", format!("dataset {e} is another member's"))),
                None => return Err(ApiError::not_found("unknown-dataset", format!("no dataset {e}"))),
            }
        }
        ids
    };
    let mut events = Vec::new();
    for id in datasets {
        for (record, proof, verified) in super::flow_routes::checked_audit(node, &id)? {
            let bg = node.ledger.grant(&record.grant)?.and_then(|g| g.break_glass);
            events.push(audit_event(node, &record, &proof, verified, bg.as_ref()));
        }
    }
    // Break-glass requests made to this owner (an `entity` search keeps those whose grants
    // are on the datasets named).
    for e in break_glass_log(node, &h.member.id)? {
        if let Some(proof) = &e.proof {
            events.push(break_glass_event(node, &e.record, &e.datasets, proof, e.verified));
        }
    }
    events.sort_by(|a, b| a["recorded"].as_str().cmp(&b["recorded"].as_str()));
    let fhir_base = format!("{}/fhir", super::api_base(node).unwrap_or_default());
    ok_json(&search.page(events, &format!("{fhir_base}/AuditEvent"), &fhir_base))
}
