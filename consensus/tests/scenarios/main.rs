//! Scenario tests by shape: `n<replicas>f<faulty>`. Each runs the simulator with scripted
//! faults and checks safety, liveness, identical ledgers and what the scenario is about
//! (a view change happened, state was transferred, a replica restarted from its log).

mod dissemination;
mod home;
mod n4f0;
mod n4f1;
mod n7f2;
mod reconfig;
mod state;
mod wan;

use dualchain_consensus::sim::{Behaviour, Faults, Scripted, Sim, SimConfig, SimReport};
use dualchain_consensus::ReplicaId;

pub fn run(n: usize, seed: u64, faults: Faults) -> SimReport {
    let mut cfg = SimConfig::new(n, seed);
    cfg.faults = faults;
    cfg.requests_per_client = 60;
    let report = Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.requests, 180);
    assert!(report.executed > 0);
    report
}

pub fn byzantine(list: &[(ReplicaId, Behaviour)]) -> Faults {
    Faults { byzantine: list.to_vec(), ..Faults::none() }
}

pub fn scripted(script: Vec<(u64, Scripted)>) -> Faults {
    Faults { script, ..Faults::none() }
}
