//! The privacy officer's console: a web page served by a hospital's node at `/console/`,
//! showing the institution's datasets, the grants and demands on them, the access log
//! (filterable by dataset, patient and period) and the break-glass review queue with its
//! actions. No framework: one HTML page, one script, one style sheet (`node/console/`),
//! under a Content-Security-Policy that allows nothing but them.
//!
//! Sign-in is with the institution's credentials: whoever holds the member's signing key
//! (`dualchain client console-signin`, a signed `POST /console/signin-code`) gets a
//! sign-in link with a one-time code, valid for [`CODE_TTL`]. Opening it shows a button;
//! the officer's click posts the code (`POST /console/signin`), which trades it for a
//! session cookie (`__Secure-` prefixed, `HttpOnly`, `Secure`, `SameSite=Strict`, path
//! `/console`, [`SESSION_TTL`]); a mail scanner or link preview that opens the link spends
//! nothing. The console's calls carry the cookie, their answers are never cached
//! (`no-store`), and the one action that changes anything, a review, also carries the
//! session's CSRF token in a header, compared in constant time. Only hospitals
//! (data owners) sign in; a session ends when its member is revoked, at sign-out, or when
//! it expires. The page is read-only but for reviews.
//!
//! What the console shows is what the owner's node already knows: the ledger, its own
//! datasets' openings (names, patients) and the scopes of break-glass requests made to it.
//! Which patients a delivery touched is computed here, from the owner's records and the
//! grant's demand or break-glass scope; the chain holds no patient.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dualchain_crypto::cert::Role;
use dualchain_ledger::state::GrantRecord;
use dualchain_ledger::tx::Hash;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::auth::{hosted_as, parse_id, Signed};
use super::emergency_routes::{record_json, review, ReviewSpec};
use super::error::{ok_json, ApiError, ApiResult};
use super::ApiState;
use crate::fhir::{parse_rfc3339, rfc3339};
use crate::runtime::{unix_ms, Hosted, Node};

/// How long a sign-in code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(120);
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Sign-in codes and sessions kept at once (the oldest go first).
const KEPT_MAX: usize = 256;
/// The session cookie's name.
pub const COOKIE: &str = "__Secure-dualchain_console";
/// The header that carries the session's CSRF token on a review.
pub const CSRF_HEADER: &str = "x-console-csrf";
/// Rows a list answers at most (grants, demands, access log).
const ROWS_MAX: usize = 2000;

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const STYLE_CSS: &str = include_str!("../../console/style.css");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Session {
    member: String,
    csrf: String,
    expires: Instant,
}

/// Sign-in codes and sessions, each kept by the SHA-256 of its secret.
#[derive(Default)]
pub struct Consoles {
    codes: Mutex<HashMap<Hash, (String, Instant)>>,
    sessions: Mutex<HashMap<Hash, Session>>,
}

fn secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn key(secret: &str) -> Hash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Drops expired entries and, past [`KEPT_MAX`], the one that expires first.
fn prune<V>(map: &mut HashMap<Hash, V>, expires: impl Fn(&V) -> Instant) {
    let now = Instant::now();
    map.retain(|_, v| expires(v) > now);
    while map.len() >= KEPT_MAX {
        let Some(oldest) = map.iter().min_by_key(|(_, v)| expires(v)).map(|(k, _)| *k) else { break };
        map.remove(&oldest);
    }
}

impl Consoles {
    fn issue_code(&self, member: &str) -> String {
        let code = secret();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut codes, |(_, e)| *e);
        codes.insert(key(&code), (member.to_string(), Instant::now() + CODE_TTL));
        code
    }

    /// Trades a code (once) for a session: the cookie's secret and the member.
    fn redeem(&self, code: &str) -> Option<(String, String)> {
        let (member, expires) = self.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(code))?;
        if expires <= Instant::now() {
            return None;
        }
        let token = secret();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut sessions, |s| s.expires);
        let session = Session { member: member.clone(), csrf: secret(), expires: Instant::now() + SESSION_TTL };
        sessions.insert(key(&token), session);
        Some((token, member))
    }

    /// The session a request's cookie names: its member and CSRF token.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let token = cookie(headers, COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let s = sessions.get(&key(&token)).filter(|s| s.expires > Instant::now())?;
        Some((s.member.clone(), s.csrf.clone()))
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(&token));
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// A console answer: the signed-in hospital's own data, never cached (a shared or back-
/// button cache would show it after sign-out).
fn private_json(v: &Value) -> ApiResult {
    let mut r = ok_json(v)?;
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// A console page or asset, with the headers every one of them carries.
fn page(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut r = (StatusCode::OK, body.into()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}
pub async fn app_js() -> Response {
    page("text/javascript; charset=utf-8", APP_JS)
}
pub async fn style_css() -> Response {
    page("text/css; charset=utf-8", STYLE_CSS)
}

/// `POST /console/signin-code`: a hospital's signed request for a one-time sign-in link.
pub async fn signin_code(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let code = api.consoles.issue_code(&h.member.id);
    let base = super::api_base(node).unwrap_or_default();
    private_json(&json!({
        "member": h.member.id,
        "url": format!("{base}/console/signin?code={code}"),
        "expires_s": CODE_TTL.as_secs(),
    }))
}

/// A sign-in code as the link carries it: 64 hex digits.
fn code_of(text: Option<&str>) -> Option<String> {
    let code = form_urlencoded::parse(text.unwrap_or_default().as_bytes())
        .find_map(|(k, v)| (k == "code").then(|| v.into_owned()))?;
    (code.len() == 64 && code.bytes().all(|b| b.is_ascii_hexdigit())).then_some(code)
}

fn signin_refused() -> Response {
    let mut r = page("text/html; charset=utf-8", SIGNIN_REFUSED);
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

/// `GET /console/signin?code=`: the sign-in link's page, a button that posts the code.
/// Opening the link spends nothing (mail scanners and link previews open links); only the
/// officer's click, a `POST` from this page, does.
pub async fn signin(uri: axum::http::Uri) -> Response {
    match code_of(uri.query()) {
        Some(code) => page("text/html; charset=utf-8", SIGNIN_CONFIRM.replace("{code}", &code)),
        None => signin_refused(),
    }
}

/// `POST /console/signin` (form `code=`): trades the code, once, for a session; sets the
/// session cookie.
pub async fn signin_post(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some((token, _)) = code_of(std::str::from_utf8(&body).ok()).and_then(|c| api.consoles.redeem(&c)) else {
        return signin_refused();
    };
    let cookie = format!(
        "{COOKIE}={token}; Path=/console; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        SESSION_TTL.as_secs()
    );
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/console/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

const SIGNIN_CONFIRM: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Sign in</title><link rel=\"stylesheet\" href=\"/console/style.css\"></head><body>\
<main><h1>Privacy officer's console</h1><form method=\"post\" action=\"/console/signin\">\
<input type=\"hidden\" name=\"code\" value=\"{code}\"><p>This one-time link signs you in for an hour.</p>\
<button type=\"submit\" id=\"confirm-signin\">Sign in</button></form></main></body></html>";

const SIGNIN_REFUSED: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Sign-in refused</title><link rel=\"stylesheet\" href=\"/console/style.css\"></head><body>\
<main><h1>Sign-in refused</h1><p id=\"refused\">This sign-in link is unknown, used or expired. \
Ask for a new one with <code>dualchain client console-signin</code>.</p></main></body></html>";

/// `POST /console/api/signout`.
pub async fn signout(State(api): State<ApiState>, headers: HeaderMap) -> Response {
    api.consoles.end(&headers);
    let mut r = StatusCode::NO_CONTENT.into_response();
    let gone = format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The signed-in hospital hosted here, and the session's CSRF token.
fn signed_in<'a>(api: &'a ApiState, headers: &HeaderMap) -> Result<(&'a Hosted, String), ApiError> {
    let (member, csrf) = api.consoles.session(headers).ok_or_else(|| {
        ApiError::unauthorized("not-signed-in", "sign in with a link from `dualchain client console-signin`")
    })?;
    let h = api
        .node
        .hosted()
        .filter(|h| h.member.id == member)
        .ok_or_else(|| ApiError::forbidden("not-hosted", "the session's member is not hosted here"))?;
    match api.node.ledger.member(&member)? {
        Some(m) if m.revoked.is_none() => Ok((h, csrf)),
        _ => Err(ApiError::forbidden("revoked", format!("{member} is revoked or unknown"))),
    }
}

/// `GET /console/api/session`.
pub async fn session(State(api): State<ApiState>, headers: HeaderMap) -> ApiResult {
    let (h, csrf) = signed_in(&api, &headers)?;
    private_json(&json!({"member": h.member.id, "consortium": api.node.consortium.name, "csrf": csrf}))
}

/// `GET /console/api/overview`: the institution's datasets, and the grants and demands on them.
pub async fn overview(State(api): State<ApiState>, headers: HeaderMap) -> ApiResult {
    let (h, _) = signed_in(&api, &headers)?;
    let node = &api.node;
    let granted = owner_grants(node, h)?;
    let mine = owned(h, &granted)?;
    let name = |id: &Hash| mine.iter().find(|(d, _, _)| d == id).map(|(_, n, _)| n.clone()).unwrap_or_default();
    let datasets: Vec<Value> = mine
        .iter()
        .filter_map(|(id, name, records)| {
            let d = node.ledger.dataset(id).ok().flatten()?;
            Some(json!({
                "id": hex::encode(id), "name": name, "records": records, "capacity": d.capacity,
                "policy": d.policy, "registered": rfc3339(d.registered_ms / 1000),
                "erased": d.erased.as_ref().map(|e| json!({"at": rfc3339(e.at_ms / 1000), "reason": e.reason})),
            }))
        })
        .collect();
    let now = unix_ms();
    let grants: Vec<Value> = granted
        .into_iter()
        .take(ROWS_MAX)
        .map(|g| {
            let status = match (&g.status, g.usable(now)) {
                (dualchain_ledger::state::GrantStatus::Revoked { reason, .. }, _) => format!("revoked: {reason}"),
                (_, Err(_)) => "expired".into(),
                _ => "active".into(),
            };
            json!({
                "id": hex::encode(g.id), "dataset": hex::encode(g.dataset), "dataset_name": name(&g.dataset),
                "requester": g.requester, "granted": rfc3339(g.granted_ms / 1000),
                "expires": rfc3339(g.expires_ms / 1000), "status": status, "receipts": g.receipts,
                "break_glass": g.break_glass.map(hex::encode),
            })
        })
        .collect();
    let demands: Vec<Value> = node
        .ledger
        .demands(usize::MAX)?
        .into_iter()
        .filter(|d| mine.iter().any(|(id, _, _)| *id == d.dataset))
        .take(ROWS_MAX)
        .map(|d| {
            json!({
                "id": hex::encode(d.id), "dataset": hex::encode(d.dataset), "dataset_name": name(&d.dataset),
                "requester": d.requester, "purpose": d.purpose.code(), "published": rfc3339(d.published_ms / 1000),
                "threshold": d.requirement.threshold, "supplied": d.supplied_by.is_some(),
            })
        })
        .collect();
    let consents = consent_rows(h, now);
    private_json(&json!({"member": h.member.id, "datasets": datasets, "grants": grants, "demands": demands,
        "consents": consents}))
}

/// Each patient's latest Consent at the owner, newest first: what it says and what it
/// permits at `now_ms`.
fn consent_rows(h: &Hosted, now_ms: u64) -> Vec<Value> {
    use crate::member::consent::describe;
    let Some(owner) = &h.owner else { return Vec::new() };
    let book = owner.consents.lock().unwrap_or_else(|p| p.into_inner());
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for (c, rule) in book.all().collect::<Vec<_>>().into_iter().rev() {
        if !seen.insert(rule.patient.clone()) || rows.len() >= ROWS_MAX {
            continue;
        }
        let purposes: Vec<&str> = rule.purposes.iter().map(|p| p.code()).collect();
        let mut provision = format!(
            "{} {}",
            if rule.permit { "permit" } else { "deny" },
            if purposes.is_empty() { "every purpose".to_string() } else { purposes.join(", ") }
        );
        if !rule.roles.is_empty() {
            provision.push_str(&format!(" to {}", rule.roles.join(", ")));
        }
        let bound = |t: Option<i64>| t.map(|t| rfc3339(u64::try_from(t / 1000).unwrap_or(0)));
        match (bound(rule.period.0), bound(rule.period.1)) {
            (None, None) => {}
            (s, e) => provision.push_str(&format!(
                " from {} until {}",
                s.unwrap_or_else(|| "the start".into()),
                e.unwrap_or_else(|| "withdrawn".into())
            )),
        }
        rows.push(json!({
            "patient": rule.patient, "status": c["status"], "provision": provision,
            "recorded": c["meta"]["lastUpdated"], "permits": describe(book.mask_under(rule, now_ms as i64)),
        }));
    }
    rows
}

/// The grants on the owner's datasets (one scan of the ledger's grants).
fn owner_grants(node: &Node, h: &Hosted) -> Result<Vec<GrantRecord>, ApiError> {
    Ok(node.ledger.grants(usize::MAX)?.into_iter().filter(|g| g.owner == h.member.id).collect())
}

/// The owner's datasets: (id, name, records), by id; with `grants` (its grants), also the
/// datasets it erased that were granted, which its node no longer keeps.
fn owned(h: &Hosted, grants: &[GrantRecord]) -> Result<Vec<(Hash, String, usize)>, ApiError> {
    let owner = h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only data owners"))?;
    let kept = owner.datasets.lock().unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<(Hash, String, usize)> =
        kept.iter().map(|(id, d)| (*id, d.name.clone(), d.records.len())).collect();
    drop(kept);
    // Erased datasets are forgotten by the owner's node; the ledger still lists them.
    for g in grants {
        if !out.iter().any(|(id, _, _)| *id == g.dataset) {
            out.push((g.dataset, String::new(), 0));
        }
    }
    out.sort();
    Ok(out)
}

/// `GET /console/api/access?dataset=&patient=&from=&to=`: the access log (deliveries,
/// fetches and break-glass requests) as rows, newest first, each with the patients it
/// touched and whether its inclusion proof checks.
pub async fn access(State(api): State<ApiState>, headers: HeaderMap, uri: axum::http::Uri) -> ApiResult {
    let (h, _) = signed_in(&api, &headers)?;
    let node = &api.node;
    let mut q: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        if !v.is_empty() {
            q.insert(k.into_owned(), v.into_owned());
        }
    }
    let day = |k: &str, end: bool| -> Result<Option<u64>, ApiError> {
        let Some(v) = q.get(k) else { return Ok(None) };
        let t = parse_rfc3339(&format!("{v}T00:00:00Z"))
            .ok_or_else(|| ApiError::invalid("bad-parameter", format!("{k} is a date, YYYY-MM-DD")))?;
        Ok(Some(t + if end { 86_400 } else { 0 }))
    };
    let (from, to) = (day("from", false)?, day("to", true)?);
    let dataset = q.get("dataset").map(|d| parse_id(d, "dataset")).transpose()?;
    let patient = q.get("patient").cloned();
    let mine = owned(h, &owner_grants(node, h)?)?;
    let name = |id: &Hash| mine.iter().find(|(d, _, _)| d == id).map(|(_, n, _)| n.clone()).unwrap_or_default();
    let mut rows = Vec::new();
    let mut grants: HashMap<Hash, (Option<GrantRecord>, Vec<String>)> = HashMap::new();
    for (id, _, _) in mine.iter().filter(|(id, _, _)| dataset.is_none_or(|d| d == *id)) {
        for (record, _proof, verified) in super::flow_routes::checked_audit(node, id)? {
            let (g, patients) = grants.entry(record.grant).or_insert_with(|| {
                let g = node.ledger.grant(&record.grant).ok().flatten();
                let p = g.as_ref().map(|g| super::audit::delivered_patients(node, h, g)).unwrap_or_default();
                (g, p)
            });
            let kind = match record.event {
                dualchain_ledger::state::AccessEvent::Reencrypted => "re-encrypted",
                dualchain_ledger::state::AccessEvent::Fetched => "fetched",
            };
            let purpose = g.as_ref().map_or_else(String::new, |g| super::audit::purpose_of(node, g));
            rows.push(json!({
                "at_ms": record.at_ms, "recorded": rfc3339(record.at_ms / 1000), "event": kind,
                "purpose": purpose, "requester": record.requester, "dataset": hex::encode(record.dataset),
                "dataset_name": name(&record.dataset), "grant": hex::encode(record.grant), "records": record.records,
                "patients": patients, "verified": verified, "tx": hex::encode(record.receipt_tx),
            }));
        }
    }
    for super::audit::BreakGlassEntry { record: r, datasets: on, verified, .. } in
        super::audit::break_glass_log(node, &h.member.id)?
    {
        if dataset.is_some_and(|d| !on.contains(&d)) {
            continue;
        }
        let opened = record_json(&node.ledger, &h.member, &r);
        let patients: Vec<String> = serde_json::from_value(opened["scope"]["patients"].clone()).unwrap_or_default();
        rows.push(json!({
            "at_ms": r.requested_ms, "recorded": rfc3339(r.requested_ms / 1000), "event": "break-glass",
            "purpose": r.purpose, "requester": r.requester,
            "dataset": on.first().map(hex::encode), "dataset_name": on.first().map(&name),
            "grant": r.grants.first().map(|g| hex::encode(g.0)), "records": Value::Null,
            "patients": patients, "verified": verified, "tx": hex::encode(r.tx),
        }));
    }
    // Consents recorded (no dataset: a consent covers every dataset holding the patient).
    if let (Some(owner), None) = (&h.owner, dataset) {
        for e in super::audit::consent_log(node, owner)? {
            let at = e["recorded"].as_str().and_then(parse_rfc3339).unwrap_or(0);
            let status = e["entity"][0]["detail"][0]["valueString"].as_str().unwrap_or_default();
            rows.push(json!({
                "at_ms": at * 1000, "recorded": e["recorded"], "event": format!("consent ({status})"),
                "purpose": "", "requester": h.member.id, "dataset": Value::Null, "dataset_name": "every dataset",
                "grant": Value::Null, "records": Value::Null, "patients": [e["entity"][1]["what"]["reference"]],
                "verified": e["extension"][1]["valueBoolean"] == true, "tx": e["entity"][2]["what"]["identifier"]["value"],
            }));
        }
    }
    // Erasures (a patient's names the patient and the dataset that replaced the old one).
    if let Some(owner) = &h.owner {
        let erasures = owner.erasures.lock().unwrap_or_else(|p| p.into_inner()).all().cloned().collect::<Vec<_>>();
        for e in erasures.iter().filter(|e| dataset.is_none_or(|d| d == e.dataset || Some(d) == e.replaced_by)) {
            let verified = super::audit::checked_proof(node, &e.tx)?.is_some_and(|(_, v)| v);
            let event = match e.replaced_by {
                Some(new) => format!("erasure (patient; replaced by {})", &hex::encode(new)[..12]),
                None if e.patient.is_some() => "erasure (patient)".to_string(),
                None => "erasure (dataset)".to_string(),
            };
            rows.push(json!({
                "at_ms": e.at_ms, "recorded": rfc3339(e.at_ms / 1000), "event": event, "purpose": "",
                "requester": h.member.id, "dataset": hex::encode(e.dataset), "dataset_name": name(&e.dataset),
                "grant": Value::Null, "records": e.records, "patients": e.patient.iter().collect::<Vec<_>>(),
                "verified": verified, "tx": hex::encode(e.tx),
            }));
        }
    }
    rows.retain(|r| {
        let t = r["at_ms"].as_u64().unwrap_or(0) / 1000;
        from.is_none_or(|f| t >= f)
            && to.is_none_or(|e| t < e)
            && patient.as_ref().is_none_or(|p| r["patients"].as_array().is_some_and(|a| a.iter().any(|x| x == p)))
    });
    rows.sort_by_key(|r| std::cmp::Reverse(r["at_ms"].as_u64().unwrap_or(0)));
    rows.truncate(ROWS_MAX);
    private_json(&json!({"rows": rows}))
}

/// `GET /console/api/break-glass`: the review queue, newest first, with the opened scopes.
pub async fn break_glass(State(api): State<ApiState>, headers: HeaderMap) -> ApiResult {
    let (h, _) = signed_in(&api, &headers)?;
    let mut queue: Vec<Value> = api
        .node
        .ledger
        .break_glass_to(&h.member.id)?
        .iter()
        .map(|r| record_json(&api.node.ledger, &h.member, r))
        .collect();
    queue.reverse();
    private_json(&json!({"requests": queue}))
}

/// `POST /console/api/break-glass/{id}/review` (with the session's CSRF token).
pub async fn review_break_glass(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let (h, csrf) = signed_in(&api, &headers)?;
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Compared in constant time: how much of a guess matched shows in no timing.
    if sent.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), csrf.as_bytes())) {
        return Err(ApiError::forbidden("csrf", "the review does not carry this session's CSRF token"));
    }
    let id = parse_id(&id, "break-glass request")?;
    let spec: ReviewSpec =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("bad-json", format!("the review: {e}")))?;
    let f = review(&api.node, h, id, spec).await?;
    private_json(&super::wire::final_json(&f))
}
