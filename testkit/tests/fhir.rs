//! FHIR conformance: every FHIR answer of a node validates as R4 under a maintained FHIR
//! library (SMART on FHIR's `fhirclient` models, `scripts/fhir-validate.py`), and that
//! library's stock client starts against a node by reading its CapabilityStatement.
//! Conditional creates keep a retried transaction from creating anything twice, and
//! `Prefer` chooses what a create answers.

mod common;

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use dualchain_node::api::fhir_routes::upload_tag;
use dualchain_testkit::consortium::{CPCS, HOSPITAL_A, HOSPITAL_B, RESEARCH};
use reqwest::Method;
use serde_json::{json, Value};

fn save(dir: &Path, name: &str, v: &Value) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(v)?)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fhir_answer_validates_and_a_stock_client_reads_the_capability_statement() -> Result<()> {
    let c = common::consortium("fhir", 24, 31).await?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fhir-answers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    let hospital = c.api(HOSPITAL_A)?;

    // The CapabilityStatement, unauthenticated, states what each node does.
    let metadata: Value = hospital.get_public("/fhir/metadata").await?.json()?;
    ensure!(metadata["resourceType"] == "CapabilityStatement" && metadata["fhirVersion"] == "4.0.1", "{metadata}");
    let rest = &metadata["rest"][0];
    let kinds: Vec<&str> =
        rest["resource"].as_array().into_iter().flatten().filter_map(|r| r["type"].as_str()).collect();
    ensure!(
        kinds == ["Patient", "Device", "Observation", "AuditEvent", "Consent"],
        "a hospital's node states {kinds:?}"
    );
    ensure!(rest["interaction"][0]["code"] == "transaction", "{rest}");
    // Nothing it does not serve: creates, and a search of Observations; no read by id, no
    // update, no delete.
    let interactions = |r: &Value| -> Vec<String> {
        r["interaction"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["code"].as_str().map(str::to_owned))
            .collect()
    };
    ensure!(interactions(&rest["resource"][0]) == ["create"], "{rest}");
    ensure!(interactions(&rest["resource"][1]) == ["create"], "{rest}");
    ensure!(interactions(&rest["resource"][2]) == ["create", "search-type"], "{rest}");
    ensure!(interactions(&rest["resource"][3]) == ["search-type"], "{rest}");
    ensure!(interactions(&rest["resource"][4]) == ["create", "search-type"], "{rest}");
    // SMART Backend Services: the token endpoint where a stock client looks for it.
    let oauth = &rest["security"]["extension"][0];
    ensure!(oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "{rest}");
    ensure!(oauth["extension"][0]["valueUri"].as_str().is_some_and(|u| u.ends_with("/smart/token")), "{oauth}");
    // Public, so it says nothing more: no other member, no key, hash or identifier (no
    // run of 32 or more hex digits), no patient.
    let text = metadata.to_string();
    ensure!(text.contains(HOSPITAL_A) && !text.contains(HOSPITAL_B) && !text.contains(RESEARCH), "{text}");
    let longest_hex = text.split(|c: char| !c.is_ascii_hexdigit()).map(str::len).max().unwrap_or(0);
    ensure!(longest_hex < 32 && !text.contains("Patient/"), "{text}");
    files.push(save(&dir, "metadata-hospital", &metadata)?);
    let research: Value = c.api(RESEARCH)?.get_public("/fhir/metadata").await?.json()?;
    // A research institute's node searches its grants' records and writes nothing.
    let kinds = &research["rest"][0]["resource"];
    ensure!(kinds.as_array().map(Vec::len) == Some(1) && kinds[0]["type"] == "Observation", "{research}");
    ensure!(interactions(&kinds[0]) == ["search-type"], "a research node claims FHIR writes: {research}");
    files.push(save(&dir, "metadata-research", &research)?);

    // A transaction: a transaction-response Bundle, each entry's status and location, the
    // dataset in tags (no extension on a Bundle).
    let up = c.upload(HOSPITAL_A, "fhir-1", CPCS[0]).await?;
    let answer = &up.answer;
    ensure!(answer["type"] == "transaction-response" && answer.get("extension").is_none(), "{answer}");
    ensure!(upload_tag(answer, "dataset") == Some(up.dataset.to_hex().as_str()), "{}", answer["meta"]);
    let entries = answer["entry"].as_array().context("entries")?;
    ensure!(entries.iter().all(|e| e["response"]["status"] == "201 Created"), "{answer}");
    let observations =
        entries.iter().filter(|e| e["response"]["location"].as_str().is_some_and(|l| l.starts_with("Observation/")));
    ensure!(observations.count() == up.observations.len(), "one location per Observation");
    files.push(save(&dir, "transaction-response", answer)?);

    // A refusal: an OperationOutcome.
    let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource":
        {"resourceType": "Patient", "id": "p-bad", "gender": "robot", "birthDate": "1970-01-01"}}]});
    let refused = hospital.send(Method::POST, "/fhir", serde_json::to_vec(&bad)?, "application/fhir+json").await?;
    ensure!(refused.status == 400, "a bad gender answered {}", refused.status);
    let outcome: Value = serde_json::from_slice(&refused.body)?;
    ensure!(outcome["resourceType"] == "OperationOutcome", "{outcome}");
    files.push(save(&dir, "operation-outcome", &outcome)?);

    // One Observation, staged: the Observation back, with the count of staged ones as a tag.
    let mut one = up.observations[0].clone();
    one["id"] = json!("fhir-single-1");
    let staged =
        hospital.send(Method::POST, "/fhir/Observation", serde_json::to_vec(&one)?, "application/fhir+json").await?;
    ensure!(staged.status == 201, "a single Observation answered {}", staged.status);
    let staged: Value = serde_json::from_slice(&staged.body)?;
    ensure!(upload_tag(&staged, "staged") == Some("1"), "{staged}");
    files.push(save(&dir, "observation-staged", &staged)?);

    // Conditional creates make a retried transaction create nothing twice; Prefer chooses
    // the answer.
    let datasets = || c.owner(HOSPITAL_A).map(|o| o.datasets.lock().map(|d| d.len()).unwrap_or(0));
    let before = datasets()?;
    let system = "urn:dualchain-test:obs";
    let entries: Vec<Value> = (0..3)
        .map(|i| {
            let mut o = up.observations[i].clone();
            o["id"] = json!(format!("cond-{i}"));
            o["identifier"] = json!([{"system": system, "value": format!("cond-{i}")}]);
            json!({"resource": o, "request": {"method": "POST", "url": "Observation",
                "ifNoneExist": format!("identifier={system}|cond-{i}")}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))?;
    let post = |prefer: &'static str| {
        let body = body.clone();
        async move {
            let r = hospital
                .send_with(
                    Method::POST,
                    "/fhir?dataset=cond-1&min_cohort=1",
                    body,
                    "application/fhir+json",
                    &[("prefer", prefer)],
                )
                .await?;
            ensure!(r.status == 200, "the transaction answered {}", r.status);
            Ok::<Value, anyhow::Error>(serde_json::from_slice(&r.body)?)
        }
    };
    let first = post("return=representation").await?;
    ensure!(upload_tag(&first, "dataset").is_some() && datasets()? == before + 1, "{first}");
    for (i, e) in first["entry"].as_array().context("entries")?.iter().enumerate() {
        ensure!(e["response"]["status"] == "201 Created" && e["resource"]["id"] == format!("cond-{i}").as_str(), "{e}");
    }
    files.push(save(&dir, "transaction-conditional-created", &first)?);
    let retried = post("return=OperationOutcome").await?;
    ensure!(
        upload_tag(&retried, "dataset").is_none() && datasets()? == before + 1,
        "a retry made a dataset: {retried}"
    );
    for (i, e) in retried["entry"].as_array().context("entries")?.iter().enumerate() {
        ensure!(e["response"]["status"] == "200 OK", "{e}");
        ensure!(e["response"]["location"] == format!("Observation/cond-{i}").as_str(), "{e}");
        ensure!(e["response"]["outcome"]["resourceType"] == "OperationOutcome" && e.get("resource").is_none(), "{e}");
    }
    files.push(save(&dir, "transaction-conditional-retried", &retried)?);

    let mut single = up.observations[3].clone();
    single["id"] = json!("cond-single");
    single["identifier"] = json!([{"system": system, "value": "cond-single"}]);
    let condition = format!("identifier={system}|cond-single");
    let post_one = |obs: &Value, headers: Vec<(&'static str, String)>| {
        let body = serde_json::to_vec(obs).unwrap_or_default();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            hospital.send_with(Method::POST, "/fhir/Observation", body, "application/fhir+json", &h).await
        }
    };
    let made =
        post_one(&single, vec![("if-none-exist", condition.clone()), ("prefer", "return=minimal".into())]).await?;
    ensure!(made.status == 201 && made.body.is_empty(), "{} {:?}", made.status, made.body);
    let again = post_one(&single, vec![("if-none-exist", condition.clone())]).await?;
    ensure!(again.status == 200, "a conditional create of an existing identifier answered {}", again.status);
    let said: Value = serde_json::from_slice(&again.body)?;
    ensure!(said["issue"][0]["details"]["coding"][0]["code"] == "exists", "{said}");
    files.push(save(&dir, "observation-exists", &said)?);
    // The duplicate was not staged: the next Observation is the third.
    single["id"] = json!("fhir-single-3");
    single.as_object_mut().context("an object")?.remove("identifier");
    let third = post_one(&single, vec![("prefer", "return=OperationOutcome".into())]).await?;
    let third: Value = serde_json::from_slice(&third.body)?;
    ensure!(third["issue"][0]["diagnostics"].as_str().is_some_and(|d| d.contains("3 staged")), "{third}");
    files.push(save(&dir, "observation-outcome", &third)?);
    for (name, value, reason) in
        [("if-none-exist", "code=8867-4", "unsupported-condition"), ("prefer", "return=everything", "bad-prefer")]
    {
        let r = post_one(&single, vec![(name, value.into())]).await?;
        ensure!(r.status == 400 && r.refusal().reason == reason, "{name}: {value} answered {}", r.status);
    }

    // Units are converted to the sign's canonical one; an unmapped code is refused by name.
    let mut kpa = up.observations[0].clone();
    kpa["id"] = json!("fhir-bp-kpa");
    kpa["code"] =
        json!({"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]});
    kpa["valueQuantity"] = json!({"value": 16.0, "unit": "kPa", "system": "http://unitsofmeasure.org", "code": "kPa"});
    let r = post_one(&kpa, vec![]).await?;
    ensure!(r.status == 201, "an Observation in kPa answered {}", r.status);
    let mut creatinine = kpa.clone();
    creatinine["id"] = json!("fhir-creatinine");
    creatinine["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "2160-0"}]});
    let r = post_one(&creatinine, vec![]).await?;
    ensure!(r.status == 422 && r.refusal().message.contains("LOINC 2160-0"), "{} {}", r.status, r.refusal().message);
    files.push(save(&dir, "operation-outcome-unknown-code", &serde_json::from_slice(&r.body)?)?);

    // A pulse oximeter (PHD IG): its Device with the IEEE system id; its Observations, coded
    // in MDC beside LOINC or in MDC alone, carry that id.
    let ieee = dualchain_node::fhir::IEEE_SYSTEM_ID;
    let device = json!({"resourceType": "Device", "id": "oximeter-7",
        "identifier": [{"system": ieee, "value": "00:1C:05:FF:FE:12:34:56"}],
        "type": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "65573", "display": "MDC_MOC_VMS_MDS_SIMP"}]}});
    let r = hospital.send(Method::POST, "/fhir/Device", serde_json::to_vec(&device)?, "application/fhir+json").await?;
    ensure!(r.status == 201, "a Device answered {}: {}", r.status, String::from_utf8_lossy(&r.body));
    files.push(save(&dir, "device", &serde_json::from_slice(&r.body)?)?);
    let mut spo2 = up.observations[0].clone();
    spo2["id"] = json!("fhir-spo2-mdc");
    spo2["code"] = json!({"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "150456"}]});
    spo2["valueQuantity"] = json!({"value": 97, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"});
    spo2["device"] = json!({"reference": "Device/oximeter-7"});
    let r = post_one(&spo2, vec![]).await?;
    ensure!(r.status == 201, "an MDC-coded Observation answered {}: {}", r.status, String::from_utf8_lossy(&r.body));
    let made: Value = serde_json::from_slice(&r.body)?;
    ensure!(made["device"]["identifier"] == json!({"system": ieee, "value": "00-1C-05-FF-FE-12-34-56"}), "{made}");
    files.push(save(&dir, "observation-device", &made)?);
    let mut unknown = spo2.clone();
    unknown["id"] = json!("fhir-mdc-unknown");
    unknown["code"]["coding"][0]["code"] = json!("150020");
    let r = post_one(&unknown, vec![]).await?;
    ensure!(r.status == 422 && r.refusal().message.contains("MDC 150020"), "{}", r.refusal().message);

    // A grantee's records: a searchset Bundle.
    let demand = c.demand(RESEARCH, &up.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    ensure!(access.granted, "denied: {:?}", access.denial);
    c.wait_receipt(RESEARCH, &access.request).await?;
    let bundle = c.fetch_bundle(RESEARCH, &access.request).await?;
    ensure!(bundle["entry"].as_array().is_some_and(|e| !e.is_empty()), "no records");
    // After the records, the delivery's Provenance: each of them a target, the grant its
    // policy, the receipt's inclusion proof checked.
    let provenance = &bundle["entry"].as_array().and_then(|e| e.last()).expect("entries")["resource"];
    ensure!(provenance["resourceType"] == "Provenance", "{bundle}");
    ensure!(provenance["target"].as_array().map(Vec::len) == bundle["total"].as_u64().map(|n| n as usize));
    ensure!(provenance["policy"][0] == format!("urn:dualchain:grant:{}", hex::encode(access.request)).as_str());
    ensure!(provenance["extension"][1]["valueBoolean"] == true, "{provenance}");
    files.push(save(&dir, "searchset", &bundle)?);
    // Searches: the hospital's staged Observations (a parameter it does not serve is named
    // in an outcome entry), and the grantee's records through `_grant`, one page of two.
    let cref = &c;
    let get = |who: &'static str, path: String| async move {
        let r = cref.api(who)?.send(Method::GET, &path, vec![], "").await?;
        ensure!(r.status == 200, "{path} answered {}", r.status);
        Ok::<Value, anyhow::Error>(serde_json::from_slice(&r.body)?)
    };
    let staged = get(HOSPITAL_A, "/fhir/Observation?_count=2&_sort=date".into()).await?;
    let modes: Vec<&str> =
        staged["entry"].as_array().into_iter().flatten().filter_map(|e| e["search"]["mode"].as_str()).collect();
    ensure!(staged["total"] == 5 && modes == ["match", "match", "outcome"], "{staged}");
    files.push(save(&dir, "search-staged", &staged)?);
    let page = get(RESEARCH, format!("/fhir/Observation?_grant={}&_count=2", hex::encode(access.request))).await?;
    ensure!(
        page["total"] == bundle["total"] && page["entry"][0]["resource"] == bundle["entry"][0]["resource"],
        "{page}"
    );
    files.push(save(&dir, "search-grant", &page)?);
    // The access log as FHIR: the delivery is an AuditEvent, with its receipt's inclusion
    // proof checked, for the owner only.
    // The receipt, then the two fetches (the records, the search page).
    let log = get(HOSPITAL_A, format!("/fhir/AuditEvent?entity={}", up.dataset.to_hex())).await?;
    let subtypes: Vec<&str> = log["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["subtype"][0]["code"].as_str())
        .collect();
    ensure!(subtypes == ["reencrypted", "fetched", "fetched"], "{log}");
    let event = &log["entry"][1]["resource"];
    ensure!(event["action"] == "R", "{event}");
    ensure!(
        event["agent"][0]["who"]["identifier"]["value"] == RESEARCH && event["agent"][0]["requestor"] == true,
        "{event}"
    );
    ensure!(event["entity"][1]["what"]["identifier"]["value"] == hex::encode(access.request).as_str(), "{event}");
    let verified =
        event["extension"].as_array().into_iter().flatten().find(|x| x["url"] == "urn:dualchain:proof-verified");
    ensure!(verified.is_some_and(|x| x["valueBoolean"] == true), "{event}");
    let all_mine = get(HOSPITAL_A, format!("/fhir/AuditEvent?agent={RESEARCH}&date=ge2020")).await?;
    ensure!(all_mine["total"] == 3, "{all_mine}");
    files.push(save(&dir, "audit-events", &log)?);
    for (who, reason) in [(RESEARCH, "wrong-role"), (HOSPITAL_B, "not-yours")] {
        let path = format!("/fhir/AuditEvent?entity={}", up.dataset.to_hex());
        let r = c.api(who)?.send(Method::GET, &path, vec![], "").await?;
        ensure!(r.status == 403 && r.refusal().reason == reason, "{who}: {} {}", r.status, r.refusal().reason);
    }

    // The library validates them all, and its client starts against the hospital's node.
    let node = c.node_of(HOSPITAL_A)?;
    let base = format!("{}/fhir", node.consortium.validators[node.cfg.node as usize].api);
    let ca = dir.join("tls-ca.der");
    std::fs::write(&ca, hex::decode(&node.consortium.tls_ca)?)?;
    let (ok, text) = common::fhir_validate(&files, Some((&base, &ca)))?;
    ensure!(ok, "FHIR answers that do not validate:\n{text}");
    ensure!(
        text.contains("FHIR 4.0.1, resources ['Patient', 'Device', 'Observation', 'AuditEvent', 'Consent']"),
        "{text}"
    );

    // The validator is no rubber stamp: what FHIR R4 forbids, it refuses.
    let mut with_extension = bundle.clone();
    with_extension["extension"] = json!([{"url": "urn:dualchain:grant", "valueString": "x"}]);
    let mut no_status = answer.clone();
    no_status["entry"][0]["response"] = json!({"location": "Patient/x"});
    let mut bad_date = metadata.clone();
    bad_date["date"] = json!("2026-13-45");
    for (name, v, why) in [
        ("bundle-extension", &with_extension, "Superfluous entry \"extension\""),
        ("no-status", &no_status, "status"),
        ("bad-date", &bad_date, "date"),
    ] {
        let (ok, text) = common::fhir_validate(&[save(&dir, name, v)?], None)?;
        ensure!(!ok && text.contains("INVALID") && text.contains(why), "{name} passed:\n{text}");
    }
    c.shutdown().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
