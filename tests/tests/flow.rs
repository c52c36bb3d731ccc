//! The sharing flow end to end in one consortium, and every refusal it must produce.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use dualchain_crypto::cbsre::DatasetId;
use dualchain_ledger::tx::{Outcome, TxKind};
use dualchain_node::agents::{Activity, FetchRequest};
use dualchain_node::flow::{Consortium, CPCS, HOSPITAL_A, HOSPITAL_B, KGC, RESEARCH};
use dualchain_prover::groth16::Prover;
use dualchain_prover::supply::SupplyCircuit;
use dualchain_prover::verify::proof_to_bytes;
use dualchain_storage::ledger::Chain;
use rand::SeedableRng;

const WAIT: Duration = Duration::from_secs(120);

fn rejected(o: &Outcome) -> String {
    match o {
        Outcome::Rejected { reason } => reason.clone(),
        Outcome::Accepted => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharing_flow_end_to_end_with_every_refusal() -> Result<()> {
    let mut c = common::consortium("flow", 24, 11).await?;
    c.register_members().await?;
    c.issue_keys().await?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0], &|_, _| {}).await?;
    let hr = a.zk_records.iter().filter(|r| r.code == 88674).count();
    ensure!(hr == 8, "24 observations rotate 3 vitals: {hr} heart rates");

    // Demand, supply proof by the owner's node, CP-ABE index, policy proof, grant.
    let requirement = Consortium::heart_rate_requirement(4)?;
    let (demand, f) = c.demand(RESEARCH, &a.dataset, requirement).await?;
    ensure!(f.outcome.is_accepted(), "{:?}", f.outcome);
    c.wait_demand(RESEARCH, &demand, WAIT).await?;
    let pointer = c.open_index(RESEARCH, &a.dataset)?;
    assert_eq!(pointer.h1, a.h1);
    assert_eq!(pointer.cpc, CPCS[0]);
    let (grant, f, _) = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(f.outcome.is_accepted(), "{:?}", f.outcome);

    // Re-key by the owner's node, batch re-encryption and receipt by the CPC's node.
    let g = c.wait_receipt(RESEARCH, &grant, WAIT).await?;
    assert_eq!(g.receipts, 1);
    let decrypted = c.fetch_and_decrypt(RESEARCH, &grant, &pointer).await?;
    assert_eq!(decrypted, a.plaintexts, "the decrypted records are the uploaded ones");

    // Audit: who accessed what, when, under which grant, with an inclusion proof that
    // every validator's block confirms.
    c.ledgers_identical(WAIT).await?;
    let trail = c.validators[2].ledger.audit(&a.dataset.0)?;
    assert_eq!(trail.len(), 1);
    let (rec, proof) = &trail[0];
    assert_eq!((rec.requester.as_str(), rec.owner.as_str(), rec.cpc.as_str()), (RESEARCH, HOSPITAL_A, CPCS[0]));
    assert_eq!(rec.grant, grant);
    assert_eq!(rec.records, 24);
    let block_hash = proof.verify()?;
    for v in &c.validators {
        assert_eq!(v.ledger.block(Chain::Access, proof.height)?.unwrap().hash, block_hash);
    }
    let mut forged = proof.clone();
    forged.outcome = Outcome::Rejected { reason: "x".into() };
    assert!(forged.verify().map_or(true, |h| h != block_hash), "a changed outcome does not prove into the block");

    // Unauthorised requester: the index stays closed, a policy proof over self-made
    // credentials is denied on chain, it gets no grant and the CPC serves it nothing.
    assert!(c.open_index(HOSPITAL_B, &a.dataset).is_err());
    let (demand_b, _) = c.demand(HOSPITAL_B, &a.dataset, requirement).await?;
    c.wait_demand(HOSPITAL_B, &demand_b, WAIT).await?;
    let (request_b, f) = c.request_access_forged(HOSPITAL_B, &demand_b).await?;
    assert!(rejected(&f.outcome).contains("access denied"), "{:?}", f.outcome);
    let ledger = &c.validators[1].ledger;
    assert!(ledger.grant(&request_b)?.is_none());
    assert!(ledger.denial(&request_b)?.unwrap().reason.contains("policy proof"));
    let outsider = c.member(HOSPITAL_B)?.clone();
    let cpc1 = c.cpcs[CPCS[0]].clone();
    for id in [request_b, grant] {
        let err = cpc1.fetch(&FetchRequest::sign(&outsider, id, a.h1)).unwrap_err().to_string();
        assert!(err.contains("unknown grant") || err.contains("not hospital-b's"), "{err}");
    }
    // The re-encrypted records do not open with its key either.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let owner_key = c.member(HOSPITAL_A)?.cert.fields.signing_key;
    let re = cpc1.store.results(&grant, &owner_key, now_s())?;
    assert!(re[0].decrypt(&outsider.dsk, &owner_key).is_err());

    // A supply proof for a dataset that misses the demand: the owner's node cannot prove
    // it; a proof made for an easier requirement is refused by the zk contract.
    let impossible = Consortium::heart_rate_requirement(20)?;
    let (demand_x, _) = c.demand(RESEARCH, &a.dataset, impossible).await?;
    dualchain_node::flow::wait_for(WAIT, "the owner's node to give up", || {
        Ok(c.log
            .entries()
            .into_iter()
            .find(|(_, e)| matches!(e, Activity::SupplyImpossible { demand, .. } if *demand == demand_x)))
    })
    .await?;
    let circuit = SupplyCircuit::new(c.supply_shape, &a.zk_records, a.salt, requirement)?;
    let (proof, _) = Prover::default().prove(&c.supply_pks[&c.supply_shape], circuit, &mut rng)?;
    let f = c
        .client(HOSPITAL_A)?
        .submit(TxKind::SupplyProof { demand: demand_x, proof: proof_to_bytes(&proof).to_vec() })
        .await?;
    assert!(rejected(&f.outcome).contains("supply proof refused"), "{:?}", f.outcome);
    assert!(c.validators[0].ledger.demand(&demand_x)?.unwrap().supplied_by.is_none());
    // Nor can a requester ask for access on the unproven demand.
    let (_, f, _) = c.request_access(RESEARCH, &demand_x, 60).await?;
    assert!(rejected(&f.outcome).contains("not proven supply"), "{:?}", f.outcome);

    // An expired grant: the CPC refuses it.
    let (short, f, _) = c.request_access(RESEARCH, &demand, 1).await?;
    assert!(f.outcome.is_accepted(), "{:?}", f.outcome);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = c.fetch_and_decrypt(RESEARCH, &short, &pointer).await.unwrap_err().to_string();
    assert!(err.contains("grant expired"), "{err}");

    // A revoked grant: the CPC refuses it and drops it.
    c.client(HOSPITAL_A)?.submit_accepted(TxKind::RevokeGrant { grant, reason: "study closed".into() }).await?;
    let err = c.fetch_and_decrypt(RESEARCH, &grant, &pointer).await.unwrap_err().to_string();
    assert!(err.contains("grant revoked"), "{err}");
    dualchain_node::flow::wait_for(WAIT, "the CPC to drop the grant", || {
        Ok(cpc1.store.grant(&grant)?.filter(|g| g.revoked))
    })
    .await?;
    let err = cpc1.store.results(&grant, &owner_key, now_s()).unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");

    // A revoked credential: a proof against the root from before the revocation is
    // denied, and the requester has no path in the new tree.
    let ledger = c.validators[1].ledger.clone();
    let old_root = ledger.credential_root()?.unwrap();
    let old_path = ledger.credential_path(RESEARCH)?.unwrap();
    c.client(KGC)?
        .submit_accepted(TxKind::RevokeCredential { member: RESEARCH.into(), reason: "left the study".into() })
        .await?;
    c.ledgers_identical(WAIT).await?;
    assert_ne!(ledger.credential_root()?.unwrap(), old_root);
    assert!(ledger.credential_path(RESEARCH)?.is_none());
    let (_, f, _) = c.request_access_against(RESEARCH, &demand, 60, old_root, old_path).await?;
    assert!(rejected(&f.outcome).contains("predates a revocation"), "{:?}", f.outcome);

    // A revoked member: nothing it signs counts; the CPC refuses its uploads.
    c.client(KGC)?
        .submit_accepted(TxKind::RevokeMember { member: HOSPITAL_B.into(), reason: "forgery".into() })
        .await?;
    let (_, f) = c.demand(HOSPITAL_B, &a.dataset, requirement).await?;
    assert!(rejected(&f.outcome).contains("revoked"), "{:?}", f.outcome);
    c.ledgers_identical(WAIT).await?;
    let err = c.upload(HOSPITAL_B, "late", CPCS[1], &|_, _| {}).await.err().map(|e| format!("{e:#}"));
    match err {
        Some(e) => assert!(e.contains("not an active data owner"), "{e}"),
        None => bail!("a revoked member uploaded a dataset"),
    }
    // Only the KGC revokes.
    let f =
        c.client(RESEARCH)?.submit(TxKind::RevokeMember { member: HOSPITAL_A.into(), reason: "spite".into() }).await?;
    assert!(rejected(&f.outcome).contains("needs role kgc"), "{:?}", f.outcome);

    // Everything above on identical ledgers.
    c.ledgers_identical(WAIT).await?;
    let unknown = DatasetId::derive(HOSPITAL_A, "nothing");
    assert!(c.validators[3].ledger.audit(&unknown.0)?.is_empty());
    c.shutdown().await
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
