//! End-to-end suite: the sharing flow in the in-process consortium of the demo (7 nodes
//! built by genesis, each a validator over loopback QUIC + mutual TLS with RocksDB synced on
//! every commit and its member's agents; every step through the members' nodes' APIs).
//!
//! - Dataset registration: a hospital signcrypts 64 Observations to a CPC (which checks
//!   and stores them), commits to them, encrypts the index under CP-ABE and registers the
//!   dataset; datasets/s with several in flight against one at a time (the baseline).
//! - Served requests: demand → owner's supply proof → requester's policy proof → grant →
//!   owner's re-key → CPC batch re-encryption → receipt → fetch, decrypt and signature
//!   check; requests/s with several in flight against one at a time, and each stage's
//!   share of a request's latency (proving, ledger execution including batch proof
//!   verification, re-encryption, CPC storage and fetch, and the rest: consensus ordering,
//!   finality waits and messaging).
//! - Anonymous requests (`"anonymous": true`: a one-time key and the anonymous policy
//!   proof on the demand, none on the access request) one at a time, against the named
//!   requests one at a time of the same run.
//! - The FHIR API with SMART Backend Services bearer tokens against the members'
//!   Ed25519-signed headers (signing included), alternating request by request in the same run: single
//!   Observations posted (staged) at the hospital's node, a grant's records searched
//!   (`_grant`) at the research institute's node, and the token endpoint's latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use dualchain_node::agents::Activity;
use dualchain_progress::Progress;
use dualchain_testkit::consortium::{wait_for, Consortium, FlowConfig, CPCS, HOSPITAL_A, NODES, RESEARCH};
use tokio::task::JoinSet;

use crate::measure::Record;

const WAIT: Duration = Duration::from_secs(600);

pub(crate) struct Served {
    pub grant: dualchain_ledger::tx::Hash,
    pub total: Duration,
    pub supply: Duration,
    pub policy: Duration,
    pub reencrypt: Duration,
    pub fetch: Duration,
}

pub(crate) async fn serve_one(
    c: Arc<Consortium>,
    dataset: dualchain_crypto::cbsre::DatasetId,
    anonymous: bool,
) -> Result<Served> {
    let started = Instant::now();
    // The policy proof: on the access request, or on an anonymous demand.
    let (demand, anonymous_prove) = if anonymous {
        let (demand, _, prove) = c.demand_anonymous(RESEARCH, &dataset, 4).await?;
        (demand, Some(prove))
    } else {
        (c.demand(RESEARCH, &dataset, 4).await?, None)
    };
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    anyhow::ensure!(access.granted, "request denied: {:?}", access.denial);
    let grant = access.request;
    c.wait_receipt(RESEARCH, &grant).await?;
    let fetch_start = Instant::now();
    let records = c.fetch(RESEARCH, &grant).await?;
    let fetch = fetch_start.elapsed();
    // Minimum necessary: the heart rates the demand asks for (a third of the records).
    let want = c.cfg.records.div_ceil(3);
    anyhow::ensure!(records.len() == want, "fetched {} records where {want} match", records.len());
    let total = started.elapsed();
    let supply = wait_for(WAIT, "the owner's node to log its proof", || {
        Ok(c.log(HOSPITAL_A)?.entries().iter().find_map(|(_, a)| match a {
            Activity::SupplyProved { demand: d, prove } if *d == demand => Some(*prove),
            _ => None,
        }))
    })
    .await?;
    let mut reencrypt = None;
    for cpc in CPCS {
        reencrypt = reencrypt.or(c.log(cpc)?.entries().iter().find_map(|(_, a)| match a {
            Activity::Reencrypted { grant: g, took, .. } if *g == grant => Some(*took),
            _ => None,
        }));
    }
    let reencrypt = reencrypt.ok_or_else(|| anyhow!("no re-encryption logged"))?;
    Ok(Served { grant, total, supply, policy: anonymous_prove.unwrap_or(access.prove), reencrypt, fetch })
}

pub fn run(quick: bool) -> Result<Vec<Record>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(quick))
}

async fn run_async(quick: bool) -> Result<Vec<Record>> {
    // (one at a time, all at once) for datasets and for requests.
    let (datasets_seq, datasets_par, requests_seq, requests_par) = if quick { (2, 4, 2, 4) } else { (4, 12, 4, 12) };
    let dir = tempfile::tempdir()?;
    // Points: the consortium's genesis, then every dataset and every request.
    let points = 1 + datasets_seq + datasets_par + 2 * requests_seq + requests_par;
    let progress = Progress::new("bench e2e", points as u64);
    progress.set_message("genesis, nodes, registration");
    let c = consortium(dir.path()).await?;
    progress.inc(1);
    progress.set_message("datasets, one at a time");
    let c = Arc::new(c);
    let mut out = Vec::new();
    let params = |k: usize| format!("{NODES} nodes, 64 records/dataset, {k} in flight");

    // Dataset registration: one at a time, then several in flight.
    let mut datasets = Vec::new();
    let started = Instant::now();
    for i in 0..datasets_seq {
        datasets.push(c.upload(HOSPITAL_A, &format!("seq-{i}"), CPCS[i % CPCS.len()]).await?.dataset);
        progress.inc(1);
    }
    let seq_rate = datasets_seq as f64 / started.elapsed().as_secs_f64();
    progress.set_message(format!("datasets, {datasets_par} in flight"));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..datasets_par {
        let c = c.clone();
        set.spawn(async move { c.upload(HOSPITAL_A, &format!("par-{i}"), CPCS[i % CPCS.len()]).await });
    }
    while let Some(r) = set.join_next().await {
        datasets.push(r??.dataset);
        progress.inc(1);
    }
    let par_rate = datasets_par as f64 / started.elapsed().as_secs_f64();
    out.push(Record::throughput("e2e_datasets_registered", params(1), seq_rate, None));
    out.push(Record::throughput("e2e_datasets_registered", params(datasets_par), par_rate, Some(seq_rate)));

    // Served requests: one at a time (with stage shares), then several in flight.
    let apply_before: u64 = c.node(0)?.validator.apply_ns.load(std::sync::atomic::Ordering::Relaxed);
    progress.set_message("requests, one at a time");
    let started = Instant::now();
    let mut served = Vec::new();
    for d in datasets.iter().take(requests_seq) {
        served.push(serve_one(c.clone(), *d, false).await?);
        progress.inc(1);
    }
    let seq_elapsed = started.elapsed();
    let apply =
        Duration::from_nanos(c.node(0)?.validator.apply_ns.load(std::sync::atomic::Ordering::Relaxed) - apply_before);
    let seq_rate = requests_seq as f64 / seq_elapsed.as_secs_f64();
    progress.set_message(format!("requests, {requests_par} in flight"));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for d in datasets.iter().skip(requests_seq).take(requests_par) {
        let (c, d) = (c.clone(), *d);
        set.spawn(async move { serve_one(c, d, false).await });
    }
    let mut latencies = Vec::new();
    while let Some(r) = set.join_next().await {
        latencies.push(r??.total.as_secs_f64());
        progress.inc(1);
    }
    progress.finish();
    let par_rate = requests_par as f64 / started.elapsed().as_secs_f64();
    out.push(Record::throughput("e2e_requests_served", params(1), seq_rate, None));
    out.push(Record::throughput("e2e_requests_served", params(requests_par), par_rate, Some(seq_rate)));
    latencies.sort_by(f64::total_cmp);
    let mean =
        |f: &dyn Fn(&Served) -> Duration| served.iter().map(|s| f(s).as_secs_f64()).sum::<f64>() / served.len() as f64;
    let total = mean(&|s| s.total);
    out.push(time_record("e2e_request_latency", "one at a time, mean".into(), total));
    out.push(time_record("e2e_policy_prove", "named (on the access request), mean".into(), mean(&|s| s.policy)));
    if let Some(p50) = latencies.get(latencies.len() / 2) {
        out.push(time_record("e2e_request_latency", format!("{requests_par} in flight, p50"), *p50));
    }
    // Stage shares of the sequential requests' latency (percent).
    let proving = mean(&|s| s.supply + s.policy);
    let execution = apply.as_secs_f64() / served.len() as f64;
    let reencrypt = mean(&|s| s.reencrypt);
    let storage = mean(&|s| s.fetch);
    let rest = (total - proving - execution - reencrypt - storage).max(0.0);
    for (stage, t) in [
        ("proving (supply + policy)", proving),
        ("ledger execution incl. batch proof verification", execution),
        ("re-encryption", reencrypt),
        ("CPC storage + fetch + decrypt", storage),
        ("consensus ordering, finality waits, messaging", rest),
    ] {
        out.push(Record {
            name: "e2e_stage_share".into(),
            params: stage.into(),
            value: 100.0 * t / total,
            unit: "%".into(),
            baseline: None,
            ratio: None,
        });
    }
    out.extend(anonymous_requests(&c, &datasets[..requests_seq], seq_rate, total, &progress).await?);
    let grant = served.first().map(|s| s.grant).ok_or_else(|| anyhow!("no request served"))?;
    out.extend(bearer_against_signed(&c, grant, quick).await?);
    let c = Arc::try_unwrap(c).map_err(|_| anyhow!("consortium still shared"))?;
    c.shutdown().await?;
    Ok(out)
}

/// Anonymous requests one at a time on `datasets`, against the named ones (`named_rate`
/// requests/s, `named_latency` s mean) of the same run, with their policy proving time.
async fn anonymous_requests(
    c: &Arc<Consortium>,
    datasets: &[dualchain_crypto::cbsre::DatasetId],
    named_rate: f64,
    named_latency: f64,
    progress: &Progress,
) -> Result<Vec<Record>> {
    progress.set_message("anonymous requests, one at a time");
    let ledger = c.node(0)?.ledger.clone();
    wait_for(WAIT, "the escrow key and research-1's anonymous credential", || {
        Ok((ledger.escrow_key()?.is_some() && ledger.anonymous_credential(RESEARCH)?.is_some()).then_some(()))
    })
    .await?;
    let started = Instant::now();
    let mut served = Vec::new();
    for d in datasets {
        served.push(serve_one(c.clone(), *d, true).await?);
        progress.inc(1);
    }
    let rate = served.len() as f64 / started.elapsed().as_secs_f64();
    let n = served.len() as f64;
    let latency = served.iter().map(|s| s.total.as_secs_f64()).sum::<f64>() / n;
    let prove = served.iter().map(|s| s.policy.as_secs_f64()).sum::<f64>() / n;
    let mut out = vec![Record::throughput(
        "e2e_requests_served",
        format!("{NODES} nodes, anonymous, 1 in flight"),
        rate,
        Some(named_rate),
    )];
    let mut lat = time_record("e2e_request_latency", "anonymous, one at a time, mean".into(), latency);
    lat.baseline = Some(named_latency);
    lat.ratio = Some(latency / named_latency);
    out.push(lat);
    out.push(time_record("e2e_policy_prove", "anonymous (on the demand), mean".into(), prove));
    Ok(out)
}

/// The demo's consortium (64 records per dataset, seeded, test parameters from the cache
/// or `DUALCHAIN_PARAMS_DIR`) under `dir`, every member registered.
pub(crate) async fn consortium(dir: &std::path::Path) -> Result<Consortium> {
    let params_dir = std::env::var_os("DUALCHAIN_PARAMS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(dualchain_node::genesis::params::default_params_dir);
    let cfg = FlowConfig {
        records: 64,
        seed: Some(42),
        params_dir,
        data_dir: dir.join("consortium"),
        institutions: false,
        ceremony: false,
        validators_only: 0,
        anonymous: true,
    };
    let c = Consortium::genesis(cfg).await.context("genesis")?;
    c.wait_ready(WAIT).await?;
    Ok(c)
}

/// Uploads and fetches through the FHIR API, with a bearer token and with signed headers,
/// alternating (so both see the same node state); then the token endpoint's latency.
async fn bearer_against_signed(c: &Consortium, grant: dualchain_ledger::tx::Hash, quick: bool) -> Result<Vec<Record>> {
    use dualchain_node::api::smart::ClientKey;
    use reqwest::Method;
    let (uploads, fetches, tokens) = if quick { (12, 4, 8) } else { (24, 10, 32) };
    let key = ClientKey::generate("bench-1")?;
    let scope = "system/Observation.write system/Observation.read";
    let mut bearer = Vec::new();
    for member in [HOSPITAL_A, RESEARCH] {
        let api = c.api(member)?;
        let reg = serde_json::json!({"client_id": "bench", "scope": scope, "jwks": {"keys": [key.jwk()]}});
        let _: serde_json::Value = api.call(Method::POST, "/smart/clients", Some(&reg)).await?;
        bearer.push(api.with_bearer(&api.smart_token(&key, "bench", scope).await?));
    }
    // Observations of patients the hospital's node knows, as single staged posts (fewer
    // than a dataset's worth, so that no seal runs in between).
    let up = c.upload(HOSPITAL_A, "bench-fhir-api", CPCS[0]).await?;
    let time = |t: &mut [Duration; 2], i: usize, started: Instant| t[i] += started.elapsed();
    let mut upload = [Duration::ZERO; 2];
    // Each pair in turn starts with the other kind, so that neither always comes first.
    let order = |n: usize| if n % 2 == 0 { [0, 1] } else { [1, 0] };
    for n in 0..uploads {
        let apis = [c.api(HOSPITAL_A)?, &bearer[0]];
        for i in order(n) {
            let api = apis[i];
            let body = serde_json::to_vec(&up.observations[(2 * n + i) % up.observations.len()])?;
            let started = Instant::now();
            let r = api.send(Method::POST, "/fhir/Observation", body, "application/fhir+json").await?;
            anyhow::ensure!(r.status == 201, "a staged Observation answered {}", r.status);
            time(&mut upload, i, started);
        }
    }
    let path = format!("/fhir/Observation?_grant={}", hex::encode(grant));
    let mut fetch = [Duration::ZERO; 2];
    for n in 0..fetches {
        let apis = [c.api(RESEARCH)?, &bearer[1]];
        for i in order(n) {
            let api = apis[i];
            let started = Instant::now();
            let r = api.send(Method::GET, &path, vec![], "").await?;
            anyhow::ensure!(r.status == 200, "a _grant search answered {}", r.status);
            time(&mut fetch, i, started);
        }
    }
    let started = Instant::now();
    for _ in 0..tokens {
        c.api(HOSPITAL_A)?.smart_token(&key, "bench", scope).await?;
    }
    let per_token = started.elapsed().as_secs_f64() / tokens as f64;
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let (signed_up, signed_fetch) = (rate(uploads, upload[0]), rate(fetches, fetch[0]));
    let records = c.cfg.records.div_ceil(3);
    Ok(vec![
        Record::throughput("e2e_api_upload", "signed headers, 1 Observation staged".into(), signed_up, None),
        Record::throughput(
            "e2e_api_upload",
            "bearer token, 1 Observation staged".into(),
            rate(uploads, upload[1]),
            Some(signed_up),
        ),
        Record::throughput(
            "e2e_api_fetch",
            format!("signed headers, _grant search, {records} records"),
            signed_fetch,
            None,
        ),
        Record::throughput(
            "e2e_api_fetch",
            format!("bearer token, _grant search, {records} records"),
            rate(fetches, fetch[1]),
            Some(signed_fetch),
        ),
        time_record("e2e_api_token", "ES384 assertion to bearer token, mean".into(), per_token),
    ])
}

fn time_record(name: &str, params: String, seconds: f64) -> Record {
    Record { name: name.into(), params, value: seconds, unit: "s".into(), baseline: None, ratio: None }
}
