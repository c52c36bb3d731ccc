//! SMART Backend Services for a hospital's FHIR clients (HL7 SMART App Launch 2.2,
//! "Backend Services"): an integration engine or a bedside gateway authenticates with the
//! OAuth 2.0 client-credentials grant (RFC 6749 §4.4) and a signed JWT client assertion
//! (RFC 7523 §2.2, `private_key_jwt`), gets a short-lived bearer token with SMART `system/`
//! scopes, and calls the FHIR endpoints with it. The Ed25519-signed headers stay for
//! node-to-node and CLI calls (the `auth` module).
//!
//! - **Registration** (`POST /smart/clients`, `GET /smart/clients`,
//!   `POST /smart/clients/{id}/remove`, signed by the member the node hosts): the
//!   institution registers each client at its own node with a JWK Set of public keys
//!   (RS384 with an RSA modulus of at least 2048 bits, or ES384 on P-384; every key with a
//!   `kid`) and the scopes it may be granted. Kept in `smart-clients.json` in the node's data
//!   directory (public keys only; written atomically, readable by the node's user). A JWKS
//!   URL is not fetched: a node reaches no host outside its consortium, so keys are
//!   registered by value, and rotated by registering the client again.
//! - **Token** (`POST /smart/token`, form-encoded; advertised in the CapabilityStatement's
//!   `oauth-uris` extension and at `/fhir/.well-known/smart-configuration`): the
//!   assertion's header names `alg` RS384 or ES384 and the `kid` of a registered key, no
//!   `jku`; its claims have `iss` = `sub` = the client id, `aud` = the token endpoint's URL,
//!   `exp` at most five minutes ahead, and a `jti` never seen before from that client
//!   (kept until the assertion expires). The scopes granted are those asked for that the
//!   registration covers (others are dropped, as SMART allows; none left is
//!   `invalid_scope`). Refusals are OAuth 2.0 error answers (RFC 6749 §5.2).
//! - **Tokens** are 32 random bytes in hex, kept in memory only by their SHA-256 (a node's
//!   restart ends them; clients ask again), for `api.token_ttl_s` (300 s by default), at
//!   most `api.tokens_max` at once (then 503). A token acts for the member this node hosts,
//!   within its scopes: `system/Observation.write` or `.c` creates Observations (and,
//!   inside a transaction Bundle, each entry's type needs its own create scope), `.read`
//!   or `.s` searches them. Every token issued and every request made with one is logged
//!   (target `dualchain::smart`: client, scopes, method, path) and counted per client in
//!   `/metrics`.
//!
//! Scopes are SMART v1 (`read`, `write`, `*`) or v2 (`c`, `r`, `u`, `d`, `s` in that
//! order); a resource of `*` covers every type. v2 scopes with query parameters
//! (`system/Observation.rs?category=…`) are not granted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::error::{ApiError, Reason};
use super::limits::on_disk;
use crate::runtime::{unix_ms, Node};

/// RFC 7523's client assertion type.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The token endpoint's path on a node's API.
pub const TOKEN_PATH: &str = "/smart/token";
/// The longest an assertion may live (SMART: `exp` no more than five minutes ahead).
const ASSERTION_LIFE_MAX_S: u64 = 300;
/// Clock skew allowed on an assertion's `exp`.
const LEEWAY_S: u64 = 30;
const CLIENTS_MAX: usize = 64;
const KEYS_PER_CLIENT_MAX: usize = 8;
const RSA_BITS_MIN: usize = 2048;
const ASSERTION_BYTES_MAX: usize = 16 << 10;

/// The five SMART v2 permissions, as bits.
const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;

/// What a FHIR request does, against the permissions of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Search,
}

impl Interaction {
    fn bit(self) -> u8 {
        match self {
            Interaction::Create => C,
            Interaction::Search => S,
        }
    }
    /// The narrowest SMART v2 scope suffix that allows it.
    pub fn suffix(self) -> &'static str {
        match self {
            Interaction::Create => "c",
            Interaction::Search => "s",
        }
    }
}

/// One `system/<Resource>.<permissions>` scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// A FHIR resource type, or `*`.
    resource: String,
    perms: u8,
}

impl Scope {
    /// A SMART v1 or v2 `system/` scope; `None` for anything else (user or patient scopes,
    /// `launch`, `openid`, scopes with query parameters, malformed ones).
    pub fn parse(s: &str) -> Option<Scope> {
        let (resource, perms) = s.strip_prefix("system/")?.split_once('.')?;
        let resource_ok = resource == "*"
            || (resource.len() <= 64
                && resource.starts_with(|c: char| c.is_ascii_uppercase())
                && resource.chars().all(|c| c.is_ascii_alphanumeric()));
        if !resource_ok {
            return None;
        }
        let perms = match perms {
            "read" => R | S,
            "write" => C | U | D,
            "*" => C | R | U | D | S,
            v2 => {
                // c, r, u, d, s: each at most once and in that order.
                let mut bits = 0u8;
                let mut last = 0usize;
                for ch in v2.chars() {
                    let at = "cruds".find(ch)? + 1;
                    if at <= last {
                        return None;
                    }
                    last = at;
                    bits |= 1 << (at - 1);
                }
                if bits == 0 {
                    return None;
                }
                bits
            }
        };
        Some(Scope { resource: resource.to_owned(), perms })
    }

    /// Whether this scope grants everything `other` asks.
    fn covers(&self, other: &Scope) -> bool {
        (self.resource == "*" || self.resource == other.resource) && other.perms & !self.perms == 0
    }

    fn allows(&self, resource: &str, i: Interaction) -> bool {
        (self.resource == "*" || self.resource == resource) && self.perms & i.bit() != 0
    }
}

/// A set of scopes, as registered for a client or granted in a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<(String, Scope)>);

impl Scopes {
    /// Space-separated scopes; any that is not a `system/` scope is refused by name.
    pub fn parse_strict(s: &str) -> Result<Scopes, String> {
        let mut out = Vec::new();
        for word in s.split_ascii_whitespace() {
            let scope = Scope::parse(word).ok_or_else(|| {
                format!("{word:?} is not a SMART system scope (system/<Resource|*>.<read|write|*|cruds>)")
            })?;
            out.push((word.to_owned(), scope));
        }
        if out.is_empty() {
            return Err("no scope".into());
        }
        Ok(Scopes(out))
    }

    /// Of the scopes `requested` (space-separated), those this set covers.
    pub fn grant(&self, requested: &str) -> Scopes {
        Scopes(
            requested
                .split_ascii_whitespace()
                .filter_map(|w| Scope::parse(w).map(|s| (w.to_owned(), s)))
                .filter(|(_, s)| self.0.iter().any(|(_, mine)| mine.covers(s)))
                .collect(),
        )
    }

    pub fn allows(&self, resource: &str, i: Interaction) -> bool {
        self.0.iter().any(|(_, s)| s.allows(resource, i))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|(w, _)| w.as_str()).collect();
        f.write_str(&words.join(" "))
    }
}

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub client_id: String,
    /// The scopes it may be granted (space-separated).
    pub scope: String,
    /// Its public keys.
    pub jwks: JwkSet,
    #[serde(default)]
    pub registered_ms: u64,
}

impl Registration {
    /// Checks a registration before it is kept: the id's form, the scopes, every key.
    pub fn check(&self) -> Result<(), String> {
        let id = &self.client_id;
        let id_ok = (1..=128).contains(&id.len())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !id_ok {
            return Err(format!("client id {id:?}: 1 to 128 of A-Z a-z 0-9 - _ . :"));
        }
        Scopes::parse_strict(&self.scope)?;
        let keys = &self.jwks.keys;
        if keys.is_empty() || keys.len() > KEYS_PER_CLIENT_MAX {
            return Err(format!("a client has 1 to {KEYS_PER_CLIENT_MAX} keys; this JWKS has {}", keys.len()));
        }
        let mut kids = std::collections::HashSet::new();
        for k in keys {
            let kid = k.common.key_id.as_deref().ok_or("every key needs a kid")?;
            if !kids.insert(kid) {
                return Err(format!("kid {kid:?} appears twice"));
            }
            key_algorithm(k).map_err(|e| format!("key {kid:?}: {e}"))?;
        }
        Ok(())
    }

    fn scopes(&self) -> Scopes {
        Scopes::parse_strict(&self.scope).unwrap_or_default()
    }
}

/// The one algorithm a key verifies: RS384 for an RSA key of at least 2048 bits, ES384 for
/// a P-384 key; a key's own `alg`, if it has one, must say the same.
fn key_algorithm(k: &Jwk) -> Result<Algorithm, String> {
    let alg = match &k.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = b64url(&p.n).ok_or("n is not base64url")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < RSA_BITS_MIN {
                return Err(format!("an RSA modulus of {bits} bits; at least {RSA_BITS_MIN}"));
            }
            Algorithm::RS384
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Algorithm::ES384,
        AlgorithmParameters::EllipticCurve(p) => return Err(format!("curve {:?}; only P-384 (ES384)", p.curve)),
        _ => return Err("only RSA (RS384) and EC P-384 (ES384) keys".into()),
    };
    match (k.common.key_algorithm, alg) {
        (None, _) | (Some(KeyAlgorithm::RS384), Algorithm::RS384) | (Some(KeyAlgorithm::ES384), Algorithm::ES384) => {
            Ok(alg)
        }
        (Some(other), _) => Err(format!("alg {other:?}; only RS384 and ES384")),
    }
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// An OAuth 2.0 error answer (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        Self { status, error, description: description.into() }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut r = (self.status, no_store(), body.to_string()).into_response();
        r.extensions_mut().insert(Reason(self.error));
        r
    }
}

pub(super) fn no_store() -> [(header::HeaderName, &'static str); 3] {
    [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

/// The claims a client assertion must carry.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    jti: String,
    exp: u64,
}

/// A token issued, kept by its hash.
struct Issued {
    client: String,
    scopes: Scopes,
    expires_ms: u64,
}

/// The registered clients, live tokens and the assertions seen.
#[derive(Default)]
struct Live {
    loaded: bool,
    clients: HashMap<String, Registration>,
    tokens: HashMap<[u8; 32], Issued>,
    /// (client, jti) of assertions used, until they expire (ms).
    jtis: HashMap<(String, String), u64>,
}

/// SMART Backend Services state of a node's API.
pub struct Smart {
    path: PathBuf,
    ttl_s: u64,
    max: usize,
    state: Mutex<Live>,
}

/// A token issued to a client.
pub struct Granted {
    pub token: String,
    pub client: String,
    pub scopes: Scopes,
    pub ttl_s: u64,
}

/// Who a bearer token acts for.
pub struct Bearer {
    pub client: String,
    pub scopes: Scopes,
}

impl Smart {
    pub fn new(data_dir: &Path, ttl_s: u64, max: usize) -> Self {
        Self { path: data_dir.join("smart-clients.json"), ttl_s, max, state: Mutex::default() }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Live>, ApiError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.loaded {
            st.clients = match std::fs::read(&self.path) {
                Ok(b) => serde_json::from_slice::<Vec<Registration>>(&b)
                    .map_err(|e| ApiError::internal(format!("{}: {e}", self.path.display())))?
                    .into_iter()
                    .map(|r| (r.client_id.clone(), r))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
                Err(e) => return Err(ApiError::internal(e)),
            };
            st.loaded = true;
        }
        Ok(st)
    }

    fn save(&self, clients: &HashMap<String, Registration>) -> Result<(), ApiError> {
        let mut all: Vec<&Registration> = clients.values().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let bytes = serde_json::to_vec_pretty(&all).map_err(ApiError::internal)?;
        on_disk(|| Ok(crate::files::write_private(&self.path, &bytes)?))
    }

    /// Registers (or re-registers, replacing its keys and scopes) a client.
    pub fn register(&self, mut r: Registration) -> Result<bool, ApiError> {
        r.check().map_err(|e| ApiError::invalid("bad-client", e))?;
        r.registered_ms = unix_ms();
        let mut st = self.lock()?;
        let replaced = st.clients.contains_key(&r.client_id);
        if !replaced && st.clients.len() >= CLIENTS_MAX {
            return Err(ApiError::conflict("too-many-clients", format!("a node registers at most {CLIENTS_MAX}")));
        }
        let mut next = st.clients.clone();
        next.insert(r.client_id.clone(), r);
        self.save(&next)?;
        st.clients = next;
        Ok(replaced)
    }

    /// Removes a client and ends its tokens.
    pub fn remove(&self, id: &str) -> Result<(), ApiError> {
        let mut st = self.lock()?;
        if !st.clients.contains_key(id) {
            return Err(ApiError::not_found("unknown-client", format!("no client {id:?} is registered here")));
        }
        let mut next = st.clients.clone();
        next.remove(id);
        self.save(&next)?;
        st.clients = next;
        st.tokens.retain(|_, t| t.client != id);
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<Registration>, ApiError> {
        let mut all: Vec<Registration> = self.lock()?.clients.values().cloned().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    /// Verifies a client assertion for `audience` (the token endpoint's URL) at `now_ms`
    /// and issues a token for the scopes `requested` that the client's registration covers.
    pub fn issue(&self, assertion: &str, requested: &str, audience: &str, now_ms: u64) -> Result<Granted, OAuthError> {
        let invalid = |m: String| OAuthError::new("invalid_client", m);
        if assertion.len() > ASSERTION_BYTES_MAX {
            return Err(OAuthError::new("invalid_request", "the client assertion is too large"));
        }
        let head = jsonwebtoken::decode_header(assertion).map_err(|e| invalid(format!("not a JWT ({e})")))?;
        if !matches!(head.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(invalid(format!("alg {:?}; sign with RS384 or ES384", head.alg)));
        }
        if head.jku.is_some() || head.jwk.is_some() || head.x5u.is_some() {
            return Err(invalid("keys are registered at the node, not named in the assertion (jku, jwk, x5u)".into()));
        }
        if head.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(invalid(format!("typ {:?}; JWT", head.typ)));
        }
        let kid = head.kid.ok_or_else(|| invalid("the assertion's header names no kid".into()))?;
        // The issuer, read before the signature is checked only to find its keys.
        let claimed = {
            let mut v = Validation::new(head.alg);
            v.insecure_disable_signature_validation();
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<Value>(assertion, &DecodingKey::from_secret(&[]), &v)
                .map_err(|e| invalid(format!("the assertion's claims: {e}")))?
                .claims
        };
        let client = claimed["iss"].as_str().ok_or_else(|| invalid("the assertion has no iss".into()))?.to_owned();
        let mut st =
            self.lock().map_err(|e| OAuthError { status: e.status, error: "server_error", description: e.message })?;
        let reg = st.clients.get(&client).ok_or_else(|| invalid(format!("no client {client:?} is registered")))?;
        let key = reg.jwks.find(&kid).ok_or_else(|| invalid(format!("{client} has no key {kid:?}")))?;
        let alg = key_algorithm(key).map_err(invalid)?;
        if alg != head.alg {
            return Err(invalid(format!("key {kid:?} is an {alg:?} key; the assertion says {:?}", head.alg)));
        }
        let decoding = DecodingKey::from_jwk(key).map_err(|e| invalid(format!("key {kid:?}: {e}")))?;
        let mut v = Validation::new(alg);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.set_issuer(&[&client]);
        v.sub = Some(client.clone());
        v.set_audience(&[audience]);
        v.leeway = LEEWAY_S;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &v)
            .map_err(|e| invalid(format!("the assertion is refused: {e}")))?
            .claims;
        debug_assert!(claims.iss == client && claims.sub == client);
        let now_s = now_ms / 1000;
        if claims.exp + LEEWAY_S < now_s {
            return Err(invalid("the assertion has expired".into()));
        }
        if claims.exp > now_s + ASSERTION_LIFE_MAX_S + LEEWAY_S {
            return Err(invalid(format!("exp is more than {ASSERTION_LIFE_MAX_S} s ahead")));
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(invalid("jti must be 1 to 256 bytes".into()));
        }
        let granted = reg.scopes().grant(requested);
        if granted.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("none of {requested:?} is granted to {client}; it may have {}", reg.scope),
            ));
        }
        // Bounded: expired tokens and assertions go first; a node still full is busy.
        st.tokens.retain(|_, t| t.expires_ms > now_ms);
        st.jtis.retain(|_, exp| *exp > now_ms);
        if st.tokens.len() >= self.max || st.jtis.len() >= self.max {
            return Err(OAuthError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: format!("{} tokens are live at this node; retry", st.tokens.len()),
            });
        }
        let expires = (claims.exp + LEEWAY_S) * 1000;
        if st.jtis.insert((client.clone(), claims.jti.clone()), expires).is_some() {
            return Err(invalid(format!("assertion {:?} of {client} was used before", claims.jti)));
        }
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let token = hex::encode(raw);
        let issued = Issued { client: client.clone(), scopes: granted.clone(), expires_ms: now_ms + self.ttl_s * 1000 };
        st.tokens.insert(Sha256::digest(token.as_bytes()).into(), issued);
        tracing::info!(target: "dualchain::smart", client, scope = %granted, ttl_s = self.ttl_s, "token issued");
        Ok(Granted { token, client, scopes: granted, ttl_s: self.ttl_s })
    }

    /// Who a bearer token acts for, if it is live.
    pub fn bearer(&self, token: &str, now_ms: u64) -> Result<Bearer, ApiError> {
        let st = self.lock()?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        match st.tokens.get(&key) {
            Some(t) if t.expires_ms > now_ms => Ok(Bearer { client: t.client.clone(), scopes: t.scopes.clone() }),
            Some(_) => Err(ApiError::unauthorized("token-expired", "the bearer token has expired; ask for another")),
            None => Err(ApiError::unauthorized("bad-token", "not a token of this node (or the node restarted)")),
        }
    }
}

/// A FHIR client's ES384 key (P-384), as a client written in Rust holds it: it signs the
/// client's assertions; its public JWK is what the institution registers.
#[derive(Clone)]
pub struct ClientKey {
    kid: String,
    pkcs8: Vec<u8>,
    /// The public point, `0x04 || x || y`.
    point: Vec<u8>,
}

impl ClientKey {
    pub fn generate(kid: &str) -> anyhow::Result<Self> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        Ok(Self { kid: kid.to_owned(), pkcs8: kp.serialize_der(), point: kp.public_key_raw().to_vec() })
    }

    /// The public key as a JWK with this key's `kid`.
    pub fn jwk(&self) -> Jwk {
        let v = json!({
            "kty": "EC", "crv": "P-384", "kid": self.kid, "alg": "ES384", "use": "sig",
            "x": b64url_encode(&self.point[1..49]), "y": b64url_encode(&self.point[49..]),
        });
        serde_json::from_value(v).expect("a P-384 JWK")
    }

    /// A client assertion for `client_id` at the token endpoint `aud`, valid two minutes,
    /// with a fresh `jti`.
    pub fn assertion(&self, client_id: &str, aud: &str) -> anyhow::Result<String> {
        self.assertion_with(&json!({
            "iss": client_id, "sub": client_id, "aud": aud, "exp": unix_ms() / 1000 + 120,
            "jti": hex::encode(rand::random::<[u8; 16]>()),
        }))
    }

    /// An assertion with the claims given (tests of what the endpoint refuses).
    pub fn assertion_with(&self, claims: &Value) -> anyhow::Result<String> {
        let mut h = jsonwebtoken::Header::new(Algorithm::ES384);
        h.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8))?)
    }
}

fn b64url_encode(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// The token endpoint's URL, as clients must name it in `aud`.
pub fn token_url(node: &Node) -> String {
    format!("{}{TOKEN_PATH}", super::api_base(node).unwrap_or_default())
}

/// The request's bearer token, if it carries one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const AUD: &str = "https://127.0.0.1:8700/smart/token";

    /// A P-384 key (signing with it) and its public JWK.
    fn p384(kid: &str) -> (ClientKey, Jwk) {
        let k = ClientKey::generate(kid).unwrap();
        let jwk = k.jwk();
        (k, jwk)
    }

    /// An assertion signed by `key` under the kid `kid` (which may not be the key's).
    fn assertion(key: &ClientKey, kid: &str, claims: Value) -> String {
        ClientKey { kid: kid.into(), ..key.clone() }.assertion_with(&claims).unwrap()
    }

    fn claims(client: &str, jti: &str, exp: u64) -> Value {
        json!({"iss": client, "sub": client, "aud": AUD, "jti": jti, "exp": exp})
    }

    fn smart_with(client: &str, jwk: Jwk, scope: &str) -> (Smart, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = Smart::new(dir.path(), 300, 4);
        s.register(Registration {
            client_id: client.into(),
            scope: scope.into(),
            jwks: JwkSet { keys: vec![jwk] },
            registered_ms: 0,
        })
        .unwrap();
        (s, dir)
    }

    fn now_s() -> u64 {
        unix_ms() / 1000
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..70usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let text = b64url_encode(&bytes);
            assert!(!text.contains(['=', '+', '/']), "{text}");
            assert_eq!(b64url(&text).unwrap(), bytes, "{n} bytes");
        }
        assert!(b64url("ab+c").is_none(), "standard base64 is not base64url");
    }

    #[test]
    fn scopes_parse_as_smart_v1_and_v2_and_grant_only_what_is_covered() {
        let mine = Scopes::parse_strict("system/Observation.write system/Observation.rs system/Patient.c").unwrap();
        assert!(mine.allows("Observation", Interaction::Create) && mine.allows("Observation", Interaction::Search));
        assert!(mine.allows("Patient", Interaction::Create) && !mine.allows("Patient", Interaction::Search));
        let granted = mine.grant("launch/patient system/Observation.c system/Patient.read system/*.write openid");
        assert_eq!(granted.to_string(), "system/Observation.c");
        assert!(mine.grant("system/Observation.cruds").is_empty(), "r and s and u and d and c: not all covered");
        for bad in [
            "system/Observation.sc",
            "system/Observation.cc",
            "system/observation.read",
            "user/Observation.read",
            "system/Observation.rs?category=vital-signs",
            "system/Observation.",
            "system/.read",
        ] {
            assert!(Scope::parse(bad).is_none(), "{bad}");
            assert!(Scopes::parse_strict(bad).unwrap_err().contains(bad), "{bad}");
        }
        let all = Scopes::parse_strict("system/*.*").unwrap();
        assert_eq!(all.grant("system/Observation.cruds system/Patient.write").0.len(), 2);
    }

    #[test]
    fn an_es384_assertion_gets_a_token_once_and_every_forgery_is_refused() {
        let (key, jwk) = p384("k1");
        let (smart, _dir) = smart_with("engine", jwk, "system/Observation.write system/Observation.read");
        let now = unix_ms();
        let exp = now_s() + 120;
        let good = assertion(&key, "k1", claims("engine", "a", exp));
        let g = smart.issue(&good, "system/Observation.write", AUD, now).unwrap();
        assert_eq!(
            (g.client.as_str(), g.scopes.to_string().as_str(), g.ttl_s),
            ("engine", "system/Observation.write", 300)
        );
        let token = g.token;
        let who = smart.bearer(&token, now).unwrap();
        assert_eq!(who.client, "engine");
        assert!(who.scopes.allows("Observation", Interaction::Create));
        assert!(!who.scopes.allows("Observation", Interaction::Search), "not asked for, not granted");
        assert_eq!(smart.bearer(&token, now + 301_000).err().unwrap().reason, "token-expired");
        assert_eq!(smart.bearer("00", now).err().unwrap().reason, "bad-token");

        let refused = |a: &str, scope: &str| smart.issue(a, scope, AUD, now).err().unwrap();
        // The same assertion again: a replay.
        assert!(refused(&good, "system/Observation.write").description.contains("used before"));
        // Another key signed it (same kid claimed).
        let (other, _) = p384("k1");
        let forged = assertion(&other, "k1", claims("engine", "b", exp));
        assert_eq!(refused(&forged, "system/Observation.write").error, "invalid_client");
        // Claims that do not fit: another audience, iss≠sub, too long a life, expired, unknown client or kid.
        let cases = [
            (json!({"iss": "engine", "sub": "engine", "aud": "https://elsewhere/token", "jti": "c", "exp": exp}), "k1"),
            (json!({"iss": "engine", "sub": "other", "aud": AUD, "jti": "d", "exp": exp}), "k1"),
            (claims("engine", "e", now_s() + 3600), "k1"),
            (claims("engine", "f", now_s() - 600), "k1"),
            (claims("stranger", "g", exp), "k1"),
            (claims("engine", "h", exp), "k2"),
            (json!({"iss": "engine", "sub": "engine", "aud": AUD, "exp": exp}), "k1"),
        ];
        for (c, kid) in cases {
            let e = refused(&assertion(&key, kid, c.clone()), "system/Observation.write");
            assert_eq!((e.status, e.error), (StatusCode::UNAUTHORIZED, "invalid_client"), "{c}: {}", e.description);
        }
        // Unsigned (alg none), HMAC with the public key as secret, garbage.
        let body = |c: &Value| {
            let enc = |v: &Value| {
                jsonwebtoken::encode(&Header::new(Algorithm::HS384), v, &EncodingKey::from_secret(b"x")).unwrap()
            };
            enc(c).split('.').nth(1).unwrap().to_owned()
        };
        let none = format!("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{}.", body(&claims("engine", "i", exp)));
        assert_eq!(refused(&none, "system/Observation.write").error, "invalid_client");
        let mut h = Header::new(Algorithm::HS384);
        h.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&h, &claims("engine", "j", exp), &EncodingKey::from_secret(b"k1")).unwrap();
        assert!(refused(&hs, "system/Observation.write").description.contains("RS384 or ES384"));
        assert_eq!(refused("not.a.jwt", "system/Observation.write").error, "invalid_client");
        // Nothing grantable.
        let e = refused(&assertion(&key, "k1", claims("engine", "k", exp)), "system/Patient.write launch");
        assert_eq!(e.error, "invalid_scope");
    }

    #[test]
    fn tokens_and_assertions_are_bounded_and_removal_ends_tokens() {
        let (key, jwk) = p384("k1");
        let (smart, dir) = smart_with("gw", jwk, "system/Observation.c");
        let now = unix_ms();
        let exp = now_s() + 60;
        let issue = |jti: &str, at: u64| {
            smart.issue(&assertion(&key, "k1", claims("gw", jti, exp)), "system/Observation.c", AUD, at)
        };
        for i in 0..4 {
            issue(&i.to_string(), now).unwrap();
        }
        let e = issue("x", now).err().unwrap();
        assert_eq!((e.status, e.error), (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"));
        // Once the tokens and assertions have expired, there is room again.
        {
            let mut st = smart.state.lock().unwrap();
            st.tokens.values_mut().for_each(|t| t.expires_ms = now + 1);
            st.jtis.values_mut().for_each(|x| *x = now + 1);
        }
        let live = issue("y", now + 2).unwrap().token;
        // The registry survives a restart; removing the client ends its tokens.
        assert_eq!(Smart::new(dir.path(), 300, 4).list().unwrap()[0].client_id, "gw");
        smart.remove("gw").unwrap();
        assert_eq!(smart.bearer(&live, now + 3).err().unwrap().reason, "bad-token");
        assert!(Smart::new(dir.path(), 300, 4).list().unwrap().is_empty());
        assert_eq!(smart.remove("gw").unwrap_err().reason, "unknown-client");
    }

    #[test]
    fn registrations_with_weak_or_unnamed_keys_are_refused() {
        let (_, jwk) = p384("k1");
        let reg = |id: &str, scope: &str, keys: Vec<Value>| Registration {
            client_id: id.into(),
            scope: scope.into(),
            jwks: serde_json::from_value(json!({"keys": keys})).unwrap(),
            registered_ms: 0,
        };
        let good = serde_json::to_value(&jwk).unwrap();
        assert!(reg("engine-1", "system/Observation.write", vec![good.clone()]).check().is_ok());
        let mut no_kid = good.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut p256 = good.clone();
        p256["crv"] = json!("P-256");
        let mut wrong_alg = good.clone();
        wrong_alg["alg"] = json!("RS384");
        // A 1024-bit RSA modulus (its value does not matter for the size check).
        let rsa1024 = json!({"kty": "RSA", "kid": "r", "e": "AQAB", "n": "w".repeat(171)});
        let rsa2048 = json!({"kty": "RSA", "kid": "r", "e": "AQAB", "n": "w".repeat(342)});
        assert!(reg("e", "system/Observation.read", vec![rsa2048]).check().is_ok());
        for (r, why) in [
            (reg("engine 1", "system/Observation.write", vec![good.clone()]), "client id"),
            (reg("e", "patient/Observation.read", vec![good.clone()]), "not a SMART system scope"),
            (reg("e", "system/Observation.read", vec![]), "1 to 8 keys"),
            (reg("e", "system/Observation.read", vec![no_kid]), "kid"),
            (reg("e", "system/Observation.read", vec![good.clone(), good.clone()]), "twice"),
            (reg("e", "system/Observation.read", vec![p256]), "P-384"),
            (reg("e", "system/Observation.read", vec![wrong_alg]), "only RS384 and ES384"),
            (reg("e", "system/Observation.read", vec![rsa1024]), "at least 2048"),
        ] {
            let e = r.check().unwrap_err();
            assert!(e.contains(why), "{e} (expected {why})");
        }
    }
}
