//! Wire types of the API: request bodies (demands, access requests, revocations) and the
//! list framing of binary records between nodes (the workspace's one bounded framing,
//! [`dualchain_crypto::encoding::decode_list`], under the bounds below).

use dualchain_prover::supply::{self, Requirement};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::member::client::Final;

pub use dualchain_crypto::encoding::encode_list;
use dualchain_crypto::encoding::{self, ListBounds};

/// Most records one list between nodes carries: a whole dataset of the largest supply shape.
pub const RECORDS_PER_LIST_MAX: usize = 4096;
/// Longest record between nodes: a signcrypted or re-encrypted FHIR Observation is a few
/// KiB; this leaves room for large resources without letting one item claim the body.
pub const RECORD_LEN_MAX: usize = 1 << 20;
/// The bounds of a record list ([`encode_list`]'s frame); the API's body limit caps the whole.
pub const RECORD_LIST: ListBounds =
    ListBounds { items_max: RECORDS_PER_LIST_MAX, item_len_max: RECORD_LEN_MAX, len_max: 256 << 20 };

/// Decodes a list of records framed by [`encode_list`] within [`RECORD_LIST`].
pub fn decode_list(b: &[u8]) -> Result<Vec<&[u8]>, String> {
    encoding::decode_list(b, "record list", RECORD_LIST).map_err(|e| e.to_string())
}

/// A data requirement in FHIR terms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandSpec {
    pub dataset: String,
    /// LOINC code, e.g. `8867-4` (heart rate).
    pub code: String,
    /// UCUM unit, e.g. `/min`.
    pub unit: String,
    pub value_min: Option<f64>,
    pub value_max: Option<f64>,
    /// Observation time window, UNIX seconds.
    pub since: u64,
    pub until: u64,
    /// How many matching observations the dataset must hold.
    pub threshold: u16,
    /// 5-year age bands (0 = 0–4 years … 20 = 100+), inclusive.
    #[serde(default)]
    pub age_band_min: u8,
    #[serde(default = "max_band")]
    pub age_band_max: u8,
    /// `any`, `male`, `female`, `other`.
    #[serde(default)]
    pub sex: Option<String>,
    /// The purpose of use, an HL7 v3 ActReason code: `HRESCH` (research, the default),
    /// `TREAT`, `PUBHLTH` or `HOPERAT`. Only records whose patients consent to it count.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Demand without naming the member: a one-time key signs it and an anonymous policy
    /// proof stands for the member's signature (a consortium with the anonymous path).
    #[serde(default)]
    pub anonymous: bool,
}

fn max_band() -> u8 {
    20
}

impl DemandSpec {
    /// The demand's purpose of use.
    pub fn purpose(&self) -> Result<dualchain_ledger::consent::Purpose, ApiError> {
        use dualchain_ledger::consent::Purpose;
        match self.purpose.as_deref() {
            None => Ok(Purpose::default()),
            Some(code) => Purpose::from_code(code).ok_or_else(|| {
                let known: Vec<&str> = Purpose::ALL.iter().map(|p| p.code()).collect();
                ApiError::unprocessable("bad-purpose", format!("purpose {code:?} is not one of {}", known.join(", ")))
            }),
        }
    }

    pub fn requirement(&self) -> Result<Requirement, ApiError> {
        let bad = |m: String| ApiError::unprocessable("bad-requirement", m);
        let fixed = |v: Option<f64>, what: &str| {
            v.map(|x| supply::fhir::fixed_point(x).ok_or_else(|| bad(format!("{what} {x} is out of range"))))
                .transpose()
        };
        let sex = match self.sex.as_deref().unwrap_or("any") {
            "any" => supply::sex::UNKNOWN_OR_ANY,
            "male" => supply::sex::MALE,
            "female" => supply::sex::FEMALE,
            "other" => supply::sex::OTHER,
            s => return Err(bad(format!("sex {s:?} is not any, male, female or other"))),
        };
        // The vital sign and its canonical unit, as uploads are recorded; bounds given in
        // another unit of the sign are converted (e.g. kPa to mm[Hg]).
        let sign = crate::fhir::vital_sign(&self.code).map_err(bad)?;
        sign.to_canonical(&self.unit, 0.0).map_err(bad)?;
        let canonical = |v: Option<f64>| v.map(|x| sign.to_canonical(&self.unit, x)).transpose().map_err(bad);
        let r = Requirement {
            code: supply::fhir::loinc_code(sign.loinc)
                .ok_or_else(|| bad(format!("{:?} is not a LOINC code", self.code)))?,
            unit: supply::fhir::unit_code(sign.unit),
            age_lo: self.age_band_min,
            age_hi: self.age_band_max,
            sex,
            value_min: fixed(canonical(self.value_min)?, "value_min")?,
            value_max: fixed(canonical(self.value_max)?, "value_max")?,
            time_from: supply::fhir::minutes(self.since).ok_or_else(|| bad("since out of range".into()))?,
            time_to: supply::fhir::minutes(self.until).ok_or_else(|| bad("until out of range".into()))?,
            threshold: self.threshold,
        };
        r.validate().map_err(|e| bad(e.to_string()))?;
        Ok(r)
    }
}

/// A final transaction: its hash, batch and outcome (a refusal as its code, the code's
/// fields and, under `text`, the sentence it stands for).
pub fn final_json(f: &Final) -> Value {
    let mut v = json!({"tx": hex::encode(f.hash), "seq": f.seq, "outcome": f.outcome});
    if let Some(reason) = f.outcome.reason() {
        v["outcome"]["text"] = json!(reason.to_string());
    }
    v
}

/// An approval of opening a pseudonym's identity: `POST /audit-cases`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCaseSpec {
    pub pseudonym: String,
    /// Why: the case's reason, at most 256 characters, public on chain.
    pub case: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    pub demand: String,
    pub duration_s: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeSpec {
    #[serde(default)]
    pub reason: String,
}

/// `POST /members/{id}/admit`: the SHA-256 of the certificate approved (hex).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmitSpec {
    pub certificate_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn lists_round_trip_and_reject_malformed_bytes() {
        let items = vec![b"one".to_vec(), vec![], vec![7u8; 300]];
        let enc = encode_list(&items);
        let dec: Vec<Vec<u8>> = decode_list(&enc).unwrap().into_iter().map(<[u8]>::to_vec).collect();
        assert_eq!(dec, items);
        assert!(decode_list(&enc[..enc.len() - 1]).is_err(), "truncated");
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(decode_list(&trailing).is_err(), "trailing");
        assert!(decode_list(&u32::MAX.to_be_bytes()).is_err(), "a count that cannot fit");
        assert!(decode_list(&[0, 0]).is_err(), "no count");
        let too_many = encode_list(vec![[1u8]; RECORDS_PER_LIST_MAX + 1]);
        assert!(decode_list(&too_many).is_err(), "more records than a dataset holds");
        let too_long = encode_list([vec![0u8; RECORD_LEN_MAX + 1]]);
        assert!(decode_list(&too_long).is_err(), "a record longer than any record");
    }

    #[test]
    fn a_refusal_is_its_code_with_the_sentence_beside_it() {
        use dualchain_ledger::reason::Reason;
        use dualchain_ledger::tx::Outcome;
        let f = Final { hash: [1; 32], seq: 7, outcome: Outcome::Rejected { reason: Reason::UnknownDataset } };
        let v = final_json(&f);
        assert_eq!(v["outcome"]["status"], "rejected");
        assert_eq!(v["outcome"]["reason"]["code"], "unknown_dataset");
        assert_eq!(v["outcome"]["text"], "unknown dataset");
        let accepted = final_json(&Final { outcome: Outcome::Accepted, ..f });
        assert_eq!(accepted["outcome"], json!({"status": "accepted"}));
    }

    fn spec(code: &str, min: Option<f64>, sex: Option<&str>) -> DemandSpec {
        DemandSpec {
            dataset: "00".repeat(32),
            code: code.into(),
            unit: "/min".into(),
            value_min: min,
            value_max: Some(200.0),
            since: 1_790_000_000,
            until: 1_790_003_600,
            threshold: 3,
            age_band_min: 0,
            age_band_max: 20,
            sex: sex.map(str::to_string),
            purpose: None,
            anonymous: false,
        }
    }

    #[test]
    fn a_demand_names_its_purpose_or_asks_for_research() {
        use dualchain_ledger::consent::Purpose;
        assert_eq!(spec("8867-4", None, None).purpose().unwrap(), Purpose::Research);
        let treat = DemandSpec { purpose: Some("TREAT".into()), ..spec("8867-4", None, None) };
        assert_eq!(treat.purpose().unwrap(), Purpose::Treatment);
        let bad = DemandSpec { purpose: Some("ETREAT".into()), ..spec("8867-4", None, None) };
        assert_eq!(bad.purpose().unwrap_err().reason, "bad-purpose");
    }

    #[test]
    fn demand_specs_map_to_requirements_or_a_reason() {
        let r = spec("8867-4", Some(40.0), Some("female")).requirement().unwrap();
        assert_eq!((r.code, r.unit, r.value_min, r.sex), (88674, 1, Some(40_000), supply::sex::FEMALE));
        assert_eq!(r.time_from, 1_790_000_000 / 60);
        for bad in [spec("heart", None, None), spec("8867-4", Some(-1.0), None), spec("8867-4", None, Some("x"))] {
            let e = bad.requirement().unwrap_err();
            assert_eq!((e.status, e.reason), (StatusCode::UNPROCESSABLE_ENTITY, "bad-requirement"));
        }
        let unknown: Result<DemandSpec, _> = serde_json::from_str(
            r#"{"dataset":"00","code":"1-1","unit":"/min","since":0,"until":1,"threshold":1,"extra":1}"#,
        );
        assert!(unknown.is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_demand_in_another_unit_of_the_sign_asks_the_same_as_in_its_canonical_one() {
        let in_unit = |unit: &str, min: f64, max: f64| DemandSpec {
            code: "8480-6".into(),
            unit: unit.into(),
            value_min: Some(min),
            value_max: Some(max),
            ..spec("8480-6", None, None)
        };
        let mmhg = in_unit("mm[Hg]", 90.0, 140.0).requirement().unwrap();
        let kpa = in_unit("kPa", 12.0, 18.6).requirement().unwrap();
        assert_eq!((kpa.code, kpa.unit), (mmhg.code, mmhg.unit));
        assert_eq!((kpa.value_min, kpa.value_max), (Some(90_007), Some(139_511)));
        // A unit that is not the sign's is refused even without bounds; so is an unmapped code.
        let no_bounds = DemandSpec { value_min: None, value_max: None, ..spec("8867-4", None, None) };
        let wrong_unit = DemandSpec { unit: "kPa".into(), ..no_bounds };
        assert!(wrong_unit.requirement().unwrap_err().message.contains("kPa is not a UCUM unit of heart rate"));
        let e = spec("2160-0", None, None).requirement().unwrap_err();
        assert!(e.message.contains("LOINC 2160-0 is not a vital sign"), "{}", e.message);
    }
}
