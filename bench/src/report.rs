//! `bench report`: every suite in `--quick` mode (or the JSON files of an earlier run,
//! `--from DIR`, redrawn in DIR), written to `bench/results/<machine>/` as each suite's JSON file, its
//! charts (PNG) and a Markdown summary, `README.md`, that links them: the machine and
//! commit, the paper's figures beside ours, then each suite's charts and rows.
//!
//! A suite that fails is reported as failed, with its error, and the others still run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::context::Context;
use crate::measure::Record;

/// The suites of a report, the paper's first.
pub const SUITES: [&str; 8] = ["paper", "prover", "kernels", "crypto", "storage", "consensus", "e2e", "ceremony"];

pub struct ReportArgs {
    pub quick: bool,
    pub from: Option<PathBuf>,
    pub machine: Option<String>,
    pub dir: Option<PathBuf>,
    /// Only these suites (all when empty).
    pub only: Vec<String>,
}

/// One suite's part of the report.
struct Section {
    suite: String,
    context: Option<Value>,
    outcome: Result<Vec<Record>, String>,
    charts: Vec<crate::chart::Chart>,
}

/// A short name for this machine: architecture, cores, and the GPU if there is one
/// (`x86-2core`, `x86-16core-h200`).
pub fn machine_name(context: &Context) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86",
        other => other,
    };
    let mut name = format!("{arch}-{}core", context.cores);
    if context.gpu != "none" {
        let gpu = context.gpu.split(',').next().unwrap_or_default();
        let model = gpu.split_whitespace().find(|w| w.chars().any(|c| c.is_ascii_digit())).unwrap_or("gpu");
        name.push('-');
        name.push_str(&model.to_lowercase());
    }
    name
}

/// Reads a suite's JSON file: `{context, rows}`, or a bare array of rows (files written
/// before the context was recorded).
pub fn read_results(path: &Path) -> Result<(Option<Value>, Vec<Record>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let (context, rows) = match value {
        Value::Array(_) => (None, value),
        Value::Object(mut o) => (o.remove("context"), o.remove("rows").unwrap_or(Value::Array(vec![]))),
        _ => anyhow::bail!("{}: neither rows nor {{context, rows}}", path.display()),
    };
    let rows = serde_json::from_value(rows).with_context(|| format!("{}: rows", path.display()))?;
    Ok((context, rows))
}

pub fn run(args: ReportArgs, run_suite: impl Fn(&str) -> Result<Vec<Record>>) -> Result<PathBuf> {
    for o in &args.only {
        anyhow::ensure!(SUITES.contains(&o.as_str()), "--only {o}: not a suite of the report ({})", SUITES.join(", "));
    }
    let here = Context::gather("report");
    // Results read from a directory are redrawn there, under that directory's name: another
    // machine's results never land in this machine's report.
    let from_name = args.from.as_ref().and_then(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned());
    let machine = args.machine.clone().or(from_name).unwrap_or_else(|| machine_name(&here));
    let dir = match (&args.dir, &args.from) {
        (Some(dir), _) => dir.clone(),
        (None, Some(from)) => from.clone(),
        (None, None) => Path::new("bench/results").join(&machine),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut sections = Vec::new();
    for suite in SUITES.iter().filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == *s)) {
        let json = dir.join(format!("{suite}.json"));
        let (context, outcome) = match &args.from {
            Some(from) => {
                let path = from.join(format!("{suite}.json"));
                if !path.exists() {
                    continue;
                }
                let (context, rows) = read_results(&path)?;
                if path != json {
                    std::fs::copy(&path, &json).with_context(|| format!("copying {}", path.display()))?;
                }
                (context, Ok(rows))
            }
            None => {
                eprintln!("bench report: {suite}{}", if args.quick { " --quick" } else { "" });
                match run_suite(suite) {
                    Ok(rows) => {
                        let context = serde_json::to_value(Context::gather(suite))?;
                        let body = serde_json::json!({ "context": context, "rows": rows });
                        std::fs::write(&json, serde_json::to_string_pretty(&body)?)?;
                        (Some(context), Ok(rows))
                    }
                    Err(e) => (None, Err(format!("{e:#}"))),
                }
            }
        };
        let charts = match &outcome {
            Ok(rows) => crate::suite_charts::draw(suite, rows, &dir)?,
            Err(_) => vec![],
        };
        sections.push(Section { suite: suite.to_string(), context, outcome, charts });
    }
    let summary = summary(&machine, &here, &args, &sections, &dir);
    std::fs::write(dir.join("README.md"), summary)?;
    Ok(dir)
}

fn context_line(v: &Value) -> String {
    let s = |k: &str| v.get(k).map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()));
    let memory = v
        .get("memory_bytes")
        .and_then(Value::as_u64)
        .map(|b| format!("{:.0} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "unknown".into());
    let source = s("source").map(|x| format!("; {x}")).unwrap_or_default();
    format!(
        "commit `{}`, {}, {} ({} cores, {memory}), GPU: {}, profile `{}`, arguments `{}`{source}",
        s("commit").unwrap_or_default(),
        s("date").unwrap_or_default(),
        s("cpu").unwrap_or_default(),
        s("cores").unwrap_or_default(),
        s("gpu").unwrap_or_default(),
        s("profile").unwrap_or_default(),
        v.get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    )
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

fn summary(machine: &str, here: &Context, args: &ReportArgs, sections: &[Section], dir: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report: {machine}\n");
    let how = match &args.from {
        // The results were measured elsewhere or earlier: each suite's context says where.
        Some(from) => format!(
            "Drawn by `cargo run -p bench -- report --from {}` ({}) from results measured as each suite states \
             below.",
            from.display(),
            here.date
        ),
        None => format!(
            "Written by `cargo run -p bench -- report{}` ({}). Machine: {} ({} cores, {:.0} GiB), GPU: {}.",
            if args.quick { " --quick" } else { "" },
            here.date,
            here.cpu,
            here.cores,
            here.memory_bytes.unwrap_or(0) as f64 / (1u64 << 30) as f64,
            here.gpu,
        ),
    };
    let _ = writeln!(
        md,
        "{how} Each suite's JSON file (rows and the context it was measured in) and charts are beside this \
         file. Ratios are against a baseline measured in the same run; absolute times are those of the machine \
         each suite names.\n"
    );
    for s in sections {
        let _ = writeln!(md, "## {}\n", s.suite);
        match &s.outcome {
            Err(e) => {
                let _ = writeln!(md, "**Failed**: {e}\n");
                continue;
            }
            Ok(rows) => {
                if let Some(c) = &s.context {
                    let _ = writeln!(md, "Measured at {}.\n", context_line(c));
                }
                if s.suite == "paper" {
                    paper_section(&mut md, rows);
                }
                for chart in &s.charts {
                    let rel = chart.file.strip_prefix(dir).map(file_name).unwrap_or_else(|_| file_name(&chart.file));
                    let _ = writeln!(md, "![{}]({rel})\n\n*{}*\n", chart.caption, chart.caption);
                }
                let _ = writeln!(md, "<details><summary>{} rows</summary>\n", rows.len());
                let _ =
                    writeln!(md, "| name | params | value | unit | baseline | ratio |\n|---|---|---:|---|---:|---:|");
                for r in rows {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        r.name,
                        r.params.replace('|', "/"),
                        crate::measure::num(r.value),
                        r.unit,
                        r.baseline.map(crate::measure::num).unwrap_or_else(|| "-".into()),
                        r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into()),
                    );
                }
                let _ = writeln!(md, "\n</details>\n");
            }
        }
    }
    md
}

/// Table 4 beside ours, and how the two differ.
pub fn paper_section(md: &mut String, rows: &[Record]) {
    let _ =
        writeln!(md, "| Table 4 | shape | ours | the paper | ours / paper | ADSNARK |\n|---|---|---:|---:|---:|---:|");
    for f in &crate::paper_suite::TABLE4 {
        for r in rows.iter().filter(|r| r.name == "paper::table4" && r.baseline.is_some()) {
            let p = crate::chart::Params::parse(&r.params);
            if p.get("figure") != Some(f.key) {
                continue;
            }
            let spread = match (p.get("stat"), p.get("shape")) {
                (Some("mean"), Some(shape)) => {
                    let of = |stat: &str| {
                        rows.iter().find_map(|x| {
                            let q = crate::chart::Params::parse(&x.params);
                            (x.name == r.name
                                && q.get("figure") == Some(f.key)
                                && q.get("shape") == Some(shape)
                                && q.get("stat") == Some(stat))
                            .then_some(x.value)
                        })
                    };
                    match (of("sd"), p.get("n")) {
                        (Some(sd), Some(n)) => format!(" ± {} (n = {n})", crate::measure::num(sd)),
                        _ => String::new(),
                    }
                }
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} {}{spread} | {} {} | {:.3} | {} {} |",
                f.label,
                p.get("shape").unwrap_or("-"),
                crate::measure::num(r.value),
                f.unit,
                f.paper,
                f.unit,
                r.value / f.paper,
                f.adsnark,
                f.unit
            );
        }
    }
    let _ = writeln!(md);
    for note in crate::paper_suite::NOTES {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite_charts::tests::{paper_rows, row};

    #[test]
    fn a_report_from_earlier_results_links_every_chart_and_sets_the_paper_beside_ours() {
        let from = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let context = serde_json::json!({ "commit": "abc", "date": "2026-12-04", "cpu": "EPYC", "cores": 2,
            "memory_bytes": 25_769_803_776u64, "gpu": "none", "profile": "dev", "args": ["paper", "--quick"] });
        let paper = serde_json::json!({ "context": context, "rows": paper_rows() });
        std::fs::write(from.path().join("paper.json"), paper.to_string()).unwrap();
        // A file written before contexts were recorded: a bare array of rows, one of them
        // unmeasured (NaN, written as null).
        let storage = vec![row("storage::put", "batch=64", 9.0, Some(3.0)), row("storage::get", "p99", f64::NAN, None)];
        std::fs::write(from.path().join("storage.json"), serde_json::to_string(&storage).unwrap()).unwrap();

        let args = ReportArgs {
            quick: true,
            from: Some(from.path().into()),
            machine: Some("test-machine".into()),
            dir: Some(out.path().into()),
            only: vec![],
        };
        let dir = run(args, |suite| panic!("{suite} was run, but its results were given")).unwrap();
        // Without --dir, earlier results are redrawn where they are, under that name.
        let again = ReportArgs { quick: false, from: Some(from.path().into()), machine: None, dir: None, only: vec![] };
        let redrawn = run(again, |suite| panic!("{suite} was run")).unwrap();
        assert_eq!(redrawn, from.path());
        let name = from.path().file_name().unwrap().to_string_lossy().into_owned();
        let md = std::fs::read_to_string(redrawn.join("README.md")).unwrap();
        assert!(md.starts_with(&format!("# Benchmark report: {name}")), "{md}");
        let md = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(md.starts_with("# Benchmark report: test-machine"), "{md}");
        // Table 4: ours, the paper's, the ratio, ADSNARK's, and the spread of Prove.
        assert!(md.contains("| KeyGen | policy | 4.000 s | 14 s | 0.286 | 299 s |"), "{md}");
        assert!(md.contains("| Prove | supply-64 | 1.000 s ± 0.04000 (n = 10) | 46 s | 0.022 | 491 s |"), "{md}");
        assert!(md.contains("i7-3687U") && md.contains("Measured at commit `abc`"), "{md}");
        for png in ["paper-table4.png", "paper-fig5.png", "paper-flow.png", "storage-ratios.png"] {
            assert!(md.contains(&format!("]({png})")), "{png} not linked");
            assert!(dir.join(png).exists(), "{png} not drawn");
        }
        assert!(dir.join("paper.json").exists() && dir.join("storage.json").exists());
        assert!(md.contains("| storage::get | p99 | n/a | s | - | - |"), "{md}");
        assert!(md.contains("Drawn by `cargo run -p bench -- report --from"), "{md}");
        // Suites without results are left out, not reported as measured.
        assert!(!md.contains("## consensus"), "{md}");
    }

    #[test]
    fn a_failed_suite_is_reported_and_the_others_still_run() {
        let out = tempfile::tempdir().unwrap();
        let args = ReportArgs {
            quick: true,
            from: None,
            machine: None,
            dir: Some(out.path().into()),
            only: vec!["crypto".into(), "storage".into()],
        };
        let dir = run(args, |suite| match suite {
            "crypto" => anyhow::bail!("no entropy today"),
            _ => Ok(vec![row("storage::put", "batch=64", 9.0, Some(3.0))]),
        })
        .unwrap();
        let md = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(md.contains("## crypto\n\n**Failed**: no entropy today"), "{md}");
        let typo = ReportArgs {
            quick: true,
            from: None,
            machine: None,
            dir: Some(out.path().into()),
            only: vec!["cryptos".into()],
        };
        let e = run(typo, |suite| panic!("{suite} was run")).unwrap_err();
        assert!(e.to_string().contains("--only cryptos: not a suite"), "{e}");
        assert!(
            md.contains("## storage") && md.contains("| storage::put | batch=64 | 9.000 | s | 3.000 | 3.00x |"),
            "{md}"
        );
        let (context, rows) = read_results(&dir.join("storage.json")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(context.unwrap()["suite"], "storage");
        assert!(!dir.join("crypto.json").exists());
    }
}
