// Carry-chain primitives for multi-precision arithmetic: one PTX instruction each on the
// device, an exact emulation on the host.
//
// On the device the carry lives in the condition-code register CC.CF, which PTX's `.cc`
// instructions write and the `c`-prefixed ones read (PTX ISA, "Extended-Precision Integer
// Arithmetic Instructions": add.cc, addc, sub.cc, subc, mad.cc, madc). Each primitive is a
// `volatile` asm statement, so the compiler keeps them in program order with nothing of
// its own in between that could clobber CC; sppark's `mont_t` builds its field arithmetic
// the same way. A row of a Montgomery product is then one mad.lo/madc.lo chain and one
// mad.hi/madc.hi chain: two instructions per limb product, where 64-bit C arithmetic takes
// a multiply pair and two add-with-carry pairs.
//
// On the host the flag is the `Carry` value the caller threads through the chain, and
// each primitive computes exactly what its PTX instruction does; the host tests run these
// very chains against blstrs. For subtraction CC.CF is the borrow, as in PTX.
#pragma once
#include "../common.cuh"

struct Carry {
#if !defined(__CUDA_ARCH__)
  u32 cf;
#endif
};

DC_HD Carry carry_chain() {
  Carry c;
#if !defined(__CUDA_ARCH__)
  c.cf = 0;
#endif
  return c;
}

#if defined(__CUDA_ARCH__)

#define DC_PTX3(name, op)                                                          \
  DC_HD u32 name(Carry&, u32 a, u32 b) {                                           \
    u32 r;                                                                         \
    asm volatile(op " %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));                    \
    return r;                                                                      \
  }
#define DC_PTX4(name, op)                                                          \
  DC_HD u32 name(Carry&, u32 a, u32 b, u32 c) {                                    \
    u32 r;                                                                         \
    asm volatile(op " %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));        \
    return r;                                                                      \
  }

DC_PTX3(add_cc, "add.cc.u32")
DC_PTX3(addc_cc, "addc.cc.u32")
DC_PTX3(addc, "addc.u32")
DC_PTX3(sub_cc, "sub.cc.u32")
DC_PTX3(subc_cc, "subc.cc.u32")
DC_PTX3(subc, "subc.u32")
DC_PTX4(mad_lo_cc, "mad.lo.cc.u32")
DC_PTX4(madc_lo_cc, "madc.lo.cc.u32")
DC_PTX4(mad_hi_cc, "mad.hi.cc.u32")
DC_PTX4(madc_hi_cc, "madc.hi.cc.u32")

#undef DC_PTX3
#undef DC_PTX4

#else

// a + b, CF = carry out.
DC_HD u32 add_cc(Carry& c, u32 a, u32 b) {
  u64 s = (u64)a + b;
  c.cf = (u32)(s >> 32);
  return (u32)s;
}
// a + b + CF, CF = carry out.
DC_HD u32 addc_cc(Carry& c, u32 a, u32 b) {
  u64 s = (u64)a + b + c.cf;
  c.cf = (u32)(s >> 32);
  return (u32)s;
}
// a + b + CF; CF unchanged.
DC_HD u32 addc(Carry& c, u32 a, u32 b) { return a + b + c.cf; }
// a - b, CF = borrow out.
DC_HD u32 sub_cc(Carry& c, u32 a, u32 b) {
  c.cf = a < b ? 1u : 0u;
  return a - b;
}
// a - (b + CF), CF = borrow out.
DC_HD u32 subc_cc(Carry& c, u32 a, u32 b) {
  u64 d = (u64)a - b - c.cf;
  c.cf = (u32)(d >> 63);
  return (u32)d;
}
// a - (b + CF); CF unchanged.
DC_HD u32 subc(Carry& c, u32 a, u32 b) { return a - b - c.cf; }
// lo(a·b) + c, CF = carry out.
DC_HD u32 mad_lo_cc(Carry& k, u32 a, u32 b, u32 c) {
  u64 s = (u64)(a * b) + c;
  k.cf = (u32)(s >> 32);
  return (u32)s;
}
// lo(a·b) + c + CF, CF = carry out.
DC_HD u32 madc_lo_cc(Carry& k, u32 a, u32 b, u32 c) {
  u64 s = (u64)(a * b) + c + k.cf;
  k.cf = (u32)(s >> 32);
  return (u32)s;
}
// hi(a·b) + c, CF = carry out.
DC_HD u32 mad_hi_cc(Carry& k, u32 a, u32 b, u32 c) {
  u64 s = (((u64)a * b) >> 32) + c;
  k.cf = (u32)(s >> 32);
  return (u32)s;
}
// hi(a·b) + c + CF, CF = carry out.
DC_HD u32 madc_hi_cc(Carry& k, u32 a, u32 b, u32 c) {
  u64 s = (((u64)a * b) >> 32) + c + k.cf;
  k.cf = (u32)(s >> 32);
  return (u32)s;
}

#endif
