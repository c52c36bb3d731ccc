//! dualchain's benchmark runner.
//!
//! `cargo run --release -p bench -- <suite> [--quick] [--out FILE]` runs one suite, prints a
//! table and writes a JSON object: `context` (commit, date, CPU, cores, memory, GPU or
//! "none", build profile, arguments: [`context::Context`]) and `rows`, an array of
//! `{name, params, value, unit, baseline, ratio}`. Every
//! fast path is measured against its baseline in the same run (`ratio = value / baseline`
//! for throughputs), so figures compare across machines as ratios. `--chart DIR` also draws
//! the suite's charts ([`suite_charts`]). `bench paper` sets the paper's experiments beside
//! ours ([`paper_suite`]); `bench report [--quick] [--from DIR] [--machine NAME] [--dir DIR]
//! [--only a,b]` runs every suite and writes `bench/results/<machine>/` ([`report`]).

#![forbid(unsafe_code)]

mod api_suite;
mod ceremony_suite;
mod chart;
mod consensus_suite;
mod context;
mod crypto_suite;
mod e2e_suite;
mod kernels_suite;
mod measure;
mod paper_suite;
mod prover_suite;
mod report;
mod storage_suite;
mod suite_charts;

use std::io::Write;

use anyhow::{bail, Context, Result};
use measure::Record;

const SUITES: [&str; 9] = ["crypto", "prover", "kernels", "storage", "consensus", "e2e", "ceremony", "paper", "report"];

struct Args {
    suite: String,
    quick: bool,
    /// Also run benchmark-only large shapes (prover: supply-4096).
    large: bool,
    /// kernels: no size above 2^N (MSM and NTT lengths, capsule batches, pairings).
    max_log: Option<u32>,
    out: Option<String>,
    /// Draw the suite's charts into this directory.
    chart: Option<std::path::PathBuf>,
    /// report: read the suites' JSON files from this directory instead of running them.
    from: Option<std::path::PathBuf>,
    /// report: the machine's name (the results directory), and that directory.
    machine: Option<String>,
    dir: Option<std::path::PathBuf>,
    /// report: only these suites.
    only: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut suite = None;
    let mut quick = false;
    let mut large = false;
    let mut out = None;
    let mut max_log = None;
    let (mut chart, mut from, mut machine, mut dir, mut only) = (None, None, None, None, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--large" => large = true,
            "--out" => out = Some(it.next().context("--out needs a file name")?),
            "--chart" => chart = Some(it.next().context("--chart needs a directory")?.into()),
            "--from" => from = Some(it.next().context("--from needs a directory")?.into()),
            "--machine" => machine = Some(it.next().context("--machine needs a name")?),
            "--dir" => dir = Some(it.next().context("--dir needs a directory")?.into()),
            "--only" => {
                only =
                    it.next().context("--only needs suites, comma-separated")?.split(',').map(str::to_owned).collect()
            }
            "--max-log-size" => {
                let n = it.next().context("--max-log-size needs a number")?;
                max_log = Some(n.parse().with_context(|| format!("--max-log-size {n:?}: not a number"))?);
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench <{}> [--quick] [--large] [--max-log-size N] [--out FILE] [--chart DIR]\n       \
                     bench report [--quick] [--from DIR] [--machine NAME] [--dir DIR] [--only SUITE,...]",
                    SUITES.join("|")
                );
                std::process::exit(0);
            }
            s if suite.is_none() && !s.starts_with('-') => suite = Some(s.to_owned()),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let suite = suite.with_context(|| format!("name a suite: {}", SUITES.join(", ")))?;
    Ok(Args { suite, quick, large, max_log, out, chart, from, machine, dir, only })
}

fn run_suite(suite: &str, args: &Args) -> Result<Vec<Record>> {
    Ok(match suite {
        "crypto" => crypto_suite::run(args.quick)?,
        "prover" => prover_suite::run(args.quick, args.large)?,
        "kernels" => kernels_suite::run(args.quick, args.max_log)?,
        "ceremony" => ceremony_suite::run(args.quick, args.max_log)?,
        "storage" => storage_suite::run(args.quick)?,
        "consensus" => consensus_suite::run(args.quick)?,
        "paper" => paper_suite::run(args.quick)?,
        // `BENCH_E2E_API_ONLY=1`: the API suite alone (4 node processes, over HTTPS and
        // plain HTTP), without the in-process flow before it.
        "e2e" if std::env::var_os("BENCH_E2E_API_ONLY").is_some() => api_suite::run(args.quick)?,
        "e2e" => {
            let mut r = e2e_suite::run(args.quick)?;
            r.extend(api_suite::run(args.quick)?);
            r
        }
        other => bail!("unknown suite {other:?}; suites: {}", SUITES.join(", ")),
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    init_logs();
    if args.suite == "report" {
        let report_args = report::ReportArgs {
            quick: args.quick,
            from: args.from.clone(),
            machine: args.machine.clone(),
            dir: args.dir.clone(),
            only: args.only.clone(),
        };
        let dir = report::run(report_args, |suite| run_suite(suite, &args))?;
        println!("wrote the report to {}", dir.join("README.md").display());
        return Ok(());
    }
    let records = run_suite(&args.suite, &args)?;
    print_table(&records);
    if args.suite == "paper" {
        let mut side_by_side = String::new();
        report::paper_section(&mut side_by_side, &records);
        println!("\n{side_by_side}");
    }
    if let Some(dir) = &args.chart {
        for chart in suite_charts::draw(&args.suite, &records, dir)? {
            println!("drew {} ({})", chart.file.display(), chart.caption);
        }
    }
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
