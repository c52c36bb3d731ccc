//! CPC endpoints, called by peer nodes: `POST /cpc/ingest` (an owner's node stores
//! signcrypted records), `POST /cpc/retrieve` (it takes its own back, for a patient's
//! erasure) and `POST /cpc/fetch` (a requester's node fetches re-encrypted records under
//! its grant).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use dualchain_crypto::cbsre::{DatasetId, Reencrypted, Signcrypted};
use dualchain_crypto::Codec;
use dualchain_ledger::tx::Outcome;
use serde_json::json;

use super::auth::Signed;
use super::error::{ok_json, ApiError, ApiResult};
use super::wire::{decode_list, encode_list};
use super::ApiState;
use crate::agents::{CpcNode, FetchRequest};
use crate::runtime::Node;

fn cpc_of(node: &Node) -> Result<Arc<CpcNode>, ApiError> {
    node.hosted()
        .and_then(|h| h.cpc.clone())
        .ok_or_else(|| ApiError::forbidden("not-a-cpc", format!("node {} hosts no CPC", node.cfg.node)))
}

pub async fn cpc_ingest(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let cpc = cpc_of(node)?;
    let records: Vec<Signcrypted> = decode_list(&s.body)
        .map_err(|e| ApiError::invalid("bad-records", e))?
        .into_iter()
        .map(|b| Signcrypted::from_bytes(b).map_err(|e| ApiError::invalid("bad-records", e.to_string())))
        .collect::<Result<_, _>>()?;
    if records.is_empty() {
        return Err(ApiError::invalid("empty", "no records"));
    }
    let owner = s.member.clone();
    let manifest = tokio::task::spawn_blocking(move || cpc.upload(&owner, &records))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    ok_json(
        &json!({"h1": hex::encode(manifest.hash()), "records": manifest.entries.len(), "dataset": manifest.dataset.to_hex()}),
    )
}

pub async fn cpc_fetch(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let cpc = cpc_of(node)?;
    let req: FetchRequest = s.json()?;
    // A member fetches for itself, or relays its anonymous grant's fetch, which the
    // pseudonym's one-time key signed (the CPC checks it against the grant).
    if req.requester != s.member && !dualchain_ledger::tx::is_pseudonym(&req.requester) {
        return Err(ApiError::forbidden("not-yours", "a member fetches only for itself"));
    }
    let results = fetch_recorded(cpc, req).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], encode_list(results.iter().map(Codec::to_bytes)))
        .into_response())
}

/// `POST /cpc/retrieve` `{"dataset": hex}`: an owner's node takes back its own
/// signcrypted records of a dataset ([`CpcNode::retrieve`]), for a patient's erasure.
pub async fn cpc_retrieve(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let cpc = cpc_of(&api.node)?;
    let v: serde_json::Value = s.json()?;
    let dataset = DatasetId(super::auth::parse_id(v["dataset"].as_str().unwrap_or_default(), "dataset")?);
    let owner = s.member.clone();
    let records = tokio::task::spawn_blocking(move || cpc.retrieve(&owner, &dataset))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], encode_list(records.iter().map(Codec::to_bytes)))
        .into_response())
}

/// A fetch at this node's CPC: checked, then recorded on the access chain, then served;
/// nothing is served that the ledger did not record.
pub(super) async fn fetch_recorded(cpc: Arc<CpcNode>, req: FetchRequest) -> Result<Vec<Reencrypted>, ApiError> {
    let grant = req.grant;
    let checker = cpc.clone();
    let results = tokio::task::spawn_blocking(move || checker.fetch(&req))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    match cpc.record_fetch(grant, &results).await? {
        Outcome::Accepted => Ok(results),
        Outcome::Rejected { reason } => {
            Err(ApiError::forbidden("fetch-unrecorded", format!("the ledger did not record the fetch: {reason}")))
        }
        other => Err(ApiError::internal(format!("the fetch's record came back as {other:?}"))),
    }
}
