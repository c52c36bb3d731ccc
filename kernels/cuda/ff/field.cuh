// Prime fields of BLS12-381 in Montgomery form, 32-bit limbs, least significant first.
//
// The limbs are the bytes of blstrs' `Fp`/`Scalar` (blst's `blst_fp`/`blst_fr`: 64-bit
// little-endian limbs) read as 32-bit words on a little-endian machine, and R = 2^384 for
// Fp, 2^256 for Fr as in blst, so values cross between host and device without
// conversion. Every result is fully reduced (< p), so equal elements have equal limbs.
#pragma once
#include "carry.cuh"

// BLS12-381 base field: p = 0x1a0111ea…ffffaaab (381 bits).
struct FpParams {
  static const int N = 12;
  static const u32 INV = 0xfffcfffdu;  // -p^-1 mod 2^32
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
    Carry k = carry_chain();
    d.l[0] = sub_cc(k, a.l[0], P::p(0));
    DC_UNROLL for (int i = 1; i < P::N; i++) d.l[i] = subc_cc(k, a.l[i], P::p(i));
    u32 borrow = subc(k, 0, 0);  // all ones when a < p
    return borrow ? a : d;
  }

  static DC_HD Fe add(const Fe& a, const Fe& b) {
    Fe s;
    Carry k = carry_chain();
    s.l[0] = add_cc(k, a.l[0], b.l[0]);
    DC_UNROLL for (int i = 1; i < P::N; i++) s.l[i] = addc_cc(k, a.l[i], b.l[i]);
    return reduce_once(s);
  }

  static DC_HD Fe sub(const Fe& a, const Fe& b) {
    Fe d;
    Carry k = carry_chain();
    d.l[0] = sub_cc(k, a.l[0], b.l[0]);
    DC_UNROLL for (int i = 1; i < P::N; i++) d.l[i] = subc_cc(k, a.l[i], b.l[i]);
    u32 borrow = subc(k, 0, 0);
    if (borrow) {
      Carry c = carry_chain();
      d.l[0] = add_cc(c, d.l[0], P::p(0));
      DC_UNROLL for (int i = 1; i < P::N; i++) d.l[i] = addc_cc(c, d.l[i], P::p(i));
    }
    return d;
  }

  static DC_HD Fe dbl(const Fe& a) { return add(a, a); }

  static DC_HD Fe neg(const Fe& a) { return is_zero(a) ? a : sub(zero(), a); }

  // Montgomery product a·b·R^-1 mod p. Both fields' products are inlined where they are
  // used: the G1 point formulas, each itself one out-of-line function per group, keep
  // their operands in registers through it. Fp2 and the pairing tower call
  // `mul_outlined` instead: with Fp's product inlined into every Fp2 product of the G2
  // and tower formulas, NVRTC took 134 s and 11.5 MB for the MSM unit (41 s and 4.3 MB
  // this way, 15 s with every Fp product outlined, on this project's 2-core build box).
  static DC_HD Fe mul(const Fe& a, const Fe& b) { return mul_inline(a, b); }
  static DC_HD_NOINLINE Fe mul_outlined(const Fe& a, const Fe& b) { return mul_inline(a, b); }

  // CIOS (Koç–Acar–Kaliski 1996) in carry chains: per limb b_i, t += a·b_i as a chain of
  // low halves and a chain of high halves one limb up, then t += m·p with
  // m = t_0·(−p^-1) mod 2^32 the same way, then t shifts down one limb. t stays below 2p,
  // so t_{N+1} only ever holds a transient carry.
  static DC_HD Fe mul_inline(const Fe& a, const Fe& b) {
    DC_COUNT_MUL();
    u32 t[P::N + 2];
    DC_UNROLL for (int i = 0; i < P::N + 2; i++) t[i] = 0;
    DC_UNROLL for (int i = 0; i < P::N; i++) {
      const u32 bi = b.l[i];
      Carry k = carry_chain();
      t[0] = mad_lo_cc(k, a.l[0], bi, t[0]);
      DC_UNROLL for (int j = 1; j < P::N; j++) t[j] = madc_lo_cc(k, a.l[j], bi, t[j]);
      t[P::N] = addc_cc(k, t[P::N], 0);
      t[P::N + 1] = addc(k, t[P::N + 1], 0);
      t[1] = mad_hi_cc(k, a.l[0], bi, t[1]);
      DC_UNROLL for (int j = 1; j < P::N; j++) t[j + 1] = madc_hi_cc(k, a.l[j], bi, t[j + 1]);
      t[P::N + 1] = addc(k, t[P::N + 1], 0);

      const u32 m = t[0] * P::INV;
      t[0] = mad_lo_cc(k, m, P::p(0), t[0]);  // 0 by the choice of m; the carry goes on
      DC_UNROLL for (int j = 1; j < P::N; j++) t[j] = madc_lo_cc(k, m, P::p(j), t[j]);
      t[P::N] = addc_cc(k, t[P::N], 0);
      t[P::N + 1] = addc(k, t[P::N + 1], 0);
      t[1] = mad_hi_cc(k, m, P::p(0), t[1]);
      DC_UNROLL for (int j = 1; j < P::N; j++) t[j + 1] = madc_hi_cc(k, m, P::p(j), t[j + 1]);
      t[P::N + 1] = addc(k, t[P::N + 1], 0);

      DC_UNROLL for (int j = 0; j <= P::N; j++) t[j] = t[j + 1];
      t[P::N + 1] = 0;
    }
    Fe r;
    DC_UNROLL for (int i = 0; i < P::N; i++) r.l[i] = t[i];
    return reduce_once(r);
  }

  static DC_HD Fe sqr(const Fe& a) { return mul(a, a); }

  // a^(p-2) = a^-1 for a ≠ 0 (Fermat), and 0 for 0: square and multiply over the bits of
  // p − 2, most significant first. One call costs about 1.5·log2(p) products, so it is
  // for work done once per base vector (the MSM's shifted-base tables), not per addition,
  // and it calls the out-of-line product to keep NVRTC's compile short.
  static DC_HD_NOINLINE Fe inv(const Fe& a) {
    u32 e[P::N];
    Carry k = carry_chain();
    e[0] = sub_cc(k, P::p(0), 2);
    for (int i = 1; i < P::N; i++) e[i] = subc_cc(k, P::p(i), 0);
    Fe r = one();
    bool started = false;
    for (int i = P::N - 1; i >= 0; i--) {
      for (int b = 31; b >= 0; b--) {
        if (started) r = mul_outlined(r, r);
        if ((e[i] >> b) & 1) {
          r = started ? mul_outlined(r, a) : a;
          started = true;
        }
      }
    }
    return r;
  }

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
