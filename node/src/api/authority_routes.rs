//! The authorities' endpoints, called by members' nodes while they enroll (their keys were
//! made on their own machines, `dualchain keygen`):
//! - `POST /ibe/share` (the KGC and every CPC): one step of the blinded ESKI-IBE issuing
//!   round trip (DESIGN.md §4.2). The body is `{"request": hex, "previous": hex|null}`:
//!   the member's signed, blinded key request and the share of the authority before this
//!   one. The authority checks the request against the certificate the ledger holds for
//!   the signer (registered, not revoked, the request's identity is the signer's) and the
//!   previous share against the public chain, and returns `{"share": hex}`. It never sees
//!   the member's key: the request is blinded.
//! - `POST /kgc/enroll` (the KGC): `{"attributes": [...], "salt": hex,
//!   "nullifier_commitment": hex}` opens the caller's certified attribute commitment; the
//!   answer `{"abe_key": hex}` is its CP-ABE key sealed to its ESKI-IBE identity
//!   ([`crate::agents::kgc::Desk`]). With the commitment to the member's nullifier key the
//!   KGC also publishes its anonymous credential leaf.

use axum::extract::State;
use dualchain_crypto::cert::{Certificate, NoRevocations, TrustContext};
use dualchain_crypto::ibe::{KeyRequest, KeyShare};
use dualchain_crypto::Codec;
use serde::Deserialize;
use serde_json::json;

use super::auth::Signed;
use super::error::{ok_json, ApiError, ApiResult};
use super::ApiState;
use crate::member::ATTRIBUTE_SALT_LEN;
use crate::runtime::unix_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareRequest {
    request: String,
    #[serde(default)]
    previous: Option<String>,
}

fn decode<T: Codec>(hex_value: &str, reason: &'static str) -> Result<T, ApiError> {
    let bytes = hex::decode(hex_value).map_err(|_| ApiError::invalid(reason, format!("{} is not hex", T::NAME)))?;
    T::from_bytes(&bytes).map_err(|e| ApiError::invalid(reason, e.to_string()))
}

pub async fn ibe_share(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = api.node.clone();
    let authority = node.authority.as_ref().ok_or_else(|| {
        ApiError::forbidden("not-an-authority", format!("node {} holds no ESKI-IBE share", node.cfg.node))
    })?;
    let body: ShareRequest = s.json()?;
    let request: KeyRequest = decode(&body.request, "bad-request")?;
    let previous: Option<KeyShare> = body.previous.as_deref().map(|p| decode(p, "bad-share")).transpose()?;
    if request.identity != s.member {
        return Err(ApiError::forbidden(
            "wrong-identity",
            format!("{} signed a key request for {}", s.member, request.identity),
        ));
    }
    let rec = node
        .ledger
        .member(&s.member)?
        .ok_or_else(|| ApiError::forbidden("unregistered", format!("{} is not registered yet", s.member)))?;
    if rec.revoked.is_some() {
        return Err(ApiError::forbidden("revoked", format!("{} is revoked", s.member)));
    }
    let cert = Certificate::from_bytes(&rec.certificate).map_err(ApiError::internal)?;
    let share_secret = authority.ibe_share.clone();
    let share = tokio::task::spawn_blocking(move || {
        let ca = crate::files::from_hex(&node.consortium.member_ca, "member CA")?;
        let trust = TrustContext::new(&ca, unix_ms() / 1000, &NoRevocations);
        Ok::<_, anyhow::Error>(share_secret.issue_share(&node.ibe, &request, previous.as_ref(), &cert, &trust)?)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    ok_json(&json!({ "share": hex::encode(share.to_bytes()) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    attributes: Vec<String>,
    salt: String,
    /// `P(NK_TAG, nk)` of the member's nullifier key, hex of its canonical bytes: the KGC
    /// then also publishes the member's anonymous leaf (absent: no anonymous leaf).
    #[serde(default)]
    nullifier_commitment: Option<String>,
}

pub async fn kgc_enroll(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = api.node.clone();
    let desk =
        node.authority.as_ref().and_then(|a| a.kgc.clone()).ok_or_else(|| {
            ApiError::forbidden("not-the-kgc", format!("node {} does not host the KGC", node.cfg.node))
        })?;
    let body: EnrollRequest = s.json()?;
    let mut salt = [0u8; ATTRIBUTE_SALT_LEN];
    hex::decode_to_slice(&body.salt, &mut salt)
        .map_err(|_| ApiError::invalid("bad-salt", "the salt is 32 bytes in hex"))?;
    let nk_commitment = match &body.nullifier_commitment {
        None => None,
        Some(h) => {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b)
                .ok()
                .and_then(|()| dualchain_prover::field::fr_from_bytes(&b))
                .map(Some)
                .ok_or_else(|| ApiError::invalid("bad-nullifier-commitment", "not a field element's 32 bytes in hex"))?
        }
    };
    let member = s.member.clone();
    let sealed = tokio::task::spawn_blocking(move || {
        desk.enroll(&node.ledger, &node.ibe, &member, &body.attributes, &salt, nk_commitment)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    ok_json(&json!({ "abe_key": hex::encode(sealed.to_bytes()) }))
}
