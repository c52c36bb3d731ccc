//! Which charts each suite's rows make ([`draw`]): consensus and API throughput against
//! offered load with p50/p99 latency, proving time per shape against bellperson and the
//! paper, Fig. 5's block generation time, MSM and NTT time against size per backend, the
//! end-to-end stage shares, and ratios to their baselines for the rest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::chart::{write_png, BarSeries, Bars, Chart, Lines, Panel, Params, Series};
use crate::measure::Record;
use crate::paper_suite::figure;

/// Draws the charts of `suite`'s `rows` into `dir` and returns them (none where the rows
/// hold nothing to draw).
pub fn draw(suite: &str, rows: &[Record], dir: &Path) -> Result<Vec<Chart>> {
    std::fs::create_dir_all(dir)?;
    let charts: Vec<(String, String, Vec<Panel>)> = match suite {
        "consensus" => consensus(rows),
        "e2e" => e2e(rows),
        "kernels" => kernels(rows),
        "prover" => prover(rows),
        "paper" => paper(rows),
        "ceremony" => ceremony(rows),
        _ => ratios(suite, rows),
    };
    let mut out = Vec::new();
    for (file, caption, panels) in charts {
        if panels.is_empty() {
            continue;
        }
        let path = dir.join(&file);
        write_png(&path, &panels)?;
        out.push(Chart { file: path, caption });
    }
    Ok(out)
}

fn params_of(r: &Record) -> Params {
    Params::parse(&r.params)
}

/// `(n, window)` → `(offered, tx/s, p50, p99)` for the open-loop points.
fn consensus(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    type Point = (f64, f64, f64, f64);
    let mut shapes: BTreeMap<(u64, u64), BTreeMap<u64, Point>> = BTreeMap::new();
    for r in rows {
        let p = params_of(r);
        let (Some(n), Some(window), Some(offered)) = (p.number("n"), p.number("window"), p.number("offered")) else {
            continue;
        };
        if p.get("admission").is_some() {
            continue; // the overload points: a multiple of the peak, not a load sweep
        }
        let e = shapes
            .entry((n as u64, window as u64))
            .or_default()
            .entry(offered as u64)
            .or_insert((offered, 0.0, 0.0, 0.0));
        match r.name.as_str() {
            "consensus::commit" => e.1 = r.value,
            "consensus::latency_p50" => e.2 = r.value,
            "consensus::latency_p99" => e.3 = r.value,
            _ => {}
        }
    }
    let ns: Vec<u64> = shapes.keys().map(|k| k.0).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    ns.into_iter()
        .map(|n| {
            let mut throughput = Vec::new();
            let mut latency = Vec::new();
            let mut offered_max: f64 = 0.0;
            for ((_, window), points) in shapes.range((n, 0)..=(n, u64::MAX)) {
                let pts: Vec<&Point> = points.values().collect();
                offered_max = pts.iter().map(|p| p.0).fold(offered_max, f64::max);
                let what = if *window == 1 { "window 1 (baseline)".to_string() } else { format!("window {window}") };
                throughput.push(Series {
                    label: what.clone(),
                    points: pts.iter().map(|p| (p.0, p.1)).collect(),
                    dashed: *window == 1,
                });
                latency.push(Series {
                    label: format!("{what}, p50"),
                    points: pts.iter().map(|p| (p.0, p.2)).collect(),
                    dashed: false,
                });
                latency.push(Series {
                    label: format!("{what}, p99"),
                    points: pts.iter().map(|p| (p.0, p.3)).collect(),
                    dashed: true,
                });
            }
            throughput.push(Series {
                label: "offered (all committed)".into(),
                points: vec![(0.0, 0.0), (offered_max, offered_max)],
                dashed: true,
            });
            let panels = vec![
                Panel::Lines(Lines {
                    title: format!("Consensus, n = {n}: committed against offered"),
                    x_label: "offered load (tx/s, 256-byte transactions)".into(),
                    y_label: "committed (tx/s)".into(),
                    log_x: false,
                    log_y: false,
                    series: throughput,
                }),
                Panel::Lines(Lines {
                    title: format!("Consensus, n = {n}: commit latency"),
                    x_label: "offered load (tx/s)".into(),
                    y_label: "latency (ms, log)".into(),
                    log_x: false,
                    log_y: true,
                    series: latency,
                }),
            ];
            (
                format!("consensus-n{n}.png"),
                format!("Consensus with {n} replicas: committed throughput and p50/p99 latency against offered load"),
                panels,
            )
        })
        .collect()
}

/// The number before " in flight" in a prose parameter.
fn in_flight(params: &str) -> Option<f64> {
    let (before, _) = params.split_once(" in flight")?;
    before.rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn e2e(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    let mut out = Vec::new();
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for (op, label) in [("api_upload", "upload (Bundles of 64)"), ("api_fetch", "fetch (a grant's records)")] {
        let points: Vec<(f64, f64)> =
            rows.iter().filter(|r| r.name == op).filter_map(|r| Some((in_flight(&r.params)?, r.value))).collect();
        if !points.is_empty() {
            throughput.push(Series { label: label.into(), points, dashed: false });
        }
        for stat in ["p50", "p99"] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.name == format!("{op}_latency") && r.params.ends_with(stat))
                .filter_map(|r| Some((in_flight(&r.params)?, r.value)))
                .collect();
            if !points.is_empty() {
                latency.push(Series { label: format!("{label}, {stat}"), points, dashed: stat == "p99" });
            }
        }
    }
    if !throughput.is_empty() {
        out.push((
            "api.png".into(),
            "HTTPS API of a 4-process cluster: records/s and p50/p99 latency against requests in flight (1 in flight \
             is the baseline)"
                .into(),
            vec![
                Panel::Lines(Lines {
                    title: "API throughput against offered load".into(),
                    x_label: "requests in flight".into(),
                    y_label: "records/s".into(),
                    log_x: false,
                    log_y: false,
                    series: throughput,
                }),
                Panel::Lines(Lines {
                    title: "API latency".into(),
                    x_label: "requests in flight".into(),
                    y_label: "latency (ms, log)".into(),
                    log_x: false,
                    log_y: true,
                    series: latency,
                }),
            ],
        ));
    }
    let shares: Vec<&Record> = rows.iter().filter(|r| r.name == "e2e_stage_share").collect();
    if !shares.is_empty() {
        out.push((
            "e2e-stages.png".into(),
            "Where one served request's latency goes (sharing flow, in-process consortium)".into(),
            vec![Panel::Bars(Bars::single(
                "End-to-end stage shares",
                "share of a request's latency (%)",
                shares.iter().map(|r| short_stage(&r.params)).collect(),
                "one request at a time",
                shares.iter().map(|r| r.value).collect(),
            ))],
        ));
    }
    out
}

fn short_stage(s: &str) -> String {
    let s = s.split(" (").next().unwrap_or(s);
    s.split(" incl").next().unwrap_or(s).to_owned()
}

fn kernels(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| matches!(r.name.as_str(), "kernels::msm_g1" | "kernels::msm_g2" | "kernels::ntt")) {
        let p = params_of(r);
        let (Some(n), Some(backend)) = (p.number("n"), p.get("backend")) else { continue };
        let op = r.name.trim_start_matches("kernels::").replace('_', " ").to_uppercase();
        series.entry(format!("{op}, {backend}")).or_default().push((n.log2(), r.value * 1e3));
    }
    if series.is_empty() {
        return vec![];
    }
    let series = series
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let dashed = label.ends_with("cpu");
            Series { label, points, dashed }
        })
        .collect();
    vec![(
        "kernels.png".into(),
        "MSM and NTT time against size, per backend (the CPU backend, dashed, is the baseline of the GPU's)".into(),
        vec![Panel::Lines(Lines {
            title: "MSM and NTT".into(),
            x_label: "size (log2 of the number of points)".into(),
            y_label: "time (ms, log)".into(),
            log_x: false,
            log_y: true,
            series,
        })],
    )]
}

fn shapes_in(rows: &[&Record]) -> Vec<String> {
    let mut shapes: Vec<String> = Vec::new();
    for r in rows {
        if let Some(s) = params_of(r).get("shape") {
            if !shapes.iter().any(|x| x == s) {
                shapes.push(s.to_owned());
            }
        }
    }
    shapes
}

fn prover(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    let prove: Vec<&Record> = rows.iter().filter(|r| r.name == "prover::prove").collect();
    if prove.is_empty() {
        return vec![];
    }
    let shapes = shapes_in(&prove);
    let of = |pipeline: &str| -> Vec<Option<f64>> {
        shapes
            .iter()
            .map(|s| {
                prove.iter().find_map(|r| {
                    let p = params_of(r);
                    (p.get("shape") == Some(s) && p.get("pipeline") == Some(pipeline)).then_some(r.value)
                })
            })
            .collect()
    };
    vec![(
        "prover.png".into(),
        "Groth16 proving time per circuit shape: our pipeline against bellperson's create_random_proof".into(),
        vec![Panel::Bars(Bars {
            title: "Prove, per shape".into(),
            value_label: "time per proof (s, log)".into(),
            log: true,
            categories: shapes.clone(),
            series: vec![
                ("dualchain (CPU)".into(), of("dualchain-cpu"), vec![]),
                ("bellperson (baseline)".into(), of("bellperson"), vec![]),
            ],
            reference: None,
        })],
    )]
}

fn paper(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    let mut out = Vec::new();
    let table: Vec<&Record> = rows.iter().filter(|r| r.name == "paper::table4").collect();
    let shapes = shapes_in(&table);
    let value = |shape: &str, figure: &str, stat: Option<&str>| {
        table.iter().find_map(|r| {
            let p = params_of(r);
            (p.get("shape") == Some(shape) && p.get("figure") == Some(figure) && p.get("stat") == stat)
                .then_some(r.value)
        })
    };
    if !shapes.is_empty() {
        let panel = |title: &str, label: &str, keys: &[&str], unit_of: &dyn Fn(&str) -> String| {
            let mut series: Vec<BarSeries> = shapes
                .iter()
                .map(|s| {
                    let stat = |k: &str| if matches!(k, "prove" | "verify") { Some("mean") } else { None };
                    let values = keys.iter().map(|k| value(s, k, stat(k))).collect();
                    let whiskers =
                        keys.iter().map(|k| Some((value(s, k, Some("min"))?, value(s, k, Some("max"))?))).collect();
                    (format!("ours, {s}"), values, whiskers)
                })
                .collect();
            let figures: Vec<_> = keys.iter().map(|k| figure(k)).collect();
            series.push(("the paper".into(), figures.iter().map(|f| Some(f.paper)).collect(), vec![]));
            series.push((
                "ADSNARK (paper's Table 4)".into(),
                figures.iter().map(|f| Some(f.adsnark)).collect(),
                vec![],
            ));
            Panel::Bars(Bars {
                title: title.into(),
                value_label: label.into(),
                log: true,
                categories: keys.iter().map(|k| unit_of(k)).collect(),
                series,
                reference: None,
            })
        };
        let label = |k: &str| {
            let f = figure(k);
            format!("{} ({})", f.label, f.unit)
        };
        out.push((
            "paper-table4.png".into(),
            "Table 4 of the paper beside ours, per circuit shape (Prove and Verify: mean, whiskers min–max)".into(),
            vec![
                panel("Table 4: time", "seconds (log)", &["keygen", "prove", "verify"], &label),
                panel(
                    "Table 4: key sizes",
                    "size in the unit named (log)",
                    &["proving_key_size", "verifying_key_size"],
                    &label,
                ),
            ],
        ));
    }
    let mut fig5: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.name == "paper::block_generation") {
        let p = params_of(r);
        let (Some(k), Some(stage), Some(stat)) = (p.number("tx_per_block"), p.get("stage"), p.get("stat")) else {
            continue;
        };
        if stat == "p50" || stage == "total" {
            fig5.entry(format!("{stage}, {stat}")).or_default().push((k, r.value));
        }
    }
    if !fig5.is_empty() {
        out.push((
            "paper-fig5.png".into(),
            "Fig. 5 redone: block generation time against transactions per block (4 PBFT replicas, then ledger \
             execution)"
                .into(),
            vec![Panel::Lines(Lines {
                title: "Block generation time".into(),
                x_label: "transactions per block (log)".into(),
                y_label: "time (ms, log)".into(),
                log_x: true,
                log_y: true,
                series: fig5
                    .into_iter()
                    .map(|(label, points)| Series { dashed: label.ends_with("p90"), label, points })
                    .collect(),
            })],
        ));
    }
    let flow: Vec<&Record> = rows.iter().filter(|r| r.name == "paper::flow").collect();
    if !flow.is_empty() {
        out.push((
            "paper-flow.png".into(),
            "The paper's flow end to end: time of each stage (mean)".into(),
            vec![Panel::Bars(Bars::single(
                "Register, demand, prove, grant, re-encrypt, fetch",
                "seconds",
                flow.iter().map(|r| params_of(r).get("stage").unwrap_or("?").to_owned()).collect(),
                "mean",
                flow.iter().map(|r| r.value).collect(),
            ))],
        ));
    }
    out
}

fn ceremony(rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    let timed: Vec<&Record> = rows.iter().filter(|r| r.unit == "s").collect();
    let shapes = shapes_in(&timed);
    let mut steps: Vec<String> = Vec::new();
    for r in &timed {
        let step = r.name.trim_start_matches("ceremony::").to_owned();
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    if shapes.is_empty() {
        return vec![];
    }
    let series = shapes
        .iter()
        .map(|s| {
            let values = steps
                .iter()
                .map(|step| {
                    timed.iter().find_map(|r| {
                        (r.name.ends_with(step.as_str()) && params_of(r).get("shape") == Some(s)).then_some(r.value)
                    })
                })
                .collect();
            (s.clone(), values, vec![])
        })
        .collect();
    vec![(
        "ceremony.png".into(),
        "Multi-party Groth16 setup: each step's time beside the single-party setup of the same shape".into(),
        vec![Panel::Bars(Bars {
            title: "Ceremony steps".into(),
            value_label: "seconds (log)".into(),
            log: true,
            categories: steps,
            series,
            reference: None,
        })],
    )]
}

/// Every row measured against a baseline: its ratio, with the baseline's 1 drawn.
fn ratios(suite: &str, rows: &[Record]) -> Vec<(String, String, Vec<Panel>)> {
    // One bar per (name, params): a point reported in two units (batches/s and MB/s) has
    // one ratio.
    let mut with: Vec<&Record> = Vec::new();
    for r in rows.iter().filter(|r| r.ratio.is_some_and(f64::is_finite)) {
        if !with.iter().any(|w| w.name == r.name && w.params == r.params) {
            with.push(r);
        }
    }
    if with.is_empty() {
        return vec![];
    }
    let prefix = format!("{suite}::");
    vec![(
        format!("{suite}-ratios.png"),
        format!(
            "{suite}: each measurement against its baseline in the same run (value / baseline: above 1 is faster \
             for a throughput, slower for a time)"
        ),
        vec![Panel::Bars(Bars {
            title: format!("{suite}: ratio to baseline"),
            value_label: "value / baseline (log)".into(),
            log: true,
            categories: with
                .iter()
                .map(|r| {
                    let name = r.name.trim_start_matches(&prefix);
                    let mut s = format!("{name} {}", r.params);
                    if s.chars().count() > 48 {
                        s = s.chars().take(47).collect::<String>() + "…";
                    }
                    s
                })
                .collect(),
            series: vec![("ratio".into(), with.iter().map(|r| r.ratio).collect(), vec![])],
            reference: Some(("baseline (1)".into(), 1.0)),
        })],
    )]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(name: &str, params: &str, value: f64, baseline: Option<f64>) -> Record {
        Record {
            name: name.into(),
            params: params.into(),
            value,
            unit: "s".into(),
            baseline,
            ratio: baseline.map(|b| value / b),
        }
    }

    /// Rows as the paper suite writes them, for two shapes.
    pub fn paper_rows() -> Vec<Record> {
        let mut rows = Vec::new();
        for (shape, k) in [("policy", 1.0), ("supply-64", 2.0)] {
            rows.push(row("paper::table4", &format!("figure=keygen,shape={shape}"), 4.0 * k, Some(14.0)));
            for (stat, v) in [("mean", 0.5), ("sd", 0.02), ("min", 0.45), ("max", 0.6)] {
                let base = (stat == "mean").then_some(46.0);
                rows.push(row("paper::table4", &format!("figure=prove,shape={shape},stat={stat},n=10"), v * k, base));
                let base = (stat == "mean").then_some(0.516);
                rows.push(row(
                    "paper::table4",
                    &format!("figure=verify,shape={shape},stat={stat},n=10"),
                    v / 100.0,
                    base,
                ));
            }
            rows.push(row("paper::table4", &format!("figure=proving_key_size,shape={shape}"), 9.0 * k, Some(14.7)));
            rows.push(row("paper::table4", &format!("figure=verifying_key_size,shape={shape}"), 1.2, Some(105.3)));
        }
        for k in [1, 10, 100] {
            for stage in ["order", "execute", "total"] {
                for stat in ["p50", "p90"] {
                    let p = format!("tx_per_block={k},stage={stage},stat={stat}");
                    rows.push(row("paper::block_generation", &p, 5.0 + k as f64 / 10.0, None));
                }
            }
        }
        rows.push(row("paper::flow", "stage=register,flows=2", 0.4, None));
        rows.push(row("paper::flow", "stage=total,flows=2", 2.0, None));
        rows
    }

    fn files(charts: &[Chart]) -> Vec<String> {
        charts.iter().map(|c| c.file.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn each_suite_draws_its_charts_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let paper = draw("paper", &paper_rows(), dir.path()).unwrap();
        assert_eq!(files(&paper), ["paper-table4.png", "paper-fig5.png", "paper-flow.png"]);
        for c in &paper {
            let (_, _, colours) = crate::chart::tests::colours(&c.file);
            assert!(colours > 20, "{}: {colours} colours", c.file.display());
        }

        let mut consensus = Vec::new();
        for window in [1, 16] {
            for offered in [10_000, 40_000] {
                let p = format!("n=4,window={window},offered={offered},tx_bytes=256,durability=sync");
                consensus.push(row("consensus::commit", &p, offered as f64 * 0.9, None));
                consensus.push(row("consensus::latency_p50", &p, 6.0, None));
                consensus.push(row("consensus::latency_p99", &p, 20.0, None));
            }
            // Closed-loop and overload points are not part of the sweep.
            consensus.push(row("consensus::commit", &format!("n=4,window={window},offered=max"), 7e4, None));
        }
        consensus.push(row("consensus::commit", "n=7,window=16,offered=2x-peak,admission=on", 1e4, Some(2e4)));
        let charts = draw("consensus", &consensus, dir.path()).unwrap();
        assert_eq!(files(&charts), ["consensus-n4.png"]);

        let kernels = vec![
            row("kernels::msm_g1", "n=2^12,backend=cpu", 0.03, None),
            row("kernels::msm_g1", "n=2^16,backend=cpu", 0.35, None),
            row("kernels::ntt", "n=2^12,backend=cuda", 0.001, None),
        ];
        assert_eq!(files(&draw("kernels", &kernels, dir.path()).unwrap()), ["kernels.png"]);

        let e2e = vec![
            row("api_upload", "4 processes, 64 records/Bundle, 1 in flight", 470.0, None),
            row("api_upload", "4 processes, 64 records/Bundle, 8 in flight", 460.0, Some(470.0)),
            row("api_upload_latency", "4 processes, 64 records/Bundle, 8 in flight, p99", 1100.0, None),
            row("e2e_stage_share", "proving (supply + policy)", 84.0, None),
        ];
        assert_eq!(files(&draw("e2e", &e2e, dir.path()).unwrap()), ["api.png", "e2e-stages.png"]);

        // A suite of rows without baselines has nothing to draw; with them, its ratios.
        let plain = vec![row("crypto::sign", "n=1", 3.0, None)];
        assert!(draw("crypto", &plain, dir.path()).unwrap().is_empty());
        let measured =
            vec![row("crypto::sign", "batch=64", 3.0, Some(1.0)), row("crypto::sign", "batch=64", 6.0, Some(2.0))];
        assert_eq!(ratios("crypto", &measured)[0].2.len(), 1);
        let Panel::Bars(b) = &ratios("crypto", &measured)[0].2[0] else { panic!("bars") };
        assert_eq!(b.categories.len(), 1, "one bar for a point reported in two units");
        assert_eq!(files(&draw("crypto", &measured, dir.path()).unwrap()), ["crypto-ratios.png"]);
    }

    #[test]
    fn in_flight_is_read_from_prose() {
        assert_eq!(in_flight("4 processes, 64 records/Bundle, 8 in flight, p50"), Some(8.0));
        assert_eq!(in_flight("one at a time, sealed every 64"), None);
    }
}
