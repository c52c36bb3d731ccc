//! FHIR search over Observations (FHIR R4 `search.html`): `GET /fhir/Observation`.
//!
//! - **What is searched.** Without `_grant`, a hospital's node searches its staged
//!   Observations, those posted and not yet sealed into a dataset (a sealed dataset's
//!   records live, signcrypted, at a CPC only). With `_grant=<grant id>`, the grantee's node
//!   searches the grant's records: fetched from the CPC, decrypted at the grantee's node,
//!   with the grant's patient pseudonyms, on every page (nothing decrypted is kept between
//!   requests).
//! - **Parameters.** `code` (token: `system|code`, `|code` or `code`), `subject`
//!   (`Patient/<id>`, or a bare id), `date` (on `effectiveDateTime`; prefixes `eq`, `ne`,
//!   `gt`, `lt`, `ge`, `le`; precision from a year to a second, offsets or `Z`), `_count`
//!   (page size, default 50, at most 500; `0` gives the total only) and `_offset` (the
//!   paging cursor). Commas mean "any of"; a repeated parameter means "all of". Other
//!   parameters are ignored, as FHIR's default lenient handling says, and named in an
//!   `OperationOutcome` entry of the result; with `Prefer: handling=strict` they are
//!   refused.
//! - **Paging.** The result is a `searchset` Bundle with the total and `self`, `first`,
//!   `previous`, `next` and `last` links that carry the parameters used. The order is the
//!   order posted (staged) or the records' order in the dataset (a grant), which neither
//!   changes between pages of a grant; a seal empties the staging area between pages.

use axum::extract::State;
use axum::http::HeaderMap;
use dualchain_crypto::cert::Role;
use serde_json::{json, Value};

use super::auth::Fhir;
use super::auth::{hosted_as, parse_id, wait_param};
use super::error::{ok_json, operation_outcome, ApiError, ApiResult};
use super::smart::Interaction;
use super::ApiState;
use crate::fhir::parse_rfc3339;

const COUNT_DEFAULT: usize = 50;
const COUNT_MAX: usize = 500;

/// One `code` token.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    /// `None`: any system; `Some("")`: no system.
    system: Option<String>,
    code: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// One `date` criterion: a prefix and the range `[lo, hi)` (UNIX seconds) its value spans.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DateCriterion {
    prefix: Prefix,
    lo: i64,
    hi: i64,
}

impl DateCriterion {
    /// Whether a point in time `t` matches (FHIR R4 search, §3.1.1.4.5, the resource's
    /// value being the range `[t, t+1)`).
    fn matches(&self, t: i64) -> bool {
        match self.prefix {
            Prefix::Eq => self.lo <= t && t < self.hi,
            Prefix::Ne => !(self.lo <= t && t < self.hi),
            Prefix::Gt => t >= self.hi,
            Prefix::Lt => t < self.lo,
            Prefix::Ge => t >= self.lo,
            Prefix::Le => t < self.hi,
        }
    }
}

/// The resource type a search is over, which chooses its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Searched {
    /// `code`, `subject`, `date` (on `effectiveDateTime`), `_grant`.
    #[default]
    Observation,
    /// `entity`, `agent`, `date` (on `recorded`): the access log (the `audit` module).
    AuditEvent,
}

impl Searched {
    fn name(self) -> &'static str {
        match self {
            Searched::Observation => "Observation",
            Searched::AuditEvent => "AuditEvent",
        }
    }

    fn takes(self, param: &str) -> bool {
        match self {
            Searched::Observation => matches!(param, "code" | "subject" | "date" | "_grant"),
            Searched::AuditEvent => matches!(param, "entity" | "agent" | "date"),
        }
    }
}

/// A parsed search.
#[derive(Debug, Default)]
pub struct Search {
    searched: Searched,
    /// Each inner list: any of; the outer: all of.
    codes: Vec<Vec<Token>>,
    subjects: Vec<Vec<String>>,
    entities: Vec<Vec<String>>,
    agents: Vec<Vec<String>>,
    dates: Vec<DateCriterion>,
    count: usize,
    offset: usize,
    grant: Option<dualchain_ledger::tx::Hash>,
    /// The parameters used, as given (for the links).
    used: Vec<(String, String)>,
    /// The parameters ignored.
    ignored: Vec<String>,
}

impl Search {
    /// Parses a query string of an Observation search; unknown parameters are ignored
    /// unless `strict`.
    pub fn parse(query: &str, strict: bool) -> Result<Search, ApiError> {
        Self::parse_for(Searched::Observation, query, strict)
    }

    /// Parses a query string of a search over `searched`.
    pub fn parse_for(searched: Searched, query: &str, strict: bool) -> Result<Search, ApiError> {
        let bad = |m: String| ApiError::invalid("bad-search", m);
        let mut s = Search { searched, count: COUNT_DEFAULT, ..Default::default() };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
            // Parameters of another resource type are unknown here (`_` ones are checked below).
            let name = if k.starts_with('_') || searched.takes(&k) { k.as_str() } else { "" };
            match name {
                // Dataset ids compare in lower case; references (`Patient/…`) as given.
                "entity" => s.entities.push(
                    list(&v)
                        .into_iter()
                        .map(|e| if e.contains(['/', ':']) { e } else { e.to_ascii_lowercase() })
                        .collect(),
                ),
                "agent" => s.agents.push(list(&v)),
                "code" => s.codes.push(v.split(',').map(token).collect::<Result<_, _>>().map_err(bad)?),
                "subject" => s.subjects.push(
                    v.split(',').map(|r| if r.contains('/') { r.to_owned() } else { format!("Patient/{r}") }).collect(),
                ),
                "date" => s.dates.push(date_criterion(&v).map_err(bad)?),
                "_count" => {
                    s.count = v.parse().map_err(|_| bad(format!("_count={v} is not a whole number")))?;
                    s.count = s.count.min(COUNT_MAX);
                    continue; // put back by the links
                }
                "_offset" => {
                    s.offset = v.parse().map_err(|_| bad(format!("_offset={v} is not a whole number")))?;
                    continue;
                }
                "_grant" if searched.takes("_grant") => s.grant = Some(parse_id(&v, "_grant")?),
                "_format" if matches!(v.as_str(), "json" | "application/fhir+json" | "application/json") => continue,
                _ if strict => {
                    let takes = match searched {
                        Searched::Observation => "code, date, subject, _grant, _count",
                        Searched::AuditEvent => "entity, agent, date, _count",
                    };
                    return Err(ApiError::invalid(
                        "unsupported-search",
                        format!("{k}: not a search parameter of {} at this node ({takes})", searched.name()),
                    ));
                }
                _ => {
                    s.ignored.push(k);
                    continue;
                }
            }
            s.used.push((k, v));
        }
        Ok(s)
    }

    /// The `entity` values asked for (any of them): dataset ids in lower case, references as given.
    pub fn entities(&self) -> Vec<String> {
        self.entities.iter().flatten().cloned().collect()
    }

    /// Whether a resource matches every criterion.
    fn matches(&self, r: &Value) -> bool {
        match self.searched {
            Searched::Observation => self.matches_observation(r),
            Searched::AuditEvent => {
                let ids = |list: &str, field: &str| -> Vec<String> {
                    r[list]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|x| [&x[field]["identifier"]["value"], &x[field]["reference"]])
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                };
                let (entities, agents) = (ids("entity", "what"), ids("agent", "who"));
                let t = r["recorded"].as_str().and_then(parse_rfc3339).map(|t| t as i64);
                self.entities.iter().all(|any| any.iter().any(|e| entities.contains(e)))
                    && self.agents.iter().all(|any| any.iter().any(|a| agents.contains(a)))
                    && self.dates.iter().all(|d| t.is_some_and(|t| d.matches(t)))
            }
        }
    }

    /// Whether an Observation matches every criterion.
    fn matches_observation(&self, obs: &Value) -> bool {
        let codings = obs["code"]["coding"].as_array().map(Vec::as_slice).unwrap_or_default();
        let code_ok = self.codes.iter().all(|any| {
            any.iter().any(|t| {
                codings.iter().any(|c| {
                    c["code"].as_str() == Some(t.code.as_str())
                        && match &t.system {
                            None => true,
                            Some(sys) if sys.is_empty() => c.get("system").is_none(),
                            Some(sys) => c["system"].as_str() == Some(sys.as_str()),
                        }
                })
            })
        });
        let subject = obs["subject"]["reference"].as_str();
        let subject_ok = self.subjects.iter().all(|any| any.iter().any(|r| Some(r.as_str()) == subject));
        let t = obs["effectiveDateTime"].as_str().and_then(parse_rfc3339).map(|t| t as i64);
        let date_ok = self.dates.iter().all(|d| t.is_some_and(|t| d.matches(t)));
        code_ok && subject_ok && date_ok
    }

    /// The `searchset` Bundle of one page of `all`'s matches; `base` is the search's URL
    /// without a query.
    pub fn page(&self, all: Vec<Value>, base: &str, fhir_base: &str) -> Value {
        let matching: Vec<Value> = all.into_iter().filter(|o| self.matches(o)).collect();
        let total = matching.len();
        let link = |relation: &str, offset: usize| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.used {
                q.append_pair(k, v);
            }
            q.append_pair("_count", &self.count.to_string());
            q.append_pair("_offset", &offset.to_string());
            json!({"relation": relation, "url": format!("{base}?{}", q.finish())})
        };
        let mut links = vec![link("self", self.offset)];
        // No paging links for `_count=0` (the total only).
        if let Some(pages) = total.saturating_sub(1).checked_div(self.count) {
            let last = pages * self.count;
            links.push(link("first", 0));
            if self.offset > 0 {
                links.push(link("previous", self.offset.saturating_sub(self.count)));
            }
            if self.offset + self.count < total {
                links.push(link("next", self.offset + self.count));
            }
            links.push(link("last", last));
        }
        let mut entries: Vec<Value> = matching
            .into_iter()
            .skip(self.offset)
            .take(self.count)
            .map(|o| {
                let mut e = json!({"resource": o, "search": {"mode": "match"}});
                if let Some(id) = e["resource"]["id"].as_str() {
                    e["fullUrl"] = json!(format!("{fhir_base}/{}/{id}", self.searched.name()));
                }
                e
            })
            .collect();
        if !self.ignored.is_empty() {
            let said = format!("ignored (not search parameters of this node): {}", self.ignored.join(", "));
            entries.push(json!({
                "resource": operation_outcome("warning", "not-supported", "ignored-parameters", &said),
                "search": {"mode": "outcome"},
            }));
        }
        json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries})
    }
}

fn token(s: &str) -> Result<Token, String> {
    let (system, code) = match s.split_once('|') {
        Some((sys, code)) => (Some(sys.to_owned()), code),
        None => (None, s),
    };
    if code.is_empty() {
        return Err(format!("code={s}: no code"));
    }
    Ok(Token { system, code: code.to_owned() })
}

/// A `date` parameter: `[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]](Z|±hh:mm)]]]`.
fn date_criterion(v: &str) -> Result<DateCriterion, String> {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
    ];
    let (prefix, value) = match prefixes.iter().find(|(p, _)| v.starts_with(p)) {
        Some((p, x)) => (*x, &v[p.len()..]),
        None if v.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return Err(format!("date={v}: prefixes are eq, ne, gt, lt, ge and le"))
        }
        None => (Prefix::Eq, v),
    };
    let (lo, hi) = date_range(value).ok_or_else(|| format!("date={v}: not a FHIR date or dateTime"))?;
    Ok(DateCriterion { prefix, lo, hi })
}

/// The range `[lo, hi)` of UNIX seconds a FHIR date or dateTime spans at its precision.
fn date_range(v: &str) -> Option<(i64, i64)> {
    let num = |s: &str| -> Option<i64> { s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten() };
    let day = |y: i64, m: i64, d: i64| crate::fhir::parse_date(&format!("{y:04}-{m:02}-{d:02}"));
    match v.len() {
        4 => {
            let y = num(v)?;
            Some((day(y, 1, 1)?, day(y + 1, 1, 1)?))
        }
        7 if v.as_bytes()[4] == b'-' => {
            let (y, m) = (num(&v[..4])?, num(&v[5..])?);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Some((day(y, m, 1)?, day(ny, nm, 1)?))
        }
        10 => {
            let d = crate::fhir::parse_date(v)?;
            Some((d, d + 86_400))
        }
        _ => {
            // A dateTime: date, 'T', time to the minute at least, zone.
            let (date, rest) = v.split_once('T')?;
            let d = crate::fhir::parse_date(date)?;
            let (time, offset_s) = if let Some(t) = rest.strip_suffix('Z') {
                (t, 0)
            } else {
                let at = rest.rfind(['+', '-'])?;
                let (t, z) = rest.split_at(at);
                let (hh, mm) = z[1..].split_once(':')?;
                let off = num(hh)? * 3600 + num(mm)? * 60;
                (t, if z.starts_with('-') { -off } else { off })
            };
            let time = time.split('.').next()?;
            let parts: Vec<&str> = time.split(':').collect();
            let (h, m) = (num(parts.first()?)?, num(parts.get(1)?)?);
            if h > 23 || m > 59 || parts.len() > 3 {
                return None;
            }
            let (s, span) = match parts.get(2) {
                Some(s) => (num(s)?, 1),
                None => (0, 60),
            };
            if s > 59 {
                return None;
            }
            let lo = d + h * 3600 + m * 60 + s - offset_s;
            Some((lo, lo + span))
        }
    }
}

/// Whether the request asks for strict handling (`Prefer: handling=strict`).
pub fn strict(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split([';', ',']).any(|x| x.trim() == "handling=strict"))
}

/// `GET /fhir/Observation`.
pub async fn search_observations(State(api): State<ApiState>, headers: HeaderMap, Fhir(s): Fhir) -> ApiResult {
    let node = &api.node;
    s.allow("Observation", Interaction::Search)?;
    let search = Search::parse(s.query.as_deref().unwrap_or_default(), strict(&headers))?;
    let all = match search.grant {
        Some(grant) => {
            let h = hosted_as(node, &s, &[Role::ResearchInstitute, Role::Hospital])?;
            super::flow_routes::grant_records(node, h, grant, wait_param(node, &s)?).await?
        }
        None => {
            hosted_as(node, &s, &[Role::Hospital])?;
            super::fhir_routes::staged(&api).await?
        }
    };
    let fhir_base = format!("{}/fhir", super::api_base(node).unwrap_or_default());
    ok_json(&search.page(all, &format!("{fhir_base}/Observation"), &fhir_base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(code: &str, subject: &str, when: &str) -> Value {
        json!({"resourceType": "Observation", "id": format!("{code}-{when}"),
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject}, "effectiveDateTime": when})
    }

    fn ids(b: &Value) -> Vec<String> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn run(q: &str, all: &[Value]) -> Value {
        Search::parse(q, false).unwrap().page(all.to_vec(), "https://n/fhir/Observation", "https://n/fhir")
    }

    #[test]
    fn codes_subjects_and_dates_filter_as_fhir_says() {
        let all = [
            obs("8867-4", "Patient/a", "2026-11-30T23:59:59Z"),
            obs("8867-4", "Patient/b", "2026-12-01T00:00:00Z"),
            obs("8310-5", "Patient/a", "2026-12-01T12:30:00Z"),
            obs("8867-4", "Patient/a", "2027-01-02T08:00:00Z"),
        ];
        let got = |q: &str| ids(&run(q, &all));
        assert_eq!(got("code=8867-4").len(), 3);
        assert_eq!(got("code=http://loinc.org|8310-5"), ["8310-5-2026-12-01T12:30:00Z"]);
        assert!(got("code=http://snomed.info/sct|8310-5").is_empty(), "another system");
        assert!(got("code=|8310-5").is_empty(), "the coding has a system");
        assert_eq!(got("code=8310-5,8867-4").len(), 4);
        assert_eq!(got("subject=Patient/b").len(), 1);
        assert_eq!(got("subject=a&code=8867-4").len(), 2);
        // Precision sets the range: a day, a month, a year, a minute with an offset.
        assert_eq!(got("date=2026-12-01").len(), 2);
        assert_eq!(got("date=2026-12").len(), 2);
        assert_eq!(got("date=2026").len(), 3);
        assert_eq!(got("date=ge2026-12-01&date=lt2027").len(), 2);
        assert_eq!(got("date=gt2026-12-01").len(), 1, "after the whole day");
        assert_eq!(got("date=le2026-11-30").len(), 1, "up to the end of that day");
        assert_eq!(got("date=lt2026-12-01T00:00:00Z").len(), 1);
        assert_eq!(got("date=ne2026-12").len(), 2);
        assert_eq!(got("date=2026-12-01T13:30%2B01:00"), ["8310-5-2026-12-01T12:30:00Z"], "a minute, at +01:00");
        for bad in ["date=2026-13", "date=xx2026", "date=2026-12-01T25:00Z", "_count=-1", "code=http://loinc.org|"] {
            assert_eq!(Search::parse(bad, false).unwrap_err().reason, "bad-search", "{bad}");
        }
    }

    #[test]
    fn audit_events_filter_by_entity_agent_and_recorded_time() {
        let event = |id: &str, dataset: &str, requester: &str, when: &str| {
            json!({"resourceType": "AuditEvent", "id": id, "recorded": when,
                "agent": [{"who": {"identifier": {"value": requester}}}, {"who": {"identifier": {"value": "hospital-a"}}}],
                "entity": [{"what": {"identifier": {"value": dataset}}}]})
        };
        let mut all = [
            event("e1", "aa", "research-1", "2026-12-01T10:00:00Z"),
            event("e2", "bb", "research-2", "2026-12-02T10:00:00Z"),
            event("e3", "aa", "research-2", "2026-12-03T10:00:00Z"),
        ];
        // A patient, by reference (compared as given, not in lower case).
        all[1]["entity"].as_array_mut().unwrap().push(json!({"what": {"reference": "Patient/P-1"}}));
        let got = |q: &str| {
            let s = Search::parse_for(Searched::AuditEvent, q, false).unwrap();
            ids(&s.page(all.to_vec(), "https://n/fhir/AuditEvent", "https://n/fhir"))
        };
        assert_eq!(got("entity=AA"), ["e1", "e3"], "dataset ids compare in lower case");
        assert_eq!(got("entity=Patient/P-1"), ["e2"]);
        assert!(got("entity=patient/p-1").is_empty());
        assert_eq!(got("agent=research-2"), ["e2", "e3"]);
        assert_eq!(got("agent=hospital-a&date=ge2026-12-02"), ["e2", "e3"]);
        assert_eq!(got("entity=aa,bb&date=lt2026-12-03"), ["e1", "e2"]);
        // Each resource type takes its own parameters: an Observation's are unknown here.
        assert_eq!(got("code=8867-4").len(), 3, "ignored");
        let e = Search::parse_for(Searched::AuditEvent, "code=8867-4", true).unwrap_err();
        assert!(e.reason == "unsupported-search" && e.message.contains("entity, agent"), "{}", e.message);
        assert_eq!(
            Search::parse_for(Searched::AuditEvent, "_grant=00", true).unwrap_err().reason,
            "unsupported-search"
        );
        assert_eq!(Search::parse("entity=aa", true).unwrap_err().reason, "unsupported-search");
        let page =
            Search::parse_for(Searched::AuditEvent, "", false).unwrap().page(all.to_vec(), "b", "https://n/fhir");
        assert_eq!(page["entry"][0]["fullUrl"], "https://n/fhir/AuditEvent/e1");
    }

    #[test]
    fn pages_link_to_each_other_and_unknown_parameters_are_named() {
        let all: Vec<Value> = (0..7).map(|i| obs("8867-4", "Patient/a", &format!("2026-12-01T10:0{i}:00Z"))).collect();
        let first = run("code=8867-4&_count=3&_sort=date", &all);
        assert_eq!((first["total"].as_u64(), ids(&first).len()), (Some(7), 3));
        let link = |b: &Value, rel: &str| {
            b["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == rel)
                .map(|l| l["url"].as_str().unwrap().to_owned())
        };
        assert!(link(&first, "previous").is_none());
        let next = link(&first, "next").unwrap();
        assert_eq!(next, "https://n/fhir/Observation?code=8867-4&_count=3&_offset=3");
        assert_eq!(link(&first, "last").unwrap(), "https://n/fhir/Observation?code=8867-4&_count=3&_offset=6");
        let second = run(next.split_once('?').unwrap().1, &all);
        assert_eq!(ids(&second)[0], ids(&run("_count=1&_offset=3", &all))[0]);
        let last = run("code=8867-4&_count=3&_offset=6", &all);
        assert_eq!(ids(&last).len(), 1);
        assert!(link(&last, "next").is_none() && link(&last, "previous").is_some());
        // _sort is not served: ignored, named in an outcome entry; refused when strict.
        let outcome = first["entry"].as_array().unwrap().iter().find(|e| e["search"]["mode"] == "outcome").unwrap();
        assert!(outcome["resource"]["issue"][0]["diagnostics"].as_str().unwrap().contains("_sort"));
        assert_eq!(Search::parse("_sort=date", true).unwrap_err().reason, "unsupported-search");
        // _count is capped; 0 gives the total only.
        assert_eq!(Search::parse("_count=100000", false).unwrap().count, COUNT_MAX);
        let none = run("_count=0", &all);
        assert_eq!((none["total"].as_u64(), ids(&none).len()), (Some(7), 0));
    }
}
