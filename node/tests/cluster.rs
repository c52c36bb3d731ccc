//! Four `dualchain node` processes from `dualchain init` output, driven through the HTTP
//! API only: malformed and forged requests are refused with a reason and change nothing;
//! the sharing flow runs while the CPC's node is killed with SIGKILL and restarted (it
//! finishes the re-encryption it missed); the ledgers end identical; /metrics parses as
//! Prometheus text with every component's series; SIGTERM stops every node cleanly.

use std::path::PathBuf;
use std::time::Duration;

use dualchain_crypto::sign::SigningKeypair;
use dualchain_node::api::client::{sign_request, ApiClient, Audience, Response};
use dualchain_node::api::fhir_routes::upload_tag;
use dualchain_testkit::fhir;
use dualchain_testkit::procs::ProcessCluster as Cluster;
use reqwest::Method;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_dualchain");
const HOSPITAL: usize = 1;
const RESEARCH: usize = 2;
const CPC: usize = 3;

fn bundle(n: usize) -> (Value, Vec<Value>) {
    fhir::ward_bundle("hospital-a", 4, n, 9)
}

fn reason(r: &Response) -> (u16, String) {
    let x = r.refusal();
    (x.status, x.reason)
}

/// The consortium's TLS CA, which every HTTPS client of these tests trusts (set once the
/// cluster is up).
static CA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn trust(c: &Cluster) {
    let _ = CA.set(hex::decode(&c.consortium.tls_ca).unwrap());
}

fn https() -> reqwest::Client {
    https_trusting(CA.get().expect("trust() first"))
}

/// An HTTPS client trusting only `ca_der` (one cluster's CA: tests in one process each
/// have their own).
fn https_trusting(ca_der: &[u8]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_der(ca_der).unwrap();
    reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca).build().unwrap()
}

/// Sends a request with the given authentication headers verbatim.
async fn raw(url: &str, headers: &[(&'static str, String)], body: Vec<u8>) -> Response {
    let mut req = https().post(url).header("content-type", "application/fhir+json").body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    Response { status, content_type: String::new(), body: r.bytes().await.unwrap() }
}

/// Sends, over TLS, only the headers of a POST /fhir announcing `claimed` body bytes and
/// returns the status and text of the answer; fails if no answer comes within 5 s (the node
/// waited for the body).
async fn headers_only(base: &str, headers: &[(&'static str, String)], claimed: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("https://").trim_end_matches('/').to_string();
    let mut req = format!(
        "POST /fhir HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/fhir+json\r\ncontent-length: {claimed}\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(CA.get().expect("trust() first").clone())).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let host = addr.rsplit_once(':').unwrap().0.to_string();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("OperationOutcome") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("reading the answer: {e}"),
            Err(_) => panic!("no answer before the body arrived: the node read the body before checking the headers"),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn bad_input_changes_nothing(c: &Cluster) {
    let (hospital, signer) = c.client(HOSPITAL).unwrap();
    let (research, _) = c.client(RESEARCH).unwrap();
    let base = &c.consortium.validators[HOSPITAL].api;
    trust(c);

    // The API is HTTPS only: plain HTTP to its port gets no answer, and a client that
    // trusts another CA refuses the node's certificate.
    assert!(base.starts_with("https://"), "{base}");
    let plain = base.replacen("https://", "http://", 1);
    assert!(reqwest::Client::new().get(format!("{plain}/health")).send().await.is_err(), "plain HTTP answered");
    let other_ca = dualchain_consensus::tls::TlsCa::generate("another consortium").unwrap().cert_der();
    let stranger =
        ApiClient::new(base, &other_ca, Audience::new(&c.consortium, HOSPITAL as u8), "hospital-a", signer.clone())
            .unwrap();
    assert!(stranger.get_public("/health").await.is_err(), "a client trusting another CA accepted the node");
    let before = c.wait_identical(Duration::from_secs(30)).await.unwrap();
    let (good, _) = bundle(3);
    let good_bytes = serde_json::to_vec(&good).unwrap();

    // Bad JSON, a wrong resource type, an unsupported Bundle type, an unknown patient.
    let r = hospital
        .send(Method::POST, "/fhir", b"{\"resourceType\": \"Bundle\", ".to_vec(), "application/fhir+json")
        .await
        .unwrap();
    assert_eq!(reason(&r), (400, "bad-json".into()));
    assert!(r.content_type.starts_with("application/fhir+json"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome");
    let patient = json!({"resourceType": "Patient", "id": "x", "birthDate": "1980-01-01"});
    let r = hospital
        .send(Method::POST, "/fhir/Observation", patient.to_string().into_bytes(), "application/fhir+json")
        .await
        .unwrap();
    assert_eq!(reason(&r), (400, "wrong-resource-type".into()));
    let r =
        hospital.send(Method::POST, "/fhir", patient.to_string().into_bytes(), "application/fhir+json").await.unwrap();
    assert_eq!(reason(&r), (400, "wrong-resource-type".into()));
    let mut collection = good.clone();
    collection["type"] = json!("collection");
    let r = hospital
        .send(Method::POST, "/fhir", collection.to_string().into_bytes(), "application/fhir+json")
        .await
        .unwrap();
    assert_eq!(reason(&r), (400, "bundle-type".into()));
    let mut stranger = good["entry"][4]["resource"].clone();
    stranger["subject"]["reference"] = json!("Patient/nobody");
    let r = hospital
        .send(Method::POST, "/fhir/Observation", stranger.to_string().into_bytes(), "application/fhir+json")
        .await
        .unwrap();
    assert_eq!(reason(&r), (422, "unmappable".into()));

    // Oversized body (the default limit is 8 MiB).
    let huge = vec![b' '; 9 << 20];
    let r = hospital.send(Method::POST, "/fhir", huge, "application/fhir+json").await.unwrap();
    assert_eq!(reason(&r), (413, "body-too-large".into()));

    // Missing, forged and tampered signatures; an unknown member; a stale time.
    let to = Audience::new(&c.consortium, HOSPITAL as u8);
    let r = raw(&format!("{base}/fhir"), &[], good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "missing-signature".into()));
    let forger = SigningKeypair::generate(&mut rand::thread_rng());
    let h = sign_request("hospital-a", &forger, to, "POST", "/fhir", &good_bytes);
    let r = raw(&format!("{base}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "bad-signature".into()));
    let h = sign_request("hospital-a", &signer, to, "POST", "/fhir", b"{}");
    let r = raw(&format!("{base}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "bad-signature".into()), "a signature over another body");
    let h = sign_request("mallory", &forger, to, "POST", "/fhir", &good_bytes);
    let r = raw(&format!("{base}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "unknown-member".into()));
    // The headers are checked before a body is read: a request announcing 9 MiB and sending
    // none of it is answered at once when its headers do not authenticate.
    let (status, text) = headers_only(base, &h, 9 << 20).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("unknown-member"), "{text}");
    let (status, text) = headers_only(base, &[], 9 << 20).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("missing-signature"), "{text}");
    let mut h = sign_request("hospital-a", &signer, to, "POST", "/fhir", &good_bytes);
    h[2].1 = "1000".into();
    let r = raw(&format!("{base}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "stale".into()));

    // A member calling a node that does not hold its keys; a research institute uploading.
    let (research_at_hospital, _) = {
        let (r, s) = c.client(RESEARCH).unwrap();
        let ca = hex::decode(&c.consortium.tls_ca).unwrap();
        (ApiClient::new(base, &ca, to, &r.member, s.clone()).unwrap(), s)
    };
    let r =
        research_at_hospital.send(Method::POST, "/fhir", good_bytes.clone(), "application/fhir+json").await.unwrap();
    assert_eq!(reason(&r), (403, "not-hosted".into()));
    let r = research.send(Method::POST, "/fhir", good_bytes.clone(), "application/fhir+json").await.unwrap();
    assert_eq!(reason(&r), (403, "wrong-role".into()));
    // A demand on a dataset that does not exist, and one that is not JSON of a demand.
    let r = research
        .send(Method::POST, "/demands", json!({"dataset": "00".repeat(32), "code": "8867-4", "unit": "/min", "since": 0, "until": 1, "threshold": 1}).to_string().into_bytes(), "application/json")
        .await
        .unwrap();
    assert_eq!(reason(&r), (404, "unknown-dataset".into()));
    let r = research
        .send(
            Method::POST,
            "/demands",
            json!({"dataset": "00", "bogus": 1}).to_string().into_bytes(),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(reason(&r), (400, "bad-json".into()));

    // A request signed for the hospital's node, replayed at another node, refused there;
    // its node header changed to match, the signature fails; and one signed for another
    // consortium fails too.
    let elsewhere = &c.consortium.validators[RESEARCH].api;
    let h = sign_request("hospital-a", &signer, to, "POST", "/fhir", &good_bytes);
    let r = raw(&format!("{elsewhere}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "wrong-node".into()));
    let mut moved = h.clone();
    moved[1].1 = RESEARCH.to_string();
    let r = raw(&format!("{elsewhere}/fhir"), &moved, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "bad-signature".into()), "a request moved to another node");
    let other = Audience { consortium: [9; 32], node: HOSPITAL as u8 };
    let h = sign_request("hospital-a", &signer, other, "POST", "/fhir", &good_bytes);
    let r = raw(&format!("{base}/fhir"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (401, "bad-signature".into()), "a request for another consortium");

    // Nothing changed: no block, no staged observation.
    assert_eq!(c.wait_identical(Duration::from_secs(10)).await.unwrap(), before, "refused requests changed a ledger");
    assert!(!c.dir.join("node-1/data/staged.jsonl").exists(), "a refused observation was staged");

    // A genuine request goes through once; its replay is refused and changes nothing.
    let h = sign_request("hospital-a", &signer, to, "POST", "/fhir?dataset=replay-check", &good_bytes);
    let r = raw(&format!("{base}/fhir?dataset=replay-check"), &h, good_bytes.clone()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let after_one = c.wait_identical(Duration::from_secs(30)).await.unwrap();
    assert_ne!(after_one, before);
    let r = raw(&format!("{base}/fhir?dataset=replay-check"), &h, good_bytes.clone()).await;
    assert_eq!(reason(&r), (409, "replayed".into()));
    let r =
        hospital.send(Method::POST, "/fhir?dataset=replay-check", good_bytes, "application/fhir+json").await.unwrap();
    assert_eq!(reason(&r), (409, "dataset-exists".into()), "the same dataset again, freshly signed");
    assert_eq!(c.wait_identical(Duration::from_secs(10)).await.unwrap(), after_one);
}

/// Every line is a comment or `name{labels} value` with a valid name and a number.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "bad labels: {line}");
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        out.push((name.to_string(), v));
    }
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_data_through_the_api_across_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let params = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params");
    // With the anonymous path: the KGC's and the CPC's nodes make the escrow key.
    let hosts = dualchain_testkit::procs::Hosts::Loopback;
    let mut c = Cluster::init_with(std::path::Path::new(BIN), tmp.path(), 4, &params, hosts, &["--anonymous"]).unwrap();
    c.wait_ready(&[0, 1, 2, 3], Duration::from_secs(300)).await.unwrap();

    bad_input_changes_nothing(&c).await;

    // Upload: a Bundle of 4 patients and 12 observations, stored at cpc-1 (node 3).
    let (hospital, _) = c.client(HOSPITAL).unwrap();
    let (research, _) = c.client(RESEARCH).unwrap();
    let (body, observations) = bundle(12);
    // 12 observations: the owner allows demands for cohorts of 3 or more (the default, 10,
    // would leave nothing to ask of so small a dataset).
    let up: Value = hospital.call(Method::POST, "/fhir?dataset=ward-7&min_cohort=3", Some(&body)).await.unwrap();
    assert_eq!(up["type"], "transaction-response");
    assert_eq!(up["entry"].as_array().unwrap().len(), 16);
    let dataset = upload_tag(&up, "dataset").unwrap().to_string();

    // The CPC's node dies (SIGKILL) with the records stored; the flow goes on without it.
    c.kill(CPC).unwrap();
    let spec = json!({
        "dataset": dataset, "code": "8867-4", "unit": "/min", "value_min": 40.0, "value_max": 200.0,
        "since": 0, "until": 4_000_000_000u64, "threshold": 3,
    });
    // One heart-rate value, one record: a question about one patient, refused with the limit.
    let mut narrow = spec.clone();
    (narrow["threshold"], narrow["value_min"], narrow["value_max"]) = (json!(1), json!(58.0), json!(58.0));
    let refused = research.call::<Value>(Method::POST, "/demands", Some(&narrow)).await.unwrap_err();
    assert!(format!("{refused:#}").contains("cohorts of 3 records or more"), "{refused:#}");
    let d: Value = research.call(Method::POST, "/demands", Some(&spec)).await.unwrap();
    let demand = d["demand"].as_str().unwrap().to_string();
    let d: Value = research.call(Method::GET, &format!("/demands/{demand}?wait=90"), None).await.unwrap();
    assert!(!d["supplied_by"].is_null(), "the owner's node proved supply: {d}");
    let a: Value =
        research.call(Method::POST, "/access", Some(&json!({"demand": demand, "duration_s": 3600}))).await.unwrap();
    assert_eq!(a["granted"], true, "{a}");
    let grant = a["request"].as_str().unwrap().to_string();
    let r = research.send(Method::GET, &format!("/grants/{grant}/records"), vec![], "").await.unwrap();
    assert_eq!(reason(&r), (409, "not-ready".into()), "nothing is re-encrypted while the CPC is down");

    // Restarted, the CPC's node catches up and serves the re-key it missed.
    c.spawn(CPC).unwrap();
    let fetched: Value = research.call(Method::GET, &format!("/grants/{grant}/records?wait=120"), None).await.unwrap();
    assert_eq!(fetched["type"], "searchset");
    let entries = fetched["entry"].as_array().unwrap();
    let got = fhir::matches(&fetched);
    // The delivery's Provenance comes after the records: the grant, its dataset, the
    // custodian and the CPC, each Observation a target.
    let provenance = &entries.last().unwrap()["resource"];
    assert_eq!(provenance["resourceType"], "Provenance");
    assert_eq!(provenance["policy"][0], format!("urn:dualchain:grant:{grant}"));
    assert_eq!(provenance["target"].as_array().map(Vec::len), Some(got.len()));
    assert_eq!(provenance["agent"][1]["who"]["identifier"]["value"], "cpc-1");
    // The demand asks for heart rates in 40..200 bpm at any time: those are delivered,
    // without their patient references, under pseudonyms of this grant.
    let want = fhir::with_code(&observations, "8867-4");
    assert_eq!(got.len(), 4, "4 heart rates among the 12 observations");
    if let Err(e) = dualchain_testkit::fhir::delivered_as(&got, &want, &grant) {
        panic!("the requester decrypts exactly the uploaded heart rates: {e}");
    }
    // The same records through FHIR search, a page at a time (the next link's path and
    // query signed like any request).
    let page: Value =
        research.call(Method::GET, &format!("/fhir/Observation?_grant={grant}&_count=3"), None).await.unwrap();
    assert_eq!((page["total"].as_u64(), page["entry"].as_array().unwrap().len()), (Some(4), 3), "{page}");
    let next =
        page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap();
    let rest: Value = research.call(Method::GET, &next[next.find("/fhir/").unwrap()..], None).await.unwrap();
    let paged: Vec<Value> = page["entry"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["entry"].as_array().unwrap())
        .map(|e| e["resource"].clone())
        .collect();
    assert_eq!(paged, got, "the pages hold the grant's records, in order");

    // Identical ledgers on all four processes.
    let fp = c.wait_identical(Duration::from_secs(60)).await.unwrap();
    assert!(fp["access_tip"]["height"].as_u64().unwrap() >= 2, "{fp}");

    // The audit trail, checked against the KGC's node's blocks.
    let (kgc, _) = c.client(0).unwrap();
    let audit: Value = kgc.call(Method::GET, &format!("/audit/{dataset}"), None).await.unwrap();
    // The receipt, then one record per fetch the CPC served: the records fetch and the two
    // search pages, each written on chain before the CPC served it.
    let records = audit["records"].as_array().unwrap();
    let events: Vec<&str> = records.iter().map(|r| r["access"]["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["reencrypted", "fetched", "fetched", "fetched"], "{audit}");
    assert!(records.iter().all(|r| r["proof_verified"] == true && r["access"]["requester"] == "research-1"));

    // Metrics: Prometheus text with every component's series.
    let m = c.client(CPC).unwrap().0.get_public("/metrics").await.unwrap();
    let cpc_series = parse_prometheus(std::str::from_utf8(&m.body).unwrap());
    let m = c.client(HOSPITAL).unwrap().0.get_public("/metrics").await.unwrap();
    let hospital_series = parse_prometheus(std::str::from_utf8(&m.body).unwrap());
    let value = |s: &[(String, f64)], name: &str| s.iter().filter(|(n, _)| n == name).map(|(_, v)| v).sum::<f64>();
    let has = |s: &[(String, f64)], prefix: &str| s.iter().any(|(n, _)| n.starts_with(prefix));
    for prefix in [
        "dualchain_consensus_",
        "dualchain_ledger_",
        "dualchain_storage_",
        "dualchain_api_",
        "dualchain_kernels_",
        "dualchain_cpc_",
        "dualchain_prover_",
    ] {
        assert!(has(&cpc_series, prefix), "no {prefix} series");
    }
    // The 4 heart rates the grant delivers, of 12 records.
    assert_eq!(value(&cpc_series, "dualchain_cpc_reencrypted_records_total"), 4.0);
    assert!(value(&hospital_series, "dualchain_prover_proofs_total") >= 1.0);
    assert!(value(&hospital_series, "dualchain_consensus_committed_requests_total") > 0.0);
    assert!(value(&hospital_series, "dualchain_api_refusals_total") >= 10.0, "refusals are counted by reason");
    assert!(value(&hospital_series, "dualchain_storage_writes") > 0.0);
    // The compute backend: the GPU gauge agrees with /health, and the per-kernel GPU
    // series exist (at zero on a machine without a GPU, where proving ran on the CPU).
    let health = c.client(HOSPITAL).unwrap().0.get_public("/health").await.unwrap();
    let health: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    let compute = health["compute"].as_str().unwrap();
    let gpu = value(&hospital_series, "dualchain_kernels_gpu_available");
    assert_eq!(gpu == 1.0, compute.starts_with("cuda on "), "{compute}");
    if gpu == 0.0 {
        assert!(compute.starts_with("cpu ("), "the CPU fallback gives its reason: {compute}");
        assert_eq!(value(&hospital_series, "dualchain_kernels_gpu_jobs"), 0.0);
    }
    assert!(hospital_series.iter().any(|(n, _)| n == "dualchain_kernels_gpu_fallbacks"));

    let named_grant = grant.clone();
    // The same question without being named: research-1's node demands as a one-time key
    // (once the KGC's and the CPC's nodes have made the escrow key); the ledger's grant
    // names the pseudonym; the same 4 records arrive, each under a patient pseudonym of
    // this grant (signcrypted to the demand's one-time key), none the named grant's.
    let mut anonymous = spec.clone();
    anonymous["anonymous"] = json!(true);
    let mut tries = 0;
    let d: Value = loop {
        match research.call::<Value>(Method::POST, "/demands", Some(&anonymous)).await {
            Ok(d) => break d,
            Err(e) if tries < 120 && format!("{e:#}").contains("not open") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("an anonymous demand: {e:#}"),
        }
    };
    let (demand, pseudonym) = (d["demand"].as_str().unwrap().to_string(), d["pseudonym"].as_str().unwrap().to_string());
    assert!(pseudonym.starts_with("anon:"), "{d}");
    let d: Value = research.call(Method::GET, &format!("/demands/{demand}?wait=90"), None).await.unwrap();
    assert_eq!((d["requester"].as_str(), d["supplied_by"].is_null()), (Some(pseudonym.as_str()), false), "{d}");
    let a: Value =
        research.call(Method::POST, "/access", Some(&json!({"demand": demand, "duration_s": 3600}))).await.unwrap();
    assert_eq!(a["granted"], true, "{a}");
    let grant = a["request"].as_str().unwrap().to_string();
    let g: Value = research.call(Method::GET, &format!("/grants/{grant}"), None).await.unwrap();
    assert_eq!(g["requester"].as_str(), Some(pseudonym.as_str()));
    let fetched: Value = research.call(Method::GET, &format!("/grants/{grant}/records?wait=120"), None).await.unwrap();
    let anonymous_got = fhir::matches(&fetched);
    assert_eq!(anonymous_got.len(), 4);
    let pseudonyms = |records: &[Value], grant: &str| -> Vec<String> {
        let system = format!("urn:dualchain:grant:{grant}");
        records
            .iter()
            .map(|o| {
                assert_eq!(o["subject"]["identifier"]["system"], system.as_str(), "{o}");
                o["subject"]["identifier"]["value"].as_str().unwrap().to_string()
            })
            .collect()
    };
    if let Err(e) = dualchain_testkit::fhir::delivered_as(&anonymous_got, &want, &grant) {
        panic!("the anonymous requester decrypts exactly the uploaded heart rates: {e}");
    }
    let named = pseudonyms(&got, &named_grant);
    assert!(pseudonyms(&anonymous_got, &grant).iter().all(|p| !named.contains(p)), "two grants share a pseudonym");

    // Staged Observations are plaintext FHIR: the file is the node user's alone, inside a
    // data directory closed to group and others.
    let (ward, _) = bundle(1);
    let entries = ward["entry"].as_array().unwrap();
    let resource = |t: &str| entries.iter().map(|e| e["resource"].clone()).find(|r| r["resourceType"] == t).unwrap();
    let (patient, mut obs) = (resource("Patient"), resource("Observation"));
    obs["subject"]["reference"] = json!(format!("Patient/{}", patient["id"].as_str().unwrap()));
    let r = hospital.send(Method::POST, "/fhir/Patient", patient.to_string().into_bytes(), "application/fhir+json");
    assert_eq!(r.await.unwrap().status, 201);
    let r = hospital.send(Method::POST, "/fhir/Observation", obs.to_string().into_bytes(), "application/fhir+json");
    let r = r.await.unwrap();
    assert!((200..300).contains(&r.status), "{}", String::from_utf8_lossy(&r.body));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &str| std::fs::metadata(c.dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("node-1/data/staged.jsonl"), 0o600, "staged plaintext readable by others");
        assert_eq!(mode("node-1/data/patients.json"), 0o600);
        assert_eq!(mode("node-1/data"), 0o700);
    }

    // SIGTERM: every node stops cleanly.
    for i in 0..4 {
        c.terminate(i).unwrap();
    }
}

async fn upload(c: &Cluster, dataset: &str) -> anyhow::Result<Value> {
    let (hospital, _) = c.client(HOSPITAL)?;
    let (body, _) = bundle(3);
    hospital.call(Method::POST, &format!("/fhir?dataset={dataset}&min_cohort=1"), Some(&body)).await
}

/// A crashed primary locks no member out, and a node with no quorum still stops on SIGTERM.
/// The member's node relays its request to every validator, so the others suspect the dead
/// primary and change view without it; the restarted primary rejoins; with two of four nodes
/// down, SIGTERM stops a node whose member is waiting for a commit, within the bound the
/// node promises (`API_DRAIN + STOP_MAX + BLOCKING_DRAIN`); restarted, the consortium goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_primary_locks_no_member_out() {
    let tmp = tempfile::tempdir().unwrap();
    let params = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params");
    let mut c = Cluster::init(std::path::Path::new(BIN), tmp.path(), 4, &params).unwrap();
    c.wait_ready(&[0, 1, 2, 3], Duration::from_secs(300)).await.unwrap();
    let mut view = c.health(HOSPITAL).await.unwrap()["view"].as_u64().unwrap();
    if (view % 4) as usize == HOSPITAL {
        // A view change while the nodes started (a loaded machine) made the member's own
        // node the primary. Move the view on without it: another member's request, relayed
        // to every validator, makes the others change view; then it comes back.
        let up = upload(&c, "before").await.unwrap();
        let dataset = upload_tag(&up, "dataset").unwrap().to_string();
        c.kill(HOSPITAL).unwrap();
        let spec = json!({
            "dataset": dataset, "code": "8867-4", "unit": "/min", "value_min": 40.0, "value_max": 200.0,
            "since": 0, "until": 4_000_000_000u64, "threshold": 1,
        });
        let (research, _) = c.client(RESEARCH).unwrap();
        let _: Value = research.call(Method::POST, "/demands", Some(&spec)).await.unwrap();
        c.spawn(HOSPITAL).unwrap();
        c.wait_ready(&[HOSPITAL], Duration::from_secs(120)).await.unwrap();
        view = c.health(RESEARCH).await.unwrap()["view"].as_u64().unwrap();
    }
    let primary = (view % 4) as usize;
    assert_ne!(primary, HOSPITAL, "the test kills the primary, not the member's own node");

    // The primary dies; the hospital's upload through its own node still commits.
    c.kill(primary).unwrap();
    let up = upload(&c, "while-primary-down").await.unwrap_or_else(|e| panic!("{e:#}; log:\n{}", c.log(HOSPITAL)));
    assert_eq!(up["type"], "transaction-response");
    let later = c.health(HOSPITAL).await.unwrap()["view"].as_u64().unwrap();
    assert!(later > view, "the consortium changed view without its primary");

    // The old primary restarts, catches up and follows the new view; uploads go on.
    c.spawn(primary).unwrap();
    c.wait_ready(&[primary], Duration::from_secs(120)).await.unwrap();
    upload(&c, "after-restart").await.unwrap();
    let fp = c.wait_identical(Duration::from_secs(60)).await.unwrap();

    // Two of four down: no quorum. A request waits for a commit that cannot come, and the
    // hospital's node still stops on SIGTERM, in bounded time and with exit status 0.
    let other = (0..4).find(|&i| i != primary && i != HOSPITAL && i != CPC).unwrap();
    c.kill(primary).unwrap();
    c.kill(other).unwrap();
    let waiting = {
        let (hospital, _) = c.client(HOSPITAL).unwrap();
        let (body, _) = bundle(3);
        tokio::spawn(async move { hospital.call::<Value>(Method::POST, "/fhir?dataset=no-quorum", Some(&body)).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bound = dualchain_node::service::API_DRAIN
        + dualchain_node::service::STOP_MAX
        + dualchain_node::service::BLOCKING_DRAIN
        + Duration::from_secs(5);
    let took = c.terminate_within(HOSPITAL, bound).unwrap();
    assert!(waiting.await.unwrap().is_err(), "nothing commits without a quorum");
    eprintln!("SIGTERM with no quorum and a request waiting: stopped in {took:?}");

    // Everyone back: the consortium has a quorum again and the hospital uploads.
    for i in [primary, other, HOSPITAL] {
        c.spawn(i).unwrap();
    }
    c.wait_ready(&[0, 1, 2, 3], Duration::from_secs(120)).await.unwrap();
    upload(&c, "after-the-outage").await.unwrap();
    let end = c.wait_identical(Duration::from_secs(60)).await.unwrap();
    assert!(end["applied_seq"].as_u64() > fp["applied_seq"].as_u64(), "{fp} → {end}");
    for i in 0..4 {
        c.terminate(i).unwrap();
    }
}

/// Runs a command to success; its standard output.
fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{cmd:?}: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// A hospital's FHIR applications, written against FHIR and SMART alone, work with a node
/// unchanged: SMART on FHIR's stock Python client (an ES384 assertion signed with PyJWT)
/// and plain curl with openssl (RS384) each go metadata → token → transaction → search,
/// the stock client paging through the results; every FHIR answer validates as R4. A
/// token does no more than its scopes, nowhere but the FHIR endpoints, and nothing once
/// its client is removed; an assertion is taken once; tokens and their use are logged and
/// counted per client. A grantee searches its grant's records (`_grant`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_clients_work_through_smart_backend_services() {
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let params = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params");
    let mut c = Cluster::init(std::path::Path::new(BIN), tmp.path(), 4, &params).unwrap();
    c.wait_ready(&[0, 1, 2, 3], Duration::from_secs(300)).await.unwrap();
    let ca_der = hex::decode(&c.consortium.tls_ca).unwrap();
    let https = || https_trusting(&ca_der);
    let dir = tmp.path().join("smart");
    std::fs::create_dir_all(&dir).unwrap();
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let ca = dir.join("ca.der");
    std::fs::write(&ca, &ca_der).unwrap();
    let base = format!("{}/fhir", c.consortium.validators[HOSPITAL].api.trim_end_matches('/'));
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("client").arg("--config").arg(c.config(HOSPITAL)).args(args);
        run_ok(&mut cmd)
    };
    let py = scripts.join("fhir-smart-client.py");
    let write_scope = "system/Observation.write system/Observation.read system/Patient.write";

    // The stock client's key pair, made on its side; the hospital registers the public half.
    let (py_key, py_jwks) = (dir.join("py.pem"), dir.join("py.jwks"));
    run_ok(
        Command::new("python3")
            .arg(&py)
            .args(["keygen", "--alg", "ES384", "--kid", "k1", "--key"])
            .arg(&py_key)
            .arg("--jwks")
            .arg(&py_jwks),
    );
    cli(&["smart-add", "engine-py", "--jwks", py_jwks.to_str().unwrap(), "--scope", write_scope]);

    // A ward's transaction, and two single heart rates of its first patient (staged).
    let (bundle, _) = fhir::ward_bundle("hospital-a", 3, 6, 21);
    std::fs::write(dir.join("bundle.json"), bundle.to_string()).unwrap();
    let patient = format!("Patient/{}", bundle["entry"][0]["resource"]["id"].as_str().unwrap());
    let (_, more) = fhir::ward_bundle("hospital-a", 3, 40, 22);
    let mut singles = Vec::new();
    for (i, mut o) in fhir::with_code(&more, "8867-4").into_iter().take(2).enumerate() {
        o["id"] = json!(format!("hr-{i}"));
        o["subject"]["reference"] = json!(patient);
        let path = dir.join(format!("hr-{i}.json"));
        std::fs::write(&path, o.to_string()).unwrap();
        singles.push(path);
    }
    let py_out = dir.join("py-out");
    let mut flow = Command::new("python3");
    flow.arg(&py).args(["flow", "--base", &base, "--ca"]).arg(&ca);
    flow.args(["--client-id", "engine-py", "--key"])
        .arg(&py_key)
        .args(["--kid", "k1", "--bundle"])
        .arg(dir.join("bundle.json"));
    for s in &singles {
        flow.arg("--observation").arg(s);
    }
    flow.args([
        "--search",
        "code=http://loinc.org|8867-4&_count=1",
        "--search",
        &format!("subject={patient}&date=ge2000"),
    ]);
    flow.arg("--out").arg(&py_out);
    let report: Value = serde_json::from_str(&run_ok(&mut flow)).unwrap();
    assert_eq!(report["granted"], write_scope, "{report}");
    assert_eq!(report["token_type"], "bearer");
    let tx = &report["transaction"];
    assert_eq!((tx["status"].as_u64(), tx["body"]["type"].as_str()), (Some(200), Some("transaction-response")), "{tx}");
    assert!(upload_tag(&tx["body"], "dataset").is_some(), "the transaction made a dataset: {tx}");
    for (i, o) in report["observations"].as_array().unwrap().iter().enumerate() {
        assert_eq!(o["status"], 201, "{o}");
        assert_eq!(o["location"], format!("Observation/hr-{i}"), "{o}");
    }
    // Both staged heart rates, one per page (the stock client followed `next`), and both
    // again by subject and date.
    let searches = report["searches"].as_array().unwrap();
    assert_eq!((searches[0]["pages"].as_u64(), searches[0]["total"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(searches[0]["found"], json!(["hr-0", "hr-1"]));
    assert_eq!(searches[1]["found"], json!(["hr-0", "hr-1"]), "{report}");

    // The integration engine: curl and openssl, an RS384 key.
    let (rsa_key, rsa_jwks) = (dir.join("curl.pem"), dir.join("curl.jwks"));
    run_ok(Command::new("openssl").args(["genrsa", "-out"]).arg(&rsa_key).arg("3072"));
    let curl = scripts.join("fhir-smart-curl.sh");
    std::fs::write(&rsa_jwks, run_ok(Command::new(&curl).arg("jwks").arg(&rsa_key).arg("r1"))).unwrap();
    cli(&["smart-add", "engine-curl", "--jwks", rsa_jwks.to_str().unwrap(), "--scope", write_scope]);
    let (bundle2, _) = fhir::ward_bundle("hospital-a", 2, 4, 23);
    std::fs::write(dir.join("bundle2.json"), bundle2.to_string()).unwrap();
    let curl_out = dir.join("curl-out");
    run_ok(
        Command::new(&curl)
            .args(["flow", &base])
            .arg(&ca)
            .arg("engine-curl")
            .arg(&rsa_key)
            .arg("r1")
            .arg(dir.join("bundle2.json"))
            .arg("code=8867-4&_count=10")
            .arg(&curl_out),
    );
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    assert_eq!(read(curl_out.join("transaction-response.json"))["type"], "transaction-response");
    let found = read(curl_out.join("search.json"));
    assert_eq!((found["type"].as_str(), found["total"].as_u64()), (Some("searchset"), Some(2)), "{found}");
    assert!(!std::fs::read_to_string(curl_out.join("token.json")).unwrap().contains("access_token"));

    // Every FHIR answer validates as R4.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&py_out).unwrap().map(|e| e.unwrap().path()).collect();
    files.extend([curl_out.join("transaction-response.json"), curl_out.join("search.json")]);
    let mut validate = Command::new("python3");
    validate.arg(scripts.join("fhir-validate.py")).args(&files);
    run_ok(&mut validate);

    // What a token may not do. A read-only client (the same key under another id).
    cli(&["smart-add", "reader", "--jwks", py_jwks.to_str().unwrap(), "--scope", "system/Observation.read"]);
    let token_url = format!("{}/smart/token", c.consortium.validators[HOSPITAL].api.trim_end_matches('/'));
    let assertion = run_ok(
        Command::new("python3")
            .arg(&py)
            .args(["assertion", "--client-id", "reader", "--key"])
            .arg(&py_key)
            .args(["--kid", "k1", "--aud", &token_url]),
    );
    let ask = |scope: &'static str, a: String| {
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("scope", scope.to_string()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string()),
            ("client_assertion", a.trim().to_string()),
        ];
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        https().post(&token_url).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    let r = ask("system/Observation.read system/Observation.write", assertion.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "system/Observation.read", "write is not the reader's: {t}");
    let token = t["access_token"].as_str().unwrap().to_string();
    let r = ask("system/Observation.read", assertion).await.unwrap();
    let replay: Value = r.json().await.unwrap();
    assert_eq!(replay["error"], "invalid_client", "an assertion is taken once: {replay}");
    let bearer = |method: reqwest::Method, path: &str, token: &str| {
        https()
            .request(method, format!("{}{path}", c.consortium.validators[HOSPITAL].api.trim_end_matches('/')))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/fhir+json")
            .body(std::fs::read(&singles[0]).unwrap())
            .send()
    };
    let refusal = |v: &Value| v["issue"][0]["details"]["coding"][0]["code"].as_str().unwrap_or_default().to_string();
    let r = bearer(Method::POST, "/fhir/Observation", &token).await.unwrap();
    assert_eq!((r.status().as_u16(), refusal(&r.json().await.unwrap())), (403, "insufficient-scope".into()));
    let r = bearer(Method::GET, "/fhir/Observation?code=8867-4", &token).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = bearer(Method::GET, &format!("/grants/{}/records", "0".repeat(64)), &token).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), refusal(&r.json().await.unwrap())),
        (401, "missing-signature".into()),
        "FHIR only"
    );
    let r = bearer(Method::GET, "/fhir/Observation", &"ab".repeat(32)).await.unwrap();
    assert_eq!((r.status().as_u16(), refusal(&r.json().await.unwrap())), (401, "bad-token".into()));
    // A write-only token searches nothing.
    cli(&["smart-add", "writer", "--jwks", py_jwks.to_str().unwrap(), "--scope", "system/Observation.c"]);
    let writer = run_ok(
        Command::new("python3")
            .arg(&py)
            .args(["assertion", "--client-id", "writer", "--key"])
            .arg(&py_key)
            .args(["--kid", "k1", "--aud", &token_url]),
    );
    let w: Value = ask("system/Observation.c system/Observation.s", writer).await.unwrap().json().await.unwrap();
    assert_eq!(w["scope"], "system/Observation.c", "{w}");
    let r = bearer(Method::GET, "/fhir/Observation", w["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!((r.status().as_u16(), refusal(&r.json().await.unwrap())), (403, "insufficient-scope".into()));
    let listed = cli(&["--json", "smart-list"]);
    assert!(listed.contains("engine-py") && listed.contains("engine-curl") && listed.contains("reader"), "{listed}");
    cli(&["smart-remove", "reader"]);
    let r = bearer(Method::GET, "/fhir/Observation", &token).await.unwrap();
    assert_eq!(r.status(), 401, "a removed client's token ends at once");

    // Logged and counted, per client.
    let log = c.log(HOSPITAL);
    for said in ["token issued", "bearer request", "engine-py", "engine-curl"] {
        assert!(log.contains(said), "the node's log does not say {said:?}");
    }
    let m = c.client(HOSPITAL).unwrap().0.get_public("/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(text.contains("dualchain_api_smart_tokens_total{client=\"engine-curl\"} 1"), "{text}");
    let requests = parse_prometheus(&text)
        .iter()
        .filter(|(n, _)| n == "dualchain_api_smart_requests_total")
        .map(|x| x.1)
        .sum::<f64>();
    assert!(requests >= 8.0, "{requests} bearer requests counted");
    for i in 0..4 {
        c.terminate(i).unwrap();
    }
}
