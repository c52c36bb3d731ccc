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
//! Search parameters: `entity` (a dataset's id: only the owner's own datasets; without
//! it, all of them), `agent` (a member id), `date` (on `recorded`), `_count`, `_offset`
//! ([`super::search`]). Only the member that owns the datasets searches them, with a
//! signature or a token with `system/AuditEvent.read`. Patient-level entities are not
//! recorded on chain (a receipt names no patient), so `entity` takes datasets only.

use axum::extract::State;
use axum::http::HeaderMap;
use dualchain_crypto::cert::Role;
use dualchain_ledger::block::InclusionProof;
use dualchain_ledger::state::{AccessEvent, AccessRecord};
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, Fhir};
use super::error::{ok_json, ApiError, ApiResult};
use super::search::{Search, Searched};
use super::smart::Interaction;
use super::ApiState;
use crate::fhir::rfc3339;
use crate::runtime::Node;

/// An access record as a FHIR `AuditEvent`.
pub fn audit_event(node: &Node, record: &AccessRecord, proof: &InclusionProof, verified: bool) -> Value {
    let member = |id: &str, requestor: bool, role: &str| {
        json!({"who": {"identifier": {"system": "urn:dualchain:member", "value": id}}, "requestor": requestor,
            "type": {"text": role}})
    };
    let chain = format!("{:?}", proof.chain).to_lowercase();
    let (subtype, display, action) = match record.event {
        AccessEvent::Reencrypted => ("reencrypted", "the CPC re-encrypted the grant's records", "E"),
        AccessEvent::Fetched => ("fetched", "the requester fetched the grant's records", "R"),
    };
    json!({
        "resourceType": "AuditEvent",
        "id": hex::encode(record.receipt_tx),
        "extension": [
            {"url": "urn:dualchain:inclusion-proof", "valueString":
                format!("{chain} chain, block {}, transaction {}", proof.height, hex::encode(proof.tx_hash))},
            {"url": "urn:dualchain:proof-verified", "valueBoolean": verified},
        ],
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "urn:dualchain:access-event", "code": subtype, "display": display}],
        "action": action,
        "recorded": rfc3339(record.at_ms / 1000),
        "outcome": "0",
        "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": "HRESCH", "display": "healthcare research"}]}],
        "agent": [
            member(&record.requester, true, "requester (grantee)"),
            member(&record.owner, false, "owner (custodian of the data)"),
            member(&record.cpc, false, "cloud privacy center (re-encrypted the records)"),
        ],
        "source": {
            "site": node.consortium.name,
            "observer": {"identifier": {"system": "urn:dualchain:chain", "value": chain}},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                "display": "Application Server"}],
        },
        "entity": [
            {"what": {"identifier": {"system": "urn:dualchain:dataset", "value": hex::encode(record.dataset)}},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                    "display": "System Object"},
                "detail": [
                    {"type": "records delivered", "valueString": record.records.to_string()},
                    {"type": "results digest", "valueString": hex::encode(record.results_digest)},
                ]},
            {"what": {"identifier": {"system": "urn:dualchain:grant", "value": hex::encode(record.grant)}},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                    "display": "System Object"}},
        ],
    })
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
            events.push(audit_event(node, &record, &proof, verified));
        }
    }
    let fhir_base = format!("{}/fhir", super::api_base(node).unwrap_or_default());
    ok_json(&search.page(events, &format!("{fhir_base}/AuditEvent"), &fhir_base))
}
