//! GPU kernels of dualchain (DESIGN.md §6). **No code yet.**
//!
//! Role: the only crate allowed `unsafe` and FFI. It will hold the CUDA C sources
//! (BLS12-381 fields `ff/`, curves `ec/`, `msm/`, `ntt/`, pairing), embedded and compiled at
//! run time with NVRTC through `cudarc` (dynamic loading, so the same binary runs without
//! CUDA), an on-disk module cache keyed by source hash and GPU architecture, and the CUDA
//! backends behind the prover's `MsmBackend`/`NttBackend` and the crypto crate's
//! `ReencryptBackend`, each with a CPU fallback that gives bit-identical results.
