//! A patient's erasure (GDPR art. 17, the right to erasure): `POST /erasure`
//! `{"patient": "Patient/<id>", "reason": "…"}`, by the hospital that holds the records.
//!
//! Beyond DESIGN.md, which erases whole datasets only. A dataset's records are
//! signcrypted under the dataset's one delegating key, and a re-key token opens every
//! record of its dataset, so deleting one patient's capsules at the CPC would leave any
//! copy of them (a backup of the CPC's RocksDB files, a compaction not yet run) open to
//! that key. Crypto-shredding one patient therefore takes the whole key: for each dataset
//! holding the patient's records, the hospital's node
//!
//! 1. takes the dataset's signcrypted records back from its CPC (`POST /cpc/retrieve`,
//!    the owner's own ciphertexts, nothing re-encrypted) and opens them with the dataset's
//!    key;
//! 2. registers the other patients' records as a new dataset, under a fresh id, a fresh
//!    delegating key, fresh commitments, the same name, CPC, access policy and
//!    disclosure terms, and consent masks as they are now (none when the patient's were
//!    all it held);
//! 3. erases the old dataset on chain (`EraseDataset`): its CPC deletes every payload,
//!    capsule and grant result, and this node destroys the old key, so no copy of the
//!    old records opens with any key that still exists.
//!
//! The patient is found by every reference it was registered under (`Patient/<id>` and a
//! Bundle's `fullUrl`), and its registry entries, indexed identifiers and staged
//! Observations go too. The patient's Consents stay: they are the record of the lawful
//! basis for what was shared before, and govern nothing once no record is left. Grants on the old
//! dataset end with it; a requester demands the new one as any other dataset (the chain
//! does not link the two). The tombstone says when and the request's reason (by default
//! "erased by <member>", as for a whole dataset), so other members learn that a dataset
//! was erased and that a dataset was registered, never whose records or how many: the
//! new registration carries only the capacity class, like every registration. What
//! earlier grants delivered stays delivered, and the answer names them. The hospital
//! keeps the request in its erasure journal ([`crate::member::erasure`]), shown in its
//! access log as an `AuditEvent`.
//!
//! A retry after a crash picks up where it stopped: a replacement already registered
//! is found ([`OwnedDataset::replaces`]) rather than made twice.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use dualchain_crypto::cbsre::{DatasetId, Signcrypted};
use dualchain_crypto::cert::Role;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::Hash;
use dualchain_prover::supply;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::auth::{hosted_as, Signed};
use super::error::{ok_json, ApiError, ApiResult};
use super::fhir_routes::{owner_of, register_records, Records, Terms};
use super::wire::decode_list;
use super::ApiState;
use crate::agents::OwnedDataset;
use crate::runtime::{Hosted, Node};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureSpec {
    patient: String,
    #[serde(default)]
    reason: String,
}

/// `POST /erasure`: erases one patient's records wherever this hospital holds them (see
/// the module docs).
pub async fn post_erasure(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let owner = owner_of(h)?;
    let spec: ErasureSpec = s.json()?;
    let patient = spec.patient.trim().to_string();
    if !(patient.starts_with("Patient/") || patient.starts_with("urn:uuid:")) || patient.len() > 256 {
        return Err(ApiError::invalid(
            "bad-patient",
            "name the patient as Patient/<id> (or urn:uuid:…), 256 bytes at most",
        ));
    }
    if spec.reason.len() > 512 {
        return Err(ApiError::invalid("bad-parameter", "a reason is 512 bytes at most"));
    }
    let reason = if spec.reason.is_empty() { format!("erased by {}", h.member.id) } else { spec.reason };
    // No upload, seal or Consent runs beside an erasure.
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    let _consent = owner.consent_lock.read().await;

    // Every reference the patient goes by here (`Patient/<id>`, a Bundle's fullUrl).
    let names = st.names_of(&patient);
    let mut holding = Vec::new();
    for (id, d) in owner.holding(&names) {
        match node.ledger.dataset(&id)? {
            Some(ds) if ds.erased.is_none() => holding.push((id, d, ds)),
            // Kept but never registered (a crash between the two), or erased on chain and
            // not yet forgotten here: its key goes now.
            _ => owner.forget(&id).map_err(ApiError::internal)?,
        }
    }
    let held: HashMap<Hash, Arc<OwnedDataset>> = holding.iter().map(|(id, d, _)| (*id, d.clone())).collect();
    let earlier = owner.grants_delivering(&names, &held)?;
    // The registry goes last, once every dataset is done: a retry after a failure still
    // finds the patient under every name.
    let mut removed = None;
    if holding.is_empty() {
        let r = st.forget_patient(node, &names)?;
        if r == (0, 0) {
            return Err(ApiError::not_found("unknown-patient", format!("{} holds nothing of {patient}", h.member.id)));
        }
        removed = Some(r);
    }

    let mut datasets = Vec::new();
    for (old, d, ds) in holding {
        let erased = d.patients.iter().filter(|p| names.contains(p)).count();
        let replaced_by = match owner.replacement_of(&old)? {
            Some(new) => Some(new),
            None => {
                let terms = Terms { policy: ds.policy.clone(), disclosure: ds.disclosure };
                replace(node, h, old, &d, &names, &terms).await?
            }
        };
        let e = owner.erase(old, reason.clone(), Some(patient.clone()), erased, replaced_by).await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "transient", "erasure-pending", format!("{e:#}"))
        })?;
        datasets.push(json!({
            "erased": hex::encode(old),
            "records_erased": erased,
            "replaced_by": replaced_by.map(hex::encode),
            "records_kept": d.records.len() - erased,
            "tx": hex::encode(e.tx),
            "seq": e.seq,
        }));
    }
    let (registry, staged) = match removed {
        Some(r) => r,
        None => st.forget_patient(node, &names)?,
    };
    ok_json(&json!({
        "patient": patient,
        "names": names,
        "datasets": datasets,
        "registry_entries_removed": registry,
        "staged_removed": staged,
        "earlier_grants": earlier.iter().map(|g| json!({
            "grant": hex::encode(g.id), "requester": g.requester, "dataset": hex::encode(g.dataset),
        })).collect::<Vec<_>>(),
        "note": "what earlier grants delivered stays with their requesters; every later grant is made from the datasets above",
    }))
}

/// Registers the records of `d` (dataset `old`) other than those of the patient named by
/// any of `names` as a new dataset
/// replacing it; `None` when the patient's were all it held.
async fn replace(
    node: &Node,
    h: &Hosted,
    old: Hash,
    d: &OwnedDataset,
    names: &[String],
    terms: &Terms,
) -> Result<Option<Hash>, ApiError> {
    let keep: Vec<usize> =
        (0..d.records.len()).filter(|i| d.patients.get(*i).is_none_or(|p| !names.contains(p))).collect();
    if keep.is_empty() {
        return Ok(None);
    }
    let stored = retrieve(node, h, &d.cpc, old).await?;
    if stored.len() != d.records.len() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "transient",
            "cpc-manifest",
            format!("{} holds {} of the dataset's {} records", d.cpc, stored.len(), d.records.len()),
        ));
    }
    let dsk = d.dsk.clone().unwrap_or_else(|| h.member.dsk.clone());
    let signer = h.member.signer.public();
    let wanted = keep.clone();
    let plaintexts = tokio::task::spawn_blocking(move || {
        wanted
            .iter()
            .map(|&i| {
                let r = &stored[i];
                if r.header.record_index != i as u64 || r.header.dataset != DatasetId(old) {
                    return Err(format!("record {i} came back as record {}", r.header.record_index));
                }
                r.owner_decrypt(&dsk, &signer).map_err(|e| format!("record {i}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-records", e))?;
    let owner = owner_of(h)?;
    let now = crate::clock::unix_ms() as i64;
    let consent: Vec<u8> = {
        let book = owner.consents.lock().unwrap_or_else(|p| p.into_inner());
        let mask =
            |i: usize| d.patients.get(i).filter(|p| !p.is_empty()).map_or(supply::ALL_USES, |p| book.mask_of(p, now));
        keep.iter().map(|&i| mask(i)).collect()
    };
    let kept = Records {
        plaintexts,
        patients: keep.iter().map(|&i| d.patients.get(i).cloned().unwrap_or_default()).collect(),
        records: keep.iter().map(|&i| d.records[i]).collect(),
        consent,
    };
    let up = register_records(node, h, kept, &d.name, &d.cpc, terms, Some(old)).await?;
    Ok(Some(up.dataset.0))
}

/// The owner's own signcrypted records of `dataset` at `cpc` (this node's CPC, or a
/// peer's through `POST /cpc/retrieve`).
async fn retrieve(node: &Node, h: &Hosted, cpc: &str, dataset: Hash) -> Result<Vec<Signcrypted>, ApiError> {
    let gateway = |reason: &'static str, e: String| ApiError::new(StatusCode::BAD_GATEWAY, "transient", reason, e);
    if let Some(c) = node.local_cpc(cpc) {
        let owner = h.member.id.clone();
        return tokio::task::spawn_blocking(move || c.retrieve(&owner, &DatasetId(dataset)))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| gateway("cpc-refused", format!("{e:#}")));
    }
    let client = super::client::ApiClient::of_peer(node, cpc, &h.member)
        .map_err(|e| ApiError::unprocessable("unknown-cpc", e.to_string()))?;
    let body = serde_json::to_vec(&json!({"dataset": hex::encode(dataset)})).map_err(ApiError::internal)?;
    let resp = client
        .send(Method::POST, "/cpc/retrieve", body, "application/json")
        .await
        .map_err(|e| gateway("cpc-unreachable", format!("{cpc}: {e:#}")))?;
    if resp.status != 200 {
        return Err(gateway("cpc-refused", format!("{cpc}: {}", resp.refusal().message)));
    }
    decode_list(&resp.body)
        .map_err(|e| gateway("cpc-records", e))?
        .into_iter()
        .map(|b| Signcrypted::from_bytes(b).map_err(|e| gateway("cpc-records", e.to_string())))
        .collect()
}
