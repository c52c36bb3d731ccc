//! Differential tests of the CUDA kernels against the CPU backends, and proofs from the
//! CUDA backends. They need an NVIDIA GPU, so each is ignored ("needs an NVIDIA GPU") in the default run
//! (CI compiles them); on a GPU machine run
//! `cargo test -p dualchain-kernels --test gpu -- --ignored` (or the test binary with
//! `--ignored`). Without a usable device they fail, naming the reason.

#[path = "../../prover/tests/common.rs"]
mod common;

use std::sync::{Arc, OnceLock};

use blstrs::{G1Affine, G2Affine, Scalar as Fr};
use dualchain_kernels::cache::{default_dir, ModuleCache};
use dualchain_kernels::msm::{gpu_msm_g1, gpu_msm_g2};
use dualchain_kernels::ntt::{gpu_coset_ntt, gpu_icoset_ntt, gpu_ntt, gpu_quotient};
use dualchain_kernels::testdata::{g1_points, g2_points, scalars};
use dualchain_kernels::{CudaMsm, CudaNtt, Gpu};
use dualchain_prover::backend::{quotient_by_transforms, CpuBackend, MsmBackend, NttBackend};
use dualchain_prover::groth16::Prover;
use dualchain_prover::ntt::root_of_unity;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_prover::verify::verify;
use ff::{Field, PrimeField};
use group::{prime::PrimeCurveAffine, Curve};

fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::open(0, &ModuleCache::new(default_dir())).unwrap_or_else(|e| panic!("no usable GPU: {e}"));
        eprintln!("differential tests on {}", gpu.info());
        gpu
    })
    .clone()
}

fn msm() -> CudaMsm {
    let mut m = CudaMsm::new(gpu());
    m.min_points = 0;
    m
}

fn ntt() -> CudaNtt {
    let mut n = CudaNtt::new(gpu());
    n.min_len = 0;
    n
}

/// Scalar and point variants at one size: random; all zero; all one; witness-like bits;
/// one repeated scalar; every other point the identity; one point repeated.
fn g1_cases(n: usize) -> Vec<(&'static str, Vec<G1Affine>, Vec<Fr>)> {
    let bases = g1_points(n, n as u64);
    let s = scalars(n, 7 + n as u64);
    let id = G1Affine::identity();
    vec![
        ("random", bases.clone(), s.clone()),
        ("zero scalars", bases.clone(), vec![Fr::ZERO; n]),
        ("one scalars", bases.clone(), vec![Fr::ONE; n]),
        ("bits", bases.clone(), (0..n).map(|i| Fr::from((i % 3 == 0) as u64)).collect()),
        ("repeated scalar", bases.clone(), vec![s[0]; n]),
        ("identity points", (0..n).map(|i| if i % 2 == 0 { id } else { bases[i] }).collect(), s.clone()),
        ("duplicate points", vec![bases[0]; n], s),
    ]
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn msm_g1_matches_cpu_from_2_10_to_2_22() {
    // On shifted-base tables (the default), one window at a time, and with batched affine
    // rounds on shifted bases; sizes from 2^20 up upload their scalars in several chunks.
    let mut plain = msm();
    plain.shifted_bases = false;
    let mut affine = msm();
    affine.batched_affine = true;
    for (how, m) in [("shifted bases", msm()), ("plain windows", plain), ("batched affine", affine)] {
        for log in [10, 12, 16, 20, 22] {
            let n = 1usize << log;
            let cases = if log <= 16 { g1_cases(n) } else { g1_cases(n).into_iter().take(3).collect() };
            for (what, b, s) in cases {
                let want = CpuBackend.msm_g1(&b, &s);
                let got = gpu_msm_g1(&m, &b, &s).unwrap_or_else(|e| panic!("2^{log} {what}, {how}: {e}"));
                assert_eq!(got.to_affine(), want.to_affine(), "G1 MSM 2^{log}, {what}, {how}");
            }
            m.evict_all();
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn msm_g2_matches_cpu_from_2_10_to_2_20() {
    let m = msm();
    for log in [10, 14, 18, 20] {
        let n = 1usize << log;
        let bases = g2_points(n, 3 + log as u64);
        let s = scalars(n, 5 + log as u64);
        let mut cases = vec![("random", bases.clone(), s.clone()), ("one scalars", bases.clone(), vec![Fr::ONE; n])];
        if log <= 14 {
            cases.push(("zero scalars", bases.clone(), vec![Fr::ZERO; n]));
            cases.push(("duplicate points", vec![bases[1]; n], s.clone()));
            cases.push((
                "identity points",
                (0..n).map(|i| if i % 3 == 0 { G2Affine::identity() } else { bases[i] }).collect(),
                s,
            ));
        }
        for (what, b, s) in cases {
            let want = CpuBackend.msm_g2(&b, &s);
            let got = gpu_msm_g2(&m, &b, &s).unwrap_or_else(|e| panic!("2^{log} {what}: {e}"));
            assert_eq!(got.to_affine(), want.to_affine(), "G2 MSM 2^{log}, {what}");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn resident_bases_are_uploaded_once_and_stay_correct() {
    let m = msm();
    let n = 1 << 14;
    let bases = g1_points(n, 99);
    for seed in 0..3 {
        let s = scalars(n, seed);
        let got = gpu_msm_g1(&m, &bases, &s).unwrap();
        assert_eq!(got, CpuBackend.msm_g1(&bases, &s));
    }
    let uploaded = m.stats.bytes_uploaded.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(uploaded, (n * 96) as u64, "the bases were uploaded more than once");
    // Different bases at another address are not mistaken for the resident ones.
    let other = g1_points(n, 100);
    let s = scalars(n, 4);
    assert_eq!(gpu_msm_g1(&m, &other, &s).unwrap(), CpuBackend.msm_g1(&other, &s));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn ntt_matches_cpu_from_2_10_to_2_22() {
    let t = ntt();
    let g = Fr::MULTIPLICATIVE_GENERATOR;
    for log in [10u32, 11, 16, 20, 22] {
        let n = 1usize << log;
        let omega = root_of_unity(log);
        let omega_inv = omega.invert().unwrap();
        for (what, v) in [("random", scalars(n, log as u64)), ("zero", vec![Fr::ZERO; n]), ("one", vec![Fr::ONE; n])] {
            let mut want = v.clone();
            CpuBackend.ntt(&mut want, omega);
            let mut got = v.clone();
            gpu_ntt(&t, &mut got, omega).unwrap();
            assert_eq!(got, want, "NTT 2^{log} {what}");

            let mut want = v.clone();
            CpuBackend.coset_ntt(&mut want, omega, g);
            let mut got = v.clone();
            gpu_coset_ntt(&t, &mut got, omega, g).unwrap();
            assert_eq!(got, want, "coset NTT 2^{log} {what}");

            gpu_icoset_ntt(&t, &mut got, omega_inv, g.invert().unwrap()).unwrap();
            assert_eq!(got, v, "inverse coset NTT 2^{log} {what}");
        }
        // The trait's inverse goes through the device too.
        let v = scalars(n, 1000 + log as u64);
        let mut got = v.clone();
        t.ntt(&mut got, omega);
        t.intt(&mut got, omega_inv);
        assert_eq!(got, v, "NTT round trip 2^{log}");
        // The whole QAP step on the device.
        let (a, b) = (scalars(n, 2000 + log as u64), scalars(n, 3000 + log as u64));
        let c: Vec<Fr> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        let want = quotient_by_transforms(&CpuBackend, a.clone(), b.clone(), c.clone(), n);
        assert_eq!(gpu_quotient(&t, &a, &b, &c, n).unwrap(), want, "QAP quotient 2^{log}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cuda_proofs_equal_cpu_proofs_and_verify() {
    // The quotient hands h to the H MSM on the device, as Compute sets it up.
    let m = Arc::new(msm());
    let mut t = ntt();
    t.h_msm = Some(m.clone());
    let gpu_prover = Prover { msm: &*m, ntt: &t };
    let cpu_prover = Prover::default();
    for shape in [Shape::Policy, Shape::Supply(SupplyShape::Records64), Shape::Supply(SupplyShape::Records1024)] {
        let pk = common::proving_key(shape);
        let (circuit, inputs) = match shape {
            Shape::Policy => {
                let (c, _) = common::policy_circuit(common::credential("cardiology", 4, [7; 32]), [42; 32]);
                let inputs = c.statement().public_inputs();
                (dualchain_prover::shapes::AnyCircuit::Policy(c), inputs)
            }
            Shape::AnonymousPolicy | Shape::DemandNullifier => unreachable!("not among this test's shapes"),
            Shape::Supply(s) => {
                let c = common::supply_circuit_in(s, s.records() as u32, 1);
                let inputs = c.statement().public_inputs();
                (dualchain_prover::shapes::AnyCircuit::Supply(c), inputs)
            }
        };
        let (r, s) = (Fr::from(3u64), Fr::from(5u64));
        let (gpu_proof, _) =
            gpu_prover.prove_with(&pk, Prover::synthesize(&pk, circuit.clone()).unwrap(), r, s).unwrap();
        let (cpu_proof, _) = cpu_prover.prove_with(&pk, Prover::synthesize(&pk, circuit).unwrap(), r, s).unwrap();
        assert_eq!(gpu_proof.a, cpu_proof.a, "{}", shape.name());
        assert_eq!(gpu_proof.b, cpu_proof.b, "{}", shape.name());
        assert_eq!(gpu_proof.c, cpu_proof.c, "{}", shape.name());
        verify(&pk.pvk, pk.vk(), &gpu_proof, &inputs).unwrap();
        assert_eq!(m.stats.fallbacks.load(std::sync::atomic::Ordering::Relaxed), 0, "a GPU job fell back");
        assert_eq!(t.stats.fallbacks.load(std::sync::atomic::Ordering::Relaxed), 0, "a GPU job fell back");
    }
}

/// Valid capsules: E = r·P1, V = u·P1, σ = u + h·r with h = H(E, V).
fn capsules(n: usize, seed: u64) -> Vec<dualchain_crypto::cbsre::Capsule> {
    use dualchain_crypto::cbsre::Capsule;
    use group::Group;
    let rs = scalars(n, seed);
    let us = scalars(n, seed + 1);
    rs.iter()
        .zip(&us)
        .map(|(r, u)| {
            let g = blstrs::G1Projective::generator();
            let mut c = Capsule { e: (g * r).to_affine(), v: (g * u).to_affine(), sigma: Fr::ZERO };
            c.sigma = *u + c.challenge() * r;
            c
        })
        .collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn reencryption_and_capsule_checks_match_cpu() {
    use dualchain_crypto::reencrypt::{CpuBackend as CpuReencrypt, ReencryptBackend};
    let mut cuda = dualchain_kernels::CudaReencrypt::new(gpu());
    cuda.min_capsules = 0;
    for log in [10, 14, 16] {
        let n = 1usize << log;
        let caps = capsules(n, log as u64);
        assert!(caps.iter().take(4).all(|c| c.is_valid()));
        let rk = scalars(1, 500 + log as u64)[0];
        let got = cuda.try_reencrypt(&rk, &caps).unwrap();
        assert_eq!(got, CpuReencrypt.reencrypt(&rk, &caps), "re-encryption of 2^{log}");
        assert!(cuda.try_combination_holds(&caps, [log as u8; 32]).unwrap(), "valid batch of 2^{log}");
        assert_eq!(cuda.verify_capsules(&caps, [1; 32]), Ok(()));
        // A tampered capsule fails the batch and is named, as on the CPU.
        let mut bad = caps.clone();
        bad[n / 3].sigma += Fr::ONE;
        assert!(!cuda.try_combination_holds(&bad, [2; 32]).unwrap());
        assert_eq!(cuda.verify_capsules(&bad, [3; 32]), Err(vec![n / 3]));
        assert_eq!(CpuReencrypt.verify_capsules(&bad, [3; 32]), Err(vec![n / 3]));
    }
    // Re-keys of every bit length, including zero and one.
    let caps = capsules(64, 9);
    for rk in [Fr::ZERO, Fr::ONE, -Fr::ONE, Fr::from(3u64)] {
        assert_eq!(cuda.try_reencrypt(&rk, &caps).unwrap(), CpuReencrypt.reencrypt(&rk, &caps));
    }
    let device = gpu();
    let s = device.scheduler().stats(dualchain_kernels::scheduler::Priority::Reencrypt);
    assert!(
        s.jobs.load(std::sync::atomic::Ordering::Relaxed) > 0 && s.bytes.load(std::sync::atomic::Ordering::Relaxed) > 0
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn miller_products_match_cpu_and_batches_verify() {
    use dualchain_prover::backend::MillerBackend;
    use dualchain_prover::verify::{BatchVerifier, VerifyError};
    use pairing::MillerLoopResult as _;
    let mut miller = dualchain_kernels::CudaMiller::new(gpu());
    miller.min_pairs = 0;
    for n in [1usize, 2, 3, 255, 4096] {
        let p = g1_points(n, 40 + n as u64);
        let q = g2_points(n, 41 + n as u64);
        let got = miller.try_miller_product(&p, &q).unwrap().final_exponentiation();
        let want = CpuBackend.miller_product(&p, &q).final_exponentiation();
        assert_eq!(got, want, "{n} pairs");
    }
    // Real proofs through the batch verifier with the device's Miller loops.
    let pk = common::proving_key(Shape::Policy);
    let circuits: Vec<_> =
        (0..8u8).map(|i| common::policy_circuit(common::credential("icu", 3 + i as u64, [i; 32]), [i; 32]).0).collect();
    let inputs: Vec<Vec<Fr>> = circuits.iter().map(|c| c.statement().public_inputs()).collect();
    let proofs: Vec<_> = Prover::default()
        .prove_batch(&pk, circuits, &mut common::rng(3))
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let bv = BatchVerifier::new(pk.vk()).with_miller(Arc::new(miller));
    bv.verify(&proofs, &inputs, &mut common::rng(4)).unwrap();
    let mut bad = inputs.clone();
    bad[5] = inputs[6].clone();
    assert_eq!(bv.verify(&proofs, &bad, &mut common::rng(5)), Err(VerifyError::BadProofs(vec![5])));
}

/// `scripts/gpu-check.sh run` reads the JSON line this prints.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kernel_resources_are_reported() {
    let resources = gpu().kernel_resources().unwrap();
    assert!(!resources.is_empty());
    let rows: Vec<String> = resources
        .iter()
        .map(|k| {
            format!(
                "{{\"kernel\":\"{}\",\"registers\":{},\"local_bytes\":{},\"shared_bytes\":{}}}",
                k.name, k.registers, k.local_bytes, k.shared_bytes
            )
        })
        .collect();
    println!("KERNEL_RESOURCES [{}]", rows.join(","));
    for k in &resources {
        assert!(k.registers > 0 && k.registers <= 255, "{k:?}");
    }
}

/// The size at which published GPU provers have failed (illegal memory access above a few
/// million points), checked against the CPU.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn msm_g1_at_2_24_matches_cpu() {
    let n = 1 << 24;
    let bases = g1_points(n, 24);
    let s = scalars(n, 2424);
    let got = gpu_msm_g1(&msm(), &bases, &s).unwrap();
    assert_eq!(got, CpuBackend.msm_g1(&bases, &s), "G1 MSM at 2^24");
}

/// The known-answer self-test a node runs when it opens the device.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn the_device_passes_its_self_test() {
    let mut miller = dualchain_kernels::CudaMiller::new(gpu());
    miller.min_pairs = 0;
    dualchain_kernels::guard::self_test(&msm(), &ntt(), &miller).unwrap();
}
