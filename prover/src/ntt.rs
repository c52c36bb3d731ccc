//! CPU number-theoretic transform over BLS12-381's Fr: iterative radix-2 Cooley–Tukey
//! (decimation in time after a bit-reversal permutation) with a precomputed twiddle table,
//! parallel over butterfly blocks and, in the late stages, within blocks.

use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};
use rayon::prelude::*;

/// Smallest stage block handled by splitting its butterflies across threads.
const PAR_INNER_MIN: usize = 1 << 12;
const PAR_CHUNK: usize = 1 << 10;

/// The primitive 2^log_n-th root of unity bellperson's evaluation domain uses.
pub fn root_of_unity(log_n: u32) -> Fr {
    assert!(log_n <= Fr::S, "domain 2^{log_n} exceeds Fr's two-adicity {}", Fr::S);
    let mut omega = Fr::ROOT_OF_UNITY;
    for _ in log_n..Fr::S {
        omega = omega.square();
    }
    omega
}

/// `[1, w, w^2, …, w^(n−1)]`, computed in parallel blocks.
pub fn powers(w: Fr, n: usize) -> Vec<Fr> {
    let mut out = vec![Fr::ZERO; n];
    out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut cur = w.pow_vartime([(i * PAR_CHUNK) as u64]);
        for v in chunk {
            *v = cur;
            cur *= w;
        }
    });
    out
}

/// `a_i ← a_i·g^i`.
pub fn scale_by_powers(a: &mut [Fr], g: Fr) {
    a.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut cur = g.pow_vartime([(i * PAR_CHUNK) as u64]);
        for v in chunk {
            *v *= cur;
            cur *= g;
        }
    });
}

fn bit_reverse(a: &mut [Fr]) {
    let n = a.len();
    let log_n = n.trailing_zeros();
    if log_n == 0 {
        return;
    }
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - log_n);
        if i < j {
            a.swap(i, j);
        }
    }
}

/// In-place forward NTT of a power-of-two-length slice with the primitive root `omega`.
pub fn ntt_in_place(a: &mut [Fr], omega: Fr) {
    let n = a.len();
    assert!(n.is_power_of_two(), "NTT length {n} is not a power of two");
    if n == 1 {
        return;
    }
    bit_reverse(a);
    let twiddles = powers(omega, n / 2);
    let mut m = 1;
    while m < n {
        let stride = n / (2 * m);
        let tw = &twiddles;
        if m >= PAR_INNER_MIN {
            for block in a.chunks_mut(2 * m) {
                let (lo, hi) = block.split_at_mut(m);
                lo.par_chunks_mut(PAR_CHUNK).zip(hi.par_chunks_mut(PAR_CHUNK)).enumerate().for_each(|(c, (l, h))| {
                    for j in 0..l.len() {
                        let t = h[j] * tw[(c * PAR_CHUNK + j) * stride];
                        h[j] = l[j] - t;
                        l[j] += t;
                    }
                });
            }
        } else {
            a.par_chunks_mut((2 * m).max(PAR_CHUNK)).for_each(|group| {
                for block in group.chunks_mut(2 * m) {
                    let (lo, hi) = block.split_at_mut(m);
                    for j in 0..m {
                        let t = hi[j] * tw[j * stride];
                        hi[j] = lo[j] - t;
                        lo[j] += t;
                    }
                }
            });
        }
        m *= 2;
    }
}

/// The quadratic-time DFT, the reference for differential tests.
pub fn naive_dft(a: &[Fr], omega: Fr) -> Vec<Fr> {
    let n = a.len();
    (0..n)
        .map(|j| {
            let wj = omega.pow_vartime([j as u64]);
            let mut acc = Fr::ZERO;
            let mut w = Fr::ONE;
            for x in a {
                acc += *x * w;
                w *= wj;
            }
            acc
        })
        .collect()
}
