//! The demo (`dualchain-demo`, `scripts/demo.sh`): the whole sharing flow (DESIGN.md §3)
//! in an in-process consortium built as a deployment is ([`crate::consortium`]).
//!
//! Seven nodes come out of `dualchain init`'s genesis code and start as `dualchain node`
//! starts them: each a validator (PBFT over loopback QUIC with mutual TLS, RocksDB in a
//! temporary directory) hosting one member — a KGC, two hospitals, two research institutes
//! and two CPCs. Every step goes through the members' own nodes' HTTP APIs: hospitals post
//! synthetic bedside-monitor FHIR R4 Bundles (heart rate, SpO2, blood pressure), requesters
//! post demands and access requests, fetch FHIR searchset Bundles and read the audit trail.
//! The research institute is authorised by the dataset's policy; the second hospital is
//! not, and tries anyway, also with a forged proof sent past its node. Owners', CPCs' and
//! the KGC's nodes act on their own as the ledger moves. Each step prints its time; the
//! summary gives blocks, grants and denials, proofs, re-encryptions and the audit trail.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Result};
use dualchain_ledger::state::AccessRecord;
use dualchain_ledger::tx::{Hash, Outcome, TxKind};
use dualchain_node::agents::{Activity, FetchRequest};
use dualchain_node::genesis::params::default_params_dir;
use dualchain_progress::Progress;
use dualchain_storage::ledger::Chain;
use reqwest::Method;
use serde_json::{json, Value};

use crate::consortium::{
    refusal, wait_for, Consortium, FlowConfig, Upload, CPCS, DEMO_POLICY, HOSPITAL_A, HOSPITAL_B, KGC, NODES, RESEARCH,
};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Observations per dataset.
    pub records: usize,
    /// Seed for reproducible keys and data; fresh OS randomness when absent.
    pub seed: Option<u64>,
    /// Where Groth16 parameter files are cached between runs.
    pub params_dir: std::path::PathBuf,
    /// The Groth16 parameters from a ceremony among the seven institutions, as a
    /// deployment makes them (the default; about five minutes on 2 cores with the demo's
    /// shapes), rather than test parameters made on this machine (unseeded runs only: a
    /// seeded demo is a test consortium).
    pub ceremony: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { records: 64, seed: None, params_dir: default_params_dir(), ceremony: true }
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
    /// The owner erased its dataset, and a copy of a record taken before no longer opens.
    pub erased: bool,
    /// A clinician broke the glass: the records it received (one patient's), and the
    /// owner's review (justified).
    pub break_glass: Option<(usize, bool)>,
    /// The anonymous request: the pseudonym the chain named, the records delivered, and the
    /// member the approved audit case opened it to.
    pub anonymous: Option<(String, usize, String)>,
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

/// Runs the demo in a fresh temporary directory, writing progress to `out`.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<DemoReport> {
    ensure!(cfg.records > 0, "the demo needs at least one record");
    let dir = std::env::temp_dir().join(format!("dualchain-demo-{}-{}", std::process::id(), rand::random::<u32>()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let flow = FlowConfig {
        records: cfg.records,
        seed: cfg.seed,
        params_dir: cfg.params_dir.clone(),
        data_dir: dir.clone(),
        // A seeded demo is a reproducible test consortium; otherwise every institution
        // makes its own keys.
        institutions: cfg.seed.is_none(),
        ceremony: cfg.ceremony,
        validators_only: 0,
        // The anonymous path too: the audit authorities make the escrow key on chain.
        anonymous: true,
    };
    let result = runtime.block_on(run_flow(flow, out));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The reason a call was refused, or an error if it was not.
fn refused<T>(r: Result<T>, what: &str) -> Result<String> {
    match r {
        Ok(_) => bail!("{what} was not refused"),
        Err(e) => Ok(match refusal(&e) {
            Some(x) => format!("{} {}: {}", x.status, x.reason, x.message),
            None => format!("{e:#}"),
        }),
    }
}

/// The whole flow on a consortium set up from `flow`.
pub async fn run_flow(flow: FlowConfig, out: &mut dyn Write) -> Result<DemoReport> {
    writeln!(out, "dualchain demo: the sharing flow in an in-process consortium")?;
    writeln!(
        out,
        "  nodes:    {NODES} (each a validator hosting one member; PBFT over loopback QUIC + mutual TLS, RocksDB in {})",
        flow.data_dir.display()
    )?;
    writeln!(out, "  policy:   {DEMO_POLICY}")?;
    writeln!(out)?;
    let mut t = Timer { out, steps: Vec::new(), total: 16, current: None };
    let mut report = DemoReport { validators: NODES, ..DemoReport::default() };

    let c = genesis(&mut t, &mut report, flow).await?;
    let (a, demands, threshold) = upload_and_demand(&mut t, &mut report, &c).await?;
    let grant = access(&mut t, &mut report, &c, &demands).await?;
    deliver(&mut t, &mut report, &c, &a, &grant).await?;
    audit(&mut t, &mut report, &c, &a).await?;
    anonymous(&mut t, &mut report, &c, &a, threshold).await?;
    break_glass(&mut t, &mut report, &c, &a).await?;
    consent(&mut t, &c, &a).await?;
    revoke(&mut t, &mut report, &c, &a, &grant, &demands, threshold).await?;
    erase(&mut t, &mut report, &c, &a, threshold).await?;
    compare(&mut t, &mut report, &c).await?;
    let mut failures = Vec::new();
    for m in &c.file.members {
        let log = c.log(&m.id)?;
        failures.extend(log.entries().into_iter().filter(|(_, a)| matches!(a, Activity::Failed { .. })));
    }
    report.steps = std::mem::take(&mut t.steps);
    c.shutdown().await?;
    write_summary(t.out, &report, &failures)?;
    ensure!(failures.is_empty(), "member nodes reported errors");
    ensure!(report.records_match, "decrypted records differ from the uploaded ones");
    Ok(report)
}

/// Steps 1–2: genesis and the nodes started; members registered with their credentials.
async fn genesis(t: &mut Timer<'_>, report: &mut DemoReport, flow: FlowConfig) -> Result<Consortium> {
    let institutions = flow.institutions;
    t.begin(if institutions {
        "Genesis across institutions (keygen on each, assemble, join): keys stay home; nodes start"
    } else {
        "Genesis (dualchain init, a seeded test consortium): keys, IBE/ABE, Groth16; nodes start"
    })?;
    let c = Progress::while_running("starting the consortium", Consortium::genesis(flow)).await?;
    report.members = c.file.members.len();
    let node0 = c.node(0)?;
    let authorities = c.file.members.iter().filter(|m| m.role == "kgc" || m.role == "cpc").count();
    let mut detail = format!(
        "members: {}\nCA certified {} members; CP-ABE {} set up\n",
        c.file.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
        report.members,
        <dualchain_crypto::abe::ac17::Ac17 as dualchain_crypto::abe::AbeScheme>::NAME
    );
    detail.push_str(&if institutions {
        format!(
            "each institution made its own keys; the coordinator saw only public contributions; \
             ESKI-IBE chain of {authorities} authorities, each link made by its authority; members' IBE and \
             CP-ABE keys issued online by the authorities' nodes\n"
        )
    } else {
        format!("ESKI-IBE keys from {authorities} authorities' blinded shares, all on this machine\n")
    });
    if c.file.tau.is_some() {
        detail.push_str(&format!(
            "Groth16 parameters from a ceremony among the {} institutions (phase 1, then phase 2 per circuit), \
             verified once by the coordinator and trusted by the in-process nodes\n",
            report.members
        ));
    }
    detail.push_str(&format!(
        "Groth16 parameters: policy ({} constraints), {} ({} constraints)",
        node0.policy_pk.circuit.constraints,
        c.supply_shape.name(),
        node0.supply_pks[&c.supply_shape].circuit.constraints
    ));
    for name in &c.params_generated {
        detail.push_str(&format!("\n{name} generated (cached for later runs)"));
    }
    t.end(&detail)?;

    t.begin(if institutions {
        "Nodes register their members, which enroll with the authorities; the KGC's node publishes credentials"
    } else {
        "Nodes register their members; the KGC's node publishes credentials"
    })?;
    Progress::while_running("registration", c.wait_ready(Duration::from_secs(120))).await?;
    let root = node0.ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root"))?;
    t.end(&format!(
        "{} members registered on every ledger; credential root {}",
        report.members,
        hex::encode(&root.0[..8])
    ))?;
    Ok(c)
}

/// Steps 3–4: both hospitals upload; two demands on hospital-a's dataset, proved by its node.
/// Returns the dataset, the demands (research-1's, hospital-b's) and their threshold.
async fn upload_and_demand(
    t: &mut Timer<'_>,
    report: &mut DemoReport,
    c: &Consortium,
) -> Result<(Upload, [Hash; 2], u16)> {
    t.begin("Hospitals post FHIR Bundles; their nodes signcrypt to CPCs, register")?;
    let a = Progress::while_running("hospital-a uploads", c.upload(HOSPITAL_A, "icu-bedside-2026", CPCS[0])).await?;
    let b = Progress::while_running("hospital-b uploads", c.upload(HOSPITAL_B, "ward-b-monitors", CPCS[1])).await?;
    report.records_uploaded = a.observations.len() + b.observations.len();
    t.end(&format!(
        "{HOSPITAL_A}: {} Observations to {} (H1 {}), e.g. {}\n{HOSPITAL_B}: {} Observations to {}",
        a.observations.len(),
        a.cpc,
        hex::encode(&a.h1[..8]),
        summarise(&a.observations[0]),
        b.observations.len(),
        b.cpc
    ))?;

    t.begin("Requesters publish demands; the owner's node proves supply")?;
    let hr = a.zk_records.iter().filter(|r| r.code == 88674).count();
    let threshold = u16::try_from((hr / 2).max(usize::from(crate::consortium::FIXTURE_COHORT)))?;
    // A question about one patient: one heart-rate value, one record. The owner's
    // disclosure policy refuses it on chain, so supply proofs answer no such question.
    let narrow = json!({
        "code": "8867-4", "unit": "/min", "value_min": 58.0, "value_max": 58.0,
        "since": 0, "until": 4_000_000_000u64, "threshold": 1,
    });
    let oracle = refused(c.demand_spec(RESEARCH, &a.dataset, narrow).await, "a demand for one patient's value")?;
    report.denials.push((RESEARCH.into(), format!("a demand for one heart-rate value: {oracle}")));
    let demand_r = c.demand(RESEARCH, &a.dataset, threshold).await?;
    let demand_b = c.demand(HOSPITAL_B, &a.dataset, threshold).await?;
    Progress::while_running("supply proofs", async {
        c.wait_supplied(RESEARCH, &demand_r).await?;
        c.wait_supplied(HOSPITAL_B, &demand_b).await
    })
    .await?;
    // A requester's ledger can show a demand supplied a moment before the owner's node,
    // whose submission waits for its own validator, logs the proof: wait for both entries.
    let demands = [demand_r, demand_b];
    let owner_log = c.log(HOSPITAL_A)?;
    let supply: Vec<Duration> = wait_for(Duration::from_secs(60), "the owner's node to log both proofs", || {
        let found: Vec<Duration> = owner_log
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
        "demand: >= {threshold} heart-rate observations in 40-200 bpm, last 2 h ({hr} of {} records match)\n\
         {HOSPITAL_A}'s node proved both demands on its own: {}",
        a.zk_records.len(),
        supply.iter().map(|d| fmt_duration(*d)).collect::<Vec<_>>().join(", ")
    ))?;
    Ok((a, demands, threshold))
}

/// Steps 5–6: research-1 is granted; hospital-b's node refuses, and a forged proof sent past
/// it is denied on chain. Returns the grant.
async fn access(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium, demands: &[Hash; 2]) -> Result<Hash> {
    let [demand_r, demand_b] = *demands;
    t.begin("Access: research-1's node opens the index, proves the policy")?;
    let access = c.request_access(RESEARCH, &demand_r, 3600).await?;
    ensure!(access.granted, "{RESEARCH} was not granted: {:?}", access.denial);
    let grant = access.request;
    report.proofs.push((format!("policy ({RESEARCH})"), access.prove));
    report.grants += 1;
    let closed = refused(c.request_access(HOSPITAL_B, &demand_b, 3600).await, "hospital-b's access")?;
    report.denials.push((HOSPITAL_B.into(), format!("CP-ABE index: {closed}")));
    t.end(&format!(
        "{RESEARCH}: index opened, policy proof in {}, GRANTED (grant {}, 1 h)\n{HOSPITAL_B}: its node refuses: {closed}",
        fmt_duration(access.prove),
        hex::encode(&grant[..4])
    ))?;

    t.begin("A forged policy proof, sent past hospital-b's node, denied on chain")?;
    let (_, forged) = c.request_access_forged(HOSPITAL_B, &demand_b).await?;
    let Outcome::Rejected { reason } = forged.outcome else { bail!("a forged policy proof was accepted") };
    report.denials.push((HOSPITAL_B.into(), reason.to_string()));
    t.end(&format!("{HOSPITAL_B}: proof over self-made credentials, DENIED in batch {}: {reason}", forged.seq))?;
    Ok(grant)
}

/// Steps 7–8: re-key and batch re-encryption by the nodes; research-1 fetches, hospital-b
/// cannot.
async fn deliver(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium, a: &Upload, grant: &Hash) -> Result<()> {
    let grant = *grant;
    let _node0 = c.node(0)?;
    t.begin("Owner's node issues the re-key; the CPC re-encrypts in batch")?;
    let g = Progress::while_running("re-encryption", c.wait_receipt(RESEARCH, &grant)).await?;
    let reenc = c.log(&g.cpc)?.entries().iter().find_map(|(_, a)| match a {
        Activity::Reencrypted { grant: id, records, took } if *id == grant => Some((*records, *took)),
        _ => None,
    });
    let (records, took) = reenc.ok_or_else(|| anyhow!("no re-encryption logged"))?;
    report.records_reencrypted = records;
    report.reencrypt_time = took;
    let receipt_ms = c.node_of(RESEARCH)?.ledger.audit(&a.dataset.0)?.first().map_or(0, |(r, _)| r.at_ms);
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

    t.begin("research-1 fetches: its node decrypts and checks every signature")?;
    let fetched = c.fetch(RESEARCH, &grant).await?;
    // Minimum necessary: the grant delivers the records that satisfy research-1's demand.
    // Without what linked them to their patients, who appear under pseudonyms of this grant.
    let delivery = a.check_delivery(&c.grant_requirement(&grant)?, &fetched, &grant);
    report.records_match = delivery.is_ok();
    let patients = match &delivery {
        Ok(p) => p.iter().collect::<std::collections::BTreeSet<_>>().len().to_string(),
        Err(e) => format!("(not as uploaded: {e:#})"),
    };
    let not_yours = refused(c.fetch(HOSPITAL_B, &grant).await, "hospital-b's fetch")?;
    report.denials.push((HOSPITAL_B.into(), format!("fetch: {not_yours}")));
    // Straight to the CPC's node, signed by hospital-b, naming research-1's grant.
    let outsider = c.member(HOSPITAL_B)?;
    let req = serde_json::to_value(FetchRequest::sign(&outsider, grant, a.h1))?;
    let cpc_api =
        dualchain_node::api::client::ApiClient::of_member(&c.file, CPCS[0], HOSPITAL_B, outsider.signer.clone())?;
    let at_cpc = refused(cpc_api.call::<Value>(Method::POST, "/cpc/fetch", Some(&req)).await, "a CPC fetch")?;
    report.denials.push((HOSPITAL_B.into(), format!("fetch at {}: {at_cpc}", CPCS[0])));
    t.end(&format!(
        "{} records decrypted (those of the {} uploaded that satisfy the demand), signatures valid, \
         identical to the uploaded FHIR Observations less their patient links; {patients} patients \
         under pseudonyms of this grant only\n\
         {HOSPITAL_B} asking its node for them: {not_yours}\n{HOSPITAL_B} asking {} directly: {at_cpc}",
        fetched.len(),
        a.observations.len(),
        CPCS[0]
    ))?;
    Ok(())
}

/// research-1 asks again without being named: a one-time key demands, is granted and
/// fetches; the chain names only its pseudonym; an audit case the membership quorum
/// approves has the audit authorities open it.
async fn anonymous(
    t: &mut Timer<'_>,
    report: &mut DemoReport,
    c: &Consortium,
    a: &Upload,
    threshold: u16,
) -> Result<()> {
    t.begin("Anonymous request: research-1 as a one-time key; an approved audit case opens it")?;
    let ledger = c.node(0)?.ledger.clone();
    let (dealt, key) = wait_for(Duration::from_secs(120), "the escrow key", || {
        let (dealings, _, record) = ledger.escrow_dkg()?;
        Ok(record.map(|r| (dealings.len(), r.qualified.len())))
    })
    .await?;
    wait_for(Duration::from_secs(120), "research-1's anonymous credential", || {
        Ok(ledger.anonymous_credential(RESEARCH)?.map(|_| ()))
    })
    .await?;
    let (demand, pseudonym, prove) = c.demand_anonymous(RESEARCH, &a.dataset, threshold).await?;
    report.proofs.push(("policy-anonymous (a pseudonym)".into(), prove));
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    ensure!(access.granted, "the pseudonym was not granted: {:?}", access.denial);
    report.grants += 1;
    c.wait_receipt(RESEARCH, &access.request).await?;
    let fetched = c.fetch(RESEARCH, &access.request).await?;
    // The matching records, their patients under pseudonyms of this grant, which the
    // owner signcrypted to the one-time key.
    let pseudonyms = a
        .check_delivery(&c.grant_requirement(&access.request)?, &fetched, &access.request)
        .map_err(|e| anyhow!("the anonymous delivery: {e:#}"))?;
    let patients = pseudonyms.iter().collect::<std::collections::BTreeSet<_>>().len();
    let grant = ledger.grant(&access.request)?.ok_or_else(|| anyhow!("no grant"))?;
    ensure!(grant.requester == pseudonym, "the grant names {}", grant.requester);
    let reason = "demo: the data protection officer's review of anonymous demands";
    let (approvers, opened) = c.open_audit(&pseudonym, reason, RESEARCH).await?;
    ensure!(opened == RESEARCH, "the audit case opened {opened}");
    report.anonymous = Some((pseudonym.clone(), fetched.len(), opened.clone()));
    t.end(&format!(
        "escrow key made on chain by the {dealt} audit authorities (KGC and CPCs), {key} dealings qualified;          no machine holds its secret
         demand, grant and access records name {}…, not {RESEARCH}; anonymous policy proof in {}
         {} records fetched and decrypted with the one-time key, {patients} patients under pseudonyms of this grant
         audit case approved by {} (the membership quorum); the authorities' shares opened it: {opened}",
        &pseudonym[..16],
        fmt_duration(prove),
        fetched.len(),
        approvers.join(", "),
    ))?;
    Ok(())
}

/// Step 9: the audit trail through the API, each inclusion proof checked on every node.
async fn audit(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium, a: &Upload) -> Result<()> {
    let node0 = c.node(0)?;
    t.begin("Audit: access records with inclusion proofs, checked on every node")?;
    let trail = c.audit(RESEARCH, &a.dataset).await?;
    let entries = trail["records"].as_array().cloned().unwrap_or_default();
    ensure!(!entries.is_empty(), "no access record");
    ensure!(entries.iter().all(|e| e["proof_verified"] == true), "an inclusion proof did not verify");
    let mut detail = String::new();
    // Every node's blocks are checked, so every node has applied the receipt first.
    c.ledgers_identical(Duration::from_secs(30)).await?;
    for (rec, proof) in node0.ledger.audit(&a.dataset.0)? {
        let block_hash = proof.verify()?;
        for l in c.ledgers() {
            let stored = l.block(proof.chain.into(), proof.height)?.ok_or_else(|| anyhow!("block missing"))?;
            ensure!(stored.hash == block_hash, "a node disagrees on the receipt's block");
        }
        let what = match rec.event {
            dualchain_ledger::state::AccessEvent::Reencrypted => {
                format!("{} re-encrypted {} records of {} for {}", rec.cpc, rec.records, rec.owner, rec.requester)
            }
            dualchain_ledger::state::AccessEvent::Fetched => {
                format!("{} fetched {} records of {} from {}", rec.requester, rec.records, rec.owner, rec.cpc)
            }
        };
        detail.push_str(&format!(
            "{what} under grant {} at ledger time {} (access block {}, entry {}, proof ok)\n",
            hex::encode(&rec.grant[..4]),
            dualchain_node::fhir::rfc3339(rec.at_ms / 1000),
            proof.height,
            proof.index
        ));
        report.audit.push(rec);
    }
    t.end(detail.trim_end())?;
    Ok(())
}

/// Step 10: a clinician at hospital-b, whose attributes the dataset's policy does not
/// admit, breaks the glass for one of hospital-a's patients: the request is final on chain
/// (without the patient or the reason), hospital-a's node grants that patient's records at
/// once, and hospital-a's reviewer finds the use justified.
async fn break_glass(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium, a: &Upload) -> Result<()> {
    t.begin("A clinician breaks the glass for one patient; the owner reviews it")?;
    let patient = a.observations[0]["subject"]["reference"].as_str().unwrap_or_default().to_string();
    let body = json!({
        "owner": HOSPITAL_A, "patients": [patient], "duration_s": 3600,
        "justification": "unconscious on arrival at our emergency department; treated at hospital-a before",
    });
    let v: Value = c.api(HOSPITAL_B)?.call(Method::POST, "/break-glass", Some(&body)).await?;
    let id = v["request"].as_str().unwrap_or_default().to_string();
    let seen: Value = c.api(HOSPITAL_B)?.call(Method::GET, &format!("/break-glass/{id}?wait=60"), None).await?;
    let grant = crate::consortium::parse_hash(seen["grants"][0].as_str().unwrap_or_default())?;
    let records = c.fetch(HOSPITAL_B, &grant).await?;
    let queue: Value = c.api(HOSPITAL_A)?.call(Method::GET, "/break-glass?pending=true", None).await?;
    ensure!(queue["requests"][0]["scope"]["patients"][0] == patient.as_str(), "the review queue: {queue}");
    let review = json!({"justified": true, "note": "confirmed with hospital-b's emergency department"});
    let path = format!("/break-glass/{id}/review");
    c.api(HOSPITAL_A)?.call::<Value>(Method::POST, &path, Some(&review)).await?;
    report.break_glass = Some((records.len(), true));
    t.end(&format!(
        "{HOSPITAL_B} broke the glass at {HOSPITAL_A} for {patient} (ETREAT, 1 h; batch {}; the chain holds \
         neither the patient nor the reason)\n\
         {HOSPITAL_A}'s node granted that patient's records at once: {} records decrypted at {HOSPITAL_B}\n\
         {HOSPITAL_A}'s reviewer marked the use justified (POST {path})",
        v["seq"],
        records.len()
    ))?;
    Ok(())
}

/// Step 11: a patient of hospital-a opts out of research (a FHIR Consent posted to its
/// node): the chain gets new consent commitments only, and a research demand for every
/// heart rate of the dataset can no longer be proven, while one for the others can.
async fn consent(t: &mut Timer<'_>, c: &Consortium, a: &Upload) -> Result<()> {
    t.begin("A patient opts out of research; supply proofs count without them")?;
    let heart_rate = |o: &&Value| o["code"]["coding"][0]["code"] == "8867-4";
    let patient = a.observations.iter().find(heart_rate).and_then(|o| o["subject"]["reference"].as_str());
    let patient = patient.ok_or_else(|| anyhow!("no heart rate uploaded"))?.to_string();
    let all = a.observations.iter().filter(heart_rate).count();
    let theirs = a.observations.iter().filter(heart_rate).filter(|o| o["subject"]["reference"] == patient.as_str());
    let theirs = theirs.count();
    let opt_out = crate::fhir::consent(&patient, "active", crate::fhir::research_opt_out());
    let kept: Value = c.api(HOSPITAL_A)?.call(Method::POST, "/fhir/Consent", Some(&opt_out)).await?;
    let tags = kept["meta"]["tag"].as_array().cloned().unwrap_or_default();
    let earlier = tags.iter().filter(|t| t["system"] == "urn:dualchain:earlier-grant").count();
    let all_of_them = u16::try_from(all)?;
    let d_all = c.demand(RESEARCH, &a.dataset, all_of_them).await?;
    let owner_log = c.log(HOSPITAL_A)?;
    Progress::while_running(
        "supply proofs",
        wait_for(Duration::from_secs(120), "the owner's node to refuse the demand for all", || {
            Ok(owner_log
                .entries()
                .into_iter()
                .find(|(_, e)| matches!(e, Activity::SupplyImpossible { demand, .. } if *demand == d_all)))
        }),
    )
    .await?;
    // The others, where they are a cohort the owner's disclosure policy lets a demand ask for.
    let others = all_of_them - u16::try_from(theirs)?;
    let said = if others >= crate::consortium::FIXTURE_COHORT {
        let d_others = c.demand(RESEARCH, &a.dataset, others).await?;
        Progress::while_running("supply proofs", c.wait_supplied(RESEARCH, &d_others)).await?;
        format!("for the other {others}: proven")
    } else {
        format!("the other {others} are fewer than a demand may ask for")
    };
    let version = c.ledger(0)?.dataset(&a.dataset.0)?.map(|d| d.consent_version).unwrap_or_default();
    t.end(&format!(
        "{patient} opted out of research (POST /fhir/Consent at {HOSPITAL_A}); the chain holds a new consent \
         commitment (version {version}), not the patient\n\
         {earlier} earlier grant(s) over the patient's records are stated: what they delivered stays delivered\n\
         a research demand for all {all} heart rates: not provable now; {said}"
    ))?;
    Ok(())
}

/// Steps 12–13: the grant revoked by its owner, then hospital-b by the KGC.
async fn revoke(
    t: &mut Timer<'_>,
    report: &mut DemoReport,
    c: &Consortium,
    a: &Upload,
    grant: &Hash,
    demands: &[Hash; 2],
    threshold: u16,
) -> Result<()> {
    let (grant, demand_r) = (*grant, demands[0]);
    let node0 = c.node(0)?;
    t.begin("The owner revokes the grant; the CPC then refuses it")?;
    c.revoke_grant(HOSPITAL_A, &grant, "study closed").await?;
    let after = refused(c.fetch(RESEARCH, &grant).await, "a fetch under a revoked grant")?;
    report.denials.push((RESEARCH.into(), format!("after revocation: {after}")));
    t.end(&format!("{HOSPITAL_A} revoked the grant; {RESEARCH} asking again: {after}"))?;

    t.begin("A quorum of members revokes hospital-b; its node and the ledger refuse it")?;
    let approvers = c.revoke_member(HOSPITAL_B, KGC, "forged access attempt").await?;
    c.ledgers_identical(Duration::from_secs(30)).await?;
    let demand_after = refused(c.demand(HOSPITAL_B, &a.dataset, threshold).await, "a revoked member's demand")?;
    report.denials.push((HOSPITAL_B.into(), format!("after revocation: {demand_after}")));
    // Past its node, straight to its validator: the ledger refuses it too.
    let requirement = node0.ledger.demand(&demand_r)?.ok_or_else(|| anyhow!("no demand"))?.requirement;
    let kind = TxKind::Demand {
        demand: [9; 32],
        dataset: a.dataset.0,
        requirement,
        purpose: Default::default(),
        nullifier: None,
    };
    let f = c.client(HOSPITAL_B)?.submit(kind).await?;
    let Outcome::Rejected { reason } = f.outcome else { bail!("a revoked member's demand was accepted") };
    t.end(&format!(
        "{} approved revoking {HOSPITAL_B} (POST /members/{HOSPITAL_B}/revoke each), the consortium's quorum\n\
         its node refuses its next demand: {demand_after}\n\
         sent past its node, the ledger rejects it: {reason}",
        approvers.join(", ")
    ))?;
    Ok(())
}

/// Step 14: hospital-a erases one patient's records, then the rest of the dataset. The
/// patient's: the dataset is re-registered without them under a new key and the old one
/// erased, so a copy of the patient's stored record opens with no key left. The rest: the
/// tombstone on chain, the CPC deletes the records, the owner's node destroys the key,
/// and a copy of a record taken before opens with no key hospital-a still holds.
async fn erase(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium, a: &Upload, threshold: u16) -> Result<()> {
    t.begin("The owner erases a patient's records, then its dataset; the CPC deletes them, the owner's node the keys")?;
    let cpc = c.cpc(CPCS[0])?;
    let owner = c.owner(HOSPITAL_A)?;
    let hospital = c.member(HOSPITAL_A)?;
    let kept = owner.dataset(&a.dataset.0).ok_or_else(|| anyhow!("hospital-a keeps no opening of its dataset"))?;
    let patient = kept.patients.first().cloned().ok_or_else(|| anyhow!("no patient references kept"))?;
    // Record 0 is the patient's: a copy of it as a backup of the CPC would hold it.
    let copy = cpc.store.record(&a.dataset, 0)?;
    let body = json!({"patient": patient, "reason": "the patient asked for erasure (GDPR art. 17)"});
    let v: Value = c.api(HOSPITAL_A)?.call(Method::POST, "/erasure", Some(&body)).await?;
    let done = &v["datasets"][0];
    let rest = crate::consortium::parse_hash(done["replaced_by"].as_str().unwrap_or_default())?;
    let rest = dualchain_crypto::cbsre::DatasetId(rest);
    wait_for(Duration::from_secs(30), "the CPC to erase the patient's dataset", || {
        cpc.store.erased(&a.dataset).map_err(Into::into)
    })
    .await?;
    let replacement = owner.dataset(&rest.0).ok_or_else(|| anyhow!("no replacement kept"))?;
    ensure!(
        owner.dataset(&a.dataset.0).is_none() && !replacement.patients.contains(&patient),
        "the patient's records or the old key are kept"
    );
    let keys = [replacement.dsk.clone(), Some(hospital.dsk.clone())];
    ensure!(
        keys.iter().flatten().all(|k| copy.owner_decrypt(k, &hospital.signer.public()).is_err()),
        "a copy of the erased patient's record still opens with a key hospital-a holds"
    );

    let backup = cpc.store.record(&rest, 0)?;
    let path = format!("/datasets/{}/erase", rest.to_hex());
    let body = json!({"reason": "the study ended"});
    let f: Value = c.api(HOSPITAL_A)?.call(Method::POST, &path, Some(&body)).await?;
    wait_for(Duration::from_secs(30), "the CPC to erase the dataset", || cpc.store.erased(&rest).map_err(Into::into))
        .await?;
    ensure!(
        backup.owner_decrypt(&hospital.dsk, &hospital.signer.public()).is_err() && owner.dataset(&rest.0).is_none(),
        "a copy of an erased record still opens with a key the owner holds"
    );
    report.erased = true;
    let again = refused(c.demand(RESEARCH, &rest, threshold).await, "a demand on an erased dataset")?;
    report.denials.push((RESEARCH.into(), format!("after erasure: {again}")));
    t.end(&format!(
        "{HOSPITAL_A} erased {patient}'s {} record(s) (POST /erasure): its dataset was re-registered without them \
         under a new key and the old one erased, so a copy of the patient's stored record opens with no key left\n\
         then erased the rest (POST {path}; tombstone in batch {}); {} holds none of its records, {HOSPITAL_A}'s \
         node no longer holds the dataset's key, and a copy of a record taken before opens with no key \
         {HOSPITAL_A} holds\n{RESEARCH} demanding again: {again}",
        done["records_erased"], f["seq"], CPCS[0]
    ))?;
    Ok(())
}

/// Step 15: every node holds the same ledger; block and transaction counts.
async fn compare(t: &mut Timer<'_>, report: &mut DemoReport, c: &Consortium) -> Result<()> {
    let node0 = c.node(0)?;
    t.begin("The nodes compare their ledgers")?;
    let seq = c.ledgers_identical(Duration::from_secs(30)).await?;
    let ledger = &node0.ledger;
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
        "all {NODES} nodes at batch {seq} with identical tips: {} data blocks, {} access blocks",
        report.data_blocks, report.access_blocks
    ))?;
    Ok(())
}

fn write_summary(out: &mut dyn Write, report: &DemoReport, failures: &[(String, Activity)]) -> Result<()> {
    let total: Duration = report.steps.iter().map(|s| s.elapsed).sum();
    writeln!(out)?;
    writeln!(out, "summary")?;
    writeln!(out, "  consortium          {} nodes (validators), {} members", report.validators, report.members)?;
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
    for (who, a) in failures {
        writeln!(out, "  node error          {who}: {a:?}")?;
    }
    Ok(())
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
