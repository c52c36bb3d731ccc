//! Refusals as FHIR `OperationOutcome`s: the HTTP status, the FHIR issue type, and a
//! machine-readable reason in `issue[0].details.coding[0].code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::FHIR_JSON;

/// A refusal: HTTP status, FHIR issue type, machine-readable reason, text.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub issue: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for transient refusals.
    pub retry_after_s: Option<u64>,
}

/// The reason of a refusal, for the metrics layer.
#[derive(Clone)]
pub(super) struct Reason(pub(super) &'static str);

impl ApiError {
    pub fn new(status: StatusCode, issue: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self { status, issue, reason, message: message.into(), retry_after_s: None }
    }
    /// 503: the node is at a limit now; retry after `retry_after_s` seconds.
    pub fn busy(reason: &'static str, m: impl Into<String>, retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "transient", reason, m)
        }
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
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal", e.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        use dualchain_consensus::engine::SubmitError;
        use dualchain_consensus::Rejected;
        // The home validator's admission control: the consortium is saturated now.
        let busy = e.chain().any(|c| matches!(c.downcast_ref(), Some(SubmitError::Rejected(Rejected::Busy))));
        if busy {
            return Self::busy("consensus-busy", format!("{e:#}"), 1);
        }
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
        if let Some(s) = self.retry_after_s {
            r.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        r
    }
}

pub type ApiResult = Result<Response, ApiError>;

pub fn fhir_json(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], v.to_string()).into_response()
}

pub fn ok_json(v: &Value) -> ApiResult {
    Ok(fhir_json(StatusCode::OK, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_consortium_answers_503_with_retry_after() {
        use dualchain_consensus::engine::SubmitError;
        let e = anyhow::Error::new(SubmitError::Rejected(dualchain_consensus::Rejected::Busy))
            .context("hospital-a submitting");
        let r = ApiError::from(e);
        assert_eq!((r.status, r.reason, r.retry_after_s), (StatusCode::SERVICE_UNAVAILABLE, "consensus-busy", Some(1)));
        let other = ApiError::from(anyhow::anyhow!("disk full"));
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
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
