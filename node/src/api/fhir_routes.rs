//! FHIR R4 in: `POST /fhir/Patient`, `POST /fhir/Observation` (staged durably, sealed into
//! a dataset every `owner.dataset_records`), `POST /fhir` (a `transaction`/`batch` Bundle of
//! Patients and Observations, one dataset) and `POST /datasets/seal`; `GET /fhir/metadata`
//! ([`capability_statement`]). The FHIR writes take a member's signature or a SMART bearer
//! token with create scopes ([`super::smart`]). Each dataset is
//! signcrypted, stored at a CPC (its manifest checked), committed and registered
//! ([`upload`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dualchain_crypto::cbsre::{DatasetId, DelegatingSecretKey};
use dualchain_crypto::cert::Role;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{Disclosure, Hash, Outcome};
use dualchain_prover::supply;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Fhir;
use super::auth::{hosted_as, parse_id, Signed};
use super::conditional::{created, criteria, exists, if_none_exist, Identifiers, Prefer};
use super::error::{fhir_json, ok_json, ApiError, ApiResult};
use super::limits::on_disk;
use super::smart::Interaction;
use super::wire::encode_list;
use super::ApiState;
use crate::agents::{OwnedDataset, OwnerNode};
use crate::fhir;
use crate::member::{pseudonym, sharing};
use crate::runtime::{unix_ms, Hosted, Node};

/// A patient's demographics as the supply circuit needs them.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Demographics {
    birth_unix: i64,
    sex: u8,
    /// Every reference the same Patient can be named by (a patient's erasure takes them
    /// all); empty in registries of earlier builds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
}

impl Demographics {
    fn named(&self, refs: &[String]) -> Self {
        Self { names: refs.to_vec(), ..self.clone() }
    }
}

/// Demographics by the references a Patient can be named by ([`patient_refs`]).
pub type Patients = std::collections::HashMap<String, Demographics>;

/// Registered devices' IEEE 11073 system ids by the references a Device can be named by.
pub type Devices = std::collections::HashMap<String, String>;

/// A hospital node's patient registry and count of staged observations: read from
/// `data_dir` on first use, then kept in memory and written through to disk (so a gateway's
/// post does not re-read the registry or the staging file).
#[derive(Default)]
pub struct OwnerState {
    loaded: bool,
    patients: Patients,
    devices: Devices,
    staged: usize,
    /// What conditional creates look up.
    identifiers: Identifiers,
}

impl OwnerState {
    pub(super) fn load(&mut self, node: &Node) -> Result<(), ApiError> {
        if !self.loaded {
            self.patients = read_map(node, "patients.json")?;
            self.devices = read_map(node, "devices.json")?;
            self.staged = read_staged(node)?.len();
            self.identifiers = Identifiers::load(&node.data_dir)?;
            self.loaded = true;
        }
        Ok(())
    }

    /// Adds patients, on disk first (the write is synced; see [`on_disk`]).
    fn add_patients(&mut self, node: &Node, new: Vec<(String, Demographics)>) -> Result<(), ApiError> {
        self.patients = with_added(node, "patients.json", &self.patients, new)?;
        Ok(())
    }

    /// Whether a Patient was registered here under `reference`.
    pub(super) async fn knows_patient(api: &ApiState, reference: &str) -> Result<bool, ApiError> {
        let mut st = api.owner_state.lock().await;
        st.load(&api.node)?;
        Ok(st.patients.contains_key(reference))
    }

    /// Takes a patient out of this hospital's own files, for the patient's erasure: the
    /// registry's entries under each of `names` (see [`Self::names_of`]), the patient's identifiers indexed for
    /// conditional creates, and the patient's staged Observations (plaintext FHIR), each
    /// rewritten on disk first. Returns how many registry entries and identifiers, and how
    /// many staged Observations, it removed.
    pub(super) fn forget_patient(&mut self, node: &Node, names: &[String]) -> Result<(usize, usize), ApiError> {
        let mut registry = 0;
        for name in names {
            registry += self.identifiers.remove_location(&node.data_dir, name)?;
        }
        let mut kept = self.patients.clone();
        kept.retain(|k, _| !names.contains(k));
        if kept.len() < self.patients.len() {
            registry += self.patients.len() - kept.len();
            let bytes = serde_json::to_vec(&kept).map_err(ApiError::internal)?;
            let path = node.data_dir.join("patients.json");
            on_disk(|| Ok(crate::files::write_private(&path, &bytes)?))?;
            self.patients = kept;
        }
        let staged = read_staged(node)?;
        let named = |o: &&Value| o["subject"]["reference"].as_str().is_some_and(|r| names.iter().any(|n| n == r));
        let kept: Vec<&Value> = staged.iter().filter(|o| !named(o)).collect();
        let removed = staged.len() - kept.len();
        if removed > 0 {
            let text: String = kept.iter().map(|o| format!("{o}\n")).collect();
            let path = staging_path(node);
            on_disk(|| Ok(crate::files::write_private(&path, text.as_bytes())?))?;
            self.staged = kept.len();
        }
        Ok((registry, removed))
    }

    /// Every reference the patient named `reference` goes by here (`reference` first).
    pub(super) fn names_of(&self, reference: &str) -> Vec<String> {
        let mut names = vec![reference.to_string()];
        for n in self.patients.get(reference).map(|d| d.names.as_slice()).unwrap_or_default() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// Adds devices, on disk first.
    fn add_devices(&mut self, node: &Node, new: Vec<(String, String)>) -> Result<(), ApiError> {
        self.devices = with_added(node, "devices.json", &self.devices, new)?;
        Ok(())
    }

    /// Names an Observation's device by its IEEE system id ([`resolve_device`]).
    fn resolve_device(&self, node: &Node, obs: &mut Value) -> Result<(), ApiError> {
        resolve_device(obs, &self.devices, node.cfg.owner.require_registered_devices)
            .map_err(|m| ApiError::unprocessable("unregistered-device", m))
    }
}

/// A JSON map in the node's data directory (empty if the file does not exist yet).
fn read_map<T: serde::de::DeserializeOwned>(node: &Node, file: &str) -> Result<HashMap<String, T>, ApiError> {
    match std::fs::read(node.data_dir.join(file)) {
        Ok(b) => serde_json::from_slice(&b).map_err(ApiError::internal),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `old` with `new` added, written to `file` (synced, readable by the node's user only)
/// before it is returned.
fn with_added<T: Clone + serde::Serialize>(
    node: &Node,
    file: &str,
    old: &HashMap<String, T>,
    new: Vec<(String, T)>,
) -> Result<HashMap<String, T>, ApiError> {
    let mut all = old.clone();
    all.extend(new);
    let bytes = serde_json::to_vec(&all).map_err(ApiError::internal)?;
    let path = node.data_dir.join(file);
    on_disk(|| Ok(crate::files::write_private(&path, &bytes)?))?;
    Ok(all)
}

/// Names an Observation's device by the IEEE 11073 system id of the registered Device its
/// `device.reference` names (adding `device.identifier`, which the signcrypted record then
/// carries and the supply record's `device` field encodes). With `require`, an Observation
/// from a device not registered here, or naming no device, is refused.
pub fn resolve_device(obs: &mut Value, devices: &Devices, require: bool) -> Result<(), String> {
    let reference = obs["device"]["reference"].as_str().map(str::to_owned);
    if let Some(id) = reference.as_deref().and_then(|r| devices.get(r)) {
        obs["device"]["identifier"] = json!({"system": fhir::IEEE_SYSTEM_ID, "value": id});
        return Ok(());
    }
    if !require {
        return Ok(());
    }
    // A logical reference by system id alone, to a registered device.
    let given = &obs["device"]["identifier"];
    let by_id = (given["system"] == fhir::IEEE_SYSTEM_ID)
        .then(|| given["value"].as_str().and_then(fhir::canonical_eui64))
        .flatten()
        .filter(|id| devices.values().any(|d| d == id));
    match (by_id, reference) {
        (Some(id), _) => {
            obs["device"]["identifier"]["value"] = json!(id);
            Ok(())
        }
        (None, Some(r)) => Err(format!("device {r} is not registered at this node; post the Device first")),
        (None, None) => {
            Err("the Observation names no registered device; this node takes Observations from registered devices only"
                .into())
        }
    }
}

/// The references a Device can be named by (`Device/<id>`, its Bundle `fullUrl`) with its
/// IEEE system id.
pub fn device_refs(d: &Value, full_url: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let id = fhir::system_id(d).map_err(|m| ApiError::unprocessable("bad-device", m))?;
    let mut refs: Vec<String> = d["id"].as_str().map(|i| format!("Device/{i}")).into_iter().collect();
    refs.extend(full_url.map(str::to_owned));
    if refs.is_empty() {
        return Err(ApiError::invalid("bad-device", "a Device needs an id (or a fullUrl in a Bundle)"));
    }
    Ok(refs.into_iter().map(|r| (r, id.clone())).collect())
}

/// Demographics from a FHIR Patient (`gender`, `birthDate` as YYYY-MM-DD).
pub fn demographics(p: &Value) -> Result<Demographics, ApiError> {
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
    Ok(Demographics { birth_unix: birth, sex, names: Vec::new() })
}

/// The references a Patient can be named by: `Patient/<id>` and its Bundle `fullUrl`.
pub fn patient_refs(p: &Value, full_url: Option<&str>) -> Result<Vec<String>, ApiError> {
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
pub fn record_of<'a>(
    obs: &Value,
    patient: impl Fn(&str) -> Option<&'a Demographics>,
) -> Result<supply::Record, String> {
    fhir::to_record_with(obs, |reference, t| {
        let d = patient(reference)?;
        let years = (t as i64).saturating_sub(d.birth_unix).max(0) / 31_556_952;
        Some(((years / 5).min(255) as u8, d.sex))
    })
}

/// `GET /fhir/metadata`: the node's FHIR R4 `CapabilityStatement`, unauthenticated (a FHIR
/// client reads it before anything else). It states what this node does, no more: a
/// hospital's node creates Patients and Observations, takes `transaction` and `batch`
/// Bundles and searches its staged Observations; every member's node searches the records
/// of its grants (`_grant`); SMART Backend Services' token endpoint is in the security
/// section. Read by id, update and delete are not served and not claimed.
pub async fn metadata(State(api): State<ApiState>) -> ApiResult {
    Ok(fhir_json(StatusCode::OK, &capability_statement(&api.node)))
}

/// The `CapabilityStatement` of [`metadata`].
pub fn capability_statement(node: &Node) -> Value {
    let c = &node.consortium;
    let hosted = c.members.iter().find(|m| m.node == node.cfg.node);
    let hospital = hosted.is_some_and(|m| m.role == "hospital");
    let base = super::api_base(node);
    let who = match hosted {
        Some(m) => format!("hosting {} ({})", m.id, m.role),
        None => "hosting no member".to_owned(),
    };
    let started = fhir::rfc3339(node.started_ms / 1000);
    let mut rest = json!({
        "mode": "server",
        "documentation": "FHIR R4 in: Patients and vital-sign Observations (valueQuantity with a LOINC code the \
            supply circuit maps) are staged, or posted as one dataset in a transaction or batch Bundle, then \
            signcrypted to a cloud privacy center and registered on the data chain. FHIR out: a grantee \
            searches its grant's records (GET Observation?_grant=<grant id>), decrypted at its own node. The \
            rest of the API is described at /openapi.json.",
        "security": {
            "cors": false,
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"}]}],
            "description": "HTTPS with the consortium's TLS certificate authority. FHIR clients registered at \
                this node by its member use SMART Backend Services: client_credentials with a private_key_jwt \
                assertion (RS384 or ES384) at the token endpoint, then bearer tokens with system/ scopes \
                (system/Observation.write, system/Observation.read, ...). Members and peer nodes sign requests \
                with their Ed25519 keys instead (headers x-dualchain-member, -node, -time, -nonce and \
                -signature); see /openapi.json.",
        },
    });
    if let Some(base) = &base {
        rest["security"]["extension"] = json!([{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": format!("{base}{}", super::smart::TOKEN_PATH)}],
        }]);
    }
    let search_params = json!([
        {"name": "code", "type": "token", "documentation": "system|code, |code or code; commas for any of"},
        {"name": "date", "type": "date", "documentation": "effectiveDateTime; prefixes eq, ne, gt, lt, ge, le"},
        {"name": "subject", "type": "reference", "documentation": "a Patient reference (for a grantee, the grant's pseudonyms)"},
        {"name": "_grant", "type": "token", "documentation": "a grant's id: search its records (the grantee's node)"},
        {"name": "_count", "type": "number", "documentation": "page size, at most 500 (default 50); pages follow the next link"},
    ]);
    let grants = "with _grant=<grant id>: the records of a grant this member holds, decrypted here";
    let search = json!({"code": "search-type", "documentation": if hospital {
        format!("this hospital's staged Observations (not yet sealed into a dataset); {grants}")
    } else {
        grants.to_owned()
    }});
    if hospital {
        let create = json!([{"code": "create"}]);
        rest["resource"] = json!([
            {"type": "Patient", "interaction": create, "conditionalCreate": true, "documentation": "gender and \
                birthDate feed the supply circuit's age band and sex; kept at this node only. If-None-Exist: \
                identifier=<system>|<value>"},
            {"type": "Device", "interaction": create, "conditionalCreate": true, "documentation": format!(
                "a personal health or bedside device (FHIR PHD IG): its IEEE 11073-20601 system id, an EUI-64, \
                as an identifier of system {}; Observations naming it carry that id{}", fhir::IEEE_SYSTEM_ID,
                if node.cfg.owner.require_registered_devices {
                    ". Observations are taken from registered devices only"
                } else { "" })},
            {"type": "Observation", "interaction": [{"code": "create"}, search], "conditionalCreate": true,
                "searchParam": search_params, "documentation":
                format!("staged durably, sealed into a dataset every {} Observations. If-None-Exist: \
                identifier=<system>|<value>; Prefer: return=minimal|representation|OperationOutcome",
                node.cfg.owner.dataset_records)},
        ]);
        rest["resource"].as_array_mut().expect("an array").push(json!({"type": "AuditEvent",
        "interaction": [{"code": "search-type", "documentation": "the access log of this hospital's datasets: \
            one AuditEvent per re-encryption of a grant's records and per fetch of them, with its inclusion proof on the \
                access chain"}],
        "searchParam": [
            {"name": "entity", "type": "reference", "documentation": "a dataset's id (one of this hospital's)"},
            {"name": "agent", "type": "reference", "documentation": "a member's id (the requester, say)"},
            {"name": "date", "type": "date", "documentation": "recorded; prefixes eq, ne, gt, lt, ge, le"},
            {"name": "_count", "type": "number", "documentation": "page size, at most 500 (default 50)"},
        ]}));
        rest["resource"].as_array_mut().expect("an array").push(json!({"type": "Consent",
        "interaction": [{"code": "create", "documentation": "a patient's consent to the sharing of its records: \
            provision.type deny (opt-out) or permit (opt-in), by purpose (v3-ActReason HRESCH, TREAT, PUBHLTH, \
            HOPERAT), by recipient (actor role IRCP, identifier of system urn:dualchain:member-role: research or \
            hospital) and by period; no nested provisions. The latest per patient governs every later dataset, \
            supply proof and grant; the chain holds only commitments to the datasets' consent state"},
            {"code": "search-type", "documentation": "a patient's Consents (patient=<reference>), oldest first"}],
        "searchParam": [
            {"name": "patient", "type": "reference", "documentation": "the Patient, as its Observations name it"},
        ]}));
        rest["interaction"] = json!([
            {"code": "transaction", "documentation": "one dataset of Patients and Observations"},
            {"code": "batch", "documentation": "as transaction"},
        ]);
    } else if hosted.is_some() {
        rest["resource"] = json!([{"type": "Observation", "interaction": [search], "searchParam": search_params}]);
    }
    let mut statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": c.name,
        "kind": "instance",
        "software": {"name": "dualchain", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("dualchain node {} of the consortium {}, {who}", node.cfg.node, c.name)},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    });
    if let Some(base) = base {
        statement["implementation"]["url"] = json!(format!("{base}/fhir"));
    }
    statement
}

/// Checks a resource's `resourceType`.
pub fn expect_type(v: &Value, want: &str) -> Result<(), ApiError> {
    match v["resourceType"].as_str() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(ApiError::invalid("wrong-resource-type", format!("expected a {want}, got a {t}"))),
        None => Err(ApiError::invalid("wrong-resource-type", format!("expected a {want} (no resourceType)"))),
    }
}

pub(super) fn owner_of(h: &Hosted) -> Result<&Arc<OwnerNode>, ApiError> {
    h.owner.as_ref().ok_or_else(|| ApiError::forbidden("wrong-role", "only hospitals upload"))
}

pub async fn post_patient(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    hosted_as(node, &s, &[Role::Hospital])?;
    s.allow("Patient", Interaction::Create)?;
    let (prefer, condition) = (Prefer::of(&headers)?, if_none_exist("Patient", &headers)?);
    let p: Value = s.json()?;
    expect_type(&p, "Patient")?;
    let d = demographics(&p)?;
    let refs = patient_refs(&p, None)?;
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    if let Some(found) = condition.and_then(|k| st.identifiers.find(&k).map(str::to_owned)) {
        return Ok(exists(prefer, &found));
    }
    let location = p["id"].as_str().map(|id| format!("Patient/{id}")).unwrap_or_default();
    let d = d.named(&refs);
    st.add_patients(node, refs.into_iter().map(|r| (r, d.clone())).collect())?;
    st.identifiers.add(&node.data_dir, &[(&p, location.clone())])?;
    Ok(created(prefer, &p, &location, "registered: this node's patient registry holds the Patient"))
}

/// `POST /fhir/Device`: registers a personal health or bedside device (FHIR PHD IG: its
/// IEEE 11073-20601 system id as an identifier of system [`fhir::IEEE_SYSTEM_ID`]), so that
/// Observations naming it carry its system id; with `owner.require_registered_devices`,
/// only registered devices' Observations are taken.
pub async fn post_device(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    hosted_as(node, &s, &[Role::Hospital])?;
    s.allow("Device", Interaction::Create)?;
    let (prefer, condition) = (Prefer::of(&headers)?, if_none_exist("Device", &headers)?);
    let d: Value = s.json()?;
    expect_type(&d, "Device")?;
    let refs = device_refs(&d, None)?;
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    if let Some(found) = condition.and_then(|k| st.identifiers.find(&k).map(str::to_owned)) {
        return Ok(exists(prefer, &found));
    }
    let location = refs[0].0.clone();
    st.add_devices(node, refs)?;
    st.identifiers.add(&node.data_dir, &[(&d, location.clone())])?;
    Ok(created(prefer, &d, &location, "registered: this node's device registry holds the Device"))
}

/// An uploaded dataset.
pub(super) struct Uploaded {
    pub dataset: DatasetId,
    pub h1: Hash,
    pub records: usize,
    /// Observations left out because their patients consent to no use.
    pub left_out: usize,
    pub tx: Hash,
    pub seq: u64,
}

/// The first half of reading a `POST /fhir` body: a `transaction` or `batch` Bundle's
/// entries, and the demographics of the Patients among them by every reference they can be
/// named by.
pub fn bundle_patients(b: &Value) -> Result<(&[Value], Patients), ApiError> {
    expect_type(b, "Bundle")?;
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
            let refs = patient_refs(&e["resource"], e["fullUrl"].as_str())?;
            let d = demographics(&e["resource"])?.named(&refs);
            for r in refs {
                bundled.insert(r, d.clone());
            }
        }
    }
    Ok((entries, bundled))
}

/// The second half: every Observation of the entries (at least one) with its supply-circuit
/// record, its patient's demographics found by `patient`; any other resource but a Patient
/// is refused.
pub fn bundle_observations<'a>(
    entries: &[Value],
    patient: impl Fn(&str) -> Option<&'a Demographics>,
) -> Result<(Vec<Value>, Vec<supply::Record>), ApiError> {
    let mut observations = Vec::new();
    let mut records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        match r["resourceType"].as_str() {
            Some("Patient" | "Device") => {}
            Some("Observation") => {
                records.push(
                    record_of(r, &patient)
                        .map_err(|m| ApiError::unprocessable("unmappable", format!("entry {i}: {m}")))?,
                );
                observations.push(r.clone());
            }
            other => {
                return Err(ApiError::unprocessable(
                    "unsupported-resource",
                    format!("entry {i}: {other:?}; a dataset Bundle holds Patients, Devices and Observations"),
                ))
            }
        }
    }
    if observations.is_empty() {
        return Err(ApiError::invalid("empty", "the Bundle holds no Observation"));
    }
    Ok((observations, records))
}

pub async fn post_bundle(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let prefer = Prefer::of(&headers)?;
    let b: Value = s.json()?;
    let (entries, bundled) = bundle_patients(&b)?;
    let mut bundled_devices = Vec::new();
    for e in entries.iter().filter(|e| e["resource"]["resourceType"] == "Device") {
        bundled_devices.extend(device_refs(&e["resource"], e["fullUrl"].as_str())?);
    }
    // Every entry creates: each resource type needs its own create scope.
    for e in entries {
        s.allow(e["resource"]["resourceType"].as_str().unwrap_or("Resource"), Interaction::Create)?;
    }
    // The registry is read and written under the lock; the upload runs without it.
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    // Conditional creates: the location of what already exists, per entry.
    let existing = entries
        .iter()
        .map(|e| match e["request"]["ifNoneExist"].as_str() {
            None => Ok(None),
            Some(q) => {
                let k = criteria(e["resource"]["resourceType"].as_str().unwrap_or_default(), q)?;
                Ok(st.identifiers.find(&k).map(str::to_owned))
            }
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    // The entries to create: all of them (not copied) unless a condition found one.
    let fresh: std::borrow::Cow<[Value]> = if existing.iter().all(Option::is_none) {
        entries.into()
    } else {
        entries.iter().zip(&existing).filter(|(_, x)| x.is_none()).map(|(e, _)| e.clone()).collect::<Vec<_>>().into()
    };
    let is_observation = |e: &Value| e["resource"]["resourceType"] == "Observation";
    // Every Observation already here (a retried transaction): no new dataset.
    let all_exist = entries.iter().any(is_observation) && !fresh.iter().any(is_observation);
    let new = if all_exist {
        None
    } else {
        let (mut observations, mut records) =
            bundle_observations(&fresh, |p| bundled.get(p).or_else(|| st.patients.get(p)))?;
        // Devices by their system ids: those registered, and the Bundle's own.
        let devices: std::borrow::Cow<Devices> = if bundled_devices.is_empty() {
            std::borrow::Cow::Borrowed(&st.devices)
        } else {
            let mut all = st.devices.clone();
            all.extend(bundled_devices.iter().cloned());
            std::borrow::Cow::Owned(all)
        };
        let require = node.cfg.owner.require_registered_devices;
        for (i, (o, r)) in observations.iter_mut().zip(records.iter_mut()).enumerate() {
            resolve_device(o, &devices, require)
                .map_err(|m| ApiError::unprocessable("unregistered-device", format!("Observation {i}: {m}")))?;
            r.device = supply::fhir::device_code(fhir::device_of(o));
        }
        Some((observations, records))
    };
    if !bundled.is_empty() {
        st.add_patients(node, bundled.into_iter().collect())?;
    }
    if !bundled_devices.is_empty() {
        st.add_devices(node, bundled_devices)?;
    }
    drop(st);
    let up = match new {
        Some((observations, records)) => {
            let terms = terms_of(node, &s)?;
            Some(upload(node, h, observations, records, s.param("dataset"), s.param("cpc"), terms).await?)
        }
        None => None,
    };
    // Each entry's status and location (FHIR ids are at most 64 characters: a resource
    // without its own id is named by the dataset's first 16 hex digits and its index).
    let prefix = up.as_ref().map(|u| u.dataset.to_hex()[..16].to_owned()).unwrap_or_default();
    let mut index = 0;
    let mut made: Vec<(&Value, String)> = Vec::new();
    let response_entries: Vec<Value> = entries
        .iter()
        .zip(&existing)
        .map(|(e, found)| {
            let r = &e["resource"];
            if let Some(location) = found {
                let said = format!("not created: {location} already holds this identifier");
                return super::conditional::entry(prefer, "200 OK", Some(location), r, &said);
            }
            let kind = r["resourceType"].as_str().unwrap_or_default();
            let location = match r["id"].as_str() {
                Some(id) => Some(format!("{kind}/{id}")),
                None if kind == "Observation" => Some(format!("{kind}/{prefix}-{index}")),
                None => None,
            };
            if kind == "Observation" {
                index += 1;
            }
            made.push((r, location.clone().unwrap_or_default()));
            let said = match (&up, kind) {
                (Some(u), "Observation") => format!("created in dataset {}", u.dataset.to_hex()),
                (_, "Device") => "registered in this node's device registry".to_owned(),
                _ => "registered in this node's patient registry".to_owned(),
            };
            super::conditional::entry(prefer, "201 Created", location.as_deref(), r, &said)
        })
        .collect();
    let mut st = api.owner_state.lock().await;
    st.identifiers.add(&node.data_dir, &made)?;
    drop(st);
    let mut answer = json!({
        "resourceType": "Bundle",
        "type": if b["type"] == "batch" { "batch-response" } else { "transaction-response" },
        "entry": response_entries,
    });
    if let Some(up) = &up {
        tag(&mut answer, &dataset_tags(up));
    }
    ok_json(&answer)
}

/// What an upload made, as `meta.tag` codings of the answer (system `urn:dualchain:<name>`;
/// read back with [`upload_tag`]). Tags, not extensions: a Bundle is a Resource, not a
/// DomainResource, and carries no extension in FHIR R4.
fn dataset_tags(up: &Uploaded) -> Vec<(&'static str, String)> {
    vec![
        ("dataset", up.dataset.to_hex()),
        ("h1", hex::encode(up.h1)),
        ("records", up.records.to_string()),
        ("left-out", up.left_out.to_string()),
        ("tx", hex::encode(up.tx)),
        ("seq", up.seq.to_string()),
    ]
}

/// Appends `tags` to a resource's `meta.tag`.
fn tag(resource: &mut Value, tags: &[(&str, String)]) {
    if !resource["meta"].is_object() {
        resource["meta"] = json!({});
    }
    if !resource["meta"]["tag"].is_array() {
        resource["meta"]["tag"] = json!([]);
    }
    if let Some(list) = resource["meta"]["tag"].as_array_mut() {
        list.extend(tags.iter().map(|(name, code)| json!({"system": format!("urn:dualchain:{name}"), "code": code})));
    }
}

/// The code of an answer's `urn:dualchain:<name>` tag: `dataset`, `h1`, `records`, `tx` and
/// `seq` of an upload (a transaction-response Bundle, or an Observation that sealed a
/// dataset), `staged` of an Observation that was staged.
pub fn upload_tag<'a>(answer: &'a Value, name: &str) -> Option<&'a str> {
    let system = format!("urn:dualchain:{name}");
    answer["meta"]["tag"].as_array()?.iter().find(|t| t["system"] == system.as_str())?["code"].as_str()
}

fn staging_path(node: &Node) -> std::path::PathBuf {
    node.data_dir.join("staged.jsonl")
}

/// The staged Observations, in the order they were posted.
pub(super) async fn staged(api: &ApiState) -> Result<Vec<Value>, ApiError> {
    let mut st = api.owner_state.lock().await;
    st.load(&api.node)?;
    read_staged(&api.node)
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

pub async fn post_observation(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    s.allow("Observation", Interaction::Create)?;
    let (prefer, condition) = (Prefer::of(&headers)?, if_none_exist("Observation", &headers)?);
    let mut obs: Value = s.json()?;
    expect_type(&obs, "Observation")?;
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    if let Some(found) = condition.and_then(|k| st.identifiers.find(&k).map(str::to_owned)) {
        return Ok(exists(prefer, &found));
    }
    st.resolve_device(node, &mut obs)?;
    record_of(&obs, |p| st.patients.get(p)).map_err(|m| ApiError::unprocessable("unmappable", m))?;
    // Staged durably before it is acknowledged (the synced append: see `on_disk`).
    let (path, line) = (staging_path(node), obs.to_string());
    on_disk(|| {
        use std::io::Write as _;
        // Plaintext FHIR: readable by the node's user only, like every secret file.
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(ApiError::internal)?;
        writeln!(f, "{line}").map_err(ApiError::internal)?;
        f.sync_all().map_err(ApiError::internal)
    })?;
    st.staged += 1;
    let location = obs["id"].as_str().map(|id| format!("Observation/{id}")).unwrap_or_default();
    st.identifiers.add(&node.data_dir, &[(&obs, location.clone())])?;
    let mut out = obs.clone();
    let said = if st.staged >= node.cfg.owner.dataset_records {
        let up = seal_staged(node, h, &mut st, None, Terms::of_node(node)).await?;
        tag(&mut out, &dataset_tags(&up));
        format!("staged, then sealed with the others into dataset {}", up.dataset.to_hex())
    } else {
        tag(&mut out, &[("staged", st.staged.to_string())]);
        format!("staged ({} staged; sealed every {})", st.staged, node.cfg.owner.dataset_records)
    };
    Ok(created(prefer, &out, &location, &said))
}

/// Seals the staged observations into one dataset. Without a name, the dataset is named
/// after the staged content, so a seal interrupted after its registration (a crash before
/// the staging file is removed) is not registered twice: the retry finds it on the ledger
/// and clears the staging file.
async fn seal_staged(
    node: &Node,
    h: &Hosted,
    st: &mut OwnerState,
    name: Option<String>,
    terms: Terms,
) -> Result<Uploaded, ApiError> {
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
    if owner_of(h)?.has_name(&name)? {
        std::fs::remove_file(staging_path(node)).map_err(ApiError::internal)?;
        st.staged = 0;
        return Err(ApiError::conflict(
            "dataset-exists",
            format!("{name} was sealed before; the staging area is cleared"),
        ));
    }
    let up = upload(node, h, staged, records, Some(name), None, terms).await?;
    std::fs::remove_file(staging_path(node)).map_err(ApiError::internal)?;
    st.staged = 0;
    Ok(up)
}

pub async fn seal(State(api): State<ApiState>, s: Signed) -> ApiResult {
    let node = &api.node;
    let h = hosted_as(node, &s, &[Role::Hospital])?;
    let mut st = api.owner_state.lock().await;
    st.load(node)?;
    let terms = terms_of(node, &s)?;
    let up = seal_staged(node, h, &mut st, s.param("dataset"), terms).await?;
    ok_json(
        &json!({"dataset": up.dataset.to_hex(), "h1": hex::encode(up.h1), "records": up.records, "left_out": up.left_out, "tx": hex::encode(up.tx), "seq": up.seq}),
    )
}

/// Stores signcrypted records at `cpc` (this node's own CPC, or a peer's through
/// `POST /cpc/ingest`); returns the manifest hash H1' and how many records it holds.
async fn store_at_cpc(
    node: &Node,
    h: &Hosted,
    cpc: &str,
    sealed: Vec<dualchain_crypto::cbsre::Signcrypted>,
) -> Result<(Hash, usize), ApiError> {
    if let Some(c) = node.local_cpc(cpc) {
        let owner_id = h.member.id.clone();
        let m =
            tokio::task::spawn_blocking(move || c.upload(&owner_id, &sealed)).await.map_err(ApiError::internal)??;
        return Ok((m.hash(), m.entries.len()));
    }
    let gateway = |reason: &'static str, e: String| ApiError::new(StatusCode::BAD_GATEWAY, "transient", reason, e);
    let client = super::client::ApiClient::of_peer(node, cpc, &h.member)
        .map_err(|e| ApiError::unprocessable("unknown-cpc", e.to_string()))?;
    let body = encode_list(sealed.iter().map(Codec::to_bytes));
    let resp = client
        .send(reqwest::Method::POST, "/cpc/ingest", body, "application/octet-stream")
        .await
        .map_err(|e| gateway("cpc-unreachable", format!("{cpc}: {e:#}")))?;
    let v: Value = resp.json().map_err(|e| gateway("cpc-refused", format!("{cpc}: {e:#}")))?;
    let h1 = parse_id(v["h1"].as_str().unwrap_or(""), "h1")?;
    Ok((h1, v["records"].as_u64().unwrap_or(0) as usize))
}

/// Who may request a new dataset, and what its demands may ask.
pub(super) struct Terms {
    /// The access policy statement.
    pub policy: String,
    pub disclosure: Disclosure,
}

impl Terms {
    /// The node's `owner.policy` and `[owner.disclosure]`.
    fn of_node(node: &Node) -> Self {
        Self { policy: node.cfg.owner.policy.clone(), disclosure: node.cfg.owner.disclosure }
    }
}

/// A new dataset's terms: the node's `owner.policy` unless `?policy=` states another
/// (percent-encoded), and its `[owner.disclosure]`, each field overridden by a query
/// parameter of the same name (`?min_cohort=20`).
fn terms_of(node: &Node, s: &Signed) -> Result<Terms, ApiError> {
    let mut d = node.cfg.owner.disclosure;
    fn num<T: std::str::FromStr>(s: &Signed, name: &str, into: &mut T) -> Result<(), ApiError> {
        if let Some(v) = s.param(name) {
            *into = v.parse().map_err(|_| ApiError::invalid("bad-parameter", format!("{name}={v} is not a number")))?;
        }
        Ok(())
    }
    num(s, "min_cohort", &mut d.min_cohort)?;
    num(s, "min_value_span", &mut d.min_value_span)?;
    num(s, "min_window_min", &mut d.min_window_min)?;
    num(s, "demands_per_epoch", &mut d.demands_per_epoch)?;
    num(s, "epoch_h", &mut d.epoch_h)?;
    d.validate().map_err(|e| ApiError::invalid("bad-disclosure", e))?;
    // The node's own policy was checked when its file was loaded; one from the request is
    // checked here, so that a statement neither form can express is refused before upload.
    let policy = match s.param("policy") {
        Some(p) => {
            dualchain_ledger::policy::AccessPolicy::parse(&p)
                .and_then(|x| x.compile())
                .map_err(|e| ApiError::invalid("bad-policy", e.to_string()))?;
            p
        }
        None => node.cfg.owner.policy.clone(),
    };
    Ok(Terms { policy, disclosure: d })
}

/// The smallest supply shape this consortium set up that holds `n` records.
fn shape_for(node: &Node, n: usize) -> Result<dualchain_prover::supply::SupplyShape, ApiError> {
    node.supply_pks.keys().filter(|s| s.records() >= n).min_by_key(|s| s.records()).copied().ok_or_else(|| {
        let max = node.supply_pks.keys().map(|s| s.records()).max().unwrap_or(0);
        ApiError::unprocessable(
            "too-many-records",
            format!("{n} records; this consortium's datasets hold at most {max}"),
        )
    })
}

/// Step 4 for a hosted hospital: leave out the observations of patients who consent to no
/// use, take out what links each record to its patient, then [`register_records`].
async fn upload(
    node: &Node,
    h: &Hosted,
    observations: Vec<Value>,
    records: Vec<supply::Record>,
    name: Option<String>,
    cpc: Option<String>,
    terms: Terms,
) -> Result<Uploaded, ApiError> {
    let owner = owner_of(h)?;
    // No Consent is recorded until the dataset is registered with these masks.
    let _consent = owner.consent_lock.read().await;
    let offered = observations.len();
    let (mut kept_obs, mut kept_records, mut consent) = (Vec::new(), Vec::new(), Vec::new());
    for (o, r) in observations.into_iter().zip(records) {
        let mask = o["subject"]["reference"].as_str().map_or(supply::ALL_USES, |p| owner.consent_mask(p));
        if mask != 0 {
            kept_obs.push(o);
            kept_records.push(r);
            consent.push(mask);
        }
    }
    let left_out = offered - kept_records.len();
    if kept_records.is_empty() {
        return Err(ApiError::unprocessable(
            "consent-excludes-all",
            format!("the patients of all {offered} observations consent to no use; no dataset is made"),
        ));
    }
    let mut rng = ChaCha20Rng::from_entropy();
    let name = name.unwrap_or_else(|| format!("upload-{}-{:08x}", unix_ms(), rng.next_u32()));
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("bad-parameter", "dataset names are 1 to 128 bytes"));
    }
    if owner.has_name(&name)? {
        return Err(ApiError::conflict("dataset-exists", format!("{} already registered {name:?}", h.member.id)));
    }
    // What links a record to its patient stays here; the grants carry per-grant pseudonyms.
    let (plaintexts, patients): (Vec<Vec<u8>>, Vec<String>) = kept_obs
        .iter()
        .map(|o| {
            let (record, patient) = pseudonym::deidentify(o);
            (record.to_string().into_bytes(), patient.unwrap_or_default())
        })
        .unzip();
    let cpc = cpc
        .or_else(|| node.cfg.owner.default_cpc.clone())
        .ok_or_else(|| ApiError::invalid("no-cpc", "name a CPC (?cpc=) or set owner.default_cpc"))?;
    let kept = Records { plaintexts, patients, records: kept_records, consent };
    let mut up = register_records(node, h, kept, &name, &cpc, &terms, None).await?;
    up.left_out = left_out;
    Ok(up)
}

/// A dataset's records as its owner registers them: the de-identified plaintexts that are
/// signcrypted, each record's patient reference (kept here), its supply record and its
/// consent mask, all aligned.
pub(super) struct Records {
    pub plaintexts: Vec<Vec<u8>>,
    pub patients: Vec<String>,
    pub records: Vec<supply::Record>,
    pub consent: Vec<u8>,
}

/// Registers `kept` as a new dataset `name` at `cpc` under a fresh id and a fresh dataset
/// key: signcrypt, store at the CPC (checking its manifest), commit the records and their
/// consent masks, encrypt the index, keep the opening, register. `replaces`: the dataset a
/// patient's erasure replaces with this one. The caller holds the owner's consent lock
/// for reading.
pub(super) async fn register_records(
    node: &Node,
    h: &Hosted,
    kept: Records,
    name: &str,
    cpc: &str,
    terms: &Terms,
    replaces: Option<Hash>,
) -> Result<Uploaded, ApiError> {
    let owner = owner_of(h)?;
    let Records { plaintexts, patients, records, consent } = kept;
    let n = records.len();
    let shape = shape_for(node, n)?;
    match node.ledger.member(cpc)? {
        Some(m) if m.role == "cpc" && m.revoked.is_none() => {}
        _ => return Err(ApiError::unprocessable("unknown-cpc", format!("{cpc} is not an active CPC"))),
    }
    let mut rng = ChaCha20Rng::from_entropy();
    // Drawn at random: an id derived from the owner and the name alone would let anyone
    // who guesses a name ("icu-2026") find the dataset on chain.
    let dataset = DatasetId::derive(&h.member.id, &format!("{name}#{:032x}", rng.gen::<u128>()));
    let member = h.member.clone();
    let now = unix_ms() / 1000;
    let mut srng = ChaCha20Rng::from_rng(&mut rng).map_err(ApiError::internal)?;
    // The dataset's own delegating key: a CPC colluding with a grantee recovers this one
    // dataset's key, not the owner's for every dataset.
    let dsk = DelegatingSecretKey::generate(&mut rng);
    let delegating = dsk.public();
    let sealed = tokio::task::spawn_blocking(move || {
        sharing::signcrypt_dataset(&mut srng, &member, &delegating, dataset, &plaintexts, now, &|_, _| {})
    })
    .await
    .map_err(ApiError::internal)??;

    let (h1, stored) = store_at_cpc(node, h, cpc, sealed).await?;
    if stored != n {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "transient",
            "cpc-manifest",
            format!("{cpc} stored {stored} of {n} records"),
        ));
    }
    let prepared = sharing::prepare_registration(
        &mut rng,
        &node.abe_pk,
        &sharing::DatasetSpec {
            dataset,
            name,
            h1,
            cpc,
            shape,
            records: &records,
            consent: &consent,
            policy: &terms.policy,
            disclosure: terms.disclosure,
        },
    )
    .map_err(|e| ApiError::invalid("bad-policy", format!("{e:#}")))?;
    let kept = OwnedDataset {
        name: name.to_string(),
        cpc: cpc.to_string(),
        shape,
        records,
        salt: prepared.salt,
        patients,
        pseudonym_key: pseudonym::PseudonymKey::random(),
        dsk: Some(dsk),
        h1: Some(h1),
        consent,
        consent_salt: prepared.consent_salt,
        delivered: Vec::new(),
        replaces,
    };
    owner.add_dataset(dataset, kept)?;
    let f = h.client.submit(prepared.tx).await?;
    if let Outcome::Rejected { reason } = f.outcome {
        return Err(ApiError::unprocessable("rejected", format!("the ledger rejected the registration: {reason}")));
    }
    Ok(Uploaded { dataset, h1, records: n, left_out: 0, tx: f.hash, seq: f.seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_name_registered_devices_by_system_id_and_others_are_refused_when_required() {
        let id = "01-23-45-67-89-AB-CD-EF";
        let devices: Devices = [("Device/ox-1".to_owned(), id.to_owned())].into();
        let obs = |device: Value| json!({"resourceType": "Observation", "device": device});
        // Registered: the system id is added beside the reference.
        let mut o = obs(json!({"reference": "Device/ox-1"}));
        resolve_device(&mut o, &devices, true).unwrap();
        assert_eq!(o["device"]["identifier"], json!({"system": fhir::IEEE_SYSTEM_ID, "value": id}));
        assert_eq!(fhir::device_of(&o), id);
        // By system id alone, in another spelling: taken, in the canonical form.
        let mut o = obs(json!({"identifier": {"system": fhir::IEEE_SYSTEM_ID, "value": "0123456789abcdef"}}));
        resolve_device(&mut o, &devices, true).unwrap();
        assert_eq!(fhir::device_of(&o), id);
        // Not registered, or no device: as given, unless registration is required.
        for device in [
            json!({"reference": "Device/other"}),
            Value::Null,
            json!({"identifier": {"system": fhir::IEEE_SYSTEM_ID, "value": "FFFFFFFFFFFFFFFF"}}),
        ] {
            let mut o = obs(device.clone());
            resolve_device(&mut o, &devices, false).unwrap();
            assert_eq!(o, obs(device.clone()), "changed without a registered device");
            let e = resolve_device(&mut obs(device.clone()), &devices, true).unwrap_err();
            assert!(e.contains("not registered") || e.contains("no registered device"), "{device}: {e}");
        }
        // A Device needs its system id and a name to be found by.
        let d = json!({"resourceType": "Device", "id": "ox-1",
            "identifier": [{"system": fhir::IEEE_SYSTEM_ID, "value": "0123456789ABCDEF"}]});
        assert_eq!(
            device_refs(&d, Some("urn:uuid:1")).unwrap(),
            [("Device/ox-1".into(), id.into()), ("urn:uuid:1".into(), id.into())]
        );
        assert_eq!(device_refs(&json!({"resourceType": "Device", "id": "x"}), None).unwrap_err().reason, "bad-device");
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
}
