//! The `kernels` suite: G1 and G2 MSM, the Fr NTT and whole proofs, on the CUDA backends
//! against the CPU backends of the same machine in the same run (`ratio` = GPU time / CPU
//! time for times, GPU rate / CPU rate for proofs/s).
//!
//! GPU rows appear only where a device opened; otherwise the suite says why and reports
//! the CPU rows alone. GPU MSMs are timed with the bases already resident, as a proving
//! key's are across proofs; the first call's upload is reported separately.
//!
//! Also without a device: the device MSM's field multiplications per point (its C++ run on
//! the host, counted), the QAP's whole quotient on the CPU, and each proof's breakdown by
//! stage (on a device, the GPU kernel breakdown per proof).
//!
//! Then the CPC's batch (re-encryption and capsule verification, capsules/s) and batch
//! proof verification's Miller loops plus one final exponentiation (proofs/s).
//!
//! Sizes: `--quick` G1/G2 MSM 2^12, 2^16 (G2 2^12, 2^14), NTT 2^12, 2^16, proofs of the
//! policy and supply-64 shapes, 2^10 capsules, 256 proofs' pairs; full: MSM 2^16, 2^20,
//! 2^22, 2^24, NTT 2^16, 2^20, 2^24, supply-1024 proofs too, capsules 2^10, 2^16, 2^20,
//! pairs of 256, 4096, 65536 proofs (meant for the GPU machine; the CPU rows at the large
//! sizes take minutes on a small machine). `--max-log-size N` drops every size above 2^N.
//!
//! Each row is printed as it is measured, and every GPU answer is checked against the CPU
//! answer it is timed against (MSM sums, NTT outputs, re-encrypted capsules, Miller
//! products after the final exponentiation; GPU proofs are verified on the CPU): a wrong
//! answer ends the suite with an error instead of a figure.

use std::time::{Duration, Instant};

use anyhow::Result;
use blstrs::{G1Projective, Scalar as Fr};
use dualchain_crypto::cbsre::Capsule;
use dualchain_crypto::reencrypt::{CpuBackend as CpuReencrypt, ReencryptBackend};
use dualchain_kernels::cache::{default_dir, ModuleCache};
use dualchain_kernels::host;
use dualchain_kernels::msm::{gpu_msm_g1, gpu_msm_g2};
use dualchain_kernels::ntt::{gpu_ntt, gpu_quotient};
use dualchain_kernels::scheduler::Priority;
use dualchain_kernels::testdata::{g1_points, g2_points, scalars};
use dualchain_kernels::{Compute, CudaMiller, CudaMsm, CudaNtt, CudaReencrypt, GpuPolicy, MsmPlan};
use dualchain_progress::Progress;
use dualchain_prover::backend::MillerBackend;
use dualchain_prover::backend::{quotient_by_transforms, CpuBackend, MsmBackend, NttBackend};
use dualchain_prover::groth16::{ProofTimings, Prover};
use dualchain_prover::ntt::root_of_unity;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_prover::verify::verify;
use ff::Field;
use group::{Curve, Group};
use pairing::MillerLoopResult as _;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::atomic::Ordering;

use crate::measure::{Record as Row, Rows};
use crate::prover_suite::{breakdown_rows, instance};

fn time_row(name: &str, params: String, secs: f64, baseline: Option<f64>) -> Row {
    Row { name: name.into(), params, value: secs, unit: "s".into(), baseline, ratio: baseline.map(|b| secs / b) }
}

/// Best wall time of `reps` calls after one warm-up call, and the last call's answer (to
/// be checked against the baseline's).
fn best_answer<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut answer = f()?;
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        answer = f()?;
        best = best.min(t.elapsed());
    }
    Ok((best.as_secs_f64(), answer))
}

/// Best wall time of `reps` calls after one warm-up call.
fn best(reps: usize, f: impl FnMut() -> Result<()>) -> Result<f64> {
    Ok(best_answer(reps, f)?.0)
}

/// Fails the suite when a GPU answer differs from the CPU's.
fn same<T: PartialEq>(what: &str, gpu: &T, cpu: &T) -> Result<()> {
    anyhow::ensure!(gpu == cpu, "{what}: the GPU's answer differs from the CPU's");
    Ok(())
}

pub fn run(quick: bool, max_log: Option<u32>) -> Result<Vec<Row>> {
    let compute = Compute::select(GpuPolicy::Auto, 0, &ModuleCache::new(default_dir()))?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("kernels: {}; CPU baseline on {cpus} threads", compute.describe());
    let gpu = compute.gpu.clone();
    let dev = compute.device.as_ref().map(|d| d.name.clone()).unwrap_or_default();
    let reps = if quick { 2 } else { 3 };
    let mut out = Rows::default();
    println!("{}", Row::header());

    let max = max_log.unwrap_or(u32::MAX);
    let upto = |logs: &[u32]| -> Vec<u32> { logs.iter().copied().filter(|&l| l <= max).collect() };
    let (g1_sizes, g2_sizes, ntt_sizes) = if quick {
        (upto(&[12, 16]), upto(&[12, 14]), upto(&[12, 16]))
    } else {
        (upto(&[16, 20, 22, 24]), upto(&[16, 20, 22, 24]), upto(&[16, 20, 24]))
    };

    let mut shapes = vec![Shape::Policy, Shape::Supply(SupplyShape::Records64)];
    if !quick {
        shapes.push(Shape::Supply(SupplyShape::Records1024));
    }
    // Points: one per MSM and NTT size, proof shape, capsule batch size and pairing count.
    let capsule_sizes = if quick { upto(&[10]) } else { upto(&[10, 16, 20]) };
    let pair_sizes: Vec<usize> = (if quick { &[256][..] } else { &[256, 4096, 65536][..] })
        .iter()
        .copied()
        .filter(|n: &usize| n.trailing_zeros() <= max)
        .collect();
    let points =
        g1_sizes.len() + g2_sizes.len() + ntt_sizes.len() + shapes.len() + capsule_sizes.len() + pair_sizes.len();
    let progress = Progress::new("bench kernels", points as u64);

    let msm = gpu.as_ref().map(|g| {
        let mut m = CudaMsm::new(g.clone());
        m.min_points = 0;
        m
    });
    // The same backend without shifted-base tables: one window's MSM per window, as
    // before the tables (rows `backend=cuda-plain`, a series of their own in the chart).
    let msm_plain = gpu.as_ref().map(|g| {
        let mut m = CudaMsm::new(g.clone());
        m.min_points = 0;
        m.shifted_bases = false;
        m
    });
    // The default backend with batched affine rounds before the XYZZ chunk phase (rows
    // `backend=cuda-affine`): off by default until these rows say whether it pays.
    let msm_affine = gpu.as_ref().map(|g| {
        let mut m = CudaMsm::new(g.clone());
        m.min_points = 0;
        m.batched_affine = true;
        m
    });
    for &log in &g1_sizes {
        progress.set_message(format!("msm g1 n=2^{log}"));
        let n = 1usize << log;
        let (b, s) = (g1_points(n, log as u64), scalars(n, 100 + log as u64));
        let (cpu, want) = best_answer(reps, || Ok(CpuBackend.msm_g1(&b, &s)))?;
        out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cpu"), cpu, None));
        if let Some(m) = &msm {
            let t = Instant::now();
            same(&format!("G1 MSM 2^{log} (first call)"), &gpu_msm_g1(m, &b, &s)?, &want)?;
            out.push(time_row(
                "kernels::msm_g1_first",
                format!("n=2^{log},with upload,{dev}"),
                t.elapsed().as_secs_f64(),
                Some(cpu),
            ));
            let (g, got) = best_answer(reps, || Ok(gpu_msm_g1(m, &b, &s)?))?;
            same(&format!("G1 MSM 2^{log}"), &got, &want)?;
            out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cuda,{dev}"), g, Some(cpu)));
            m.evict_all();
        }
        if let Some(m) = &msm_plain {
            let (g, got) = best_answer(reps, || Ok(gpu_msm_g1(m, &b, &s)?))?;
            same(&format!("G1 MSM 2^{log} without shifted bases"), &got, &want)?;
            out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cuda-plain,{dev}"), g, Some(cpu)));
            m.evict_all();
        }
        if let Some(m) = &msm_affine {
            let (g, got) = best_answer(reps, || Ok(gpu_msm_g1(m, &b, &s)?))?;
            same(&format!("G1 MSM 2^{log} with batched affine rounds"), &got, &want)?;
            out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cuda-affine,{dev}"), g, Some(cpu)));
            m.evict_all();
        }
        progress.inc(1);
    }
    // What the device's MSM algorithm costs in its dominant operation, measured without a
    // device: the kernels' own C++ run on the host, field multiplications counted.
    {
        let log = if quick { 12 } else { 14 };
        let n = 1usize << log;
        let (b, s) = (g1_points(n, log as u64), scalars(n, 100 + log as u64));
        let plan = MsmPlan::for_size(n);
        let (got, muls) = host::count_field_muls(|| host::msm_g1(&b, &s, &plan));
        same(&format!("host-emulated device G1 MSM 2^{log}"), &got, &CpuBackend.msm_g1(&b, &s))?;
        let plain = muls as f64 / n as f64;
        out.push(Row {
            name: "kernels::msm_g1_device_muls".into(),
            params: format!("n=2^{log},c={},host emulation", plan.c),
            value: plain,
            unit: "field mul/point".into(),
            baseline: None,
            ratio: None,
        });
        // On a table of shifted bases: the MSM's own multiplications, the table's (made
        // once per base vector and kept) counted apart.
        let plan = MsmPlan::shifted_for_size(n)?;
        let (got, muls) = host::count_field_muls(|| host::msm_g1(&b, &s, &plan));
        same(&format!("host-emulated shifted-base G1 MSM 2^{log}"), &got, &CpuBackend.msm_g1(&b, &s))?;
        let (_, table) = host::count_field_muls(|| host::g1_shift_table(&b, plan.c, plan.windows));
        let shifted = (muls - table) as f64 / n as f64;
        out.push(Row {
            name: "kernels::msm_g1_device_muls".into(),
            params: format!("n=2^{log},shifted bases,c={},host emulation", plan.c),
            value: shifted,
            unit: "field mul/point".into(),
            baseline: Some(plain),
            ratio: Some(shifted / plain),
        });
        // The same shifted plan with batched affine rounds (phase 3b) before the chunk
        // phase, against the shifted plan's XYZZ accumulation alone.
        let affine = plan.with_batched_affine();
        let (got, muls) = host::count_field_muls(|| host::msm_g1(&b, &s, &affine));
        same(&format!("host-emulated batched-affine G1 MSM 2^{log}"), &got, &CpuBackend.msm_g1(&b, &s))?;
        let with_affine = (muls - table) as f64 / n as f64;
        out.push(Row {
            name: "kernels::msm_g1_device_muls".into(),
            params: format!(
                "n=2^{log},shifted bases,batched affine,c={},rounds={},host emulation",
                plan.c, affine.affine.rounds
            ),
            value: with_affine,
            unit: "field mul/point".into(),
            baseline: Some(shifted),
            ratio: Some(with_affine / shifted),
        });
        out.push(Row {
            name: "kernels::msm_g1_shift_table_muls".into(),
            params: format!("n=2^{log},c={},windows={},host emulation", plan.c, plan.windows),
            value: table as f64 / n as f64,
            unit: "field mul/point, once".into(),
            baseline: None,
            ratio: None,
        });
    }
    for &log in &g2_sizes {
        progress.set_message(format!("msm g2 n=2^{log}"));
        let n = 1usize << log;
        let (b, s) = (g2_points(n, log as u64), scalars(n, 200 + log as u64));
        let (cpu, want) = best_answer(reps, || Ok(CpuBackend.msm_g2(&b, &s)))?;
        out.push(time_row("kernels::msm_g2", format!("n=2^{log},backend=cpu"), cpu, None));
        if let Some(m) = &msm {
            let (g, got) = best_answer(reps, || Ok(gpu_msm_g2(m, &b, &s)?))?;
            same(&format!("G2 MSM 2^{log}"), &got, &want)?;
            out.push(time_row("kernels::msm_g2", format!("n=2^{log},backend=cuda,{dev}"), g, Some(cpu)));
            m.evict_all();
        }
        progress.inc(1);
    }
    let ntt = gpu.as_ref().map(|g| {
        let mut t = CudaNtt::new(g.clone());
        t.min_len = 0;
        t
    });
    for &log in &ntt_sizes {
        progress.set_message(format!("ntt n=2^{log}"));
        let n = 1usize << log;
        let v = scalars(n, 300 + log as u64);
        let omega = root_of_unity(log);
        let mut work = v.clone();
        let cpu = best(reps, || {
            work.copy_from_slice(&v);
            CpuBackend.ntt(&mut work, omega);
            Ok(())
        })?;
        out.push(time_row("kernels::ntt", format!("n=2^{log},backend=cpu"), cpu, None));
        let want = work.clone();
        if let Some(t) = &ntt {
            let g = best(reps, || {
                work.copy_from_slice(&v);
                gpu_ntt(t, &mut work, omega).map_err(Into::into)
            })?;
            same(&format!("NTT 2^{log}"), &work, &want)?;
            out.push(time_row("kernels::ntt", format!("n=2^{log},backend=cuda,with transfers,{dev}"), g, Some(cpu)));
        }
        // The QAP's whole quotient (six transforms, the pointwise step, one more transform).
        let (a, b) = (scalars(n, 400 + log as u64), scalars(n, 500 + log as u64));
        let c: Vec<Fr> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        let (cpu, want) =
            best_answer(1, || Ok(quotient_by_transforms(&CpuBackend, a.clone(), b.clone(), c.clone(), n)))?;
        out.push(time_row("kernels::qap", format!("n=2^{log},backend=cpu"), cpu, None));
        if let Some(t) = &ntt {
            let (g, got) = best_answer(reps, || Ok(gpu_quotient(t, &a, &b, &c, n)?))?;
            same(&format!("QAP quotient 2^{log}"), &got, &want)?;
            out.push(time_row("kernels::qap", format!("n=2^{log},backend=cuda,with transfers,{dev}"), g, Some(cpu)));
        }
        progress.inc(1);
    }

    // Whole proofs: latency of one and throughput of a batch, CPU vs CUDA backends.
    let batch = if quick { 2 } else { 8 };
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for shape in shapes {
        progress.set_message(format!("proofs shape={}", shape.name()));
        let pk = ProvingKey::generate(shape, &mut rng)?;
        let mut provers: Vec<(&str, Prover<'_>)> = vec![("cpu", Prover::default())];
        if let (Some(m), Some(t)) = (&msm, &ntt) {
            provers.push(("cuda", Prover { msm: m, ntt: t }));
        }
        let mut cpu_latency = None;
        let mut cpu_rate = None;
        for (backend, prover) in &provers {
            let label = if *backend == "cpu" { "backend=cpu".to_string() } else { format!("backend=cuda,{dev}") };
            let mut proofs = Vec::new();
            let mut breakdown = ProofTimings::default();
            let latency = best(1, || {
                let (p, t) = prover.prove(&pk, instance(shape, 0), &mut rng)?;
                proofs.push(p);
                breakdown = t;
                Ok(())
            })?;
            out.extend(breakdown_rows(
                "kernels::proof_breakdown",
                &format!("shape={},{label}", shape.name()),
                &breakdown,
            ));
            let statement = Prover::synthesize(&pk, instance(shape, 0))?.public_inputs().to_vec();
            for p in &proofs {
                verify(&pk.pvk, pk.vk(), p, &statement)
                    .map_err(|e| anyhow::anyhow!("a {backend} {} proof does not verify: {e:?}", shape.name()))?;
            }
            out.push(time_row(
                "kernels::proof_latency",
                format!("shape={},{label}", shape.name()),
                latency,
                cpu_latency,
            ));
            let circuits: Vec<_> = (0..batch).map(|i| instance(shape, i as u64)).collect();
            let t = Instant::now();
            let proofs = prover.prove_batch(&pk, circuits, &mut rng)?;
            let rate = batch as f64 / t.elapsed().as_secs_f64();
            for (i, (p, _)) in proofs.iter().enumerate() {
                let statement = Prover::synthesize(&pk, instance(shape, i as u64))?.public_inputs().to_vec();
                verify(&pk.pvk, pk.vk(), p, &statement).map_err(|e| {
                    anyhow::anyhow!("a batched {backend} {} proof does not verify: {e:?}", shape.name())
                })?;
            }
            out.push(Row::throughput(
                "kernels::proofs_per_s",
                format!("shape={},batch={batch},{label}", shape.name()),
                rate,
                cpu_rate,
            ));
            if *backend == "cpu" {
                cpu_latency = Some(latency);
                cpu_rate = Some(rate);
            }
        }
        progress.inc(1);
    }
    // The CPC's batch: re-encryption (2N scalar multiplications by one re-key) and capsule
    // verification (one MSM of 2N + 1 points), in capsules/s.
    let reencrypt = gpu.as_ref().map(|g| {
        let mut r = CudaReencrypt::new(g.clone());
        r.min_capsules = 0;
        r
    });
    for &log in &capsule_sizes {
        progress.set_message(format!("capsules n=2^{log}"));
        let n = 1usize << log;
        let caps = valid_capsules(n, log as u64);
        let rk = scalars(1, 900 + log as u64)[0];
        let reps = if log >= 16 { 1 } else { reps };
        let (secs, want) = best_answer(reps, || Ok(CpuReencrypt.reencrypt(&rk, &caps)))?;
        let cpu = n as f64 / secs;
        out.push(Row::throughput("kernels::reencrypt", format!("capsules=2^{log},backend=cpu"), cpu, None));
        let cpu_check = n as f64
            / best(reps, || {
                CpuReencrypt.verify_capsules(&caps, [7; 32]).map_err(|bad| anyhow::anyhow!("bad capsules {bad:?}"))
            })?;
        out.push(Row::throughput("kernels::capsule_check", format!("capsules=2^{log},backend=cpu"), cpu_check, None));
        if let Some(r) = &reencrypt {
            let (secs, got) = best_answer(reps, || Ok(r.try_reencrypt(&rk, &caps)?))?;
            let g = n as f64 / secs;
            same(&format!("re-encryption of 2^{log} capsules"), &got, &want)?;
            out.push(Row::throughput(
                "kernels::reencrypt",
                format!("capsules=2^{log},backend=cuda,{dev}"),
                g,
                Some(cpu),
            ));
            let g = n as f64
                / best(reps, || {
                    anyhow::ensure!(r.try_combination_holds(&caps, [7; 32])?, "valid capsules refused");
                    Ok(())
                })?;
            out.push(Row::throughput(
                "kernels::capsule_check",
                format!("capsules=2^{log},backend=cuda,{dev}"),
                g,
                Some(cpu_check),
            ));
        }
        progress.inc(1);
    }

    // Batch verification's dominant cost: n Miller loops and one final exponentiation.
    let miller = gpu.as_ref().map(|g| {
        let mut m = CudaMiller::new(g.clone());
        m.min_pairs = 0;
        m
    });
    for &n in &pair_sizes {
        progress.set_message(format!("pairings n={n}"));
        let (p, q) = (g1_points(n, n as u64), g2_points(n, 1 + n as u64));
        let reps = if n >= 4096 { 1 } else { reps };
        let (secs, want) = best_answer(reps, || Ok(CpuBackend.miller_product(&p, &q).final_exponentiation()))?;
        let cpu = n as f64 / secs;
        out.push(Row::throughput("kernels::batch_verify_pairs", format!("proofs={n},backend=cpu"), cpu, None));
        if let Some(m) = &miller {
            let (secs, got) = best_answer(reps, || Ok(m.try_miller_product(&p, &q)?.final_exponentiation()))?;
            let g = n as f64 / secs;
            same(&format!("Miller product of {n} pairs"), &got, &want)?;
            out.push(Row::throughput(
                "kernels::batch_verify_pairs",
                format!("proofs={n},backend=cuda,{dev}"),
                g,
                Some(cpu),
            ));
        }
        progress.inc(1);
    }
    progress.finish();
    if let Some(g) = &gpu {
        for class in Priority::ALL {
            let s = g.scheduler().stats(class);
            println!(
                "kernels: scheduler {}: {} jobs, {:.3} s waiting, {:.3} s on the device, {} MB moved",
                class.label(),
                s.jobs.load(Ordering::Relaxed),
                s.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
                s.run_micros.load(Ordering::Relaxed) as f64 / 1e6,
                s.bytes.load(Ordering::Relaxed) / 1_000_000
            );
        }
    }
    if gpu.is_none() {
        println!("kernels: no GPU rows: {}", compute.fallback.as_deref().unwrap_or("no device"));
    }
    Ok(out.0)
}

/// Valid capsules: E = r·P1, V = u·P1, σ = u + h·r with h = H(E, V).
fn valid_capsules(n: usize, seed: u64) -> Vec<Capsule> {
    use rayon::prelude::*;
    let rs = scalars(n, seed);
    let us = scalars(n, seed + 1);
    rs.par_iter()
        .zip(us.par_iter())
        .map(|(r, u)| {
            let g = G1Projective::generator();
            let mut c = Capsule { e: (g * r).to_affine(), v: (g * u).to_affine(), sigma: Fr::ZERO };
            c.sigma = *u + c.challenge() * r;
            c
        })
        .collect()
}
