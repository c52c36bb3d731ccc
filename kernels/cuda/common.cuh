// Shared definitions for dualchain's CUDA sources.
//
// Every arithmetic function is `DC_HD`: `__host__ __device__` under NVRTC/nvcc, plain
// `inline` under the host C++ compiler, so the same code runs in the kernels and in the
// host tests that compare it with blstrs. No standard headers: NVRTC has none.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define DC_DEVICE_CODE 1
#define DC_HD __host__ __device__ __forceinline__
#define DC_HD_NOINLINE __host__ __device__ __noinline__
#define DC_UNROLL _Pragma("unroll")
#else
#define DC_HD inline
#define DC_HD_NOINLINE inline
#define DC_UNROLL
#endif

typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;

// Host build only: field multiplications counted per thread, so tests and the bench can
// state what a kernel's algorithm costs in the operation that dominates it. The device build
// counts nothing.
#if defined(DC_DEVICE_CODE)
#define DC_COUNT_MUL()
#else
inline u64& dc_host_mul_count() {
  static thread_local u64 count = 0;
  return count;
}
#define DC_COUNT_MUL() (dc_host_mul_count()++)
#endif

// Atomic increment that returns the previous value. Host emulation runs "threads" one at a
// time, so a plain read-modify-write is exact there.
DC_HD u32 dc_atomic_add(u32* p, u32 v) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(p, v);
#else
  u32 old = *p;
  *p = old + v;
  return old;
#endif
}
