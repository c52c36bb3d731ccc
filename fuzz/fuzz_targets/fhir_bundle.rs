//! FHIR R4 bodies as the API reads them: any JSON is read as `POST /fhir` reads a Bundle
//! (`bundle_patients`, then `bundle_observations` with the Bundle's own Patients), as
//! `POST /fhir/Patient` reads a Patient and as `POST /fhir/Observation` maps an
//! Observation to a supply-circuit record, with the timestamp and date parsers under them.
//! Never panics; every Observation a Bundle yields has exactly one record, the one it
//! maps to alone.
#![no_main]

use dualchain_node::api::fhir_routes::{
    bundle_observations, bundle_patients, demographics, expect_type, patient_refs, record_of,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok((entries, bundled)) = bundle_patients(&v) {
        if let Ok((observations, records)) = bundle_observations(entries, |p| bundled.get(p)) {
            assert_eq!(observations.len(), records.len());
            for (o, r) in observations.iter().zip(&records) {
                assert_eq!(record_of(o, |p| bundled.get(p)).as_ref(), Ok(r), "an Observation maps differently alone");
            }
        }
    }
    if expect_type(&v, "Patient").is_ok() {
        if let Ok(d) = demographics(&v) {
            if let Ok(refs) = patient_refs(&v, None) {
                assert!(!refs.is_empty());
                let _ = record_of(&v, |_| Some(&d));
            }
        }
    }
    if expect_type(&v, "Observation").is_ok() {
        if let Ok(d) = demographics(&serde_json::json!({"gender": "female", "birthDate": "1970-01-01"})) {
            let _ = record_of(&v, |_| Some(&d));
        }
    }
});
