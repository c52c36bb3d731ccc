//! The node's own series: gauges refreshed at every scrape from counters kept by the
//! validator, the store, the compute backends and the agents; and the encoding of every
//! registered series as Prometheus text.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Gauges refreshed at every scrape from counters kept elsewhere.
#[derive(Default)]
pub struct ScrapeGauges {
    pub applied_seq: Gauge,
    pub apply_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub view: Gauge,
    pub storage_gets: Gauge,
    pub storage_writes: Gauge,
    pub storage_written_bytes: Gauge,
    pub storage_write_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub gpu_available: Gauge,
    pub gpu_jobs: Family<[(&'static str, String); 1], Gauge>,
    pub gpu_fallbacks: Family<[(&'static str, String); 1], Gauge>,
    pub gpu_seconds: Family<[(&'static str, String); 1], Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub gpu_cross_checks: Gauge,
    pub gpu_mismatches: Gauge,
    pub gpu_disabled: Family<[(&'static str, String); 1], Gauge>,
    pub agent_failures: Gauge,
    pub members_registered: Gauge,
    /// Seconds until each registered, unrevoked member's certificate expires (negative once
    /// it has): the ledger refuses an expired member's transactions.
    pub certificate_expiry: Family<[(&'static str, String); 1], Gauge>,
    /// Seconds until this node's TLS certificates expire, by use (`api`, `consensus`).
    pub tls_expiry: Family<[(&'static str, String); 1], Gauge>,
}

pub fn register_gauges(r: &mut Registry, g: &ScrapeGauges) {
    r.register("dualchain_ledger_applied_seq", "Last batch applied to the ledger", g.applied_seq.clone());
    r.register(
        "dualchain_ledger_apply_seconds",
        "Time the applier spent applying batches (batch proof verification, contracts, store write; signatures checked ahead run beside it)",
        g.apply_seconds.clone(),
    );
    r.register("dualchain_ledger_members", "Members registered on the ledger", g.members_registered.clone());
    r.register(
        "dualchain_member_certificate_expiry_seconds",
        "Seconds until a registered member's certificate expires, by member (negative: expired)",
        g.certificate_expiry.clone(),
    );
    r.register(
        "dualchain_tls_certificate_expiry_seconds",
        "Seconds until this node's TLS certificate expires, by use: api (HTTPS) or consensus (QUIC)",
        g.tls_expiry.clone(),
    );
    r.register("dualchain_consensus_current_view", "The engine's view (as reported to the API)", g.view.clone());
    r.register("dualchain_storage_gets", "Point reads of the validator's store", g.storage_gets.clone());
    r.register(
        "dualchain_storage_writes",
        "Atomic synced write batches of the validator's store",
        g.storage_writes.clone(),
    );
    r.register(
        "dualchain_storage_written_bytes",
        "Bytes written to the validator's store",
        g.storage_written_bytes.clone(),
    );
    r.register(
        "dualchain_storage_write_seconds",
        "Time spent in writes including the sync",
        g.storage_write_seconds.clone(),
    );
    r.register(
        "dualchain_kernels_gpu_available",
        "1 when a CUDA device serves proving, batch verification and re-encryption; 0 when the CPU does",
        g.gpu_available.clone(),
    );
    r.register("dualchain_kernels_gpu_jobs", "Kernel jobs run on the GPU, by kernel", g.gpu_jobs.clone());
    r.register(
        "dualchain_kernels_gpu_fallbacks",
        "GPU jobs that failed and were computed on the CPU instead, by kernel",
        g.gpu_fallbacks.clone(),
    );
    r.register("dualchain_kernels_gpu_seconds", "Time in GPU jobs, by kernel", g.gpu_seconds.clone());
    r.register(
        "dualchain_kernels_gpu_cross_checks",
        "GPU answers compared with the CPU's (every proof, batch verification's warm-up and sample)",
        g.gpu_cross_checks.clone(),
    );
    r.register(
        "dualchain_kernels_gpu_mismatches",
        "GPU answers that differed from the CPU's (the CPU's answer was used)",
        g.gpu_mismatches.clone(),
    );
    r.register(
        "dualchain_kernels_gpu_disabled",
        "1 when a cross-check disabled the GPU for this workload until the node restarts",
        g.gpu_disabled.clone(),
    );
    for w in dualchain_kernels::guard::Workload::ALL {
        let _ = g.gpu_disabled.get_or_create(&[("workload", w.name().to_string())]);
    }
    for kernel in dualchain_kernels::select::KERNELS {
        let l = [("kernel", kernel.to_string())];
        let _ = g.gpu_jobs.get_or_create(&l);
        let _ = g.gpu_fallbacks.get_or_create(&l);
        let _ = g.gpu_seconds.get_or_create(&l);
    }
    r.register("dualchain_agent_failures", "Reactions to the ledger that failed", g.agent_failures.clone());
}
