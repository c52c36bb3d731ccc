//! The multi-party setup (`dualchain_prover::ceremony`): parameters from a ceremony prove
//! and verify with bellperson; a tampered, reordered or skipped contribution is refused
//! with the step named; and a forger holding every participant's secrets makes a proof of
//! a false statement, which fails as soon as one secret is missing.

mod common;

use std::sync::Arc;

use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use bellperson::groth16::{self, Parameters, Proof};
use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, Scalar as Fr};
use dualchain_prover::ceremony::{phase1, phase2, CeremonyError};
use ff::{Field, PrimeField};
use group::{prime::PrimeCurveAffine, Curve, Group};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// `x · x = y` with `y` public: no witness exists when `y` is not a square.
#[derive(Clone)]
struct Square {
    x: Option<Fr>,
    y: Option<Fr>,
}

impl Circuit<Fr> for Square {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let x = cs.alloc(|| "x", || self.x.ok_or(SynthesisError::AssignmentMissing))?;
        let x2 = cs.alloc(|| "x2", || self.x.map(|x| x.square()).ok_or(SynthesisError::AssignmentMissing))?;
        let y = cs.alloc_input(|| "y", || self.y.ok_or(SynthesisError::AssignmentMissing))?;
        cs.enforce(|| "x·x", |lc| lc + x, |lc| lc + x, |lc| lc + x2);
        cs.enforce(|| "x2·1 = y", |lc| lc + x2, |lc| lc + CS::one(), |lc| lc + y);
        // A few more constraints so that the domain has more than two points.
        let (mut acc, mut value) = (x, self.x);
        for i in 0..5 {
            value = value.map(|v| v + Fr::from(i as u64 + 1));
            let next = cs.alloc(|| format!("p{i}"), || value.ok_or(SynthesisError::AssignmentMissing))?;
            cs.enforce(
                || format!("c{i}"),
                |lc| lc + acc + (Fr::from(i as u64 + 1), CS::one()),
                |lc| lc + CS::one(),
                |lc| lc + next,
            );
            acc = next;
        }
        Ok(())
    }
}

const LOG_M: u32 = 4;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Secrets drawn for the test (a real participant never shows them).
struct Secrets {
    phase1: Vec<[Fr; 3]>,
    phase2: Vec<Fr>,
}

struct Ceremony {
    acc: phase1::Accumulator,
    t1: phase1::Transcript,
    matrices: phase2::Matrices,
    params: Parameters<Bls12>,
    t2: phase2::Transcript,
    secrets: Secrets,
}

fn ceremony(names1: &[&str], names2: &[&str]) -> Ceremony {
    ceremony_seeded(1, names1, names2)
}

fn ceremony_seeded(seed: u64, names1: &[&str], names2: &[&str]) -> Ceremony {
    let mut r = rng(seed);
    let mut acc = phase1::Accumulator::new(LOG_M).unwrap();
    let mut t1 = phase1::Transcript::new(LOG_M);
    let mut secrets = Secrets { phase1: vec![], phase2: vec![] };
    for who in names1 {
        let s = [Fr::random(&mut r), Fr::random(&mut r), Fr::random(&mut r)];
        t1.contribute_secrets(&mut acc, who, s, &mut r).unwrap();
        secrets.phase1.push(s);
    }
    let matrices = phase2::Matrices::of(Square { x: None, y: None }).unwrap();
    let mut params = phase2::initial(&acc, &matrices).unwrap();
    let mut t2 = phase2::Transcript::new("square", [7; 32]);
    for who in names2 {
        let d = Fr::random(&mut r);
        t2.contribute_secret(&mut params, who, d, &mut r).unwrap();
        secrets.phase2.push(d);
    }
    Ceremony { acc, t1, matrices, params, t2, secrets }
}

const HOSPITALS: [&str; 3] = ["st-mary", "city-general", "research-institute"];

#[test]
fn ceremony_parameters_prove_and_verify_with_bellperson() {
    let c = ceremony(&HOSPITALS, &HOSPITALS[..2]);
    let d1 = c.t1.verify(&c.acc, &mut rng(2)).unwrap();
    let d2 = c.t2.verify(&c.acc, &c.matrices, &c.params, &mut rng(3)).unwrap();
    assert_eq!((d1.len(), d2.len()), (3, 2));
    assert_ne!(d1[0], d1[1]);

    let x = Fr::from(12345u64);
    let proof =
        groth16::create_random_proof(Square { x: Some(x), y: Some(x.square()) }, &c.params, &mut rng(4)).unwrap();
    let pvk = groth16::prepare_verifying_key(&c.params.vk);
    assert!(groth16::verify_proof(&pvk, &proof, &[x.square()]).unwrap());
    assert!(!groth16::verify_proof(&pvk, &proof, &[x.square() + Fr::ONE]).unwrap());

    // Files round-trip.
    let acc = phase1::Accumulator::from_bytes(&c.acc.to_bytes()).unwrap();
    assert_eq!(acc, c.acc);
    assert_eq!(phase1::Transcript::from_bytes(&c.t1.to_bytes()).unwrap(), c.t1);
    assert_eq!(phase2::Transcript::from_bytes(&c.t2.to_bytes()).unwrap(), c.t2);
}

fn step_of(e: CeremonyError) -> (usize, String) {
    match e {
        CeremonyError::Step { step, who, .. } => (step, who),
        other => panic!("expected a step to be named, got {other}"),
    }
}

#[test]
fn tampered_reordered_or_skipped_phase1_contributions_are_refused() {
    let c = ceremony(&HOSPITALS, &HOSPITALS[..1]);
    let r = &mut rng(5);

    // Tampered: step 1's [τ]₁ replaced by another point.
    let mut t = c.t1.clone();
    t.steps[1].after.tau_g1 = (G1Projective::from(t.steps[1].after.tau_g1) * Fr::from(2u64)).to_affine();
    assert_eq!(step_of(t.verify(&c.acc, r).unwrap_err()), (1, "city-general".into()));

    // A proof of knowledge moved to another participant's name.
    let mut t = c.t1.clone();
    t.steps[2].who = "impostor".into();
    assert_eq!(step_of(t.verify(&c.acc, r).unwrap_err()).0, 2);

    // Reordered.
    let mut t = c.t1.clone();
    t.steps.swap(0, 1);
    assert_eq!(step_of(t.verify(&c.acc, r).unwrap_err()).0, 0);

    // Skipped.
    let mut t = c.t1.clone();
    t.steps.remove(1);
    assert_eq!(step_of(t.verify(&c.acc, r).unwrap_err()), (1, "research-institute".into()));

    // The last step dropped: the accumulator no longer matches.
    let mut t = c.t1.clone();
    t.steps.pop();
    assert!(matches!(t.verify(&c.acc, r), Err(CeremonyError::Invalid(_))));

    // No contribution at all.
    let empty = phase1::Accumulator::new(LOG_M).unwrap();
    assert!(matches!(phase1::Transcript::new(LOG_M).verify(&empty, r), Err(CeremonyError::Invalid(_))));

    // An accumulator with one power replaced fails its check.
    let mut acc = c.acc.clone();
    acc.tau_g1[5] = acc.tau_g1[6];
    assert!(matches!(c.t1.verify(&acc, r), Err(CeremonyError::Invalid(m)) if m.contains("powers")));
    let mut acc = c.acc.clone();
    acc.beta_tau_g1[3] = acc.alpha_tau_g1[3];
    assert!(c.t1.verify(&acc, r).is_err());
}

#[test]
fn tampered_reordered_or_skipped_phase2_contributions_are_refused() {
    let c = ceremony(&HOSPITALS[..1], &HOSPITALS);
    let r = &mut rng(6);
    let verify = |t: &phase2::Transcript, p: &Parameters<Bls12>| t.verify(&c.acc, &c.matrices, p, &mut rng(7));
    verify(&c.t2, &c.params).unwrap();

    let mut t = c.t2.clone();
    t.steps[1].delta_after = (G1Projective::from(t.steps[1].delta_after) * Fr::from(3u64)).to_affine();
    assert_eq!(step_of(verify(&t, &c.params).unwrap_err()), (1, "city-general".into()));

    let mut t = c.t2.clone();
    t.steps.swap(1, 2);
    assert_eq!(step_of(verify(&t, &c.params).unwrap_err()).0, 1);

    let mut t = c.t2.clone();
    t.steps.remove(0);
    assert_eq!(step_of(verify(&t, &c.params).unwrap_err()).0, 0);

    // Parameters whose L query was not divided by the last δ'.
    let mut p = c.params.clone();
    let mut l = p.l.as_ref().clone();
    l[0] = (G1Projective::from(l[0]) * Fr::from(5u64)).to_affine();
    p.l = Arc::new(l);
    assert!(matches!(verify(&c.t2, &p), Err(CeremonyError::Invalid(m)) if m.contains("L query")));

    // A transcript bound to another circuit digest.
    let mut t = c.t2.clone();
    t.circuit_digest = [8; 32];
    assert_eq!(step_of(verify(&t, &c.params).unwrap_err()).0, 0);

    // Parameters made from another accumulator.
    let other = ceremony_seeded(2, &["someone-else"], &HOSPITALS);
    assert!(matches!(c.t2.verify(&other.acc, &c.matrices, &c.params, r), Err(CeremonyError::Invalid(_))));
}

/// The verifier checks each query by one random linear combination against the
/// accumulator, not by recomputing the parameters: every single element of every query,
/// altered alone, is still caught, and a shortened query is refused by its length.
#[test]
fn every_altered_query_element_is_refused() {
    let c = ceremony(&HOSPITALS[..1], &HOSPITALS[..2]);
    let verify = |p: &Parameters<Bls12>| c.t2.verify(&c.acc, &c.matrices, p, &mut rng(11));
    verify(&c.params).unwrap();
    let refused = |p: &Parameters<Bls12>, what: &str| match verify(p) {
        Err(CeremonyError::Invalid(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("an altered {what} was not refused: {other:?}"),
    };
    fn bump(v: &mut G1Affine) {
        *v = (G1Projective::from(*v) + G1Projective::generator()).to_affine();
    }
    type Alter = fn(&mut Parameters<Bls12>, usize);
    let queries: [(&str, usize, Alter); 6] = [
        ("A or B queries differ", c.params.a.len(), |p, i| bump(&mut Arc::make_mut(&mut p.a)[i])),
        ("A or B queries differ", c.params.b_g1.len(), |p, i| bump(&mut Arc::make_mut(&mut p.b_g1)[i])),
        ("A or B queries differ", c.params.vk.ic.len(), |p, i| bump(&mut p.vk.ic[i])),
        ("B query in G2", c.params.b_g2.len(), |p, i| {
            let v = &mut Arc::make_mut(&mut p.b_g2)[i];
            *v = (v.to_curve() + blstrs::G2Projective::generator()).to_affine();
        }),
        ("L query", c.params.l.len(), |p, i| bump(&mut Arc::make_mut(&mut p.l)[i])),
        ("H query", c.params.h.len(), |p, i| bump(&mut Arc::make_mut(&mut p.h)[i])),
    ];
    for (what, len, alter) in queries {
        for i in 0..len {
            let mut p = c.params.clone();
            alter(&mut p, i);
            refused(&p, what);
        }
    }
    // Two elements swapped keep every sum of the query, but not a weighted one.
    let mut p = c.params.clone();
    Arc::make_mut(&mut p.a).swap(1, 2);
    refused(&p, "A or B queries differ");
    let mut p = c.params.clone();
    Arc::make_mut(&mut p.h).pop();
    refused(&p, "wrong length");
}

/// Forges a proof of `y` from the combined trapdoor `α, β, δ` (γ = 1): with
/// `A = [a]₁, B = [b]₂`, `C = (ab·g1 − αβ·g1 − IC(y)) / δ` satisfies the verification
/// equation `e(A, B) = e(α, β)·e(IC, γ)·e(C, δ)` whatever `y`.
fn forge(vk: &bellperson::groth16::VerifyingKey<Bls12>, alpha: Fr, beta: Fr, delta: Fr, y: Fr) -> Proof<Bls12> {
    let (a, b) = (Fr::from(11u64), Fr::from(13u64));
    let ic = G1Projective::from(vk.ic[0]) + G1Projective::from(vk.ic[1]) * y;
    let c = (G1Projective::generator() * (a * b - alpha * beta) - ic) * delta.invert().unwrap();
    Proof { a: (G1Affine::generator() * a).to_affine(), b: (G2Affine::generator() * b).to_affine(), c: c.to_affine() }
}

#[test]
fn the_trapdoor_forges_only_with_every_participants_secret() {
    let c = ceremony(&HOSPITALS, &HOSPITALS);
    let pvk = groth16::prepare_verifying_key(&c.params.vk);
    // 7 generates Fr's multiplicative group, so it is not a square: x·x = 7 has no witness.
    let y = Fr::MULTIPLICATIVE_GENERATOR;
    assert!(bool::from(y.sqrt().is_none()));
    let product = |v: &mut dyn Iterator<Item = Fr>| v.fold(Fr::ONE, |a, b| a * b);
    let alpha = product(&mut c.secrets.phase1.iter().map(|s| s[1]));
    let beta = product(&mut c.secrets.phase1.iter().map(|s| s[2]));
    let delta = product(&mut c.secrets.phase2.iter().copied());

    // Every secret known: the forger works.
    let forged = forge(&c.params.vk, alpha, beta, delta, y);
    assert!(groth16::verify_proof(&pvk, &forged, &[y]).unwrap(), "the forger should work with the whole trapdoor");

    // One participant's secret unknown (each in turn): the same forger fails.
    for k in 0..HOSPITALS.len() {
        let alpha_k = product(&mut c.secrets.phase1.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, s)| s[1]));
        let beta_k = product(&mut c.secrets.phase1.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, s)| s[2]));
        let delta_k = product(&mut c.secrets.phase2.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, d)| *d));
        for (a, b, d) in [(alpha_k, beta, delta), (alpha, beta_k, delta), (alpha, beta, delta_k)] {
            assert!(!groth16::verify_proof(&pvk, &forge(&c.params.vk, a, b, d, y), &[y]).unwrap());
        }
    }
}

#[test]
fn malformed_ceremony_files_are_refused_without_panicking() {
    let c = ceremony(&HOSPITALS[..2], &HOSPITALS[..2]);
    for bytes in [c.acc.to_bytes(), c.t1.to_bytes(), c.t2.to_bytes()] {
        for cut in [0, 7, 8, 9, bytes.len() / 2, bytes.len() - 1] {
            let b = &bytes[..cut];
            assert!(phase1::Accumulator::from_bytes(b).is_err());
            assert!(phase1::Transcript::from_bytes(b).is_err());
            assert!(phase2::Transcript::from_bytes(b).is_err());
        }
        let mut flipped = bytes.clone();
        let i = flipped.len() - 20;
        flipped[i] ^= 0x55;
        // A flipped byte inside a point: not a point, or a different one that fails later.
        let acc = phase1::Accumulator::from_bytes(&flipped);
        let t1 = phase1::Transcript::from_bytes(&flipped);
        let t2 = phase2::Transcript::from_bytes(&flipped);
        if let Ok(acc) = acc {
            assert!(c.t1.verify(&acc, &mut rng(8)).is_err());
        }
        if let Ok(t1) = t1 {
            assert!(t1.verify(&c.acc, &mut rng(8)).is_err());
        }
        if let Ok(t2) = t2 {
            assert!(t2.verify(&c.acc, &c.matrices, &c.params, &mut rng(8)).is_err());
        }
    }
    // A secret of 0 is refused.
    let mut acc = c.acc.clone();
    let mut t1 = c.t1.clone();
    assert!(t1.contribute_secrets(&mut acc, "zero", [Fr::ZERO, Fr::ONE, Fr::ONE], &mut rng(9)).is_err());
    // A circuit larger than the accumulator's domain.
    let small = phase1::Accumulator::new(1).unwrap();
    assert!(phase2::initial(&small, &c.matrices).is_err());
}

/// The starting parameters are exactly what bellperson's generator makes from the same
/// trapdoor with γ = δ = 1: the group FFT and the QAP evaluation in the exponent agree
/// with the scalar ones.
#[test]
fn starting_parameters_equal_bellpersons_at_the_same_trapdoor() {
    let (tau, alpha, beta) = (Fr::from(5u64), Fr::from(7u64), Fr::from(9u64));
    let mut acc = phase1::Accumulator::new(LOG_M).unwrap();
    phase1::Transcript::new(LOG_M).contribute_secrets(&mut acc, "one", [tau, alpha, beta], &mut rng(10)).unwrap();
    let matrices = phase2::Matrices::of(Square { x: None, y: None }).unwrap();
    let ours = phase2::initial(&acc, &matrices).unwrap();
    let theirs = groth16::generate_parameters::<Bls12, _>(
        Square { x: None, y: None },
        G1Projective::generator(),
        blstrs::G2Projective::generator(),
        alpha,
        beta,
        Fr::ONE,
        Fr::ONE,
        tau,
    )
    .unwrap();
    assert_eq!(ours.vk, theirs.vk, "verifying key");
    assert_eq!(ours.h, theirs.h, "H query");
    assert_eq!(ours.l, theirs.l, "L query");
    assert_eq!(ours.a, theirs.a, "A query");
    assert_eq!(ours.b_g1, theirs.b_g1, "B query in G1");
    assert_eq!(ours.b_g2, theirs.b_g2, "B query in G2");
}

/// The policy shape through a ceremony of two participants per phase, proven with the
/// node's own prover and verified. Prints each stage's time on this machine.
#[test]
fn a_ceremony_for_the_policy_shape_proves_with_the_node_prover_slow() {
    use dualchain_prover::groth16::Prover;
    use dualchain_prover::params::ProvingKey;
    use dualchain_prover::shapes::Shape;
    use std::time::Instant;

    let shape = Shape::Policy;
    let log_m = shape.circuit_shape().unwrap().domain_size().trailing_zeros();
    let r = &mut rng(20);
    let mut acc = phase1::Accumulator::new(log_m).unwrap();
    let mut t1 = phase1::Transcript::new(log_m);
    for who in ["st-mary", "city-general"] {
        let t = Instant::now();
        t1.contribute(&mut acc, who, r).unwrap();
        eprintln!("phase 1 contribution at 2^{log_m}: {:?}", t.elapsed());
    }
    let t = Instant::now();
    t1.verify(&acc, r).unwrap();
    eprintln!("phase 1 verification: {:?}", t.elapsed());

    let t = Instant::now();
    let matrices = phase2::Matrices::of(shape.blank()).unwrap();
    let mut params = phase2::initial(&acc, &matrices).unwrap();
    eprintln!("phase 2 start for {}: {:?}", shape.name(), t.elapsed());
    let mut t2 = phase2::Transcript::new(shape.name(), shape.circuit_shape().unwrap().digest);
    for who in ["st-mary", "city-general"] {
        let t = Instant::now();
        t2.contribute(&mut params, who, r).unwrap();
        eprintln!("phase 2 contribution: {:?}", t.elapsed());
    }
    let t = Instant::now();
    t2.verify(&acc, &matrices, &params, r).unwrap();
    eprintln!("phase 2 verification: {:?}", t.elapsed());

    let pk = ProvingKey::from_parameters(shape, params).unwrap();
    let (circuit, _) = common::policy_circuit(common::credential("cardiology", 4, [7; 32]), [42; 32]);
    let inputs = circuit.statement().public_inputs();
    let (proof, _) = Prover::default().prove(&pk, circuit, r).unwrap();
    dualchain_prover::verify::verify(&pk.pvk, pk.vk(), &proof, &inputs).unwrap();
}
