//! What a FHIR client sends a node beyond resources: search query strings
//! (`GET /fhir/Observation`), SMART client assertions (`POST /smart/token`), client
//! registrations (`POST /smart/clients`) and Devices (`POST /fhir/Device`). The first byte
//! chooses which; the rest is the input. Never panics; a search page holds at most
//! `_count` matches and its total never exceeds the Observations searched; no assertion
//! the fuzzer makes gets a token (the registered key is drawn at start); a device
//! reference resolves only to a registered system id.
#![no_main]

use std::sync::OnceLock;

use dualchain_node::api::fhir_routes::{device_refs, resolve_device, Devices};
use dualchain_node::api::search::{Search, Searched};
use dualchain_node::api::smart::{ClientKey, Registration, Scopes, Smart};
use dualchain_node::fhir;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const AUD: &str = "https://127.0.0.1:8700/smart/token";

/// A node's SMART state with one registered client, in a directory of this process.
fn smart() -> &'static Smart {
    static SMART: OnceLock<Smart> = OnceLock::new();
    SMART.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dualchain-fuzz-smart-{}", std::process::id()));
        let s = Smart::new(&dir, 300, 1024);
        let key = ClientKey::generate("k1").expect("a P-384 key");
        let jwks = serde_json::from_value(json!({"keys": [key.jwk()]})).expect("a JWK Set");
        s.register(Registration { client_id: "engine".into(), scope: "system/*.*".into(), jwks, registered_ms: 0 })
            .expect("registering");
        s
    })
}

fn observations() -> Vec<Value> {
    (0..5)
        .map(|i| {
            json!({"resourceType": "Observation", "id": format!("o{i}"),
                "code": {"coding": [{"system": fhir::LOINC, "code": if i % 2 == 0 { "8867-4" } else { "8310-5" }}]},
                "subject": {"reference": format!("Patient/p{}", i % 2)},
                "effectiveDateTime": format!("2026-12-0{}T10:00:00Z", i + 1)})
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match mode % 4 {
        0 => {
            for (searched, strict) in [(Searched::Observation, false), (Searched::Observation, true), (Searched::AuditEvent, false)] {
                if let Ok(search) = Search::parse_for(searched, &text, strict) {
                    let all = observations();
                    let n = all.len() as u64;
                    let page = search.page(all, "https://n/fhir/Observation", "https://n/fhir");
                    assert!(page["total"].as_u64().is_some_and(|t| t <= n));
                    let matches = page["entry"].as_array().map_or(0, |e| e.iter().filter(|x| x["search"]["mode"] == "match").count());
                    assert!(matches as u64 <= n);
                }
            }
        }
        1 => {
            let now = 1_800_000_000_000;
            assert!(smart().issue(&text, "system/Observation.read", AUD, now).is_err(), "a forged assertion got a token");
        }
        2 => {
            if let Ok(r) = serde_json::from_slice::<Registration>(rest) {
                let _ = r.check();
            }
            if let Ok(s) = Scopes::parse_strict(&text) {
                assert!(!s.is_empty());
                assert_eq!(s.grant(&text).to_string(), s.to_string(), "a set grants all of itself");
            }
        }
        _ => {
            let Ok(v) = serde_json::from_slice::<Value>(rest) else { return };
            let devices: Devices = match device_refs(&v, Some("urn:uuid:d")) {
                Ok(refs) => refs.into_iter().collect(),
                Err(_) => Devices::new(),
            };
            let mut obs = json!({"resourceType": "Observation", "device": v["device"].clone()});
            if resolve_device(&mut obs, &devices, true).is_ok() {
                let id = fhir::device_of(&obs);
                assert!(devices.values().any(|d| d == id), "resolved to an unregistered device {id}");
            }
        }
    }
});
