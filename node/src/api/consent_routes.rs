//! Patients' consent at a hospital's node: `POST /fhir/Consent` records a FHIR R4 Consent
//! (as [`crate::member::consent`] reads it) and answers once every dataset's consent
//! commitment on chain follows it, with the Consent as kept: its `meta.tag`s name the
//! commitments' transactions (`urn:dualchain:tx`) and the grants made before it over
//! datasets holding the patient's records (`urn:dualchain:earlier-grant`: what they
//! delivered stays delivered), and its narrative says so in words; `GET /fhir/Consent?patient=<reference>` lists a patient's
//! Consents, newest last. Both are the hospital's own (its member signature, or a SMART
//! token with `system/Consent` scopes): consent is kept at the hospital, and the chain
//! holds commitments only.

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::auth::{hosted_as, Fhir};
use super::conditional::{created, Prefer};
use super::error::{ok_json, ApiError, ApiResult};
use super::fhir_routes::{expect_type, owner_of, OwnerState};
use super::smart::Interaction;
use super::ApiState;
use crate::member::consent::{describe, ConsentRule, CONSENT_LEN_MAX};
use dualchain_crypto::cert::Role;

pub async fn post_consent(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    s.allow("Consent", Interaction::Create)?;
    let prefer = Prefer::of(&headers)?;
    let mut consent: Value = s.json()?;
    expect_type(&consent, "Consent")?;
    if consent.to_string().len() > CONSENT_LEN_MAX {
        return Err(ApiError::unprocessable("too-large", format!("a Consent is at most {CONSENT_LEN_MAX} bytes")));
    }
    let rule =
        ConsentRule::from_fhir(&consent).map_err(|e| ApiError::unprocessable("bad-consent", format!("{e:#}")))?;
    if !OwnerState::knows_patient(&api, &rule.patient).await? {
        return Err(ApiError::unprocessable(
            "unknown-patient",
            format!("{} is not a patient registered at this hospital", rule.patient),
        ));
    }
    // The server assigns ids on create (FHIR R4 §3.1.0.1.1).
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let id = hex::encode(id);
    consent["id"] = json!(id);
    consent["meta"] = json!({"lastUpdated": crate::fhir::rfc3339(crate::clock::unix_ms() / 1000)});
    let now = crate::clock::unix_ms() as i64;
    let owner = owner_of(h)?;
    let uses = describe(owner.consents.lock().unwrap_or_else(|p| p.into_inner()).mask_under(&rule, now));
    let patient = rule.patient.clone();
    let change = owner.record_consent(consent.clone(), rule).await.map_err(|e| {
        if e.downcast_ref::<crate::agents::owner::ConsentNotKept>().is_some() {
            return ApiError::internal(format!("{e:#}"));
        }
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "consent-not-committed",
            format!("the Consent is recorded here, but its commitments are not final yet: {e:#}; it is applied at the next use of each dataset"),
        )
    })?;
    let permitted = if uses.is_empty() { "no use".to_string() } else { uses.join(", ") };
    let earlier = if change.earlier_grants.is_empty() {
        "No earlier grant covers datasets holding this patient's records.".to_string()
    } else {
        let list: Vec<String> = change
            .earlier_grants
            .iter()
            .map(|g| {
                format!("{} (to {}, {})", hex::encode(g.id), g.requester, crate::fhir::rfc3339(g.granted_ms / 1000))
            })
            .collect();
        format!(
            "Records already delivered stay with their requesters: {} earlier grant(s) cover datasets holding this patient's records: {}.",
            list.len(),
            list.join("; ")
        )
    };
    let said = format!(
        "recorded; {} dataset(s) re-committed. {patient}'s {} record(s) here count and are delivered for: {permitted}. {earlier}",
        change.recommitted, change.records
    );
    tracing::info!(consent = %id, datasets = change.recommitted, "consent recorded");
    let mut answer = change.consent;
    let earlier = change
        .earlier_grants
        .iter()
        .map(|g| json!({"system": "urn:dualchain:earlier-grant", "code": hex::encode(g.id), "display": g.requester}));
    let mut tags: Vec<Value> = answer["meta"]["tag"].as_array().cloned().unwrap_or_default();
    tags.extend(earlier);
    if !tags.is_empty() {
        answer["meta"]["tag"] = json!(tags);
    }
    let div = format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{}</p></div>", xml_escape(&said));
    answer["text"] = json!({"status": "generated", "div": div});
    Ok(created(prefer, &answer, &format!("Consent/{id}"), &said))
}

/// Text as XHTML character data.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub async fn search_consents(State(api): State<ApiState>, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    s.allow("Consent", Interaction::Search)?;
    let patient = s
        .param("patient")
        .ok_or_else(|| ApiError::invalid("bad-parameter", "name the patient: ?patient=Patient/<id>"))?;
    let owner = owner_of(h)?;
    let entries: Vec<Value> = {
        let book = owner.consents.lock().unwrap_or_else(|p| p.into_inner());
        book.history(&patient).into_iter().map(|c| json!({"resource": c, "search": {"mode": "match"}})).collect()
    };
    ok_json(&json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}))
}
