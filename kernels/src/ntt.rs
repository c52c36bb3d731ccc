//! The prover's `NttBackend` on a CUDA device: forward, inverse and coset transforms with
//! all scaling done on the device, twiddle tables built there and kept per domain. Falls
//! back to the CPU transform, with a logged reason, when the device fails.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blstrs::Scalar as Fr;
use cudarc::driver::{CudaSlice, PushKernelArg};
use dualchain_prover::backend::{CpuBackend, NttBackend};
use ff::Field;

use crate::device::{grid, Gpu, Job};
use crate::error::{KernelError, Result};
use crate::layout::{fr_from_words, fr_words};
use crate::msm::BackendStats;
use crate::scheduler::Priority;

/// What happens around the core transform.
#[derive(Clone, Copy)]
enum Mode {
    Forward,
    /// Multiply by 1/n afterwards.
    Inverse,
    /// Multiply element i by g^i first.
    Coset(Fr),
    /// Inverse, then multiply element i by g_inv^i.
    InverseCoset(Fr),
}

/// The prover's NTT backend on one CUDA device.
pub struct CudaNtt {
    gpu: Arc<Gpu>,
    /// Twiddle tables ω^0..ω^(n/2−1) by (log n, ω).
    twiddles: Mutex<HashMap<TwiddleKey, CudaSlice<u32>>>,
    /// Transforms smaller than this run on the CPU.
    pub min_len: usize,
    /// How long a transform waits for the device before the CPU computes it.
    pub deadline: std::time::Duration,
    pub stats: Arc<BackendStats>,
}

/// (log n, the root's words).
type TwiddleKey = (u32, [u32; 8]);

fn key(log_n: u32, w: &Fr) -> TwiddleKey {
    let mut k = [0u32; 8];
    k.copy_from_slice(fr_words(std::slice::from_ref(w)));
    (log_n, k)
}

/// `[base, base^2, base^4, …]`, `bits` entries.
fn pow2(base: Fr, bits: u32) -> Vec<Fr> {
    let mut out = Vec::with_capacity(bits as usize);
    let mut b = base;
    for _ in 0..bits.max(1) {
        out.push(b);
        b = b.square();
    }
    out
}

impl CudaNtt {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            gpu,
            twiddles: Mutex::new(HashMap::new()),
            min_len: 1 << 10,
            deadline: Priority::Proving.default_deadline(),
            stats: Arc::default(),
        }
    }

    /// `out[i] = base^i` for i < count, on the device.
    fn powers(job: &Job<'_>, base: Fr, count: u32, bits: u32) -> Result<CudaSlice<u32>> {
        let p = job.upload(fr_words(&pow2(base, bits)))?;
        let mut out = job.zeros::<u32>(count as usize * 8)?;
        // SAFETY: ntt_powers(u32 count, const Fr* pow2, u32 bits, Fr* out): `p` holds
        // max(bits, 1) scalars, `out` count scalars (8 words each).
        unsafe {
            job.stream()
                .launch_builder(job.function("ntt_powers")?)
                .arg(&count)
                .arg(&p)
                .arg(&bits)
                .arg(&mut out)
                .launch(grid(count as u64)?)
                .map_err(KernelError::driver("NTT launch"))?;
        }
        Ok(out)
    }

    fn try_transform(&self, values: &mut [Fr], omega: Fr, mode: Mode) -> Result<()> {
        let n = values.len();
        if !n.is_power_of_two() || n > 1 << 28 {
            return Err(KernelError::Input(format!("NTT length {n} is not a power of two up to 2^28")));
        }
        let log_n = n.trailing_zeros();
        let n32 = n as u32;
        let started = Instant::now();
        let out = self.gpu.job(Priority::Proving, self.deadline, "NTT", |job| {
            let stream = job.stream();
            let launch = KernelError::driver("NTT launch");
            let mut a = job.upload(fr_words(values))?;
            let coset = |job: &Job<'_>, a: &mut CudaSlice<u32>, g: Fr| -> Result<()> {
                let factors = Self::powers(job, g, n32, log_n)?;
                // SAFETY: ntt_mul(u32 n, const Fr* factors, Fr* a): both hold n scalars.
                unsafe {
                    job.stream()
                        .launch_builder(job.function("ntt_mul")?)
                        .arg(&n32)
                        .arg(&factors)
                        .arg(a)
                        .launch(grid(n as u64)?)
                        .map_err(KernelError::driver("NTT launch"))
                }
                .map(|_| ())
            };
            if let Mode::Coset(g) = mode {
                coset(job, &mut a, g)?;
            }
            let mut tables = self.twiddles.lock().unwrap_or_else(|p| p.into_inner());
            let k = key(log_n, &omega);
            let tw = match tables.entry(k) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Self::powers(job, omega, (n32 / 2).max(1), log_n.saturating_sub(1))?)
                }
            };
            let tw = &*tw;
            // SAFETY: ntt_bitrev(u32 log_n, Fr* a) and ntt_stage(u32 log_n, u32 s,
            // const Fr* twiddles, Fr* a): `a` holds n = 2^log_n scalars, `tw` n/2.
            unsafe {
                stream
                    .launch_builder(job.function("ntt_bitrev")?)
                    .arg(&log_n)
                    .arg(&mut a)
                    .launch(grid(n as u64)?)
                    .map_err(launch)?;
                for s in 0..log_n {
                    stream
                        .launch_builder(job.function("ntt_stage")?)
                        .arg(&log_n)
                        .arg(&s)
                        .arg(tw)
                        .arg(&mut a)
                        .launch(grid(n as u64 / 2)?)
                        .map_err(launch)?;
                }
            }
            drop(tables);
            if let Mode::Inverse | Mode::InverseCoset(_) = mode {
                let n_inv = Fr::from(n as u64).invert().expect("a power of two is invertible");
                let c = job.upload(fr_words(&[n_inv]))?;
                // SAFETY: ntt_scale(u32 n, const Fr* c, Fr* a): `c` one scalar, `a` n.
                unsafe {
                    stream
                        .launch_builder(job.function("ntt_scale")?)
                        .arg(&n32)
                        .arg(&c)
                        .arg(&mut a)
                        .launch(grid(n as u64)?)
                        .map_err(launch)?;
                }
            }
            if let Mode::InverseCoset(g_inv) = mode {
                coset(job, &mut a, g_inv)?;
            }
            job.download(&a)
        })?;
        fr_from_words(&out, values);
        self.stats.gpu_done(started);
        self.stats.bytes_uploaded.fetch_add((n * 32) as u64, Ordering::Relaxed);
        Ok(())
    }

    fn transform(&self, values: &mut [Fr], omega: Fr, mode: Mode) {
        let result = if values.len() < self.min_len {
            self.stats.cpu_small.fetch_add(1, Ordering::Relaxed);
            Err(None)
        } else {
            self.try_transform(values, omega, mode).map_err(Some)
        };
        if let Err(reason) = result {
            if let Some(e) = reason {
                self.stats.fell_back("NTT", values.len(), &e);
            }
            // The device never wrote back on failure, so `values` is still the input.
            let cpu = CpuBackend;
            match mode {
                Mode::Forward => cpu.ntt(values, omega),
                Mode::Inverse => cpu.intt(values, omega),
                Mode::Coset(g) => cpu.coset_ntt(values, omega, g),
                Mode::InverseCoset(g_inv) => cpu.icoset_ntt(values, omega, g_inv),
            }
        }
    }
}

impl NttBackend for CudaNtt {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn ntt(&self, values: &mut [Fr], omega: Fr) {
        self.transform(values, omega, Mode::Forward)
    }

    fn intt(&self, values: &mut [Fr], omega_inv: Fr) {
        self.transform(values, omega_inv, Mode::Inverse)
    }

    fn coset_ntt(&self, values: &mut [Fr], omega: Fr, g: Fr) {
        self.transform(values, omega, Mode::Coset(g))
    }

    fn icoset_ntt(&self, values: &mut [Fr], omega_inv: Fr, g_inv: Fr) {
        self.transform(values, omega_inv, Mode::InverseCoset(g_inv))
    }
}

/// The device transform with errors surfaced (differential tests, the kernels bench).
pub fn gpu_ntt(ntt: &CudaNtt, values: &mut [Fr], omega: Fr) -> Result<()> {
    ntt.try_transform(values, omega, Mode::Forward)
}

pub fn gpu_coset_ntt(ntt: &CudaNtt, values: &mut [Fr], omega: Fr, g: Fr) -> Result<()> {
    ntt.try_transform(values, omega, Mode::Coset(g))
}

pub fn gpu_icoset_ntt(ntt: &CudaNtt, values: &mut [Fr], omega_inv: Fr, g_inv: Fr) -> Result<()> {
    ntt.try_transform(values, omega_inv, Mode::InverseCoset(g_inv))
}
