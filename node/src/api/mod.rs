//! The node's HTTP/JSON API (axum) for institutions, MIoT gateways and peer nodes; its
//! OpenAPI description is served at `/openapi.json` (source: `node/openapi.json`).
//!
//! - FHIR R4 in the way a FHIR server takes it: `POST /fhir/Observation` (staged, sealed
//!   into a dataset every `owner.dataset_records`), `POST /fhir/Patient` (demographics the
//!   supply circuit needs: gender, birth date), `POST /fhir` with a `transaction` or
//!   `batch` Bundle of Patients and Observations (one dataset), `POST /datasets/seal`;
//!   `GET /fhir/metadata`, the node's `CapabilityStatement` (unauthenticated). What an upload
//!   made comes back in `meta.tag` codings (`urn:dualchain:dataset`, …), never as extensions
//!   on a Bundle, which FHIR R4 does not allow.
//! - The sharing flow: `POST /demands`, `GET /demands/{id}`, `POST /access` (the node
//!   proves the access policy), `GET /grants/{id}`, `GET /grants/{id}/records` (fetched
//!   from the CPC, decrypted, returned as a FHIR `searchset` Bundle),
//!   `POST /grants/{id}/revoke`, `GET /datasets/{id}`, `GET /audit/{dataset}` (access
//!   records with their inclusion proofs checked against this node's blocks).
//! - Between nodes: `POST /cpc/ingest` (an owner's node stores signcrypted records at a
//!   CPC), `POST /cpc/fetch` (a requester's node fetches re-encrypted records),
//!   `POST /ibe/share` and `POST /kgc/enroll` (a member obtains its ESKI-IBE key from the
//!   authorities and its CP-ABE key from the KGC after a per-institution genesis).
//! - Membership by quorum ([`membership_routes`]): `POST /members/{id}/revoke`,
//!   `POST /members/{id}/admit`, `GET /members/{id}/admission`.
//! - Break-glass ([`emergency_routes`]): `POST /break-glass`, `GET /break-glass` (the
//!   owner's review queue), `GET /break-glass/{id}`, `POST /break-glass/{id}/review`.
//! - The privacy officer's console ([`console`]): `GET /console/` (a web page), its sign-in
//!   (`POST /console/signin-code`, signed; `GET /console/signin?code=`, a button that
//!   posts the code to `POST /console/signin`) and its calls
//!   under `/console/api/` (a session cookie).
//! - Operations: `GET /health`, `GET /metrics` (Prometheus text), `GET /openapi.json`.
//!
//! - SMART Backend Services ([`smart`]): `POST /smart/token` (client credentials with a
//!   JWT assertion), `GET /fhir/.well-known/smart-configuration`, and the hosted member's
//!   registry of FHIR clients, `POST|GET /smart/clients`, `POST /smart/clients/{id}/remove`.
//!   `GET /fhir/Observation` searches the staged Observations of a hospital, or a grant's
//!   records with `_grant` ([`search`]).
//!
//! Every other call but `GET /fhir/metadata`, the SMART discovery document and the token
//! endpoint is signed by a member ([`client`]); the FHIR endpoints (`/fhir…`) also take a
//! SMART bearer token, within its scopes. Errors are FHIR
//! `OperationOutcome`s with the HTTP status, the FHIR issue type, and a machine-readable
//! reason in `issue[0].details.coding[0].code` (e.g. `bad-signature`, `replayed`,
//! `wrong-resource-type`). A refused request changes nothing.
//!
//! | module | what |
//! | --- | --- |
//! | [`error`] | refusals as `OperationOutcome`s |
//! | [`conditional`] | conditional create (`If-None-Exist`) and `Prefer` |
//! | [`auth`] | signed requests: signature, time, nonce; the hosted member |
//! | [`smart`] | SMART Backend Services: FHIR clients, their JWT assertions, bearer tokens and scopes |
//! | [`smart_routes`] | its endpoints: the token, discovery, the client registry |
//! | [`metrics`] | requests, latency and refusals per route |
//! | [`limits`] | requests in flight, time per request, the replay window's nonces |
//! | [`ops`] | `/health`, `/metrics` |
//! | [`fhir_routes`] | FHIR in: Patients, Observations, Bundles, seals |
//! | [`search`] | FHIR search over Observations: staged, or a grant's records |
//! | [`audit`] | the access log as FHIR `AuditEvent`s, for the datasets' owner |
//! | [`flow_routes`] | demands, access, grants, records, audit |
//! | [`membership_routes`] | membership by quorum: revoking and admitting members |
//! | [`console`] | the privacy officer's console: page, sign-in, sessions, its read-only views and reviews |
//! | [`emergency_routes`] | break-glass: emergency requests, the owner's review queue, reviews |
//! | [`erasure_routes`] | a patient's erasure: re-register the others' records, erase the old datasets |
//! | [`cpc_routes`] | a CPC's endpoints for peer nodes |
//! | [`authority_routes`] | the ESKI-IBE authorities' and the KGC's endpoints for enrolling members |
//! | [`wire`] | request bodies and the binary list framing |
//! | [`client`] | signed calls to a node (`dualchain client`, node to node) |

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::runtime::Node;

pub mod audit;
pub mod auth;
pub mod authority_routes;
pub mod client;
pub mod conditional;
pub mod consent_routes;
pub mod console;
pub mod cpc_routes;
pub mod emergency_routes;
pub mod erasure_routes;
pub mod error;
pub mod fhir_routes;
pub mod flow_routes;
pub mod limits;
pub mod membership_routes;
pub mod metrics;
pub mod oblivious;
pub mod ops;
pub mod search;
pub mod smart;
pub mod smart_routes;
pub mod tls;
pub mod validator_routes;
pub mod wire;

pub use error::{operation_outcome, ApiError};
pub use metrics::ApiMetrics;

pub const FHIR_JSON: &str = "application/fhir+json";
const OPENAPI: &str = include_str!("../../openapi.json");

/// What the API's handlers share: the running node and the API's own state.
#[derive(Clone)]
pub struct ApiState(Arc<ApiInner>);

pub struct ApiInner {
    pub node: Arc<Node>,
    pub metrics: ApiMetrics,
    /// Nonces of the replay window (replays are refused).
    pub nonces: Mutex<limits::NonceStore>,
    pub admission: limits::Admission,
    /// A hospital's patient registry and staged observations (posts and seals take turns).
    pub owner_state: tokio::sync::Mutex<fhir_routes::OwnerState>,
    /// SMART Backend Services: registered FHIR clients and their tokens.
    pub smart: smart::Smart,
    /// The privacy officer's console: sign-in codes and sessions.
    pub consoles: console::Consoles,
}

impl std::ops::Deref for ApiState {
    type Target = ApiInner;
    fn deref(&self) -> &ApiInner {
        &self.0
    }
}

impl ApiState {
    pub fn new(node: Arc<Node>, metrics: ApiMetrics) -> Self {
        let api = &node.cfg.api;
        let admission = limits::Admission::new(api.concurrency_max, Duration::from_secs(api.request_time_max_s));
        let nonces = Mutex::new(limits::NonceStore::new(api.nonces_max));
        let smart = smart::Smart::new(&node.data_dir, api.token_ttl_s, api.tokens_max);
        Self(Arc::new(ApiInner {
            node,
            metrics,
            nonces,
            admission,
            owner_state: tokio::sync::Mutex::new(Default::default()),
            smart,
            consoles: Default::default(),
        }))
    }
}

/// This node's API base URL (as the consortium file names it), without a trailing slash.
pub fn api_base(node: &Node) -> Option<String> {
    node.cfg.own_validator(&node.consortium).ok().map(|v| v.api.trim_end_matches('/').to_owned())
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    use {cpc_routes::*, fhir_routes::*, flow_routes::*, ops::*, search::search_observations};
    let limit = state.node.cfg.api.body_limit_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/fhir", post(post_bundle))
        // A FHIR client joins its base ("…/fhir/") with the empty path of a transaction.
        .route("/fhir/", post(post_bundle))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/.well-known/smart-configuration", get(smart_routes::smart_configuration))
        .route("/fhir/Observation", post(post_observation).get(search_observations))
        .route("/fhir/Patient", post(post_patient))
        .route("/fhir/Device", post(post_device))
        .route("/fhir/Consent", post(consent_routes::post_consent).get(consent_routes::search_consents))
        .route("/fhir/AuditEvent", get(audit::search_audit_events))
        .route("/datasets/seal", post(seal))
        .route("/datasets/{id}", get(get_dataset))
        .route("/datasets/{id}/erase", post(erase_dataset))
        .route("/erasure", post(erasure_routes::post_erasure))
        .route("/demands", post(post_demand))
        .route("/demands/{id}", get(get_demand))
        .route("/access", post(post_access))
        .route("/grants/{id}", get(get_grant))
        .route("/grants/{id}/records", get(get_records))
        .route("/grants/{id}/revoke", post(revoke_grant))
        .route("/audit/{id}", get(get_audit))
        .route("/audit-cases", post(membership_routes::open_audit_case))
        .route("/audit-cases/{id}", get(membership_routes::get_audit_case))
        .route("/members/{id}/revoke", post(membership_routes::revoke_member))
        .route("/members/{id}/admit", post(membership_routes::admit_member))
        .route("/members/{id}/admission", get(membership_routes::get_admission))
        .route(
            "/consortium/parameters",
            get(membership_routes::get_parameters).post(membership_routes::change_parameters),
        )
        .route("/validators", get(validator_routes::get_validators))
        .route("/validators/change", post(validator_routes::post_change))
        .route("/break-glass", post(emergency_routes::post_break_glass).get(emergency_routes::list_break_glass))
        .route("/break-glass/{id}", get(emergency_routes::get_break_glass))
        .route("/break-glass/{id}/review", post(emergency_routes::review_break_glass))
        .route("/console", get(|| async { axum::response::Redirect::permanent("/console/") }))
        .route("/console/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/style.css", get(console::style_css))
        .route("/console/signin", get(console::signin).post(console::signin_post))
        .route("/console/signin-code", post(console::signin_code))
        .route("/console/api/session", get(console::session))
        .route("/console/api/signout", post(console::signout))
        .route("/console/api/overview", get(console::overview))
        .route("/console/api/access", get(console::access))
        .route("/console/api/break-glass", get(console::break_glass))
        .route("/console/api/break-glass/{id}/review", post(console::review_break_glass))
        .route("/oblivious/key", get(oblivious::get_key))
        .route("/oblivious/gateway", post(oblivious::gateway))
        .route("/oblivious/relay/{member}", post(oblivious::relay))
        .route("/oblivious/relay/{member}/key", post(oblivious::relay_key))
        .route("/cpc/ingest", post(cpc_ingest))
        .route("/cpc/fetch", post(cpc_fetch))
        .route("/cpc/retrieve", post(cpc_routes::cpc_retrieve))
        .route("/ibe/share", post(authority_routes::ibe_share))
        .route("/kgc/enroll", post(authority_routes::kgc_enroll))
        .route(smart::TOKEN_PATH, post(smart_routes::token))
        .route("/smart/clients", post(smart_routes::register_client).get(smart_routes::list_clients))
        .route("/smart/clients/{id}/remove", post(smart_routes::remove_client))
        .fallback(|| async { ApiError::not_found("no-route", "no such endpoint; see /openapi.json") })
        .layer(middleware::from_fn_with_state(state.admission.clone(), limits::admit))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
