// Prime fields of BLS12-381 in Montgomery form, 32-bit limbs, least significant first.
//
// The limbs are the bytes of blstrs' `Fp`/`Scalar` (blst's `blst_fp`/`blst_fr`: 64-bit
// little-endian limbs) read as 32-bit words on a little-endian machine, and R = 2^384 for
// Fp, 2^256 for Fr as in blst, so values cross between host and device without
// conversion. Every result is fully reduced (< p), so equal elements have equal limbs.
#pragma once
#include "../common.cuh"

// BLS12-381 base field: p = 0x1a0111ea…ffffaaab (381 bits).
struct FpParams {
  static const int N = 12;
  static const u32 INV = 0xfffcfffdu;  // -p^-1 mod 2^32
  static const bool OUTLINE_MUL = true;
  static DC_HD u32 p(int i) {
    const u32 m[12] = {0xffffaaabu, 0xb9feffffu, 0xb153ffffu, 0x1eabfffeu,
                       0xf6b0f624u, 0x6730d2a0u, 0xf38512bfu, 0x64774b84u,
                       0x434bacd7u, 0x4b1ba7b6u, 0x397fe69au, 0x1a0111eau};
    return m[i];
  }
  // R mod p, the Montgomery form of 1.
  static DC_HD u32 one(int i) {
    const u32 m[12] = {0x0002fffdu, 0x76090000u, 0xc40c0002u, 0xebf4000bu,
                       0x53c758bau, 0x5f489857u, 0x70525745u, 0x77ce5853u,
                       0xa256ec6du, 0x5c071a97u, 0xfa80e493u, 0x15f65ec3u};
    return m[i];
  }
};

// BLS12-381 scalar field: r = 0x73eda753…00000001 (255 bits).
struct FrParams {
  static const int N = 8;
  static const u32 INV = 0xffffffffu;  // -r^-1 mod 2^32
  static const bool OUTLINE_MUL = false;
  static DC_HD u32 p(int i) {
    const u32 m[8] = {0x00000001u, 0xffffffffu, 0xfffe5bfeu, 0x53bda402u,
                      0x09a1d805u, 0x3339d808u, 0x299d7d48u, 0x73eda753u};
    return m[i];
  }
  static DC_HD u32 one(int i) {
    const u32 m[8] = {0xfffffffeu, 0x00000001u, 0x00034802u, 0x5884b7fau,
                      0xecbc4ff5u, 0x998c4fefu, 0xacc5056fu, 0x1824b159u};
    return m[i];
  }
};

// An element of the prime field described by P. Both moduli are below 2^(32N-1), so sums
// of two reduced elements and Montgomery products never carry out of N limbs.
template <class P>
struct Fe {
  u32 l[P::N];

  static DC_HD Fe zero() {
    Fe r;
    DC_UNROLL for (int i = 0; i < P::N; i++) r.l[i] = 0;
    return r;
  }
  static DC_HD Fe one() {
    Fe r;
    DC_UNROLL for (int i = 0; i < P::N; i++) r.l[i] = P::one(i);
    return r;
  }
  static DC_HD bool is_zero(const Fe& a) {
    u32 acc = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) acc |= a.l[i];
    return acc == 0;
  }
  static DC_HD bool eq(const Fe& a, const Fe& b) {
    u32 acc = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) acc |= a.l[i] ^ b.l[i];
    return acc == 0;
  }

  // r = a - p if a >= p, else a.
  static DC_HD Fe reduce_once(const Fe& a) {
    Fe d;
    u32 borrow = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) {
      u64 t = (u64)a.l[i] - P::p(i) - borrow;
      d.l[i] = (u32)t;
      borrow = (u32)(t >> 63);
    }
    return borrow ? a : d;
  }

  static DC_HD Fe add(const Fe& a, const Fe& b) {
    Fe s;
    u32 carry = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) {
      u64 t = (u64)a.l[i] + b.l[i] + carry;
      s.l[i] = (u32)t;
      carry = (u32)(t >> 32);
    }
    return reduce_once(s);
  }

  static DC_HD Fe sub(const Fe& a, const Fe& b) {
    Fe d;
    u32 borrow = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) {
      u64 t = (u64)a.l[i] - b.l[i] - borrow;
      d.l[i] = (u32)t;
      borrow = (u32)(t >> 63);
    }
    if (borrow) {
      u32 carry = 0;
      DC_UNROLL for (int i = 0; i < P::N; i++) {
        u64 t = (u64)d.l[i] + P::p(i) + carry;
        d.l[i] = (u32)t;
        carry = (u32)(t >> 32);
      }
    }
    return d;
  }

  static DC_HD Fe dbl(const Fe& a) { return add(a, a); }

  static DC_HD Fe neg(const Fe& a) { return is_zero(a) ? a : sub(zero(), a); }

  // Montgomery product a·b·R^-1 mod p. Fp's product is an out-of-line function on the
  // device: inlining its 12×12 unrolled loops into every point formula makes the MSM
  // module take NVRTC many minutes to compile; Fr's stays inline (the NTT's hot loop).
  static DC_HD Fe mul(const Fe& a, const Fe& b) {
    if (P::OUTLINE_MUL) return mul_outlined(a, b);
    return mul_inline(a, b);
  }
  static DC_HD_NOINLINE Fe mul_outlined(const Fe& a, const Fe& b) { return mul_inline(a, b); }

  // CIOS (Koç–Acar–Kaliski 1996).
  static DC_HD Fe mul_inline(const Fe& a, const Fe& b) {
    DC_COUNT_MUL();
    u32 t[P::N + 2];
    DC_UNROLL for (int i = 0; i < P::N + 2; i++) t[i] = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) {
      u32 carry = 0;
      DC_UNROLL for (int j = 0; j < P::N; j++) {
        u64 s = (u64)a.l[j] * b.l[i] + t[j] + carry;
        t[j] = (u32)s;
        carry = (u32)(s >> 32);
      }
      u64 s = (u64)t[P::N] + carry;
      t[P::N] = (u32)s;
      t[P::N + 1] = (u32)(s >> 32);
      u32 m = t[0] * P::INV;
      s = (u64)m * P::p(0) + t[0];
      carry = (u32)(s >> 32);
      DC_UNROLL for (int j = 1; j < P::N; j++) {
        s = (u64)m * P::p(j) + t[j] + carry;
        t[j - 1] = (u32)s;
        carry = (u32)(s >> 32);
      }
      s = (u64)t[P::N] + carry;
      t[P::N - 1] = (u32)s;
      t[P::N] = t[P::N + 1] + (u32)(s >> 32);
    }
    Fe r;
    DC_UNROLL for (int i = 0; i < P::N; i++) r.l[i] = t[i];
    return reduce_once(r);
  }

  static DC_HD Fe sqr(const Fe& a) { return mul(a, a); }

  // Out of Montgomery form: a·R^-1, the canonical integer's limbs.
  static DC_HD Fe from_mont(const Fe& a) {
    Fe one_int = zero();
    one_int.l[0] = 1;
    return mul(a, one_int);
  }

  // a^e for a small public exponent (square and multiply, most significant bit first).
  static DC_HD Fe pow_u64(const Fe& a, u64 e) {
    Fe r = one();
    for (int i = 63; i >= 0; i--) {
      r = sqr(r);
      if ((e >> i) & 1) r = mul(r, a);
    }
    return r;
  }
};

typedef Fe<FpParams> Fp;
typedef Fe<FrParams> Fr;
