//! Patients' consent at their hospital: FHIR R4 `Consent` resources as this node reads
//! them, and the consent mask of a patient's records ([`ConsentRule::mask_at`]): one bit
//! per use, a purpose of use (HL7 v3 `PurposeOfUse`) for a role of recipient
//! ([`dualchain_ledger::consent`]).
//!
//! What a Consent says, as read here (a subset of R4's, refused with the reason otherwise):
//! - `status` `active` governs; `inactive`, `rejected` or `entered-in-error` ends the
//!   patient's previous consent, and `draft` or `proposed` is refused (not yet a decision).
//! - `patient` names a Patient registered at this hospital; `scope`, `category` present.
//! - `provision.type` `deny` is an opt-out: the uses it matches are refused, all others
//!   permitted. `permit` is an opt-in: only the uses it matches are permitted. No provision
//!   is a permit of everything.
//! - A provision matches by `purpose` (v3-ActReason `HRESCH`, `TREAT`, `PUBHLTH`,
//!   `HOPERAT`; none: every purpose), by `actor` (role `IRCP`, the information recipient,
//!   named by its member role: `identifier` of system [`RECIPIENT_SYSTEM`], value
//!   `research` or `hospital`; none: every recipient), and within its `period` (none:
//!   always). Nested provisions (exceptions), and provisions by `data`, `class`, `code`,
//!   `action`, `securityLabel` or `dataPeriod`, are refused, not ignored.
//!
//! The latest Consent recorded for a patient governs. A patient without one is governed by
//! the hospital's terms under which it shares records at all: every use is permitted.
//! Break-glass (`ETREAT`) is not one of these uses: emergency treatment overrides consent
//! and is reviewed afterwards (`dualchain_ledger::contracts::emergency`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_ledger::consent::{use_index, Purpose, RECIPIENT_ROLES};
use dualchain_prover::supply::{ALL_USES, USES};
use dualchain_storage::KvEngine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::journal::Journal;

/// The system of a recipient actor's identifier: its member role.
pub const RECIPIENT_SYSTEM: &str = "urn:dualchain:member-role";
/// HL7 v3 ActReason, the purposes of use.
pub const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// HL7 v3 ParticipationType, the actor roles (`IRCP`: information recipient).
pub const ACTOR_ROLE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// Largest Consent resource kept, in bytes of JSON.
pub const CONSENT_LEN_MAX: usize = 16 << 10;

/// What one Consent decides, as the masks need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRule {
    /// The Patient reference (`Patient/<id>`).
    pub patient: String,
    /// Whether it governs (`active`); otherwise it ends the patient's previous consent.
    pub active: bool,
    /// `permit` (opt-in) or `deny` (opt-out).
    pub permit: bool,
    /// The purposes it matches (empty: all).
    pub purposes: Vec<Purpose>,
    /// The recipient roles it matches (empty: all).
    pub roles: Vec<String>,
    /// UNIX milliseconds `[start, end)`, either open.
    pub period: (Option<i64>, Option<i64>),
}

impl ConsentRule {
    /// Reads a FHIR R4 Consent (see the module docs), with a reason where it is not one
    /// this node can enforce.
    pub fn from_fhir(c: &Value) -> Result<Self> {
        ensure!(c["resourceType"] == "Consent", "not a Consent resource");
        let active = match c["status"].as_str() {
            Some("active") => true,
            Some("inactive" | "rejected" | "entered-in-error") => false,
            Some(s @ ("draft" | "proposed")) => bail!("a {s} Consent is not a decision yet; record it when active"),
            Some(s) => bail!("Consent.status {s:?} is not an R4 status"),
            None => bail!("Consent.status is required"),
        };
        ensure!(c["scope"].is_object(), "Consent.scope is required");
        ensure!(c["category"].as_array().is_some_and(|a| !a.is_empty()), "Consent.category is required");
        // As the patient's Observations name it: `Patient/<id>`, or the `fullUrl` of a Bundle.
        let patient = c["patient"]["reference"]
            .as_str()
            .filter(|r| ["Patient/", "urn:uuid:"].iter().any(|p| r.starts_with(p) && r.len() > p.len()))
            .ok_or_else(|| anyhow!("Consent.patient must reference a Patient (Patient/<id> or urn:uuid:<id>)"))?
            .to_string();
        let p = &c["provision"];
        if p.is_null() {
            return Ok(Self { patient, active, permit: true, purposes: vec![], roles: vec![], period: (None, None) });
        }
        ensure!(p.is_object(), "Consent.provision must be an object");
        ensure!(
            p.get("provision").is_none(),
            "nested provisions (exceptions) are not supported: state the exception as the Consent's own provision"
        );
        let permit = match p["type"].as_str() {
            Some("permit") => true,
            Some("deny") => false,
            other => bail!("Consent.provision.type must be permit or deny, not {other:?}"),
        };
        for list in ["purpose", "actor"] {
            ensure!(p[list].is_null() || p[list].is_array(), "Consent.provision.{list} must be an array");
        }
        for unread in ["action", "securityLabel", "class", "code", "dataPeriod", "data"] {
            ensure!(
                p.get(unread).is_none(),
                "Consent.provision.{unread} is not enforced here: state the provision by purpose, actor and period"
            );
        }
        let mut purposes = Vec::new();
        for coding in p["purpose"].as_array().into_iter().flatten() {
            let code = coding["code"].as_str().ok_or_else(|| anyhow!("a provision purpose without a code"))?;
            ensure!(
                coding["system"].as_str().is_none_or(|s| s == PURPOSE_SYSTEM),
                "provision purposes are coded in {PURPOSE_SYSTEM}"
            );
            let purpose = Purpose::from_code(code).ok_or_else(|| {
                let known: Vec<&str> = Purpose::ALL.iter().map(|p| p.code()).collect();
                anyhow!("purpose of use {code:?} is not one of {}", known.join(", "))
            })?;
            purposes.push(purpose);
        }
        let mut roles = Vec::new();
        for actor in p["actor"].as_array().into_iter().flatten() {
            let is_recipient = actor["role"]["coding"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["code"] == "IRCP" && c["system"] == ACTOR_ROLE_SYSTEM));
            ensure!(is_recipient, "a provision actor must have the role IRCP ({ACTOR_ROLE_SYSTEM})");
            let id = &actor["reference"]["identifier"];
            ensure!(
                id["system"] == RECIPIENT_SYSTEM,
                "a provision actor is named by identifier of system {RECIPIENT_SYSTEM}"
            );
            let role = id["value"].as_str().unwrap_or_default();
            ensure!(
                RECIPIENT_ROLES.contains(&role),
                "recipient role {role:?} is not one of {}",
                RECIPIENT_ROLES.join(", ")
            );
            roles.push(role.to_string());
        }
        let instant = |k: &str| -> Result<Option<i64>> {
            match p["period"][k].as_str() {
                None => Ok(None),
                Some(t) => Ok(Some(instant_ms(t).with_context(|| format!("Consent.provision.period.{k}"))?)),
            }
        };
        let period = (instant("start")?, instant("end")?);
        if let (Some(s), Some(e)) = period {
            ensure!(s < e, "Consent.provision.period ends before it starts");
        }
        Ok(Self { patient, active, permit, purposes, roles, period })
    }

    /// Whether the provision applies to `purpose` for a recipient of `role` at `now_ms`.
    fn matches(&self, purpose: Purpose, role: &str, now_ms: i64) -> bool {
        (self.purposes.is_empty() || self.purposes.contains(&purpose))
            && (self.roles.is_empty() || self.roles.iter().any(|r| r == role))
            && self.period.0.is_none_or(|s| now_ms >= s)
            && self.period.1.is_none_or(|e| now_ms < e)
    }

    /// The consent mask of this patient's records at `now_ms`.
    pub fn mask_at(&self, now_ms: i64) -> u8 {
        if !self.active {
            return ALL_USES;
        }
        let mut mask = 0u8;
        for purpose in Purpose::ALL {
            for role in RECIPIENT_ROLES {
                let i = use_index(purpose, role).expect("a recipient role");
                if self.matches(purpose, role, now_ms) == self.permit {
                    mask |= 1 << i;
                }
            }
        }
        mask
    }
}

/// A period bound: an RFC 3339 UTC timestamp (`2027-01-01T00:00:00Z`) or a date
/// (`2027-01-01`, from its midnight UTC), as UNIX milliseconds.
pub fn instant_ms(t: &str) -> Result<i64> {
    if let Some(s) = crate::fhir::parse_rfc3339(t) {
        return Ok(i64::try_from(s)?.saturating_mul(1000));
    }
    crate::fhir::parse_date(t)
        .map(|s| s.saturating_mul(1000))
        .ok_or_else(|| anyhow!("{t:?} is neither a UTC timestamp (YYYY-MM-DDTHH:MM:SSZ) nor a date (YYYY-MM-DD)"))
}

/// The uses a mask permits, as `PURPOSE for role` phrases.
pub fn describe(mask: u8) -> Vec<String> {
    let mut out = Vec::with_capacity(USES);
    for purpose in Purpose::ALL {
        for role in RECIPIENT_ROLES {
            if mask >> use_index(purpose, role).expect("a recipient role") & 1 == 1 {
                out.push(format!("{purpose} for {role}"));
            }
        }
    }
    out
}

/// A hospital's recorded Consents, in the order recorded (the latest per patient governs),
/// kept in one 0600 file and written through, synced, before a change is acted on.
#[derive(Debug)]
pub struct ConsentBook {
    journal: Journal,
    /// Each Consent as recorded (with its `id`), and its rule.
    entries: Vec<(Value, ConsentRule)>,
    /// Each patient's latest entry.
    latest: HashMap<String, usize>,
    /// The mask of a patient without an active Consent ([`ConsentDefault`]).
    default_mask: u8,
}

impl Default for ConsentBook {
    fn default() -> Self {
        Self {
            journal: Journal::new(None, JOURNAL),
            entries: Vec::new(),
            latest: HashMap::new(),
            default_mask: ALL_USES,
        }
    }
}

/// The book's journal in the hospital's store ([`super::journal`]).
const JOURNAL: &str = "consent";

/// What a patient without an active Consent (none recorded, or the latest withdrawn)
/// consents to: `owner.consent_default` in the node file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentDefault {
    /// Every use, under the hospital's terms (opt-out: a Consent restricts).
    #[default]
    Permit,
    /// No use: records are shared only for what a patient's Consent permits (opt-in, as
    /// where the law asks for explicit consent to research use); a patient without one
    /// is left out of new datasets.
    Deny,
}

impl ConsentDefault {
    pub fn mask(self) -> u8 {
        match self {
            Self::Permit => ALL_USES,
            Self::Deny => 0,
        }
    }
}

impl ConsentBook {
    /// The book kept in `store` (none: in memory only), where patients without an active
    /// Consent get `default`. A `consents.json` an earlier build left at `legacy` is
    /// imported into an empty book.
    pub fn open(store: Option<Arc<dyn KvEngine>>, legacy: Option<&Path>, default: ConsentDefault) -> Result<Self> {
        let journal = Journal::new(store, JOURNAL);
        let mut list: Vec<(u64, Value)> = journal.load()?;
        if let Some(legacy) = legacy {
            list.extend(journal.import(legacy, list.is_empty())?);
        }
        let mut book = Self { journal, entries: Vec::new(), latest: HashMap::new(), default_mask: default.mask() };
        for (seq, c) in list {
            ensure!(seq == book.entries.len() as u64, "the consent journal misses entry {}", book.entries.len());
            let rule = ConsentRule::from_fhir(&c).with_context(|| format!("Consent {seq} of the journal"))?;
            book.push(c, rule);
        }
        Ok(book)
    }

    fn push(&mut self, consent: Value, rule: ConsentRule) {
        self.latest.insert(rule.patient.clone(), self.entries.len());
        self.entries.push((consent, rule));
    }

    /// Records a Consent (its rule read by [`ConsentRule::from_fhir`]), on disk first.
    pub fn record(&mut self, consent: Value, rule: ConsentRule) -> Result<()> {
        self.journal.write(&[(self.entries.len() as u64, &consent)], &[])?;
        self.push(consent, rule);
        Ok(())
    }

    /// Adds `meta.tag`s (`urn:dualchain:<name>`) to the latest Consent, on disk first: the
    /// commitments' transactions, once they are final.
    pub fn tag_latest(&mut self, tags: &[(&str, String)]) -> Result<()> {
        let Some((latest, _)) = self.entries.last().filter(|_| !tags.is_empty()) else { return Ok(()) };
        let mut tagged = latest.clone();
        if !tagged["meta"]["tag"].is_array() {
            tagged["meta"]["tag"] = serde_json::json!([]);
        }
        if let Some(list) = tagged["meta"]["tag"].as_array_mut() {
            list.extend(
                tags.iter().map(|(n, code)| serde_json::json!({"system": format!("urn:dualchain:{n}"), "code": code})),
            );
        }
        self.journal.write(&[(self.entries.len() as u64 - 1, &tagged)], &[])?;
        if let Some(last) = self.entries.last_mut() {
            last.0 = tagged;
        }
        Ok(())
    }

    /// The rule governing `patient`: its latest Consent's.
    pub fn current(&self, patient: &str) -> Option<&ConsentRule> {
        self.latest.get(patient).map(|&i| &self.entries[i].1)
    }

    /// The consent mask of `patient`'s records at `now_ms`.
    pub fn mask_of(&self, patient: &str, now_ms: i64) -> u8 {
        self.current(patient).map_or(self.default_mask, |r| self.mask_under(r, now_ms))
    }

    /// What `rule` permits at `now_ms` in this book: the book's default where it is not
    /// active (withdrawn, rejected, entered in error).
    pub fn mask_under(&self, rule: &ConsentRule, now_ms: i64) -> u8 {
        if rule.active {
            rule.mask_at(now_ms)
        } else {
            self.default_mask
        }
    }

    /// `patient`'s Consents, oldest first.
    pub fn history(&self, patient: &str) -> Vec<&Value> {
        self.entries.iter().filter(|(_, r)| r.patient == patient).map(|(c, _)| c).collect()
    }

    /// Every recorded Consent, oldest first.
    pub fn all(&self) -> impl Iterator<Item = (&Value, &ConsentRule)> {
        self.entries.iter().map(|(c, r)| (c, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consent(provision: Value) -> Value {
        let mut c = json!({
            "resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
            "patient": {"reference": "Patient/p1"},
        });
        if !provision.is_null() {
            c["provision"] = provision;
        }
        c
    }

    fn bit(p: Purpose, role: &str) -> u8 {
        1 << use_index(p, role).unwrap()
    }

    #[test]
    fn an_opt_out_of_research_refuses_research_only_and_an_opt_in_permits_only_what_it_names() {
        let now = 1_800_000_000_000;
        // Opt-out of research, for every recipient.
        let out = ConsentRule::from_fhir(&consent(json!({"type": "deny",
            "purpose": [{"system": PURPOSE_SYSTEM, "code": "HRESCH"}]})))
        .unwrap();
        let m = out.mask_at(now);
        assert_eq!(m & (bit(Purpose::Research, "research") | bit(Purpose::Research, "hospital")), 0);
        assert_eq!(m | bit(Purpose::Research, "research") | bit(Purpose::Research, "hospital"), ALL_USES);
        // A full opt-out: nothing.
        assert_eq!(ConsentRule::from_fhir(&consent(json!({"type": "deny"}))).unwrap().mask_at(now), 0);
        // Opt-in to research by research institutes during 2027 only.
        let opt_in = ConsentRule::from_fhir(&consent(json!({"type": "permit",
            "purpose": [{"system": PURPOSE_SYSTEM, "code": "HRESCH"}],
            "actor": [{"role": {"coding": [{"system": ACTOR_ROLE_SYSTEM, "code": "IRCP"}]},
                       "reference": {"identifier": {"system": RECIPIENT_SYSTEM, "value": "research"}}}],
            "period": {"start": "2027-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z"}})))
        .unwrap();
        let in_2027 = instant_ms("2027-06-01T00:00:00Z").unwrap();
        assert_eq!(opt_in.mask_at(in_2027), bit(Purpose::Research, "research"));
        assert_eq!(opt_in.mask_at(instant_ms("2028-01-01T00:00:00Z").unwrap()), 0, "the period ended");
        assert_eq!(describe(opt_in.mask_at(in_2027)), ["HRESCH for research"]);
        // Withdrawn (inactive): back to the hospital's terms, every use.
        let mut c = consent(json!({"type": "deny"}));
        c["status"] = json!("inactive");
        assert_eq!(ConsentRule::from_fhir(&c).unwrap().mask_at(now), ALL_USES);
        // No provision: a permit of everything.
        assert_eq!(ConsentRule::from_fhir(&consent(Value::Null)).unwrap().mask_at(now), ALL_USES);
    }

    #[test]
    fn consents_this_node_cannot_enforce_are_refused_with_the_reason() {
        let cases = [
            (json!({"type": "deny", "provision": [{"type": "permit"}]}), "nested"),
            (json!({"type": "maybe"}), "permit or deny"),
            (json!({"type": "deny", "purpose": [{"system": PURPOSE_SYSTEM, "code": "MARKT"}]}), "MARKT"),
            (json!({"type": "deny", "purpose": [{"system": "urn:other", "code": "HRESCH"}]}), "coded in"),
            (
                json!({"type": "deny", "actor": [{"reference": {"identifier": {"system": RECIPIENT_SYSTEM, "value": "research"}}}]}),
                "IRCP",
            ),
            (
                json!({"type": "deny", "actor": [{"role": {"coding": [{"system": ACTOR_ROLE_SYSTEM, "code": "IRCP"}]},
                "reference": {"identifier": {"system": RECIPIENT_SYSTEM, "value": "cpc"}}}]}),
                "recipient role",
            ),
            (
                json!({"type": "deny", "period": {"start": "2028-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}}),
                "ends before",
            ),
            (json!({"type": "deny", "period": {"start": "yesterday"}}), "period.start"),
            (json!({"type": "deny", "purpose": {"code": "HRESCH"}}), "must be an array"),
            (
                json!({"type": "deny", "data": [{"meaning": "instance", "reference": {"reference": "Observation/1"}}]}),
                "not enforced",
            ),
        ];
        for (provision, want) in cases {
            let e = format!("{:#}", ConsentRule::from_fhir(&consent(provision.clone())).unwrap_err());
            assert!(e.contains(want), "{provision}: {e}");
        }
        for (field, value, want) in [
            ("status", json!("draft"), "not a decision"),
            ("status", json!("maybe"), "not an R4 status"),
            ("patient", json!({"reference": "Group/1"}), "Patient/"),
            ("category", json!([]), "category"),
            ("resourceType", json!("Observation"), "not a Consent"),
        ] {
            let mut c = consent(json!({"type": "deny"}));
            c[field] = value;
            let e = format!("{:#}", ConsentRule::from_fhir(&c).unwrap_err());
            assert!(e.contains(want), "{field}: {e}");
        }
    }

    #[test]
    fn the_latest_consent_governs_and_the_book_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = || Some(super::super::journal::open_store(&dir.path().join("member")).unwrap());
        let mut book = ConsentBook::open(store(), None, ConsentDefault::Permit).unwrap();
        assert_eq!(book.mask_of("Patient/p1", 0), ALL_USES, "no consent: the hospital's terms");
        let out = consent(json!({"type": "deny"}));
        book.record(out.clone(), ConsentRule::from_fhir(&out).unwrap()).unwrap();
        assert_eq!(book.mask_of("Patient/p1", 0), 0);
        let mut back = consent(Value::Null);
        back["status"] = json!("inactive");
        book.record(back.clone(), ConsentRule::from_fhir(&back).unwrap()).unwrap();
        book.tag_latest(&[("tx", "ab".repeat(32))]).unwrap();
        drop(book);
        let reopened = ConsentBook::open(store(), None, ConsentDefault::Permit).unwrap();
        assert_eq!(reopened.mask_of("Patient/p1", 0), ALL_USES);
        assert_eq!(reopened.history("Patient/p1").len(), 2);
        assert_eq!(reopened.history("Patient/p1")[1]["meta"]["tag"][0]["code"], "ab".repeat(32), "the tag was kept");
        assert_eq!(reopened.mask_of("Patient/p2", 0), ALL_USES);
        drop(reopened);

        // A book an earlier build kept as one JSON list is imported into an empty journal.
        let legacy = dir.path().join("consents.json");
        std::fs::write(&legacy, serde_json::to_vec(&[&out]).unwrap()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let store = Some(super::super::journal::open_store(other.path()).unwrap());
        let imported = ConsentBook::open(store.clone(), Some(&legacy), ConsentDefault::Permit).unwrap();
        assert_eq!(imported.mask_of("Patient/p1", 0), 0);
        assert!(!legacy.exists());
        drop(imported);
        assert_eq!(ConsentBook::open(store, None, ConsentDefault::Permit).unwrap().history("Patient/p1").len(), 1);
    }

    #[test]
    fn under_a_deny_default_only_an_active_opt_in_shares() {
        let mut book = ConsentBook::open(None, None, ConsentDefault::Deny).unwrap();
        assert_eq!(book.mask_of("Patient/p1", 0), 0, "no consent: no use");
        let opt_in = consent(json!({"type": "permit", "purpose": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]}));
        book.record(opt_in.clone(), ConsentRule::from_fhir(&opt_in).unwrap()).unwrap();
        let research = bit(Purpose::Research, "research") | bit(Purpose::Research, "hospital");
        assert_eq!(book.mask_of("Patient/p1", 0), research);
        // Withdrawn: back to the default, which is no use here (and every use under Permit).
        let mut withdrawn = opt_in.clone();
        withdrawn["status"] = json!("inactive");
        let rule = ConsentRule::from_fhir(&withdrawn).unwrap();
        assert_eq!(ConsentBook::default().mask_under(&rule, 0), ALL_USES);
        book.record(withdrawn, rule).unwrap();
        assert_eq!(book.mask_of("Patient/p1", 0), 0);
        assert_eq!(book.mask_of("Patient/p2", 0), 0);
        // The node file names it in lower case; anything else is refused.
        let read = |t: &str| toml::from_str::<std::collections::HashMap<String, ConsentDefault>>(t);
        assert_eq!(read("d = \"deny\"").unwrap()["d"], ConsentDefault::Deny);
        assert!(read("d = \"maybe\"").is_err());
    }
}
