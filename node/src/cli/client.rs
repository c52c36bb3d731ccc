//! `dualchain client`: each API call as a member, signed with the member's key from a node's
//! configuration (or `--url` and `--member-key`).

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::client::{ApiClient, Audience};
use crate::config::{ConsortiumFile, NodeConfig};
use crate::member::MemberFile;

#[derive(Args)]
pub struct ClientArgs {
    /// A node's configuration: its API address and its member's keys.
    #[arg(long, conflicts_with_all = ["url", "member_key"])]
    config: Option<PathBuf>,
    /// The node's API base URL (with --member-key and --consortium); by default the
    /// address consortium.toml gives node --node.
    #[arg(long, requires_all = ["member_key", "consortium"])]
    url: Option<String>,
    /// The member's key file (secrets/member.json).
    #[arg(long)]
    member_key: Option<PathBuf>,
    /// The consortium's consortium.toml (with --url): requests are signed for one node of
    /// one consortium.
    #[arg(long, conflicts_with = "config")]
    consortium: Option<PathBuf>,
    /// Which node of the consortium --url is (default: the one whose API address it is).
    #[arg(long, conflicts_with = "config")]
    node: Option<u8>,
    /// Print the node's JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    call: Call,
}

#[derive(Subcommand)]
enum Call {
    /// The node's health.
    Health,
    /// The node's Prometheus metrics.
    Metrics,
    /// Upload a FHIR resource from a file: a Bundle (one dataset), an Observation (staged)
    /// or a Patient.
    Upload {
        file: PathBuf,
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        cpc: Option<String>,
    },
    /// Seal the staged Observations into a dataset.
    Seal {
        #[arg(long)]
        dataset: Option<String>,
    },
    /// A dataset's registration.
    Dataset { id: String },
    /// Publish a demand on a dataset.
    Demand {
        #[arg(long)]
        dataset: String,
        /// LOINC code.
        #[arg(long, default_value = "8867-4")]
        code: String,
        /// UCUM unit.
        #[arg(long, default_value = "/min")]
        unit: String,
        #[arg(long)]
        min: Option<f64>,
        #[arg(long)]
        max: Option<f64>,
        /// Window start, seconds before now.
        #[arg(long, default_value_t = 86_400)]
        since_s: u64,
        #[arg(long)]
        threshold: u16,
    },
    /// A demand (and whether supply was proved).
    DemandStatus {
        id: String,
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Prove the access policy and request a grant for a demand.
    Request {
        #[arg(long)]
        demand: String,
        #[arg(long, default_value_t = 3600)]
        duration: u64,
    },
    /// A grant.
    Grant {
        id: String,
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Fetch and decrypt a grant's records (a FHIR searchset Bundle).
    Fetch {
        grant: String,
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Write the Bundle here instead of summarising it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A dataset's access records with checked inclusion proofs.
    Audit { dataset: String },
    /// Revoke a grant.
    Revoke {
        grant: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve revoking a member (this member's own id to leave). The member is revoked
    /// once the consortium's membership quorum of members approved.
    RevokeMember {
        member: String,
        #[arg(long)]
        reason: String,
    },
    /// A member not named at genesis: its pending admission, with the certificate it is for
    /// (check it before approving).
    Admission {
        #[arg(long)]
        member: String,
    },
    /// Approve admitting a member not named at genesis, with the certificate whose SHA-256
    /// the coordinator's `dualchain issue` printed. The member is registered once the
    /// consortium's membership quorum of members approved that certificate.
    AdmitMember {
        #[arg(long)]
        member: String,
        #[arg(long)]
        certificate_sha256: String,
    },
    /// The consortium parameters in effect.
    Parameters,
    /// Approve changing the consortium parameters to these (each member its own approval;
    /// they take effect at the membership quorum in effect).
    ChangeParameters {
        #[arg(long)]
        grant_duration_max_s: u64,
        #[arg(long)]
        membership_quorum: u32,
    },
    /// Erase one of this hospital's datasets: a tombstone on chain, the CPC deletes its
    /// records and every grant's results, the node destroys its key.
    Erase {
        dataset: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Erase a patient's records wherever this hospital holds them (GDPR art. 17): each
    /// dataset holding them is re-registered without them under a new key, and erased.
    ErasePatient {
        /// The patient as this hospital references it (`Patient/...`).
        patient: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Register a FHIR client for SMART Backend Services at this member's node (again, to
    /// rotate its keys or change its scopes).
    SmartAdd {
        /// The client's id: the `iss` and `sub` of its assertions.
        client_id: String,
        /// Its public keys: a JWK Set (`{"keys": [...]}`) or one JWK, each with a `kid`
        /// (RS384: RSA of 2048 bits or more; ES384: P-384).
        #[arg(long)]
        jwks: PathBuf,
        /// The scopes it may be granted, space-separated (e.g. "system/Observation.write
        /// system/Observation.read").
        #[arg(long)]
        scope: String,
    },
    /// The FHIR clients registered at this member's node.
    SmartList,
    /// A one-time sign-in link to this hospital's privacy officer's console (valid two
    /// minutes): whoever holds the member's key signs the officer in.
    ConsoleSignin,
    /// Break the glass: ask another hospital for emergency access (purpose ETREAT) to the
    /// records of named patients, with a justification; recorded on chain before any data
    /// flows, limited in time, and reviewed by the owner afterwards.
    BreakGlass {
        /// The hospital that holds the records.
        #[arg(long)]
        owner: String,
        /// A patient as the owner references it (`Patient/...`); repeat for more.
        #[arg(long = "patient", required = true)]
        patients: Vec<String>,
        #[arg(long)]
        justification: String,
        /// How long the access lasts, in seconds (at most 12 hours).
        #[arg(long, default_value_t = 4 * 3600)]
        duration: u64,
    },
    /// A break-glass request (with --wait, until its grants are made).
    BreakGlassStatus {
        id: String,
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// This hospital's break-glass review queue (with what was asked and why).
    BreakGlassQueue {
        /// Only the requests not reviewed yet.
        #[arg(long)]
        pending: bool,
    },
    /// Review a break-glass request made to this hospital.
    BreakGlassReview {
        id: String,
        /// The use was justified (omit: unjustified, and its grants end).
        #[arg(long)]
        justified: bool,
        #[arg(long)]
        note: String,
        /// Unjustified only: ask the KGC to withdraw the clinician's credential.
        #[arg(long, conflicts_with = "justified")]
        revoke_credential: bool,
    },
    /// Remove a FHIR client; its tokens end at once.
    SmartRemove { client_id: String },
}

fn api_client(args: &ClientArgs) -> Result<ApiClient> {
    let (url, key_path, consortium, node) = match (&args.config, &args.url, &args.member_key, &args.consortium) {
        (Some(c), _, _, _) => {
            let cfg = NodeConfig::load(c)?;
            let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
            let url = cfg.own_validator(&consortium)?.api.clone();
            let key = cfg.secrets.member.as_ref().ok_or_else(|| anyhow!("this node hosts no member"))?;
            (url, cfg.path(key), consortium, cfg.node)
        }
        (None, Some(u), Some(k), Some(c)) => {
            let consortium = ConsortiumFile::load(c)?;
            let node = match args.node {
                Some(n) => n,
                None => consortium
                    .validators
                    .iter()
                    .find(|v| v.api.trim_end_matches('/') == u.trim_end_matches('/'))
                    .map(|v| v.id)
                    .ok_or_else(|| anyhow!("{u} is no node's API address in {}: give --node", c.display()))?,
            };
            (u.clone(), k.clone(), consortium, node)
        }
        _ => bail!("give --config NODE_TOML, or --url, --member-key and --consortium"),
    };
    let file: MemberFile =
        serde_json::from_slice(&std::fs::read(&key_path).with_context(|| format!("{}", key_path.display()))?)?;
    let member = file.member()?;
    let ca = hex::decode(&consortium.tls_ca).context("consortium.toml's tls_ca")?;
    ApiClient::new(&url, &ca, Audience::new(&consortium, node), &member.id, member.signer)
}

/// Runs one call and prints the answer (a summary, or the JSON with `--json`).
pub async fn run(args: ClientArgs) -> Result<()> {
    let c = api_client(&args)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let q = |params: &[(&str, Option<String>)]| -> String {
        let parts: Vec<String> = params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let v: Value = match &args.call {
        Call::Health => c.get_public("/health").await?.json()?,
        Call::Metrics => {
            let r = c.get_public("/metrics").await?;
            print!("{}", String::from_utf8_lossy(&r.body));
            return Ok(());
        }
        Call::Upload { file, dataset, cpc } => {
            let body: Value = serde_json::from_slice(&std::fs::read(file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let path = match body["resourceType"].as_str() {
                Some("Bundle") => format!("/fhir{}", q(&[("dataset", dataset.clone()), ("cpc", cpc.clone())])),
                Some("Observation") => "/fhir/Observation".into(),
                Some("Patient") => "/fhir/Patient".into(),
                other => bail!("{} holds a {other:?}; upload a Bundle, Observation or Patient", file.display()),
            };
            c.call(Method::POST, &path, Some(&body)).await?
        }
        Call::Seal { dataset } => {
            c.call(Method::POST, &format!("/datasets/seal{}", q(&[("dataset", dataset.clone())])), None).await?
        }
        Call::Dataset { id } => c.call(Method::GET, &format!("/datasets/{id}"), None).await?,
        Call::Demand { dataset, code, unit, min, max, since_s, threshold } => {
            let spec = json!({
                "dataset": dataset, "code": code, "unit": unit, "value_min": min, "value_max": max,
                "since": now.saturating_sub(*since_s), "until": now + 3600, "threshold": threshold,
            });
            c.call(Method::POST, "/demands", Some(&spec)).await?
        }
        Call::DemandStatus { id, wait } => c.call(Method::GET, &format!("/demands/{id}?wait={wait}"), None).await?,
        Call::Request { demand, duration } => {
            c.call(Method::POST, "/access", Some(&json!({"demand": demand, "duration_s": duration}))).await?
        }
        Call::Grant { id, wait } => c.call(Method::GET, &format!("/grants/{id}?wait={wait}"), None).await?,
        Call::Fetch { grant, wait, out } => {
            let v: Value = c.call(Method::GET, &format!("/grants/{grant}/records?wait={wait}"), None).await?;
            if let Some(out) = out {
                std::fs::write(out, serde_json::to_vec_pretty(&v)?)?;
                println!("{} records written to {}", v["total"], out.display());
                return Ok(());
            }
            v
        }
        Call::Audit { dataset } => c.call(Method::GET, &format!("/audit/{dataset}"), None).await?,
        Call::Revoke { grant, reason } => {
            c.call(Method::POST, &format!("/grants/{grant}/revoke"), Some(&json!({"reason": reason}))).await?
        }
        Call::RevokeMember { member, reason } => {
            c.call(Method::POST, &format!("/members/{member}/revoke"), Some(&json!({"reason": reason}))).await?
        }
        Call::Admission { member } => c.call(Method::GET, &format!("/members/{member}/admission"), None).await?,
        Call::AdmitMember { member, certificate_sha256 } => {
            let body = json!({"certificate_sha256": certificate_sha256});
            c.call(Method::POST, &format!("/members/{member}/admit"), Some(&body)).await?
        }
        Call::Parameters => c.call(Method::GET, "/consortium/parameters", None).await?,
        Call::ChangeParameters { grant_duration_max_s, membership_quorum } => {
            let body = json!({"grant_duration_max_s": grant_duration_max_s, "membership_quorum": membership_quorum});
            c.call(Method::POST, "/consortium/parameters", Some(&body)).await?
        }
        Call::Erase { dataset, reason } => {
            c.call(Method::POST, &format!("/datasets/{dataset}/erase"), Some(&json!({"reason": reason}))).await?
        }
        Call::ErasePatient { patient, reason } => {
            c.call(Method::POST, "/erasure", Some(&json!({"patient": patient, "reason": reason}))).await?
        }
        Call::SmartAdd { client_id, jwks, scope } => {
            let keys: Value = serde_json::from_slice(&std::fs::read(jwks)?)
                .with_context(|| format!("{} is not JSON", jwks.display()))?;
            // One JWK, or a set of them.
            let jwks = if keys.get("keys").is_some() { keys } else { json!({"keys": [keys]}) };
            let body = json!({"client_id": client_id, "scope": scope, "jwks": jwks});
            c.call(Method::POST, "/smart/clients", Some(&body)).await?
        }
        Call::SmartList => c.call(Method::GET, "/smart/clients", None).await?,
        Call::ConsoleSignin => {
            let v: Value = c.call(Method::POST, "/console/signin-code", None).await?;
            if !args.json {
                println!("open within {} s, once: {}", v["expires_s"], v["url"].as_str().unwrap_or_default());
                return Ok(());
            }
            v
        }
        Call::BreakGlass { owner, patients, justification, duration } => {
            let body = json!({"owner": owner, "patients": patients, "justification": justification,
                "duration_s": duration});
            c.call(Method::POST, "/break-glass", Some(&body)).await?
        }
        Call::BreakGlassStatus { id, wait } => {
            c.call(Method::GET, &format!("/break-glass/{id}?wait={wait}"), None).await?
        }
        Call::BreakGlassQueue { pending } => {
            c.call(Method::GET, &format!("/break-glass?pending={pending}"), None).await?
        }
        Call::BreakGlassReview { id, justified, note, revoke_credential } => {
            let body = json!({"justified": justified, "note": note, "revoke_credential": revoke_credential});
            c.call(Method::POST, &format!("/break-glass/{id}/review"), Some(&body)).await?
        }
        Call::SmartRemove { client_id } => {
            c.call(Method::POST, &format!("/smart/clients/{client_id}/remove"), None).await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        summarise(&v);
    }
    Ok(())
}

/// A short human summary of an answer: scalar fields, sizes of the rest.
fn summarise(v: &Value) {
    let Some(obj) = v.as_object() else {
        println!("{v}");
        return;
    };
    if v["resourceType"] == "Bundle" {
        println!(
            "Bundle ({}) with {} entries",
            v["type"].as_str().unwrap_or("?"),
            v["entry"].as_array().map_or(0, Vec::len)
        );
    }
    for (k, x) in obj {
        match x {
            Value::Object(m) if k == "meta" && m.get("tag").is_some_and(Value::is_array) => {
                for t in m["tag"].as_array().into_iter().flatten() {
                    let system = t["system"].as_str().unwrap_or("");
                    println!(
                        "{:>18}: {}",
                        system.trim_start_matches("urn:dualchain:"),
                        t["code"].as_str().unwrap_or("")
                    );
                }
            }
            Value::Array(a) => println!("{k:>18}: {} items", a.len()),
            Value::Object(o) if k == "outcome" => {
                println!(
                    "{k:>18}: {}",
                    o.get("status")
                        .or_else(|| o.get("result"))
                        .map_or_else(|| Value::Object(o.clone()).to_string(), |s| s.to_string())
                )
            }
            Value::Object(o) => println!("{k:>18}: {}", serde_json::to_string(o).unwrap_or_default()),
            other => println!("{k:>18}: {other}"),
        }
    }
}
