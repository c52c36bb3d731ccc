//! A consortium across data centers: five sites 20–150 ms apart one way, 10 ms of jitter,
//! 1 Gbit/s uplinks ([`Wan::five_sites`]), replicas on WAN timing
//! ([`dualchain_consensus::Config::wan`]). Two runs per size: one without faults reports
//! the simulated throughput at the offered load (800 requests over 10 s) and request
//! latency; in the other the primary of view 0 crashes at 5 s and stays down, and f − 1
//! other replicas are silent (f faults in all), and it reports the time 2f + 1 correct
//! replicas took to enter a new view after the crash. The default run keeps n = 4; the
//! `_slow` one runs n = 4, 7, 16 and 31 and prints the figures.

use dualchain_consensus::sim::{Behaviour, Faults, Scripted, Sim, SimConfig, SimReport, Wan};
use dualchain_consensus::ReplicaId;

fn wan_run(n: usize, seed: u64, crash: bool) -> SimReport {
    let f = (n - 1) / 3;
    let mut cfg = SimConfig::new(n, seed);
    cfg.wan = Some(Wan::five_sites());
    cfg.clients = 8;
    cfg.requests_per_client = 100;
    cfg.batch_len_max = 256;
    cfg.window_len = 16;
    cfg.checkpoint_interval = 16;
    cfg.fault_phase_ms = 10_000;
    cfg.liveness_ms = 120_000;
    if crash {
        let silent: Vec<(ReplicaId, Behaviour)> =
            (0..f.saturating_sub(1)).map(|k| ((n - 1 - k) as ReplicaId, Behaviour::Silent)).collect();
        cfg.faults = Faults {
            byzantine: silent,
            script: vec![(5_000, Scripted::Crash(0))],
            keep_down: vec![0],
            ..Faults::none()
        };
    }
    let r = Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.latencies_ms.len(), 800, "every request answered");
    assert_eq!(r.elections_ms.len(), usize::from(crash), "the crashed primary was in office: {r:?}");
    r
}

/// What must hold on any WAN run: a request needs at least two one-way trips between
/// sites (prepare and commit reach a quorum spread over sites), and a new primary is in
/// office within a few progress timeouts of the crash.
fn check(n: usize, seed: u64) {
    let steady = wan_run(n, seed, false);
    let timeout = dualchain_consensus::Config::wan(n, 0).view_change_timeout_ms;
    let (p50, p99) = (steady.latency_ms(0.5), steady.latency_ms(0.99));
    assert!((40..=2_000).contains(&p50), "n = {n}: p50 {p50} ms");
    assert!(p99 >= p50 && p99 < timeout, "n = {n}: p99 {p99} ms");
    assert_eq!(steady.view_changes, 0, "no view change without faults");
    let crashed = wan_run(n, seed, true);
    let election = crashed.elections_ms[0];
    assert!((40..=3 * timeout).contains(&election), "n = {n}: election {election} ms");
    eprintln!(
        "WAN n = {n:2}: {:5.1} requests/s offered and committed, latency p50 {p50} ms p99 {p99} ms, \
         {} messages; a new primary {election} ms after the crash",
        steady.throughput_per_s, steady.messages_sent
    );
}

#[test]
fn a_consortium_across_five_sites_elects_a_new_primary_and_commits() {
    check(4, 41);
}

#[test]
fn wan_n4_n7_n16_n31_slow() {
    for n in [4, 7, 16, 31] {
        check(n, 40 + n as u64);
    }
}
