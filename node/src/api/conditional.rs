//! FHIR REST semantics of creates (FHIR R4 `http.html`): conditional create, so that a
//! gateway or integration engine that retries after a lost answer creates nothing twice,
//! and the `Prefer` header, which chooses what a create answers.
//!
//! - **Conditional create**: `If-None-Exist: identifier=<system>|<value>` on
//!   `POST /fhir/Observation` and `POST /fhir/Patient`, or `request.ifNoneExist` on an entry
//!   of a `POST /fhir` Bundle. If this node already holds a resource of that type with that
//!   identifier, the create is skipped and answered `200 OK` with the existing resource's
//!   location; otherwise it proceeds (`201 Created`). Only the `identifier` token with both
//!   system and value is supported as criteria; anything else is refused (`400`,
//!   `unsupported-condition`) rather than ignored. Every created resource's identifiers are
//!   indexed ([`Identifiers`], `identifiers.json` in the node's data directory, readable by
//!   the node's user only), whether or not its create was conditional.
//! - **`Prefer`**: `return=minimal` answers no body (the status and `Location` say it
//!   all), `return=OperationOutcome` an informational `OperationOutcome` of what was done,
//!   `return=representation` (and no header) the resource; on a Bundle, `representation`
//!   puts each created resource in its entry and `OperationOutcome` each entry's outcome.
//!
//! Limit: a Bundle's identifiers are indexed once its dataset is registered, so a crash
//! between the registration and the index write leaves a retry of that transaction free to
//! create its Observations again, in a second dataset.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::{operation_outcome, ApiError};
use super::limits::on_disk;

/// What the client prefers a create to answer (`Prefer: return=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    Minimal,
    Representation,
    Outcome,
}

impl Prefer {
    /// From the request's `Prefer` header; the resource when it names no `return`.
    pub fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get("prefer").and_then(|v| v.to_str().ok()) else {
            return Ok(Prefer::Representation);
        };
        for part in value.split([';', ',']).map(str::trim) {
            if let Some(ret) = part.strip_prefix("return=") {
                return match ret.trim_matches('"') {
                    "minimal" => Ok(Prefer::Minimal),
                    "representation" => Ok(Prefer::Representation),
                    "OperationOutcome" => Ok(Prefer::Outcome),
                    other => Err(ApiError::invalid(
                        "bad-prefer",
                        format!("Prefer: return={other}; use minimal, representation or OperationOutcome"),
                    )),
                };
            }
        }
        Ok(Prefer::Representation)
    }
}

/// An informational `OperationOutcome` saying what a create did.
pub fn outcome(reason: &str, message: &str) -> Value {
    operation_outcome("information", "informational", reason, message)
}

/// The index key of a resource type and identifier.
fn key(kind: &str, system: &str, value: &str) -> String {
    format!("{kind}|{system}|{value}")
}

/// Parses `If-None-Exist` criteria (`identifier=<system>|<value>`, percent-encoded as a
/// query string) into the index key for resources of `kind`.
pub fn criteria(kind: &str, query: &str) -> Result<String, ApiError> {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.trim_start_matches('?').as_bytes()).map(|(k, v)| (k.into(), v.into())).collect();
    let unsupported = |why: &str| {
        ApiError::invalid(
            "unsupported-condition",
            format!("If-None-Exist {query:?}: {why}; this node supports identifier=<system>|<value>"),
        )
    };
    match &params[..] {
        [(name, token)] if name == "identifier" => match token.split_once('|') {
            Some((system, value)) if !system.is_empty() && !value.is_empty() => Ok(key(kind, system, value)),
            _ => Err(unsupported("the identifier needs both a system and a value")),
        },
        [] => Err(unsupported("no criteria")),
        _ => Err(unsupported("only one identifier criterion is supported")),
    }
}

/// The `If-None-Exist` header of a single create, as an index key.
pub fn if_none_exist(kind: &str, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("if-none-exist") {
        None => Ok(None),
        Some(v) => {
            let q = v.to_str().map_err(|_| ApiError::invalid("unsupported-condition", "If-None-Exist is not text"))?;
            criteria(kind, q).map(Some)
        }
    }
}

/// The index keys of a resource's identifiers (`identifier[].system|value`, both present).
pub fn keys_of(resource: &Value) -> Vec<String> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    resource["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some(key(kind, i["system"].as_str()?, i["value"].as_str()?)))
        .collect()
}

/// The identifiers of the resources this node created, each with its location
/// (`Observation/<id>`; empty for a resource posted without an id).
#[derive(Default)]
pub struct Identifiers {
    map: HashMap<String, String>,
}

impl Identifiers {
    fn path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("identifiers.json")
    }

    pub fn load(data_dir: &std::path::Path) -> Result<Self, ApiError> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(b) => Ok(Self { map: serde_json::from_slice(&b).map_err(ApiError::internal)? }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// The location of the resource an index key names, if this node created one.
    pub fn find(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Indexes `resource`'s identifiers at `location`, on disk first (synced).
    pub fn add(&mut self, data_dir: &std::path::Path, added: &[(&Value, String)]) -> Result<(), ApiError> {
        let new: Vec<(String, &String)> = added
            .iter()
            .flat_map(|(resource, location)| keys_of(resource).into_iter().map(move |k| (k, location)))
            .filter(|(k, _)| !self.map.contains_key(k))
            .collect();
        if new.is_empty() {
            return Ok(()); // nothing to write (most Observations carry no identifier)
        }
        let mut all = self.map.clone();
        for (k, location) in new {
            all.entry(k).or_insert_with(|| location.clone());
        }
        let bytes = serde_json::to_vec(&all).map_err(ApiError::internal)?;
        let path = Self::path(data_dir);
        on_disk(|| Ok(crate::files::write_private(&path, &bytes)?))?;
        self.map = all;
        Ok(())
    }

    /// Drops the identifiers indexed at `location` (a patient's, at the patient's erasure),
    /// on disk first (synced). Returns how many it dropped.
    pub fn remove_location(&mut self, data_dir: &std::path::Path, location: &str) -> Result<usize, ApiError> {
        let mut kept = self.map.clone();
        kept.retain(|_, l| l != location);
        let removed = self.map.len() - kept.len();
        if removed > 0 {
            let bytes = serde_json::to_vec(&kept).map_err(ApiError::internal)?;
            let path = Self::path(data_dir);
            on_disk(|| Ok(crate::files::write_private(&path, &bytes)?))?;
            self.map = kept;
        }
        Ok(removed)
    }
}

/// The answer to a conditional create that found its resource: `200 OK` and its location.
pub fn exists(prefer: Prefer, location: &str) -> Response {
    let said = format!("not created: {location} already holds this identifier");
    answer(StatusCode::OK, prefer, None, location, "exists", &said)
}

/// A create's answer: `201 Created`, its `Location`, and the body `prefer` asks for.
pub fn created(prefer: Prefer, resource: &Value, location: &str, said: &str) -> Response {
    answer(StatusCode::CREATED, prefer, Some(resource), location, "created", said)
}

/// A create's answer: `status`, the `Location` (none when empty), and as body nothing
/// (`minimal`), the resource (`representation`, where there is one) or an informational
/// `OperationOutcome` of `reason` and `said`.
fn answer(
    status: StatusCode,
    prefer: Prefer,
    resource: Option<&Value>,
    location: &str,
    reason: &str,
    said: &str,
) -> Response {
    let body = match (prefer, resource) {
        (Prefer::Minimal, _) => String::new(),
        (Prefer::Representation, Some(r)) => r.to_string(),
        _ => outcome(reason, said).to_string(),
    };
    let mut r = (status, [(header::CONTENT_TYPE, super::FHIR_JSON)], body).into_response();
    if let (false, Ok(v)) = (location.is_empty(), HeaderValue::from_str(location)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// An entry of a transaction-response: its status, its location, and what `prefer` asks.
pub fn entry(prefer: Prefer, status: &str, location: Option<&str>, resource: &Value, said: &str) -> Value {
    let mut response = json!({ "status": status });
    if let Some(l) = location {
        response["location"] = json!(l);
    }
    if prefer == Prefer::Outcome {
        response["outcome"] = outcome(if status.starts_with("200") { "exists" } else { "created" }, said);
    }
    let mut e = json!({ "response": response });
    if prefer == Prefer::Representation && status.starts_with("201") {
        e["resource"] = resource.clone();
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identifier_criteria_with_system_and_value_are_taken() {
        assert_eq!(criteria("Observation", "identifier=urn:x|42").unwrap(), "Observation|urn:x|42");
        assert_eq!(
            criteria("Patient", "identifier=http%3A%2F%2Fh.example%2Fmrn%7C7").unwrap(),
            "Patient|http://h.example/mrn|7"
        );
        for bad in ["identifier=42", "identifier=|42", "identifier=urn:x|", "code=8867-4", "", "identifier=a|1&code=2"]
        {
            let e = criteria("Observation", bad).unwrap_err();
            assert_eq!(e.reason, "unsupported-condition", "{bad}");
        }
    }

    #[test]
    fn prefer_chooses_the_answer_and_refuses_what_it_does_not_know() {
        let of = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("prefer", v.parse().unwrap());
            Prefer::of(&h)
        };
        assert_eq!(of("return=minimal").unwrap(), Prefer::Minimal);
        assert_eq!(of("handling=strict; return=OperationOutcome").unwrap(), Prefer::Outcome);
        assert_eq!(of("respond-async").unwrap(), Prefer::Representation);
        assert_eq!(Prefer::of(&HeaderMap::new()).unwrap(), Prefer::Representation);
        assert_eq!(of("return=everything").unwrap_err().reason, "bad-prefer");
    }

    #[test]
    fn identifiers_survive_a_restart_and_the_first_location_wins() {
        let dir = tempfile::tempdir().unwrap();
        let obs = json!({"resourceType": "Observation", "identifier": [{"system": "urn:x", "value": "1"}, {"value": "no-system"}]});
        let mut ids = Identifiers::load(dir.path()).unwrap();
        ids.add(dir.path(), &[(&obs, "Observation/a".into())]).unwrap();
        ids.add(dir.path(), &[(&obs, "Observation/b".into())]).unwrap();
        let again = Identifiers::load(dir.path()).unwrap();
        assert_eq!(again.find("Observation|urn:x|1"), Some("Observation/a"));
        assert_eq!(again.find("Patient|urn:x|1"), None);
        assert_eq!(again.map.len(), 1, "an identifier without a system is not indexed");
    }
}
