//! What the agents count for Prometheus: proofs and proving time by circuit, a CPC's
//! re-encryptions, ingested records and fetches.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What the agents count for Prometheus (unregistered handles unless the node registers
/// them; clones share the same series).
#[derive(Clone)]
pub struct AgentMetrics {
    /// Groth16 proofs made, by circuit (`supply`, `policy`).
    pub proofs: Family<CircuitLabel, Counter>,
    /// Proving time in seconds, by circuit.
    pub prove_seconds: Family<CircuitLabel, Histogram, fn() -> Histogram>,
    /// Capsules re-encrypted by this CPC.
    pub reencrypted_records: Counter,
    /// Re-encryption batches (one per grant served).
    pub reencrypt_batches: Counter,
    /// Records taken in by this CPC.
    pub ingested_records: Counter,
    /// Fetches served (`ok`) or refused (`refused`).
    pub fetches: Family<ResultLabel, Counter>,
    /// Break-glass requests made to this owner (each awaits its review).
    pub break_glass: Counter,
    /// Oblivious relaying, by role (`client`, `relay`, `gateway`), operation and the
    /// member on the other side (what that side sees anyway).
    pub oblivious: Family<ObliviousLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObliviousLabel {
    pub role: String,
    pub op: String,
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabel {
    pub circuit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

fn prove_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            proofs: Family::default(),
            prove_seconds: Family::new_with_constructor(prove_buckets),
            reencrypted_records: Counter::default(),
            reencrypt_batches: Counter::default(),
            ingested_records: Counter::default(),
            fetches: Family::default(),
            break_glass: Counter::default(),
            oblivious: Family::default(),
        }
    }
}

impl AgentMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("dualchain_prover_proofs", "Groth16 proofs made by this node", m.proofs.clone());
        registry.register("dualchain_prover_prove_seconds", "Groth16 proving time", m.prove_seconds.clone());
        registry.register("dualchain_cpc_reencrypted_records", "Capsules re-encrypted", m.reencrypted_records.clone());
        registry.register("dualchain_cpc_reencrypt_batches", "Re-encryption batches", m.reencrypt_batches.clone());
        registry.register("dualchain_cpc_ingested_records", "Records taken in", m.ingested_records.clone());
        registry.register("dualchain_cpc_fetches", "Fetches served or refused", m.fetches.clone());
        registry.register(
            "dualchain_break_glass_requests",
            "Break-glass requests made to this hospital (each awaits review)",
            m.break_glass.clone(),
        );
        registry.register(
            "dualchain_oblivious_requests",
            "Oblivious relaying of pseudonyms' requests, by role, operation and the member on the other side",
            m.oblivious.clone(),
        );
        // Every series exists from the start (at zero), so dashboards and alerts see them.
        for circuit in ["supply", "policy"] {
            let l = CircuitLabel { circuit: circuit.into() };
            let _ = m.proofs.get_or_create(&l);
            let _ = m.prove_seconds.get_or_create(&l);
        }
        for result in ["ok", "refused"] {
            let _ = m.fetches.get_or_create(&ResultLabel { result: result.into() });
        }
        m
    }

    pub fn oblivious(&self, role: &str, op: &str, peer: &str) {
        self.oblivious.get_or_create(&ObliviousLabel { role: role.into(), op: op.into(), peer: peer.into() }).inc();
    }

    pub fn proved(&self, circuit: &str, took: Duration) {
        let l = CircuitLabel { circuit: circuit.into() };
        self.proofs.get_or_create(&l).inc();
        self.prove_seconds.get_or_create(&l).observe(took.as_secs_f64());
    }
}
