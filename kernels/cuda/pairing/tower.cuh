// The tower Fp2 ⊂ Fp6 ⊂ Fp12 of BLS12-381, in blst's layout:
//   Fp6  = Fp2[v] / (v^3 - ξ), ξ = u + 1   (c0 + c1 v + c2 v^2; blst_fp6 = fp2[3])
//   Fp12 = Fp6[w] / (w^2 - v)              (c0 + c1 w;          blst_fp12 = fp6[2])
// so a device Fp12 is the bytes of a blstrs `Fp12`.
#pragma once
#include "../ff/fp2.cuh"

// a·ξ = (a0 - a1) + (a0 + a1) u.
DC_HD Fp2 fp2_mul_xi(const Fp2& a) {
  Fp2 r;
  r.c0 = Fp::sub(a.c0, a.c1);
  r.c1 = Fp::add(a.c0, a.c1);
  return r;
}

struct Fp6 {
  Fp2 c0, c1, c2;

  static DC_HD Fp6 zero() { Fp6 r; r.c0 = Fp2::zero(); r.c1 = Fp2::zero(); r.c2 = Fp2::zero(); return r; }
  static DC_HD Fp6 one() { Fp6 r = zero(); r.c0 = Fp2::one(); return r; }
  static DC_HD Fp6 add(const Fp6& a, const Fp6& b) {
    Fp6 r; r.c0 = Fp2::add(a.c0, b.c0); r.c1 = Fp2::add(a.c1, b.c1); r.c2 = Fp2::add(a.c2, b.c2); return r;
  }
  static DC_HD Fp6 sub(const Fp6& a, const Fp6& b) {
    Fp6 r; r.c0 = Fp2::sub(a.c0, b.c0); r.c1 = Fp2::sub(a.c1, b.c1); r.c2 = Fp2::sub(a.c2, b.c2); return r;
  }
  static DC_HD Fp6 neg(const Fp6& a) {
    Fp6 r; r.c0 = Fp2::neg(a.c0); r.c1 = Fp2::neg(a.c1); r.c2 = Fp2::neg(a.c2); return r;
  }
  // a·v = ξ a2 + a0 v + a1 v^2.
  static DC_HD Fp6 mul_v(const Fp6& a) {
    Fp6 r; r.c0 = fp2_mul_xi(a.c2); r.c1 = a.c0; r.c2 = a.c1; return r;
  }
  // Karatsuba over the three coefficients (6 Fp2 products), reduced with v^3 = ξ:
  //   c0 = a0 b0 + ξ (a1 b2 + a2 b1), c1 = a0 b1 + a1 b0 + ξ a2 b2, c2 = a0 b2 + a1 b1 + a2 b0.
  static DC_HD Fp6 mul(const Fp6& a, const Fp6& b) {
    Fp2 t0 = Fp2::mul(a.c0, b.c0);
    Fp2 t1 = Fp2::mul(a.c1, b.c1);
    Fp2 t2 = Fp2::mul(a.c2, b.c2);
    Fp2 s12 = Fp2::sub(Fp2::sub(Fp2::mul(Fp2::add(a.c1, a.c2), Fp2::add(b.c1, b.c2)), t1), t2);
    Fp2 s01 = Fp2::sub(Fp2::sub(Fp2::mul(Fp2::add(a.c0, a.c1), Fp2::add(b.c0, b.c1)), t0), t1);
    Fp2 s02 = Fp2::sub(Fp2::sub(Fp2::mul(Fp2::add(a.c0, a.c2), Fp2::add(b.c0, b.c2)), t0), t2);
    Fp6 r;
    r.c0 = Fp2::add(t0, fp2_mul_xi(s12));
    r.c1 = Fp2::add(s01, fp2_mul_xi(t2));
    r.c2 = Fp2::add(s02, t1);
    return r;
  }
};

struct Fp12 {
  Fp6 c0, c1;

  static DC_HD Fp12 one() { Fp12 r; r.c0 = Fp6::one(); r.c1 = Fp6::zero(); return r; }
  // (a0 + a1 w)(b0 + b1 w) = a0 b0 + a1 b1 v + ((a0 + a1)(b0 + b1) - a0 b0 - a1 b1) w.
  static DC_HD_NOINLINE Fp12 mul(const Fp12& a, const Fp12& b) {
    Fp6 t0 = Fp6::mul(a.c0, b.c0);
    Fp6 t1 = Fp6::mul(a.c1, b.c1);
    Fp12 r;
    r.c0 = Fp6::add(t0, Fp6::mul_v(t1));
    r.c1 = Fp6::sub(Fp6::sub(Fp6::mul(Fp6::add(a.c0, a.c1), Fp6::add(b.c0, b.c1)), t0), t1);
    return r;
  }
  static DC_HD Fp12 sqr(const Fp12& a) { return mul(a, a); }
  // The p^6-power Frobenius: a0 - a1 w (the inverse of a unitary element).
  static DC_HD Fp12 conjugate(const Fp12& a) {
    Fp12 r; r.c0 = a.c0; r.c1 = Fp6::neg(a.c1); return r;
  }
};
