//! GPU kernels of dualchain (DESIGN.md §6): BLS12-381 field and curve arithmetic,
//! multi-scalar multiplication in G1 and G2 and the Fr NTT in CUDA C, compiled at run time
//! with NVRTC, and the CUDA backends of the prover.
//!
//! | module | what |
//! | --- | --- |
//! | `cuda/` (C++) | `ff/` Fp, Fr (Montgomery, blstrs' limb layout) and Fp2; `ec/` Jacobian and XYZZ G1/G2 arithmetic; `msm/` Pippenger with signed windows, counting-sort bucket accumulation in XYZZ coordinates and tree reductions; `ntt/` radix-2 NTT in shared-memory passes and the QAP's pointwise step; `batch/` scalar multiplication by one re-key; `pairing/` Fp6/Fp12 and the Miller loop. All arithmetic is `__host__ __device__`. |
//! | [`source`] | the sources embedded in the binary, expanded into one text per compilation unit |
//! | [`nvrtc`] | NVRTC compilation to CUBIN for the device's exact architecture |
//! | [`cache`] | the on-disk module cache keyed by source hash and architecture |
//! | [`device`] | device discovery, modules, the stream and jobs; driver failures as [`KernelError`]s |
//! | [`layout`] | blstrs values as device words and back, without conversion |
//! | [`msm`], [`ntt`] | `CudaMsm`, `CudaNtt`: the prover's backends, with CPU fallback |
//! | [`reencrypt`] | `CudaReencrypt`: the CPC's batch capsule verification and re-encryption |
//! | [`verify`] | `CudaMiller`: batch Groth16 verification's Miller loops, one thread per proof |
//! | [`scheduler`] | one owner per device: a bounded queue served by priority, deadlines, per-class metrics |
//! | [`select`] | choosing the backends at run time ([`Compute`]) with the reason logged |
//! | [`pipeline`] | the node's proving queue: synthesis of the next proof beside this one's QAP and MSMs |
//! | [`guard`] | the self-test at device open and the CPU cross-checks of proofs and batch verification |
//! | [`host`] | the same C++ compiled for the host, which the tests compare with blstrs |
//!
//! The binary links no CUDA library: `libcuda` and `libnvrtc` are loaded when a device is
//! first opened, so the same build runs, on the CPU, where neither is installed. This is
//! the only crate of the workspace with `unsafe` code; every block carries its reason.
//!
//! Choices beyond DESIGN.md §6, and their limits:
//! - The device code uses 32-bit limbs over the very bytes of blstrs' 64-bit limbs (same
//!   Montgomery radix, R = 2^384 / 2^256), so "no conversion on upload" holds literally.
//! - Field products are carry chains of PTX `mad.lo.cc`/`madc.hi.cc` instructions
//!   (`cuda/ff/carry.cuh`), emulated exactly on the host so the same chains are tested
//!   against blstrs. NVRTC's PTX for one Fp product went from 1,614 instructions (64-bit C
//!   arithmetic) to 756, and Fr's from 737 to 380 (`scripts/ptx-count.py`; a static count,
//!   not a measured time). Fp's product is inlined into the G1 point formulas, which are
//!   out of line; Fp2 and the pairing call an outlined copy, which keeps NVRTC's compile
//!   of the MSM unit near 45 s (134 s with every product inlined).
//! - "Sort-based" bucket accumulation is a counting sort per window (histogram, block
//!   scan, atomic scatter), then accumulation over fixed chunks of the sorted entries, so a
//!   bucket with many points (the 0/1 scalars of witnesses) is spread over many threads.
//!   A bucket spanning many chunks is finished through a segmented tree over the chunks'
//!   partial sums (log2(chunks) rounds), in at most 2·log2(chunks) additions.
//! - Buckets are XYZZ points (Sutherland's formulas, 8M + 2S per mixed addition). Batched
//!   affine accumulation (Montgomery's trick) is built as an optional phase before them
//!   ([`msm::AffineRounds`]): the runs of each bucket are summed pairwise in affine
//!   coordinates, in place, round by round, with one inversion per 32 threads done by a
//!   lane of its own, so no lane waits on another's inversion. By count it makes fewer
//!   field multiplications (162.4 per point against 223.2 at 2^12 on shifted bases, host
//!   emulation), but it moves more memory and each round waits on a chain of about 570
//!   products, so [`CudaMsm::batched_affine`] stays off until a device measures it
//!   (`backend=cuda-affine` rows of `bench kernels`).
//! - Windows are chosen by size (log2(n) − 3 bits, up to 22) and narrowed to fit the
//!   device's free memory; segment sums reduce in a tree and the device combines the
//!   windows, so one point comes back per MSM. Host emulation counts field
//!   multiplications ([`host::count_field_muls`]): at 2^16 points with the same 12-bit
//!   windows, 260 per point with Jacobian buckets and 236 with XYZZ; 227 with the new
//!   13-bit plan.
//! - An MSM's scratch is one arena per device, sized for the largest plan run so far and
//!   kept (zeroed per run, freed by `evict_all`), instead of a dozen allocations per call.
//!   Scalars go up in chunks from pinned memory on a second stream, each chunk's copy
//!   overlapping the recoding of the one before; their stream and event ordering can only
//!   be checked on a device.
//! - The `MsmBackend` trait takes slices, so residency is keyed by the slice's address,
//!   length and a fingerprint of three of its points: a proving key's queries, which live
//!   as long as the key, are uploaded once. Resident bases are evicted least recently used
//!   beyond half the device's memory.
//! - Jobs run on the caller's thread once the device's [`scheduler`] grants it, so they
//!   borrow the caller's data instead of copying it into a worker thread.
//! - The NTT runs its stages in shared-memory passes of up to 9 stages (3 trips over
//!   global memory at 2^20 instead of 20), and the QAP's quotient runs whole on the device:
//!   the six transforms of a, b, c, the pointwise step and the interpolation of h, with
//!   three uploads and one download ([`dualchain_prover::backend::NttBackend::quotient`],
//!   which the CPU backend implements by its transforms). h still comes back to the host
//!   before the H MSM uploads it again.

pub mod cache;
pub mod device;
pub mod error;
pub mod guard;
pub mod host;
pub mod layout;
pub mod msm;
pub mod ntt;
pub mod nvrtc;
pub mod pipeline;
pub mod reencrypt;
pub mod scheduler;
pub mod select;
pub mod source;
pub mod testdata;
pub mod verify;

pub use device::{DeviceInfo, Gpu};
pub use error::KernelError;
pub use msm::{CudaMsm, MsmPlan};
pub use ntt::CudaNtt;
pub use reencrypt::CudaReencrypt;
pub use select::{Compute, GpuPolicy};
pub use verify::CudaMiller;
