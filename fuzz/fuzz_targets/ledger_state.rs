//! Contract state records as the ledger reads them from its store (`state::decode`, JSON):
//! the first byte picks the record type, the rest is the stored value. Never panics; a
//! record that decodes survives a JSON round trip unchanged.
#![no_main]

use dualchain_ledger::state::{
    decode, AccessRecord, AuditCaseRecord, BreakGlassRecord, ComplaintRecord, DatasetRecord, DealingRecord, DemandRecord, DenialRecord,
    EscrowKeyRecord, GrantRecord, MemberRecord, PseudonymRecord, RegistryRecord, RootRecord,
};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(value: &[u8]) {
    let Ok(r) = decode::<T>(b"fuzz", value) else { return };
    let json = serde_json::to_vec(&r).expect("a decoded record serialises");
    let again: T = decode(b"fuzz", &json).expect("a record's JSON decodes");
    assert_eq!(again, r, "record JSON does not round-trip");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, value)) = data.split_first() else { return };
    match which % 14 {
        0 => round_trip::<MemberRecord>(value),
        1 => round_trip::<RegistryRecord>(value),
        2 => round_trip::<RootRecord>(value),
        3 => round_trip::<DatasetRecord>(value),
        4 => round_trip::<DemandRecord>(value),
        5 => round_trip::<GrantRecord>(value),
        6 => round_trip::<DenialRecord>(value),
        7 => round_trip::<AccessRecord>(value),
        8 => round_trip::<BreakGlassRecord>(value),
        9 => round_trip::<PseudonymRecord>(value),
        10 => round_trip::<DealingRecord>(value),
        11 => round_trip::<ComplaintRecord>(value),
        12 => round_trip::<EscrowKeyRecord>(value),
        _ => round_trip::<AuditCaseRecord>(value),
    }
});
