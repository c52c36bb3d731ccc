//! The validator set (issue 19; consensus' side is `dualchain_consensus::membership`):
//! `GET /validators`, every validator the consortium has had with its key and endpoint and
//! every epoch's set as this node's replica knows them, and `POST /validators/change`,
//! which orders a change that 2f + 1 validators of the current set approved
//! (`dualchain validator propose`, `approve`, `submit`).
//!
//! Neither call is signed by a member: the set is public to whoever reaches the API (the
//! keys and addresses are consortium.toml's and the changes'), and a change authenticates
//! itself by its approvals. This node checks a change as execution will before it orders
//! it ([`dualchain_consensus::engine::ValidatorSets::precheck`]), so what does not carry a
//! quorum of valid approvals for the next epoch costs nobody a consensus slot.

use axum::body::Bytes;
use axum::extract::State;
use dualchain_consensus::engine::parse_endpoint;
use dualchain_consensus::membership::Reconfiguration;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::error::{ok_json, ApiError, ApiResult};
use super::ApiState;
use crate::runtime::Node;

/// `GET /validators`: `{epoch, this_node, votes, last_executed, stable_seq, roster: [{id,
/// key, quic, tls_cert_sha256, genesis}], epochs: [{epoch, after_seq, members,
/// in_effect}]}`.
pub async fn get_validators(State(api): State<ApiState>) -> ApiResult {
    ok_json(&validators_json(&api.node).await?)
}

async fn validators_json(node: &Node) -> Result<Value, ApiError> {
    let sets = node
        .validator
        .validator_sets()
        .await
        .ok_or_else(|| ApiError::busy("stopped", "this node's validator is not running", 5))?;
    let genesis = &node.consortium.validators;
    let roster: Vec<Value> = sets
        .epochs
        .roster()
        .iter()
        .enumerate()
        .map(|(id, key)| {
            // What a change named last (an addition or a rotation), else genesis'.
            let (quic, cert) = match (parse_endpoint(sets.epochs.endpoint(id as u8)), genesis.get(id)) {
                (Some((addr, cert)), _) => (Some(addr.to_string()), cert),
                (None, Some(v)) => (Some(v.quic.to_string()), hex::decode(&v.tls_cert).unwrap_or_default()),
                (None, None) => (None, Vec::new()),
            };
            json!({
                "id": id,
                "key": hex::encode(key.as_bytes()),
                "quic": quic,
                "tls_cert_sha256": hex::encode(sha2::Sha256::digest(&cert)),
                "genesis": id < genesis.len(),
            })
        })
        .collect();
    let epochs: Vec<Value> = sets
        .epochs
        .all()
        .iter()
        .map(|m| {
            json!({
                "epoch": m.epoch,
                "after_seq": m.after_seq,
                "members": m.members,
                "in_effect": m.epoch <= sets.current,
            })
        })
        .collect();
    let me = node.cfg.node;
    let current = sets.epochs.all().iter().find(|m| m.epoch == sets.current);
    Ok(json!({
        "epoch": sets.current,
        "this_node": me,
        "votes": current.is_some_and(|m| m.contains(me)),
        "last_executed": sets.last_executed,
        "stable_seq": sets.stable_seq,
        "roster": roster,
        "epochs": epochs,
    }))
}

/// `POST /validators/change` with `{"change": hex}` (a [`Reconfiguration`]'s encoding):
/// orders the change once it passes the checks execution makes, and answers when it
/// executed here: `{epoch, after_seq, executed_seq, validators}` (`validators` as `GET
/// /validators`). 400: not a change. 409: refused (too few or invalid approvals, not the
/// next epoch, a set that breaks the rules, or another change executed first), with why.
pub async fn post_change(State(api): State<ApiState>, body: Bytes) -> ApiResult {
    let node = &api.node;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("not-json", format!("the body: {e}")))?;
    let bytes = v["change"].as_str().and_then(|h| hex::decode(h).ok()).ok_or_else(|| {
        ApiError::invalid("no-change", "the body needs \"change\": the hex of a validator set change")
    })?;
    let change = Reconfiguration::from_bytes(&bytes)
        .map_err(|e| ApiError::invalid("not-a-change", format!("not a validator set change: {e}")))?;
    let request = change.request();
    let sets = node
        .validator
        .validator_sets()
        .await
        .ok_or_else(|| ApiError::busy("stopped", "this node's validator is not running", 5))?;
    sets.precheck(&request)
        .map_err(|e| ApiError::conflict("change-refused", format!("the change would be refused: {e}")))?;
    let executed_seq = node.validator.submit(request).await.map_err(ApiError::internal)?;
    // Execution decided alike at every correct replica: scheduled, or refused (another
    // change got there first).
    let after = node
        .validator
        .validator_sets()
        .await
        .ok_or_else(|| ApiError::busy("stopped", "this node's validator stopped", 5))?;
    let scheduled = after.epochs.all().iter().find(|m| m.epoch == change.epoch);
    let members: Vec<u8> = change.members.iter().map(|(id, _)| *id).collect();
    match scheduled {
        Some(m) if m.members == members && m.after_seq >= executed_seq => {
            let mut out = json!({"epoch": m.epoch, "after_seq": m.after_seq, "executed_seq": executed_seq});
            out["validators"] = validators_json(node).await?;
            ok_json(&out)
        }
        _ => Err(ApiError::conflict(
            "change-refused",
            format!(
                "the change to epoch {} executed at {executed_seq} and was refused there: another change \
                 was ordered first",
                change.epoch
            ),
        )),
    }
}
