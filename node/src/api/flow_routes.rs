//! The sharing flow: `POST /demands`, `GET /demands/{id}`, `POST /access` (the node proves
//! the access policy), `GET /grants/{id}`, `GET /grants/{id}/records` (fetched from the CPC,
//! decrypted, returned as a FHIR `searchset` Bundle), `POST /grants/{id}/revoke`,
//! `GET /datasets/{id}` and `GET /audit/{dataset}` (access records with their inclusion
//! proofs checked against this node's blocks).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dualchain_crypto::cbsre::Reencrypted;
use dualchain_crypto::cert::Role;
use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_ledger::block::InclusionProof;
use dualchain_ledger::state::{AccessEvent, AccessRecord, GrantRecord};
use dualchain_ledger::tx::{Hash, Outcome, TxKind};
use dualchain_ledger::Ledger;
use rand::RngCore;
use serde_json::{json, Value};

use super::auth::{hosted_as, parse_id, poll, wait_param, Signed};
use super::error::{fhir_json, ok_json, ApiError, ApiResult};
use super::wire::{decode_list, final_json, AccessSpec, DemandSpec, RevokeSpec};
use super::ApiState;
use crate::agents::FetchRequest;
use crate::member::emergency::{Subjects, SUBJECTS_AAD};
use crate::member::pseudonym::{Pseudonyms, PSEUDONYMS_AAD};
use crate::member::{anonymous, sharing};
use crate::runtime::{unix_ms, Hosted, Node};

pub async fn post_demand(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let spec: DemandSpec = s.json()?;
    let dataset = parse_id(&spec.dataset, "dataset")?;
    // A registration final at the owner's node reaches this node's ledger moments later.
    let ledger = node.ledger.clone();
    if poll(Duration::from_secs(5), || Ok(ledger.dataset(&dataset)?)).await?.is_none() {
        return Err(ApiError::not_found("unknown-dataset", "no such dataset on the ledger"));
    }
    let (requirement, purpose) = (spec.requirement()?, spec.purpose()?);
    if spec.anonymous {
        return anonymous_demand(node, h, dataset, requirement, purpose).await;
    }
    let mut id = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut id);
    // Where this member could also ask anonymously, the demand spends one of its
    // credential's nullifiers, as an anonymous demand would (one budget for both).
    let store = anonymous::OneTimeStore::new(&node.data_dir);
    let inputs = anonymous::NamedInputs {
        ledger: &node.ledger,
        compute: node.compute,
        pk: node.demand_nullifier_pk.clone(),
        store: &store,
        pending: &node.named_nullifiers,
    };
    let named = anonymous::named_nullifier(&h.member, inputs, &dataset, unix_ms())
        .await
        .map_err(|e| ApiError::unprocessable("demand-nullifier", format!("{e:#}")))?;
    let (nullifier, _hold) = match named {
        Some((n, hold, took)) => {
            node.agent_metrics.proved("demand-nullifier", took);
            (Some(n), Some(hold))
        }
        None => (None, None),
    };
    let f = h.client.submit(TxKind::Demand { demand: id, dataset, requirement, purpose, nullifier }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the demand: {reason}")));
    }
    let mut v = final_json(&f);
    v["demand"] = json!(hex::encode(id));
    Ok(fhir_json(StatusCode::CREATED, &v))
}

/// `POST /demands` with `"anonymous": true`: the demand made by a one-time key with an
/// anonymous policy proof (`member::anonymous`); the answer names the pseudonym.
async fn anonymous_demand(
    node: &Arc<Node>,
    h: &Hosted,
    dataset: Hash,
    requirement: dualchain_prover::supply::Requirement,
    purpose: dualchain_ledger::consent::Purpose,
) -> ApiResult {
    let pk = node.anonymous_pk.clone().ok_or_else(|| {
        ApiError::conflict("no-anonymous-path", "this consortium has no anonymous path (assemble --anonymous)")
    })?;
    let index = open_index(h, &node.ledger, dataset)
        .await?
        .map_err(|e| ApiError::forbidden("index-closed", format!("the dataset's CP-ABE index does not open: {e:#}")))?;
    let store = anonymous::OneTimeStore::new(&node.data_dir);
    let inputs = anonymous::DemandInputs {
        ledger: &node.ledger,
        compute: node.compute,
        pk,
        policy: index.zk_policy,
        dataset,
        requirement,
        purpose,
        now_ms: unix_ms(),
        named_pending: &node.named_nullifiers,
    };
    let (one, stx, took) = anonymous::demand(&h.member, &store, inputs)
        .await
        .map_err(|e| ApiError::unprocessable("anonymous-demand", format!("{e:#}")))?;
    node.agent_metrics.proved("policy-anonymous", took);
    // Through a relay to another validator: the part that carries it into ordering is not
    // this node's validator's.
    let f = match super::oblivious::submit(node, h, &stx).await {
        Ok(f) => f,
        Err(e) => {
            // It may still reach the ledger; its keys stay until it is known refused.
            if node.ledger.tx(&stx.hash)?.is_none() && e.status.is_client_error() {
                store.discard(&one.demand).map_err(ApiError::internal)?;
            }
            return Err(e);
        }
    };
    if let Outcome::Rejected { reason } = &f.outcome {
        store.discard(&one.demand).map_err(ApiError::internal)?;
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the demand: {reason}")));
    }
    let mut v = final_json(&f);
    v["demand"] = json!(hex::encode(one.demand));
    v["pseudonym"] = json!(one.pseudonym());
    v["prove_ms"] = json!(took.as_millis() as u64);
    Ok(fhir_json(StatusCode::CREATED, &v))
}

/// `POST /access` for an anonymous demand of this node's member: the pseudonym asks, with
/// no proof (its demand's stands for it) and the root its demand's proof named.
async fn anonymous_access(node: &Arc<Node>, h: &Hosted, demand: Hash, pseudonym: &str, duration_s: u64) -> ApiResult {
    let store = anonymous::OneTimeStore::new(&node.data_dir);
    let one = store
        .of_pseudonym(&demand, pseudonym)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::forbidden("not-yours", "the demand is another requester's"))?;
    let rec = node.ledger.pseudonym(pseudonym)?.ok_or_else(|| ApiError::not_found("unknown-pseudonym", pseudonym))?;
    let mut request = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut request);
    let kind = TxKind::RequestAccess { request, demand, root: rec.root, proof: vec![], duration_s };
    let stx = one.sign(node.ledger.tx_domain(), kind).map_err(ApiError::internal)?;
    let f = super::oblivious::submit(node, h, &stx).await?;
    access_answer(node, &f, request, final_json(&f))
}

/// The answer to `POST /access` once the request is final: `v` with the request id, whether
/// it was granted and the denial with its words; a refusal where the ledger rejected it.
fn access_answer(node: &Node, f: &crate::member::client::Final, request: Hash, mut v: Value) -> ApiResult {
    v["request"] = json!(hex::encode(request));
    v["granted"] = json!(node.ledger.grant(&request)?.is_some());
    if let Some(den) = node.ledger.denial(&request)? {
        v["denial"] = serde_json::to_value(&den).map_err(ApiError::internal)?;
        v["denial"]["text"] = json!(den.denial.to_string());
    }
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the request: {reason}")));
    }
    Ok(fhir_json(StatusCode::CREATED, &v))
}

pub async fn get_demand(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let id = parse_id(&id, "demand")?;
    let wait = wait_param(node, &s)?;
    let ledger = node.ledger.clone();
    let d = ledger.demand(&id)?.ok_or_else(|| ApiError::not_found("unknown-demand", "no such demand"))?;
    let d = poll(wait, || Ok(ledger.demand(&id)?.filter(|d| d.supplied_by.is_some()))).await?.unwrap_or(d);
    ok_json(&serde_json::to_value(&d).map_err(ApiError::internal)?)
}

pub async fn post_access(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let spec: AccessSpec = s.json()?;
    let demand = parse_id(&spec.demand, "demand")?;
    let d = node.ledger.demand(&demand)?.ok_or_else(|| ApiError::not_found("unknown-demand", "no such demand"))?;
    if dualchain_ledger::tx::is_pseudonym(&d.requester) {
        return anonymous_access(node, h, demand, &d.requester, spec.duration_s).await;
    }
    if d.requester != h.member.id {
        return Err(ApiError::forbidden("not-yours", "the demand is another member's"));
    }
    let index = open_index(h, &node.ledger, d.dataset)
        .await?
        .map_err(|e| ApiError::forbidden("index-closed", format!("the dataset's CP-ABE index does not open: {e:#}")))?;
    let root =
        node.ledger.credential_root()?.ok_or_else(|| ApiError::conflict("no-credential", "no credential root yet"))?;
    let path = node
        .ledger
        .credential_path(&h.member.id)?
        .ok_or_else(|| ApiError::conflict("no-credential", format!("{} holds no credential", h.member.id)))?;
    let ask = sharing::access_request(
        node.compute,
        node.policy_pk.clone(),
        &demand,
        index.zk_policy,
        h.member.credential(),
        path,
        root,
        spec.duration_s,
    )
    .await?;
    let (request, took) = (ask.request, ask.prove);
    node.agent_metrics.proved("policy", took);
    let f = h.client.submit(ask.tx).await?;
    let mut v = final_json(&f);
    v["prove_ms"] = json!(took.as_millis() as u64);
    access_answer(node, &f, request, v)
}

pub async fn get_grant(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let id = parse_id(&id, "grant")?;
    let wait = wait_param(node, &s)?;
    let ledger = node.ledger.clone();
    let Some(g) = ledger.grant(&id)? else {
        return match ledger.denial(&id)? {
            Some(d) => Err(ApiError::forbidden("denied", format!("the request was denied: {}", d.denial))),
            None => Err(ApiError::not_found("unknown-grant", "no such grant")),
        };
    };
    let g = poll(wait, || Ok(ledger.grant(&id)?.filter(|g| g.receipts > 0))).await?.unwrap_or(g);
    ok_json(&serde_json::to_value(&g).map_err(ApiError::internal)?)
}

pub async fn get_records(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let grant_id = parse_id(&id, "grant")?;
    let wait = wait_param(node, &s)?;
    let observations = grant_records(node, h, grant_id, wait).await?;
    let g = node.ledger.grant(&grant_id)?.ok_or_else(|| ApiError::not_found("unknown-grant", "no such grant"))?;
    let provenance = delivery_provenance(node, &g, &observations)?;
    let mut entry: Vec<Value> =
        observations.iter().map(|o| json!({"resource": o, "search": {"mode": "match"}})).collect();
    entry.push(json!({"resource": provenance, "search": {"mode": "include"}}));
    ok_json(&json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": observations.len(),
        // A Bundle is a Resource, not a DomainResource: no extensions (FHIR R4). The grant
        // is named by the self link (and by each subject's pseudonym system).
        "link": [{"relation": "self", "url": format!("grants/{}/records", hex::encode(grant_id))}],
        "entry": entry,
    }))
}

/// The FHIR `Provenance` of a grant's delivered records (the last entry of
/// `GET /grants/{id}/records`, search mode `include`): its targets the Observations
/// delivered; recorded when the CPC's receipt of the re-encryption was final; activity
/// ISO 21089 "disclose"; reason the purpose of use the grant serves; agents the owner
/// (custodian) and the CPC that re-encrypted (performer), by member id; entity the
/// dataset (source); policy the grant (`urn:dualchain:grant:<id>`); and the receipt's
/// inclusion proof in the same extensions as the access log's `AuditEvent`s. It names no
/// patient: the records carry the grant's pseudonyms (or, under break-glass, the
/// references the clinician named).
fn delivery_provenance(node: &Node, g: &GrantRecord, observations: &[Value]) -> Result<Value, ApiError> {
    // The grant's latest receipt, and only its proof (a dataset's log grows with every
    // fetch; this runs on each one).
    let receipt = match node
        .ledger
        .access_records(&g.dataset)?
        .into_iter()
        .rfind(|r| r.grant == g.id && matches!(r.event, AccessEvent::Reencrypted))
    {
        Some(r) => {
            let proof = node.ledger.receipt_proof(&r)?;
            Some((r, proof))
        }
        None => None,
    };
    let target: Vec<Value> = observations
        .iter()
        .map(|o| match o["id"].as_str() {
            Some(id) => json!({"reference": format!("Observation/{id}")}),
            None => json!({"display": "an Observation delivered without an id"}),
        })
        .collect();
    let member = |id: &str, code: &str, display: &str| {
        json!({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": code, "display": display}]},
            "who": {"identifier": {"system": "urn:dualchain:member", "value": id}}})
    };
    let mut agent = vec![member(&g.owner, "custodian", "Custodian")];
    let at_ms = match &receipt {
        Some((r, _)) => {
            agent.push(member(&r.cpc, "performer", "Performer"));
            r.at_ms
        }
        None => unix_ms(),
    };
    let mut p = json!({
        "resourceType": "Provenance",
        // FHIR ids are at most 64 characters.
        "id": format!("grant-{}", &hex::encode(g.id)[..48]),
        "target": target,
        "recorded": crate::fhir::rfc3339(at_ms / 1000),
        "policy": [format!("urn:dualchain:grant:{}", hex::encode(g.id))],
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
            "code": "disclose", "display": "Disclose"}],
            "text": "re-encrypted by the CPC under the grant's re-key, decrypted by the requester"},
        "reason": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": purpose_of(node, g)}]}],
        "agent": agent,
        "entity": [{"role": "source", "what": {"identifier": {"system": "urn:dualchain:dataset",
            "value": hex::encode(g.dataset)}}}],
    });
    if let Some((_, proof)) = &receipt {
        p["extension"] = proof_extension(node, proof, proof_checks(node, proof)?).0;
    }
    Ok(p)
}

/// The purpose of use a grant serves: `ETREAT` for break-glass, else its demand's.
pub fn purpose_of(node: &Node, g: &GrantRecord) -> String {
    if g.break_glass.is_some() {
        return "ETREAT".into();
    }
    node.ledger.demand(&g.demand).ok().flatten().map(|d| d.purpose.code().to_string()).unwrap_or_default()
}

/// The extensions carrying an inclusion proof, and an `AuditEvent`'s `source`.
pub(super) fn proof_extension(node: &Node, proof: &InclusionProof, verified: bool) -> (Value, Value) {
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

/// A grant's records for its requester `h`, fetched from the CPC (waiting up to `wait` for
/// the re-encryption), decrypted, with the grant's patient pseudonyms; in record order.
pub(super) async fn grant_records(
    node: &Node,
    h: &Hosted,
    grant_id: Hash,
    wait: Duration,
) -> Result<Vec<Value>, ApiError> {
    let ledger = node.ledger.clone();
    let g = ledger.grant(&grant_id)?.ok_or_else(|| ApiError::not_found("unknown-grant", "no such grant"))?;
    // An anonymous grant: this node's member made its demand if it holds the one-time keys.
    let one_time = anonymous::OneTimeStore::new(&node.data_dir).of_grant(&g).map_err(ApiError::internal)?;
    if g.requester != h.member.id && one_time.is_none() {
        return Err(ApiError::forbidden("not-yours", "the grant is another member's"));
    }
    ledger.grant_usable(&grant_id, unix_ms()).map_err(|e| ApiError::forbidden("grant-unusable", e))?;
    // The grant as it stands once re-encrypted (the re-key, and the pseudonyms sealed with
    // it, are on chain by then).
    let Some(g) = poll(wait, || Ok(ledger.grant(&grant_id)?.filter(|g| g.receipts > 0))).await? else {
        return Err(ApiError::conflict(
            "not-ready",
            "the CPC has not re-encrypted the records yet; retry (or pass ?wait=)",
        ));
    };
    // Where the records are: from the CP-ABE index, or for a break-glass grant (whose
    // clinician need not satisfy the policy) from the pointer its owner sealed to it.
    let pointer = match &g.sealed_pointer {
        Some(sealed) => open_pointer(h, &ledger, &g.dataset, sealed)
            .map_err(|e| ApiError::forbidden("pointer-closed", format!("{e:#}")))?,
        None => open_index(h, &ledger, g.dataset)
            .await?
            .map_err(|e| ApiError::forbidden("index-closed", format!("{e:#}")))?,
    };
    let req = match &one_time {
        Some(one) => FetchRequest::sign_as(&one.signer, &g.requester, grant_id, pointer.h1),
        None => FetchRequest::sign(&h.member, grant_id, pointer.h1),
    };
    let results: Vec<Reencrypted> = if let Some(c) = node.local_cpc(&pointer.cpc) {
        super::cpc_routes::fetch_recorded(c, req).await?
    } else if one_time.is_some() {
        // A pseudonym's fetch goes through a relay: the CPC does not see this node ask.
        super::oblivious::fetch(node, h, &pointer.cpc, req).await?
    } else {
        let client = super::client::ApiClient::of_peer(node, &pointer.cpc, &h.member)
            .map_err(|e| ApiError::unprocessable("unknown-cpc", e.to_string()))?;
        let body = serde_json::to_vec(&req).map_err(ApiError::internal)?;
        let resp = client
            .send(reqwest::Method::POST, "/cpc/fetch", body, "application/json")
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-unreachable", format!("{e:#}")))?;
        if resp.status != 200 {
            let r = resp.refusal();
            return Err(ApiError::forbidden("cpc-refused", format!("{}: {}", pointer.cpc, r.message)));
        }
        decode_list(&resp.body)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-malformed", e))?
            .into_iter()
            .map(|b| {
                Reencrypted::from_bytes(b)
                    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-malformed", e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    let owner = ledger.member(&g.owner)?.ok_or_else(|| ApiError::internal("the owner is not on the ledger"))?;
    let owner_key = PublicKey::from_raw(&owner.signing_key).map_err(ApiError::internal)?;
    let member = h.member.clone();
    let (sealed_pseudonyms, break_glass) = (g.sealed_pseudonyms.clone(), g.break_glass.is_some());
    let (owner_id, dataset) = (g.owner.clone(), g.dataset);
    // The key the records were re-encrypted to: the member's, or the one-time key.
    let anonymous = one_time.is_some();
    let dsk = one_time.map_or_else(|| member.dsk.clone(), |o| o.dsk);
    let observations = tokio::task::spawn_blocking(move || {
        let mut records = results
            .iter()
            .map(|r| {
                let pt = r.decrypt(&dsk, &owner_key).map_err(|e| format!("decrypting a record: {e}"))?;
                let obs =
                    serde_json::from_slice::<Value>(&pt).map_err(|e| format!("a decrypted record is not JSON: {e}"))?;
                Ok((r.original.header.record_index, obs))
            })
            .collect::<Result<Vec<_>, String>>()?;
        // The records' patients, sealed to this member by the owner: pseudonyms for this
        // grant, or for a break-glass grant the patients as the clinician named them.
        if let Some(sealed) = sealed_pseudonyms {
            let open = |aad: &[u8]| -> anyhow::Result<Vec<u8>> {
                Ok(member.ibe_key()?.decrypt(&IbeCiphertext::from_bytes(&sealed)?, aad)?)
            };
            let applied = if anonymous {
                // Signcrypted by the owner to the one-time key (no IBE identity).
                Pseudonyms::open_signcrypted(&sealed, &dsk, &owner_key, &owner_id, &dataset)
                    .and_then(|p| p.apply(&grant_id, &mut records))
            } else if break_glass {
                open(SUBJECTS_AAD).and_then(|b| Subjects::from_bytes(&b)).and_then(|s| s.apply(&mut records))
            } else {
                open(PSEUDONYMS_AAD)
                    .and_then(|b| Pseudonyms::from_bytes(&b))
                    .and_then(|p| p.apply(&grant_id, &mut records))
            };
            applied.map_err(|e| format!("the grant's patients: {e:#}"))?;
        }
        Ok::<_, String>(records.into_iter().map(|(_, o)| o).collect::<Vec<_>>())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "processing", "undecryptable", e))?;
    Ok(observations)
}

pub async fn revoke_grant(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[])?;
    let grant = parse_id(&id, "grant")?;
    let spec: RevokeSpec = if s.body.is_empty() { RevokeSpec::default() } else { s.json()? };
    let g = node.ledger.grant(&grant)?.ok_or_else(|| ApiError::not_found("unknown-grant", "no such grant"))?;
    // A grant to one of this member's pseudonyms is revoked by the pseudonym's one-time
    // key: signed by the member, the revocation would name who held the grant.
    let one_time = anonymous::OneTimeStore::new(&node.data_dir).of_grant(&g).map_err(ApiError::internal)?;
    let revoker = one_time.as_ref().map_or_else(|| h.member.id.clone(), |o| o.pseudonym());
    let reason = if spec.reason.is_empty() { format!("revoked by {revoker}") } else { spec.reason };
    let kind = TxKind::RevokeGrant { grant, reason };
    let f = match one_time {
        Some(one) => {
            let stx = one.sign(node.ledger.tx_domain(), kind).map_err(ApiError::internal)?;
            super::oblivious::submit(node, h, &stx).await?
        }
        None => h.client.submit(kind).await?,
    };
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the revocation: {reason}")));
    }
    ok_json(&final_json(&f))
}

/// `POST /datasets/{id}/erase`: the owner erases a dataset. The ledger records the
/// tombstone (when, why); the owner's node destroys the dataset's delegating key, records,
/// patient references and pseudonym key; its CPC deletes the records and every grant's
/// results (both follow the ledger, so a node that was down does it when it catches up).
pub async fn erase_dataset(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let dataset = parse_id(&id, "dataset")?;
    let spec: RevokeSpec = if s.body.is_empty() { RevokeSpec::default() } else { s.json()? };
    match node.ledger.dataset(&dataset)? {
        None => return Err(ApiError::not_found("unknown-dataset", "no such dataset")),
        Some(ds) if ds.owner != h.member.id => {
            return Err(ApiError::forbidden("not-yours", format!("the dataset is {}'s", ds.owner)))
        }
        Some(ds) if ds.erased.is_some() => return Err(ApiError::conflict("erased", "the dataset is already erased")),
        Some(_) => {}
    }
    let reason = if spec.reason.is_empty() { format!("erased by {}", h.member.id) } else { spec.reason };
    let owner = h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only data owners erase"))?;
    // The journal notes it, so the access log keeps the dataset's deliveries and shows the
    // erasure after the dataset is forgotten here.
    let records = owner.dataset(&dataset).map_or(0, |d| d.records.len());
    let e = owner
        .erase(dataset, reason, None, records, None)
        .await
        .map_err(|e| ApiError::forbidden("rejected", format!("{e:#}")))?;
    ok_json(&final_json(&crate::member::client::Final { hash: e.tx, seq: e.seq, outcome: Outcome::Accepted }))
}

/// Opens a dataset's CP-ABE index for a hosted member off the async threads (a CP-ABE
/// decryption is pairings); the outer error is the task's, the inner the opening's.
/// A break-glass grant's pointer, opened with the requester's IBE key.
fn open_pointer(h: &Hosted, ledger: &Ledger, dataset: &Hash, sealed: &[u8]) -> anyhow::Result<sharing::IndexPointer> {
    let ds = ledger.dataset(dataset)?.ok_or_else(|| anyhow::anyhow!("unknown dataset"))?;
    let entry = crate::member::emergency::open_pointer(h.member.ibe_key()?, sealed)?;
    sharing::read_index_entry(&entry, &ds)
}

async fn open_index(
    h: &Hosted,
    ledger: &Arc<Ledger>,
    dataset: Hash,
) -> Result<anyhow::Result<sharing::IndexPointer>, ApiError> {
    let (member, ledger) = (h.member.clone(), ledger.clone());
    tokio::task::spawn_blocking(move || sharing::open_index(&member, &ledger, &dataset))
        .await
        .map_err(ApiError::internal)
}

/// A dataset as the ledger shows it; for a caller hosted here whose attributes open its
/// CP-ABE index, also what the index holds (name, CPC, H1, record count), which the
/// ledger does not show.
pub async fn get_dataset(State(api): State<ApiState>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let node = &api.node;
    let id = parse_id(&id, "dataset")?;
    let d = node.ledger.dataset(&id)?.ok_or_else(|| ApiError::not_found("unknown-dataset", "no such dataset"))?;
    let mut v = serde_json::to_value(&d).map_err(ApiError::internal)?;
    let opened = match hosted_as(node, &s, &[]) {
        Ok(h) => open_index(h, &node.ledger, id).await?.ok(),
        Err(_) => None,
    };
    if let Some(index) = opened {
        v["index"] = json!({
            "name": index.name, "cpc": index.cpc, "h1": hex::encode(index.h1), "records": index.records,
        });
    }
    ok_json(&v)
}

pub async fn get_audit(State(api): State<ApiState>, Path(id): Path<String>, _s: Signed) -> ApiResult {
    let node = &api.node;
    let id = parse_id(&id, "dataset")?;
    if node.ledger.dataset(&id)?.is_none() {
        return Err(ApiError::not_found("unknown-dataset", "no such dataset"));
    }
    let out: Vec<Value> = checked_audit(node, &id)?
        .into_iter()
        .map(|(record, proof, verified)| json!({"access": record, "proof": proof, "proof_verified": verified}))
        .collect();
    ok_json(&json!({"dataset": hex::encode(id), "records": out}))
}

/// A dataset's access records with their receipts' inclusion proofs, and whether each
/// proof checks against this node's block at its height.
pub(super) fn checked_audit(
    node: &Node,
    dataset: &Hash,
) -> Result<Vec<(AccessRecord, InclusionProof, bool)>, ApiError> {
    let mut out = Vec::new();
    for (record, proof) in node.ledger.audit(dataset)? {
        let verified = proof_checks(node, &proof)?;
        out.push((record, proof, verified));
    }
    Ok(out)
}

/// Whether an inclusion proof leads to the block this node holds at its height.
pub(super) fn proof_checks(node: &Node, proof: &InclusionProof) -> Result<bool, ApiError> {
    use dualchain_ledger::block::ChainName;
    use dualchain_storage::ledger::Chain;
    let chain = match proof.chain {
        ChainName::Data => Chain::Data,
        ChainName::Access => Chain::Access,
    };
    let stored = node.ledger.block(chain, proof.height)?.map(|b| b.hash);
    Ok(matches!((proof.verify(), stored), (Ok(h), Some(s)) if h == s))
}
