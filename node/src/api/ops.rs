//! Operations: `GET /health` (readiness, view, ledger tips, compute backend) and
//! `GET /metrics` (Prometheus/OpenMetrics text).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::error::{ok_json, ApiResult};
use super::ApiState;

pub async fn health(State(api): State<ApiState>) -> ApiResult {
    let node = &api.node;
    let status = node.validator.status().await;
    let fp = node.ledger.fingerprint()?;
    let tip = |t: Option<dualchain_storage::ledger::BlockRef>| {
        t.map(|b| json!({"height": b.height, "hash": hex::encode(b.hash)}))
    };
    let ready = node.ready()?;
    // The hosted member's certificate as the ledger holds it (renewals raise it).
    let certificate = match node.hosted() {
        Some(h) => node.ledger.member(&h.member.id)?.map(|m| {
            let left = m.not_after as i64 - (crate::runtime::unix_ms() / 1000) as i64;
            json!({ "serial": m.serial, "not_after": m.not_after, "days_left": left.div_euclid(86_400) })
        }),
        None => None,
    };
    let now = (crate::runtime::unix_ms() / 1000) as i64;
    let tls: serde_json::Map<String, serde_json::Value> = node
        .tls_not_after()
        .await
        .into_iter()
        .map(|(what, t)| {
            (what.to_string(), json!({ "not_after": t, "days_left": (t as i64 - now).div_euclid(86_400) }))
        })
        .collect();
    // The anonymous path: whether the escrow key is formed, and for an audit authority's
    // node whether it kept its share (its part of the DKG is then done).
    let anonymous = node.ledger.genesis().anonymous.as_ref().map(|_| {
        let share = node.hosted().and_then(|h| {
            crate::agents::escrow::committee_of(&node.ledger, &h.member.id)?;
            Some(node.secrets_dir()?.join(crate::agents::escrow::SECRET_FILE).exists())
        });
        json!({ "escrow_key": node.ledger.escrow_key().ok().flatten().is_some(), "share_kept": share })
    });
    let diverged = node.validator.divergence();
    let state = match (&status, diverged) {
        (_, Some(_)) => "diverged",
        (Some(_), None) => "ok",
        (None, None) => "stopped",
    };
    ok_json(&json!({
        "status": state,
        "diverged": diverged.map(|d| json!({
            "checkpoint": d.seq,
            "own": hex::encode(d.own),
            "quorum": hex::encode(d.quorum),
        })),
        "ready": ready,
        "node": node.cfg.node,
        "member": node.hosted().map(|h| h.member.id.clone()),
        "role": node.hosted().map(|h| h.member.role.as_str()),
        // The hosted member is still obtaining its keys from the authorities' nodes
        // (first start after a per-institution genesis; the log names what it waits for).
        "enrolling": node.cfg.secrets.member.is_some() && node.hosted().is_none(),
        "certificate": certificate,
        // This node's TLS certificates (API, consensus) and the days they have left.
        "tls": tls,
        // The genesis validators; the set in effect is GET /validators.
        "validators": node.consortium.validators.len(),
        // The validator set's epoch this node works in, and whether it votes in it (a
        // validator added later is a learner until its change takes effect; a removed one
        // votes no more).
        "epoch": status.map(|s| s.epoch),
        "votes": status.map(|s| s.member),
        "view": status.map(|s| s.view),
        "in_view_change": status.map(|s| s.in_view_change),
        "following": status.map(|s| s.following),
        "last_executed": status.map(|s| s.last_executed),
        "pending": status.map(|s| s.pending),
        // How requests reach the ordering (genesis `dissemination`): "parts", disseminated
        // apart from ordering; "forwarded", through the primary.
        "requests": if node.consortium.disseminates() { "parts" } else { "forwarded" },
        "ledger": {
            "applied_seq": fp.applied_seq,
            "data_tip": tip(fp.data_tip),
            "access_tip": tip(fp.access_tip),
            "state_root": hex::encode(fp.state_root),
        },
        "compute": node.compute.describe(),
        "anonymous": anonymous,
        "started_ms": node.started_ms,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn metrics(State(api): State<ApiState>) -> ApiResult {
    let node = &api.node;
    let text = node.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
