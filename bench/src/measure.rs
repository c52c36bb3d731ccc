//! Timing helpers and the result record.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One benchmark result, as written to the JSON output. For throughputs (`ops/s`,
/// `proofs/s`) `ratio = value / baseline` (above 1 is faster); for times (`s`)
/// `ratio = value / baseline` too (below 1 is faster).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub params: String,
    /// NaN where nothing could be measured (a percentile of no samples), which JSON writes
    /// as `null` and reads back as NaN.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    pub unit: String,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
}

impl Record {
    /// The table's header line ([`Record::line`] lines follow it).
    pub fn header() -> String {
        format!("{:<28} {:<44} {:>14} {:<12} {:>14} {:>8}", "name", "params", "value", "unit", "baseline", "ratio")
    }

    /// One table line.
    pub fn line(&self) -> String {
        let baseline = self.baseline.map(num).unwrap_or_else(|| "-".into());
        let ratio = self.ratio.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into());
        format!(
            "{:<28} {:<44} {:>14} {:<12} {:>14} {:>8}",
            self.name,
            self.params,
            num(self.value),
            self.unit,
            baseline,
            ratio
        )
    }

    /// A throughput with an optional baseline throughput measured in the same run.
    pub fn throughput(name: &str, params: String, ops_per_s: f64, baseline: Option<f64>) -> Self {
        Self {
            name: name.into(),
            params,
            value: ops_per_s,
            unit: "ops/s".into(),
            baseline,
            ratio: baseline.map(|b| ops_per_s / b),
        }
    }
}

/// Runs `f` (which performs `ops_per_call` operations) until `min_time` has passed, at least
/// twice, and returns operations per second.
pub fn ops_per_second(min_time: Duration, ops_per_call: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let start = Instant::now();
    let mut calls = 0u64;
    while calls < 2 || start.elapsed() < min_time {
        f();
        calls += 1;
    }
    (calls as f64 * ops_per_call as f64) / start.elapsed().as_secs_f64()
}

/// Rows printed as they are measured (a long run shows its figures as it goes, and a run
/// stopped at a time limit keeps them in its log).
#[derive(Default)]
pub struct Rows(pub Vec<Record>);

impl Rows {
    pub fn push(&mut self, row: Record) {
        let line = row.line();
        dualchain_progress::suspend(|| println!("{line}"));
        self.0.push(row);
    }
}

impl Extend<Record> for Rows {
    fn extend<I: IntoIterator<Item = Record>>(&mut self, rows: I) {
        rows.into_iter().for_each(|r| self.push(r));
    }
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Four significant digits, whatever the magnitude (`n/a` for NaN).
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return "n/a".into();
    }
    if x == 0.0 || x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else {
        let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
        format!("{x:.digits$}")
    }
}

/// This process's CPU time (user + system, every thread) and the bytes it caused to be
/// written to storage, read from `/proc/self` (Linux). A difference of two readings is
/// what a measured window cost; `None` where `/proc` cannot be read.
#[derive(Debug, Clone, Copy)]
pub struct ProcessCounters {
    pub cpu_s: f64,
    pub write_bytes: u64,
}

impl ProcessCounters {
    pub fn now() -> Option<Self> {
        // Fields 14 and 15 of /proc/self/stat, after the parenthesised command name, are
        // utime and stime in clock ticks (USER_HZ, 100 on Linux).
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let io = std::fs::read_to_string("/proc/self/io").ok()?;
        let write_bytes = io.lines().find_map(|l| l.strip_prefix("write_bytes:"))?.trim().parse().ok()?;
        Some(Self { cpu_s: ticks as f64 / 100.0, write_bytes })
    }

    /// What passed between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self { cpu_s: self.cpu_s - earlier.cpu_s, write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes) }
    }
}
