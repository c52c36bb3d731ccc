//! `dualchain`'s command line: `init` (genesis), `node` (one node until SIGTERM) and
//! `client` (a node's API as a member).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::NodeConfig;
use crate::genesis::{self, InitOptions};

pub mod client;

use client::ClientArgs;

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
    /// Create a consortium's genesis: keys, certificates, IBE/CP-ABE setup, Groth16
    /// parameters and one configuration per node.
    Init(InitOptions),
    /// Run one node until SIGTERM: consensus, ledger, the hosted member's agents, the API.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Call a node's API as a member.
    Client(ClientArgs),
    /// Clear a stopped node's ledger (blocks, index, contract state) so that it re-applies
    /// the consensus archive at its next start: the repair of a ledger whose state departed
    /// from the consortium's (alert LedgerStateDiverged). The consensus log stays.
    LedgerRebuild {
        #[arg(long)]
        config: PathBuf,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init(opts) => {
            crate::service::init_command_logging()?;
            let report = genesis::run(&opts)?;
            for p in &report.params_generated {
                println!("generated Groth16 parameters: {p}");
            }
            println!("consortium written to {}", opts.out.display());
            for (i, member, dir) in &report.nodes {
                println!(
                    "  node {i}: {:<12} dualchain node --config {}",
                    member.as_deref().unwrap_or("(validator)"),
                    dir.join("node.toml").display()
                );
            }
        }
        Command::Node { config } => {
            let cfg = NodeConfig::load(&config)?;
            crate::service::init_logging(&cfg.log)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let ran = rt.block_on(crate::service::run(cfg));
            // Dropping a runtime waits for its blocking tasks without limit; a stopping
            // node waits a bounded time (SIGTERM stops it within API_DRAIN + STOP_MAX +
            // BLOCKING_DRAIN in any state).
            rt.shutdown_timeout(crate::service::BLOCKING_DRAIN);
            ran?;
        }
        Command::Client(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(client::run(args))?;
        }
        Command::LedgerRebuild { config } => {
            let cfg = NodeConfig::load(&config)?;
            let (applied, archived) = crate::service::clear_ledger(&cfg)?;
            println!(
                "ledger cleared (it had applied {}); the node re-applies {archived} archived batches when it starts",
                applied.map_or("nothing".to_string(), |s| format!("up to batch {s}"))
            );
        }
    }
    Ok(())
}
