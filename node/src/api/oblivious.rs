//! Oblivious relaying of a pseudonym's requests (docs/privacy.md "Requester anonymity"):
//! an anonymous requester's node sends its pseudonym's transactions and fetches through
//! another member's node (the relay) to a third (the gateway), encapsulated for the
//! gateway with Oblivious HTTP's encapsulation (`dualchain_crypto::oblivious`, RFC 9458).
//!
//! - The **relay** (`POST /oblivious/relay/{member}`) is authenticated to by the
//!   requester's member and forwards opaque bytes to `member`'s node, signing as its own
//!   member. It learns that the requester's node asked the gateway something, of what
//!   size and when; not what, and not for which pseudonym.
//! - The **gateway** (`POST /oblivious/gateway`) sees the relay's member as its caller. It
//!   opens the request and serves it only for a pseudonym: a transaction a pseudonym
//!   signed, which its validator submits (so the part that carries it into ordering is the
//!   gateway's, not the requester's validator's), or a fetch that a pseudonym's one-time
//!   key signed, from the CPC it hosts. A member's own requests never go this way: the
//!   gateway refuses them, so it cannot be used to hide who acts by name.
//! - Its key configuration (`GET /oblivious/key`) is signed by the gateway's member, so a
//!   relay that returns another key is caught; the requester fetches it through the relay
//!   too.
//!
//! Beyond DESIGN.md, where a requester's node submits and fetches as its member: the
//! paper's requester anonymity (§5.2) asks that no validator or CPC learn who requests, and
//! the ledger alone did not give that while the transport named the requester's node.
//!
//! What this does not hide: a relay and a gateway that collude link the two sides; the
//! relay sees the requester's node send something just before a pseudonym's transaction
//! appears (there is no batching or mixing delay); and a consortium with fewer than three
//! nodes has no relay that is neither side (the requester's node then goes direct, and
//! says so in its log).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use dualchain_crypto::cbsre::Reencrypted;
use dualchain_crypto::oblivious::{seal_request, GatewayKey, KeyConfig};
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{is_pseudonym, SignedTx, TxKind};
use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Signed;
use super::client::ApiClient;
use super::error::{ApiError, ApiResult};
use super::ApiState;
use crate::agents::FetchRequest;
use crate::files::{read_secret, write_private};
use crate::member::client::Final;
use crate::runtime::{Hosted, Node};

/// Where a node keeps its gateway key (in `secrets/`, mode 0600).
pub const GATEWAY_KEY_FILE: &str = "oblivious-gateway.json";
/// Signing domain of a gateway's key configuration.
const KEY_USE: &str = "oblivious-key";
/// Largest request a relay forwards (a pseudonym's transaction with its proof, or a
/// fetch request, encapsulated).
pub const RELAY_REQUEST_MAX: usize = 256 * 1024;
/// How long a gateway waits for a submitted transaction to be final.
const SUBMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct KeyFile {
    key_id: u8,
    secret: String,
}

/// This node's gateway key, made at first use and kept, so that a configuration a
/// requester fetched moments before stays valid across a restart. Made under a lock: two
/// first requests at once must not each write a key of their own.
pub fn gateway_key(node: &Node) -> Result<Arc<GatewayKey>> {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(k) = node.oblivious_key.get() {
        return Ok(k.clone());
    }
    let _making = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = node.oblivious_key.get() {
        return Ok(k.clone());
    }
    let dir = node.secrets_dir().unwrap_or_else(|| node.data_dir.clone());
    let path = dir.join(GATEWAY_KEY_FILE);
    let key = if path.exists() {
        let f: KeyFile = serde_json::from_slice(&read_secret(&path)?).with_context(|| path.display().to_string())?;
        GatewayKey::from_secret(f.key_id, &hex::decode(&f.secret)?)?
    } else {
        let key = GatewayKey::generate(1, &mut OsRng);
        let f = KeyFile { key_id: key.key_id, secret: hex::encode(key.secret_bytes().as_slice()) };
        write_private(&path, &serde_json::to_vec_pretty(&f)?)?;
        key
    };
    Ok(node.oblivious_key.get_or_init(|| Arc::new(key)).clone())
}

/// A gateway's key configuration, signed by its member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedKeyConfig {
    pub member: String,
    pub config: String,
    pub signature: String,
}

fn key_message(consortium: &[u8; 32], member: &str, config: &[u8]) -> Vec<u8> {
    let mut m = consortium.to_vec();
    m.extend(member.as_bytes());
    m.push(0);
    m.extend(config);
    m
}

impl SignedKeyConfig {
    /// The configuration, if `member` signed it for this consortium with the key the
    /// ledger holds for it.
    fn verify(&self, node: &Node, member: &str) -> Result<KeyConfig> {
        if self.member != member {
            bail!("a key configuration of {} where {member}'s was asked for", self.member);
        }
        let m = node.ledger.member(member)?.ok_or_else(|| anyhow!("{member} is not on the ledger"))?;
        let key = PublicKey::from_raw(&m.signing_key)?;
        let config = hex::decode(&self.config)?;
        let sig: [u8; 64] = hex::decode(&self.signature)?.try_into().map_err(|_| anyhow!("a signature is 64 bytes"))?;
        if !key.verify(KEY_USE, &key_message(&node.consortium.id(), member, &config), &sig) {
            bail!("{member}'s key configuration is not signed by {member}");
        }
        Ok(KeyConfig::from_bytes(&config)?)
    }
}

fn hosted(node: &Node) -> Result<&Hosted, ApiError> {
    node.hosted().ok_or_else(|| ApiError::forbidden("no-member", "this node hosts no member"))
}

/// `GET /oblivious/key`: this node's gateway key configuration, signed by its member.
pub async fn get_key(State(api): State<ApiState>, _s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted(node)?;
    let config = gateway_key(node).map_err(ApiError::internal)?.config().to_bytes();
    let sig = h.member.signer.sign(KEY_USE, &key_message(&node.consortium.id(), &h.member.id, &config));
    let v = SignedKeyConfig { member: h.member.id.clone(), config: hex::encode(config), signature: hex::encode(sig) };
    Ok(axum::Json(v).into_response())
}

/// `POST /oblivious/relay/{member}` (`/key` appended: the gateway's key configuration):
/// forwards the body, opaque, to `member`'s node's gateway as this node's member.
pub async fn relay(State(api): State<ApiState>, Path(target): Path<String>, s: Signed) -> ApiResult {
    relay_to(&api.node, &target, s, false).await
}

pub async fn relay_key(State(api): State<ApiState>, Path(target): Path<String>, s: Signed) -> ApiResult {
    relay_to(&api.node, &target, s, true).await
}

async fn relay_to(node: &Node, target: &str, s: Signed, key: bool) -> ApiResult {
    let h = hosted(node)?;
    if s.body.len() > RELAY_REQUEST_MAX {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "too-large", "relay request too large"));
    }
    if node.consortium.node_of(target).ok() == node.consortium.node_of(&h.member.id).ok() {
        return Err(ApiError::invalid("relay-to-self", "a relay forwards to another node"));
    }
    let client = ApiClient::of_peer(node, target, &h.member)
        .map_err(|e| ApiError::not_found("unknown-member", e.to_string()))?;
    let resp = if key {
        client.send(reqwest::Method::GET, "/oblivious/key", Vec::new(), "application/json").await
    } else {
        client.send(reqwest::Method::POST, "/oblivious/gateway", s.body.to_vec(), "message/ohttp-req").await
    }
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "gateway-unreachable", format!("{e:#}")))?;
    node.agent_metrics.oblivious("relay", if key { "key" } else { "forward" }, &s.member);
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, [(header::CONTENT_TYPE, resp.content_type)], resp.body).into_response())
}

/// What a gateway is asked, inside the encapsulation.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Inner {
    /// Submit a pseudonym's transaction and answer once it is final.
    Submit { tx: String },
    /// Serve a pseudonym's fetch from the CPC this node hosts.
    Fetch { request: FetchRequest },
}

/// `POST /oblivious/gateway`: opens an encapsulated request (from a relay), serves it for
/// a pseudonym only, and answers encapsulated. A request that does not open is refused in
/// the clear (400); what it asked is answered, refusals included, only inside.
pub async fn gateway(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let key = gateway_key(node).map_err(ApiError::internal)?;
    let (plain, answer) = key
        .open_request(&s.body)
        .map_err(|e| ApiError::invalid("not-encapsulated", format!("the request does not open: {e}")))?;
    let (op, out) = match serde_json::from_slice::<Inner>(&plain) {
        Ok(Inner::Submit { tx }) => ("submit", serve_submit(node, &tx).await),
        Ok(Inner::Fetch { request }) => ("fetch", serve_fetch(node, request).await),
        Err(e) => ("invalid", Err(ApiError::invalid("bad-request", e.to_string()))),
    };
    node.agent_metrics.oblivious("gateway", op, &s.member);
    let inner = match out {
        Ok(v) => v,
        Err(e) => json!({"error": {"status": e.status.as_u16(), "reason": e.reason, "message": e.message}}),
    };
    let body = answer.seal(&serde_json::to_vec(&inner).map_err(ApiError::internal)?, &mut OsRng);
    Ok(([(header::CONTENT_TYPE, "message/ohttp-res")], body).into_response())
}

async fn serve_submit(node: &Node, tx: &str) -> Result<Value, ApiError> {
    let bytes = hex::decode(tx).map_err(|e| ApiError::invalid("bad-tx", e.to_string()))?;
    let stx = SignedTx::from_bytes(&bytes).map_err(|e| ApiError::invalid("bad-tx", e.to_string()))?;
    if !is_pseudonym(&stx.tx.sender) {
        return Err(ApiError::forbidden("not-a-pseudonym", "a gateway submits a pseudonym's transactions only"));
    }
    if !matches!(stx.tx.kind, TxKind::AnonymousDemand(_) | TxKind::RequestAccess { .. } | TxKind::RevokeGrant { .. }) {
        return Err(ApiError::forbidden(
            "not-allowed",
            "a pseudonym demands, asks for access and revokes, nothing else",
        ));
    }
    let f = tokio::time::timeout(SUBMIT_WAIT, crate::member::client::submit_through(&node.validator, &stx))
        .await
        .map_err(|_| ApiError::new(StatusCode::GATEWAY_TIMEOUT, "transient", "not-final", "not final in time"))?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "transient", "submit-failed", format!("{e:#}")))?;
    Ok(json!({"hash": hex::encode(f.hash), "seq": f.seq, "outcome": f.outcome}))
}

async fn serve_fetch(node: &Node, req: FetchRequest) -> Result<Value, ApiError> {
    if !is_pseudonym(&req.requester) {
        return Err(ApiError::forbidden("not-a-pseudonym", "a gateway serves a pseudonym's fetches only"));
    }
    let cpc =
        node.hosted().and_then(|h| h.cpc.clone()).ok_or_else(|| ApiError::forbidden("not-a-cpc", "no CPC here"))?;
    let records = super::cpc_routes::fetch_recorded(cpc, req).await?;
    Ok(json!({"records": records.iter().map(|r| hex::encode(r.to_bytes())).collect::<Vec<_>>()}))
}

/// Relays tried, in random order, before a request gives up on reaching a gateway.
const RELAY_TRIES: usize = 3;
/// Gateways tried for a transaction, in random order.
const GATEWAY_TRIES: usize = 3;

fn transient(what: &'static str, e: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "transient", what, e)
}

/// The consortium's members hosted on a node other than those of `members`.
fn members_elsewhere(node: &Node, members: &[&str]) -> Vec<String> {
    let c = &node.consortium;
    let taken: Vec<u8> = members.iter().filter_map(|m| c.node_of(m).ok()).collect();
    c.members.iter().filter(|m| !taken.contains(&m.node)).map(|m| m.id.clone()).collect()
}

/// A relay that reached a gateway: the client that calls it, its member, and the
/// gateway's key configuration it returned (checked).
struct Reached {
    client: ApiClient,
    relay: String,
    config: KeyConfig,
}

/// Finds a relay to `gateway` (a member): a member of a node that is neither this one nor
/// the gateway's, tried in random order until one returns the gateway's key configuration
/// (signed by the gateway's member, checked against the ledger). A node that is down is
/// skipped; nothing has been asked of the gateway yet, so trying another is safe.
async fn reach(node: &Node, h: &Hosted, gateway: &str) -> Result<Reached, ApiError> {
    let mut relays = members_elsewhere(node, &[&h.member.id, gateway]);
    if relays.is_empty() {
        return Err(ApiError::conflict("no-relay", "no node is neither this one nor the gateway's to relay through"));
    }
    relays.shuffle(&mut rand::thread_rng());
    let mut failures = Vec::new();
    for relay in relays.into_iter().take(RELAY_TRIES) {
        let client = ApiClient::of_peer(node, &relay, &h.member).map_err(ApiError::internal)?;
        let path = format!("/oblivious/relay/{gateway}/key");
        let config = match client.send(reqwest::Method::POST, &path, Vec::new(), "application/json").await {
            Ok(resp) if resp.status == 200 => serde_json::from_slice::<SignedKeyConfig>(&resp.body)
                .map_err(anyhow::Error::from)
                .and_then(|c| c.verify(node, gateway)),
            Ok(resp) => Err(anyhow!("{}", resp.refusal().message)),
            Err(e) => Err(e),
        };
        match config {
            Ok(config) => return Ok(Reached { client, relay, config }),
            Err(e) => failures.push(format!("{relay}: {e:#}")),
        }
    }
    Err(transient("relay-unreachable", format!("no relay reached {gateway}: {}", failures.join("; "))))
}

/// Asks the gateway `inner` through the relay `r` reached; its answer, opened.
async fn ask_via(node: &Node, r: &Reached, gateway: &str, inner: &Inner) -> Result<Value, ApiError> {
    let plain = serde_json::to_vec(inner).map_err(ApiError::internal)?;
    let (request, ctx) = seal_request(&r.config, &plain, &mut OsRng).map_err(ApiError::internal)?;
    let relay = &r.relay;
    let resp = r
        .client
        .send(reqwest::Method::POST, &format!("/oblivious/relay/{gateway}"), request, "message/ohttp-req")
        .await
        .map_err(|e| transient("relay-unreachable", format!("{relay}: {e:#}")))?;
    if resp.status != 200 {
        return Err(transient("relay-refused", format!("{relay}: {}", resp.refusal().message)));
    }
    let opened = ctx.open_response(&resp.body).map_err(|e| transient("gateway-malformed", e.to_string()))?;
    let v: Value = serde_json::from_slice(&opened).map_err(|e| transient("gateway-malformed", e.to_string()))?;
    node.agent_metrics.oblivious("client", "ask", relay);
    if let Some(err) = v.get("error") {
        let status = err["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok());
        let message = format!("{gateway}: {}", err["message"].as_str().unwrap_or("refused"));
        return Err(match status {
            Some(s) if s.is_client_error() => ApiError::new(s, "forbidden", "gateway-refused", message),
            _ => transient("gateway-failed", message),
        });
    }
    Ok(v)
}

/// Submits a pseudonym's transaction through a relay to another validator's gateway, and
/// waits until this node's ledger has it. Gateways are tried in random order until one is
/// reached (a gateway that is down is skipped before anything is sent to it).
pub async fn submit(node: &Node, h: &Hosted, stx: &SignedTx) -> Result<Final, ApiError> {
    let mut gateways = members_elsewhere(node, &[&h.member.id]);
    gateways.shuffle(&mut rand::thread_rng());
    let mut last = ApiError::conflict("no-gateway", "no other node to submit through");
    for gateway in gateways.into_iter().take(GATEWAY_TRIES) {
        let reached = match reach(node, h, &gateway).await {
            Ok(r) => r,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let v = ask_via(node, &reached, &gateway, &Inner::Submit { tx: hex::encode(stx.to_bytes()) }).await?;
        let seq = v["seq"].as_u64().ok_or_else(|| ApiError::internal("the gateway's answer has no seq"))?;
        node.validator.wait_applied(seq).await.map_err(ApiError::internal)?;
        let (_, entry) = node
            .ledger
            .tx(&stx.hash)?
            .ok_or_else(|| ApiError::internal(format!("the transaction is not on this ledger after batch {seq}")))?;
        return Ok(Final { hash: stx.hash, seq, outcome: entry.outcome });
    }
    Err(last)
}

/// Fetches a pseudonym's grant from `cpc` through a relay, the CPC's node as the gateway.
pub async fn fetch(node: &Node, h: &Hosted, cpc: &str, request: FetchRequest) -> Result<Vec<Reencrypted>, ApiError> {
    let reached = reach(node, h, cpc).await?;
    let v = ask_via(node, &reached, cpc, &Inner::Fetch { request }).await?;
    let malformed = |e: String| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-malformed", e);
    v["records"]
        .as_array()
        .ok_or_else(|| malformed("no records in the answer".into()))?
        .iter()
        .map(|r| {
            let b = hex::decode(r.as_str().unwrap_or_default()).map_err(|e| malformed(e.to_string()))?;
            Reencrypted::from_bytes(&b).map_err(|e| malformed(e.to_string()))
        })
        .collect()
}
