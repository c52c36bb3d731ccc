//! The sharing flow end to end in one consortium of `dualchain node` services, driven
//! through the members' own nodes' APIs, and every refusal it must produce.

mod common;

use anyhow::{bail, Result};
use dualchain_crypto::cbsre::DatasetId;
use dualchain_ledger::policy::AccessPolicy;
use dualchain_ledger::reason::{Denial, ProofFault, Reason};
use dualchain_ledger::state::AccessEvent;
use dualchain_ledger::tx::{FrBytes, Outcome, TxKind};
use dualchain_node::agents::{Activity, FetchRequest};
use dualchain_node::member::pseudonym::Pseudonyms;
use dualchain_prover::groth16::Prover;
use dualchain_prover::supply::SupplyCircuit;
use dualchain_prover::verify::proof_to_bytes;
use dualchain_storage::ledger::Chain;
use dualchain_testkit::consortium::{refusal, wait_for, CPCS, HOSPITAL_A, HOSPITAL_B, KGC, RESEARCH, WAIT};
use rand::SeedableRng;
use reqwest::Method;
use serde_json::{json, Value};

fn rejected(o: &Outcome) -> String {
    match o {
        Outcome::Rejected { reason } => reason.to_string(),
        Outcome::Accepted | Outcome::ValidatorSetChange { .. } => String::new(),
    }
}

/// The API's machine-readable reason for refusing `r`, or a failure if it was not refused.
fn reason<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("the call was not refused"),
        Err(e) => {
            refusal(&e).map_or_else(|| format!("not a refusal: {e:#}"), |x| format!("{} {}", x.reason, x.message))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharing_flow_end_to_end_with_every_refusal() -> Result<()> {
    let c = common::consortium("flow", 24, 11).await?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    let hr = a.zk_records.iter().filter(|r| r.code == 88674).count();
    assert_eq!(hr, 8, "24 observations rotate 3 vitals");

    // Demand, supply proof by the owner's node, CP-ABE index, policy proof, grant.
    let demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let ledger2 = c.ledger(2)?;
    let research = c.member(RESEARCH)?;
    let pointer = dualchain_node::member::sharing::open_index(&research, &ledger2, &a.dataset.0)?;
    assert_eq!((pointer.h1, pointer.cpc.as_str()), (a.h1, CPCS[0]));
    assert_eq!((pointer.name.as_str(), pointer.records), ("icu", 24));
    // What every member and validator sees of the registration: neither where the records
    // are (the CPC, H1) nor how many (beyond the circuit's size class) nor the name, and an
    // id nobody derives from the owner and a guessed name.
    let record = ledger2.dataset(&a.dataset.0)?.unwrap();
    let (_, entry) = ledger2.tx(&record.tx)?.unwrap();
    let public = format!("{}{}", serde_json::to_string(&record)?, String::from_utf8_lossy(&entry.tx));
    for secret in [hex::encode(a.h1), CPCS[0].to_string(), "\"records\"".into(), "\"name\"".into()] {
        assert!(!public.contains(&secret), "the chain shows {secret}");
    }
    assert_eq!(record.capacity, 64);
    assert_ne!(a.dataset, DatasetId::derive(HOSPITAL_A, "icu"));
    let outsider_index = dualchain_node::member::sharing::open_index(&*c.member(HOSPITAL_B)?, &ledger2, &a.dataset.0);
    assert!(outsider_index.is_err(), "hospital-b's attributes do not open the index");
    // Through the API: research-1's node shows it the opened index, hospital-b's the ledger's view.
    let path = format!("/datasets/{}", a.dataset.to_hex());
    let seen: Value = c.api(RESEARCH)?.call(Method::GET, &path, None).await?;
    assert_eq!((seen["index"]["name"].as_str(), seen["index"]["records"].as_u64()), (Some("icu"), Some(24)));
    let outside: Value = c.api(HOSPITAL_B)?.call(Method::GET, &path, None).await?;
    assert!(outside["index"].is_null() && outside["capacity"] == 64, "{outside}");
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    let grant = access.request;

    // One policy, two enforcements: the registration carries the statement (the node's
    // `owner.policy`, or an upload's `?policy=`), and both the index's CP-ABE policy and
    // the proof's policy hash are compiled from it.
    let forms = AccessPolicy::parse(&record.policy)?.compile()?;
    assert_eq!(record.policy, dualchain_node::config::DEFAULT_POLICY);
    assert_eq!(record.zk_policy_hash, FrBytes::from_fr(&forms.dnf.hash()));
    assert_eq!(pointer.zk_policy, forms.dnf);
    let oncology =
        c.upload_with(HOSPITAL_A, "oncology", CPCS[0], "&policy=role%3Aresearch+and+dept%3Aoncology").await?;
    c.ledgers_identical(WAIT).await?;
    // Each dataset has its own delegating key: a record opens with its dataset's key only,
    // not with another dataset's, nor with the member's (what a CPC and a grantee together
    // recover is one dataset's key).
    let kept = |id: &DatasetId| -> Result<_> {
        let owner = c.owner(HOSPITAL_A)?;
        let d = owner.datasets.lock().unwrap()[&id.0].clone();
        d.dsk.clone().ok_or_else(|| anyhow::anyhow!("no dataset key"))
    };
    let (icu_key, onc_key) = (kept(&a.dataset)?, kept(&oncology.dataset)?);
    let hospital = c.member(HOSPITAL_A)?;
    let stored = c.cpc(CPCS[0])?.store.record(&a.dataset, 0)?;
    assert!(stored.owner_decrypt(&icu_key, &hospital.signer.public()).is_ok());
    for other in [&onc_key, &hospital.dsk] {
        assert!(stored.owner_decrypt(other, &hospital.signer.public()).is_err(), "another key opens the record");
    }
    let onc = ledger2.dataset(&oncology.dataset.0)?.unwrap();
    assert_eq!(onc.policy, "role:research and dept:oncology");
    let closed = dualchain_node::member::sharing::open_index(&research, &ledger2, &oncology.dataset.0);
    assert!(closed.is_err(), "research-1 (cardiology) opens an oncology-only index");
    let r = reason(c.upload_with(HOSPITAL_A, "salaries", CPCS[0], "&policy=salary%3Ahigh").await);
    assert!(r.contains("bad-policy") && r.contains("not a credential key"), "{r}");

    // Re-key by the owner's node, batch re-encryption and receipt by the CPC's node.
    let g = c.wait_receipt(RESEARCH, &grant).await?;
    assert_eq!(g.receipts, 1);
    let fetched = c.fetch(RESEARCH, &grant).await?;
    // Minimum necessary: the 8 heart rates the demand asks for, not the 24 records.
    let want = a.matching(&c.grant_requirement(&grant)?);
    assert_eq!(want.len(), 8);
    // The uploaded ones that satisfy the demand, without their patient references, ids
    // and encounters, each patient under a pseudonym of this grant.
    let pseudonyms = a.check_delivery(&c.grant_requirement(&grant)?, &fetched, &grant)?;
    for leak in want.iter().flat_map(|o| [o["subject"]["reference"].as_str(), o["id"].as_str()]).flatten() {
        assert!(!serde_json::to_string(&fetched)?.contains(leak), "the delivery names {leak}");
    }
    // Only hospital-a maps a pseudonym back to its patient.
    let kept = c.owner(HOSPITAL_A)?.datasets.lock().unwrap()[&a.dataset.0].clone();
    let mut p0 = [0u8; 16];
    hex::decode_to_slice(&pseudonyms[0], &mut p0)?;
    let refs = kept.patients.iter().map(String::as_str);
    let patient = Pseudonyms::reidentify(&kept.pseudonym_key, &grant, &p0, refs);
    assert_eq!(patient, want[0]["subject"]["reference"].as_str());

    // Audit: who accessed what, when, under which grant, with an inclusion proof that
    // every node's block confirms.
    c.ledgers_identical(WAIT).await?;
    // One receipt (re-encrypted), then one record per fetch, each before the CPC served it.
    let trail = c.ledger(2)?.audit(&a.dataset.0)?;
    let events: Vec<AccessEvent> = trail.iter().map(|(r, _)| r.event).collect();
    assert_eq!(events[0], AccessEvent::Reencrypted, "{events:?}");
    assert!(events.len() >= 2 && events[1..].iter().all(|e| *e == AccessEvent::Fetched), "{events:?}");
    // Only the grant's CPC records a fetch: the requester cannot write one for itself (nor
    // hide one by writing nothing: the CPC writes it before serving).
    let f = c
        .client(RESEARCH)?
        .submit(TxKind::Fetched { grant, records: 8, results_digest: trail[0].0.results_digest })
        .await?;
    assert!(rejected(&f.outcome).contains("only the grant's CPC"), "{:?}", f.outcome);
    let (rec, proof) = &trail[0];
    assert_eq!((rec.requester.as_str(), rec.owner.as_str(), rec.cpc.as_str()), (RESEARCH, HOSPITAL_A, CPCS[0]));
    assert_eq!((rec.grant, rec.records), (grant, 8));
    let block_hash = proof.verify()?;
    for l in c.ledgers() {
        assert_eq!(l.block(Chain::Access, proof.height)?.unwrap().hash, block_hash);
    }
    let mut forged = proof.clone();
    forged.outcome = Outcome::Rejected { reason: Reason::Duplicate };
    assert!(forged.verify().map_or(true, |h| h != block_hash), "a changed outcome does not prove into the block");
    let api_trail = c.audit(HOSPITAL_B, &a.dataset).await?;
    assert_eq!(api_trail["records"][0]["proof_verified"], true);

    // Unauthorised requester: its node cannot open the index, a policy proof over
    // self-made credentials is denied on chain, it gets no grant and the CPC serves it
    // nothing.
    let demand_b = c.demand(HOSPITAL_B, &a.dataset, 4).await?;
    c.wait_supplied(HOSPITAL_B, &demand_b).await?;
    assert!(reason(c.request_access(HOSPITAL_B, &demand_b, 3600).await).starts_with("index-closed"));
    let (request_b, f) = c.request_access_forged(HOSPITAL_B, &demand_b).await?;
    assert!(rejected(&f.outcome).contains("access denied"), "{:?}", f.outcome);
    // Final on hospital-b's own node (the others apply it moments later).
    let ledger = c.node_of(HOSPITAL_B)?.ledger.clone();
    assert!(ledger.grant(&request_b)?.is_none());
    let denial = ledger.denial(&request_b)?.unwrap().denial;
    assert_eq!(denial, Denial::PolicyProof { proof: ProofFault::Invalid }, "{denial}");
    assert!(reason(c.fetch(HOSPITAL_B, &grant).await).starts_with("not-yours"));
    let outsider = c.member(HOSPITAL_B)?;
    let cpc1 = c.cpc(CPCS[0])?;
    for id in [request_b, grant] {
        let err = cpc1.fetch(&FetchRequest::sign(&outsider, id, a.h1)).unwrap_err().to_string();
        assert!(err.contains("unknown grant") || err.contains("not hospital-b's"), "{err}");
    }
    // The re-encrypted records do not open with its key either.
    let owner_key = c.member(HOSPITAL_A)?.cert.fields.signing_key;
    let re = cpc1.store.results(&grant, &owner_key, now_s())?;
    assert!(re[0].decrypt(&outsider.dsk, &owner_key).is_err());

    // A supply proof for a dataset that misses the demand: the owner's node cannot prove
    // it; a proof made for an easier requirement is refused by the zk contract.
    let demand_x = c.demand(RESEARCH, &a.dataset, 20).await?;
    let owner_log = c.log(HOSPITAL_A)?;
    wait_for(WAIT, "the owner's node to give up", || {
        Ok(owner_log
            .entries()
            .into_iter()
            .find(|(_, e)| matches!(e, Activity::SupplyImpossible { demand, .. } if *demand == demand_x)))
    })
    .await?;
    let easier = c.ledger(0)?.demand(&demand)?.unwrap().requirement;
    let circuit = SupplyCircuit::new(c.supply_shape, &a.zk_records, a.salt, easier)?;
    let pk = c.node(0)?.supply_pks[&c.supply_shape].clone();
    let (proof, _) = Prover::default().prove(&pk, circuit, &mut rand_chacha::ChaCha20Rng::seed_from_u64(3))?;
    let kind = TxKind::SupplyProof { demand: demand_x, proof: proof_to_bytes(&proof).to_vec() };
    let f = c.client(HOSPITAL_A)?.submit(kind).await?;
    assert!(rejected(&f.outcome).contains("supply proof refused"), "{:?}", f.outcome);
    assert!(c.node_of(HOSPITAL_A)?.ledger.demand(&demand_x)?.unwrap().supplied_by.is_none());
    // Nor can a requester ask for access on the unproven demand.
    let r = reason(c.request_access(RESEARCH, &demand_x, 60).await);
    assert!(r.contains("not proven supply"), "{r}");

    // An expired grant: the CPC refuses it.
    let short = c.request_access(RESEARCH, &demand, 3).await?;
    assert!(short.granted, "{:?}", short.denial);
    // The same records under another grant: the same patients, none of the pseudonyms.
    c.wait_receipt(RESEARCH, &short.request).await?;
    let again = c.fetch(RESEARCH, &short.request).await?;
    let other = a.check_delivery(&c.grant_requirement(&short.request)?, &again, &short.request)?;
    assert!(other.iter().all(|p| !pseudonyms.contains(p)), "two grants share a pseudonym");
    let ends_ms = c.ledger(0)?.grant(&short.request)?.unwrap().expires_ms;
    tokio::time::sleep(std::time::Duration::from_millis(ends_ms.saturating_sub(now_s() * 1000) + 1500)).await;
    let r = reason(c.fetch(RESEARCH, &short.request).await);
    assert!(r.contains("expired"), "{r}");
    // Retention: the CPC's sweep (every minute; run now) deletes the expired grant's
    // re-encrypted records and token.
    let swept = cpc1.sweep()?;
    assert!(swept.grants >= 1 && swept.results >= 8, "{swept:?}");
    assert!(cpc1.store.swept(&short.request)?.is_some() && cpc1.store.grant(&short.request)?.is_none());

    // A revoked grant: the CPC refuses it and drops it.
    c.revoke_grant(HOSPITAL_A, &grant, "study closed").await?;
    let r = reason(c.fetch(RESEARCH, &grant).await);
    assert!(r.contains("revoked"), "{r}");
    // A revoked grant's records and token are deleted at once, not at the next sweep.
    wait_for(WAIT, "the CPC to sweep the grant", || cpc1.store.swept(&grant).map_err(Into::into)).await?;
    let err = cpc1.store.results(&grant, &owner_key, now_s()).unwrap_err().to_string();
    assert!(err.contains("retention"), "{err}");

    // A revoked credential: a proof against the root from before the revocation is
    // denied, and the requester has no path in the new tree.
    let ledger = c.ledger(1)?;
    let old_root = ledger.credential_root()?.unwrap();
    let old_path = ledger.credential_path(RESEARCH)?.unwrap();
    c.client(KGC)?
        .submit_accepted(TxKind::RevokeCredential { member: RESEARCH.into(), reason: "left the study".into() })
        .await?;
    c.ledgers_identical(WAIT).await?;
    assert_ne!(ledger.credential_root()?.unwrap(), old_root);
    assert!(ledger.credential_path(RESEARCH)?.is_none());
    let (_, f) = c.request_access_against(RESEARCH, &demand, 60, old_root, old_path).await?;
    assert!(rejected(&f.outcome).contains("predates a revocation"), "{:?}", f.outcome);

    // A revoked member: no one member revokes another, the KGC included; a quorum of
    // members does (a majority of genesis' members here). Then nothing it signs counts,
    // its calls are refused by every node, and the CPC refuses its uploads.
    let quorum = c.ledger(0)?.genesis().revocation_quorum;
    assert_eq!(quorum as usize, c.file.members.len() / 2 + 1);
    let spite = json!({"reason": "spite"});
    let v: Value = c.api(RESEARCH)?.call(Method::POST, "/members/hospital-a/revoke", Some(&spite)).await?;
    assert_eq!((v["revocation"]["revoked"].clone(), v["revocation"]["quorum"].clone()), (json!(false), json!(quorum)));
    assert!(c.ledger(0)?.member(HOSPITAL_A)?.unwrap().revoked.is_none(), "one member revoked another");
    let f =
        c.client(RESEARCH)?.submit(TxKind::RevokeMember { member: HOSPITAL_A.into(), reason: "spite".into() }).await?;
    assert!(rejected(&f.outcome).contains("research-1 already approved"), "{:?}", f.outcome);
    // hospital-b's FHIR client holds a token when its member is revoked.
    let key = dualchain_node::api::smart::ClientKey::generate("k1")?;
    let reg = json!({"client_id": "gateway", "scope": "system/Observation.read", "jwks": {"keys": [key.jwk()]}});
    c.api(HOSPITAL_B)?.call::<Value>(Method::POST, "/smart/clients", Some(&reg)).await?;
    let token = c.api(HOSPITAL_B)?.smart_token(&key, "gateway", "system/Observation.read").await?;
    let gateway = c.api(HOSPITAL_B)?.with_bearer(&token);
    assert_eq!(gateway.send(Method::GET, "/fhir/Observation", vec![], "").await?.status, 200);
    let approvers = c.revoke_member(HOSPITAL_B, KGC, "forgery").await?;
    assert_eq!(approvers.len(), quorum as usize, "revoked at the quorum, not before: {approvers:?}");
    c.ledgers_identical(WAIT).await?;
    let record = c.ledger(0)?.revocation(HOSPITAL_B)?.expect("the revocation's record");
    assert_eq!(record.approvals.iter().map(|a| a.by.clone()).collect::<Vec<_>>(), approvers);
    assert_eq!(c.ledger(0)?.member(HOSPITAL_B)?.unwrap().revoked.as_deref(), Some("forgery"));
    let r = gateway.send(Method::GET, "/fhir/Observation", vec![], "").await?;
    assert!(r.status == 403 && r.refusal().reason == "revoked", "a revoked member's token answered {}", r.status);
    assert!(reason(c.demand(HOSPITAL_B, &a.dataset, 4).await).starts_with("revoked"));
    let requirement = c.ledger(0)?.demand(&demand)?.unwrap().requirement;
    let f = c
        .client(HOSPITAL_B)?
        .submit(TxKind::Demand {
            demand: [7; 32],
            dataset: a.dataset.0,
            requirement,
            purpose: Default::default(),
            nullifier: None,
        })
        .await?;
    assert!(rejected(&f.outcome).contains("revoked"), "{:?}", f.outcome);
    match c.upload(HOSPITAL_B, "late", CPCS[1]).await {
        Ok(_) => bail!("a revoked member uploaded a dataset"),
        Err(e) => assert!(format!("{e:#}").contains("revoked"), "{e:#}"),
    }
    // At the CPC itself, a revoked owner's records are refused.
    let b_records: Vec<dualchain_crypto::cbsre::Signcrypted> = Vec::new();
    let err = c.cpc(CPCS[1])?.upload(HOSPITAL_B, &b_records).unwrap_err().to_string();
    assert!(err.contains("not an active data owner"), "{err}");

    // Erasure: hospital-a erases its ward dataset. Its CPC deletes the records and the
    // grants' results; hospital-a's node destroys the dataset's key, so a copy of a stored
    // record taken before (a backup) opens with no key hospital-a still holds.
    let backup = cpc1.store.record(&a.dataset, 0)?;
    let path = format!("/datasets/{}/erase", a.dataset.to_hex());
    let r = reason(c.api(RESEARCH)?.call::<Value>(Method::POST, &path, Some(&json!({"reason": "x"}))).await);
    assert!(r.starts_with("wrong-role"), "{r}");
    let body = json!({"reason": "the patients asked (GDPR art. 17)"});
    c.api(HOSPITAL_A)?.call::<Value>(Method::POST, &path, Some(&body)).await?;
    wait_for(WAIT, "the CPC to erase the dataset", || cpc1.store.erased(&a.dataset).map_err(Into::into)).await?;
    assert!(cpc1.store.manifest(&a.dataset)?.is_none() && cpc1.store.record(&a.dataset, 0).is_err());
    assert!(c.owner(HOSPITAL_A)?.datasets.lock().unwrap().get(&a.dataset.0).is_none(), "the owner keeps nothing");
    let hospital = c.member(HOSPITAL_A)?;
    assert!(backup.owner_decrypt(&hospital.dsk, &hospital.signer.public()).is_err());
    assert!(backup.owner_decrypt(&icu_key, &hospital.signer.public()).is_ok(), "only the destroyed key opened it");
    let r = reason(c.api(HOSPITAL_A)?.call::<Value>(Method::POST, &path, Some(&body)).await);
    assert!(r.starts_with("erased"), "{r}");
    let r = reason(c.demand(RESEARCH, &a.dataset, 4).await);
    assert!(r.contains("erased"), "{r}");
    let tombstone = c.ledger(0)?.dataset(&a.dataset.0)?.unwrap();
    assert!(tombstone.erased.is_some() && tombstone.abe_index.is_empty());

    // Everything above on identical ledgers.
    c.ledgers_identical(WAIT).await?;
    let unknown = DatasetId::derive(HOSPITAL_A, "nothing");
    assert!(c.ledger(3)?.audit(&unknown.0)?.is_empty());
    c.shutdown().await
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
