//! A consortium of `dualchain node` processes on this host, from `dualchain init` output:
//! for the multi-process tests and the API benchmark (the same steps as
//! `deploy/local-cluster.sh`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_crypto::sign::SigningKeypair;
use serde_json::Value;

use dualchain_node::api::client::ApiClient;
use dualchain_node::config::{ConsortiumFile, NodeConfig};
use dualchain_node::member::MemberFile;

use crate::netns::NetLab;

/// Nodes of a local cluster, each a child process.
pub struct ProcessCluster {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub consortium: ConsortiumFile,
    procs: Vec<Option<Child>>,
    /// Per node, what runs the node's command (e.g. `ip netns exec NS`, `faketime -f +30s`).
    wrappers: Vec<Vec<String>>,
}

/// Where `init` puts the nodes.
pub enum Hosts<'a> {
    /// All on loopback, free ports, loopback timing.
    Loopback,
    /// One network namespace per node (the chaos lab), LAN timing.
    Lab(&'a NetLab),
}

impl ProcessCluster {
    /// `dualchain init` for `n` nodes on loopback (free ports, loopback timing) into `dir`,
    /// then every node started.
    pub fn init(bin: &Path, dir: &Path, n: usize, params_cache: &Path) -> Result<Self> {
        Self::init_on(bin, dir, n, params_cache, Hosts::Loopback)
    }

    /// `dualchain init` for `n` nodes placed as `hosts` says, then every node started.
    pub fn init_on(bin: &Path, dir: &Path, n: usize, params_cache: &Path, hosts: Hosts<'_>) -> Result<Self> {
        Self::init_with(bin, dir, n, params_cache, hosts, &[])
    }

    /// [`ProcessCluster::init_on`] with more `init` arguments (e.g. `--insecure-http`).
    pub fn init_with(
        bin: &Path,
        dir: &Path,
        n: usize,
        params_cache: &Path,
        hosts: Hosts<'_>,
        extra: &[&str],
    ) -> Result<Self> {
        // (addresses, QUIC port, API port, timing preset, what runs each node)
        // On loopback, blocks of consecutive ports reserved against other test processes.
        let (addrs, quic_port, api_port, preset, wrappers) = match hosts {
            Hosts::Loopback => {
                let count = u16::try_from(n).context("too many nodes")?;
                let (quic, api) = (crate::ports::reserve(count)?, crate::ports::reserve(count)?);
                ("127.0.0.1".to_string(), quic.to_string(), api.to_string(), "loopback", vec![vec![]; n])
            }
            Hosts::Lab(lab) => {
                (lab.hosts(), "7700".into(), "8700".into(), "lan", (0..n).map(|i| lab.exec_prefix(i)).collect())
            }
        };
        let out = Command::new(bin)
            .args(["init", "--hosts", &addrs, "--quic-port", &quic_port, "--api-port", &api_port, "--preset", preset])
            .args(["--nodes", &n.to_string()])
            .args(extra)
            .arg("--out")
            .arg(dir)
            .arg("--params-cache")
            .arg(params_cache)
            .env("RUST_BACKTRACE", "0")
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        ensure!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let consortium = ConsortiumFile::load(&dir.join("consortium.toml"))?;
        let procs = (0..n).map(|_| None).collect();
        let mut c = Self { bin: bin.to_path_buf(), dir: dir.to_path_buf(), consortium, procs, wrappers };
        for i in 0..n {
            c.spawn(i)?;
        }
        Ok(c)
    }

    pub fn config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}/node.toml"))
    }

    /// Starts node `i` (its log appended to `node-<i>.log`).
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        self.spawn_with(i, &[])
    }

    /// Starts node `i` under `extra` (a command such as `faketime -f +30s`), inside its
    /// placement's wrapper.
    pub fn spawn_with(&mut self, i: usize, extra: &[&str]) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("node-{i}.log")))?;
        let mut argv: Vec<&std::ffi::OsStr> = self.wrappers[i].iter().map(|a| a.as_ref()).collect();
        argv.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        argv.push(self.bin.as_os_str());
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .args(["node", "--config"])
            .arg(self.config(i))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.procs[i] = Some(child);
        Ok(())
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let mut c = self.procs[i].take().ok_or_else(|| anyhow!("node {i} is not running"))?;
        c.kill()?;
        c.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits up to a minute for a clean exit.
    pub fn terminate(&mut self, i: usize) -> Result<()> {
        self.terminate_within(i, Duration::from_secs(60)).map(|_| ())
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; returns how long it took. A node
    /// still running then is killed and the call fails.
    pub fn terminate_within(&mut self, i: usize, timeout: Duration) -> Result<Duration> {
        let mut c = self.procs[i].take().ok_or_else(|| anyhow!("node {i} is not running"))?;
        let pid = rustix::process::Pid::from_raw(c.id() as i32).ok_or_else(|| anyhow!("node {i} has no pid"))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("sending SIGTERM to node {i}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = c.try_wait()? {
                ensure!(status.success(), "node {i} exited with {status} after SIGTERM; log:\n{}", self.log(i));
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                bail!("node {i} did not stop within {timeout:?} of SIGTERM; log:\n{}", self.log(i));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last 40 lines of node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("node-{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The member hosted by node `i`, as an API client of that node, and its signing key.
    pub fn client(&self, i: usize) -> Result<(ApiClient, SigningKeypair)> {
        let cfg = NodeConfig::load(&self.config(i))?;
        let path = cfg.path(cfg.secrets.member.as_ref().ok_or_else(|| anyhow!("node {i} hosts no member"))?);
        let f: MemberFile = serde_json::from_slice(&std::fs::read(path)?)?;
        let m = f.member()?;
        Ok((ApiClient::of_node(&self.consortium, i as u8, &m.id, m.signer.clone())?, m.signer))
    }

    pub async fn health(&self, i: usize) -> Option<Value> {
        let (c, _) = self.client(i).ok()?;
        let r = c.get_public("/health").await.ok()?;
        (r.status == 200).then(|| serde_json::from_slice(&r.body).ok()).flatten()
    }

    /// Waits until each of `nodes` reports its member ready (an audit authority also done
    /// with its part of the escrow DKG).
    pub async fn wait_ready(&self, nodes: &[usize], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for &i in nodes {
            loop {
                // Ready, and an audit authority of the anonymous path done with its part of
                // the escrow DKG (its transactions final, none to come).
                if self.health(i).await.is_some_and(|h| h["ready"] == true && h["anonymous"]["share_kept"] != false) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("node {i} not ready within {timeout:?}; log:\n{}", self.log(i));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// Every node's ledger fingerprint (applied batch, data tip, access tip).
    pub async fn fingerprints(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for i in 0..self.procs.len() {
            out.push(self.health(i).await.map(|h| h["ledger"].clone()).unwrap_or(Value::Null));
        }
        out
    }

    /// Waits until every node reports the same ledger and returns it.
    pub async fn wait_identical(&self, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let f = self.fingerprints().await;
            if f[0] != Value::Null && f.iter().all(|x| *x == f[0]) {
                return Ok(f[0].clone());
            }
            if Instant::now() > deadline {
                bail!("ledgers did not converge: {f:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
