//! The device's Miller loop (host build) inside the real batch verification equation:
//! good batches of Groth16 proofs pass, and wrong statements or tampered proofs are named,
//! exactly as with the CPU backend.

#[path = "../../prover/tests/common.rs"]
mod common;

use std::sync::Arc;

use bellperson::groth16::Proof;
use blstrs::{Bls12, G1Affine, G2Affine, MillerLoopResult, Scalar as Fr};
use dualchain_kernels::host;
use dualchain_prover::backend::MillerBackend;
use dualchain_prover::groth16::Prover;
use dualchain_prover::shapes::Shape;
use dualchain_prover::verify::{BatchVerifier, VerifyError};
use group::{prime::PrimeCurveAffine, Curve, Group};

struct HostMiller;

impl MillerBackend for HostMiller {
    fn name(&self) -> &'static str {
        "host-compiled device code"
    }
    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
        host::miller_product(p, q)
    }
}

#[test]
fn batch_verification_with_the_device_miller_loop() {
    let pk = common::proving_key(Shape::Policy);
    let circuits: Vec<_> =
        (0..4u8).map(|i| common::policy_circuit(common::credential("icu", 3 + i as u64, [i; 32]), [i; 32]).0).collect();
    let inputs: Vec<Vec<Fr>> = circuits.iter().map(|c| c.statement().public_inputs()).collect();
    let proofs: Vec<Proof<Bls12>> = Prover::default()
        .prove_batch(&pk, circuits, &mut common::rng(3))
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let device = BatchVerifier::new(pk.vk()).with_miller(Arc::new(HostMiller));
    let cpu = BatchVerifier::new(pk.vk());
    device.verify(&proofs, &inputs, &mut common::rng(4)).unwrap();

    let mut bad_inputs = inputs.clone();
    bad_inputs[1] = inputs[2].clone();
    let mut bad_proofs = proofs.clone();
    bad_proofs[3].c = bad_proofs[3].c.to_curve().double().to_affine();
    let want = Err(VerifyError::BadProofs(vec![1, 3]));
    assert_eq!(device.verify(&bad_proofs, &bad_inputs, &mut common::rng(5)), want);
    assert_eq!(cpu.verify(&bad_proofs, &bad_inputs, &mut common::rng(5)), want);
}
