//! Differential tests of the CPU backends against the obviously correct versions: NTT vs
//! the quadratic DFT and round trips; MSM vs naive sums with zero, one and duplicate
//! scalars and points, including the identity point.

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use dualchain_prover::backend::{naive_msm_g1, CpuBackend, MsmBackend, NttBackend};
use dualchain_prover::ntt::{naive_dft, root_of_unity};
use ff::{Field, PrimeField};
use group::{prime::PrimeCurveAffine, Curve, Group};
use rand::SeedableRng;

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(77)
}

#[test]
fn ntt_matches_the_dft_and_inverts() {
    let mut r = rng();
    for log_n in [0u32, 1, 2, 3, 5, 8, 10] {
        let n = 1usize << log_n;
        let x: Vec<Fr> = (0..n).map(|_| Fr::random(&mut r)).collect();
        let omega = root_of_unity(log_n);
        let mut y = x.clone();
        CpuBackend.ntt(&mut y, omega);
        assert_eq!(y, naive_dft(&x, omega), "n = {n}");
        CpuBackend.intt(&mut y, omega.invert().unwrap());
        assert_eq!(y, x);
        let g = Fr::MULTIPLICATIVE_GENERATOR;
        let mut z = x.clone();
        CpuBackend.coset_ntt(&mut z, omega, g);
        CpuBackend.icoset_ntt(&mut z, omega.invert().unwrap(), g.invert().unwrap());
        assert_eq!(z, x);
    }
    // Large sizes exercise the parallel inner loops: compare with a split computation.
    let n = 1 << 16;
    let x: Vec<Fr> = (0..n).map(|i| Fr::from(i as u64 * 7 + 1)).collect();
    let omega = root_of_unity(16);
    let mut y = x.clone();
    CpuBackend.ntt(&mut y, omega);
    for j in [0usize, 1, 12345, n - 1] {
        let wj = omega.pow_vartime([j as u64]);
        let mut acc = Fr::ZERO;
        let mut w = Fr::ONE;
        for v in &x {
            acc += *v * w;
            w *= wj;
        }
        assert_eq!(y[j], acc, "coefficient {j}");
    }
    CpuBackend.intt(&mut y, omega.invert().unwrap());
    assert_eq!(y, x);
}

#[test]
fn msm_matches_naive_sums_on_edge_cases() {
    let mut r = rng();
    let g = G1Projective::generator();
    for n in [0usize, 1, 2, 33, 300] {
        let mut bases: Vec<G1Affine> = (0..n).map(|_| (g * Fr::random(&mut r)).to_affine()).collect();
        let mut scalars: Vec<Fr> = (0..n).map(|_| Fr::random(&mut r)).collect();
        for i in 0..n {
            match i % 5 {
                0 => scalars[i] = Fr::ZERO,
                1 => scalars[i] = Fr::ONE,
                2 if i > 0 => bases[i] = bases[i - 1],
                3 => bases[i] = G1Affine::identity(),
                _ => {}
            }
        }
        assert_eq!(CpuBackend.msm_g1(&bases, &scalars), naive_msm_g1(&bases, &scalars), "n = {n}");
        let all_ones = vec![Fr::ONE; n];
        assert_eq!(CpuBackend.msm_g1(&bases, &all_ones), naive_msm_g1(&bases, &all_ones));
        let minus_one = vec![-Fr::ONE; n];
        assert_eq!(CpuBackend.msm_g1(&bases, &minus_one), -naive_msm_g1(&bases, &all_ones));
    }
    let h = G2Projective::generator();
    let bases: Vec<G2Affine> = (0..40).map(|i| (h * Fr::from(i as u64 + 1)).to_affine()).collect();
    let scalars: Vec<Fr> = (0..40).map(|i| if i % 3 == 0 { Fr::ONE } else { Fr::from(i as u64 * 1000) }).collect();
    let naive: G2Projective = bases.iter().zip(&scalars).map(|(p, s)| G2Projective::from(*p) * s).sum();
    assert_eq!(CpuBackend.msm_g2(&bases, &scalars), naive);
}
