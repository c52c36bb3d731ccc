//! GPU kernels of dualchain (DESIGN.md §6): BLS12-381 field and curve arithmetic,
//! multi-scalar multiplication in G1 and G2 and the Fr NTT in CUDA C, compiled at run time
//! with NVRTC, and the CUDA backends of the prover.
//!
//! | module | what |
//! | --- | --- |
//! | `cuda/` (C++) | `ff/` Fp, Fr (Montgomery, blstrs' limb layout) and Fp2; `ec/` Jacobian G1/G2 arithmetic; `msm/` Pippenger with signed windows and counting-sort bucket accumulation; `ntt/` radix-2 NTT. All arithmetic is `__host__ __device__`. |
//! | [`source`] | the sources embedded in the binary, expanded into one text per compilation unit |
//! | [`nvrtc`] | NVRTC compilation to CUBIN for the device's exact architecture |
//! | [`cache`] | the on-disk module cache keyed by source hash and architecture |
//! | [`device`] | device discovery, modules, the stream and jobs; driver failures as [`KernelError`]s |
//! | [`layout`] | blstrs values as device words and back, without conversion |
//! | [`msm`], [`ntt`] | `CudaMsm`, `CudaNtt`: the prover's backends, with CPU fallback |
//! | [`select`] | choosing the backends at run time ([`Compute`]) with the reason logged |
//! | [`host`] | the same C++ compiled for the host, which the tests compare with blstrs |
//!
//! The binary links no CUDA library: `libcuda` and `libnvrtc` are loaded when a device is
//! first opened, so the same build runs, on the CPU, where neither is installed. This is
//! the only crate of the workspace with `unsafe` code; every block carries its reason.

pub mod cache;
pub mod device;
pub mod error;
pub mod host;
pub mod layout;
pub mod msm;
pub mod ntt;
pub mod nvrtc;
pub mod select;
pub mod source;
pub mod testdata;

pub use device::{DeviceInfo, Gpu};
pub use error::KernelError;
pub use msm::{CudaMsm, MsmPlan};
pub use ntt::CudaNtt;
pub use select::{Compute, GpuPolicy};
