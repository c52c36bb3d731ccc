//! Synthetic FHIR R4 `Observation` resources from a bedside monitor (IEEE 11073 device),
//! as a hospital's MIoT gateway would post them: heart rate (LOINC 8867-4), oxygen
//! saturation by pulse oximetry (LOINC 59408-5) and systolic blood pressure (LOINC 8480-6),
//! UCUM units, a pseudonymous patient and the monitor as `device`.

use dualchain_node::fhir::{rfc3339, to_record_with};
use rand::Rng;
use serde_json::{json, Value};

/// One vital sign the synthetic monitor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vital {
    HeartRate,
    SpO2,
    SystolicBp,
}

impl Vital {
    /// The vital of the `i`-th observation of a synthetic series (they rotate).
    pub fn of_index(i: usize) -> Self {
        [Vital::HeartRate, Vital::SpO2, Vital::SystolicBp][i % 3]
    }
}

impl Vital {
    fn coding(self) -> (&'static str, &'static str, &'static str, &'static str) {
        // (LOINC code, display, UCUM code, unit text)
        match self {
            Vital::HeartRate => ("8867-4", "Heart rate", "/min", "beats/minute"),
            Vital::SpO2 => ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
            Vital::SystolicBp => ("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg"),
        }
    }
}

/// Parameters of the synthetic ward.
#[derive(Debug, Clone)]
pub struct Ward {
    pub hospital: String,
    pub patients: u32,
    pub start_unix: u64,
    pub interval_s: u64,
}

/// A patient of the synthetic ward, as the hospital's own registry knows them (the
/// Observations carry only a pseudonymous reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub reference: String,
    /// 5-year age band (8 = 40–44 years).
    pub age_band: u8,
    /// 1 male, 2 female (`dualchain_prover::supply::sex`).
    pub sex: u8,
}

impl Ward {
    pub fn patient(&self, p: u32) -> Patient {
        Patient {
            reference: format!("Patient/{}-p{p:04}", self.hospital),
            age_band: 8 + (p % 5) as u8,
            sex: 1 + (p % 2) as u8,
        }
    }

    pub fn patient_by_reference(&self, reference: &str) -> Option<Patient> {
        (0..self.patients.max(1)).map(|p| self.patient(p)).find(|p| p.reference == reference)
    }
}

/// Generates `count` observations rotating heart rate, SpO2 and systolic blood pressure across the ward's patients.
pub fn observations(ward: &Ward, count: usize, rng: &mut impl Rng) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let vital = Vital::of_index(i);
            let patient = (i as u32 / 3) % ward.patients.max(1);
            let t = ward.start_unix + (i as u64 / 3) * ward.interval_s;
            let value = match vital {
                Vital::HeartRate => rng.gen_range(48..=132) as f64,
                Vital::SpO2 => rng.gen_range(88..=100) as f64,
                Vital::SystolicBp => rng.gen_range(92..=168) as f64,
            };
            observation(ward, i, vital, patient, t, value)
        })
        .collect()
}

fn observation(ward: &Ward, index: usize, vital: Vital, patient: u32, t: u64, value: f64) -> Value {
    let (code, display, ucum, unit) = vital.coding();
    json!({
        "resourceType": "Observation",
        "id": format!("{}-obs-{index}", ward.hospital),
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"
        }]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": ward.patient(patient).reference},
        "effectiveDateTime": rfc3339(t),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
        "device": {"reference": format!("Device/{}-bedside-{:02}", ward.hospital, patient % 16)}
    })
}

/// A FHIR transaction Bundle as a gateway posts it: the ward's `patients` (gender, birth
/// date) and `n` observations of the last half hour. Returns the Bundle and the
/// observations.
pub fn ward_bundle(hospital: &str, patients: u32, n: usize, seed: u64) -> (Value, Vec<Value>) {
    use rand::SeedableRng;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ward = Ward { hospital: hospital.into(), patients, start_unix: now - 1800, interval_s: 30 };
    let obs = observations(&ward, n, &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
    (transaction_bundle(&ward, &obs), obs)
}

/// A transaction Bundle of the ward's Patients (gender, birth date 1961-03-01) and `obs`.
pub fn transaction_bundle(ward: &Ward, obs: &[Value]) -> Value {
    let mut entries: Vec<Value> = (0..ward.patients)
        .map(|p| {
            let pt = ward.patient(p);
            let id = pt.reference.trim_start_matches("Patient/").to_string();
            let gender = if pt.sex == 1 { "male" } else { "female" };
            json!({"fullUrl": format!("urn:uuid:{id}"), "resource": {"resourceType": "Patient", "id": id, "gender": gender, "birthDate": "1961-03-01"}})
        })
        .collect();
    entries.extend(obs.iter().map(|o| json!({"resource": o, "request": {"method": "POST", "url": "Observation"}})));
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Turns a vital-sign Observation into the supply circuit's record, with the patient's
/// demographics from the hospital's registry. Errors name the field that does not map.
pub fn to_record(obs: &Value, ward: &Ward) -> Result<dualchain_prover::supply::Record, String> {
    to_record_with(obs, |reference, _| ward.patient_by_reference(reference).map(|p| (p.age_band, p.sex)))
}

/// The Observations coded `loinc` (what a demand for that code over all values and times
/// is delivered).
pub fn with_code(observations: &[Value], loinc: &str) -> Vec<Value> {
    observations.iter().filter(|o| o["code"]["coding"][0]["code"] == loinc).cloned().collect()
}

/// The resources a searchset Bundle returns as matches (a delivery's records; the
/// Provenance or OperationOutcome entries after them are left out).
pub fn matches(bundle: &Value) -> Vec<Value> {
    let entries = bundle["entry"].as_array().into_iter().flatten();
    entries.filter(|e| e["search"]["mode"] == "match").map(|e| e["resource"].clone()).collect()
}

/// Whether a grant's delivery `got` is `uploaded`, in any order, as a grant delivers it:
/// without the uploaded patient links (`dualchain::member::pseudonym::deidentify`), each
/// with a pseudonymous subject of `grant` instead.
pub fn delivered_as(got: &[Value], uploaded: &[Value], grant: &str) -> Result<(), String> {
    let system = format!("urn:dualchain:grant:{grant}");
    let mut g = Vec::with_capacity(got.len());
    for o in got {
        let mut o = o.clone();
        let subject = o.as_object_mut().and_then(|m| m.remove("subject")).unwrap_or_default();
        if subject["identifier"]["system"] != system.as_str() {
            return Err(format!("subject {subject} is not a pseudonym of grant {grant}"));
        }
        g.push(o.to_string());
    }
    let mut u: Vec<String> =
        uploaded.iter().map(|o| dualchain_node::member::pseudonym::deidentify(o).0.to_string()).collect();
    g.sort();
    u.sort();
    if g != u {
        return Err(format!("delivered {} records, not the {} uploaded less their patient links", g.len(), u.len()));
    }
    Ok(())
}

/// A FHIR R4 Consent of `patient` (a reference) with `status` and `provision` (none when
/// null), as a hospital's registration desk would record it.
pub fn consent(patient: &str, status: &str, provision: Value) -> Value {
    let mut c = json!({
        "resourceType": "Consent", "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"reference": patient},
        "dateTime": "2026-12-05T09:00:00Z",
    });
    if !provision.is_null() {
        c["provision"] = provision;
    }
    c
}

/// A provision refusing research (`HRESCH`) to every recipient.
pub fn research_opt_out() -> Value {
    json!({"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn observations_map_to_records() {
        let ward = Ward { hospital: "hospital-a".into(), patients: 3, start_unix: 1_790_000_000, interval_s: 60 };
        let obs = observations(&ward, 4, &mut rand_chacha::ChaCha20Rng::seed_from_u64(2));
        let r = to_record(&obs[0], &ward).unwrap();
        assert_eq!(r.code, 88674);
        assert_eq!(r.time, 1_790_000_000 / 60);
        assert_eq!(r.age_band, ward.patient(0).age_band);
        let mut bad = obs[1].clone();
        bad["subject"]["reference"] = "Patient/nobody".into();
        assert!(to_record(&bad, &ward).unwrap_err().contains("unknown patient"));
        bad = obs[1].clone();
        bad["code"]["coding"][0]["code"] = "abc".into();
        assert!(to_record(&bad, &ward).is_err());
    }

    #[test]
    fn observations_are_fhir_vital_signs() {
        let ward = Ward { hospital: "hospital-a".into(), patients: 3, start_unix: 1_790_000_000, interval_s: 60 };
        let obs = observations(&ward, 6, &mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        assert_eq!(obs.len(), 6);
        for (i, o) in obs.iter().enumerate() {
            assert_eq!(o["resourceType"], "Observation");
            let code = o["code"]["coding"][0]["code"].as_str().unwrap();
            let v = o["valueQuantity"]["value"].as_f64().unwrap();
            let (want, range) = match i % 3 {
                0 => ("8867-4", 48.0..=132.0),
                1 => ("59408-5", 88.0..=100.0),
                _ => ("8480-6", 92.0..=168.0),
            };
            assert_eq!(code, want);
            assert!(range.contains(&v), "{code} value {v}");
            assert_eq!(o["valueQuantity"]["code"], ["/min", "%", "mm[Hg]"][i % 3]);
        }
    }
}
