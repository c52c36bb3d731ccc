//! FHIR R4 as the node reads it: RFC 3339 timestamps and dates, and vital-sign
//! `Observation`s mapped to the supply circuit's records (LOINC code, UCUM unit, value,
//! time, the patient's age band and sex, the device).

use serde_json::Value;

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

/// The code system of LOINC, and of UCUM units.
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// ISO/IEEE 11073-10101 nomenclature (MDC codes), as the FHIR Personal Health Device IG
/// names it.
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
/// The identifier system of an IEEE 11073-20601 device's system id (an EUI-64), per the
/// PHD IG.
pub const IEEE_SYSTEM_ID: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";

/// A vital sign this node maps to the supply circuit: its LOINC code, the MDC codes a
/// personal health device reports it by (ISO/IEEE 11073-10101, as the PHD IG maps them),
/// its canonical UCUM unit, and the UCUM units it converts from, each as
/// `canonical = value × scale + offset`.
#[derive(Debug)]
pub struct VitalSign {
    pub loinc: &'static str,
    pub mdc: &'static [&'static str],
    pub name: &'static str,
    pub unit: &'static str,
    pub from: &'static [(&'static str, f64, f64)],
}

/// 1 mm[Hg] = 133.322387415 Pa (UCUM); glucose 180.156 g/mol.
const KPA_IN_MMHG: f64 = 1000.0 / 133.322_387_415;
const GLUCOSE_MMOL_IN_MGDL: f64 = 18.0156;

/// The vital signs of bedside and personal health devices that this node maps. Anything
/// else is refused by name, never mapped to a made-up code.
pub const VITAL_SIGNS: &[VitalSign] = &[
    // MDC_ECG_HEART_RATE, MDC_PULS_OXIM_PULS_RATE, MDC_PULS_RATE_NON_INV.
    VitalSign {
        loinc: "8867-4",
        mdc: &["147842", "149530", "149546"],
        name: "heart rate",
        unit: "/min",
        from: &[("{beats}/min", 1.0, 0.0)],
    },
    // MDC_RESP_RATE.
    VitalSign {
        loinc: "9279-1",
        mdc: &["151562"],
        name: "respiratory rate",
        unit: "/min",
        from: &[("{breaths}/min", 1.0, 0.0)],
    },
    // MDC_PULS_OXIM_SAT_O2.
    VitalSign { loinc: "59408-5", mdc: &["150456"], name: "oxygen saturation by pulse oximetry", unit: "%", from: &[] },
    VitalSign { loinc: "2708-6", mdc: &[], name: "arterial oxygen saturation", unit: "%", from: &[] },
    // MDC_PRESS_BLD_NONINV_SYS, MDC_PRESS_BLD_NONINV_DIA.
    VitalSign {
        loinc: "8480-6",
        mdc: &["150021"],
        name: "systolic blood pressure",
        unit: "mm[Hg]",
        from: &[("kPa", KPA_IN_MMHG, 0.0)],
    },
    VitalSign {
        loinc: "8462-4",
        mdc: &["150022"],
        name: "diastolic blood pressure",
        unit: "mm[Hg]",
        from: &[("kPa", KPA_IN_MMHG, 0.0)],
    },
    // MDC_TEMP_BODY.
    VitalSign {
        loinc: "8310-5",
        mdc: &["150364"],
        name: "body temperature",
        unit: "Cel",
        from: &[("[degF]", 5.0 / 9.0, -32.0 * 5.0 / 9.0), ("K", 1.0, -273.15)],
    },
    // MDC_MASS_BODY_ACTUAL.
    VitalSign {
        loinc: "29463-7",
        mdc: &["188736"],
        name: "body weight",
        unit: "kg",
        from: &[("g", 0.001, 0.0), ("[lb_av]", 0.453_592_37, 0.0)],
    },
    // MDC_LEN_BODY_ACTUAL.
    VitalSign {
        loinc: "8302-2",
        mdc: &["188740"],
        name: "body height",
        unit: "cm",
        from: &[("m", 100.0, 0.0), ("[in_i]", 2.54, 0.0)],
    },
    // MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD.
    VitalSign {
        loinc: "2339-0",
        mdc: &["160184"],
        name: "glucose in blood (mass/volume)",
        unit: "mg/dL",
        from: &[("mmol/L", GLUCOSE_MMOL_IN_MGDL, 0.0)],
    },
];

/// The vital sign of a LOINC code, or why there is none.
pub fn vital_sign(loinc: &str) -> Result<&'static VitalSign, String> {
    VITAL_SIGNS.iter().find(|v| v.loinc == loinc).ok_or_else(|| {
        let known: Vec<String> = VITAL_SIGNS.iter().map(|v| format!("{} {}", v.loinc, v.name)).collect();
        format!("LOINC {loinc} is not a vital sign this node maps (it maps {})", known.join(", "))
    })
}

impl VitalSign {
    /// `value` in the UCUM unit `unit`, in this sign's canonical unit.
    pub fn to_canonical(&self, unit: &str, value: f64) -> Result<f64, String> {
        if unit == self.unit {
            return Ok(value);
        }
        match self.from.iter().find(|(u, _, _)| *u == unit) {
            Some((_, scale, offset)) => Ok(value * scale + offset),
            None => {
                let mut units = vec![self.unit];
                units.extend(self.from.iter().map(|(u, _, _)| *u));
                Err(format!("{unit} is not a UCUM unit of {} ({}: {})", self.name, self.loinc, units.join(", ")))
            }
        }
    }
}

/// The vital sign of an Observation's code: by its LOINC coding (or a coding without a
/// system), or by its MDC coding, as a personal health device reports it; with both, they
/// must name the same sign. Any other system alone is refused by name.
fn sign_of(obs: &Value) -> Result<&'static VitalSign, String> {
    let codings = obs["code"]["coding"].as_array().ok_or("Observation.code has no coding")?;
    let code_in = |system: Option<&str>| -> Result<Option<&str>, String> {
        let found = codings.iter().find(|c| c["system"].as_str() == system);
        match found {
            None => Ok(None),
            Some(c) => c["code"].as_str().map(Some).ok_or_else(|| format!("a coding of {system:?} has no code")),
        }
    };
    let loinc = match code_in(Some(LOINC))? {
        Some(c) => Some(c),
        None => code_in(None)?,
    };
    let by_loinc = loinc.map(vital_sign).transpose()?;
    let by_mdc = match code_in(Some(MDC))? {
        None => None,
        Some(code) => Some(VITAL_SIGNS.iter().find(|v| v.mdc.contains(&code)).ok_or_else(|| {
            let known: Vec<String> =
                VITAL_SIGNS.iter().flat_map(|v| v.mdc.iter().map(move |m| format!("{m} {}", v.name))).collect();
            format!("MDC {code} is not a vital sign this node maps (it maps {})", known.join(", "))
        })?),
    };
    match (by_loinc, by_mdc) {
        (Some(l), Some(m)) if !std::ptr::eq(l, m) => {
            Err(format!("Observation.code says LOINC {} ({}) and an MDC code of {}", l.loinc, l.name, m.name))
        }
        (Some(sign), _) | (None, Some(sign)) => Ok(sign),
        (None, None) => {
            let systems: Vec<&str> = codings.iter().filter_map(|c| c["system"].as_str()).collect();
            Err(format!("Observation.code has no LOINC ({LOINC}) or MDC ({MDC}) coding; it has {}", systems.join(", ")))
        }
    }
}

/// A Device's IEEE 11073-20601 system id (`identifier` of system [`IEEE_SYSTEM_ID`]), an
/// EUI-64 of 16 hex digits (separated by `-` or `:`, or not), in the PHD IG's canonical
/// form `XX-XX-XX-XX-XX-XX-XX-XX`.
pub fn system_id(device: &Value) -> Result<String, String> {
    let ids = device["identifier"].as_array().map(Vec::as_slice).unwrap_or_default();
    let value =
        ids.iter().find(|i| i["system"] == IEEE_SYSTEM_ID).and_then(|i| i["value"].as_str()).ok_or_else(|| {
            format!("a Device needs its IEEE 11073 system id: an identifier of system {IEEE_SYSTEM_ID}")
        })?;
    canonical_eui64(value).ok_or_else(|| format!("system id {value:?} is not an EUI-64 (16 hex digits)"))
}

/// An EUI-64 in the form `XX-XX-XX-XX-XX-XX-XX-XX`.
pub fn canonical_eui64(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    if digits.len() != 16 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = digits.to_ascii_uppercase();
    Some(upper.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>().join("-"))
}

/// The device an Observation was measured by, as the supply circuit's `device` field
/// encodes it: the IEEE system id of `device.identifier` when the node resolved the device
/// (registered devices), else the reference as given.
pub fn device_of(obs: &Value) -> &str {
    let d = &obs["device"];
    match d["identifier"]["system"].as_str() {
        Some(IEEE_SYSTEM_ID) => d["identifier"]["value"].as_str().unwrap_or(""),
        _ => d["reference"].as_str().unwrap_or(""),
    }
}

/// Turns a vital-sign Observation into the supply circuit's record, with the patient's
/// demographics from `patient(reference, observation time)`: (5-year age band, sex code).
/// The value is converted to the sign's canonical UCUM unit ([`VITAL_SIGNS`]). Errors
/// name the field, code or unit that does not map.
pub fn to_record_with(
    obs: &Value,
    patient: impl Fn(&str, u64) -> Option<(u8, u8)>,
) -> Result<dualchain_prover::supply::Record, String> {
    use dualchain_prover::supply::fhir as map;
    let sign = sign_of(obs)?;
    let code = map::loinc_code(sign.loinc).ok_or("a vital sign's LOINC code does not parse")?;
    let q = &obs["valueQuantity"];
    if let Some(system) = q.get("system") {
        if system != UCUM {
            return Err(format!("valueQuantity.system {system} is not UCUM ({UCUM})"));
        }
    }
    let given = q["code"].as_str().ok_or("valueQuantity.code (a UCUM unit) is missing")?;
    let raw = q["value"].as_f64().ok_or("valueQuantity.value is missing")?;
    let unit = map::unit_code(sign.unit);
    let value =
        map::fixed_point(sign.to_canonical(given, raw)?).ok_or("valueQuantity.value is negative or too large")?;
    let t = obs["effectiveDateTime"].as_str().and_then(parse_rfc3339).ok_or("effectiveDateTime is not RFC 3339 UTC")?;
    let subject = obs["subject"]["reference"].as_str().ok_or("subject.reference is missing")?;
    let (age_band, sex) =
        patient(subject, t).ok_or_else(|| format!("unknown patient {subject} (post the Patient first)"))?;
    let device = device_of(obs);
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

    fn obs(code: Value, quantity: Value) -> Value {
        serde_json::json!({"resourceType": "Observation", "code": code, "valueQuantity": quantity,
            "effectiveDateTime": "2026-12-04T10:00:00Z", "subject": {"reference": "Patient/p"}})
    }

    fn record(o: &Value) -> Result<dualchain_prover::supply::Record, String> {
        to_record_with(o, |_, _| Some((8, 1)))
    }

    #[test]
    fn units_are_converted_to_the_canonical_one() {
        let loinc = |c: &str| serde_json::json!({"coding": [{"system": LOINC, "code": c}]});
        let q = |v: f64, u: &str| serde_json::json!({"value": v, "system": UCUM, "code": u});
        let bp_mmhg = record(&obs(loinc("8480-6"), q(120.0, "mm[Hg]"))).unwrap();
        let bp_kpa = record(&obs(loinc("8480-6"), q(16.0, "kPa"))).unwrap();
        assert_eq!(bp_mmhg.unit, bp_kpa.unit);
        assert_eq!(bp_kpa.value, 120_010, "16 kPa is 120.010 mm[Hg]");
        assert_eq!(bp_mmhg.value, 120_000);
        let f = record(&obs(loinc("8310-5"), q(98.6, "[degF]"))).unwrap();
        assert_eq!(f.value, 37_000);
        let glucose = record(&obs(loinc("2339-0"), q(5.5, "mmol/L"))).unwrap();
        assert_eq!(glucose.value, 99_086);
        // No system on the coding is taken as LOINC (a minimal gateway).
        let bare = serde_json::json!({"coding": [{"code": "8867-4"}]});
        assert_eq!(record(&obs(bare, q(60.0, "{beats}/min"))).unwrap().value, 60_000);
    }

    #[test]
    fn unknown_codes_units_and_systems_are_refused_by_name() {
        let loinc = |c: &str| serde_json::json!({"coding": [{"system": LOINC, "code": c}]});
        let q = |v: f64, u: &str| serde_json::json!({"value": v, "system": UCUM, "code": u});
        let e = record(&obs(loinc("2160-0"), q(1.0, "mg/dL"))).unwrap_err();
        assert!(e.contains("LOINC 2160-0 is not a vital sign") && e.contains("8867-4 heart rate"), "{e}");
        let e = record(&obs(loinc("8867-4"), q(60.0, "kPa"))).unwrap_err();
        assert!(e.contains("kPa is not a UCUM unit of heart rate") && e.contains("/min"), "{e}");
        let snomed = serde_json::json!({"coding": [{"system": "http://snomed.info/sct", "code": "364075005"}]});
        let e = record(&obs(snomed, q(60.0, "/min"))).unwrap_err();
        assert!(e.contains("no LOINC") && e.contains("snomed"), "{e}");
        let other_units = serde_json::json!({"value": 60.0, "system": "http://example.org/units", "code": "/min"});
        let e = record(&obs(loinc("8867-4"), other_units)).unwrap_err();
        assert!(e.contains("is not UCUM"), "{e}");
    }

    #[test]
    fn mdc_codes_of_personal_health_devices_map_beside_loinc() {
        let q = |v: f64, u: &str| serde_json::json!({"value": v, "system": UCUM, "code": u});
        let mdc = |c: &str| serde_json::json!({"coding": [{"system": MDC, "code": c}]});
        let both = |l: &str, m: &str| serde_json::json!({"coding": [{"system": LOINC, "code": l}, {"system": MDC, "code": m}]});
        // A pulse oximeter's SpO2 and pulse rate, by MDC alone and beside LOINC.
        let spo2 = record(&obs(mdc("150456"), q(97.0, "%"))).unwrap();
        assert_eq!(spo2.code, record(&obs(both("59408-5", "150456"), q(97.0, "%"))).unwrap().code);
        let pulse = record(&obs(mdc("149530"), q(61.0, "/min"))).unwrap();
        assert_eq!(pulse.code, record(&obs(both("8867-4", "147842"), q(61.0, "/min"))).unwrap().code);
        // Disagreeing codes, an unmapped MDC code: refused by name.
        let e = record(&obs(both("8867-4", "150456"), q(61.0, "/min"))).unwrap_err();
        assert!(e.contains("LOINC 8867-4") && e.contains("oxygen saturation"), "{e}");
        let e = record(&obs(mdc("150020"), q(90.0, "mm[Hg]"))).unwrap_err();
        assert!(e.contains("MDC 150020 is not a vital sign") && e.contains("150021 systolic"), "{e}");
        // Every MDC code names one sign.
        let all: Vec<&str> = VITAL_SIGNS.iter().flat_map(|v| v.mdc.iter().copied()).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len());
    }

    #[test]
    fn devices_are_named_by_their_ieee_system_id() {
        let dev = |v: &str| serde_json::json!({"identifier": [{"system": IEEE_SYSTEM_ID, "value": v}]});
        assert_eq!(system_id(&dev("0123456789abcdef")).unwrap(), "01-23-45-67-89-AB-CD-EF");
        assert_eq!(system_id(&dev("01:23:45:67:89:AB:CD:EF")).unwrap(), "01-23-45-67-89-AB-CD-EF");
        for bad in ["0123", "0123456789abcdeg", "01-23-45-67-89-AB-CD-EF-00"] {
            assert!(system_id(&dev(bad)).unwrap_err().contains("not an EUI-64"), "{bad}");
        }
        assert!(system_id(&serde_json::json!({"identifier": [{"system": "urn:x", "value": "1"}]})).is_err());
        // The supply record's device: the system id once resolved, else the reference.
        let q = serde_json::json!({"value": 60.0, "system": UCUM, "code": "/min"});
        let mut o = obs(serde_json::json!({"coding": [{"system": LOINC, "code": "8867-4"}]}), q);
        o["device"] = serde_json::json!({"reference": "Device/m1"});
        let by_reference = record(&o).unwrap().device;
        o["device"]["identifier"] = serde_json::json!({"system": IEEE_SYSTEM_ID, "value": "01-23-45-67-89-AB-CD-EF"});
        let by_id = record(&o).unwrap().device;
        assert_ne!(by_reference, by_id);
        assert_eq!(by_id, dualchain_prover::supply::fhir::device_code("01-23-45-67-89-AB-CD-EF"));
    }

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
}
