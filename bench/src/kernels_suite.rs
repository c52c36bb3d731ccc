//! The `kernels` suite: G1 and G2 MSM, the Fr NTT and whole proofs, on the CUDA backends
//! against the CPU backends of the same machine in the same run (`ratio` = GPU time / CPU
//! time for times, GPU rate / CPU rate for proofs/s).
//!
//! GPU rows appear only where a device opened; otherwise the suite says why and reports
//! the CPU rows alone. GPU MSMs are timed with the bases already resident, as a proving
//! key's are across proofs; the first call's upload is reported separately.
//!
//! Then the CPC's batch (re-encryption and capsule verification, capsules/s) and batch
//! proof verification's Miller loops plus one final exponentiation (proofs/s).
//!
//! Sizes: `--quick` G1/G2 MSM 2^12, 2^16 (G2 2^12, 2^14), NTT 2^12, 2^16, proofs of the
//! policy and supply-64 shapes, 2^10 capsules, 256 proofs' pairs; full: MSM 2^16, 2^20,
//! 2^22, 2^24, NTT 2^16, 2^20, 2^24, supply-1024 proofs too, capsules 2^10, 2^16, 2^20,
//! pairs of 256, 4096, 65536 proofs (meant for the GPU machine; the CPU rows at the large
//! sizes take minutes on a small machine).

use std::time::{Duration, Instant};

use anyhow::Result;
use blstrs::{G1Projective, Scalar as Fr};
use dualchain_crypto::cbsre::Capsule;
use dualchain_crypto::reencrypt::{CpuBackend as CpuReencrypt, ReencryptBackend};
use dualchain_kernels::cache::{default_dir, ModuleCache};
use dualchain_kernels::msm::{gpu_msm_g1, gpu_msm_g2};
use dualchain_kernels::ntt::gpu_ntt;
use dualchain_kernels::scheduler::Priority;
use dualchain_kernels::testdata::{g1_points, g2_points, scalars};
use dualchain_kernels::{Compute, CudaMiller, CudaMsm, CudaNtt, CudaReencrypt, GpuPolicy};
use dualchain_progress::Progress;
use dualchain_prover::backend::MillerBackend;
use dualchain_prover::backend::{CpuBackend, MsmBackend, NttBackend};
use dualchain_prover::groth16::Prover;
use dualchain_prover::ntt::root_of_unity;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use ff::Field;
use group::{Curve, Group};
use pairing::MillerLoopResult as _;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::atomic::Ordering;

use crate::measure::Record as Row;
use crate::prover_suite::instance;

fn time_row(name: &str, params: String, secs: f64, baseline: Option<f64>) -> Row {
    Row { name: name.into(), params, value: secs, unit: "s".into(), baseline, ratio: baseline.map(|b| secs / b) }
}

/// Best wall time of `reps` calls after one warm-up call.
fn best(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best.as_secs_f64())
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    let compute = Compute::select(GpuPolicy::Auto, 0, &ModuleCache::new(default_dir()))?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("kernels: {}; CPU baseline on {cpus} threads", compute.describe());
    let gpu = compute.gpu.clone();
    let dev = compute.device.as_ref().map(|d| d.name.clone()).unwrap_or_default();
    let reps = if quick { 2 } else { 3 };
    let mut out = Vec::new();

    let (g1_sizes, g2_sizes, ntt_sizes): (&[u32], &[u32], &[u32]) =
        if quick { (&[12, 16], &[12, 14], &[12, 16]) } else { (&[16, 20, 22, 24], &[16, 20, 22, 24], &[16, 20, 24]) };

    let mut shapes = vec![Shape::Policy, Shape::Supply(SupplyShape::Records64)];
    if !quick {
        shapes.push(Shape::Supply(SupplyShape::Records1024));
    }
    // Points: one per MSM and NTT size, proof shape, capsule batch size and pairing count.
    let (capsule_sizes, pair_sizes): (&[u32], &[usize]) =
        if quick { (&[10], &[256]) } else { (&[10, 16, 20], &[256, 4096, 65536]) };
    let points =
        g1_sizes.len() + g2_sizes.len() + ntt_sizes.len() + shapes.len() + capsule_sizes.len() + pair_sizes.len();
    let progress = Progress::new("bench kernels", points as u64);

    let msm = gpu.as_ref().map(|g| {
        let mut m = CudaMsm::new(g.clone());
        m.min_points = 0;
        m
    });
    for &log in g1_sizes {
        progress.set_message(format!("msm g1 n=2^{log}"));
        let n = 1usize << log;
        let (b, s) = (g1_points(n, log as u64), scalars(n, 100 + log as u64));
        let cpu = best(reps, || {
            CpuBackend.msm_g1(&b, &s);
            Ok(())
        })?;
        out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cpu"), cpu, None));
        if let Some(m) = &msm {
            let t = Instant::now();
            gpu_msm_g1(m, &b, &s)?;
            out.push(time_row(
                "kernels::msm_g1_first",
                format!("n=2^{log},with upload,{dev}"),
                t.elapsed().as_secs_f64(),
                Some(cpu),
            ));
            let g = best(reps, || gpu_msm_g1(m, &b, &s).map(|_| ()).map_err(Into::into))?;
            out.push(time_row("kernels::msm_g1", format!("n=2^{log},backend=cuda,{dev}"), g, Some(cpu)));
            m.evict_all();
        }
        progress.inc(1);
    }
    for &log in g2_sizes {
        progress.set_message(format!("msm g2 n=2^{log}"));
        let n = 1usize << log;
        let (b, s) = (g2_points(n, log as u64), scalars(n, 200 + log as u64));
        let cpu = best(reps, || {
            CpuBackend.msm_g2(&b, &s);
            Ok(())
        })?;
        out.push(time_row("kernels::msm_g2", format!("n=2^{log},backend=cpu"), cpu, None));
        if let Some(m) = &msm {
            let g = best(reps, || gpu_msm_g2(m, &b, &s).map(|_| ()).map_err(Into::into))?;
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
    for &log in ntt_sizes {
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
        if let Some(t) = &ntt {
            let g = best(reps, || {
                work.copy_from_slice(&v);
                gpu_ntt(t, &mut work, omega).map_err(Into::into)
            })?;
            out.push(time_row("kernels::ntt", format!("n=2^{log},backend=cuda,with transfers,{dev}"), g, Some(cpu)));
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
            let latency = best(1, || {
                prover.prove(&pk, instance(shape, 0), &mut rng)?;
                Ok(())
            })?;
            out.push(time_row(
                "kernels::proof_latency",
                format!("shape={},{label}", shape.name()),
                latency,
                cpu_latency,
            ));
            let circuits: Vec<_> = (0..batch).map(|i| instance(shape, i as u64)).collect();
            let t = Instant::now();
            prover.prove_batch(&pk, circuits, &mut rng)?;
            let rate = batch as f64 / t.elapsed().as_secs_f64();
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
    for &log in capsule_sizes {
        progress.set_message(format!("capsules n=2^{log}"));
        let n = 1usize << log;
        let caps = valid_capsules(n, log as u64);
        let rk = scalars(1, 900 + log as u64)[0];
        let reps = if log >= 16 { 1 } else { reps };
        let cpu = n as f64
            / best(reps, || {
                CpuReencrypt.reencrypt(&rk, &caps);
                Ok(())
            })?;
        out.push(Row::throughput("kernels::reencrypt", format!("capsules=2^{log},backend=cpu"), cpu, None));
        let cpu_check = n as f64
            / best(reps, || {
                CpuReencrypt.verify_capsules(&caps, [7; 32]).map_err(|bad| anyhow::anyhow!("bad capsules {bad:?}"))
            })?;
        out.push(Row::throughput("kernels::capsule_check", format!("capsules=2^{log},backend=cpu"), cpu_check, None));
        if let Some(r) = &reencrypt {
            let g = n as f64 / best(reps, || r.try_reencrypt(&rk, &caps).map(|_| ()).map_err(Into::into))?;
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
    for &n in pair_sizes {
        progress.set_message(format!("pairings n={n}"));
        let (p, q) = (g1_points(n, n as u64), g2_points(n, 1 + n as u64));
        let reps = if n >= 4096 { 1 } else { reps };
        let cpu = n as f64
            / best(reps, || {
                CpuBackend.miller_product(&p, &q).final_exponentiation();
                Ok(())
            })?;
        out.push(Row::throughput("kernels::batch_verify_pairs", format!("proofs={n},backend=cpu"), cpu, None));
        if let Some(m) = &miller {
            let g = n as f64
                / best(reps, || {
                    m.try_miller_product(&p, &q)?.final_exponentiation();
                    Ok(())
                })?;
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
    Ok(out)
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
