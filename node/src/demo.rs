//! `dualchain demo`: the whole sharing flow (DESIGN.md §3) in an in-process consortium.
//!
//! Four validators order one PBFT log over loopback QUIC with mutual TLS and keep their
//! ledgers in RocksDB in a temporary directory; a KGC, two hospitals, a research institute
//! and three CPCs join, obtain their keys without escrow, and share synthetic
//! bedside-monitor data (heart rate, SpO2, blood pressure as FHIR R4 Observations). The
//! research institute is authorised by the dataset's policy; the second hospital is not,
//! and tries anyway. Owners' and CPCs' nodes act on their own as the ledger moves. Each
//! step prints its time; the summary gives blocks, grants and denials, proofs, re-encryptions
//! and the audit trail.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Result};
use dualchain_ledger::state::AccessRecord;
use dualchain_ledger::tx::Outcome;
use dualchain_storage::ledger::Chain;

use crate::agents::{Activity, FetchRequest};
use crate::flow::{
    wait_for, Consortium, FlowConfig, CPCS, DEMO_POLICY, HOSPITAL_A, HOSPITAL_B, KGC, RESEARCH, VALIDATORS,
};
use crate::zk;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Observations per dataset.
    pub records: usize,
    /// Seed for reproducible keys and data; fresh OS randomness when absent.
    pub seed: Option<u64>,
    /// Where Groth16 parameter files are cached between runs.
    pub params_dir: std::path::PathBuf,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { records: 64, seed: None, params_dir: zk::default_params_dir() }
    }
}

/// One timed step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub elapsed: Duration,
}

/// What happened, for the closing summary and for tests.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub steps: Vec<Step>,
    pub members: usize,
    pub validators: usize,
    pub records_uploaded: usize,
    pub records_reencrypted: u64,
    /// Decrypted records equal, byte for byte, to the uploaded FHIR JSON.
    pub records_match: bool,
    pub grants: usize,
    /// (who, reason) for every refusal the flow produced.
    pub denials: Vec<(String, String)>,
    /// (proof, prove time) of every zero-knowledge proof made.
    pub proofs: Vec<(String, Duration)>,
    pub data_blocks: u64,
    pub access_blocks: u64,
    pub transactions: usize,
    pub rejected: usize,
    pub audit: Vec<AccessRecord>,
    pub reencrypt_time: Duration,
}

struct Timer<'a> {
    out: &'a mut dyn Write,
    steps: Vec<Step>,
    total: usize,
    current: Option<(&'static str, Instant)>,
}

impl Timer<'_> {
    fn begin(&mut self, name: &'static str) -> Result<()> {
        self.current = Some((name, Instant::now()));
        Ok(())
    }
    fn end(&mut self, detail: &str) -> Result<()> {
        let (name, start) = self.current.take().ok_or_else(|| anyhow!("no step running"))?;
        let elapsed = start.elapsed();
        let n = self.steps.len() + 1;
        writeln!(self.out, "[{n:>2}/{}] {name:<62} {:>9}", self.total, fmt_duration(elapsed))?;
        for line in detail.lines() {
            writeln!(self.out, "        {line}")?;
        }
        self.steps.push(Step { name, elapsed });
        Ok(())
    }
}

pub fn fmt_duration(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// A progress bar on stderr when it is a terminal (stdout keeps the log).
fn progress(label: &'static str) -> impl Fn(usize, usize) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!("\r        {label} [{}{}] {done}/{total}", "#".repeat(filled), ".".repeat(width - filled));
            if done == total {
                eprint!("\r{}\r", " ".repeat(width + label.len() + 30));
            }
        }
    }
}

/// Waits with a spinner-free progress line (elapsed seconds) while `fut` runs.
async fn with_ticker<T>(label: &'static str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if tty {
                eprint!("\r        {label} … {:.1} s", start.elapsed().as_secs_f64());
            }
        }
    };
    let out = tokio::select! {
        r = fut => r,
        _ = ticker => unreachable!("the ticker never ends"),
    };
    if tty {
        eprint!("\r{}\r", " ".repeat(label.len() + 30));
    }
    out
}

/// Runs the demo in a fresh temporary directory, writing progress to `out`.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<DemoReport> {
    ensure!(cfg.records > 0, "the demo needs at least one record");
    let dir = std::env::temp_dir().join(format!("dualchain-demo-{}-{}", std::process::id(), rand::random::<u32>()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let flow =
        FlowConfig { records: cfg.records, seed: cfg.seed, params_dir: cfg.params_dir.clone(), data_dir: dir.clone() };
    let result = runtime.block_on(run_flow(flow, out));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The whole flow on a consortium set up from `flow`.
pub async fn run_flow(flow: FlowConfig, out: &mut dyn Write) -> Result<DemoReport> {
    writeln!(out, "dualchain demo: the sharing flow in an in-process consortium")?;
    writeln!(
        out,
        "  validators: {VALIDATORS} (PBFT over loopback QUIC + mutual TLS, RocksDB in {})",
        flow.data_dir.display()
    )?;
    writeln!(out, "  members:    {KGC}, {HOSPITAL_A}, {HOSPITAL_B}, {RESEARCH}, {}", CPCS.join(", "))?;
    writeln!(out, "  policy:     {DEMO_POLICY}")?;
    writeln!(out)?;
    let mut t = Timer { out, steps: Vec::new(), total: 12, current: None };
    let mut report = DemoReport { validators: VALIDATORS, ..DemoReport::default() };

    t.begin("Genesis: CA, certificates, Groth16 parameters, IBE/ABE setup")?;
    let mut c = with_ticker("genesis", Consortium::genesis(flow)).await?;
    let mut detail = format!(
        "CA certified 7 members; ESKI-IBE chain KGC + 3 CPCs verified; CP-ABE {} set up\n",
        <dualchain_crypto::abe::ac17::Ac17 as dualchain_crypto::abe::AbeScheme>::NAME
    );
    detail.push_str(&format!(
        "Groth16 parameters: policy ({} constraints), {} ({} constraints)",
        c.policy_pk.circuit.constraints,
        c.supply_shape.name(),
        c.supply_pks[&c.supply_shape].circuit.constraints
    ));
    for (name, took) in &c.params_generated {
        detail.push_str(&format!("\n{name} generated in {} (cached for later runs)", fmt_duration(*took)));
    }
    t.end(&detail)?;

    t.begin("Members register their certificates on the data chain")?;
    let regs = c.register_members().await?;
    report.members = regs.len();
    t.end(&format!(
        "{} registrations final (batches {:?})",
        regs.len(),
        regs.iter().map(|f| f.seq).collect::<Vec<_>>()
    ))?;

    t.begin("Escrow-free IBE keys, CP-ABE keys, credentials on chain")?;
    c.issue_keys().await?;
    let root = c.validators[0].ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root"))?;
    t.end(&format!(
        "every member's IBE key from {} blinded shares; CP-ABE keys sealed to {RESEARCH}, {HOSPITAL_B}\n\
         credential leaves published by the KGC; root {}",
        CPCS.len() + 1,
        hex::encode(&root.0[..8])
    ))?;

    t.begin("Hospitals signcrypt FHIR Observations to CPCs, register datasets")?;
    let a = c.upload(HOSPITAL_A, "icu-bedside-2026", CPCS[0], &progress("hospital-a signcrypts")).await?;
    let b = c.upload(HOSPITAL_B, "ward-b-monitors", CPCS[1], &progress("hospital-b signcrypts")).await?;
    report.records_uploaded = a.plaintexts.len() + b.plaintexts.len();
    t.end(&format!(
        "{HOSPITAL_A}: {} Observations to {} (H1 {}), e.g. {}\n{HOSPITAL_B}: {} Observations to {}",
        a.plaintexts.len(),
        a.cpc,
        hex::encode(&a.h1[..8]),
        summarise(&a.observations[0]),
        b.plaintexts.len(),
        b.cpc
    ))?;

    t.begin("Requesters publish demands; the owner's node proves supply")?;
    let hr = a.zk_records.iter().filter(|r| r.code == 88674).count();
    let requirement = Consortium::heart_rate_requirement(u16::try_from((hr / 2).max(1))?)?;
    let (demand_r, f) = c.demand(RESEARCH, &a.dataset, requirement).await?;
    ensure!(f.outcome.is_accepted(), "demand rejected: {:?}", f.outcome);
    let (demand_b, f) = c.demand(HOSPITAL_B, &a.dataset, requirement).await?;
    ensure!(f.outcome.is_accepted(), "demand rejected: {:?}", f.outcome);
    with_ticker("supply proofs", async {
        c.wait_demand(RESEARCH, &demand_r, Duration::from_secs(300)).await?;
        c.wait_demand(HOSPITAL_B, &demand_b, Duration::from_secs(300)).await
    })
    .await?;
    // The requesters' ledgers can show a demand supplied a moment before the owner's node,
    // whose submission waits for its own validator, logs the proof: wait for both entries.
    let demands = [demand_r, demand_b];
    let supply: Vec<Duration> = wait_for(Duration::from_secs(60), "the owner's node to log both proofs", || {
        let found: Vec<Duration> = c
            .log
            .entries()
            .iter()
            .filter_map(|(_, a)| match a {
                Activity::SupplyProved { demand, prove } if demands.contains(demand) => Some(*prove),
                _ => None,
            })
            .collect();
        Ok((found.len() >= demands.len()).then_some(found))
    })
    .await?;
    for p in &supply {
        report.proofs.push((format!("supply ({})", c.supply_shape.name()), *p));
    }
    t.end(&format!(
        "demand: >= {} heart-rate observations in 40-200 bpm, last 2 h ({hr} of {} records match)\n\
         {HOSPITAL_A}'s node proved both demands on its own: {}",
        requirement.threshold,
        a.zk_records.len(),
        supply.iter().map(|d| fmt_duration(*d)).collect::<Vec<_>>().join(", ")
    ))?;

    t.begin("Requesters open the CP-ABE index")?;
    let pointer = c.open_index(RESEARCH, &a.dataset)?;
    ensure!(pointer.h1 == a.h1, "the index's H1 differs from the registered one");
    let refused = match c.open_index(HOSPITAL_B, &a.dataset) {
        Ok(_) => bail!("{HOSPITAL_B} opened an index its attributes do not satisfy"),
        Err(e) => format!("{e:#}"),
    };
    report.denials.push((HOSPITAL_B.into(), format!("CP-ABE index: {refused}")));
    t.end(&format!(
        "{RESEARCH}: dataset at {}, H1 {}\n{HOSPITAL_B}: DENIED ({refused})",
        pointer.cpc,
        hex::encode(&pointer.h1[..8])
    ))?;

    t.begin("Policy proofs: the zk contract grants one and denies the other")?;
    let (grant, f, prove) = c.request_access(RESEARCH, &demand_r, 3600).await?;
    ensure!(f.outcome.is_accepted(), "{RESEARCH} was not granted: {:?}", f.outcome);
    report.proofs.push((format!("policy ({RESEARCH})"), prove));
    report.grants += 1;
    let (_, forged) = c.request_access_forged(HOSPITAL_B, &demand_b).await?;
    let Outcome::Rejected { reason } = forged.outcome else { bail!("a forged policy proof was accepted") };
    report.denials.push((HOSPITAL_B.into(), reason.clone()));
    t.end(&format!(
        "{RESEARCH}: policy proof in {}, GRANTED in batch {} (grant {}, 1 h)\n\
         {HOSPITAL_B}: proof over self-made credentials, DENIED on chain: {reason}",
        fmt_duration(prove),
        f.seq,
        hex::encode(&grant[..4])
    ))?;

    t.begin("Owner's node issues the re-key; the CPC re-encrypts in batch")?;
    let g = with_ticker("re-encryption", c.wait_receipt(RESEARCH, &grant, Duration::from_secs(120))).await?;
    let reenc = c.log.entries().iter().find_map(|(_, a)| match a {
        Activity::Reencrypted { grant: id, records, took } if *id == grant => Some((*records, *took)),
        _ => None,
    });
    let (records, took) = reenc.ok_or_else(|| anyhow!("no re-encryption logged"))?;
    report.records_reencrypted = records;
    report.reencrypt_time = took;
    let receipt_ms = c.validators[0].ledger.audit(&a.dataset.0)?.first().map_or(0, |(r, _)| r.at_ms);
    t.end(&format!(
        "{HOSPITAL_A}'s node issued the re-key sealed to {} once the grant was final\n\
         {}: {records} capsules verified and re-encrypted in {} ({:.0} capsules/s)\n\
         receipt on chain {} ms (ledger time) after the grant; the nodes did this on their own",
        g.cpc,
        g.cpc,
        fmt_duration(took),
        records as f64 / took.as_secs_f64().max(1e-9),
        receipt_ms.saturating_sub(g.granted_ms)
    ))?;

    t.begin("research-1 fetches, decrypts and checks the owner's signatures")?;
    let decrypted = c.fetch_and_decrypt(RESEARCH, &grant, &pointer).await?;
    let equal = decrypted.iter().zip(&a.plaintexts).filter(|(d, p)| d == p).count();
    report.records_match = equal == a.plaintexts.len() && decrypted.len() == a.plaintexts.len();
    let outsider = c.member(HOSPITAL_B)?.clone();
    let cpc1 = c.cpcs[CPCS[0]].clone();
    let refused = match cpc1.fetch(&FetchRequest::sign(&outsider, grant, pointer.h1)) {
        Ok(_) => bail!("{HOSPITAL_B} fetched records under {RESEARCH}'s grant"),
        Err(e) => format!("{e:#}"),
    };
    report.denials.push((HOSPITAL_B.into(), format!("fetch: {refused}")));
    t.end(&format!(
        "{equal}/{} records decrypted, signatures valid, identical to the uploaded FHIR JSON\n\
         {HOSPITAL_B} asking {} for them: {refused}",
        a.plaintexts.len(),
        CPCS[0]
    ))?;

    t.begin("Audit: access records with inclusion proofs, checked on every validator")?;
    let trail = c.validators[0].ledger.audit(&a.dataset.0)?;
    ensure!(!trail.is_empty(), "no access record");
    for (rec, proof) in &trail {
        let block_hash = proof.verify()?;
        for v in &c.validators {
            let stored = v.ledger.block(proof.chain.into(), proof.height)?.ok_or_else(|| anyhow!("block missing"))?;
            ensure!(stored.hash == block_hash, "validator {} disagrees on the receipt's block", v.id);
        }
        report.audit.push(rec.clone());
    }
    let mut detail = String::new();
    for (rec, proof) in &trail {
        detail.push_str(&format!(
            "{} read {} records of {} via {} under grant {} at ledger time {} (access block {}, entry {}, proof ok)\n",
            rec.requester,
            rec.records,
            rec.owner,
            rec.cpc,
            hex::encode(&rec.grant[..4]),
            crate::fhir::rfc3339(rec.at_ms / 1000),
            proof.height,
            proof.index
        ));
    }
    t.end(detail.trim_end())?;

    t.begin("Revocations: grant, then member; what each then refuses")?;
    c.client(HOSPITAL_A)?
        .submit_accepted(dualchain_ledger::tx::TxKind::RevokeGrant { grant, reason: "study closed".into() })
        .await?;
    let after = match c.fetch_and_decrypt(RESEARCH, &grant, &pointer).await {
        Ok(_) => bail!("the CPC served a revoked grant"),
        Err(e) => format!("{e:#}"),
    };
    report.denials.push((RESEARCH.into(), format!("after revocation: {after}")));
    c.client(KGC)?
        .submit_accepted(dualchain_ledger::tx::TxKind::RevokeMember {
            member: HOSPITAL_B.into(),
            reason: "forged access attempt".into(),
        })
        .await?;
    let (_, f) = c.demand(HOSPITAL_B, &a.dataset, requirement).await?;
    let Outcome::Rejected { reason } = f.outcome else { bail!("a revoked member's demand was accepted") };
    report.denials.push((HOSPITAL_B.into(), reason.clone()));
    t.end(&format!(
        "{HOSPITAL_A} revoked the grant; {RESEARCH} asking {} again: {after}\n\
         the KGC revoked {HOSPITAL_B}; its next demand: {reason}",
        CPCS[0]
    ))?;

    t.begin("Validators compare their ledgers")?;
    let seq = c.ledgers_identical(Duration::from_secs(30)).await?;
    let ledger = &c.validators[0].ledger;
    report.data_blocks = ledger.tip(Chain::Data)?.map_or(0, |b| b.height + 1);
    report.access_blocks = ledger.tip(Chain::Access)?.map_or(0, |b| b.height + 1);
    for chain in [Chain::Data, Chain::Access] {
        let tip = ledger.tip(chain)?.map_or(0, |b| b.height + 1);
        for h in 0..tip {
            let b = ledger.block(chain, h)?.ok_or_else(|| anyhow!("block {h} missing"))?;
            report.transactions += b.entries.len();
            report.rejected += b.entries.iter().filter(|e| !e.outcome.is_accepted()).count();
        }
    }
    t.end(&format!(
        "all {VALIDATORS} validators at batch {seq} with identical tips: {} data blocks, {} access blocks",
        report.data_blocks, report.access_blocks
    ))?;
    let failures: Vec<_> = c.log.entries().into_iter().filter(|(_, a)| matches!(a, Activity::Failed { .. })).collect();
    report.steps = std::mem::take(&mut t.steps);
    c.shutdown().await?;

    let out = t.out;
    let total: Duration = report.steps.iter().map(|s| s.elapsed).sum();
    writeln!(out)?;
    writeln!(out, "summary")?;
    writeln!(out, "  consortium          {} validators, {} members", report.validators, report.members)?;
    writeln!(
        out,
        "  blocks              {} on the data chain, {} on the access chain",
        report.data_blocks, report.access_blocks
    )?;
    writeln!(
        out,
        "  transactions        {} ({} rejected with a recorded reason)",
        report.transactions, report.rejected
    )?;
    writeln!(
        out,
        "  records             {} uploaded, {} re-encrypted in {}, decrypted equal: {}",
        report.records_uploaded,
        report.records_reencrypted,
        fmt_duration(report.reencrypt_time),
        report.records_match
    )?;
    writeln!(out, "  grants / denials    {} / {}", report.grants, report.denials.len())?;
    for (who, why) in &report.denials {
        writeln!(out, "    denied {who:<11} {why}")?;
    }
    for (name, prove) in &report.proofs {
        writeln!(out, "  proof {name:<24} proved in {}", fmt_duration(*prove))?;
    }
    writeln!(out, "  audit trail         {} access record(s), inclusion proofs verified", report.audit.len())?;
    writeln!(out, "  total time          {}", fmt_duration(total))?;
    for (who, a) in &failures {
        writeln!(out, "  node error          {who}: {a:?}")?;
    }
    ensure!(failures.is_empty(), "member nodes reported errors");
    ensure!(report.records_match, "decrypted records differ from the uploaded ones");
    Ok(report)
}

fn summarise(obs: &serde_json::Value) -> String {
    format!(
        "{} {} {} at {}",
        obs["code"]["text"].as_str().unwrap_or("?"),
        obs["valueQuantity"]["value"],
        obs["valueQuantity"]["unit"].as_str().unwrap_or(""),
        obs["effectiveDateTime"].as_str().unwrap_or("?")
    )
}
