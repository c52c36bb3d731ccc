//! Synthetic FHIR R4 `Observation` resources from a bedside monitor (IEEE 11073 device),
//! as a hospital's MIoT gateway would post them: heart rate (LOINC 8867-4), oxygen
//! saturation by pulse oximetry (LOINC 59408-5) and systolic blood pressure (LOINC 8480-6),
//! UCUM units, a pseudonymous patient and the monitor as `device`.

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
    let mut entries: Vec<Value> = (0..patients)
        .map(|p| {
            let pt = ward.patient(p);
            let id = pt.reference.trim_start_matches("Patient/").to_string();
            let gender = if pt.sex == 1 { "male" } else { "female" };
            json!({"fullUrl": format!("urn:uuid:{id}"), "resource": {"resourceType": "Patient", "id": id, "gender": gender, "birthDate": "1961-03-01"}})
        })
        .collect();
    entries.extend(obs.iter().map(|o| json!({"resource": o, "request": {"method": "POST", "url": "Observation"}})));
    (json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), obs)
}

/// UNIX seconds as an RFC 3339 UTC timestamp (civil-from-days, Howard Hinnant's algorithm).
pub fn rfc3339(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Parses an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SSZ` into UNIX seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let t = days * 86_400 + hh * 3600 + mm * 60 + ss;
    if rfc3339(u64::try_from(t).ok()?) != s {
        return None; // e.g. 31 February
    }
    u64::try_from(t).ok()
}

/// A FHIR `date` (`YYYY-MM-DD`) as UNIX seconds at midnight UTC; dates before 1970 are
/// negative (birth dates).
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil, the inverse of
/// the conversion in [`rfc3339`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Turns a vital-sign Observation into the supply circuit's record, with the patient's
/// demographics from the hospital's registry. Errors name the field that does not map.
pub fn to_record(obs: &Value, ward: &Ward) -> Result<dualchain_prover::supply::Record, String> {
    to_record_with(obs, |reference, _| ward.patient_by_reference(reference).map(|p| (p.age_band, p.sex)))
}

/// [`to_record`] with the demographics from `patient(reference, observation time)`:
/// (5-year age band, sex code).
pub fn to_record_with(
    obs: &Value,
    patient: impl Fn(&str, u64) -> Option<(u8, u8)>,
) -> Result<dualchain_prover::supply::Record, String> {
    use dualchain_prover::supply::fhir as map;
    let code = obs["code"]["coding"][0]["code"].as_str().ok_or("Observation.code has no coding")?;
    let code = map::loinc_code(code).ok_or_else(|| format!("{code} is not a LOINC code"))?;
    let q = &obs["valueQuantity"];
    let unit = map::unit_code(q["code"].as_str().ok_or("valueQuantity.code is missing")?);
    let value = map::fixed_point(q["value"].as_f64().ok_or("valueQuantity.value is missing")?)
        .ok_or("valueQuantity.value is negative or too large")?;
    let t = obs["effectiveDateTime"].as_str().and_then(parse_rfc3339).ok_or("effectiveDateTime is not RFC 3339 UTC")?;
    let subject = obs["subject"]["reference"].as_str().ok_or("subject.reference is missing")?;
    let (age_band, sex) =
        patient(subject, t).ok_or_else(|| format!("unknown patient {subject} (post the Patient first)"))?;
    let device = obs["device"]["reference"].as_str().unwrap_or("");
    Ok(dualchain_prover::supply::Record {
        present: true,
        code,
        unit,
        age_band,
        sex,
        value,
        time: map::minutes(t).ok_or("time out of range")?,
        device: map::device_code(device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_478_399), "2026-11-23T23:59:59Z");
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_garbage() {
        for t in [0u64, 951_782_400, 1_795_478_399, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        for bad in
            ["2026-02-31T00:00:00Z", "2026-11-24 00:00:00Z", "2026-11-24T24:00:00Z", "", "2026-11-24T00:00:00+01:00"]
        {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_before_and_after_1970() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1969-12-31"), Some(-86_400));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("1961-13-01"), None);
        assert_eq!(parse_date("1961-3-1"), None);
    }

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
