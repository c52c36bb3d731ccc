//! The HTTP API against a cluster of 4 `dualchain node` processes on this host (from
//! `dualchain init`, loopback timing): what institutions and gateways see.
//!
//! - Uploads: a hospital's gateway posts transaction Bundles of 64 Observations
//!   (`POST /fhir`: FHIR validation, signcryption, storage at the CPC's node over HTTP,
//!   commitment, CP-ABE index, the registration final on the ledger); records/s with
//!   several Bundles in flight against one at a time, and per-request p50/p99 latency.
//! - Single Observations (`POST /fhir/Observation`, each staged durably, every 64th
//!   sealing a dataset): observations/s one at a time, p50/p99.
//! - Fetches: a researcher's `GET /grants/{id}/records` (the node asks the CPC's node for
//!   the re-encrypted records, decrypts and checks each, and answers a FHIR searchset);
//!   records/s with several in flight against one at a time, p50/p99.
//! - Transport: the same small requests over HTTPS (the default: rustls, TLS 1.3, the
//!   consortium CA's certificate) against plain HTTP (a second cluster made with
//!   `init --insecure-http`, the baseline), one at a time and several in flight, on
//!   connections kept alive as the members' clients keep them: the public capability
//!   statement (`GET /fhir/metadata`, a few kB) and a member's signed consent search
//!   (`GET /fhir/Consent?patient=…`, signature checked by the node).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dualchain_node::api::client::ApiClient;
use dualchain_progress::Progress;
use dualchain_testkit::fhir;
use dualchain_testkit::procs::ProcessCluster;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::measure::Record;

const HOSPITAL: usize = 1;
const RESEARCH: usize = 2;
const RECORDS: usize = 64;

/// The `dualchain` binary beside this one, built first when `cargo run` started us.
fn node_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| anyhow!("no directory"))?;
    let bin = dir.join("dualchain");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "dualchain", "--bin", "dualchain"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().context("building the dualchain binary")?;
        if !st.success() {
            bail!("building the dualchain binary failed");
        }
    }
    if !bin.exists() {
        bail!("{} is missing: cargo build --release -p dualchain", bin.display());
    }
    Ok(bin)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency_records(out: &mut Vec<Record>, name: &str, params: &str, mut lat: Vec<f64>) {
    lat.sort_by(f64::total_cmp);
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        out.push(Record {
            name: name.into(),
            params: format!("{params}, {label}"),
            value: percentile(&lat, q) * 1000.0,
            unit: "ms".into(),
            baseline: None,
            ratio: None,
        });
    }
}

/// Runs `total` calls of `f` with `in_flight` at a time: (calls/s, latencies in s).
async fn drive<F, Fut>(total: usize, in_flight: usize, f: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let mut set = JoinSet::new();
    let mut lat = Vec::new();
    let mut next = 0;
    while next < total || !set.is_empty() {
        while next < total && set.len() < in_flight {
            let fut = f(next);
            set.spawn(async move {
                let t = Instant::now();
                fut.await.map(|_| t.elapsed().as_secs_f64())
            });
            next += 1;
        }
        if let Some(r) = set.join_next().await {
            lat.push(r??);
        }
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), lat))
}

pub fn run(quick: bool) -> Result<Vec<Record>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(quick))
}

async fn run_async(quick: bool) -> Result<Vec<Record>> {
    let (bundles, in_flight, singles, fetches) = if quick { (4, 4, 64, 8) } else { (12, 8, 192, 32) };
    let bin = node_binary()?;
    let dir = tempfile::tempdir()?;
    let params = std::env::var_os("DUALCHAIN_PARAMS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(dualchain_node::genesis::params::default_params_dir);
    // Points: the cluster, uploads (one at a time, in flight), observations, the grant,
    // fetches (one at a time, in flight).
    let progress = Progress::new("bench api", 9);
    progress.set_message("init and start 4 nodes");
    let mut cluster = ProcessCluster::init(&bin, &dir.path().join("consortium"), 4, &params)?;
    cluster.wait_ready(&[0, 1, 2, 3], Duration::from_secs(600)).await?;
    progress.inc(1);
    let hospital = Arc::new(cluster.client(HOSPITAL)?.0);
    let research = Arc::new(cluster.client(RESEARCH)?.0);
    let mut out = Vec::new();
    let cfg = |k: usize| format!("4 processes, {RECORDS} records/Bundle, {k} in flight");

    // Uploads.
    let upload = |tag: &'static str| {
        let h = hospital.clone();
        move |i: usize| {
            let h = h.clone();
            async move {
                let (b, _) = fhir::ward_bundle("hospital-a", 8, RECORDS, i as u64);
                let _: Value = h.call(Method::POST, &format!("/fhir?dataset={tag}-{i}"), Some(&b)).await?;
                Ok(())
            }
        }
    };
    progress.set_message("uploads, one at a time");
    let (seq, lat1) = drive(bundles / 2, 1, upload("seq")).await?;
    progress.inc(1);
    progress.set_message(format!("uploads, {in_flight} in flight"));
    let (par, latk) = drive(bundles, in_flight, upload("par")).await?;
    progress.inc(1);
    let seq_rec = seq * RECORDS as f64;
    out.push(Record { unit: "records/s".into(), ..Record::throughput("api_upload", cfg(1), seq_rec, None) });
    out.push(Record {
        unit: "records/s".into(),
        ..Record::throughput("api_upload", cfg(in_flight), par * RECORDS as f64, Some(seq_rec))
    });
    latency_records(&mut out, "api_upload_latency", &cfg(1), lat1);
    latency_records(&mut out, "api_upload_latency", &cfg(in_flight), latk);

    // Single observations, as a gateway posts them one by one.
    progress.set_message("single observations");
    let (_, obs) = fhir::ward_bundle("hospital-a", 8, singles, 77);
    let patients = fhir::ward_bundle("hospital-a", 8, 0, 0).0;
    for e in patients["entry"].as_array().into_iter().flatten() {
        let _: Value = hospital.call(Method::POST, "/fhir/Patient", Some(&e["resource"])).await?;
    }
    let obs = Arc::new(obs);
    let h = hospital.clone();
    let (rate, lat) = drive(singles, 1, move |i| {
        let (h, obs) = (h.clone(), obs.clone());
        async move {
            let _: Value = h.call(Method::POST, "/fhir/Observation", Some(&obs[i])).await?;
            Ok(())
        }
    })
    .await?;
    let p = format!("one at a time, sealed every {RECORDS}");
    out.push(Record { unit: "observations/s".into(), ..Record::throughput("api_observation", p.clone(), rate, None) });
    latency_records(&mut out, "api_observation_latency", &p, lat);
    progress.inc(1);

    // Fetches of one grant's 64 records.
    progress.set_message("a grant to fetch");
    let (grant, want) = grant_for(&hospital, &research).await?;
    progress.inc(1);
    let fetch = {
        let r = research.clone();
        move |_: usize| {
            let (r, grant) = (r.clone(), grant.clone());
            async move {
                let v: Value = r.call(Method::GET, &format!("/grants/{grant}/records?wait=60"), None).await?;
                if v["total"] != want {
                    bail!("fetched {} records where {want} match the demand", v["total"]);
                }
                Ok(())
            }
        }
    };
    progress.set_message("transport: HTTPS");
    let https = transport(&cluster, quick).await?;
    progress.inc(1);
    progress.set_message("fetches, one at a time");
    let (seq, lat1) = drive(fetches / 2, 1, fetch.clone()).await?;
    progress.inc(1);
    progress.set_message(format!("fetches, {in_flight} in flight"));
    let (par, latk) = drive(fetches, in_flight, fetch).await?;
    progress.inc(1);
    let fcfg = |k: usize| format!("4 processes, {want} records/fetch, {k} in flight");
    let seq_rec = seq * want as f64;
    out.push(Record { unit: "records/s".into(), ..Record::throughput("api_fetch", fcfg(1), seq_rec, None) });
    out.push(Record {
        unit: "records/s".into(),
        ..Record::throughput("api_fetch", fcfg(in_flight), par * want as f64, Some(seq_rec))
    });
    latency_records(&mut out, "api_fetch_latency", &fcfg(1), lat1);
    latency_records(&mut out, "api_fetch_latency", &fcfg(in_flight), latk);

    for i in 0..4 {
        cluster.terminate(i)?;
    }

    // The same transport points on a cluster serving plain HTTP.
    progress.set_message("transport: plain HTTP");
    let mut plain = ProcessCluster::init_with(
        &bin,
        &dir.path().join("consortium-http"),
        4,
        &params,
        dualchain_testkit::procs::Hosts::Loopback,
        &["--insecure-http"],
    )?;
    plain.wait_ready(&[0, 1, 2, 3], Duration::from_secs(600)).await?;
    let http = transport(&plain, quick).await?;
    for i in 0..4 {
        plain.terminate(i)?;
    }
    progress.inc(1);
    progress.finish();
    for ((what, k, s, l), (_, _, base, base_lat)) in https.into_iter().zip(http) {
        let p = |scheme: &str| format!("4 processes, {what}, {k} in flight, {scheme}");
        out.push(Record { unit: "req/s".into(), ..Record::throughput("api_transport", p("http"), base, None) });
        out.push(Record { unit: "req/s".into(), ..Record::throughput("api_transport", p("https"), s, Some(base)) });
        latency_records(&mut out, "api_transport_latency", &p("http"), base_lat);
        latency_records(&mut out, "api_transport_latency", &p("https"), l);
    }
    Ok(out)
}

/// The transport points on `cluster`: for each request (public metadata, a member's signed
/// search) one at a time and 8 in flight, (what, in flight, requests/s, latencies in s).
async fn transport(cluster: &ProcessCluster, quick: bool) -> Result<Vec<(&'static str, usize, f64, Vec<f64>)>> {
    let total = if quick { 200 } else { 1000 };
    let hospital = Arc::new(cluster.client(HOSPITAL)?.0);
    let mut out = Vec::new();
    for what in ["GET /fhir/metadata public", "GET /fhir/Consent signed"] {
        for k in [1, 8] {
            let h = hospital.clone();
            let (rate, lat) = drive(total, k, move |_| {
                let h = h.clone();
                async move {
                    if what.ends_with("public") {
                        let r = h.get_public("/fhir/metadata").await?;
                        anyhow::ensure!(r.status == 200, "metadata answered {}", r.status);
                    } else {
                        let _: Value = h.call(Method::GET, "/fhir/Consent?patient=Patient/p-0001", None).await?;
                    }
                    Ok(())
                }
            })
            .await?;
            out.push((what, k, rate, lat));
        }
    }
    Ok(out)
}

/// Upload, demand, supply proof, policy proof, grant, re-encryption: a grant ready to fetch,
/// and how many records it delivers (the dataset's heart rates, which the demand asks for:
/// a grant delivers what its demand matched, no more).
async fn grant_for(hospital: &ApiClient, research: &ApiClient) -> Result<(String, usize)> {
    let (b, observations) = fhir::ward_bundle("hospital-a", 8, RECORDS, 1234);
    let want = observations.iter().filter(|o| o["code"]["coding"][0]["code"] == "8867-4").count();
    let up: Value = hospital.call(Method::POST, "/fhir?dataset=fetch-bench&min_cohort=1", Some(&b)).await?;
    let dataset =
        dualchain_node::api::fhir_routes::upload_tag(&up, "dataset").ok_or_else(|| anyhow!("no dataset"))?.to_string();
    let spec = json!({"dataset": dataset, "code": "8867-4", "unit": "/min", "since": 0, "until": 4_000_000_000u64, "threshold": 1});
    let d: Value = research.call(Method::POST, "/demands", Some(&spec)).await?;
    let demand = d["demand"].as_str().ok_or_else(|| anyhow!("no demand"))?.to_string();
    let d: Value = research.call(Method::GET, &format!("/demands/{demand}?wait=120"), None).await?;
    if d["supplied_by"].is_null() {
        bail!("no supply proof");
    }
    let a: Value = research.call(Method::POST, "/access", Some(&json!({"demand": demand, "duration_s": 3600}))).await?;
    let grant = a["request"].as_str().ok_or_else(|| anyhow!("no request"))?.to_string();
    let _: Value = research.call(Method::GET, &format!("/grants/{grant}?wait=120"), None).await?;
    Ok((grant, want))
}
