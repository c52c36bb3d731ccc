//! The CUDA arithmetic and kernel bodies compiled for the host (`cuda/host/shim.cpp`,
//! built by `build.rs`). This is the same C++ the device runs, executed one "thread" at a
//! time; the tests compare it with blstrs, so the arithmetic is checked in CI on machines
//! without a GPU. It is a reference, not a fast path: use the CPU backend for work.

use blstrs::{Fp, Fp2, G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};

use crate::layout::*;
use crate::msm::MsmPlan;

mod ffi {
    extern "C" {
        pub fn dc_fp_mul(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fp_add(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fp_sub(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fp_neg(a: *const u32, r: *mut u32);
        pub fn dc_fr_mul(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fr_add(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fr_sub(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fr_from_mont(a: *const u32, r: *mut u32);
        pub fn dc_fp2_mul(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_fp2_sqr(a: *const u32, r: *mut u32);
        pub fn dc_g1_add(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g1_dbl(p: *const u32, r: *mut u32);
        pub fn dc_g1_add_affine(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g1_xyzz_add(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g1_xyzz_add_affine(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g1_xyzz_dbl(p: *const u32, r: *mut u32);
        pub fn dc_g2_xyzz_add(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g2_xyzz_add_affine(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g2_xyzz_dbl(p: *const u32, r: *mut u32);
        pub fn dc_g1_xyzz_add_affine_cost(p: *const u32, q: *const u32) -> u64;
        pub fn dc_g2_add(p: *const u32, q: *const u32, r: *mut u32);
        pub fn dc_g2_dbl(p: *const u32, r: *mut u32);
        pub fn dc_g2_add_affine(p: *const u32, q: *const u32, r: *mut u32);
        #[allow(clippy::too_many_arguments)]
        pub fn dc_msm_g1(
            bases: *const u32,
            scalars: *const u32,
            n: u32,
            c: u32,
            windows: u32,
            k: u32,
            segments: u32,
            shifted: u32,
            upload_chunk: u32,
            rounds: u32,
            slice: u32,
            group: u32,
            out: *mut u32,
        );
        #[allow(clippy::too_many_arguments)]
        pub fn dc_msm_g2(
            bases: *const u32,
            scalars: *const u32,
            n: u32,
            c: u32,
            windows: u32,
            k: u32,
            segments: u32,
            shifted: u32,
            upload_chunk: u32,
            rounds: u32,
            slice: u32,
            group: u32,
            out: *mut u32,
        );
        pub fn dc_ntt(a: *mut u32, log_n: u32, omega: *const u32, pass_max: u32);
        pub fn dc_quotient(a: *mut u32, b: *mut u32, c: *mut u32, log_n: u32, consts: *const u32, pass_max: u32);
        pub fn dc_fp12_mul(a: *const u32, b: *const u32, r: *mut u32);
        pub fn dc_miller_product(n: u32, p: *const u32, q: *const u32, out: *mut u32);
        pub fn dc_g1_scale(n: u32, input: *const u32, k: *const u32, bits: u32, out: *mut u32);
        pub fn dc_take_mul_count() -> u64;
        pub fn dc_msm_shift_g1(bases: *const u32, n: u32, c: u32, windows: u32, table: *mut u32);
        pub fn dc_fp_inv(a: *const u32, r: *mut u32);
        pub fn dc_fp2_inv(a: *const u32, r: *mut u32);
    }
}

/// Runs `f` and counts the field multiplications (Fp for G1 and G2, Fr for the NTT) the
/// device code made on this thread meanwhile: the cost of an algorithm in the operation that
/// dominates it on the device, measured without a device.
pub fn count_field_muls<T>(f: impl FnOnce() -> T) -> (T, u64) {
    // SAFETY: reads and resets a thread-local counter; no arguments.
    unsafe { ffi::dc_take_mul_count() };
    let out = f();
    // SAFETY: as above.
    (out, unsafe { ffi::dc_take_mul_count() })
}

type Binary = unsafe extern "C" fn(*const u32, *const u32, *mut u32);
type Unary = unsafe extern "C" fn(*const u32, *mut u32);

/// Calls a C function reading one value from each of `a` and `b` (callers pass exactly one
/// whole value each: an element, or a Jacobian and an affine point) and writing one value of
/// `out_words` words.
fn binary(f: Binary, a: &[u32], b: &[u32], out_words: usize) -> Vec<u32> {
    assert!(!a.is_empty() && !b.is_empty());
    let mut r = vec![0u32; out_words];
    // SAFETY: each input slice is one whole value of the type the C function reads (see the
    // callers), and `r` has the `out_words` words it writes.
    unsafe { f(a.as_ptr(), b.as_ptr(), r.as_mut_ptr()) };
    r
}

fn unary(f: Unary, a: &[u32], out_words: usize) -> Vec<u32> {
    assert!(a.len() >= out_words);
    let mut r = vec![0u32; out_words];
    // SAFETY: as in `binary`.
    unsafe { f(a.as_ptr(), r.as_mut_ptr()) };
    r
}

fn fp(a: &Fp) -> &[u32] {
    fp_words(std::slice::from_ref(a))
}
fn fr(a: &Fr) -> &[u32] {
    fr_words(std::slice::from_ref(a))
}
fn fp2(a: &Fp2) -> Vec<u32> {
    [fp(&a.c0()), fp(&a.c1())].concat()
}

pub fn fp_mul(a: &Fp, b: &Fp) -> Fp {
    fp_from_words(&binary(ffi::dc_fp_mul, fp(a), fp(b), FP_WORDS))
}
pub fn fp_add(a: &Fp, b: &Fp) -> Fp {
    fp_from_words(&binary(ffi::dc_fp_add, fp(a), fp(b), FP_WORDS))
}
pub fn fp_sub(a: &Fp, b: &Fp) -> Fp {
    fp_from_words(&binary(ffi::dc_fp_sub, fp(a), fp(b), FP_WORDS))
}
pub fn fp_neg(a: &Fp) -> Fp {
    fp_from_words(&unary(ffi::dc_fp_neg, fp(a), FP_WORDS))
}
pub fn fr_mul(a: &Fr, b: &Fr) -> Fr {
    fr_from_limbs(&binary(ffi::dc_fr_mul, fr(a), fr(b), FR_WORDS))
}
pub fn fr_add(a: &Fr, b: &Fr) -> Fr {
    fr_from_limbs(&binary(ffi::dc_fr_add, fr(a), fr(b), FR_WORDS))
}
pub fn fr_sub(a: &Fr, b: &Fr) -> Fr {
    fr_from_limbs(&binary(ffi::dc_fr_sub, fr(a), fr(b), FR_WORDS))
}
/// The canonical integer's little-endian 32-bit words.
pub fn fr_canonical_words(a: &Fr) -> Vec<u32> {
    unary(ffi::dc_fr_from_mont, fr(a), FR_WORDS)
}
pub fn fp2_mul(a: &Fp2, b: &Fp2) -> Fp2 {
    fp2_from_words(&binary(ffi::dc_fp2_mul, &fp2(a), &fp2(b), 2 * FP_WORDS))
}
pub fn fp2_sqr(a: &Fp2) -> Fp2 {
    fp2_from_words(&unary(ffi::dc_fp2_sqr, &fp2(a), 2 * FP_WORDS))
}

fn g1(p: &G1Projective) -> &[u32] {
    g1_jacobian_words(std::slice::from_ref(p))
}
fn g2(p: &G2Projective) -> &[u32] {
    g2_jacobian_words(std::slice::from_ref(p))
}
pub fn g1_add(p: &G1Projective, q: &G1Projective) -> G1Projective {
    g1_from_jacobian_words(&binary(ffi::dc_g1_add, g1(p), g1(q), G1_JACOBIAN_WORDS))
}
pub fn g1_dbl(p: &G1Projective) -> G1Projective {
    g1_from_jacobian_words(&unary(ffi::dc_g1_dbl, g1(p), G1_JACOBIAN_WORDS))
}
pub fn g1_add_affine(p: &G1Projective, q: &G1Affine) -> G1Projective {
    let q = g1_affine_words(std::slice::from_ref(q));
    g1_from_jacobian_words(&binary(ffi::dc_g1_add_affine, g1(p), q, G1_JACOBIAN_WORDS))
}
pub fn g2_add(p: &G2Projective, q: &G2Projective) -> G2Projective {
    g2_from_jacobian_words(&binary(ffi::dc_g2_add, g2(p), g2(q), G2_JACOBIAN_WORDS))
}
pub fn g2_dbl(p: &G2Projective) -> G2Projective {
    g2_from_jacobian_words(&unary(ffi::dc_g2_dbl, g2(p), G2_JACOBIAN_WORDS))
}
pub fn g2_add_affine(p: &G2Projective, q: &G2Affine) -> G2Projective {
    let q = g2_affine_words(std::slice::from_ref(q));
    g2_from_jacobian_words(&binary(ffi::dc_g2_add_affine, g2(p), q, G2_JACOBIAN_WORDS))
}

/// The XYZZ bucket formulas (`cuda/ec/xyzz.cuh`) on general inputs: each Jacobian input
/// becomes (X, Y, Z², Z³) and the result comes back to Jacobian coordinates.
pub fn g1_xyzz_add(p: &G1Projective, q: &G1Projective) -> G1Projective {
    g1_from_jacobian_words(&binary(ffi::dc_g1_xyzz_add, g1(p), g1(q), G1_JACOBIAN_WORDS))
}
pub fn g1_xyzz_add_affine(p: &G1Projective, q: &G1Affine) -> G1Projective {
    let q = g1_affine_words(std::slice::from_ref(q));
    g1_from_jacobian_words(&binary(ffi::dc_g1_xyzz_add_affine, g1(p), q, G1_JACOBIAN_WORDS))
}
pub fn g1_xyzz_dbl(p: &G1Projective) -> G1Projective {
    g1_from_jacobian_words(&unary(ffi::dc_g1_xyzz_dbl, g1(p), G1_JACOBIAN_WORDS))
}
pub fn g2_xyzz_add(p: &G2Projective, q: &G2Projective) -> G2Projective {
    g2_from_jacobian_words(&binary(ffi::dc_g2_xyzz_add, g2(p), g2(q), G2_JACOBIAN_WORDS))
}
pub fn g2_xyzz_add_affine(p: &G2Projective, q: &G2Affine) -> G2Projective {
    let q = g2_affine_words(std::slice::from_ref(q));
    g2_from_jacobian_words(&binary(ffi::dc_g2_xyzz_add_affine, g2(p), q, G2_JACOBIAN_WORDS))
}
pub fn g2_xyzz_dbl(p: &G2Projective) -> G2Projective {
    g2_from_jacobian_words(&unary(ffi::dc_g2_xyzz_dbl, g2(p), G2_JACOBIAN_WORDS))
}

/// Field multiplications (squarings included) in one mixed XYZZ addition of a general
/// bucket point and an affine point: the MSM's inner loop.
pub fn g1_bucket_addition_cost(p: &G1Projective, q: &G1Affine) -> u64 {
    let q = g1_affine_words(std::slice::from_ref(q));
    // SAFETY: p is one Jacobian point (36 words), q one affine point (24 words).
    unsafe { ffi::dc_g1_xyzz_add_affine_cost(g1(p).as_ptr(), q.as_ptr()) }
}

type MsmEmulation =
    unsafe extern "C" fn(*const u32, *const u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, *mut u32);

/// Runs the MSM emulation `f` (every device phase, the window combination included) on
/// base words.
fn msm<G: group::Group>(
    f: MsmEmulation,
    base_words: &[u32],
    scalars: &[Fr],
    plan: &MsmPlan,
    jacobian_words: usize,
    from_words: fn(&[u32]) -> G,
) -> G {
    assert_eq!(plan.n as usize, scalars.len());
    assert_eq!(base_words.len(), scalars.len() * jacobian_words / 3 * 2, "one base per scalar");
    let mut out = vec![0u32; jacobian_words];
    // SAFETY: the bases hold n points (asserted), scalars n·8 words, `out` one Jacobian
    // point; the emulation reads and writes exactly those for this plan.
    unsafe {
        f(
            base_words.as_ptr(),
            fr_words(scalars).as_ptr(),
            plan.n,
            plan.c,
            plan.windows,
            plan.chunk,
            plan.segments,
            plan.shifted as u32,
            plan.upload_chunk,
            plan.affine.rounds,
            plan.affine.slice,
            plan.affine.group,
            out.as_mut_ptr(),
        )
    };
    from_words(&out)
}

/// Phase 0 of the shifted-base MSM: the words of the affine points 2^(c·w)·P_i, window
/// by window (`windows·n` points).
pub fn g1_shift_table(bases: &[G1Affine], c: u32, windows: u32) -> Vec<u32> {
    let words = g1_affine_words(bases);
    let mut table = vec![0u32; windows as usize * words.len()];
    // SAFETY: `bases` holds n affine points, `table` windows·n of them.
    unsafe { ffi::dc_msm_shift_g1(words.as_ptr(), bases.len() as u32, c, windows, table.as_mut_ptr()) };
    table
}

/// The device's Fermat inversions (0 for 0).
pub fn fp_inv(a: &Fp) -> Fp {
    fp_from_words(&unary(ffi::dc_fp_inv, fp(a), FP_WORDS))
}
pub fn fp2_inv(a: &Fp2) -> Fp2 {
    fp2_from_words(&unary(ffi::dc_fp2_inv, &fp2(a), 2 * FP_WORDS))
}

/// The device MSM algorithm run on the host with `plan`, phase by phase as CudaMsm
/// launches it (the shifted table made first when the plan runs on one).
pub fn msm_g1(bases: &[G1Affine], scalars: &[Fr], plan: &MsmPlan) -> G1Projective {
    msm(ffi::dc_msm_g1, g1_affine_words(bases), scalars, plan, G1_JACOBIAN_WORDS, g1_from_jacobian_words)
}

pub fn msm_g2(bases: &[G2Affine], scalars: &[Fr], plan: &MsmPlan) -> G2Projective {
    msm(ffi::dc_msm_g2, g2_affine_words(bases), scalars, plan, G2_JACOBIAN_WORDS, g2_from_jacobian_words)
}

pub fn fp12_mul(a: &blstrs::Fp12, b: &blstrs::Fp12) -> blstrs::Fp12 {
    fp12_from_words(&binary(ffi::dc_fp12_mul, &fp12_words(a), &fp12_words(b), FP12_WORDS))
}

/// The product of the Miller loops of `(p_i, q_i)`, as the pairing kernels compute it.
pub fn miller_product(p: &[G1Affine], q: &[G2Affine]) -> blstrs::MillerLoopResult {
    assert_eq!(p.len(), q.len());
    let mut out = vec![0u32; FP12_WORDS];
    // SAFETY: p holds n·24 words, q n·48, out one Fp12 (144 words).
    unsafe {
        ffi::dc_miller_product(
            p.len() as u32,
            g1_affine_words(p).as_ptr(),
            g2_affine_words(q).as_ptr(),
            out.as_mut_ptr(),
        )
    };
    miller_result(fp12_from_words(&out))
}

/// The `g1_scale` kernel body run on the host: `k·P_i` for every point.
pub fn g1_scale(points: &[G1Affine], k: &Fr) -> Vec<G1Projective> {
    let (words, bits) = crate::reencrypt::scalar_bits(k);
    let mut out = vec![0u32; points.len() * G1_JACOBIAN_WORDS];
    // SAFETY: `points` holds n·24 words, `words` 8, `out` n·36: what dc_g1_scale reads and
    // writes for n = points.len().
    unsafe {
        ffi::dc_g1_scale(points.len() as u32, g1_affine_words(points).as_ptr(), words.as_ptr(), bits, out.as_mut_ptr())
    };
    out.chunks_exact(G1_JACOBIAN_WORDS).map(g1_from_jacobian_words).collect()
}

/// The device NTT run on the host: forward transform with root `omega`, in place, in
/// passes of up to `pass_max` stages (the device uses [`crate::ntt::PASS_MAX`]).
pub fn ntt(values: &mut [Fr], omega: Fr, pass_max: u32) {
    let n = values.len();
    assert!(n.is_power_of_two(), "NTT length must be a power of two");
    assert!((1..=crate::ntt::PASS_MAX).contains(&pass_max));
    let mut w = fr_words(values).to_vec();
    // SAFETY: `w` holds n·8 words, n = 2^log_n; omega is 8 words.
    unsafe { ffi::dc_ntt(w.as_mut_ptr(), n.trailing_zeros(), fr(&omega).as_ptr(), pass_max) };
    fr_from_words(&w, values);
}

/// The device's QAP quotient run on the host, launch by launch as `CudaNtt` runs it: the
/// m − 1 coefficients of h from the evaluations a, b, c (each at most m long).
pub fn quotient(a: &[Fr], b: &[Fr], c: &[Fr], m: usize, pass_max: u32) -> Vec<Fr> {
    assert!(m.is_power_of_two() && a.len() <= m && b.len() <= m && c.len() <= m);
    assert!((1..=crate::ntt::PASS_MAX).contains(&pass_max));
    let d = dualchain_prover::backend::QuotientDomain::new(m);
    let consts: Vec<u32> =
        [d.omega, d.omega_inv, d.g, d.g_inv, d.m_inv, d.z_inv].iter().flat_map(|x| fr(x).to_vec()).collect();
    let padded = |v: &[Fr]| {
        let mut p = v.to_vec();
        p.resize(m, Fr::from(0u64));
        fr_words(&p).to_vec()
    };
    let (mut wa, mut wb, mut wc) = (padded(a), padded(b), padded(c));
    // SAFETY: wa, wb, wc hold m·8 words each, m = 2^log_n; consts 6·8 words.
    unsafe {
        ffi::dc_quotient(
            wa.as_mut_ptr(),
            wb.as_mut_ptr(),
            wc.as_mut_ptr(),
            m.trailing_zeros(),
            consts.as_ptr(),
            pass_max,
        )
    };
    let mut out = vec![Fr::from(0u64); m];
    fr_from_words(&wa, &mut out);
    out.truncate(m - 1);
    out
}
