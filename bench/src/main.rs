//! dualchain's benchmark runner.
//!
//! `cargo run --release -p bench -- <suite> [--quick] [--out FILE]` runs one suite, prints a
//! table and writes a JSON object: `context` (commit, date, CPU, cores, memory, GPU or
//! "none", build profile, arguments: [`context::Context`]) and `rows`, an array of
//! `{name, params, value, unit, baseline, ratio}`. Every
//! fast path is measured against its baseline in the same run (`ratio = value / baseline`
//! for throughputs), so figures compare across machines as ratios.

#![forbid(unsafe_code)]

mod api_suite;
mod ceremony_suite;
mod consensus_suite;
mod context;
mod crypto_suite;
mod e2e_suite;
mod kernels_suite;
mod measure;
mod prover_suite;
mod storage_suite;

use std::io::Write;

use anyhow::{bail, Context, Result};
use measure::Record;

const SUITES: [&str; 7] = ["crypto", "prover", "kernels", "storage", "consensus", "e2e", "ceremony"];

struct Args {
    suite: String,
    quick: bool,
    /// Also run benchmark-only large shapes (prover: supply-4096).
    large: bool,
    /// kernels: no size above 2^N (MSM and NTT lengths, capsule batches, pairings).
    max_log: Option<u32>,
    out: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut suite = None;
    let mut quick = false;
    let mut large = false;
    let mut out = None;
    let mut max_log = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--large" => large = true,
            "--out" => out = Some(it.next().context("--out needs a file name")?),
            "--max-log-size" => {
                let n = it.next().context("--max-log-size needs a number")?;
                max_log = Some(n.parse().with_context(|| format!("--max-log-size {n:?}: not a number"))?);
            }
            "-h" | "--help" => {
                println!("usage: bench <{}> [--quick] [--large] [--max-log-size N] [--out FILE]", SUITES.join("|"));
                std::process::exit(0);
            }
            s if suite.is_none() && !s.starts_with('-') => suite = Some(s.to_owned()),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let suite = suite.with_context(|| format!("name a suite: {}", SUITES.join(", ")))?;
    Ok(Args { suite, quick, large, max_log, out })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    init_logs();
    let records: Vec<Record> = match args.suite.as_str() {
        "crypto" => crypto_suite::run(args.quick)?,
        "prover" => prover_suite::run(args.quick, args.large)?,
        "kernels" => kernels_suite::run(args.quick, args.max_log)?,
        "ceremony" => ceremony_suite::run(args.quick, args.max_log)?,
        "storage" => storage_suite::run(args.quick)?,
        "consensus" => consensus_suite::run(args.quick)?,
        "e2e" => {
            let mut r = e2e_suite::run(args.quick)?;
            r.extend(api_suite::run(args.quick)?);
            r
        }
        other => bail!("unknown suite {other:?}; suites: {}", SUITES.join(", ")),
    };
    print_table(&records);
    if let Some(path) = args.out {
        let context = context::Context::gather(&args.suite);
        let json = serde_json::to_string_pretty(&serde_json::json!({ "context": context, "rows": records }))?;
        std::fs::write(&path, json).with_context(|| format!("writing {path}"))?;
        println!("wrote {} results to {path}", records.len());
    }
    Ok(())
}

/// Logs on stderr, above any progress bars (stdout is the results table). Without a
/// terminal the suites' progress comes as these log lines (`DUALCHAIN_PROGRESS` chooses);
/// `RUST_LOG` overrides the default of warnings plus progress.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dualchain_progress=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| dualchain_progress::AboveBars(std::io::stderr()))
        .init();
}

fn print_table(records: &[Record]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", Record::header());
    for r in records {
        let _ = writeln!(out, "{}", r.line());
    }
}
