// Radix-2 number-theoretic transform over BLS12-381's Fr, in Montgomery form (blstrs'
// `Scalar` layout), as per-thread bodies shared by the kernels (ntt.cu) and the host
// emulation. The forward transform is decimation in time: a bit-reversal permutation,
// then log n butterfly stages; stage s pairs elements 2^s apart with twiddle
// ω^(k·n/2^(s+1)). The twiddles ω^0..ω^(n/2-1) are built on the device from the
// log n powers ω^(2^j) the host supplies; the same trick gives g^i for coset scaling.
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

// Butterfly i < n/2 of stage s (half-size 2^s); `twiddles` holds ω^0..ω^(n/2-1).
DC_HD void ntt_stage_body(u32 i, u32 log_n, u32 s, const Fr* twiddles, Fr* a) {
  u32 n = 1u << log_n;
  if (i >= n / 2) return;
  u32 half = 1u << s;
  u32 block = i >> s, k = i & (half - 1);
  u32 x = block * 2 * half + k, y = x + half;
  Fr w = twiddles[(u64)k << (log_n - 1 - s)];
  Fr t = Fr::mul(a[y], w);
  Fr u = a[x];
  a[x] = Fr::add(u, t);
  a[y] = Fr::sub(u, t);
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
