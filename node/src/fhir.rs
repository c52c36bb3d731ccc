//! Synthetic FHIR R4 `Observation` resources from a bedside monitor (IEEE 11073 device),
//! as a hospital's MIoT gateway would post them: heart rate (LOINC 8867-4) and oxygen
//! saturation by pulse oximetry (LOINC 59408-5), UCUM units, a pseudonymous patient and the
//! monitor as `device`.

use rand::Rng;
use serde_json::{json, Value};

/// One vital sign the synthetic monitor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vital {
    HeartRate,
    SpO2,
}

impl Vital {
    fn coding(self) -> (&'static str, &'static str, &'static str, &'static str) {
        // (LOINC code, display, UCUM code, unit text)
        match self {
            Vital::HeartRate => ("8867-4", "Heart rate", "/min", "beats/minute"),
            Vital::SpO2 => ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
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

/// Generates `count` observations alternating heart rate and SpO2 across the ward's patients.
pub fn observations(ward: &Ward, count: usize, rng: &mut impl Rng) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let vital = if i % 2 == 0 { Vital::HeartRate } else { Vital::SpO2 };
            let patient = (i as u32 / 2) % ward.patients.max(1);
            let t = ward.start_unix + (i as u64 / 2) * ward.interval_s;
            let value = match vital {
                Vital::HeartRate => rng.gen_range(48..=132) as f64,
                Vital::SpO2 => rng.gen_range(88..=100) as f64,
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
        "subject": {"reference": format!("Patient/{}-p{patient:04}", ward.hospital)},
        "effectiveDateTime": rfc3339(t),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
        "device": {"reference": format!("Device/{}-bedside-{:02}", ward.hospital, patient % 16)}
    })
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
    fn observations_are_fhir_vital_signs() {
        let ward = Ward { hospital: "hospital-a".into(), patients: 3, start_unix: 1_790_000_000, interval_s: 60 };
        let obs = observations(&ward, 6, &mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        assert_eq!(obs.len(), 6);
        for (i, o) in obs.iter().enumerate() {
            assert_eq!(o["resourceType"], "Observation");
            let code = o["code"]["coding"][0]["code"].as_str().unwrap();
            let v = o["valueQuantity"]["value"].as_f64().unwrap();
            if i % 2 == 0 {
                assert_eq!(code, "8867-4");
                assert!((48.0..=132.0).contains(&v));
            } else {
                assert_eq!(code, "59408-5");
                assert!((88.0..=100.0).contains(&v));
            }
        }
    }
}
