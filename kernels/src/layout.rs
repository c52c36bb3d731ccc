//! blstrs values viewed as the 32-bit words the CUDA code reads, and device results turned
//! back into blstrs values.
//!
//! blstrs' `Scalar`, `Fp`, `G1Affine`, `G2Affine`, `G1Projective` and `G2Projective` are
//! `#[repr(transparent)]` wrappers of blst's `#[repr(C)]` structs of little-endian `u64`
//! limbs in Montgomery form. On a little-endian machine those bytes read as 32-bit words
//! are the CUDA code's limbs, so uploads need no conversion. Results come back through
//! blstrs' `from_raw_unchecked` constructors, never by casting words into blstrs types,
//! so no alignment is assumed on the way back.

use blstrs::{Fp, Fp2, G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};

#[cfg(not(target_endian = "little"))]
compile_error!("dualchain's kernels share limb layouts with blstrs on little-endian hosts only");

/// Words per value.
pub const FR_WORDS: usize = 8;
pub const FP_WORDS: usize = 12;
pub const G1_AFFINE_WORDS: usize = 2 * FP_WORDS;
pub const G1_JACOBIAN_WORDS: usize = 3 * FP_WORDS;
pub const G2_AFFINE_WORDS: usize = 4 * FP_WORDS;
pub const G2_JACOBIAN_WORDS: usize = 6 * FP_WORDS;

/// Marker for the blstrs types whose memory is a plain array of `u32` words: no padding,
/// no pointers, every bit pattern readable as words.
///
/// # Safety
/// Implementors must be `repr(transparent)`/`repr(C)` aggregates of `u64` limbs only.
unsafe trait Words: Copy {
    const WORDS: usize;
}
// SAFETY: each is repr(transparent) over a repr(C) struct of [u64; k] limbs (blst's
// blst_fr, blst_fp, blst_p1_affine, blst_p1, blst_p2_affine, blst_p2); sizes are checked
// by `sizes_match_blst` below.
unsafe impl Words for Fr {
    const WORDS: usize = FR_WORDS;
}
// SAFETY: as above.
unsafe impl Words for Fp {
    const WORDS: usize = FP_WORDS;
}
// SAFETY: as above.
unsafe impl Words for G1Affine {
    const WORDS: usize = G1_AFFINE_WORDS;
}
// SAFETY: as above.
unsafe impl Words for G2Affine {
    const WORDS: usize = G2_AFFINE_WORDS;
}
// SAFETY: as above (blst_fp12: 72 u64 limbs).
unsafe impl Words for blstrs::Fp12 {
    const WORDS: usize = FP12_WORDS;
}
// SAFETY: as above.
unsafe impl Words for G1Projective {
    const WORDS: usize = G1_JACOBIAN_WORDS;
}
// SAFETY: as above.
unsafe impl Words for G2Projective {
    const WORDS: usize = G2_JACOBIAN_WORDS;
}

fn words<T: Words>(values: &[T]) -> &[u32] {
    debug_assert_eq!(std::mem::size_of::<T>(), T::WORDS * 4);
    // SAFETY: `T: Words` is plain u64 limbs (no padding, any bit pattern valid as u32),
    // u32's alignment divides T's, and the length covers exactly the same bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u32, values.len() * T::WORDS) }
}

pub fn fr_words(v: &[Fr]) -> &[u32] {
    words(v)
}
pub fn fp_words(v: &[Fp]) -> &[u32] {
    words(v)
}
pub fn g1_affine_words(v: &[G1Affine]) -> &[u32] {
    words(v)
}
pub fn g2_affine_words(v: &[G2Affine]) -> &[u32] {
    words(v)
}
pub fn g1_jacobian_words(v: &[G1Projective]) -> &[u32] {
    words(v)
}
pub fn g2_jacobian_words(v: &[G2Projective]) -> &[u32] {
    words(v)
}

/// Writes Montgomery-form words back into scalars (the NTT's output).
pub fn fr_from_words(w: &[u32], out: &mut [Fr]) {
    assert_eq!(w.len(), out.len() * FR_WORDS, "one scalar per 8 words");
    for (s, chunk) in out.iter_mut().zip(w.chunks_exact(FR_WORDS)) {
        *s = fr_from_limbs(chunk);
    }
}

fn limbs<const N: usize>(w: &[u32]) -> [u64; N] {
    let mut l = [0u64; N];
    for (i, limb) in l.iter_mut().enumerate() {
        *limb = w[2 * i] as u64 | (w[2 * i + 1] as u64) << 32;
    }
    l
}

/// A scalar from its 8 Montgomery-form words, as the device stores it.
pub fn fr_from_limbs(w: &[u32]) -> Fr {
    let l: [u64; 4] = limbs(w);
    let mut out = [Fr::default()];
    // SAFETY: `Fr` is repr(transparent) over blst_fr { l: [u64; 4] }; writing the limbs as
    // u64 (natural alignment) produces exactly the value the device held. Values coming from
    // the device are reduced (< r), as every field operation there returns.
    unsafe { std::ptr::write(out.as_mut_ptr() as *mut [u64; 4], l) };
    out[0]
}

pub fn fp_from_words(w: &[u32]) -> Fp {
    Fp::from_raw_unchecked(limbs(w))
}

pub fn fp2_from_words(w: &[u32]) -> Fp2 {
    Fp2::new(fp_from_words(&w[..FP_WORDS]), fp_from_words(&w[FP_WORDS..2 * FP_WORDS]))
}

pub const FP12_WORDS: usize = 12 * FP_WORDS;

/// An Fp12 from the device's words (blst's fp6[2] of fp2[3] layout).
pub fn fp12_from_words(w: &[u32]) -> blstrs::Fp12 {
    let l: [u64; 72] = limbs(&w[..FP12_WORDS]);
    let mut out = [blstrs::Fp12::default()];
    // SAFETY: blstrs' Fp12 is repr(transparent) over blst_fp12, a repr(C) aggregate of 72
    // u64 limbs (checked by `sizes_match_blst`); blstrs exports no constructor from limbs
    // (its Fp6 is private). Device values are reduced, as every device operation returns.
    unsafe { std::ptr::write(out.as_mut_ptr() as *mut [u64; 72], l) };
    out[0]
}

/// The words of an Fp12, for uploads and the host tests.
pub fn fp12_words(f: &blstrs::Fp12) -> Vec<u32> {
    words(std::slice::from_ref(f)).to_vec()
}

/// A Miller loop value as blstrs' `MillerLoopResult`, ready for the final exponentiation.
pub fn miller_result(f: blstrs::Fp12) -> blstrs::MillerLoopResult {
    // SAFETY: MillerLoopResult is #[repr(transparent)] over Fp12 (blstrs 0.7), so the two
    // have the same size and layout and every Fp12 is a valid MillerLoopResult; blstrs
    // exposes no constructor. `sizes_match_blst` checks the sizes.
    unsafe { std::mem::transmute::<blstrs::Fp12, blstrs::MillerLoopResult>(f) }
}

/// A G1 point from the device's Jacobian words (Z = 0 is the identity, as in blst).
pub fn g1_from_jacobian_words(w: &[u32]) -> G1Projective {
    let f = |i: usize| fp_from_words(&w[i * FP_WORDS..(i + 1) * FP_WORDS]);
    G1Projective::from_raw_unchecked(f(0), f(1), f(2))
}

pub fn g2_from_jacobian_words(w: &[u32]) -> G2Projective {
    let f = |i: usize| fp2_from_words(&w[i * 2 * FP_WORDS..(i + 1) * 2 * FP_WORDS]);
    G2Projective::from_raw_unchecked(f(0), f(1), f(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;
    use group::{Curve, Group};
    use rand::SeedableRng;

    #[test]
    fn sizes_match_blst() {
        use std::mem::size_of;
        assert_eq!(size_of::<Fr>(), 32);
        assert_eq!(size_of::<Fp>(), 48);
        assert_eq!(size_of::<G1Affine>(), 96);
        assert_eq!(size_of::<G2Affine>(), 192);
        assert_eq!(size_of::<G1Projective>(), 144);
        assert_eq!(size_of::<G2Projective>(), 288);
        assert_eq!(size_of::<blstrs::Fp12>(), FP12_WORDS * 4);
        assert_eq!(size_of::<blstrs::MillerLoopResult>(), size_of::<blstrs::Fp12>());
    }

    #[test]
    fn words_round_trip() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s: Vec<Fr> = (0..5).map(|_| Fr::random(&mut rng)).collect();
        let mut back = vec![Fr::ZERO; 5];
        fr_from_words(fr_words(&s), &mut back);
        assert_eq!(s, back);
        let p = G1Projective::random(&mut rng);
        assert_eq!(g1_from_jacobian_words(g1_jacobian_words(&[p])), p);
        let q = G2Projective::random(&mut rng);
        assert_eq!(g2_from_jacobian_words(g2_jacobian_words(&[q])), q);
        // The affine layout is (x, y), Montgomery limbs.
        let a = p.to_affine();
        let w = g1_affine_words(std::slice::from_ref(&a));
        assert_eq!(fp_from_words(&w[..FP_WORDS]), a.x());
        assert_eq!(fp_from_words(&w[FP_WORDS..]), a.y());
        // The identity's affine form is all zeros, which the device reads as infinity.
        assert!(g1_affine_words(&[G1Projective::identity().to_affine()]).iter().all(|w| *w == 0));
        assert!(g2_affine_words(&[G2Projective::identity().to_affine()]).iter().all(|w| *w == 0));
    }
}
