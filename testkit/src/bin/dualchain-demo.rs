//! `dualchain-demo`: the whole sharing flow (DESIGN.md §3) in an in-process consortium,
//! with timings and a summary (see [`dualchain_testkit::demo`]).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use dualchain_testkit::demo::{self, DemoConfig};

/// Run the whole sharing flow in an in-process consortium: 4 validators (PBFT over
/// loopback QUIC, RocksDB in a temporary directory), a KGC, 2 hospitals, a research
/// institute and 3 CPCs; registration, key issuing, upload, demand, supply and policy
/// proofs, grant and denial, re-key, batch re-encryption, decryption, audit, revocation.
#[derive(Parser)]
#[command(name = "dualchain-demo", version)]
struct Args {
    /// Number of FHIR Observations each hospital shares.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    records: u32,
    /// Seed for a reproducible run (default: fresh randomness).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory caching Groth16 parameter files between runs
    /// (default: $XDG_CACHE_HOME/dualchain/params or ~/.cache/dualchain/params).
    #[arg(long)]
    params_dir: Option<PathBuf>,
    /// Skip the Groth16 ceremony among the seven institutions (phase 1, then phase 2 for
    /// each of the demo's circuits; about five minutes on a 2-core machine): take test
    /// parameters made on this machine and cached, as a test consortium does. A seeded run
    /// always does.
    #[arg(long)]
    test_params: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    dualchain_node::service::init_command_logging()?;
    let cfg = DemoConfig {
        records: args.records as usize,
        seed: args.seed,
        params_dir: args.params_dir.unwrap_or_else(dualchain_node::genesis::params::default_params_dir),
        ceremony: !args.test_params && args.seed.is_none(),
    };
    demo::run(&cfg, &mut std::io::stdout().lock())?;
    Ok(())
}
