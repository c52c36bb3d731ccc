//! A year on, in process: member certificates expire 365 days after genesis, and the ledger
//! refuses an expired member's transactions by ledger time. The test moves the wall clock
//! of its whole process forward (nodes, clients, the coordinator's `renew`) with
//! libfaketime, the way the chaos harness skews one node's clock, and checks the
//! consortium's year:
//! - day 0: no expiry alert fires;
//! - day 340: the 30-day alert of `deploy/prometheus/alerts.yml` fires for every member,
//!   and `/health` shows the days left; the coordinator renews every member's certificate
//!   but research-1's, each institution installs its own and its running node registers it
//!   (no restart);
//! - day 360: research-1's 7-day alert fires; no renewed member's alert does;
//! - day 370: research-1's demand is refused, and the refusal names the expired
//!   certificate; the renewed members carry on: hospital-a uploads, research-2 demands,
//!   is supplied, granted and fetches exactly what it asked for; then research-1 is
//!   renewed late, its node registers the certificate, and its demand is supplied.
//!
//! The test runs itself again as a child process with libfaketime preloaded (Debian's
//! package `faketime`, installed by `scripts/setup.sh`); the child reads the clock's offset
//! from a file the test rewrites (`FAKETIME_TIMESTAMP_FILE`). Only the wall clock moves:
//! timers and timeouts (the monotonic clock) run true, as on a machine whose clock is set.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, ensure, Context, Result};
use dualchain_testkit::consortium::{wait_for, Consortium, CPCS, HOSPITAL_A, RESEARCH, RESEARCH_2};

mod common;

/// libfaketime, thread-safe build.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Set in the child: the file holding the clock's offset.
const CHILD: &str = "DUALCHAIN_YEAR_CLOCK";
const DAY_S: i64 = 86_400;
const TEST: &str = "a_year_on_renewed_members_carry_on_and_the_rest_are_refused_by_name";

#[test]
fn a_year_on_renewed_members_carry_on_and_the_rest_are_refused_by_name() -> Result<()> {
    if let Ok(clock) = std::env::var(CHILD) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
        return rt.block_on(year(Clock::new(PathBuf::from(clock))));
    }
    ensure!(Path::new(FAKETIME_LIB).exists(), "{FAKETIME_LIB} is missing: scripts/setup.sh installs Debian's faketime");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let clock = tmp.join(format!("year-clock-{}", std::process::id()));
    std::fs::write(&clock, "+0d")?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args([TEST, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, &clock)
        .env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME_TIMESTAMP_FILE", &clock)
        .env("FAKETIME_CACHE_DURATION", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .status()
        .context("running the test again under libfaketime")?;
    let _ = std::fs::remove_file(&clock);
    ensure!(status.success(), "the year under libfaketime failed ({status}); its output is above");
    Ok(())
}

/// The child's wall clock: an offset in days, written to libfaketime's file.
struct Clock {
    file: PathBuf,
    /// The wall clock and the monotonic clock read together at the start (offset 0).
    wall0: SystemTime,
    mono0: Instant,
}

impl Clock {
    fn new(file: PathBuf) -> Self {
        Self { file, wall0: SystemTime::now(), mono0: Instant::now() }
    }

    /// How far the wall clock is ahead of true time, in seconds.
    fn ahead_s(&self) -> i64 {
        let wall = SystemTime::now().duration_since(self.wall0).map_or(0, |d| d.as_secs() as i64);
        wall - self.mono0.elapsed().as_secs() as i64
    }

    /// Moves the wall clock to `days` after true time, and waits until the process sees it.
    async fn set_days(&self, days: i64) -> Result<()> {
        std::fs::write(&self.file, format!("+{days}d"))?;
        let start = Instant::now();
        while (self.ahead_s() - days * DAY_S).abs() > 5 {
            ensure!(
                start.elapsed() < Duration::from_secs(15),
                "the wall clock is {} s ahead, not {days} days: is libfaketime preloaded?",
                self.ahead_s()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("year: the wall clock is now {days} days ahead");
        Ok(())
    }
}

fn unix_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The expiry alerts of `deploy/prometheus/alerts.yml`: (name, threshold in seconds), each
/// of the form `dualchain_member_certificate_expiry_seconds{...} < N * 86400`.
fn expiry_alerts() -> Result<Vec<(String, i64)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut alerts = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert:") {
            name = Some(n.trim().to_string());
        }
        let Some(expr) = line.strip_prefix("expr:").map(str::trim) else { continue };
        if !expr.starts_with("dualchain_member_certificate_expiry_seconds") {
            continue;
        }
        let days = expr
            .split_once('<')
            .and_then(|(_, r)| r.trim().strip_suffix("* 86400"))
            .and_then(|n| n.trim().parse::<i64>().ok())
            .ok_or_else(|| anyhow!("alert expression {expr:?} is not `... < N * 86400`"))?;
        alerts.push((name.clone().ok_or_else(|| anyhow!("{expr:?} has no alert name"))?, days * DAY_S));
    }
    alerts.sort_by_key(|(_, t)| -t);
    ensure!(alerts.len() == 2, "expected the 30- and 7-day expiry alerts, found {alerts:?}");
    Ok(alerts)
}

/// Each member's seconds left as a node's `/metrics` exports them.
async fn expiry_series(c: &Consortium) -> Result<Vec<(String, i64)>> {
    let metrics = String::from_utf8(c.api(HOSPITAL_A)?.get_public("/metrics").await?.body.to_vec())?;
    let prefix = "dualchain_member_certificate_expiry_seconds{member=\"";
    let series: Vec<(String, i64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| {
            let (member, rest) = l.split_once('"')?;
            Some((member.to_string(), rest.rsplit(' ').next()?.parse::<f64>().ok()? as i64))
        })
        .collect();
    ensure!(!series.is_empty(), "no expiry series in /metrics");
    Ok(series)
}

/// The alerts that fire for each member now: (member, alert names).
async fn firing(c: &Consortium) -> Result<Vec<(String, Vec<String>)>> {
    let alerts = expiry_alerts()?;
    Ok(expiry_series(c)
        .await?
        .into_iter()
        .map(|(m, left)| {
            let names = alerts.iter().filter(|(_, t)| left < *t).map(|(n, _)| n.clone()).collect();
            (m, names)
        })
        .collect())
}

async fn days_left(c: &Consortium, member: &str) -> Result<i64> {
    let health: serde_json::Value = c.api(member)?.get_public("/health").await?.json()?;
    health["certificate"]["days_left"].as_i64().ok_or_else(|| anyhow!("no days_left in {health}"))
}

async fn year(clock: Clock) -> Result<()> {
    let (c, data_dir) = common::genesis("year", 24, None, true).await?;
    let members: Vec<String> = c.file.members.iter().map(|m| m.id.clone()).collect();
    let (m30, m7) = {
        let a = expiry_alerts()?;
        (a[0].0.clone(), a[1].0.clone())
    };

    // Day 0: nothing fires.
    let now = firing(&c).await?;
    assert_eq!(now.len(), members.len(), "one series per member: {now:?}");
    assert!(now.iter().all(|(_, f)| f.is_empty()), "{now:?}");
    assert!((363..=365).contains(&days_left(&c, RESEARCH).await?));

    // Day 340: every member's 30-day alert, none's 7-day alert.
    clock.set_days(340).await?;
    for (m, f) in firing(&c).await? {
        assert_eq!(f, vec![m30.clone()], "{m} at day 340");
    }
    assert!((23..=25).contains(&days_left(&c, HOSPITAL_A).await?));

    // The coordinator renews every certificate but research-1's; each institution installs
    // its own, and its running node registers it.
    let renewed: Vec<&str> = members.iter().map(String::as_str).filter(|m| *m != RESEARCH).collect();
    renew_all(&c, &renewed).await?;
    for (m, f) in firing(&c).await? {
        let want = if m == RESEARCH { vec![m30.clone()] } else { vec![] };
        assert_eq!(f, want, "{m} after the renewals");
    }
    assert!(days_left(&c, HOSPITAL_A).await? >= 364);

    // Day 360: research-1's 7-day alert too.
    clock.set_days(360).await?;
    for (m, f) in firing(&c).await? {
        let want = if m == RESEARCH { vec![m30.clone(), m7.clone()] } else { vec![] };
        assert_eq!(f, want, "{m} at day 360");
    }

    // Day 370: research-1 is refused by name; the others carry on.
    clock.set_days(370).await?;
    let a = c.upload(HOSPITAL_A, "icu-next-year", CPCS[0]).await?;
    let refusal = common::refused(c.demand(RESEARCH, &a.dataset, 4).await);
    assert!(refusal.contains("research-1's certificate expired"), "{refusal}");
    eprintln!("year: research-1's demand at day 370: {refusal}");
    assert!(days_left(&c, RESEARCH).await? < 0);
    let demand = c.demand(RESEARCH_2, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH_2, &demand).await?;
    let access = c.request_access(RESEARCH_2, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    c.wait_receipt(RESEARCH_2, &access.request).await?;
    let fetched = c.fetch(RESEARCH_2, &access.request).await?;
    a.check_delivery(&c.grant_requirement(&access.request)?, &fetched, &access.request)?;

    // Renewed late, research-1 is back: its node registers a renewal even after expiry
    // (the registration is signed by the keys the new certificate certifies).
    renew_all(&c, &[RESEARCH]).await?;
    assert!(days_left(&c, RESEARCH).await? >= 364);
    let demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    c.ledgers_identical(Duration::from_secs(60)).await?;

    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// The coordinator renews each of `members`' certificates for a year from now; each
/// institution installs its own, and its running node registers it on chain.
async fn renew_all(c: &Consortium, members: &[&str]) -> Result<()> {
    use dualchain_node::genesis::assemble::{renew, RenewOptions};
    use dualchain_node::genesis::institution::{install_certificate, InstallOptions};
    let mut serials = Vec::new();
    for m in members {
        let (serial, not_after) = renew(&RenewOptions {
            ca: c.dir.join("ca"),
            genesis: c.dir.join("genesis"),
            member: m.to_string(),
            days: 365,
        })?;
        assert!(not_after as i64 > unix_s() + 364 * DAY_S, "valid a year from the renewal, not from genesis");
        let node = c.dir.join(format!("node-{}", c.index_of(m)?));
        install_certificate(&InstallOptions {
            config: node.join("node.toml"),
            issued: c.dir.join(format!("genesis/issued/{m}.toml")),
        })?;
        serials.push((m, serial));
    }
    // On every node's ledger: each node's /health and /metrics read its own.
    for ledger in c.ledgers() {
        for (m, serial) in &serials {
            wait_for(Duration::from_secs(120), &format!("{m}'s renewed certificate on every ledger"), || {
                Ok(ledger.member(m)?.filter(|r| r.serial == *serial))
            })
            .await?;
        }
    }
    Ok(())
}
