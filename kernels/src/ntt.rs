//! The prover's `NttBackend` on a CUDA device: forward, inverse and coset transforms with
//! all scaling done on the device, twiddle tables built there and kept per domain, the
//! stages run in shared-memory passes of up to [`PASS_MAX`] stages, and the QAP's whole
//! quotient on the device (three vectors up, h down). Falls back to the CPU, with a
//! logged reason, when the device fails.
//!
//! With [`CudaNtt::h_msm`] set (as `Compute` in the select module sets it), the
//! prover's H MSM runs on h where the quotient left it, and h never comes down
//! ([`NttBackend::quotient_h_msm`]).
//!
//! Not yet: the later passes read their groups with a stride of 2^s0 scalars, which a
//! transposed layout would make contiguous.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blstrs::{G1Affine, Scalar as Fr};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use dualchain_prover::backend::{quotient_by_transforms, CpuBackend, NttBackend, QuotientDomain, QuotientMsm};
use ff::Field;

use crate::device::{grid, Gpu, Job};
use crate::error::{KernelError, Result};
use crate::layout::{fr_from_words, fr_words};
use crate::msm::{BackendStats, CudaMsm, Scalars, G1};
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
    /// Power tables base^0..base^(count−1) by (count, base): the twiddles ω^i (count n/2)
    /// and the coset factors g^i, g^−i (count n) of each domain, built once.
    tables: Mutex<HashMap<TableKey, CudaSlice<u32>>>,
    /// The MSM backend on the same device, to which the quotient hands h where it lies
    /// ([`NttBackend::quotient_h_msm`]); `None`: h comes back to the host.
    pub h_msm: Option<Arc<CudaMsm>>,
    /// Transforms smaller than this run on the CPU.
    pub min_len: usize,
    /// How long a transform waits for the device before the CPU computes it.
    pub deadline: std::time::Duration,
    pub stats: Arc<BackendStats>,
}

/// (count, the base's words).
type TableKey = (u32, [u32; 8]);

fn key(count: u32, base: &Fr) -> TableKey {
    let mut k = [0u32; 8];
    k.copy_from_slice(fr_words(std::slice::from_ref(base)));
    (count, k)
}

/// The key of the table of `base^i`, i < count (a power of two), built on the device when
/// absent.
fn table(tables: &mut HashMap<TableKey, CudaSlice<u32>>, job: &Job<'_>, base: Fr, count: u32) -> Result<TableKey> {
    let k = key(count, &base);
    if let std::collections::hash_map::Entry::Vacant(e) = tables.entry(k) {
        e.insert(CudaNtt::powers(job, base, count, count.trailing_zeros())?);
    }
    Ok(k)
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
            tables: Mutex::new(HashMap::new()),
            h_msm: None,
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

    /// Checks a transform length: a power of two up to 2^28.
    fn log_len(n: usize) -> Result<u32> {
        if !n.is_power_of_two() || n > 1 << 28 {
            return Err(KernelError::Input(format!("NTT length {n} is not a power of two up to 2^28")));
        }
        Ok(n.trailing_zeros())
    }

    /// a[i] *= factors[i] on the device.
    fn mul_by(job: &Job<'_>, a: &mut CudaSlice<u32>, log_n: u32, factors: &CudaSlice<u32>) -> Result<()> {
        let n32 = 1u32 << log_n;
        // SAFETY: ntt_mul(u32 n, const Fr* factors, Fr* a): both hold n scalars.
        unsafe {
            job.stream()
                .launch_builder(job.function("ntt_mul")?)
                .arg(&n32)
                .arg(factors)
                .arg(a)
                .launch(grid(n32 as u64)?)
                .map_err(KernelError::driver("NTT launch"))?;
        }
        Ok(())
    }

    /// a[i] *= c on the device.
    fn scale(job: &Job<'_>, a: &mut CudaSlice<u32>, log_n: u32, c: Fr) -> Result<()> {
        let n32 = 1u32 << log_n;
        let c = job.upload(fr_words(&[c]))?;
        // SAFETY: ntt_scale(u32 n, const Fr* c, Fr* a): `c` one scalar, `a` n.
        unsafe {
            job.stream()
                .launch_builder(job.function("ntt_scale")?)
                .arg(&n32)
                .arg(&c)
                .arg(a)
                .launch(grid(n32 as u64)?)
                .map_err(KernelError::driver("NTT launch"))?;
        }
        Ok(())
    }

    /// The transform of `mode` on values already on the device: the bit-reversal, then
    /// passes of up to [`PASS_MAX`] stages in shared memory, with the scalings around them.
    fn transform_on_device(
        &self,
        job: &Job<'_>,
        a: &mut CudaSlice<u32>,
        log_n: u32,
        omega: Fr,
        mode: Mode,
    ) -> Result<()> {
        let n32 = 1u32 << log_n;
        let launch = KernelError::driver("NTT launch");
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let tw_key = table(&mut tables, job, omega, (n32 / 2).max(1))?;
        let coset_key = match mode {
            Mode::Coset(g) | Mode::InverseCoset(g) => Some(table(&mut tables, job, g, n32)?),
            Mode::Forward | Mode::Inverse => None,
        };
        let tables = &*tables;
        let factors = coset_key.map(|k| &tables[&k]);
        if let (Mode::Coset(_), Some(f)) = (mode, factors) {
            Self::mul_by(job, a, log_n, f)?;
        }
        let tw = &tables[&tw_key];
        // SAFETY: ntt_bitrev(u32 log_n, Fr* a) and ntt_pass(u32 log_n, u32 s0, u32 k,
        // const Fr* twiddles, Fr* a): `a` holds n = 2^log_n scalars, `tw` n/2; each pass
        // runs n/2^k blocks of 2^(k-1) threads with k ≤ PASS_MAX, the kernel's shared array.
        unsafe {
            job.stream()
                .launch_builder(job.function("ntt_bitrev")?)
                .arg(&log_n)
                .arg(&mut *a)
                .launch(grid(n32 as u64)?)
                .map_err(launch)?;
            for (s0, k) in passes(log_n) {
                let cfg =
                    LaunchConfig { grid_dim: (n32 >> k, 1, 1), block_dim: (1 << (k - 1), 1, 1), shared_mem_bytes: 0 };
                job.stream()
                    .launch_builder(job.function("ntt_pass")?)
                    .arg(&log_n)
                    .arg(&s0)
                    .arg(&k)
                    .arg(tw)
                    .arg(&mut *a)
                    .launch(cfg)
                    .map_err(launch)?;
            }
        }
        if let Mode::Inverse | Mode::InverseCoset(_) = mode {
            Self::scale(job, a, log_n, Fr::from(n32 as u64).invert().expect("a power of two is invertible"))?;
        }
        if let (Mode::InverseCoset(_), Some(f)) = (mode, factors) {
            Self::mul_by(job, a, log_n, f)?;
        }
        Ok(())
    }

    fn try_transform(&self, values: &mut [Fr], omega: Fr, mode: Mode) -> Result<()> {
        let n = values.len();
        let log_n = Self::log_len(n)?;
        let started = Instant::now();
        let out = self.gpu.job(Priority::Proving, self.deadline, "NTT", |job| {
            let mut a = job.upload(fr_words(values))?;
            self.transform_on_device(job, &mut a, log_n, omega, mode)?;
            job.download(&a)
        })?;
        fr_from_words(&out, values);
        self.stats.gpu_done(started);
        self.stats.bytes_uploaded.fetch_add((n * 32) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The QAP's quotient with a, b and c on the device from upload to h: six transforms,
    /// the pointwise step and the last interpolation run there. h is left on the device
    /// (its first m − 1 scalars of the m returned).
    fn quotient_on_device(&self, job: &Job<'_>, a: &[Fr], b: &[Fr], c: &[Fr], m: usize) -> Result<CudaSlice<u32>> {
        let log_m = Self::log_len(m)?;
        if a.len() > m || b.len() > m || c.len() > m {
            return Err(KernelError::Input(format!("QAP evaluations longer than the domain of {m}")));
        }
        let d = QuotientDomain::new(m);
        let (a_len, b_len, c_len) = (a.len(), b.len(), c.len());
        let mut dev = Vec::with_capacity(3);
        for v in [a, b, c] {
            // Zeros to m, the evaluations uploaded over their prefix.
            let mut x = job.zeros::<u32>(m * 8)?;
            job.upload_into(fr_words(v), &mut x.slice_mut(..v.len() * 8))?;
            self.transform_on_device(job, &mut x, log_m, d.omega_inv, Mode::Inverse)?;
            self.transform_on_device(job, &mut x, log_m, d.omega, Mode::Coset(d.g))?;
            dev.push(x);
        }
        let [mut a, b, c]: [CudaSlice<u32>; 3] =
            dev.try_into().map_err(|_| KernelError::Input("three vectors".into()))?;
        let z_inv = job.upload(fr_words(&[d.z_inv]))?;
        let m32 = m as u32;
        // SAFETY: ntt_qap(u32 n, const Fr* b, const Fr* c, const Fr* z_inv, Fr* a): a, b
        // and c hold m scalars each, z_inv one.
        unsafe {
            job.stream()
                .launch_builder(job.function("ntt_qap")?)
                .arg(&m32)
                .arg(&b)
                .arg(&c)
                .arg(&z_inv)
                .arg(&mut a)
                .launch(grid(m as u64)?)
                .map_err(KernelError::driver("NTT launch"))?;
        }
        self.transform_on_device(job, &mut a, log_m, d.omega_inv, Mode::InverseCoset(d.g_inv))?;
        // The three evaluation vectors (their zero tails are set on the device) and z_inv.
        let uploaded = (a_len + b_len + c_len + 1) * 32;
        self.stats.bytes_uploaded.fetch_add(uploaded as u64, Ordering::Relaxed);
        Ok(a)
    }

    /// The quotient on the device, h downloaded (three uploads and one download, where the
    /// transforms one by one made seven of each).
    fn try_quotient(&self, a: &[Fr], b: &[Fr], c: &[Fr], m: usize) -> Result<Vec<Fr>> {
        let started = Instant::now();
        let h = self.gpu.job(Priority::Proving, self.deadline, "NTT", |job| {
            job.download(&self.quotient_on_device(job, a, b, c, m)?)
        })?;
        let mut out = vec![Fr::ZERO; m];
        fr_from_words(&h, &mut out);
        out.truncate(m - 1);
        self.stats.gpu_done(started);
        Ok(out)
    }

    /// The quotient on the device and the H MSM on h where it lies: no download of h and
    /// no upload of it again; one point comes back.
    fn try_quotient_h_msm(
        &self,
        msm: &CudaMsm,
        a: &[Fr],
        b: &[Fr],
        c: &[Fr],
        m: usize,
        h_bases: &[G1Affine],
    ) -> Result<QuotientMsm> {
        if h_bases.len() + 1 != m {
            return Err(KernelError::Input(format!("{} H-query points for a domain of {m}", h_bases.len())));
        }
        let started = Instant::now();
        let out = self.gpu.job(Priority::Proving, self.deadline, "NTT", |job| {
            let h = self.quotient_on_device(job, a, b, c, m)?;
            // Only to time the two parts apart.
            job.stream().synchronize().map_err(KernelError::driver("synchronize"))?;
            let ntt = started.elapsed();
            let h_acc = msm.msm_in_job::<G1>(job, h_bases, &Scalars::Device(h.slice(..(m - 1) * 8)))?;
            Ok(QuotientMsm { h_acc, ntt, msm: started.elapsed() - ntt })
        })?;
        self.stats.gpu_done(started);
        msm.stats.gpu_done(started + out.ntt);
        Ok(out)
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

    fn quotient_h_msm(&self, a: &[Fr], b: &[Fr], c: &[Fr], m: usize, h_bases: &[G1Affine]) -> Option<QuotientMsm> {
        let msm = self.h_msm.as_ref()?;
        if m < self.min_len || h_bases.len() < msm.min_points {
            return None;
        }
        match self.try_quotient_h_msm(msm, a, b, c, m, h_bases) {
            Ok(q) => Some(q),
            Err(e) => {
                // The prover computes the quotient and the MSM apart, each with its own
                // fallback.
                self.stats.fell_back("QAP with the H MSM", m, &e);
                None
            }
        }
    }

    fn quotient(&self, a: Vec<Fr>, b: Vec<Fr>, c: Vec<Fr>, m: usize) -> Vec<Fr> {
        if m < self.min_len {
            self.stats.cpu_small.fetch_add(1, Ordering::Relaxed);
            return quotient_by_transforms(&CpuBackend, a, b, c, m);
        }
        match self.try_quotient(&a, &b, &c, m) {
            Ok(h) => h,
            Err(e) => {
                self.stats.fell_back("QAP", m, &e);
                quotient_by_transforms(&CpuBackend, a, b, c, m)
            }
        }
    }
}

/// Stages per shared-memory pass (`DC_NTT_PASS_MAX` in ntt/ntt.cuh).
pub const PASS_MAX: u32 = 9;

/// The passes of a transform of 2^log_n values: (first stage, stages), each at most
/// [`PASS_MAX`] stages, covering stages 0..log_n in order.
pub fn passes(log_n: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..log_n).step_by(PASS_MAX as usize).map(move |s0| (s0, PASS_MAX.min(log_n - s0)))
}

/// The device transform with errors surfaced (differential tests, the kernels bench).
pub fn gpu_ntt(ntt: &CudaNtt, values: &mut [Fr], omega: Fr) -> Result<()> {
    ntt.try_transform(values, omega, Mode::Forward)
}

pub fn gpu_coset_ntt(ntt: &CudaNtt, values: &mut [Fr], omega: Fr, g: Fr) -> Result<()> {
    ntt.try_transform(values, omega, Mode::Coset(g))
}

/// The device's QAP quotient with errors surfaced.
pub fn gpu_quotient(ntt: &CudaNtt, a: &[Fr], b: &[Fr], c: &[Fr], m: usize) -> Result<Vec<Fr>> {
    ntt.try_quotient(a, b, c, m)
}

pub fn gpu_icoset_ntt(ntt: &CudaNtt, values: &mut [Fr], omega_inv: Fr, g_inv: Fr) -> Result<()> {
    ntt.try_transform(values, omega_inv, Mode::InverseCoset(g_inv))
}

#[cfg(test)]
mod tests {
    /// The pass width the Rust side plans with must be the one the kernel was written for.
    #[test]
    fn pass_width_matches_the_kernel() {
        let pass = format!("#define DC_NTT_PASS_MAX {}\n", super::PASS_MAX);
        assert!(crate::source::NTT.source().contains(&pass), "{pass}");
    }
}
