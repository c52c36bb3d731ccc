//! `dualchain`: the node appliance's command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use dualchain_node::demo::{self, DemoConfig};

#[derive(Parser)]
#[command(
    name = "dualchain",
    version,
    about = "Consortium appliance for sharing medical IoT data without giving it away"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole sharing flow in an in-process consortium: 4 validators (PBFT over
    /// loopback QUIC, RocksDB in a temporary directory), a KGC, 2 hospitals, a research
    /// institute and 3 CPCs; registration, key issuing, upload, demand, supply and policy
    /// proofs, grant and denial, re-key, batch re-encryption, decryption, audit, revocation.
    Demo {
        /// Number of FHIR Observations each hospital shares.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        records: u32,
        /// Seed for a reproducible run (default: fresh randomness).
        #[arg(long)]
        seed: Option<u64>,
        /// Directory caching Groth16 parameter files between runs
        /// (default: $XDG_CACHE_HOME/dualchain/params or ~/.cache/dualchain/params).
        #[arg(long)]
        params_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { records, seed, params_dir } => {
            let cfg = DemoConfig {
                records: records as usize,
                seed,
                params_dir: params_dir.unwrap_or_else(dualchain_node::zk::default_params_dir),
            };
            demo::run(&cfg, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}
