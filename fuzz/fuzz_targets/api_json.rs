//! The API's request bodies and frames as its handlers read them: the first byte picks
//! `POST /demands` (a `DemandSpec`, its dataset id and its mapping to a circuit
//! requirement), `POST /access` (an `AccessSpec` and its demand id), a revocation
//! (`RevokeSpec`), a record list between nodes (`wire::decode_list`), or the FHIR
//! timestamp and date parsers; the rest is the body. Never panics; a list re-encodes to
//! the same bytes, a requirement that maps is valid, and a parsed timestamp prints back
//! to the same text.
#![no_main]

use dualchain_node::api::auth::parse_id;
use dualchain_node::api::wire::{decode_list, encode_list, AccessSpec, DemandSpec, RevokeSpec};
use dualchain_node::fhir::{parse_date, parse_rfc3339, rfc3339};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(spec) = serde_json::from_slice::<DemandSpec>(body) {
                let _ = parse_id(&spec.dataset, "dataset");
                if let Ok(r) = spec.requirement() {
                    assert!(r.validate().is_ok(), "a mapped requirement is invalid");
                }
            }
        }
        1 => {
            if let Ok(spec) = serde_json::from_slice::<AccessSpec>(body) {
                let _ = (parse_id(&spec.demand, "demand"), spec.duration_s);
            }
        }
        2 => {
            let _ = serde_json::from_slice::<RevokeSpec>(body).map(|s| s.reason);
        }
        3 => {
            if let Ok(items) = decode_list(body) {
                assert_eq!(encode_list(&items), body, "record list re-encodes differently");
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else { return };
            if let Some(t) = parse_rfc3339(text) {
                assert_eq!(rfc3339(t), text, "timestamp prints back differently");
            }
            let _ = parse_date(text);
        }
    }
});
