//! Backends for the heavy kernels of proving: multi-scalar multiplication in G1 and G2
//! ([`MsmBackend`]) and the number-theoretic transform over Fr ([`NttBackend`]).
//!
//! The CPU implementations are always present; a GPU backend (the `kernels` crate) plugs
//! in behind the same traits and must return bit-identical results.

use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, MillerLoopResult, Scalar as Fr};
use ff::{Field, PrimeField};
use group::Group;
use pairing::MultiMillerLoop;
use rayon::prelude::*;

use crate::ntt;

/// Multi-scalar multiplication `Σ s_i·P_i`.
pub trait MsmBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// `bases.len() == scalars.len()`.
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective;
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective;

    /// Whether the prover should run a G2 MSM of `points` on the CPU, beside this
    /// backend's G1 MSMs, because it finishes sooner there than queued behind them (a
    /// device backend's choice; the CPU backend's MSMs run one after the other).
    fn g2_on_cpu(&self, _points: usize) -> bool {
        false
    }
}

/// Radix-2 NTT over Fr for power-of-two lengths.
pub trait NttBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// In-place forward transform: `a_j ← Σ_i a_i·ω^(ij)` with `ω` a primitive `len`-th root.
    fn ntt(&self, values: &mut [Fr], omega: Fr);

    /// Inverse transform.
    fn intt(&self, values: &mut [Fr], omega_inv: Fr) {
        self.ntt(values, omega_inv);
        let n_inv = Fr::from(values.len() as u64).invert().expect("a power of two is invertible");
        values.par_iter_mut().for_each(|v| *v *= n_inv);
    }

    /// Evaluation on the coset `g·⟨ω⟩`: scale coefficient i by g^i, then transform.
    fn coset_ntt(&self, values: &mut [Fr], omega: Fr, g: Fr) {
        ntt::scale_by_powers(values, g);
        self.ntt(values, omega);
    }

    /// Interpolation from the coset `g·⟨ω⟩`.
    fn icoset_ntt(&self, values: &mut [Fr], omega_inv: Fr, g_inv: Fr) {
        self.intt(values, omega_inv);
        ntt::scale_by_powers(values, g_inv);
    }

    /// The QAP's quotient: the m − 1 coefficients of `h(X) = (A(X)·B(X) − C(X))/Z(X)`,
    /// from the evaluations `a`, `b`, `c` of A, B, C on the domain ⟨ω⟩ of size m (each
    /// padded with zeros to m). A backend may run the whole step where its data is (the
    /// CUDA backend keeps the three vectors on the device from upload to h).
    fn quotient(&self, a: Vec<Fr>, b: Vec<Fr>, c: Vec<Fr>, m: usize) -> Vec<Fr> {
        quotient_by_transforms(self, a, b, c, m)
    }

    /// The quotient's H-query MSM `Σ h_i·H_i` straight from the evaluations, for a backend
    /// that hands h to its MSM where h is (the CUDA backend, on the device: h is neither
    /// downloaded nor uploaded again). `None` where it does not: the prover then computes
    /// [`NttBackend::quotient`] and the MSM through its [`MsmBackend`]. `h_bases` is the
    /// H query, m − 1 points.
    fn quotient_h_msm(&self, _a: &[Fr], _b: &[Fr], _c: &[Fr], _m: usize, _h_bases: &[G1Affine]) -> Option<QuotientMsm> {
        None
    }
}

/// What [`NttBackend::quotient_h_msm`] returns: the H MSM and the time of each part.
#[derive(Debug, Clone, Copy)]
pub struct QuotientMsm {
    pub h_acc: G1Projective,
    pub ntt: std::time::Duration,
    pub msm: std::time::Duration,
}

/// The constants of the QAP's quotient over a domain of size m.
#[derive(Debug, Clone, Copy)]
pub struct QuotientDomain {
    pub omega: Fr,
    pub omega_inv: Fr,
    /// The coset's shift g (Fr's multiplicative generator) and its inverse.
    pub g: Fr,
    pub g_inv: Fr,
    /// 1/m.
    pub m_inv: Fr,
    /// 1/Z(g·ω^i) = 1/(g^m − 1), the same for every i.
    pub z_inv: Fr,
}

impl QuotientDomain {
    pub fn new(m: usize) -> Self {
        assert!(m.is_power_of_two(), "the QAP domain is a power of two");
        let omega = ntt::root_of_unity(m.trailing_zeros());
        let g = Fr::MULTIPLICATIVE_GENERATOR;
        Self {
            omega,
            omega_inv: omega.invert().expect("a root of unity is invertible"),
            g,
            g_inv: g.invert().expect("the generator is invertible"),
            m_inv: Fr::from(m as u64).invert().expect("a power of two is invertible"),
            z_inv: (g.pow_vartime([m as u64]) - Fr::ONE).invert().expect("the coset avoids the domain"),
        }
    }
}

/// The quotient through a backend's transforms: interpolate each of a, b, c, evaluate on
/// the coset `g·⟨ω⟩`, divide `a·b − c` by Z there (constant on the coset), interpolate
/// back from the coset.
pub fn quotient_by_transforms<B: NttBackend + ?Sized>(
    ntt: &B,
    mut a: Vec<Fr>,
    mut b: Vec<Fr>,
    mut c: Vec<Fr>,
    m: usize,
) -> Vec<Fr> {
    let d = QuotientDomain::new(m);
    for v in [&mut a, &mut b, &mut c] {
        v.resize(m, Fr::ZERO);
        ntt.intt(v, d.omega_inv);
        ntt.coset_ntt(v, d.omega, d.g);
    }
    let z_inv = d.z_inv;
    a.par_iter_mut().zip(b.par_iter()).zip(c.par_iter()).for_each(|((x, y), z)| {
        *x = (*x * y - z) * z_inv;
    });
    ntt.icoset_ntt(&mut a, d.omega_inv, d.g_inv);
    a.truncate(m - 1);
    a
}

/// Products of Miller loops `Π f(P_i, Q_i)` over pairs whose G2 points change with every
/// call (the B of each proof in a batch verification); the final exponentiation stays
/// with the caller.
pub trait MillerBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// `p.len() == q.len()`.
    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult;
}

/// The CPU backend: blst's Pippenger for the general part of an MSM, with zero scalars
/// skipped and unit scalars (bits are common in witnesses) summed directly; a parallel
/// iterative radix-2 NTT.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

/// Splits an MSM into (sum of bases with scalar 1, remaining bases and scalars); zero
/// scalars are dropped. This is exact: Σ s_i·P_i = Σ_{s_i=1} P_i + Σ_{s_i∉{0,1}} s_i·P_i.
fn split<P: Copy + Send + Sync, Q: Group + Send + Sync + std::ops::AddAssign<P>>(
    bases: &[P],
    scalars: &[Fr],
    to_projective: impl Fn(&P) -> Q + Sync,
) -> (Q, Vec<Q>, Vec<Fr>) {
    assert_eq!(bases.len(), scalars.len(), "one scalar per base");
    const CHUNK: usize = 4096;
    let parts: Vec<(Q, Vec<Q>, Vec<Fr>)> = bases
        .par_chunks(CHUNK)
        .zip(scalars.par_chunks(CHUNK))
        .map(|(b, s)| {
            let mut ones = Q::identity();
            let mut rest_b = Vec::new();
            let mut rest_s = Vec::new();
            for (p, k) in b.iter().zip(s) {
                if k.is_zero_vartime() {
                    continue;
                }
                if *k == Fr::ONE {
                    ones += *p;
                } else {
                    rest_b.push(to_projective(p));
                    rest_s.push(*k);
                }
            }
            (ones, rest_b, rest_s)
        })
        .collect();
    let mut ones = Q::identity();
    let mut rest_b = Vec::new();
    let mut rest_s = Vec::new();
    for (o, b, s) in parts {
        ones += o;
        rest_b.extend(b);
        rest_s.extend(s);
    }
    (ones, rest_b, rest_s)
}

impl MsmBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        let (ones, b, s) = split::<G1Affine, G1Projective>(bases, scalars, |p| G1Projective::from(*p));
        if b.is_empty() {
            return ones;
        }
        ones + G1Projective::multi_exp(&b, &s)
    }

    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        let (ones, b, s) = split::<G2Affine, G2Projective>(bases, scalars, |p| G2Projective::from(*p));
        if b.is_empty() {
            return ones;
        }
        ones + G2Projective::multi_exp(&b, &s)
    }
}

impl NttBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn ntt(&self, values: &mut [Fr], omega: Fr) {
        ntt::ntt_in_place(values, omega);
    }
}

impl MillerBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    /// blst's multi-Miller loop, independent chunks in parallel.
    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
        assert_eq!(p.len(), q.len(), "one G2 point per G1 point");
        let prepared: Vec<G2Prepared> = q.par_iter().map(|b| G2Prepared::from(*b)).collect();
        let terms: Vec<(&G1Affine, &G2Prepared)> = p.iter().zip(prepared.iter()).collect();
        let chunk = terms.len().div_ceil(rayon::current_num_threads()).max(1);
        terms.par_chunks(chunk).map(Bls12::multi_miller_loop).reduce_with(|a, b| a + b).unwrap_or_default()
    }
}

/// The straightforward MSM, used as the reference in differential tests.
pub fn naive_msm_g1(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
    bases.iter().zip(scalars).map(|(p, s)| G1Projective::from(*p) * s).sum()
}
