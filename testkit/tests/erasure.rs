//! A patient's erasure end to end (`POST /erasure`, GDPR art. 17) in one consortium of
//! `dualchain node` services: the hospital re-registers the other patients' records under
//! a new key and erases the old dataset; the CPC deletes it; the old key exists nowhere,
//! so a copy of the patient's stored record opens with no key that is left; the hospital's
//! files no longer name the patient except in its erasure journal; a new grant delivers
//! everyone's records but the patient's; the earlier grant is stated and ends; the chain
//! holds a tombstone and a registration that name no patient; the access log shows the
//! erasure as a FHIR R4 AuditEvent.

mod common;

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use dualchain_crypto::cbsre::DatasetId;
use dualchain_testkit::consortium::{parse_hash, refusal, wait_for, Consortium, CPCS, HOSPITAL_A, RESEARCH, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

use common::{heart_rates, refused};

async fn erase(c: &Consortium, who: &str, body: &Value) -> Result<Value> {
    c.api(who)?.call(Method::POST, "/erasure", Some(body)).await
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let path = e?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasing_a_patient_re_registers_the_others_and_leaves_nothing_of_the_patient_decryptable() -> Result<()> {
    let c = common::consortium("erasure", 24, 43).await?;
    let a = c.upload(HOSPITAL_A, "ward-1", CPCS[0]).await?;
    let p0 = "Patient/hospital-a-p0000";
    let owner = c.owner(HOSPITAL_A)?;
    let cpc = c.cpc(CPCS[0])?;
    let ledger = c.node_of(HOSPITAL_A)?.ledger.clone();

    // A grant before the erasure: all 8 heart rates, p0's among them.
    let d1 = c.demand(RESEARCH, &a.dataset, 8).await?;
    c.wait_supplied(RESEARCH, &d1).await?;
    let g1 = c.request_access(RESEARCH, &d1, 3600).await?;
    ensure!(g1.granted, "{:?}", g1.denial);
    c.wait_receipt(RESEARCH, &g1.request).await?;
    ensure!(c.fetch(RESEARCH, &g1.request).await?.len() == 8);

    let old = owner.dataset(&a.dataset.0).expect("kept");
    let p0_rows: Vec<usize> = (0..old.records.len()).filter(|i| old.patients[*i] == p0).collect();
    ensure!(p0_rows.len() == 3, "p0 has {} records", p0_rows.len());
    let old_key = old.dsk.clone().expect("a dataset key");
    // A copy of one of p0's stored records, as a backup of the CPC would hold it: it opens
    // with the dataset's key, for now.
    let backup = cpc.store.record(&a.dataset, p0_rows[0] as u64)?;
    let hospital = c.member(HOSPITAL_A)?;
    ensure!(backup.owner_decrypt(&old_key, &hospital.signer.public()).is_ok());

    // Refused: another role, a malformed reference, a patient the hospital never held;
    // and at the CPC, another member taking the owner's records.
    ensure!(refused(erase(&c, RESEARCH, &json!({"patient": p0})).await).starts_with("wrong-role"));
    ensure!(refused(erase(&c, HOSPITAL_A, &json!({"patient": "p0"})).await).starts_with("bad-patient"));
    ensure!(refused(erase(&c, HOSPITAL_A, &json!({"patient": "Patient/nobody"})).await).starts_with("unknown-patient"));
    ensure!(refused(erase(&c, HOSPITAL_A, &json!({"patient": p0, "x": 1})).await).starts_with("bad-json"));
    let err = cpc.retrieve(RESEARCH, &a.dataset).unwrap_err().to_string();
    ensure!(err.contains("not research"), "{err}");
    ensure!(owner.dataset(&a.dataset.0).is_some() && ledger.dataset(&a.dataset.0)?.unwrap().erased.is_none());

    // The erasure.
    let v = erase(&c, HOSPITAL_A, &json!({"patient": p0, "reason": "the patient asked (GDPR art. 17)"})).await?;
    let done = &v["datasets"][0];
    ensure!(v["datasets"].as_array().map(Vec::len) == Some(1), "{v}");
    ensure!(done["erased"] == a.dataset.to_hex() && done["records_erased"] == 3 && done["records_kept"] == 21, "{v}");
    ensure!(v["earlier_grants"][0]["grant"] == hex::encode(g1.request), "the earlier grant is not stated: {v}");
    ensure!(v["registry_entries_removed"].as_u64() >= Some(1), "{v}");
    let new = DatasetId(parse_hash(done["replaced_by"].as_str().unwrap_or_default())?);

    // The chain: the old dataset's tombstone, the new registration; neither names p0.
    let tombstone = ledger.dataset(&a.dataset.0)?.expect("tombstone");
    ensure!(tombstone.erased.is_some() && tombstone.abe_index.is_empty(), "{tombstone:?}");
    let registered = ledger.dataset(&new.0)?.expect("registered");
    ensure!(registered.erased.is_none() && registered.policy == tombstone.policy, "{registered:?}");
    let (txs, _) = ledger.accepted_txs_since(Default::default())?;
    for (_, tx) in &txs {
        let text = serde_json::to_string(tx)?;
        ensure!(!text.contains("hospital-a-p0"), "the chain names the patient: {text}");
    }

    // The CPC deleted the old dataset and holds the new one, 21 records.
    wait_for(WAIT, "the CPC to erase the old dataset", || cpc.store.erased(&a.dataset).map_err(Into::into)).await?;
    ensure!(cpc.store.manifest(&a.dataset)?.is_none());
    ensure!(cpc.store.manifest(&new)?.map(|m| m.entries.len()) == Some(21));
    ensure!(cpc.retrieve(HOSPITAL_A, &a.dataset).is_err(), "an erased dataset was handed back");

    // The hospital keeps nothing of the old dataset, and the new one holds no record of p0
    // under a key of its own; the old key is nowhere, so the copy opens with no key left.
    ensure!(owner.dataset(&a.dataset.0).is_none(), "the old dataset's opening is kept");
    let kept = owner.dataset(&new.0).expect("kept");
    ensure!(kept.records.len() == 21 && !kept.patients.iter().any(|p| p == p0), "{:?}", kept.patients);
    ensure!(kept.replaces == Some(a.dataset.0));
    let new_key = kept.dsk.clone().expect("a dataset key");
    ensure!(new_key.public() != old_key.public(), "the new dataset reuses the old key");
    ensure!(backup.owner_decrypt(&new_key, &hospital.signer.public()).is_err());
    ensure!(backup.owner_decrypt(&hospital.dsk, &hospital.signer.public()).is_err());
    let data_dir = c.node_of(HOSPITAL_A)?.data_dir.clone();
    let old_key_hex = dualchain_node::files::to_hex(&old_key);
    ensure!(files_holding(&data_dir, old_key_hex.as_bytes())?.is_empty(), "the old key is still on disk");
    // p0 is named only in the hospital's journal store, by its erasure journal.
    let naming: Vec<PathBuf> = files_holding(&data_dir, b"hospital-a-p0000")?;
    ensure!(
        !naming.is_empty() && naming.iter().all(|f| f.starts_with(data_dir.join("member"))),
        "files naming the erased patient: {naming:?}"
    );
    ensure!(
        owner.consents.lock().unwrap().history(p0).is_empty()
            && owner.erasures.lock().unwrap().all().any(|e| e.patient.as_deref() == Some(p0)),
        "the journal store names the patient for another reason than its erasure"
    );

    // The earlier grant ends with its dataset; a new one on the new dataset delivers the 7
    // heart rates of the others, none of p0's.
    let r = refusal(&c.fetch(RESEARCH, &g1.request).await.unwrap_err()).map(|x| x.message.clone()).unwrap_or_default();
    ensure!(r.contains("erased"), "{r}");
    let d2 = c.demand(RESEARCH, &new, 7).await?;
    c.wait_supplied(RESEARCH, &d2).await?;
    let g2 = c.request_access(RESEARCH, &d2, 3600).await?;
    ensure!(g2.granted, "{:?}", g2.denial);
    c.wait_receipt(RESEARCH, &g2.request).await?;
    let delivered = c.fetch(RESEARCH, &g2.request).await?;
    let others = a.observations.iter().filter(|o| o["subject"]["reference"] != p0);
    ensure!(heart_rates(&delivered) == heart_rates(others), "p0's heart rate was delivered after the erasure");

    // Again: nothing is left to erase.
    ensure!(refused(erase(&c, HOSPITAL_A, &json!({"patient": p0})).await).starts_with("unknown-patient"));

    // The access log: the erasure is an AuditEvent naming p0, both datasets and the
    // tombstone's transaction, whose inclusion proof checks; the first grant's deliveries
    // stay in the log.
    let path = format!("/fhir/AuditEvent?entity={p0}");
    let audit: Value = c.api(HOSPITAL_A)?.call(Method::GET, &path, None).await?;
    let events: Vec<&Value> = audit["entry"].as_array().into_iter().flatten().map(|e| &e["resource"]).collect();
    let erasure = events.iter().find(|e| e["action"] == "D").context("no erasure event")?;
    let text = erasure.to_string();
    ensure!(
        text.contains(&a.dataset.to_hex())
            && text.contains(&new.to_hex())
            && text.contains(done["tx"].as_str().unwrap())
    );
    ensure!(erasure["extension"][1]["valueBoolean"] == true, "the inclusion proof does not check: {erasure}");
    let path = format!("/fhir/AuditEvent?entity={}", a.dataset.to_hex());
    let log: Value = c.api(HOSPITAL_A)?.call(Method::GET, &path, None).await?;
    let grants = log.to_string();
    ensure!(grants.contains(&hex::encode(g1.request)) && grants.contains("\"D\""), "{log}");
    let all: Value = c.api(HOSPITAL_A)?.call(Method::GET, "/fhir/AuditEvent", None).await?;
    ensure!(all.to_string().contains(&hex::encode(g1.request)), "an erased dataset's deliveries left the log");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("erasure-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (i, v) in [&audit, &log].into_iter().enumerate() {
        let f = dir.join(format!("erasure-{i}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(v)?)?;
        files.push(f);
    }
    let (ok, text) = common::fhir_validate(&files, None)?;
    ensure!(ok, "AuditEvents that do not validate:\n{text}");
    c.ledgers_identical(WAIT).await?;
    c.shutdown().await
}
