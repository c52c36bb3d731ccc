//! Deliberately wrong backends, standing in for a faulty GPU: no wrong verdict reaches a
//! ledger's batch verification, and no proof that does not verify leaves the node.

#[path = "../../prover/tests/common.rs"]
mod common;

use std::sync::Arc;

use bellperson::groth16::Proof;
use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Projective, MillerLoopResult, Scalar as Fr};
use dualchain_kernels::guard::{CheckedMiller, GpuGuard, Workload};
use dualchain_kernels::Compute;
use dualchain_prover::backend::{CpuBackend, MillerBackend, MsmBackend};
use dualchain_prover::groth16::Prover;
use dualchain_prover::shapes::Shape;
use dualchain_prover::verify::{BatchVerifier, VerifyError};
use group::{prime::PrimeCurveAffine, Curve, Group};

/// Miller products that miss their last pair, as a kernel that skips one thread would.
struct DropsAPair;

impl MillerBackend for DropsAPair {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
        CpuBackend.miller_product(&p[..p.len() - 1], &q[..q.len() - 1])
    }
}

/// The CPU's MSMs under another name: a sound device.
struct Sound;

impl MsmBackend for Sound {
    fn name(&self) -> &'static str {
        "sound"
    }
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        CpuBackend.msm_g1(bases, scalars)
    }
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        CpuBackend.msm_g2(bases, scalars)
    }
}

/// G1 MSMs off by the generator.
struct OffByOne;

impl MsmBackend for OffByOne {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        CpuBackend.msm_g1(bases, scalars) + G1Projective::generator()
    }
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        CpuBackend.msm_g2(bases, scalars)
    }
}

fn statements(n: u8) -> (Vec<Proof<Bls12>>, Vec<Vec<Fr>>, dualchain_prover::params::ProvingKey) {
    let pk = common::proving_key(Shape::Policy);
    let circuits: Vec<_> =
        (0..n).map(|i| common::policy_circuit(common::credential("icu", 3 + i as u64, [i; 32]), [i; 32]).0).collect();
    let inputs: Vec<Vec<Fr>> = circuits.iter().map(|c| c.statement().public_inputs()).collect();
    let proofs = Prover::default()
        .prove_batch(&pk, circuits, &mut common::rng(3))
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    (proofs, inputs, pk)
}

#[test]
fn a_faulty_miller_loop_changes_no_verdict() {
    let (proofs, inputs, pk) = statements(4);
    let mut bad_inputs = inputs.clone();
    bad_inputs[1] = inputs[2].clone();
    let mut bad_proofs = proofs.clone();
    bad_proofs[3].c = bad_proofs[3].c.to_curve().double().to_affine();
    let want_bad = Err(VerifyError::BadProofs(vec![1, 3]));

    // Unchecked, the faulty products fail every batch, and the split down to single
    // proofs (checked on the CPU) still gives the right verdicts: time lost, no verdict.
    let raw = BatchVerifier::new(pk.vk()).with_miller(Arc::new(DropsAPair));
    assert_eq!(raw.verify(&proofs, &inputs, &mut common::rng(4)), Ok(()));
    assert_eq!(raw.verify(&bad_proofs, &bad_inputs, &mut common::rng(5)), want_bad);

    // Cross-checked, the first product is compared, the CPU's is used, and the device is
    // dropped for verification.
    let guard = Arc::new(GpuGuard::default());
    let checked = CheckedMiller::new(Arc::new(DropsAPair), 0, guard.clone());
    let bv = BatchVerifier::new(pk.vk()).with_miller(Arc::new(checked));
    assert_eq!(bv.verify(&proofs, &inputs, &mut common::rng(4)), Ok(()));
    assert!(guard.disabled(Workload::Verification));
    assert_eq!(bv.verify(&bad_proofs, &bad_inputs, &mut common::rng(5)), want_bad);
}

#[test]
fn a_proof_from_a_faulty_msm_never_leaves_the_node() {
    let pk = common::proving_key(Shape::Policy);
    let compute = Compute { msm: Arc::new(OffByOne), ..Compute::cpu("test: a faulty MSM backend") };
    let (circuit, _) = common::policy_circuit(common::credential("icu", 5, [7; 32]), [7; 32]);
    let inputs = circuit.statement().public_inputs();
    // The faulty backend's proof does not verify (the check has something to catch).
    let (wrong, _) = compute.prover().prove(&pk, circuit.clone(), &mut common::rng(6)).unwrap();
    let pvk = bellperson::groth16::prepare_verifying_key(pk.vk());
    assert!(dualchain_prover::verify::verify(&pvk, pk.vk(), &wrong, &inputs).is_err());

    let (proof, _) = compute.prove(&pk, circuit.clone(), &mut common::rng(6)).unwrap();
    dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).unwrap();
    assert!(compute.guard.disabled(Workload::Proving));
    assert!(!compute.guard.disabled(Workload::Verification));
    assert_eq!(compute.prover().msm.name(), "cpu", "proving stays on the CPU");
    assert!(compute.guard.reason().unwrap().contains("does not verify"));
    // A sound backend's proofs are checked and pass.
    let sound = Compute { msm: Arc::new(Sound), ..Compute::cpu("test: a sound backend") };
    let (proof, _) = sound.prove(&pk, circuit, &mut common::rng(7)).unwrap();
    dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).unwrap();
    assert!(!sound.guard.disabled(Workload::Proving));
    assert_eq!(sound.guard.cross_checks.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_faulty_devices_proof_is_made_again_on_the_cpu_inside_the_pipeline() {
    let compute: &'static Compute =
        Box::leak(Box::new(Compute { msm: Arc::new(OffByOne), ..Compute::cpu("test: a faulty MSM backend") }));
    let pk = Arc::new(common::proving_key(Shape::Policy));
    let (circuit, _) = common::policy_circuit(common::credential("icu", 5, [7; 32]), [7; 32]);
    let inputs = circuit.statement().public_inputs();
    let (proof, _) = compute.prove_queued(pk.clone(), circuit).unwrap();
    let pvk = bellperson::groth16::prepare_verifying_key(pk.vk());
    dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).unwrap();
    assert!(compute.guard.disabled(Workload::Proving));
}
