//! Authentication of signed requests ([`super::client`] signs them): the member's
//! Ed25519 signature over method, path, time, nonce and body hash; stale times and replayed
//! nonces are refused. Also the checks that the signer is the member this node hosts.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use dualchain_crypto::cert::Role;
use dualchain_crypto::sign::PublicKey;
use dualchain_ledger::tx::Hash;

use super::client::{request_message, Audience, API_SIGNING_USE, H_MEMBER, H_NODE, H_NONCE, H_SIGNATURE, H_TIME};
use super::error::ApiError;
use super::ApiState;
use crate::runtime::{unix_ms, Hosted, Node};

/// A request signed by a member, with its body (or, on the FHIR endpoints, made with a
/// SMART bearer token for the member this node hosts: [`Fhir`]).
pub struct Signed {
    pub member: String,
    pub body: Bytes,
    pub query: Option<String>,
    pub via: Via,
}

/// How a request was authenticated.
pub enum Via {
    /// The member's Ed25519 signature: everything the member may do.
    Member,
    /// A SMART client's bearer token: only what its scopes allow.
    Client { id: String, scopes: super::smart::Scopes },
}

impl Signed {
    /// A query parameter, percent-decoded (`?policy=role%3Aresearch%20and%20dept%3Aicu`).
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref()?.as_bytes()).find_map(|(k, v)| (k == name).then(|| v.into_owned()))
    }

    /// Refuses a bearer token whose scopes do not allow `interaction` on `resource` (403,
    /// naming the scope that would); a signed request may do anything its member may.
    pub fn allow(&self, resource: &str, interaction: super::smart::Interaction) -> Result<(), ApiError> {
        match &self.via {
            Via::Member => Ok(()),
            Via::Client { scopes, .. } if scopes.allows(resource, interaction) => Ok(()),
            Via::Client { id, scopes } => Err(ApiError::forbidden(
                "insufficient-scope",
                format!(
                    "client {id}'s token has the scopes {:?}; {interaction:?} on {resource} needs system/{resource}.{}",
                    scopes.to_string(),
                    interaction.suffix()
                ),
            )),
        }
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::invalid("bad-json", format!("the body is not valid: {e}")))
    }
}

impl FromRequest<ApiState> for Signed {
    type Rejection = ApiError;

    /// Everything the headers alone can refuse (missing or malformed headers, a stale time,
    /// an unknown or revoked member) is refused before the body is read; then the body,
    /// within its size and time limits; then the signature over it and the nonce.
    async fn from_request(req: Request, api: &ApiState) -> Result<Self, ApiError> {
        let node = &api.node;
        let method = req.method().as_str().to_string();
        let uri = req.uri().clone();
        let pq = uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let headers = {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            (header(H_MEMBER), header(H_NODE), header(H_TIME), header(H_NONCE), header(H_SIGNATURE))
        };
        let (Some(member), Some(to), Some(time), Some(nonce), Some(sig)) = headers else {
            return Err(ApiError::unauthorized(
                "missing-signature",
                format!("sign the request: headers {H_MEMBER}, {H_NODE}, {H_TIME}, {H_NONCE} and {H_SIGNATURE}"),
            ));
        };
        // Signed for another node: a captured request replayed here.
        if to != node.cfg.node.to_string() {
            return Err(ApiError::unauthorized(
                "wrong-node",
                format!("the request is signed for node {to:?}; this is node {}", node.cfg.node),
            ));
        }
        let signer = check_headers(api, &member, &time, &nonce, &sig)?;
        let body = read_body(req, api).await?;
        if !signer.key.verify(
            API_SIGNING_USE,
            &request_message(Audience::new(&node.consortium, node.cfg.node), &method, &pq, signer.time, &nonce, &body),
            &signer.signature,
        ) {
            return Err(ApiError::unauthorized(
                "bad-signature",
                format!("the signature is not {member}'s over this request"),
            ));
        }
        let oldest = unix_ms().saturating_sub(node.cfg.api.clock_skew_s * 1000).max(node.started_ms);
        api.nonces.lock().unwrap_or_else(|p| p.into_inner()).record(oldest, signer.time, &member, &nonce)?;
        Ok(Signed { member, body, query: uri.query().map(str::to_string), via: Via::Member })
    }
}

/// A request's body, within this node's size and time limits (413, 408).
pub(super) async fn read_body(req: Request, api: &ApiState) -> Result<Bytes, ApiError> {
    let cfg = &api.node.cfg.api;
    let within = Duration::from_secs(cfg.body_read_max_s);
    super::limits::within(within, Bytes::from_request(req, api)).await?.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-costly",
                "body-too-large",
                format!("the body exceeds this node's limit of {} bytes", cfg.body_limit_bytes),
            )
        } else {
            ApiError::invalid("bad-body", e.body_text())
        }
    })
}

/// A FHIR request: made with a bearer token (acting for the hosted member, within the
/// token's scopes) or signed by a member.
pub struct Fhir(pub Signed);

impl FromRequest<ApiState> for Fhir {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &ApiState) -> Result<Self, ApiError> {
        let Some(token) = super::smart::bearer_token(req.headers()) else {
            return Signed::from_request(req, api).await.map(Fhir);
        };
        let who = api.smart.bearer(token, unix_ms())?;
        let member = api
            .node
            .hosted()
            .map(|h| h.member.id.clone())
            .ok_or_else(|| ApiError::unauthorized("no-member", "this node hosts no member"))?;
        // A token acts for the member: not once the KGC has revoked it.
        if api.node.ledger.member(&member)?.is_some_and(|r| r.revoked.is_some()) {
            return Err(ApiError::forbidden(
                "revoked",
                format!("{member} is revoked; its clients' tokens act for no one"),
            ));
        }
        let (method, path, query) =
            (req.method().clone(), req.uri().path().to_owned(), req.uri().query().map(str::to_owned));
        tracing::info!(target: "dualchain::smart", client = who.client, %method, path, "bearer request");
        api.metrics.bearer.get_or_create(&super::metrics::ClientLabel { client: who.client.clone() }).inc();
        let body = read_body(req, api).await?;
        Ok(Fhir(Signed { member, body, query, via: Via::Client { id: who.client, scopes: who.scopes } }))
    }
}

/// What the headers establish before the body is read.
struct Signer {
    key: PublicKey,
    time: u64,
    signature: [u8; 64],
}

fn check_headers(api: &ApiState, member: &str, time: &str, nonce: &str, sig: &str) -> Result<Signer, ApiError> {
    let node = &api.node;
    let time: u64 =
        time.parse().map_err(|_| ApiError::unauthorized("bad-time", "the time is not UNIX milliseconds"))?;
    let now = unix_ms();
    let skew = node.cfg.api.clock_skew_s * 1000;
    if now.abs_diff(time) > skew {
        return Err(ApiError::unauthorized(
            "stale",
            format!("signed {} ms from this node's clock", now.abs_diff(time)),
        ));
    }
    if time < node.started_ms {
        return Err(ApiError::unauthorized("stale", "signed before this node started; sign it again"));
    }
    if nonce.len() != 32 || hex::decode(nonce).is_err() {
        return Err(ApiError::unauthorized("bad-nonce", "the nonce must be 16 bytes in hex"));
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(sig, &mut signature)
        .map_err(|_| ApiError::unauthorized("bad-signature", "the signature must be 64 bytes in hex"))?;
    let key = match node.ledger.member(member)? {
        Some(r) if r.revoked.is_some() => {
            return Err(ApiError::forbidden("revoked", format!("{member} is revoked")));
        }
        Some(r) => PublicKey::from_raw(&r.signing_key).map_err(ApiError::internal)?,
        // Before its registration is final a member can still reach its own node.
        None => match node.hosted() {
            Some(h) if h.member.id == member => h.member.signer.public(),
            _ => return Err(ApiError::unauthorized("unknown-member", format!("{member} is not a registered member"))),
        },
    };
    Ok(Signer { key, time, signature })
}

/// The hosted member, if it is the one who signed and has one of `roles`.
pub fn hosted_as<'a>(node: &'a Node, signed: &Signed, roles: &[Role]) -> Result<&'a Hosted, ApiError> {
    let h = node.hosted().filter(|h| h.member.id == signed.member).ok_or_else(|| {
        let home = node.consortium.api_of(&signed.member).unwrap_or("its node");
        ApiError::forbidden("not-hosted", format!("this node does not hold {}'s keys; call {home}", signed.member))
    })?;
    if !roles.is_empty() && !roles.contains(&h.member.role) {
        return Err(ApiError::forbidden(
            "wrong-role",
            format!("{} is a {}; this call is not for it", h.member.id, h.member.role),
        ));
    }
    Ok(h)
}

pub fn parse_id(s: &str, what: &str) -> Result<Hash, ApiError> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s, &mut id)
        .map_err(|_| ApiError::invalid("bad-id", format!("{what} must be 32 bytes in hex")))?;
    Ok(id)
}

pub fn wait_param(node: &Node, s: &Signed) -> Result<Duration, ApiError> {
    let secs: u64 = match s.param("wait") {
        None => 0,
        Some(v) => v.parse().map_err(|_| ApiError::invalid("bad-parameter", "wait must be whole seconds"))?,
    };
    Ok(Duration::from_secs(secs.min(node.cfg.api.wait_max_s)))
}

/// Polls `f` until it yields or `wait` passes (then one last time).
pub async fn poll<T>(
    wait: Duration,
    mut f: impl FnMut() -> Result<Option<T>, ApiError>,
) -> Result<Option<T>, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let v = f()?;
        if v.is_some() || Instant::now() >= deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
