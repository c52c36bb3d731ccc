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

/// Turns a vital-sign Observation into the supply circuit's record, with the patient's
/// demographics from `patient(reference, observation time)`: (5-year age band, sex code).
/// Errors name the field that does not map.
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
