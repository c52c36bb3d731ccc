//! The access log as FHIR R4 `AuditEvent`s: `GET /fhir/AuditEvent`, for a dataset's owner.
//!
//! Each access record of the ledger is one `AuditEvent`: a CPC's receipt that it
//! re-encrypted a grant's records (subtype `reencrypted`, action `E`), or its record of a
//! fetch by the grant's requester, written on chain before it served the records (subtype
//! `fetched`, action `R`); both of type DICOM `110106` "Export", outcome `0`, recorded at
//! the transaction's ledger time, purpose the demand's (`HRESCH` unless it named another); agents the
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
//! Consent: each Consent the hospital recorded is an `AuditEvent` of type `rest`, subtype
//! `create`, action `C`, the hospital as requestor, entities the Consent, the patient (a
//! Person in the role Patient) and the `CommitConsent` transactions that made it take
//! effect, the first with its inclusion proof. The chain holds the commitments only; the
//! patient and the Consent are the hospital's own knowledge, shown to it alone.
//!
//! Erasure: each dataset the hospital erased is an `AuditEvent` of type `rest`, subtype
//! `delete`, action `D`, the hospital as requestor, entities the erased dataset (records
//! erased, the tombstone's reason), for a patient's erasure the dataset that replaced it
//! and the patient, and the `EraseDataset` transaction with its inclusion proof; from the
//! hospital's erasure journal ([`crate::member::erasure`]). The chain's tombstone names
//! no patient; the journal is the hospital's own. An erased dataset's earlier deliveries
//! stay in the log, without the patients they delivered (that link is destroyed with the
//! dataset's opening).
//!
//! Search parameters: `entity` (a dataset's id: only the owner's own datasets; or a
//! patient's reference, `Patient/<id>`: its consent events; without it, all of them),
//! `agent` (a member id), `date` (on `recorded`), `_count`, `_offset`
//! ([`super::search`]). Only the member that owns the datasets searches them, with a
//! signature or a token with `system/AuditEvent.read`. The chain names no patient (a
//! receipt counts records); the owner's node notes what each grant's re-key selected, so
//! its deliveries carry the patients they delivered as entities, and a patient's entity
//! finds the deliveries of its records and its consent events.

use axum::extract::State;
use axum::http::HeaderMap;
use dualchain_crypto::cert::Role;
use dualchain_ledger::block::InclusionProof;
use dualchain_ledger::state::{AccessEvent, AccessRecord, BreakGlassRecord, GrantRecord};
use dualchain_ledger::tx::Hash;
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, Fhir};
use super::error::{ok_json, ApiError, ApiResult};
use super::search::{Search, Searched};
use super::smart::Interaction;
use super::ApiState;
use crate::fhir::rfc3339;
use crate::member::erasure::Erasure;
use crate::runtime::{Hosted, Node};

fn member(id: &str, requestor: bool, role: &str) -> Value {
    json!({"who": {"identifier": {"system": "urn:dualchain:member", "value": id}}, "requestor": requestor,
        "type": {"text": role}})
}

fn purpose_of_use(code: &str, display: &str) -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code,
        "display": display}]}])
}

fn system_object(system: &str, value: String) -> Value {
    json!({"what": {"identifier": {"system": system, "value": value}},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
            "display": "System Object"}})
}

/// The patients whose records grant `g` delivered, as the owner references them (empty
/// where the owner no longer keeps the dataset).
pub fn delivered_patients(node: &Node, h: &Hosted, g: &GrantRecord) -> Vec<String> {
    let Some(owner) = &h.owner else { return Vec::new() };
    let Some(d) = owner.datasets.lock().unwrap_or_else(|p| p.into_inner()).get(&g.dataset).cloned() else {
        return Vec::new();
    };
    // What its re-key selected, as noted by the owner's node; for grants of earlier builds,
    // what its demand or scope selects.
    if let Some(p) = d.delivered_patients(&g.id) {
        return p;
    }
    let selected: Box<dyn Fn(usize) -> bool> = match g.break_glass {
        Some(request) => {
            let scope = node
                .ledger
                .break_glass(&request)
                .ok()
                .flatten()
                .map(|r| super::emergency_routes::record_json(&node.ledger, &h.member, &r)["scope"]["patients"].clone())
                .unwrap_or_default();
            let named: Vec<String> = serde_json::from_value(scope).unwrap_or_default();
            let patients = d.patients.clone();
            Box::new(move |i| named.contains(&patients[i]))
        }
        None => match node.ledger.demand(&g.demand).ok().flatten() {
            Some(demand) => {
                let d = d.clone();
                Box::new(move |i| demand.requirement.matches(&d.records[i]))
            }
            None => return Vec::new(),
        },
    };
    let mut out: Vec<String> = (0..d.patients.len()).filter(|i| selected(*i)).map(|i| d.patients[i].clone()).collect();
    out.sort();
    out.dedup();
    out
}

pub use super::flow_routes::purpose_of;

/// An access record as a FHIR `AuditEvent` (`break_glass`: the request its grant answers).
/// `purpose`: what the grant serves ([`purpose_of`]); `patients`: whose records it
/// delivered, each an entity (a Person in the role Patient), for the owner's eyes only.
pub fn audit_event(
    node: &Node,
    record: &AccessRecord,
    proof: &InclusionProof,
    verified: bool,
    break_glass: Option<&Hash>,
    purpose: &str,
    patients: &[String],
) -> Value {
    let (extension, source) = super::flow_routes::proof_extension(node, proof, verified);
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
    entity.extend(patients.iter().map(|p| patient_entity(p)));
    json!({
        "resourceType": "AuditEvent",
        "id": hex::encode(record.receipt_tx),
        "extension": extension,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "urn:dualchain:access-event", "code": subtype, "display": display}],
        "action": action,
        "recorded": rfc3339(record.at_ms / 1000),
        "outcome": "0",
        "purposeOfEvent": match purpose {
            "ETREAT" => purpose_of_use("ETREAT", "Emergency Treatment"),
            "TREAT" => purpose_of_use("TREAT", "treatment"),
            "PUBHLTH" => purpose_of_use("PUBHLTH", "public health"),
            "HOPERAT" => purpose_of_use("HOPERAT", "healthcare operations"),
            _ => purpose_of_use("HRESCH", "healthcare research"),
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
    let (extension, source) = super::flow_routes::proof_extension(node, proof, verified);
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
        "purposeOfEvent": purpose_of_use(&r.purpose, "Emergency Treatment"),
        "agent": [
            member(&r.requester, true, "clinician's institution (broke the glass)"),
            member(&r.owner, false, "owner (custodian of the data)"),
        ],
        "source": source,
        "entity": entity,
    })
}

/// A Consent the hospital recorded as a FHIR `AuditEvent` (see the module docs); `proof`:
/// the first of its commitments' transactions, with whether it checks against this node.
pub fn consent_event(node: &Node, owner: &str, consent: &Value, proof: Option<(&InclusionProof, bool)>) -> Value {
    let id = consent["id"].as_str().unwrap_or_default();
    let patient = consent["patient"]["reference"].as_str().unwrap_or_default();
    let mut entity = vec![
        json!({"what": {"reference": format!("Consent/{id}")},
            "type": {"system": "http://hl7.org/fhir/resource-types", "code": "Consent", "display": "Consent"},
            "detail": [{"type": "status", "valueString": consent["status"].as_str().unwrap_or_default()}]}),
        patient_entity(patient),
    ];
    entity.extend(consent_txs(consent).map(|t| system_object("urn:dualchain:tx", t.to_string())));
    let event = json!({
        "resourceType": "AuditEvent",
        "id": format!("consent-{id}"),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
            "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "create", "display": "create"}],
        "action": "C",
        "recorded": consent["meta"]["lastUpdated"].as_str().unwrap_or("1970-01-01T00:00:00Z"),
        "outcome": "0",
        "agent": [member(owner, true, "hospital (recorded the patient's consent)")],
        "entity": entity,
    });
    with_source(node, event, owner, proof)
}

/// An erasure the hospital made as a FHIR `AuditEvent` (see the module docs); `proof`:
/// its `EraseDataset` transaction's, with whether it checks against this node.
pub fn erasure_event(node: &Node, owner: &str, e: &Erasure, proof: Option<(&InclusionProof, bool)>) -> Value {
    let mut erased = system_object("urn:dualchain:dataset", hex::encode(e.dataset));
    erased["detail"] = json!([
        {"type": "records erased", "valueString": e.records.to_string()},
        {"type": "reason", "valueString": e.reason},
    ]);
    let mut entity = vec![erased];
    if let Some(new) = e.replaced_by {
        let mut d = system_object("urn:dualchain:dataset", hex::encode(new));
        d["detail"] = json!([{"type": "replaces", "valueString": hex::encode(e.dataset)}]);
        entity.push(d);
    }
    if let Some(p) = &e.patient {
        entity.push(patient_entity(p));
    }
    entity.push(system_object("urn:dualchain:tx", hex::encode(e.tx)));
    let what =
        if e.patient.is_some() { "hospital (erased the patient's records)" } else { "hospital (erased the dataset)" };
    let event = json!({
        "resourceType": "AuditEvent",
        "id": hex::encode(e.tx),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
            "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "delete", "display": "delete"}],
        "action": "D",
        "recorded": rfc3339(e.at_ms / 1000),
        "outcome": "0",
        "agent": [member(owner, true, what)],
        "entity": entity,
    });
    with_source(node, event, owner, proof)
}

/// `event` with its transaction's inclusion proof and the chain as source, or, without a
/// proof (not final yet), the hospital as source.
fn with_source(node: &Node, mut event: Value, owner: &str, proof: Option<(&InclusionProof, bool)>) -> Value {
    match proof {
        Some((p, verified)) => {
            let (extension, source) = super::flow_routes::proof_extension(node, p, verified);
            event["extension"] = extension;
            event["source"] = source;
        }
        None => {
            event["source"] = json!({"site": node.consortium.name,
                "observer": {"identifier": {"system": "urn:dualchain:member", "value": owner}}});
        }
    }
    event
}

/// A transaction's inclusion proof, and whether it checks against this node's block.
pub(super) fn checked_proof(node: &Node, tx: &Hash) -> Result<Option<(InclusionProof, bool)>, ApiError> {
    match node.ledger.inclusion_proof(tx)? {
        Some(p) => {
            let verified = super::flow_routes::proof_checks(node, &p)?;
            Ok(Some((p, verified)))
        }
        None => Ok(None),
    }
}

/// The erasure events of `owner`'s journal.
pub(super) fn erasure_log(node: &Node, owner: &crate::agents::OwnerNode) -> Result<Vec<Value>, ApiError> {
    let erasures: Vec<Erasure> = owner.erasures.lock().unwrap_or_else(|p| p.into_inner()).all().cloned().collect();
    let mut events = Vec::with_capacity(erasures.len());
    for e in &erasures {
        let proof = checked_proof(node, &e.tx)?;
        events.push(erasure_event(node, &owner.member.id, e, proof.as_ref().map(|(p, v)| (p, *v))));
    }
    Ok(events)
}

/// A patient as an `AuditEvent` entity: a Person in the role Patient.
fn patient_entity(reference: &str) -> Value {
    json!({"what": {"reference": reference},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}})
}

/// The `CommitConsent` transactions a recorded Consent is tagged with, in hex.
fn consent_txs(consent: &Value) -> impl Iterator<Item = &str> {
    consent["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == "urn:dualchain:tx")
        .filter_map(|t| t["code"].as_str())
}

/// The consent events of `owner`'s recorded Consents.
pub(super) fn consent_log(node: &Node, owner: &crate::agents::OwnerNode) -> Result<Vec<Value>, ApiError> {
    let consents: Vec<Value> =
        owner.consents.lock().unwrap_or_else(|p| p.into_inner()).all().map(|(c, _)| c.clone()).collect();
    let mut events = Vec::with_capacity(consents.len());
    for c in consents {
        let proof = match consent_txs(&c).next().and_then(|t| parse_id(t, "tx").ok()) {
            Some(tx) => checked_proof(node, &tx)?,
            None => None,
        };
        events.push(consent_event(node, &owner.member.id, &c, proof.as_ref().map(|(p, v)| (p, *v))));
    }
    Ok(events)
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
    // The datasets searched: those named (each the searcher's own), or all of its own
    // (patients named are matched among their events' entities).
    let named: Vec<String> =
        search.entities().into_iter().filter(|e| !e.starts_with("Patient/") && !e.starts_with("urn:uuid:")).collect();
    let datasets: Vec<dualchain_ledger::tx::Hash> = if named.is_empty() {
        let owner = h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only data owners"))?;
        let mut ids: Vec<_> = owner.datasets.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        // Erased datasets are forgotten here, and their deliveries stay in the log.
        ids.extend(owner.erasures.lock().unwrap_or_else(|p| p.into_inner()).all().map(|e| e.dataset));
        ids.sort();
        ids.dedup();
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
            let g = node.ledger.grant(&record.grant)?;
            let bg = g.as_ref().and_then(|g| g.break_glass);
            let purpose = g.as_ref().map(|g| purpose_of(node, g)).unwrap_or_default();
            let patients = g.as_ref().map(|g| delivered_patients(node, h, g)).unwrap_or_default();
            events.push(audit_event(node, &record, &proof, verified, bg.as_ref(), &purpose, &patients));
        }
    }
    // Break-glass requests made to this owner (an `entity` search keeps those whose grants
    // are on the datasets named).
    for e in break_glass_log(node, &h.member.id)? {
        if let Some(proof) = &e.proof {
            events.push(break_glass_event(node, &e.record, &e.datasets, proof, e.verified));
        }
    }
    if let Some(owner) = &h.owner {
        events.extend(consent_log(node, owner)?);
        events.extend(erasure_log(node, owner)?);
    }
    events.sort_by(|a, b| a["recorded"].as_str().cmp(&b["recorded"].as_str()));
    let fhir_base = format!("{}/fhir", super::api_base(node).unwrap_or_default());
    ok_json(&search.page(events, &format!("{fhir_base}/AuditEvent"), &fhir_base))
}
