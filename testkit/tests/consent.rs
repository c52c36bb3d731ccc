//! Patients' consent end to end, through the hospital's FHIR API (`POST /fhir/Consent`) in
//! one consortium of `dualchain node` services: an opt-out of research takes the patient's
//! records out of every later research supply proof (in the circuit, against the consent
//! commitment on chain) and grant, and not out of treatment; a full opt-out keeps them out
//! of new datasets; a withdrawal puts them back; what was delivered before is stated; the
//! chain holds commitments only; the Consents validate as FHIR R4.

mod common;

use std::path::PathBuf;

use anyhow::{ensure, Result};
use dualchain_ledger::consent::Purpose;
use dualchain_ledger::tx::TxKind;
use dualchain_node::agents::Activity;
use dualchain_node::api::fhir_routes::upload_tag;
use dualchain_testkit::consortium::{wait_for, Consortium, CPCS, HOSPITAL_A, HOSPITAL_B, RESEARCH, WAIT};
use dualchain_testkit::fhir::{consent, research_opt_out};
use reqwest::Method;
use serde_json::{json, Value};

use common::{heart_rates, refused};

/// Posts a Consent at hospital-a; the OperationOutcome's text.
async fn post(c: &Consortium, who: &str, body: &Value) -> Result<String> {
    let v: Value = c.api(who)?.call(Method::POST, "/fhir/Consent", Some(body)).await?;
    Ok(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_decides_which_records_count_and_flow_and_the_chain_holds_commitments_only() -> Result<()> {
    let c = common::consortium("consent", 24, 41).await?;
    let a = c.upload(HOSPITAL_A, "ward-1", CPCS[0]).await?;
    // 8 patients, each with one heart rate among the 24 Observations.
    let (p0, p1) = ("Patient/hospital-a-p0000", "Patient/hospital-a-p0001");
    let ledger = c.node_of(HOSPITAL_A)?.ledger.clone();
    let registered = ledger.dataset(&a.dataset.0)?.expect("registered");
    ensure!(registered.consent_version == 0, "{registered:?}");

    // A grant before any consent: all 8 heart rates.
    let d1 = c.demand(RESEARCH, &a.dataset, 8).await?;
    c.wait_supplied(RESEARCH, &d1).await?;
    let g1 = c.request_access(RESEARCH, &d1, 3600).await?;
    ensure!(g1.granted, "{:?}", g1.denial);
    c.wait_receipt(RESEARCH, &g1.request).await?;
    ensure!(c.fetch(RESEARCH, &g1.request).await?.len() == 8);

    // Refused: a Consent from another role, of an unknown patient, or one this node cannot
    // enforce.
    let opt_out = consent(p0, "active", research_opt_out());
    ensure!(refused(post(&c, RESEARCH, &opt_out).await).starts_with("wrong-role"));
    let stranger = consent("Patient/nobody", "active", json!({"type": "deny"}));
    ensure!(refused(post(&c, HOSPITAL_A, &stranger).await).starts_with("unknown-patient"));
    let nested = consent(p0, "active", json!({"type": "deny", "provision": [{"type": "permit"}]}));
    let r = refused(post(&c, HOSPITAL_A, &nested).await);
    ensure!(r.starts_with("bad-consent") && r.contains("nested"), "{r}");
    ensure!(ledger.dataset(&a.dataset.0)?.expect("kept").consent_version == 0, "a refusal changed the commitment");

    // p0 opts out of research: the dataset is re-committed, and the earlier grant is stated.
    let said = post(&c, HOSPITAL_A, &opt_out).await?;
    ensure!(said.contains("1 dataset(s) re-committed"), "{said}");
    ensure!(
        said.contains(&format!(r#""code":"{}""#, hex::encode(g1.request))),
        "the earlier grant is not tagged: {said}"
    );
    ensure!(said.contains("urn:dualchain:tx"), "{said}");
    let after = ledger.dataset(&a.dataset.0)?.expect("kept");
    ensure!(after.consent_version == 1 && after.consent != registered.consent, "{after:?}");

    // A research demand for all 8 heart rates cannot be proven now; one for 7 can, and its
    // grant delivers the 7 others.
    let d2 = c.demand(RESEARCH, &a.dataset, 8).await?;
    let owner_log = c.log(HOSPITAL_A)?;
    let why = wait_for(WAIT, "the owner's node to give up on 8", || {
        Ok(owner_log.entries().into_iter().find_map(|(_, e)| match e {
            Activity::SupplyImpossible { demand, reason } if demand == d2 => Some(reason),
            _ => None,
        }))
    })
    .await?;
    ensure!(why.contains("consent to HRESCH for a research"), "{why}");
    let d3 = c.demand(RESEARCH, &a.dataset, 7).await?;
    c.wait_supplied(RESEARCH, &d3).await?;
    let g3 = c.request_access(RESEARCH, &d3, 3600).await?;
    ensure!(g3.granted, "{:?}", g3.denial);
    c.wait_receipt(RESEARCH, &g3.request).await?;
    let delivered = c.fetch(RESEARCH, &g3.request).await?;
    let others = a.observations.iter().filter(|o| o["subject"]["reference"] != p0);
    ensure!(heart_rates(&delivered) == heart_rates(others), "p0's heart rate was delivered for research");

    // Treatment is not research: hospital-b's demand for all 8 is proven.
    let now = dualchain_node::clock::unix_ms() / 1000;
    let treat = json!({"code": "8867-4", "unit": "/min", "value_min": 40.0, "value_max": 200.0,
        "since": now - 7200, "until": now + 60, "threshold": 8, "purpose": "TREAT"});
    let d4 = c.demand_spec(HOSPITAL_B, &a.dataset, treat).await?;
    let d4 = c.wait_supplied(HOSPITAL_B, &d4).await?;
    ensure!(d4.purpose == Purpose::Treatment, "{d4:?}");

    // p1 opts out of everything: a new dataset leaves p1's 3 Observations out.
    post(&c, HOSPITAL_A, &consent(p1, "active", json!({"type": "deny"}))).await?;
    let b = c.upload(HOSPITAL_A, "ward-2", CPCS[0]).await?;
    ensure!(upload_tag(&b.answer, "left-out") == Some("3"), "{}", b.answer["meta"]);
    let kept = c.owner(HOSPITAL_A)?.dataset(&b.dataset.0).expect("kept");
    ensure!(kept.records.len() == 21 && !kept.patients.iter().any(|p| p == p1), "{:?}", kept.patients);

    // p0 withdraws the opt-out: both datasets are re-committed (the chain does not tell
    // which holds p0's records), and p0's heart rate counts for research again; p1's, in
    // the first dataset, no longer does: 7 of 8 (6 while p0 was out).
    let mut withdrawn = opt_out.clone();
    withdrawn["status"] = json!("inactive");
    let said = post(&c, HOSPITAL_A, &withdrawn).await?;
    ensure!(said.contains("2 dataset(s) re-committed"), "{said}");
    let d5 = c.demand(RESEARCH, &a.dataset, 7).await?;
    c.wait_supplied(RESEARCH, &d5).await?;

    // The chain: commitments, never a patient or a Consent's content.
    let (txs, _) = ledger.accepted_txs_since(Default::default())?;
    let mut commits = Vec::new();
    for (_, tx) in &txs {
        let text = serde_json::to_string(tx)?;
        ensure!(!text.contains("hospital-a-p0") && !text.contains("deny") && !text.contains("inactive"), "{text}");
        if let TxKind::CommitConsent { commitments } = &tx.kind {
            commits.push(commitments.len());
        }
    }
    ensure!(commits == [1, 1, 2], "CommitConsent sizes {commits:?}");

    // A patient's Consents, oldest first, and each validates as FHIR R4.
    let path = format!("/fhir/Consent?patient={p0}");
    let found: Value = c.api(HOSPITAL_A)?.call(Method::GET, &path, None).await?;
    ensure!(found["total"] == 2 && found["entry"][1]["resource"]["status"] == "inactive", "{found}");
    // The access log: each of p0's Consents is an AuditEvent naming the patient and the
    // commitments' transaction, whose inclusion proof checks.
    let path = format!("/fhir/AuditEvent?entity={p0}");
    let audit: Value = c.api(HOSPITAL_A)?.call(Method::GET, &path, None).await?;
    let events: Vec<&Value> = audit["entry"].as_array().into_iter().flatten().map(|e| &e["resource"]).collect();
    ensure!(events.iter().all(|e| e.to_string().contains(p0)), "{audit}");
    let consents: Vec<&&Value> =
        events.iter().filter(|e| e["id"].as_str().is_some_and(|i| i.starts_with("consent-"))).collect();
    ensure!(consents.len() == 2, "{audit}");
    for e in &consents {
        ensure!(e["extension"][1]["valueBoolean"] == true, "the inclusion proof does not check: {e}");
    }
    // Deliveries name the patients they delivered: p0's heart rate went to the first grant
    // (before the opt-out) and not to the second.
    let grant_of = |e: &Value| {
        e["entity"].as_array().into_iter().flatten().find_map(|x| {
            (x["what"]["identifier"]["system"] == "urn:dualchain:grant")
                .then(|| x["what"]["identifier"]["value"].clone())
        })
    };
    let delivered: Vec<Value> = events.iter().filter_map(|e| grant_of(e)).collect();
    ensure!(delivered.contains(&json!(hex::encode(g1.request))), "{audit}");
    ensure!(!delivered.contains(&json!(hex::encode(g3.request))), "{audit}");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("consent-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    let answer: Value = serde_json::from_str(&said)?;
    for (i, v) in [&found["entry"][0]["resource"], &found["entry"][1]["resource"], &found, &audit, &answer]
        .into_iter()
        .enumerate()
    {
        let f = dir.join(format!("consent-{i}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(v)?)?;
        files.push(f);
    }
    let (ok, text) = common::fhir_validate(&files, None)?;
    ensure!(ok, "Consents that do not validate:\n{text}");
    c.shutdown().await
}
