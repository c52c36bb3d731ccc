//! Signed calls to a node's HTTP API: what `dualchain client`, peer nodes (an owner's node
//! uploading to a CPC, a requester's node fetching from one) and the tests use; and calls
//! with a SMART bearer token on the FHIR endpoints ([`ApiClient::with_bearer`],
//! [`ApiClient::smart_token`]).
//!
//! Every call but `/health`, `/metrics` and `/openapi.json` carries five headers:
//! `x-dualchain-member` (the member id), `x-dualchain-node` (the node the request is for),
//! `x-dualchain-time` (UNIX milliseconds), `x-dualchain-nonce` (16 random bytes, hex) and
//! `x-dualchain-signature`: the member's Ed25519 signature, under the domain
//! `dualchain/v1/api-request`, over
//! `hex(consortium id) \n node \n METHOD \n path?query \n time \n nonce \n hex(SHA-256(body))`
//! ([`crate::config::ConsortiumFile::id`]). A node refuses a request signed for another
//! node or another consortium (a captured request cannot be replayed elsewhere), a
//! signature from a key that is not the member's on its ledger, a time outside its clock
//! skew, and a nonce it has seen.

use anyhow::{anyhow, Result};

use crate::config::ConsortiumFile;
use dualchain_crypto::sign::SigningKeypair;
use rand::RngCore;
use reqwest::Method;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

/// Signing domain of API requests.
pub const API_SIGNING_USE: &str = "api-request";
pub const H_MEMBER: &str = "x-dualchain-member";
pub const H_TIME: &str = "x-dualchain-time";
pub const H_NONCE: &str = "x-dualchain-nonce";
pub const H_SIGNATURE: &str = "x-dualchain-signature";
pub const H_NODE: &str = "x-dualchain-node";

/// Whom a request is for: one node of one consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    pub consortium: [u8; 32],
    pub node: u8,
}

impl Audience {
    pub fn new(consortium: &ConsortiumFile, node: u8) -> Self {
        Audience { consortium: consortium.id(), node }
    }
}

/// The signed message of a request.
pub fn request_message(
    to: Audience,
    method: &str,
    path_and_query: &str,
    time_ms: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "{}\n{}\n{method}\n{path_and_query}\n{time_ms}\n{nonce}\n{}",
        hex::encode(to.consortium),
        to.node,
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

/// The five authentication headers of a request for `to`.
pub fn sign_request(
    member: &str,
    signer: &SigningKeypair,
    to: Audience,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> [(&'static str, String); 5] {
    let time_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let nonce = hex::encode(nonce);
    let sig = signer.sign(API_SIGNING_USE, &request_message(to, method, path_and_query, time_ms, &nonce, body));
    [
        (H_MEMBER, member.to_string()),
        (H_NODE, to.node.to_string()),
        (H_TIME, time_ms.to_string()),
        (H_NONCE, nonce),
        (H_SIGNATURE, hex::encode(sig)),
    ]
}

/// The HTTP client of a consortium's APIs: over HTTPS it trusts only `ca_der` (the
/// consortium's CA, `tls_ca` in consortium.toml), not the system's roots.
pub fn http_client(ca_der: &[u8], https: bool) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(600));
    if https {
        let ca = reqwest::Certificate::from_der(ca_der).map_err(|e| anyhow!("the consortium's TLS CA: {e}"))?;
        builder = builder.tls_built_in_root_certs(false).add_root_certificate(ca).https_only(true);
    }
    builder.build().map_err(|e| anyhow!("HTTP client: {e}"))
}

/// A refusal from a node: the HTTP status and the OperationOutcome's reason and text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {reason}: {message}")]
pub struct ApiRefusal {
    pub status: u16,
    /// The machine-readable reason (`OperationOutcome.issue[0].details.coding[0].code`).
    pub reason: String,
    pub message: String,
}

/// A member's client of one node.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    pub base: String,
    pub member: String,
    signer: SigningKeypair,
    to: Audience,
    /// A SMART bearer token sent instead of the signature ([`Self::with_bearer`]).
    bearer: Option<String>,
}

/// A raw response.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: bytes::Bytes,
}

impl ApiClient {
    /// A client of the node at `base`, which is node `to.node` of consortium `to.consortium`.
    /// Over HTTPS it trusts only `ca_der` (the consortium's CA, `tls_ca` in
    /// consortium.toml), not the system's roots.
    pub fn new(base: &str, ca_der: &[u8], to: Audience, member: &str, signer: SigningKeypair) -> Result<Self> {
        Ok(Self::with_http(http_client(ca_der, base.starts_with("https://"))?, base, to, member, signer))
    }

    /// A client on a shared [`http_client`] (its connections and TLS sessions are reused
    /// across calls: a node's calls to its peers).
    pub fn with_http(http: reqwest::Client, base: &str, to: Audience, member: &str, signer: SigningKeypair) -> Self {
        Self { http, base: base.trim_end_matches('/').to_string(), member: member.into(), signer, to, bearer: None }
    }

    /// The same client calling with a SMART Backend Services bearer token instead of the
    /// member's signature (the FHIR endpoints take either).
    pub fn with_bearer(&self, token: &str) -> Self {
        Self { bearer: Some(token.to_owned()), ..self.clone() }
    }

    /// A bearer token for the FHIR client `client_id` whose key is `key`, from this node's
    /// token endpoint: the `access_token` of its answer, or the OAuth error.
    pub async fn smart_token(&self, key: &super::smart::ClientKey, client_id: &str, scope: &str) -> Result<String> {
        let url = format!("{}{}", self.base, super::smart::TOKEN_PATH);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("client_assertion_type", super::smart::ASSERTION_TYPE)
            .append_pair("client_assertion", &key.assertion(client_id, &url)?)
            .finish();
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| anyhow!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.map_err(|e| anyhow!("the token answer: {e}"))?;
        match v["access_token"].as_str() {
            Some(t) if status == 200 => Ok(t.to_owned()),
            _ => Err(anyhow!("{status} {}: {}", v["error"], v["error_description"])),
        }
    }

    /// `node`'s client of the node hosting `host` (a CPC, say), calling as `member`, on the
    /// node's shared HTTP client.
    pub fn of_peer(node: &crate::runtime::Node, host: &str, member: &crate::member::Member) -> Result<Self> {
        let peer = node.consortium.node_of(host)?;
        let base = &node.consortium.validators[peer as usize].api;
        let to = Audience::new(&node.consortium, peer);
        Ok(Self::with_http(node.peers.clone(), base, to, &member.id, member.signer.clone()))
    }

    /// A client of node `node` of `consortium`, at its API address there.
    pub fn of_node(consortium: &ConsortiumFile, node: u8, member: &str, signer: SigningKeypair) -> Result<Self> {
        let v = consortium.validators.get(node as usize).ok_or_else(|| anyhow!("no node {node} in this consortium"))?;
        let ca = hex::decode(&consortium.tls_ca).map_err(|e| anyhow!("consortium.toml's tls_ca: {e}"))?;
        Self::new(&v.api, &ca, Audience::new(consortium, node), member, signer)
    }

    /// A client of the node hosting `host` (another member, e.g. a CPC).
    pub fn of_member(consortium: &ConsortiumFile, host: &str, member: &str, signer: SigningKeypair) -> Result<Self> {
        Self::of_node(consortium, consortium.node_of(host)?, member, signer)
    }

    /// Sends a signed request; any status comes back.
    pub async fn send(&self, method: Method, path: &str, body: Vec<u8>, content_type: &str) -> Result<Response> {
        self.send_with(method, path, body, content_type, &[]).await
    }

    /// [`Self::send`] with more headers (`Prefer`, `If-None-Exist`; not signed).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match &self.bearer {
            Some(token) => req = req.header("authorization", format!("Bearer {token}")),
            None => {
                for (k, v) in sign_request(&self.member, &self.signer, self.to, method.as_str(), path, &body) {
                    req = req.header(k, v);
                }
            }
        }
        if !body.is_empty() {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req.send().await.map_err(|e| anyhow!("{} {path}: {e}", method))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.bytes().await.map_err(|e| anyhow!("{} {path}: reading the response: {e}", method))?;
        Ok(Response { status, content_type, body })
    }

    /// A signed call with a JSON body (or none) and a JSON answer; a refusal becomes
    /// [`ApiRefusal`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let bytes = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        let r = self.send(method, path, bytes, "application/fhir+json").await?;
        r.json()
    }

    /// GET without a signature (health, metrics, OpenAPI).
    pub async fn get_public(&self, path: &str) -> Result<Response> {
        let resp =
            self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| anyhow!("GET {path}: {e}"))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Ok(Response { status, content_type, body: resp.bytes().await? })
    }
}

impl Response {
    /// The body as JSON when the status is 2xx; otherwise the refusal.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if !(200..300).contains(&self.status) {
            return Err(self.refusal().into());
        }
        serde_json::from_slice(&self.body).map_err(|e| anyhow!("the node answered something that is not JSON: {e}"))
    }

    pub fn refusal(&self) -> ApiRefusal {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let issue = &v["issue"][0];
        ApiRefusal {
            status: self.status,
            reason: issue["details"]["coding"][0]["code"].as_str().unwrap_or("unknown").to_string(),
            message: issue["diagnostics"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned()),
        }
    }
}
