//! The node's HTTP/JSON API (axum) for institutions, MIoT gateways and peer nodes; its
//! OpenAPI description is served at `/openapi.json` (source: `node/openapi.json`).
//!
//! - FHIR R4 in the way a FHIR server takes it: `POST /fhir/Observation` (staged, sealed
//!   into a dataset every `owner.dataset_records`), `POST /fhir/Patient` (demographics the
//!   supply circuit needs: gender, birth date), `POST /fhir` with a `transaction` or
//!   `batch` Bundle of Patients and Observations (one dataset), `POST /datasets/seal`.
//! - The sharing flow: `POST /demands`, `GET /demands/{id}`, `POST /access` (the node
//!   proves the access policy), `GET /grants/{id}`, `GET /grants/{id}/records` (fetched
//!   from the CPC, decrypted, returned as a FHIR `searchset` Bundle),
//!   `POST /grants/{id}/revoke`, `GET /datasets/{id}`, `GET /audit/{dataset}` (access
//!   records with their inclusion proofs checked against this node's blocks).
//! - Between nodes: `POST /cpc/ingest` (an owner's node stores signcrypted records at a
//!   CPC), `POST /cpc/fetch` (a requester's node fetches re-encrypted records).
//! - Operations: `GET /health`, `GET /metrics` (Prometheus text), `GET /openapi.json`.
//!
//! Every other call is signed by a member ([`crate::api_client`]). Errors are FHIR
//! `OperationOutcome`s with the HTTP status, the FHIR issue type, and a machine-readable
//! reason in `issue[0].details.coding[0].code` (e.g. `bad-signature`, `replayed`,
//! `wrong-resource-type`). A refused request changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dualchain_crypto::cbsre::{DatasetId, Reencrypted, Signcrypted};
use dualchain_crypto::cert::Role;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{Hash, Outcome, TxKind};
use dualchain_prover::supply::{self, Requirement};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agents::FetchRequest;
use crate::api_client::{request_message, ApiClient, API_SIGNING_USE, H_MEMBER, H_NONCE, H_SIGNATURE, H_TIME};
use crate::service::{unix_ms, Hosted, Node};
use crate::{fhir, sharing};

pub const FHIR_JSON: &str = "application/fhir+json";
const OPENAPI: &str = include_str!("../openapi.json");

// ---------------------------------------------------------------------------------------
// Errors

/// A refusal: HTTP status, FHIR issue type, machine-readable reason, text.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub issue: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// The reason of a refusal, for the metrics layer.
#[derive(Clone)]
struct Reason(&'static str);

impl ApiError {
    fn new(status: StatusCode, issue: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self { status, issue, reason, message: message.into() }
    }
    pub fn invalid(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", reason, m)
    }
    pub fn unprocessable(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", reason, m)
    }
    pub fn unauthorized(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "security", reason, m)
    }
    pub fn forbidden(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason, m)
    }
    pub fn not_found(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", reason, m)
    }
    pub fn conflict(reason: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", reason, m)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal", e.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

impl From<dualchain_ledger::LedgerError> for ApiError {
    fn from(e: dualchain_ledger::LedgerError) -> Self {
        Self::internal(e)
    }
}

/// A FHIR `OperationOutcome`.
pub fn operation_outcome(severity: &str, issue: &str, reason: &str, message: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": severity,
            "code": issue,
            "details": {"coding": [{"system": "urn:dualchain:api-reason", "code": reason}]},
            "diagnostics": message,
        }]
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = operation_outcome("error", self.issue, self.reason, &self.message);
        let mut r = (self.status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response();
        r.extensions_mut().insert(Reason(self.reason));
        r
    }
}

type ApiResult = Result<Response, ApiError>;

fn fhir_json(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], v.to_string()).into_response()
}

fn ok_json(v: &Value) -> ApiResult {
    Ok(fhir_json(StatusCode::OK, v))
}

// ---------------------------------------------------------------------------------------
// Metrics

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The API's series.
#[derive(Clone)]
pub struct ApiMetrics {
    pub requests: Family<RouteStatus, Counter>,
    pub seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub refusals: Family<ReasonLabel, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl ApiMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_buckets),
            refusals: Family::default(),
        };
        r.register("dualchain_api_requests", "API requests by route and status", m.requests.clone());
        r.register("dualchain_api_request_seconds", "API request latency by route", m.seconds.clone());
        r.register("dualchain_api_refusals", "API requests refused, by reason", m.refusals.clone());
        m
    }
}

async fn track(State(node): State<Arc<Node>>, matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &node.api_metrics;
    m.requests.get_or_create(&RouteStatus { route: route.clone(), status: resp.status().as_u16().to_string() }).inc();
    m.seconds.get_or_create(&RouteLabel { route }).observe(started.elapsed().as_secs_f64());
    if let Some(Reason(r)) = resp.extensions().get::<Reason>() {
        m.refusals.get_or_create(&ReasonLabel { reason: r.to_string() }).inc();
    }
    resp
}

// ---------------------------------------------------------------------------------------
// Authentication

/// A request signed by a member, with its body.
pub struct Signed {
    pub member: String,
    pub body: Bytes,
    pub query: Option<String>,
}

impl Signed {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_string())
        })
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::invalid("bad-json", format!("the body is not valid: {e}")))
    }
}

impl FromRequest<Arc<Node>> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, node: &Arc<Node>) -> Result<Self, ApiError> {
        let method = req.method().as_str().to_string();
        let uri = req.uri().clone();
        let pq = uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let (member, time, nonce, sig) = {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            (header(H_MEMBER), header(H_TIME), header(H_NONCE), header(H_SIGNATURE))
        };
        let body = Bytes::from_request(req, node).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-costly",
                    "body-too-large",
                    format!("the body exceeds this node's limit of {} bytes", node.cfg.api.body_limit_bytes),
                )
            } else {
                ApiError::invalid("bad-body", e.body_text())
            }
        })?;
        let (Some(member), Some(time), Some(nonce), Some(sig)) = (member, time, nonce, sig) else {
            return Err(ApiError::unauthorized(
                "missing-signature",
                format!("sign the request: headers {H_MEMBER}, {H_TIME}, {H_NONCE} and {H_SIGNATURE}"),
            ));
        };
        authenticate(node, &member, &method, &pq, &time, &nonce, &sig, &body)?;
        Ok(Signed { member, body, query: uri.query().map(str::to_string) })
    }
}

#[allow(clippy::too_many_arguments)]
fn authenticate(
    node: &Node,
    member: &str,
    method: &str,
    pq: &str,
    time: &str,
    nonce: &str,
    sig: &str,
    body: &[u8],
) -> Result<(), ApiError> {
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
    if !key.verify(API_SIGNING_USE, &request_message(method, pq, time, nonce, body), &signature) {
        return Err(ApiError::unauthorized(
            "bad-signature",
            format!("the signature is not {member}'s over this request"),
        ));
    }
    let mut seen = node.nonces.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= 4096 {
        seen.retain(|_, t| now.saturating_sub(*t) <= 2 * skew);
    }
    if seen.insert((member.to_string(), nonce.to_string()), time).is_some() {
        return Err(ApiError::conflict("replayed", "this request was already received"));
    }
    Ok(())
}

/// The hosted member, if it is the one who signed and has one of `roles`.
fn hosted_as<'a>(node: &'a Node, signed: &Signed, roles: &[Role]) -> Result<&'a Hosted, ApiError> {
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

fn parse_id(s: &str, what: &str) -> Result<Hash, ApiError> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s, &mut id)
        .map_err(|_| ApiError::invalid("bad-id", format!("{what} must be 32 bytes in hex")))?;
    Ok(id)
}

fn wait_param(node: &Node, s: &Signed) -> Result<Duration, ApiError> {
    let secs: u64 = match s.param("wait") {
        None => 0,
        Some(v) => v.parse().map_err(|_| ApiError::invalid("bad-parameter", "wait must be whole seconds"))?,
    };
    Ok(Duration::from_secs(secs.min(node.cfg.api.wait_max_s)))
}

/// Polls `f` until it yields or `wait` passes (then one last time).
async fn poll<T>(wait: Duration, mut f: impl FnMut() -> Result<Option<T>, ApiError>) -> Result<Option<T>, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let v = f()?;
        if v.is_some() || Instant::now() >= deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Router

pub fn router(node: Arc<Node>) -> Router {
    let limit = node.cfg.api.body_limit_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/fhir", post(post_bundle))
        .route("/fhir/Observation", post(post_observation))
        .route("/fhir/Patient", post(post_patient))
        .route("/datasets/seal", post(seal))
        .route("/datasets/{id}", get(get_dataset))
        .route("/demands", post(post_demand))
        .route("/demands/{id}", get(get_demand))
        .route("/access", post(post_access))
        .route("/grants/{id}", get(get_grant))
        .route("/grants/{id}/records", get(get_records))
        .route("/grants/{id}/revoke", post(revoke_grant))
        .route("/audit/{id}", get(get_audit))
        .route("/cpc/ingest", post(cpc_ingest))
        .route("/cpc/fetch", post(cpc_fetch))
        .fallback(|| async { ApiError::not_found("no-route", "no such endpoint; see /openapi.json") })
        .layer(middleware::from_fn_with_state(node.clone(), track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(node)
}

// ---------------------------------------------------------------------------------------
// Operations

async fn health(State(node): State<Arc<Node>>) -> ApiResult {
    let status = node.validator.status().await;
    let fp = node.ledger.fingerprint()?;
    let tip = |t: Option<dualchain_storage::ledger::BlockRef>| {
        t.map(|b| json!({"height": b.height, "hash": hex::encode(b.hash)}))
    };
    let ready = node.ready()?;
    ok_json(&json!({
        "status": if status.is_some() { "ok" } else { "stopped" },
        "ready": ready,
        "node": node.cfg.node,
        "member": node.hosted().map(|h| h.member.id.clone()),
        "role": node.hosted().map(|h| h.member.role.as_str()),
        "validators": node.consortium.validators.len(),
        "view": status.map(|s| s.view),
        "in_view_change": status.map(|s| s.in_view_change),
        "last_executed": status.map(|s| s.last_executed),
        "pending": status.map(|s| s.pending),
        "ledger": {"applied_seq": fp.applied_seq, "data_tip": tip(fp.data_tip), "access_tip": tip(fp.access_tip)},
        "compute": node.compute,
        "started_ms": node.started_ms,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics(State(node): State<Arc<Node>>) -> ApiResult {
    let text = node.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

// ---------------------------------------------------------------------------------------
// FHIR uploads

/// A patient's demographics as the supply circuit needs them.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct Demographics {
    birth_unix: i64,
    sex: u8,
}

type Patients = std::collections::HashMap<String, Demographics>;

/// A hospital node's patient registry and count of staged observations: read from
/// `data_dir` on first use, then kept in memory and written through to disk (so a gateway's
/// post does not re-read the registry or the staging file).
#[derive(Default)]
pub struct OwnerState {
    loaded: bool,
    patients: Patients,
    staged: usize,
}

impl OwnerState {
    fn load(&mut self, node: &Node) -> Result<(), ApiError> {
        if !self.loaded {
            self.patients = match std::fs::read(node.data_dir.join("patients.json")) {
                Ok(b) => serde_json::from_slice(&b).map_err(ApiError::internal)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Patients::new(),
                Err(e) => return Err(ApiError::internal(e)),
            };
            self.staged = read_staged(node)?.len();
            self.loaded = true;
        }
        Ok(())
    }

    /// Adds patients, on disk first.
    fn add_patients(&mut self, node: &Node, new: Vec<(String, Demographics)>) -> Result<(), ApiError> {
        let mut all = self.patients.clone();
        all.extend(new);
        let bytes = serde_json::to_vec(&all).map_err(ApiError::internal)?;
        crate::config::write_private(&node.data_dir.join("patients.json"), &bytes)?;
        self.patients = all;
        Ok(())
    }
}

/// Demographics from a FHIR Patient (`gender`, `birthDate` as YYYY-MM-DD).
fn demographics(p: &Value) -> Result<Demographics, ApiError> {
    let sex = match p["gender"].as_str() {
        Some("male") => supply::sex::MALE,
        Some("female") => supply::sex::FEMALE,
        Some("other") => supply::sex::OTHER,
        Some("unknown") | None => supply::sex::UNKNOWN_OR_ANY,
        Some(g) => return Err(ApiError::invalid("bad-patient", format!("Patient.gender {g:?} is not a FHIR gender"))),
    };
    let birth = p["birthDate"]
        .as_str()
        .and_then(fhir::parse_date)
        .ok_or_else(|| ApiError::invalid("bad-patient", "Patient.birthDate must be a full date (YYYY-MM-DD)"))?;
    Ok(Demographics { birth_unix: birth, sex })
}

/// The references a Patient can be named by: `Patient/<id>` and its Bundle `fullUrl`.
fn patient_refs(p: &Value, full_url: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut refs = Vec::new();
    if let Some(id) = p["id"].as_str() {
        refs.push(format!("Patient/{id}"));
    }
    if let Some(u) = full_url {
        refs.push(u.to_string());
    }
    if refs.is_empty() {
        return Err(ApiError::invalid("bad-patient", "a Patient needs an id (or a fullUrl in a Bundle)"));
    }
    Ok(refs)
}

/// The supply circuit's record of an Observation, with the demographics `patient` finds.
fn record_of<'a>(obs: &Value, patient: impl Fn(&str) -> Option<&'a Demographics>) -> Result<supply::Record, String> {
    fhir::to_record_with(obs, |reference, t| {
        let d = patient(reference)?;
        let years = (t as i64).saturating_sub(d.birth_unix).max(0) / 31_556_952;
        Some(((years / 5).min(255) as u8, d.sex))
    })
}

fn expect_type(v: &Value, want: &str) -> Result<(), ApiError> {
    match v["resourceType"].as_str() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(ApiError::invalid("wrong-resource-type", format!("expected a {want}, got a {t}"))),
        None => Err(ApiError::invalid("wrong-resource-type", format!("expected a {want} (no resourceType)"))),
    }
}

fn owner_of(h: &Hosted) -> Result<&Arc<crate::agents::OwnerNode>, ApiError> {
    h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only hospitals upload"))
}

async fn post_patient(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    hosted_as(&node, &s, &[Role::Hospital])?;
    let p: Value = s.json()?;
    expect_type(&p, "Patient")?;
    let d = demographics(&p)?;
    let refs = patient_refs(&p, None)?;
    let mut st = node.owner_state.lock().await;
    st.load(&node)?;
    st.add_patients(&node, refs.into_iter().map(|r| (r, d.clone())).collect())?;
    Ok(fhir_json(StatusCode::CREATED, &p))
}

/// An uploaded dataset.
struct Uploaded {
    dataset: DatasetId,
    h1: Hash,
    records: usize,
    tx: Hash,
    seq: u64,
}

async fn post_bundle(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::Hospital])?;
    let b: Value = s.json()?;
    expect_type(&b, "Bundle")?;
    match b["type"].as_str() {
        Some("transaction" | "batch") => {}
        other => {
            return Err(ApiError::invalid("bundle-type", format!("Bundle.type {other:?}: post a transaction or batch")))
        }
    }
    let entries = b["entry"].as_array().ok_or_else(|| ApiError::invalid("empty", "the Bundle has no entries"))?;
    let mut bundled = Patients::new();
    for e in entries {
        if e["resource"]["resourceType"] == "Patient" {
            let d = demographics(&e["resource"])?;
            for r in patient_refs(&e["resource"], e["fullUrl"].as_str())? {
                bundled.insert(r, d.clone());
            }
        }
    }
    // The registry is read and written under the lock; the upload runs without it.
    let mut st = node.owner_state.lock().await;
    st.load(&node)?;
    let mut observations = Vec::new();
    let mut records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        match r["resourceType"].as_str() {
            Some("Patient") => {}
            Some("Observation") => {
                records.push(
                    record_of(r, |p| bundled.get(p).or_else(|| st.patients.get(p)))
                        .map_err(|m| ApiError::unprocessable("unmappable", format!("entry {i}: {m}")))?,
                );
                observations.push(r.clone());
            }
            other => {
                return Err(ApiError::unprocessable(
                    "unsupported-resource",
                    format!("entry {i}: {other:?}; a dataset Bundle holds Patients and Observations"),
                ))
            }
        }
    }
    if observations.is_empty() {
        return Err(ApiError::invalid("empty", "the Bundle holds no Observation"));
    }
    if !bundled.is_empty() {
        st.add_patients(&node, bundled.into_iter().collect())?;
    }
    drop(st);
    let up = upload(&node, h, observations, records, s.param("dataset"), s.param("cpc")).await?;
    let dataset = up.dataset.to_hex();
    let mut index = 0;
    let response_entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            if e["resource"]["resourceType"] == "Observation" {
                index += 1;
                json!({"response": {"status": "201 Created", "location": format!("Observation/{dataset}-{}", index - 1)}})
            } else {
                json!({"response": {"status": "200 OK"}})
            }
        })
        .collect();
    ok_json(&json!({
        "resourceType": "Bundle",
        "type": if b["type"] == "batch" { "batch-response" } else { "transaction-response" },
        "extension": dataset_extension(&up),
        "entry": response_entries,
    }))
}

fn dataset_extension(up: &Uploaded) -> Value {
    json!([
        {"url": "urn:dualchain:dataset", "valueString": up.dataset.to_hex()},
        {"url": "urn:dualchain:h1", "valueString": hex::encode(up.h1)},
        {"url": "urn:dualchain:records", "valueInteger": up.records},
        {"url": "urn:dualchain:tx", "valueString": hex::encode(up.tx)},
        {"url": "urn:dualchain:seq", "valueInteger": up.seq},
    ])
}

fn staging_path(node: &Node) -> std::path::PathBuf {
    node.data_dir.join("staged.jsonl")
}

fn read_staged(node: &Node) -> Result<Vec<Value>, ApiError> {
    match std::fs::read_to_string(staging_path(node)) {
        Ok(t) => t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(ApiError::internal))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn post_observation(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::Hospital])?;
    let obs: Value = s.json()?;
    expect_type(&obs, "Observation")?;
    let mut st = node.owner_state.lock().await;
    st.load(&node)?;
    record_of(&obs, |p| st.patients.get(p)).map_err(|m| ApiError::unprocessable("unmappable", m))?;
    // Staged durably before it is acknowledged.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(staging_path(&node))
            .map_err(ApiError::internal)?;
        writeln!(f, "{obs}").map_err(ApiError::internal)?;
        f.sync_all().map_err(ApiError::internal)?;
    }
    st.staged += 1;
    let mut out = obs.clone();
    if st.staged >= node.cfg.owner.dataset_records {
        let up = seal_staged(&node, h, &mut st, None).await?;
        out["extension"] = dataset_extension(&up);
    } else {
        out["extension"] = json!([{"url": "urn:dualchain:staged", "valueInteger": st.staged}]);
    }
    let mut r = fhir_json(StatusCode::CREATED, &out);
    if let Some(id) = obs["id"].as_str() {
        if let Ok(v) = header::HeaderValue::from_str(&format!("Observation/{id}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(r)
}

/// Seals the staged observations into one dataset. Without a name, the dataset is named
/// after the staged content, so a seal interrupted after its registration (a crash before
/// the staging file is removed) is not registered twice: the retry finds it on the ledger
/// and clears the staging file.
async fn seal_staged(node: &Node, h: &Hosted, st: &mut OwnerState, name: Option<String>) -> Result<Uploaded, ApiError> {
    use sha2::{Digest as _, Sha256};
    let staged = read_staged(node)?;
    if staged.is_empty() {
        return Err(ApiError::conflict("nothing-staged", "no observations are staged"));
    }
    let records = staged
        .iter()
        .map(|o| record_of(o, |p| st.patients.get(p)).map_err(|m| ApiError::unprocessable("unmappable", m)))
        .collect::<Result<Vec<_>, _>>()?;
    let name = name.unwrap_or_else(|| {
        let mut hash = Sha256::new();
        staged.iter().for_each(|o| hash.update(o.to_string().as_bytes()));
        format!("staged-{}", &hex::encode(hash.finalize())[..24])
    });
    if node.ledger.dataset(&DatasetId::derive(&h.member.id, &name).0)?.is_some() {
        std::fs::remove_file(staging_path(node)).map_err(ApiError::internal)?;
        st.staged = 0;
        return Err(ApiError::conflict(
            "dataset-exists",
            format!("{name} was sealed before; the staging area is cleared"),
        ));
    }
    let up = upload(node, h, staged, records, Some(name), None).await?;
    std::fs::remove_file(staging_path(node)).map_err(ApiError::internal)?;
    st.staged = 0;
    Ok(up)
}

async fn seal(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::Hospital])?;
    let mut st = node.owner_state.lock().await;
    st.load(&node)?;
    let up = seal_staged(&node, h, &mut st, s.param("dataset")).await?;
    ok_json(
        &json!({"dataset": up.dataset.to_hex(), "h1": hex::encode(up.h1), "records": up.records, "tx": hex::encode(up.tx), "seq": up.seq}),
    )
}

/// Step 4 for a hosted hospital: signcrypt, store at the CPC (checking its manifest),
/// commit, encrypt the index, keep the opening, register.
async fn upload(
    node: &Node,
    h: &Hosted,
    observations: Vec<Value>,
    records: Vec<supply::Record>,
    name: Option<String>,
    cpc: Option<String>,
) -> Result<Uploaded, ApiError> {
    let owner = owner_of(h)?;
    let n = records.len();
    let shape =
        node.supply_pks.keys().filter(|s| s.records() >= n).min_by_key(|s| s.records()).copied().ok_or_else(|| {
            let max = node.supply_pks.keys().map(|s| s.records()).max().unwrap_or(0);
            ApiError::unprocessable(
                "too-many-records",
                format!("{n} records; this consortium's datasets hold at most {max}"),
            )
        })?;
    let cpc = cpc
        .or_else(|| node.cfg.owner.default_cpc.clone())
        .ok_or_else(|| ApiError::invalid("no-cpc", "name a CPC (?cpc=) or set owner.default_cpc"))?;
    match node.ledger.member(&cpc)? {
        Some(m) if m.role == "cpc" && m.revoked.is_none() => {}
        _ => return Err(ApiError::unprocessable("unknown-cpc", format!("{cpc} is not an active CPC"))),
    }
    let mut rng = ChaCha20Rng::from_entropy();
    let name = name.unwrap_or_else(|| format!("upload-{}-{:08x}", unix_ms(), rng.next_u32()));
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("bad-parameter", "dataset names are 1 to 128 bytes"));
    }
    let dataset = DatasetId::derive(&h.member.id, &name);
    if node.ledger.dataset(&dataset.0)?.is_some() {
        return Err(ApiError::conflict("dataset-exists", format!("{} already registered {name:?}", h.member.id)));
    }
    let plaintexts: Vec<Vec<u8>> = observations.iter().map(|o| o.to_string().into_bytes()).collect();
    let member = h.member.clone();
    let now = unix_ms() / 1000;
    let mut srng = ChaCha20Rng::from_rng(&mut rng).map_err(ApiError::internal)?;
    let sealed = tokio::task::spawn_blocking(move || {
        sharing::signcrypt_dataset(&mut srng, &member, dataset, &plaintexts, now, &|_, _| {})
    })
    .await
    .map_err(ApiError::internal)??;

    // Stored at the CPC; its manifest hash is H1'.
    let (h1, stored) = if let Some(c) = node.hosted().and_then(|x| x.cpc.clone()).filter(|c| c.member.id == cpc) {
        let owner_id = h.member.id.clone();
        let m =
            tokio::task::spawn_blocking(move || c.upload(&owner_id, &sealed)).await.map_err(ApiError::internal)??;
        (m.hash(), m.entries.len())
    } else {
        let base = node.consortium.api_of(&cpc).map_err(|e| ApiError::unprocessable("unknown-cpc", e.to_string()))?;
        let client = ApiClient::new(base, &h.member.id, h.member.signer.clone())?;
        let resp = client
            .send(
                reqwest::Method::POST,
                "/cpc/ingest",
                encode_list(sealed.iter().map(Codec::to_bytes)),
                "application/octet-stream",
            )
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-unreachable", format!("{cpc}: {e:#}"))
            })?;
        let v: Value = resp
            .json()
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "transient", "cpc-refused", format!("{cpc}: {e:#}")))?;
        let h1 = parse_id(v["h1"].as_str().unwrap_or(""), "h1")?;
        (h1, v["records"].as_u64().unwrap_or(0) as usize)
    };
    if stored != n {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "transient",
            "cpc-manifest",
            format!("{cpc} stored {stored} of {n} records"),
        ));
    }
    let departments: Vec<&str> = node.cfg.owner.departments.iter().map(String::as_str).collect();
    let prepared = sharing::prepare_registration(
        &mut rng,
        &node.abe_pk,
        &sharing::DatasetSpec {
            dataset,
            name: &name,
            h1,
            cpc: &cpc,
            shape,
            records: &records,
            abe_policy: &node.cfg.owner.abe_policy,
            departments: &departments,
        },
    )
    .map_err(|e| ApiError::invalid("bad-policy", format!("{e:#}")))?;
    owner.add_dataset(dataset, crate::agents::OwnedDataset { shape, records, salt: prepared.salt })?;
    let f = h.client.submit(prepared.tx).await?;
    if let Outcome::Rejected { reason } = f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the registration: {reason}")));
    }
    Ok(Uploaded { dataset, h1, records: n, tx: f.hash, seq: f.seq })
}

/// `u32 count ‖ (u32 len ‖ bytes)*`.
pub fn encode_list(items: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let items: Vec<Vec<u8>> = items.collect();
    let mut out = (items.len() as u32).to_be_bytes().to_vec();
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_be_bytes());
        out.extend_from_slice(&i);
    }
    out
}

pub fn decode_list(mut b: &[u8]) -> Result<Vec<&[u8]>, String> {
    let take = |n: usize, b: &mut &[u8]| -> Result<usize, String> {
        if b.len() < n {
            return Err("truncated list".into());
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize)
    };
    let count = take(4, &mut b)?;
    if count > b.len() / 4 {
        return Err(format!("{count} items cannot fit in {} bytes", b.len()));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take(4, &mut b)?;
        if b.len() < len {
            return Err("truncated item".into());
        }
        let (item, rest) = b.split_at(len);
        out.push(item);
        b = rest;
    }
    if !b.is_empty() {
        return Err("trailing bytes after the list".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Demands, access, grants

/// A data requirement in FHIR terms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandSpec {
    pub dataset: String,
    /// LOINC code, e.g. `8867-4` (heart rate).
    pub code: String,
    /// UCUM unit, e.g. `/min`.
    pub unit: String,
    pub value_min: Option<f64>,
    pub value_max: Option<f64>,
    /// Observation time window, UNIX seconds.
    pub since: u64,
    pub until: u64,
    /// How many matching observations the dataset must hold.
    pub threshold: u16,
    /// 5-year age bands (0 = 0–4 years … 20 = 100+), inclusive.
    #[serde(default)]
    pub age_band_min: u8,
    #[serde(default = "max_band")]
    pub age_band_max: u8,
    /// `any`, `male`, `female`, `other`.
    #[serde(default)]
    pub sex: Option<String>,
}

fn max_band() -> u8 {
    20
}

impl DemandSpec {
    pub fn requirement(&self) -> Result<Requirement, ApiError> {
        let bad = |m: String| ApiError::unprocessable("bad-requirement", m);
        let fixed = |v: Option<f64>, what: &str| {
            v.map(|x| supply::fhir::fixed_point(x).ok_or_else(|| bad(format!("{what} {x} is out of range"))))
                .transpose()
        };
        let sex = match self.sex.as_deref().unwrap_or("any") {
            "any" => supply::sex::UNKNOWN_OR_ANY,
            "male" => supply::sex::MALE,
            "female" => supply::sex::FEMALE,
            "other" => supply::sex::OTHER,
            s => return Err(bad(format!("sex {s:?} is not any, male, female or other"))),
        };
        let r = Requirement {
            code: supply::fhir::loinc_code(&self.code)
                .ok_or_else(|| bad(format!("{:?} is not a LOINC code", self.code)))?,
            unit: supply::fhir::unit_code(&self.unit),
            age_lo: self.age_band_min,
            age_hi: self.age_band_max,
            sex,
            value_min: fixed(self.value_min, "value_min")?,
            value_max: fixed(self.value_max, "value_max")?,
            time_from: supply::fhir::minutes(self.since).ok_or_else(|| bad("since out of range".into()))?,
            time_to: supply::fhir::minutes(self.until).ok_or_else(|| bad("until out of range".into()))?,
            threshold: self.threshold,
        };
        r.validate().map_err(|e| bad(e.to_string()))?;
        Ok(r)
    }
}

fn final_json(f: &crate::consortium::Final) -> Value {
    json!({"tx": hex::encode(f.hash), "seq": f.seq, "outcome": f.outcome})
}

async fn post_demand(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let spec: DemandSpec = s.json()?;
    let dataset = parse_id(&spec.dataset, "dataset")?;
    // A registration final at the owner's node reaches this node's ledger moments later.
    let ledger = node.ledger.clone();
    if poll(Duration::from_secs(5), || Ok(ledger.dataset(&dataset)?)).await?.is_none() {
        return Err(ApiError::not_found("unknown-dataset", "no such dataset on the ledger"));
    }
    let requirement = spec.requirement()?;
    let mut id = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut id);
    let f = h.client.submit(TxKind::Demand { demand: id, dataset, requirement }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the demand: {reason}")));
    }
    let mut v = final_json(&f);
    v["demand"] = json!(hex::encode(id));
    Ok(fhir_json(StatusCode::CREATED, &v))
}

async fn get_demand(State(node): State<Arc<Node>>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let id = parse_id(&id, "demand")?;
    let wait = wait_param(&node, &s)?;
    let ledger = node.ledger.clone();
    let d = ledger.demand(&id)?.ok_or_else(|| ApiError::not_found("unknown-demand", "no such demand"))?;
    let d = poll(wait, || Ok(ledger.demand(&id)?.filter(|d| d.supplied_by.is_some()))).await?.unwrap_or(d);
    ok_json(&serde_json::to_value(&d).map_err(ApiError::internal)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSpec {
    demand: String,
    duration_s: u64,
}

async fn post_access(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let spec: AccessSpec = s.json()?;
    let demand = parse_id(&spec.demand, "demand")?;
    let d = node.ledger.demand(&demand)?.ok_or_else(|| ApiError::not_found("unknown-demand", "no such demand"))?;
    if d.requester != h.member.id {
        return Err(ApiError::forbidden("not-yours", "the demand is another member's"));
    }
    sharing::open_index(&h.member, &node.ledger, &d.dataset)
        .map_err(|e| ApiError::forbidden("index-closed", format!("the dataset's CP-ABE index does not open: {e:#}")))?;
    let root =
        node.ledger.credential_root()?.ok_or_else(|| ApiError::conflict("no-credential", "no credential root yet"))?;
    let path = node
        .ledger
        .credential_path(&h.member.id)?
        .ok_or_else(|| ApiError::conflict("no-credential", format!("{} holds no credential", h.member.id)))?;
    let mut request = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut request);
    let (proof, took) =
        sharing::prove_policy(node.policy_pk.clone(), &node.ledger, &demand, h.member.credential(), path, request)
            .await?;
    node.agent_metrics.proved("policy", took);
    let f =
        h.client.submit(TxKind::RequestAccess { request, demand, root, proof, duration_s: spec.duration_s }).await?;
    let mut v = final_json(&f);
    v["request"] = json!(hex::encode(request));
    v["prove_ms"] = json!(took.as_millis() as u64);
    v["granted"] = json!(node.ledger.grant(&request)?.is_some());
    if let Some(den) = node.ledger.denial(&request)? {
        v["denial"] = serde_json::to_value(den).map_err(ApiError::internal)?;
    }
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the request: {reason}")));
    }
    Ok(fhir_json(StatusCode::CREATED, &v))
}

async fn get_grant(State(node): State<Arc<Node>>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let id = parse_id(&id, "grant")?;
    let wait = wait_param(&node, &s)?;
    let ledger = node.ledger.clone();
    let Some(g) = ledger.grant(&id)? else {
        return match ledger.denial(&id)? {
            Some(d) => Err(ApiError::forbidden("denied", format!("the request was denied: {}", d.reason))),
            None => Err(ApiError::not_found("unknown-grant", "no such grant")),
        };
    };
    let g = poll(wait, || Ok(ledger.grant(&id)?.filter(|g| g.receipts > 0))).await?.unwrap_or(g);
    ok_json(&serde_json::to_value(&g).map_err(ApiError::internal)?)
}

async fn get_records(State(node): State<Arc<Node>>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
    let grant_id = parse_id(&id, "grant")?;
    let wait = wait_param(&node, &s)?;
    let ledger = node.ledger.clone();
    let g = ledger.grant(&grant_id)?.ok_or_else(|| ApiError::not_found("unknown-grant", "no such grant"))?;
    if g.requester != h.member.id {
        return Err(ApiError::forbidden("not-yours", "the grant is another member's"));
    }
    ledger.grant_usable(&grant_id, unix_ms()).map_err(|e| ApiError::forbidden("grant-unusable", e))?;
    if poll(wait, || Ok(ledger.grant(&grant_id)?.filter(|g| g.receipts > 0))).await?.is_none() {
        return Err(ApiError::conflict(
            "not-ready",
            "the CPC has not re-encrypted the records yet; retry (or pass ?wait=)",
        ));
    }
    let pointer = sharing::open_index(&h.member, &ledger, &g.dataset)
        .map_err(|e| ApiError::forbidden("index-closed", format!("{e:#}")))?;
    let req = FetchRequest::sign(&h.member, grant_id, pointer.h1);
    let results: Vec<Reencrypted> = if let Some(c) =
        node.hosted().and_then(|x| x.cpc.clone()).filter(|c| c.member.id == pointer.cpc)
    {
        tokio::task::spawn_blocking(move || c.fetch(&req))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::forbidden("cpc-refused", format!("{e:#}")))?
    } else {
        let base =
            node.consortium.api_of(&pointer.cpc).map_err(|e| ApiError::unprocessable("unknown-cpc", e.to_string()))?;
        let client = ApiClient::new(base, &h.member.id, h.member.signer.clone())?;
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
    let observations = tokio::task::spawn_blocking(move || {
        results
            .iter()
            .map(|r| {
                let pt = r.decrypt(&member.dsk, &owner_key).map_err(|e| format!("decrypting a record: {e}"))?;
                serde_json::from_slice::<Value>(&pt).map_err(|e| format!("a decrypted record is not JSON: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "processing", "undecryptable", e))?;
    ok_json(&json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": observations.len(),
        "extension": [{"url": "urn:dualchain:grant", "valueString": hex::encode(grant_id)}],
        "entry": observations.into_iter().map(|o| json!({"resource": o, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeSpec {
    #[serde(default)]
    reason: String,
}

async fn revoke_grant(State(node): State<Arc<Node>>, Path(id): Path<String>, s: Signed) -> ApiResult {
    let h = hosted_as(&node, &s, &[])?;
    let grant = parse_id(&id, "grant")?;
    let spec: RevokeSpec = if s.body.is_empty() { RevokeSpec::default() } else { s.json()? };
    if node.ledger.grant(&grant)?.is_none() {
        return Err(ApiError::not_found("unknown-grant", "no such grant"));
    }
    let reason = if spec.reason.is_empty() { format!("revoked by {}", h.member.id) } else { spec.reason };
    let f = h.client.submit(TxKind::RevokeGrant { grant, reason }).await?;
    if let Outcome::Rejected { reason } = &f.outcome {
        return Err(ApiError::forbidden("rejected", format!("the ledger rejected the revocation: {reason}")));
    }
    ok_json(&final_json(&f))
}

async fn get_dataset(State(node): State<Arc<Node>>, Path(id): Path<String>, _s: Signed) -> ApiResult {
    let id = parse_id(&id, "dataset")?;
    let d = node.ledger.dataset(&id)?.ok_or_else(|| ApiError::not_found("unknown-dataset", "no such dataset"))?;
    ok_json(&serde_json::to_value(&d).map_err(ApiError::internal)?)
}

async fn get_audit(State(node): State<Arc<Node>>, Path(id): Path<String>, _s: Signed) -> ApiResult {
    use dualchain_ledger::block::ChainName;
    use dualchain_storage::ledger::Chain;
    let id = parse_id(&id, "dataset")?;
    if node.ledger.dataset(&id)?.is_none() {
        return Err(ApiError::not_found("unknown-dataset", "no such dataset"));
    }
    let mut out = Vec::new();
    for (record, proof) in node.ledger.audit(&id)? {
        let chain = match proof.chain {
            ChainName::Data => Chain::Data,
            ChainName::Access => Chain::Access,
        };
        let stored = node.ledger.block(chain, proof.height)?.map(|b| b.hash);
        let verified = matches!((proof.verify(), stored), (Ok(h), Some(s)) if h == s);
        out.push(json!({"access": record, "proof": proof, "proof_verified": verified}));
    }
    ok_json(&json!({"dataset": hex::encode(id), "records": out}))
}

// ---------------------------------------------------------------------------------------
// CPC endpoints (called by peer nodes)

fn cpc_of(node: &Node) -> Result<Arc<crate::agents::CpcNode>, ApiError> {
    node.hosted()
        .and_then(|h| h.cpc.clone())
        .ok_or_else(|| ApiError::forbidden("not-a-cpc", format!("node {} hosts no CPC", node.cfg.node)))
}

async fn cpc_ingest(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let cpc = cpc_of(&node)?;
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

async fn cpc_fetch(State(node): State<Arc<Node>>, s: Signed) -> ApiResult {
    let cpc = cpc_of(&node)?;
    let req: FetchRequest = s.json()?;
    if req.requester != s.member {
        return Err(ApiError::forbidden("not-yours", "a member fetches only for itself"));
    }
    let results = tokio::task::spawn_blocking(move || cpc.fetch(&req))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::forbidden("refused", format!("{e:#}")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], encode_list(results.iter().map(Codec::to_bytes)))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_reject_malformed_bytes() {
        let items = vec![b"one".to_vec(), vec![], vec![7u8; 300]];
        let enc = encode_list(items.clone().into_iter());
        let dec: Vec<Vec<u8>> = decode_list(&enc).unwrap().into_iter().map(<[u8]>::to_vec).collect();
        assert_eq!(dec, items);
        assert!(decode_list(&enc[..enc.len() - 1]).is_err(), "truncated");
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(decode_list(&trailing).is_err(), "trailing");
        assert!(decode_list(&u32::MAX.to_be_bytes()).is_err(), "a count that cannot fit");
        assert!(decode_list(&[0, 0]).is_err(), "no count");
    }

    fn spec(code: &str, min: Option<f64>, sex: Option<&str>) -> DemandSpec {
        DemandSpec {
            dataset: "00".repeat(32),
            code: code.into(),
            unit: "/min".into(),
            value_min: min,
            value_max: Some(200.0),
            since: 1_790_000_000,
            until: 1_790_003_600,
            threshold: 3,
            age_band_min: 0,
            age_band_max: 20,
            sex: sex.map(str::to_string),
        }
    }

    #[test]
    fn demand_specs_map_to_requirements_or_a_reason() {
        let r = spec("8867-4", Some(40.0), Some("female")).requirement().unwrap();
        assert_eq!((r.code, r.unit, r.value_min, r.sex), (88674, 1, Some(40_000), supply::sex::FEMALE));
        assert_eq!(r.time_from, 1_790_000_000 / 60);
        for bad in [spec("heart", None, None), spec("8867-4", Some(-1.0), None), spec("8867-4", None, Some("x"))] {
            let e = bad.requirement().unwrap_err();
            assert_eq!((e.status, e.reason), (StatusCode::UNPROCESSABLE_ENTITY, "bad-requirement"));
        }
        let unknown: Result<DemandSpec, _> = serde_json::from_str(
            r#"{"dataset":"00","code":"1-1","unit":"/min","since":0,"until":1,"threshold":1,"extra":1}"#,
        );
        assert!(unknown.is_err(), "unknown fields are refused");
    }

    #[test]
    fn patients_need_a_gender_code_and_a_full_birth_date() {
        let d =
            demographics(&json!({"resourceType": "Patient", "gender": "female", "birthDate": "1961-03-01"})).unwrap();
        assert_eq!(d.sex, supply::sex::FEMALE);
        assert!(d.birth_unix < 0);
        for p in [json!({"gender": "f", "birthDate": "1961-03-01"}), json!({"gender": "male", "birthDate": "1961"})] {
            assert_eq!(demographics(&p).unwrap_err().reason, "bad-patient");
        }
        let obs = json!({
            "resourceType": "Observation", "code": {"coding": [{"code": "8867-4"}]},
            "valueQuantity": {"value": 72, "code": "/min"}, "effectiveDateTime": "2026-11-24T10:00:00Z",
            "subject": {"reference": "Patient/a"}
        });
        let mut patients = std::collections::HashMap::new();
        assert!(record_of(&obs, |p| patients.get(p)).unwrap_err().contains("unknown patient"));
        patients.insert("Patient/a".to_string(), d);
        let r = record_of(&obs, |p| patients.get(p)).unwrap();
        assert_eq!((r.age_band, r.sex, r.value), (65 / 5, supply::sex::FEMALE, 72_000));
    }

    #[test]
    fn refusals_are_operation_outcomes_with_a_reason() {
        let resp = ApiError::conflict("replayed", "again").into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], FHIR_JSON);
        let v = operation_outcome("error", "conflict", "replayed", "again");
        assert_eq!(v["issue"][0]["details"]["coding"][0]["code"], "replayed");
        assert_eq!(v["resourceType"], "OperationOutcome");
    }
}
