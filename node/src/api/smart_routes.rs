//! The endpoints of SMART Backend Services ([`super::smart`]): the token endpoint
//! (`POST /smart/token`), SMART discovery (`GET /fhir/.well-known/smart-configuration`)
//! and the hosted member's registry of FHIR clients (`POST|GET /smart/clients`,
//! `POST /smart/clients/{id}/remove`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::{hosted_as, Signed};
use super::error::{ok_json, ApiResult};
use super::smart::{no_store, token_url, OAuthError, Registration, ASSERTION_TYPE};
use super::ApiState;
use crate::runtime::unix_ms;

/// `POST /smart/token`.
pub async fn token(State(api): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    match issue_token(&api, &headers, &body) {
        Ok(v) => (StatusCode::OK, no_store(), v.to_string()).into_response(),
        Err(e) => {
            tracing::info!(target: "dualchain::smart", error = e.error, why = %e.description, "token refused");
            e.into_response()
        }
    }
}

fn issue_token(api: &ApiState, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !form.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::new("invalid_request", "post the parameters form-encoded"));
    }
    let params: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    if get("grant_type") != Some("client_credentials") {
        return Err(OAuthError::new("unsupported_grant_type", "grant_type must be client_credentials"));
    }
    if get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(OAuthError::new("invalid_client", format!("client_assertion_type must be {ASSERTION_TYPE}")));
    }
    let assertion = get("client_assertion").ok_or_else(|| OAuthError::new("invalid_client", "no client_assertion"))?;
    let scope = get("scope").ok_or_else(|| OAuthError::new("invalid_scope", "ask for scopes (scope=…)"))?;
    if api.node.hosted().is_none() {
        return Err(OAuthError::new("invalid_client", "this node hosts no member to act for"));
    }
    let g = api.smart.issue(assertion, scope, &token_url(&api.node), unix_ms())?;
    api.metrics.tokens.get_or_create(&super::metrics::ClientLabel { client: g.client }).inc();
    Ok(json!({"access_token": g.token, "token_type": "bearer", "expires_in": g.ttl_s, "scope": g.scopes.to_string()}))
}

/// `GET /fhir/.well-known/smart-configuration` (SMART App Launch 2.x discovery).
pub async fn smart_configuration(State(api): State<ApiState>) -> Response {
    let v = json!({
        "token_endpoint": token_url(&api.node),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/Observation.write", "system/Observation.read", "system/Patient.write",
            "system/Observation.c", "system/Observation.s", "system/Patient.c", "system/Device.write",
            "system/AuditEvent.read", "system/*.write", "system/*.read"],
        "capabilities": ["client-confidential-asymmetric"],
    });
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// `POST /smart/clients`: the hosted member registers a FHIR client (`Registration`
/// without `registered_ms`).
pub async fn register_client(State(api): State<ApiState>, s: Signed) -> ApiResult {
    hosted_as(&api.node, &s, &[])?;
    let r: Registration = s.json()?;
    let id = r.client_id.clone();
    let replaced = api.smart.register(r)?;
    tracing::info!(target: "dualchain::smart", client = id, by = s.member, replaced, "client registered");
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    let v = json!({"client_id": id, "replaced": replaced, "token_endpoint": token_url(&api.node)});
    Ok((status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response())
}

/// `GET /smart/clients`: the registered clients with their scopes and key ids.
pub async fn list_clients(State(api): State<ApiState>, s: Signed) -> ApiResult {
    hosted_as(&api.node, &s, &[])?;
    let list: Vec<Value> = api
        .smart
        .list()?
        .iter()
        .map(|r| {
            let kids: Vec<&str> = r.jwks.keys.iter().filter_map(|k| k.common.key_id.as_deref()).collect();
            json!({"client_id": r.client_id, "scope": r.scope, "kids": kids, "registered_ms": r.registered_ms})
        })
        .collect();
    ok_json(&json!({"clients": list, "token_endpoint": token_url(&api.node)}))
}

/// `POST /smart/clients/{id}/remove`: removes a client; its tokens end at once.
pub async fn remove_client(State(api): State<ApiState>, UrlPath(id): UrlPath<String>, s: Signed) -> ApiResult {
    hosted_as(&api.node, &s, &[])?;
    api.smart.remove(&id)?;
    tracing::info!(target: "dualchain::smart", client = id, by = s.member, "client removed");
    ok_json(&json!({"client_id": id, "removed": true}))
}
