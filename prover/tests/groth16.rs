//! The proving pipeline end to end on the real circuits: proofs verify with bellperson's
//! verifier, equal bellperson's own proofs for the same randomness, and every kind of
//! wrong statement, witness, proof or encoding is rejected.

mod common;

use bellperson::groth16::{create_proof, create_random_proof, Proof};
use blstrs::{Bls12, Scalar as Fr};
use common::*;
use dualchain_prover::groth16::Prover;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_prover::verify::{proof_from_bytes, proof_to_bytes, verify, BatchVerifier, VerifyError, PROOF_LEN};
use dualchain_prover::ProverError;
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve, Group};

#[test]
fn policy_proofs_verify_match_bellperson_and_reject_wrong_statements() {
    let pk = proving_key(Shape::Policy);
    let prover = Prover::default();
    let key = [7u8; 32];
    let (circuit, tree) = policy_circuit(credential("cardiology", 4, key), [42; 32]);
    let st = circuit.statement();
    assert_eq!(st.credential_root, tree.root());
    let inputs = st.public_inputs();

    // Our pipeline with fixed randomisers equals bellperson's prover with the same ones.
    let (r, s) = (Fr::from(11u64), Fr::from(13u64));
    let w = Prover::synthesize(&pk, circuit.clone()).unwrap();
    let (ours, timings) = prover.prove_with(&pk, w, r, s).unwrap();
    let theirs: Proof<Bls12> = create_proof(circuit.clone(), &pk.params, r, s).unwrap();
    assert_eq!(ours.a, theirs.a);
    assert_eq!(ours.b, theirs.b);
    assert_eq!(ours.c, theirs.c);
    assert!(timings.total >= timings.msm_h);
    verify(&pk.pvk, pk.vk(), &ours, &inputs).unwrap();
    // bellperson's randomised proofs verify with the same statement too.
    let random: Proof<Bls12> = create_random_proof(circuit.clone(), &pk.params, &mut rng(3)).unwrap();
    verify(&pk.pvk, pk.vk(), &random, &inputs).unwrap();

    // A wrong root, policy hash or binding (another request, another key) is rejected.
    for i in 0..3 {
        let mut wrong = inputs.clone();
        wrong[i] += Fr::ONE;
        assert_eq!(verify(&pk.pvk, pk.vk(), &ours, &wrong), Err(VerifyError::Invalid), "input {i}");
    }
    let (other_req, _) = policy_circuit(credential("cardiology", 4, key), [43; 32]);
    assert_eq!(verify(&pk.pvk, pk.vk(), &ours, &other_req.statement().public_inputs()), Err(VerifyError::Invalid));
    // The same proof presented for another requester key (its binding) fails too.
    let (other_key, _) = policy_circuit(credential("cardiology", 4, [8; 32]), [42; 32]);
    let other_binding = other_key.statement().binding;
    assert_ne!(other_binding, st.binding);
    let claimed = [st.credential_root, st.policy_hash, other_binding];
    assert_eq!(verify(&pk.pvk, pk.vk(), &ours, &claimed), Err(VerifyError::Invalid));
    // Public inputs of the wrong count.
    assert_eq!(
        verify(&pk.pvk, pk.vk(), &ours, &inputs[..2]),
        Err(VerifyError::PublicInputCount { expected: 3, found: 2 })
    );

    // Attributes that miss the policy: our prover refuses, naming the constraint...
    let (missing, _) = policy_circuit(credential("dermatology", 4, key), [42; 32]);
    assert!(matches!(prover.prove(&pk, missing.clone(), &mut rng(4)), Err(ProverError::Unsatisfied { .. })));
    // ...and a proof forced out of bellperson for it does not verify.
    let forced: Proof<Bls12> = create_random_proof(missing.clone(), &pk.params, &mut rng(5)).unwrap();
    assert!(verify(&pk.pvk, pk.vk(), &forced, &missing.statement().public_inputs()).is_err());
    // A credential not in the tree: a proof against the real root fails.
    let (outsider, _) = policy_circuit(credential("cardiology", 4, key), [42; 32]);
    let mut outsider = outsider;
    outsider.credential.salt = Fr::from(1000u64);
    let (p, _) = prover.prove(&pk, outsider.clone(), &mut rng(6)).unwrap();
    verify(&pk.pvk, pk.vk(), &p, &outsider.statement().public_inputs()).unwrap();
    assert_eq!(verify(&pk.pvk, pk.vk(), &p, &inputs), Err(VerifyError::Invalid));

    // Tampered proofs.
    let mut t = ours.clone();
    t.a = (t.a.to_curve() + blstrs::G1Projective::generator()).to_affine();
    assert_eq!(verify(&pk.pvk, pk.vk(), &t, &inputs), Err(VerifyError::Invalid));
    let mut t = ours.clone();
    t.c = ours.a;
    assert_eq!(verify(&pk.pvk, pk.vk(), &t, &inputs), Err(VerifyError::Invalid));

    // Encoding: round trip, and malformed bytes refused.
    let bytes = proof_to_bytes(&ours);
    let back = proof_from_bytes(&bytes).unwrap();
    assert_eq!(proof_to_bytes(&back), bytes);
    assert!(proof_from_bytes(&bytes[..PROOF_LEN - 1]).is_err());
    let mut flipped = bytes;
    flipped[10] ^= 0x04;
    match proof_from_bytes(&flipped) {
        Err(ProverError::Encoding(_)) => {}
        Ok(p) => assert!(verify(&pk.pvk, pk.vk(), &p, &inputs).is_err()),
        Err(e) => panic!("{e}"),
    }
    let mut identity = bytes;
    identity[..48].fill(0);
    identity[0] = 0xc0;
    assert!(proof_from_bytes(&identity).is_err());
}

#[test]
fn batch_verification_accepts_good_batches_and_names_bad_proofs() {
    let pk = proving_key(Shape::Policy);
    let prover = Prover::default();
    let circuits: Vec<_> =
        (0..6u8).map(|i| policy_circuit(credential("icu", 3 + i as u64, [i; 32]), [i; 32]).0).collect();
    let inputs: Vec<Vec<Fr>> = circuits.iter().map(|c| c.statement().public_inputs()).collect();
    let proofs: Vec<Proof<Bls12>> =
        prover.prove_batch(&pk, circuits, &mut rng(7)).unwrap().into_iter().map(|(p, _)| p).collect();
    let bv = BatchVerifier::new(pk.vk());
    bv.verify(&proofs, &inputs, &mut rng(8)).unwrap();
    bv.verify(&proofs[..1], &inputs[..1], &mut rng(8)).unwrap();

    // One proof checked against another statement, one tampered: both named.
    let mut bad_inputs = inputs.clone();
    bad_inputs[1] = inputs[2].clone();
    let mut bad_proofs = proofs.clone();
    bad_proofs[4].c = (bad_proofs[4].c.to_curve().double()).to_affine();
    assert_eq!(bv.verify(&bad_proofs, &bad_inputs, &mut rng(9)), Err(VerifyError::BadProofs(vec![1, 4])));
    // Swapped proofs between statements both fail.
    let mut swapped = proofs.clone();
    swapped.swap(0, 5);
    assert_eq!(bv.verify(&swapped, &inputs, &mut rng(10)), Err(VerifyError::BadProofs(vec![0, 5])));
    let short = vec![inputs[0][..2].to_vec()];
    assert!(matches!(bv.verify(&proofs[..1], &short, &mut rng(1)), Err(VerifyError::PublicInputCount { .. })));

    // The pipelined batch stops at a statement whose witness fails (clearance 1 < 3) and
    // returns that error rather than proofs.
    let mut mixed: Vec<_> = (0..4u8).map(|i| policy_circuit(credential("icu", 4, [i; 32]), [i; 32]).0).collect();
    mixed[2] = policy_circuit(credential("icu", 1, [9; 32]), [9; 32]).0;
    assert!(matches!(prover.prove_batch(&pk, mixed, &mut rng(11)), Err(ProverError::Unsatisfied { .. })));
}

#[test]
fn supply_proofs_verify_and_reject_short_datasets_and_wrong_commitments() {
    let pk = proving_key(Shape::Supply(SupplyShape::Records64));
    let prover = Prover::default();
    let c = supply_circuit(50, 50);
    let st = c.statement();
    let (p, _) = prover.prove(&pk, c.clone(), &mut rng(11)).unwrap();
    verify(&pk.pvk, pk.vk(), &p, &st.public_inputs()).unwrap();
    let theirs: Proof<Bls12> = create_proof(c.clone(), &pk.params, Fr::from(2u64), Fr::from(3u64)).unwrap();
    let (ours, _) =
        prover.prove_with(&pk, Prover::synthesize(&pk, c.clone()).unwrap(), Fr::from(2u64), Fr::from(3u64)).unwrap();
    assert_eq!((ours.a, ours.b, ours.c), (theirs.a, theirs.b, theirs.c));

    // Under the threshold: refused by our prover; bellperson's forced proof fails.
    let short = supply_circuit(50, 51);
    assert!(matches!(prover.prove(&pk, short.clone(), &mut rng(12)), Err(ProverError::Unsatisfied { .. })));
    let forced: Proof<Bls12> = create_random_proof(short.clone(), &pk.params, &mut rng(13)).unwrap();
    assert!(verify(&pk.pvk, pk.vk(), &forced, &short.statement().public_inputs()).is_err());
    // Outside the bounds: a requirement whose value window excludes every record.
    let mut req = requirement(1);
    req.value_max = Some(10_000);
    let outside =
        dualchain_prover::supply::SupplyCircuit::new(SupplyShape::Records64, &records(50), Fr::from(5u64), req)
            .unwrap();
    assert!(matches!(prover.prove(&pk, outside, &mut rng(14)), Err(ProverError::Unsatisfied { .. })));
    // A wrong commitment or requirement hash.
    let mut wrong = st.public_inputs();
    wrong[0] += Fr::ONE;
    assert_eq!(verify(&pk.pvk, pk.vk(), &p, &wrong), Err(VerifyError::Invalid));
    let other_req = supply_circuit(50, 49).statement();
    assert_eq!(verify(&pk.pvk, pk.vk(), &p, &other_req.public_inputs()), Err(VerifyError::Invalid));
    // A policy proof's statement against the supply key: wrong input count.
    assert!(matches!(verify(&pk.pvk, pk.vk(), &p, &[Fr::ONE; 3]), Err(VerifyError::PublicInputCount { .. })));
}

/// A device-like backend that hands G2 to the CPU: its own G2 MSM is never called, and the
/// proof is the same as the CPU prover's for the same randomness.
#[test]
fn a_backend_may_hand_the_g2_msm_to_the_cpu() {
    use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective};
    use dualchain_prover::backend::{CpuBackend, MsmBackend};
    struct G1Only;
    impl MsmBackend for G1Only {
        fn name(&self) -> &'static str {
            "g1-only"
        }
        fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
            CpuBackend.msm_g1(bases, scalars)
        }
        fn msm_g2(&self, _: &[G2Affine], _: &[Fr]) -> G2Projective {
            panic!("the G2 MSM was not handed to the CPU")
        }
        fn g2_on_cpu(&self, _points: usize) -> bool {
            true
        }
    }
    let pk = proving_key(Shape::Policy);
    let (circuit, _) = policy_circuit(credential("cardiology", 4, [7; 32]), [42; 32]);
    let (r, s) = (Fr::from(5u64), Fr::from(6u64));
    let w = Prover::synthesize(&pk, circuit.clone()).unwrap();
    let (ours, _) = Prover { msm: &G1Only, ntt: &CpuBackend }.prove_with(&pk, w, r, s).unwrap();
    let w = Prover::synthesize(&pk, circuit).unwrap();
    let (cpu, _) = Prover::default().prove_with(&pk, w, r, s).unwrap();
    assert_eq!((ours.a, ours.b, ours.c), (cpu.a, cpu.b, cpu.c));
}

/// A device-like NTT backend that runs the H MSM on h itself: the prover takes its sum,
/// never calls the MSM backend on the H query, and the proof is the same as the CPU
/// prover's for the same randomness. A wrong fused sum makes a proof that does not verify.
#[test]
fn a_backend_may_run_the_h_msm_where_the_quotient_is() {
    use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective};
    use dualchain_prover::backend::{CpuBackend, MsmBackend, NttBackend, QuotientMsm};
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Fused {
        calls: AtomicUsize,
        skew: bool,
    }
    impl NttBackend for Fused {
        fn name(&self) -> &'static str {
            "fused"
        }
        fn ntt(&self, values: &mut [Fr], omega: Fr) {
            CpuBackend.ntt(values, omega)
        }
        fn quotient_h_msm(&self, a: &[Fr], b: &[Fr], c: &[Fr], m: usize, h_bases: &[G1Affine]) -> Option<QuotientMsm> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let h = CpuBackend.quotient(a.to_vec(), b.to_vec(), c.to_vec(), m);
            let mut h_acc = CpuBackend.msm_g1(h_bases, &h);
            if self.skew {
                h_acc += G1Projective::generator();
            }
            Some(QuotientMsm { h_acc, ntt: Default::default(), msm: Default::default() })
        }
    }
    /// Refuses the H query: the fused path must have taken it.
    struct NoHQuery(usize);
    impl MsmBackend for NoHQuery {
        fn name(&self) -> &'static str {
            "no-h"
        }
        fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
            assert_ne!(bases.len(), self.0, "the H MSM ran again outside the NTT backend");
            CpuBackend.msm_g1(bases, scalars)
        }
        fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
            CpuBackend.msm_g2(bases, scalars)
        }
    }
    let pk = proving_key(Shape::Policy);
    let h_len = pk.params.h.len();
    assert!(
        ![pk.params.l.len(), pk.params.b_g1.len(), pk.params.a.len()].contains(&h_len),
        "the H query must be told apart by its length"
    );
    let (circuit, _) = policy_circuit(credential("cardiology", 4, [7; 32]), [42; 32]);
    let inputs = circuit.statement().public_inputs();
    let (r, s) = (Fr::from(5u64), Fr::from(6u64));
    let fused = Fused { calls: AtomicUsize::new(0), skew: false };
    let w = Prover::synthesize(&pk, circuit.clone()).unwrap();
    let (ours, _) = Prover { msm: &NoHQuery(h_len), ntt: &fused }.prove_with(&pk, w, r, s).unwrap();
    assert_eq!(fused.calls.load(Ordering::Relaxed), 1);
    let w = Prover::synthesize(&pk, circuit.clone()).unwrap();
    let (cpu, _) = Prover::default().prove_with(&pk, w, r, s).unwrap();
    assert_eq!((ours.a, ours.b, ours.c), (cpu.a, cpu.b, cpu.c));

    let skewed = Fused { calls: AtomicUsize::new(0), skew: true };
    let w = Prover::synthesize(&pk, circuit).unwrap();
    let (bad, _) = Prover { msm: &NoHQuery(h_len), ntt: &skewed }.prove_with(&pk, w, r, s).unwrap();
    assert!(verify(&pk.pvk, pk.vk(), &ours, &inputs).is_ok());
    assert!(verify(&pk.pvk, pk.vk(), &bad, &inputs).is_err());
}
