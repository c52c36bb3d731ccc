//! Break-glass end to end in one consortium of `dualchain node` services, through the
//! members' own nodes' APIs: a clinician at hospital-b, whose attributes do not open
//! hospital-a's index, asks for two patients' records in an emergency; hospital-a's node
//! grants exactly those patients' records at once, each named as the clinician named it; the use enters hospital-a's review
//! queue; a justified use keeps its access. A second use is reviewed by hospital-a's
//! privacy officer in the console, in headless Chromium (`scripts/console-check.py`):
//! unjustified, so its grant ends and the KGC withdraws the clinician's credential.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use dualchain_ledger::state::GrantStatus;
use dualchain_testkit::consortium::{refusal, wait_for, CPCS, HOSPITAL_A, HOSPITAL_B, RESEARCH, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

/// The API's machine-readable reason for refusing `r`, or a failure if it was not refused.
fn reason<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("the call was not refused"),
        Err(e) => {
            refusal(&e).map_or_else(|| format!("not a refusal: {e:#}"), |x| format!("{} {}", x.reason, x.message))
        }
    }
}

fn hash(v: &Value) -> [u8; 32] {
    let mut h = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap_or_default(), &mut h).expect("a 32-byte id in hex");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn break_glass_from_request_through_review_in_the_console_to_revocation() -> Result<()> {
    let c = common::consortium("break-glass", 24, 23).await?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    // A research grant beside it, for the console to show the usual flow too.
    let demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    c.wait_receipt(RESEARCH, &access.request).await?;
    c.fetch(RESEARCH, &access.request).await?;

    let patient = a.observations[0]["subject"]["reference"].as_str().unwrap_or_default().to_string();
    let theirs: Vec<&Value> = a.observations.iter().filter(|o| o["subject"]["reference"] == patient.as_str()).collect();
    assert!(theirs.len() >= 2 && theirs.len() < a.observations.len(), "{} of the patient's", theirs.len());
    // A second patient, named together with the first in the first request.
    let other = a.observations.iter().filter_map(|o| o["subject"]["reference"].as_str()).find(|p| *p != patient);
    let other = other.unwrap_or_default().to_string();
    let both: Vec<&Value> = a
        .observations
        .iter()
        .filter(|o| o["subject"]["reference"] == patient.as_str() || o["subject"]["reference"] == other.as_str())
        .collect();
    assert!(both.len() > theirs.len() && both.len() < a.observations.len(), "{} of the two patients'", both.len());
    let justification = "unconscious on arrival at our ED; transferred from hospital-a last week";
    let ask_for = |patients: &[&str], purpose: &str| json!({"owner": HOSPITAL_A, "patients": patients, "justification": justification, "purpose": purpose});
    let ask = |purpose: &str| ask_for(&[&patient], purpose);

    // Only a hospital breaks the glass, only for emergency treatment, only with a reason.
    let r = c.api(RESEARCH)?.call::<Value>(Method::POST, "/break-glass", Some(&ask("ETREAT"))).await;
    assert!(reason(r).starts_with("wrong-role"));
    let r = c.api(HOSPITAL_B)?.call::<Value>(Method::POST, "/break-glass", Some(&ask("HRESCH"))).await;
    assert!(reason(r).starts_with("bad-purpose"));
    let mut silent = ask("ETREAT");
    silent["justification"] = json!(" ");
    let r = c.api(HOSPITAL_B)?.call::<Value>(Method::POST, "/break-glass", Some(&silent)).await;
    assert!(reason(r).starts_with("bad-scope"));
    // hospital-b's attributes do not open the dataset's index: the policy would refuse it.
    let home_b = c.ledger(c.index_of(HOSPITAL_B)?)?;
    wait_for(WAIT, "the dataset at hospital-b's node", || Ok(home_b.dataset(&a.dataset.0)?)).await?;
    assert!(dualchain_node::member::sharing::open_index(&*c.member(HOSPITAL_B)?, &home_b, &a.dataset.0).is_err());

    // The request is final on chain before anything flows; the chain shows neither the
    // patient nor the justification.
    let v: Value =
        c.api(HOSPITAL_B)?.call(Method::POST, "/break-glass", Some(&ask_for(&[&patient, &other], "ETREAT"))).await?;
    let request = hash(&v["request"]);
    // Seen from a third node's ledger (research-1's), which holds what every member sees.
    let third = c.ledger(c.index_of(RESEARCH)?)?;
    let record = wait_for(WAIT, "the request on another member's ledger", || Ok(third.break_glass(&request)?)).await?;
    let (_, entry) = third.tx(&record.tx)?.expect("the request's transaction");
    let public = format!("{}{}", serde_json::to_string(&record)?, String::from_utf8_lossy(&entry.tx));
    assert!(
        !public.contains(&patient) && !public.contains(&other) && !public.contains("unconscious"),
        "the chain shows the scope"
    );
    assert_eq!((record.requester.as_str(), record.purpose.as_str()), (HOSPITAL_B, "ETREAT"));

    // hospital-a's node answers at once with a grant over those patients' records only,
    // each one named as the clinician named its patient.
    let path = format!("/break-glass/{}?wait=60", hex::encode(request));
    let seen: Value = c.api(HOSPITAL_B)?.call(Method::GET, &path, None).await?;
    let grants = seen["grants"].as_array().cloned().unwrap_or_default();
    assert_eq!(grants.len(), 1, "{seen}");
    assert!(seen.get("scope").is_none(), "only the owner sees the opened scope");
    let grant = hash(&grants[0]);
    let got = c.fetch(HOSPITAL_B, &grant).await?;
    assert_eq!(got.len(), both.len(), "exactly the named patients' records");
    for (got, original) in got.iter().zip(&both) {
        let (deidentified, named) = dualchain_node::member::pseudonym::deidentify(original);
        assert_eq!(got["subject"], json!({"reference": named}), "each record names its patient");
        let mut got = got.clone();
        got.as_object_mut().map(|o| o.remove("subject"));
        assert_eq!(got, deidentified);
    }
    // The clinician's node holds the grant once it fetched under it.
    let g = home_b.grant(&grant)?.expect("the grant");
    assert_eq!((g.break_glass, g.expires_ms), (Some(request), record.until_ms));

    // The owner's review queue shows the request with what was asked and why; no one else sees it.
    let queue: Value = c.api(HOSPITAL_A)?.call(Method::GET, "/break-glass?pending=true", None).await?;
    let entry = &queue["requests"][0];
    assert_eq!(entry["scope"]["patients"], json!([patient, other]), "{queue}");
    assert_eq!(entry["scope"]["justification"], justification);
    let r = c.api(RESEARCH)?.call::<Value>(Method::GET, &path, None).await;
    assert!(reason(r).starts_with("not-yours"));
    let metrics = c.api(HOSPITAL_A)?.get_public("/metrics").await?;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(metrics.contains("dualchain_break_glass_requests_total 1"), "the owner is notified in its metrics");

    // Only the owner reviews; a justified use keeps its access.
    let review = |justified: bool, revoke: bool| json!({"justified": justified, "note": "checked with the ED's admission log", "revoke_credential": revoke});
    let review_path = format!("/break-glass/{}/review", hex::encode(request));
    let r = c.api(HOSPITAL_B)?.call::<Value>(Method::POST, &review_path, Some(&review(true, false))).await;
    assert!(reason(r).starts_with("not-yours"));
    c.api(HOSPITAL_A)?.call::<Value>(Method::POST, &review_path, Some(&review(true, false))).await?;
    let r = c.api(HOSPITAL_A)?.call::<Value>(Method::POST, &review_path, Some(&review(false, true))).await;
    assert!(reason(r).starts_with("reviewed"));
    assert_eq!(c.fetch(HOSPITAL_B, &grant).await?.len(), both.len(), "a justified use keeps its access");
    let pending: Value = c.api(HOSPITAL_A)?.call(Method::GET, "/break-glass?pending=true", None).await?;
    assert_eq!(pending["requests"], json!([]), "reviewed entries leave the queue");

    // The patient opts out of every use (the console's consent table shows it); emergency
    // treatment overrides consent, and is reviewed instead.
    let opt_out = dualchain_testkit::fhir::consent(&patient, "active", json!({"type": "deny"}));
    c.api(HOSPITAL_A)?.call::<Value>(Method::POST, "/fhir/Consent", Some(&opt_out)).await?;

    // An unjustified use: its grant ends, and the KGC withdraws the clinician's credential.
    let v: Value = c.api(HOSPITAL_B)?.call(Method::POST, "/break-glass", Some(&ask("ETREAT"))).await?;
    let second = hash(&v["request"]);
    let seen: Value =
        c.api(HOSPITAL_B)?.call(Method::GET, &format!("/break-glass/{}?wait=60", hex::encode(second)), None).await?;
    let second_grant = hash(&seen["grants"][0]);
    c.wait_receipt(HOSPITAL_B, &second_grant).await?;
    assert_eq!(c.fetch(HOSPITAL_B, &second_grant).await?.len(), theirs.len(), "consent does not bind break-glass");

    // hospital-a's privacy officer reviews it in the console. Only a hospital signs in.
    let r = c.api(RESEARCH)?.call::<Value>(Method::POST, "/console/signin-code", None).await;
    assert!(reason(r).starts_with("wrong-role"));
    let link: Value = c.api(HOSPITAL_A)?.call(Method::POST, "/console/signin-code", None).await?;
    let base = c.file.validators[c.index_of(HOSPITAL_A)?].api.trim_end_matches('/').to_string();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/console-check.py");
    let (signin, request_hex) = (link["url"].as_str().unwrap_or_default().to_string(), hex::encode(second));
    // The access log filtered by the second patient: only rows touching it.
    let (patient_arg, out_arg) = (other.clone(), out.clone());
    let ran = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["--base", &base, "--signin", &signin, "--patient", &patient_arg, "--review", &request_hex])
            .args(["--note", "no emergency on record at hospital-b's ED"])
            .arg("--out")
            .arg(&out_arg)
            .output()
    })
    .await??;
    let report = format!("{}{}", String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    println!("{report}\nthe console's screenshot: {}", out.join("console.png").display());
    assert!(ran.status.success(), "the console check failed:\n{report}");
    // The review is final at the owner's node; the clinician's node follows.
    let g = wait_for(WAIT, "the grant's end at the clinician's node", || {
        Ok(home_b.grant(&second_grant)?.filter(|g| matches!(g.status, GrantStatus::Revoked { .. })))
    })
    .await?;
    assert!(matches!(g.status, GrantStatus::Revoked { .. }), "{:?}", g.status);
    let r = c.fetch(HOSPITAL_B, &second_grant).await;
    assert!(reason(r).starts_with("grant-unusable"));
    let ledger = c.ledger(0)?;
    let withdrawn = wait_for(WAIT, "the KGC to withdraw the credential", || {
        Ok(ledger.member(HOSPITAL_B)?.and_then(|m| m.credential_revoked))
    })
    .await?;
    assert!(withdrawn.contains("reviewed unjustified by hospital-a"), "{withdrawn}");
    let r = c.api(HOSPITAL_B)?.call::<Value>(Method::POST, "/break-glass", Some(&ask("ETREAT"))).await;
    assert!(reason(r).contains("holds no active credential"));
    c.shutdown().await
}
