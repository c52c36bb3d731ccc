//! Every kernel unit compiles with NVRTC to CUBIN for the architectures dualchain targets,
//! and every kernel the runtime looks up is in the image. Runs without a GPU: NVRTC comes
//! from the `nvidia-cuda-nvrtc` wheel that `scripts/setup.sh` installs (README's test
//! command puts it on `LD_LIBRARY_PATH`).

use dualchain_kernels::cache::ModuleCache;
use dualchain_kernels::source::UNITS;
use dualchain_kernels::{nvrtc, KernelError};

/// Data-centre GPUs: A100 (sm_80), H100/H200 (sm_90).
const ARCHS: &[&str] = &["sm_80", "sm_90"];

fn require_nvrtc() {
    assert!(
        nvrtc::available(),
        "libnvrtc is not loadable: run scripts/setup.sh and the tests through scripts/test.sh, \
         which puts the nvidia-cuda-nvrtc wheel's library on LD_LIBRARY_PATH"
    );
}

#[test]
fn every_unit_compiles_to_cubin_with_every_kernel() {
    require_nvrtc();
    let (major, minor) = nvrtc::version().unwrap();
    assert!(major >= 12, "NVRTC {major}.{minor} is too old for CUBIN output of these kernels");
    // Each NVRTC compilation is single-threaded and the MSM and pairing units take about a
    // minute each on one core: the (unit, architecture) pairs are shared out over the
    // machine's cores, largest first, so the test's wall time is about the work divided by
    // the cores rather than the sum.
    let mut jobs: Vec<_> = ARCHS.iter().flat_map(|arch| UNITS.iter().map(move |unit| (unit, *arch))).collect();
    jobs.sort_by_cached_key(|(unit, _)| std::cmp::Reverse(unit.source().len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(jobs.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(unit, arch)) = jobs.get(i) else { break };
                    let started = std::time::Instant::now();
                    let image = nvrtc::compile(unit, arch).unwrap_or_else(|e| panic!("{e}"));
                    assert!(image.starts_with(b"\x7fELF"), "{} for {arch} is not a CUBIN", unit.name);
                    for k in unit.kernels {
                        let found =
                            image.windows(k.len() + 1).any(|w| &w[..k.len()] == k.as_bytes() && w[k.len()] == 0);
                        assert!(found, "kernel {k} missing from {} for {arch}", unit.name);
                    }
                    eprintln!("{} for {arch}: {} bytes in {:?}", unit.name, image.len(), started.elapsed());
                })
            })
            .collect();
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn compile_errors_and_bad_architectures_are_errors() {
    require_nvrtc();
    match nvrtc::compile(&UNITS[0], "compute_90") {
        Err(KernelError::Input(m)) => assert!(m.contains("compute_90")),
        other => panic!("virtual architecture accepted: {:?}", other.map(|i| i.len())),
    }
    match nvrtc::compile(&UNITS[0], "sm_1") {
        Err(KernelError::Compile { log, .. }) => assert!(!log.is_empty()),
        other => panic!("unknown architecture accepted: {:?}", other.map(|i| i.len())),
    }
}

#[test]
fn the_cache_compiles_once() {
    require_nvrtc();
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path());
    let unit = &UNITS[1];
    let (first, cached) = cache.get_or_compile(unit, "sm_90").unwrap();
    assert!(!cached);
    let (second, cached) = cache.get_or_compile(unit, "sm_90").unwrap();
    assert!(cached);
    assert_eq!(first, second);
}

#[test]
fn devices_nvrtc_cannot_compile_for_are_refused_by_name() {
    require_nvrtc();
    let supported = nvrtc::supported_archs().unwrap();
    // The data-centre targets are there; CUDA 13 dropped everything before Turing.
    for arch in [80, 90] {
        assert!(supported.contains(&arch), "sm_{arch} missing from {supported:?}");
    }
    assert_eq!(nvrtc::unsupported(9, 0, &supported), None);
    assert_eq!(nvrtc::unsupported(8, 0, &supported), None);
    assert!(nvrtc::unsupported(6, 1, &supported).unwrap().contains("7.0 or newer"));
    let (major, _) = nvrtc::version().unwrap();
    if major >= 13 {
        // Volta (7.0) meets the kernels' floor but CUDA 13 no longer compiles for it.
        assert!(nvrtc::unsupported(7, 0, &supported).unwrap().contains("not sm_70"));
    }
}
