// Radix-2 number-theoretic transform over BLS12-381's Fr, in Montgomery form (blstrs'
// `Scalar` layout), as per-thread bodies shared by the kernels (ntt.cu) and the host
// emulation. The forward transform is decimation in time: a bit-reversal permutation,
// then log n butterfly stages; stage s pairs elements 2^s apart with twiddle
// ω^(k·n/2^(s+1)). The twiddles ω^0..ω^(n/2-1) are built on the device from the
// log n powers ω^(2^j) the host supplies; the same trick gives g^i for coset scaling.
//
// The stages run in passes of up to DC_NTT_PASS_MAX stages: pass (s0, k) covers stages
// s0..s0+k-1, which only ever pair elements whose indices differ in bits s0..s0+k-1, so
// each group of 2^k such elements is loaded once into shared memory, transformed there
// through k stages and stored once: ceil(log n / DC_NTT_PASS_MAX) trips over global
// memory instead of log n.
#pragma once
#include "../ff/field.cuh"

DC_HD u32 ntt_bit_reverse(u32 x, u32 bits) {
  u32 r = 0;
  for (u32 b = 0; b < bits; b++) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

// out[i] = base^i, with pow2[j] = base^(2^j) for j < bits.
DC_HD void ntt_powers_body(u32 i, u32 count, const Fr* pow2, u32 bits, Fr* out) {
  if (i >= count) return;
  Fr acc = Fr::one();
  for (u32 j = 0; j < bits; j++)
    if ((i >> j) & 1) acc = Fr::mul(acc, pow2[j]);
  out[i] = acc;
}

// Swap a[i] and a[rev(i)] once per pair, i < n.
DC_HD void ntt_bitrev_body(u32 i, u32 log_n, Fr* a) {
  u32 n = 1u << log_n;
  if (i >= n) return;
  u32 j = ntt_bit_reverse(i, log_n);
  if (i < j) {
    Fr t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

// Stages per shared-memory pass: 2^9 scalars (16 KiB) and 256 threads per block.
#define DC_NTT_PASS_MAX 9

// Global index of element j of group g in the pass whose first stage is s0 and which
// covers k stages: bits s0..s0+k-1 are j, the others are g's.
DC_HD u32 ntt_pass_index(u32 g, u32 j, u32 s0, u32 k) {
  u32 low = g & ((1u << s0) - 1);
  u32 high = g >> s0;
  return (high << (s0 + k)) | (j << s0) | low;
}

// Butterfly t < 2^(k-1) of stage s (s0 <= s < s0 + k) on group g's 2^k values in `buf`.
// The twiddle is the global one: the pair's lower element is x_g with x_g mod 2^s =
// ((x mod 2^(s-s0)) << s0) | (g mod 2^s0).
DC_HD void ntt_pass_butterfly_body(u32 t, u32 g, u32 log_n, u32 s0, u32 s, const Fr* twiddles,
                                   Fr* buf) {
  u32 r = s - s0;
  u32 half = 1u << r;
  u32 blk = t >> r, kk = t & (half - 1);
  u32 x = blk * 2 * half + kk, y = x + half;
  u32 tw = (kk << s0) | (g & ((1u << s0) - 1));
  Fr w = twiddles[(u64)tw << (log_n - 1 - s)];
  Fr v = Fr::mul(buf[y], w);
  Fr u = buf[x];
  buf[x] = Fr::add(u, v);
  buf[y] = Fr::sub(u, v);
}

// The QAP's pointwise step on the coset: a[i] = (a[i]·b[i] − c[i])·z_inv, where z_inv is
// 1/Z(g·ω^i), the same for every i.
DC_HD void ntt_qap_body(u32 i, u32 n, const Fr* b, const Fr* c, Fr z_inv, Fr* a) {
  if (i >= n) return;
  a[i] = Fr::mul(Fr::sub(Fr::mul(a[i], b[i]), c[i]), z_inv);
}

// a[i] *= factors[i] (coset scaling with factors = g^i).
DC_HD void ntt_mul_body(u32 i, u32 n, const Fr* factors, Fr* a) {
  if (i >= n) return;
  a[i] = Fr::mul(a[i], factors[i]);
}

// a[i] *= c (the 1/n of the inverse transform).
DC_HD void ntt_scale_body(u32 i, u32 n, Fr c, Fr* a) {
  if (i >= n) return;
  a[i] = Fr::mul(a[i], c);
}
