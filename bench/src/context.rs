//! Where a result came from, written beside the rows of every suite's JSON: the commit,
//! the date, the machine (CPU model, cores, memory, GPU or "none"), the build profile and
//! the command line. Read from git, `/proc` and `nvidia-smi`; what cannot be read says
//! "unknown".

use std::process::Command;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Context {
    pub suite: String,
    pub args: Vec<String>,
    /// `git rev-parse HEAD`, with `+dirty` when the work tree has changes.
    pub commit: String,
    /// UTC, ISO 8601.
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    /// The GPU's name (`nvidia-smi`), or "none".
    pub gpu: String,
    /// `dev` (this workspace's dev profile is optimized) or `release`.
    pub profile: &'static str,
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn commit() -> String {
    match run("git", &["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}+dirty")
            } else {
                c
            }
        }
        _ => "unknown".into(),
    }
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
}

fn now_iso() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    dualchain_node::fhir::rfc3339(s)
}

impl Context {
    pub fn gather(suite: &str) -> Self {
        Self {
            suite: suite.into(),
            args: std::env::args().skip(1).collect(),
            commit: commit(),
            date: now_iso(),
            cpu: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: proc_field("/proc/meminfo", "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024),
            gpu: run("nvidia-smi", &["--query-gpu=name", "--format=csv,noheader"])
                .filter(|s| !s.is_empty())
                .map(|s| s.lines().collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "none".into()),
            profile: if cfg!(debug_assertions) { "dev" } else { "release" },
        }
    }
}
