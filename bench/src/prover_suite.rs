//! The `prover` suite: per shape (the anonymous policy circuit's proving time also against
//! the policy circuit's, same run), constraint count, KeyGen, Prove (our pipeline against
//! bellperson's `create_random_proof` on the same circuit, same run), Verify, key sizes,
//! where one proof's time goes, a node's supply-64 proofs through its proving pipeline
//! against two made at once as its reactions did before, and batch verification at 1, 16
//! and 256 proofs against single verification.
//!
//! Batches larger than the number of distinct proofs generated cycle through them: the
//! cost of the batch equation does not depend on whether proofs repeat (each gets its own
//! random weight and Miller loop).

use std::time::{Duration, Instant};

use anyhow::Result;
use bellperson::groth16::{create_random_proof, verify_proofs_batch, Proof};
use blstrs::{Bls12, Scalar as Fr};
use dualchain_progress::Progress;
use dualchain_prover::anonymous::{
    nullifier_scope, AnonymousCredential, AnonymousPolicyCircuit, DemandNullifierCircuit,
};
use dualchain_prover::groth16::{ProofTimings, Prover};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{
    categorical, key_hash, request_binding, schema, Credential, CredentialTree, Op, PolicyCircuit, PolicyDnf, Predicate,
};
use dualchain_prover::shapes::{AnyCircuit, Shape};
use dualchain_prover::supply::{Record, Requirement, SupplyCircuit, SupplyShape};
use dualchain_prover::verify::{verify, BatchVerifier};
use group::Group;
use jubjub::{Fr as JubjubScalar, SubgroupPoint};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::measure::Record as Row;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn time_row(name: &str, params: String, value: f64, baseline: Option<f64>) -> Row {
    Row { name: name.into(), params, value, unit: "s".into(), baseline, ratio: baseline.map(|b| value / b) }
}

fn plain(name: &str, params: String, value: f64, unit: &str) -> Row {
    Row { name: name.into(), params, value, unit: unit.into(), baseline: None, ratio: None }
}

/// A satisfiable instance of a shape; `i` varies the statement.
pub fn instance(shape: Shape, i: u64) -> AnyCircuit {
    match shape {
        Shape::Policy => {
            let mut attributes = [0u64; 16];
            attributes[schema::ROLE as usize] = categorical("research");
            attributes[schema::DEPARTMENT as usize] = categorical("cardiology");
            attributes[schema::CLEARANCE as usize] = 4 + i;
            let credential = Credential { attributes, salt: Fr::from(i + 1), key_hash: key_hash(&[i as u8; 32]) };
            let mut tree = CredentialTree::new();
            tree.set(i, credential.leaf());
            let role = Predicate { attribute: schema::ROLE, op: Op::Eq, constant: categorical("research") };
            let dept = Predicate { attribute: schema::DEPARTMENT, op: Op::Eq, constant: categorical("cardiology") };
            let clear = Predicate { attribute: schema::CLEARANCE, op: Op::Ge, constant: 3 };
            let policy = PolicyDnf::new(vec![vec![role, dept, clear]]).expect("valid policy");
            AnyCircuit::Policy(PolicyCircuit { path: tree.path(i), credential, policy, request_id: [i as u8; 32] })
        }
        Shape::AnonymousPolicy => {
            let AnyCircuit::Policy(p) = instance(Shape::Policy, i) else { unreachable!("a policy instance") };
            let credential = AnonymousCredential {
                attributes: p.credential.attributes,
                salt: p.credential.salt,
                key_hash: p.credential.key_hash,
                nullifier_key: Fr::from(1000 + i),
            };
            let mut tree = CredentialTree::new();
            tree.set(i, credential.leaf());
            AnyCircuit::AnonymousPolicy(Box::new(AnonymousPolicyCircuit {
                path: tree.path(i),
                credential,
                policy: p.policy,
                binding: request_binding(&[i as u8; 32], key_hash(&[!(i as u8); 32])),
                scope: nullifier_scope(&[7; 32], 20_000 + i),
                budget: 10,
                counter: (i % 10) as u16,
                escrow_key: SubgroupPoint::generator() * JubjubScalar::from(7 + i),
                seal_randomness: JubjubScalar::from(11 + i),
            }))
        }
        Shape::DemandNullifier => {
            let AnyCircuit::AnonymousPolicy(a) = instance(Shape::AnonymousPolicy, i) else {
                unreachable!("an anonymous policy instance")
            };
            AnyCircuit::DemandNullifier(DemandNullifierCircuit {
                credential: a.credential,
                scope: a.scope,
                budget: a.budget,
                counter: a.counter,
            })
        }
        Shape::Supply(s) => {
            let n = s.records() as u32;
            let records: Vec<Record> = (0..n)
                .map(|k| Record {
                    present: true,
                    code: 88674,
                    unit: 1,
                    age_band: 8 + (k % 4) as u8,
                    sex: 1 + (k % 2) as u8,
                    value: (50 + (k + i as u32) % 100) * 1000,
                    time: 29_800_000 + k,
                    device: k % 16,
                })
                .collect();
            let req = Requirement {
                code: 88674,
                unit: 1,
                age_lo: 8,
                age_hi: 12,
                sex: 0,
                value_min: Some(40_000),
                value_max: Some(200_000),
                time_from: 29_000_000,
                time_to: 30_000_000,
                threshold: (n / 2) as u16,
            };
            AnyCircuit::Supply(SupplyCircuit::new(s, &records, Fr::from(i + 7), req).expect("valid instance"))
        }
    }
}

pub fn statement(c: &AnyCircuit) -> Vec<Fr> {
    match c {
        AnyCircuit::Policy(p) => p.statement().public_inputs(),
        AnyCircuit::AnonymousPolicy(p) => p.statement().public_inputs(),
        AnyCircuit::DemandNullifier(p) => p.statement().public_inputs(),
        AnyCircuit::Supply(s) => s.statement().public_inputs(),
    }
}

/// `n` proofs of `shape` made as a node makes them, from two callers at once (a node's two
/// bulk reactions): each caller proving on its own through `Compute::prove` (the baseline,
/// how nodes proved before the pipeline), then the same through the node's proving
/// pipeline (`Compute::prove_queued`). Proofs per second, ratio = pipeline / baseline.
fn node_proving(shape: Shape, pk: &std::sync::Arc<ProvingKey>, n: u64) -> Result<Vec<Row>> {
    let compute: &'static dualchain_kernels::Compute =
        Box::leak(Box::new(dualchain_kernels::Compute::cpu("bench: the node's proving on the CPU")));
    let run = |queued: bool| -> Result<f64> {
        let start = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let callers: Vec<_> = (0..2u64)
                .map(|c| {
                    let pk = pk.clone();
                    s.spawn(move || -> Result<()> {
                        let mut rng = ChaCha20Rng::seed_from_u64(100 + c);
                        for k in (c..n).step_by(2) {
                            let circuit = instance(shape, 10 + k);
                            let inputs = statement(&circuit);
                            let (proof, _) = if queued {
                                compute.prove_queued(pk.clone(), circuit)?
                            } else {
                                compute.prove(&pk, circuit, &mut rng)?
                            };
                            verify(&pk.pvk, pk.vk(), &proof, &inputs)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for c in callers {
                c.join().expect("a proving caller panicked")?;
            }
            Ok(())
        })?;
        Ok(n as f64 / secs(start.elapsed()))
    };
    let two_at_once = run(false)?;
    let pipelined = run(true)?;
    let name = shape.name();
    let row = |how: &str, value: f64, baseline: Option<f64>| Row {
        name: "prover::node_proofs".into(),
        params: format!("shape={name},n={n},callers=2,{how}"),
        value,
        unit: "proofs/s".into(),
        baseline,
        ratio: baseline.map(|b| value / b),
    };
    Ok(vec![row("how=two-at-once", two_at_once, None), row("how=pipeline", pipelined, Some(two_at_once))])
}

/// Where one proof's time went, a row per stage as a share of the whole, named `name` with
/// `params` before the stage.
pub fn breakdown_rows(name: &str, params: &str, t: &ProofTimings) -> Vec<Row> {
    let total = secs(t.total);
    [
        ("synthesis", t.synthesis),
        ("ntt", t.ntt),
        ("msm_h", t.msm_h),
        ("msm_l", t.msm_l),
        ("msm_a", t.msm_a),
        ("msm_b_g1", t.msm_b_g1),
        ("msm_b_g2", t.msm_b_g2),
    ]
    .into_iter()
    .map(|(stage, d)| Row {
        name: name.into(),
        params: format!("{params},stage={stage}"),
        value: secs(d),
        unit: "s".into(),
        baseline: Some(total),
        ratio: Some(secs(d) / total),
    })
    .collect()
}

pub fn run(quick: bool, large: bool) -> Result<Vec<Row>> {
    let mut shapes =
        vec![Shape::Policy, Shape::AnonymousPolicy, Shape::DemandNullifier, Shape::Supply(SupplyShape::Records64)];
    if !quick {
        shapes.push(Shape::Supply(SupplyShape::Records1024));
    }
    if large {
        shapes.push(Shape::Supply(SupplyShape::Records4096));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut out = Vec::new();
    let prover = Prover::default();
    // The policy proof's time, the baseline of the anonymous policy proof's.
    let mut policy_prove = None;
    let progress = Progress::new("bench prover", shapes.len() as u64);
    for shape in shapes {
        let name = shape.name();
        progress.set_message(format!("{name}: key generation"));
        let circuit_shape = shape.circuit_shape()?;
        out.push(plain(
            "prover::constraints",
            format!("shape={name}"),
            circuit_shape.constraints as f64,
            "constraints",
        ));
        out.push(plain("prover::domain", format!("shape={name}"), circuit_shape.domain_size() as f64, "points"));

        let start = Instant::now();
        let pk = std::sync::Arc::new(ProvingKey::generate(shape, &mut rng)?);
        out.push(time_row("prover::keygen", format!("shape={name}"), secs(start.elapsed()), None));
        let pk_bytes = pk.to_file_bytes()?.len();
        let mut vk_bytes = Vec::new();
        pk.vk().write(&mut vk_bytes)?;
        out.push(plain("prover::proving_key_size", format!("shape={name}"), pk_bytes as f64 / 1e6, "MB"));
        out.push(plain("prover::verifying_key_size", format!("shape={name}"), vk_bytes.len() as f64 / 1e3, "KB"));

        // Prove: ours vs bellperson on the same instances, alternating, best of `reps`.
        progress.set_message(format!("{name}: proving"));
        let reps = if quick || shape != Shape::Policy { 2 } else { 3 };
        let mut ours = Duration::MAX;
        let mut theirs = Duration::MAX;
        let mut breakdown = ProofTimings::default();
        let mut proofs: Vec<(Proof<Bls12>, Vec<Fr>)> = Vec::new();
        for k in 0..reps {
            let c = instance(shape, k);
            let inputs = statement(&c);
            let (p, t) = prover.prove(&pk, c.clone(), &mut rng)?;
            if t.total < ours {
                ours = t.total;
                breakdown = t;
            }
            let start = Instant::now();
            let q: Proof<Bls12> = create_random_proof(c, &pk.params, &mut rng)?;
            theirs = theirs.min(start.elapsed());
            verify(&pk.pvk, pk.vk(), &q, &inputs)?;
            proofs.push((p, inputs));
        }
        out.push(time_row(
            "prover::prove",
            format!("shape={name},pipeline=dualchain-cpu"),
            secs(ours),
            Some(secs(theirs)),
        ));
        out.push(time_row("prover::prove", format!("shape={name},pipeline=bellperson"), secs(theirs), None));
        match shape {
            Shape::Policy => policy_prove = Some(secs(ours)),
            Shape::AnonymousPolicy => {
                out.push(time_row("prover::prove", format!("shape={name},against=policy"), secs(ours), policy_prove))
            }
            _ => {}
        }
        if shape == Shape::Supply(SupplyShape::Records64) {
            progress.set_message(format!("{name}: node proving, pipeline against two at once"));
            out.extend(node_proving(shape, &pk, if quick { 4 } else { 8 })?);
        }
        out.extend(breakdown_rows("prover::prove_breakdown", &format!("shape={name}"), &breakdown));

        // Verify one proof.
        progress.set_message(format!("{name}: verifying"));
        let (p0, x0) = &proofs[0];
        let n_ver = 20;
        let start = Instant::now();
        for _ in 0..n_ver {
            verify(&pk.pvk, pk.vk(), p0, x0)?;
        }
        let single = secs(start.elapsed()) / n_ver as f64;
        out.push(time_row("prover::verify", format!("shape={name}"), single, None));

        // Batch verification (policy shape carries the throughput targets).
        if shape == Shape::Policy {
            let distinct = if quick { 8 } else { 16 };
            for k in proofs.len() as u64..distinct {
                let c = instance(shape, k);
                let inputs = statement(&c);
                proofs.push((prover.prove(&pk, c, &mut rng)?.0, inputs));
            }
            let bv = BatchVerifier::new(pk.vk());
            for n in [1usize, 16, 256] {
                let ps: Vec<Proof<Bls12>> = (0..n).map(|i| proofs[i % proofs.len()].0.clone()).collect();
                let xs: Vec<Vec<Fr>> = (0..n).map(|i| proofs[i % proofs.len()].1.clone()).collect();
                let reps = if n == 256 { 2 } else { 5 };
                let start = Instant::now();
                for _ in 0..reps {
                    bv.verify(&ps, &xs, &mut rng)?;
                }
                let rate = (n * reps) as f64 / secs(start.elapsed());
                out.push(Row {
                    name: "prover::verify_batch".into(),
                    params: format!("shape={name},n={n},impl=dualchain"),
                    value: rate,
                    unit: "proofs/s".into(),
                    baseline: Some(1.0 / single),
                    ratio: Some(rate * single),
                });
                let refs: Vec<&Proof<Bls12>> = ps.iter().collect();
                let start = Instant::now();
                for _ in 0..reps {
                    assert!(verify_proofs_batch(&pk.pvk, &mut rng, &refs, &xs)?);
                }
                let rate_bp = (n * reps) as f64 / secs(start.elapsed());
                out.push(Row {
                    name: "prover::verify_batch".into(),
                    params: format!("shape={name},n={n},impl=bellperson"),
                    value: rate_bp,
                    unit: "proofs/s".into(),
                    baseline: Some(1.0 / single),
                    ratio: Some(rate_bp * single),
                });
            }
        }
        progress.inc(1);
    }
    progress.finish();
    Ok(out)
}
