//! Genesis across institutions, in process: each institution's keys made in its own
//! directory (`keygen`), the consortium assembled from public contributions, checked and
//! joined by each institution, and the members' ESKI-IBE and CP-ABE keys issued online by
//! the authorities' nodes; then the sharing flow runs on those keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use dualchain_ledger::tx::FrBytes;
use dualchain_node::member::MemberFile;
use dualchain_testkit::consortium::{Consortium, CPCS, HOSPITAL_A, HOSPITAL_B, KGC, NODES, RESEARCH};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharing_flow_on_keys_each_institution_made() -> Result<()> {
    let (c, data_dir) = common::genesis("institutions", 24, None, true).await?;
    assert!(c.file.test_consortium.is_some(), "test parameters make a test consortium, and it says so");

    // The coordinator's output holds nothing secret: no member's keys, no CA key.
    let genesis = c.dir.join("genesis");
    for entry in walk(&genesis)?.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry)?).to_string();
        for i in 0..NODES {
            let f: MemberFile =
                serde_json::from_slice(&std::fs::read(c.dir.join(format!("node-{i}/secrets/member.json")))?)?;
            assert!(!text.contains(&f.signer) && !text.contains(&f.dsk), "{} holds node {i}'s keys", entry.display());
            if let Some(s) = &f.ibe_authority {
                assert!(!text.contains(s.as_str()), "{} holds an IBE share", entry.display());
            }
        }
    }
    assert!(!c.dir.join("genesis/secrets").exists());
    // The enrolled keys work: the CP-ABE index opens for research-1 (its attributes), not
    // for the other hospital; the CPC decrypts its re-key tokens with its issued IBE key.
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    let demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let ledger = c.ledger(2)?;
    let pointer = dualchain_node::member::sharing::open_index(&*c.member(RESEARCH)?, &ledger, &a.dataset.0)?;
    assert_eq!(pointer.cpc, CPCS[0]);
    assert!(dualchain_node::member::sharing::open_index(&*c.member(HOSPITAL_B)?, &ledger, &a.dataset.0).is_err());
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    // Enrollment also published research-1's anonymous leaf, over the commitment to the
    // nullifier key only research-1 holds (the KGC's desk never had the key).
    let research = c.member(RESEARCH)?;
    let leaf = ledger.anonymous_credential(RESEARCH)?.expect("an anonymous leaf");
    assert_eq!(leaf, FrBytes::from_fr(&research.anonymous_credential().leaf()));
    let nk = hex::encode(FrBytes::from_fr(&research.nullifier_key()).0);
    let mut desk: Vec<PathBuf> = [walk(&c.dir)?, walk(&data_dir)?]
        .concat()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kgc-credentials.json"))
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    desk.sort();
    desk.dedup();
    assert_eq!(desk.len(), 1, "{desk:?}");
    let kept = std::fs::read_to_string(&desk[0])?;
    assert!(kept.contains(&hex::encode(leaf.0)), "the desk keeps the anonymous leaf");
    assert!(!kept.contains(&nk), "the KGC's desk holds no nullifier key");
    c.wait_receipt(RESEARCH, &access.request).await?;
    let fetched = c.fetch(RESEARCH, &access.request).await?;
    // The grantee decrypts exactly what the demand asked for, under per-grant pseudonyms.
    a.check_delivery(&c.grant_requirement(&access.request)?, &fetched, &access.request)?;
    authorities_refuse_what_they_must(&c).await?;
    renewal_without_a_restart(&c).await?;

    // Keys issued online were kept: every member file now holds its IBE key.
    for i in 0..NODES {
        let f: MemberFile =
            serde_json::from_slice(&std::fs::read(c.dir.join(format!("node-{i}/secrets/member.json")))?)?;
        assert!(f.ibe_key.is_some(), "node {i} kept its IBE key");
    }
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// The authorities' endpoints refuse: a key request for someone else's identity, a
/// non-authority asked for a share, attributes the certificate does not commit to, a CPC
/// asking for a CP-ABE key, and a node that is not the KGC asked to enroll.
async fn authorities_refuse_what_they_must(c: &Consortium) -> Result<()> {
    use dualchain_crypto::ibe::KeyRequest;
    use dualchain_crypto::Codec;
    use dualchain_node::api::client::ApiClient;
    use reqwest::Method;
    use serde_json::{json, Value};

    let as_member = |who: &str, at: &str| -> Result<ApiClient> {
        let m = c.member(who)?;
        ApiClient::of_member(&c.file, at, who, m.signer.clone())
    };
    let refused = |r: Result<Value>| match r {
        Ok(v) => panic!("not refused: {v}"),
        Err(e) => dualchain_testkit::consortium::refusal(&e).map_or(format!("{e:#}"), |x| x.reason.clone()),
    };
    // hospital-b signs a key request for research-1's identity with its own key.
    let hb = c.member(HOSPITAL_B)?;
    let (req, _) = KeyRequest::new(&mut rand::rngs::OsRng, RESEARCH, &hb.signer)?;
    let body = json!({ "request": hex::encode(req.to_bytes()), "previous": null });
    let r = as_member(HOSPITAL_B, KGC)?.call::<Value>(Method::POST, "/ibe/share", Some(&body)).await;
    assert_eq!(refused(r), "wrong-identity");
    // A hospital's node holds no share.
    let (own, _) = KeyRequest::new(&mut rand::rngs::OsRng, HOSPITAL_B, &hb.signer)?;
    let body = json!({ "request": hex::encode(own.to_bytes()) });
    let r = as_member(HOSPITAL_B, HOSPITAL_A)?.call::<Value>(Method::POST, "/ibe/share", Some(&body)).await;
    assert_eq!(refused(r), "not-an-authority");
    // A CPC's share needs the KGC's before it.
    let r = as_member(HOSPITAL_B, CPCS[0])?.call::<Value>(Method::POST, "/ibe/share", Some(&body)).await;
    assert_eq!(refused(r), "refused");
    // Attributes hospital-b's certificate does not commit to (research-1's department).
    let salt = hex::encode(hb.attribute_salt);
    let lie = json!({ "attributes": ["role:hospital", "dept:cardiology"], "salt": salt });
    let r = as_member(HOSPITAL_B, KGC)?.call::<Value>(Method::POST, "/kgc/enroll", Some(&lie)).await;
    assert_eq!(refused(r), "refused");
    // A CPC holds no CP-ABE key; only the KGC enrolls.
    let cpc = c.member(CPCS[0])?;
    let own =
        json!({ "attributes": cpc.attributes.iter().collect::<Vec<_>>(), "salt": hex::encode(cpc.attribute_salt) });
    let r = as_member(CPCS[0], KGC)?.call::<Value>(Method::POST, "/kgc/enroll", Some(&own)).await;
    assert_eq!(refused(r), "refused");
    // A nullifier key commitment that is not a field element.
    let attrs = hb.attributes.iter().collect::<Vec<_>>();
    let bad = json!({ "attributes": attrs, "salt": salt, "nullifier_commitment": "ff".repeat(32) });
    let r = as_member(HOSPITAL_B, KGC)?.call::<Value>(Method::POST, "/kgc/enroll", Some(&bad)).await;
    assert_eq!(refused(r), "bad-nullifier-commitment");
    let truth = json!({ "attributes": hb.attributes.iter().collect::<Vec<_>>(), "salt": salt });
    let r = as_member(HOSPITAL_B, CPCS[0])?.call::<Value>(Method::POST, "/kgc/enroll", Some(&truth)).await;
    assert_eq!(refused(r), "not-the-kgc");
    // The truth is enrolled again (idempotent), sealed to hospital-b alone.
    let v: Value = as_member(HOSPITAL_B, KGC)?.call(Method::POST, "/kgc/enroll", Some(&truth)).await?;
    let sealed = dualchain_crypto::ibe::IbeCiphertext::from_bytes(&hex::decode(v["abe_key"].as_str().unwrap())?)?;
    let aad = dualchain_node::member::ABE_KEY_AAD;
    assert!(hb.ibe_key()?.decrypt(&sealed, aad).is_ok());
    assert!(c.member(RESEARCH)?.ibe_key()?.decrypt(&sealed, aad).is_err(), "another member opens hospital-b's key");
    Ok(())
}

/// The coordinator renews hospital-a's certificate from the CA it kept; hospital-a installs
/// it; its running node registers it, and the ledger, /health and /metrics show the new
/// expiry. What does not certify hospital-a's keys, or is not newer, is refused.
async fn renewal_without_a_restart(c: &Consortium) -> Result<()> {
    use dualchain_node::genesis::assemble::{renew, RenewOptions};
    use dualchain_node::genesis::institution::{install_certificate, InstallOptions};
    use dualchain_testkit::consortium::wait_for;

    let node_dir = c.dir.join(format!("node-{}", c.index_of(HOSPITAL_A)?));
    let issued = c.dir.join(format!("genesis/issued/{HOSPITAL_A}.toml"));
    let before = c.ledger(0)?.member(HOSPITAL_A)?.expect("registered");
    // Another member's renewed certificate is not hospital-a's to install.
    let opts = |member: &str, days| RenewOptions {
        ca: c.dir.join("ca"),
        genesis: c.dir.join("genesis"),
        member: member.into(),
        days,
    };
    renew(&opts(RESEARCH, 365))?;
    let research_issued = c.dir.join(format!("genesis/issued/{RESEARCH}.toml"));
    let install = |issued: &std::path::Path| {
        install_certificate(&InstallOptions { config: node_dir.join("node.toml"), issued: issued.to_path_buf() })
            .map_err(|e| format!("{e:#}"))
    };
    assert!(install(&research_issued).unwrap_err().contains("research-1's, not hospital-a's"));
    // A CA that did not assemble this consortium renews nothing.
    let stranger = RenewOptions { ca: c.dir.join("no-such-ca"), ..opts(HOSPITAL_A, 365) };
    assert!(format!("{:#}", renew(&stranger).unwrap_err()).contains("keeps no CA"));

    let (serial, not_after) = renew(&opts(HOSPITAL_A, 400))?;
    assert!(serial > before.serial && not_after > before.not_after);
    assert_eq!(install(&issued).map_err(anyhow::Error::msg)?, (serial, not_after));
    assert!(install(&issued).unwrap_err().contains("not higher"), "the same certificate twice");
    // Hospital-a's own node's ledger: its /health and /metrics read that one, which may
    // apply the renewal a moment after another node's.
    let ledger = c.ledger(c.index_of(HOSPITAL_A)?)?;
    let rec = wait_for(Duration::from_secs(120), "the renewed certificate on the ledger", || {
        Ok(ledger.member(HOSPITAL_A)?.filter(|m| m.serial == serial))
    })
    .await?;
    assert_eq!(rec.not_after, not_after);
    let health: serde_json::Value = c.api(HOSPITAL_A)?.get_public("/health").await?.json()?;
    assert!(health["certificate"]["days_left"].as_i64().unwrap() >= 399, "{health}");
    let metrics = String::from_utf8(c.api(HOSPITAL_A)?.get_public("/metrics").await?.body.to_vec())?;
    let series = format!("dualchain_member_certificate_expiry_seconds{{member=\"{HOSPITAL_A}\"}}");
    let line = metrics.lines().find(|l| l.starts_with(&series)).expect("the expiry series");
    let left: i64 = line.rsplit(' ').next().unwrap().parse()?;
    assert!(left > 399 * 86_400, "{line}");
    // Its TLS certificates, from the consortium's CA, run to 4096: in /health and /metrics.
    for what in ["api", "consensus"] {
        assert!(health["tls"][what]["days_left"].as_i64().unwrap() > 700_000, "{health}");
        let series = format!("dualchain_tls_certificate_expiry_seconds{{use=\"{what}\"}}");
        let line = metrics.lines().find(|l| l.starts_with(&series)).expect("the TLS expiry series");
        assert!(line.rsplit(' ').next().unwrap().parse::<i64>()? > 700_000 * 86_400, "{line}");
    }
    Ok(())
}

/// A validator-only institution at genesis (`keygen --role validator`): its contribution
/// brings no member keys and is signed with its consensus key, assembly lists its node as
/// a validator and no member, and `join` writes a node.toml without one. Its node orders
/// and keeps the ledger like the others, and its votes count: with two member nodes down
/// (n = 8: f = 2, quorum 6), an upload and a demand still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_only_institution_runs_a_node_from_keys_it_made() -> Result<()> {
    use dualchain_node::config::NodeConfig;
    use dualchain_node::genesis::institution::Contribution;
    use dualchain_testkit::consortium::FIXTURE_COHORT;
    let (mut c, data_dir) = common::genesis_with("validator-only", 12, None, true, 1).await?;
    let op = NODES;
    assert_eq!((c.file.validators.len(), c.file.members.len()), (NODES + 1, NODES));
    assert!(c.file.members.iter().all(|m| m.node as usize != op), "no member at the operator's node");
    let node_dir = c.dir.join(format!("node-{op}"));
    let cfg = NodeConfig::load(&node_dir.join("node.toml"))?;
    assert!(cfg.secrets.member.is_none(), "node.toml names no member");
    assert!(!node_dir.join("secrets/member.json").exists() && !node_dir.join("secrets/keygen.json").exists());
    let contribution = Contribution::load(&node_dir.join("contribution.toml"))?;
    assert!(contribution.body.validator_only() && contribution.body.signing_key.is_empty());
    contribution.verify()?;
    // Signed by its consensus key: another key's signature does not verify.
    let mut forged = contribution.clone();
    forged.body.validator_key = c.file.validators[0].signing_key.clone();
    assert!(forged.verify().is_err());
    // The coordinator's output holds none of its secrets.
    let secret = std::fs::read_to_string(node_dir.join("secrets/validator.key"))?;
    for entry in walk(&c.dir.join("genesis"))? {
        let text = String::from_utf8_lossy(&std::fs::read(&entry)?).to_string();
        assert!(!text.contains(secret.trim()), "{} holds the operator's consensus key", entry.display());
    }

    // Two member nodes down: six of eight remain, the quorum, the operator's node with them.
    let keep = [c.index_of(HOSPITAL_A)?, c.index_of(RESEARCH)?, c.index_of(CPCS[0])?, c.index_of(KGC)?];
    let down: Vec<usize> = (0..NODES).filter(|i| !keep.contains(i)).take(2).collect();
    assert_eq!(down.len(), 2);
    for i in &down {
        c.stop_node(*i).await?;
    }
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    let demand = c.demand(RESEARCH, &a.dataset, FIXTURE_COHORT).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    for i in down {
        c.start_node(i).await?;
    }
    c.ledgers_identical(Duration::from_secs(120)).await?;
    assert_eq!(c.ledgers().len(), NODES + 1);
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// What each institution checks before it joins: the assembled consortium must list it
/// exactly as it contributed. Each tampering below is refused with its reason, and leaves
/// the institution's keys where they were (the honest assembly still joins after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refuses_a_consortium_that_does_not_list_us_as_contributed() -> Result<()> {
    use dualchain_node::genesis::assemble::{assemble, AssembleOptions};
    use dualchain_node::genesis::institution::{join, keygen, JoinOptions, KeygenOptions};

    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let params = tmp.join("params");
    let d = tmp.join(format!("join-checks-{}-{}", std::process::id(), rand::random::<u32>()));
    let specs = [("kgc", "kgc"), ("hospital-a", "hospital"), ("research-1", "research"), ("cpc-1", "cpc")];
    let mut contributions: Vec<PathBuf> = Vec::new();
    for (i, (id, role)) in specs.iter().enumerate() {
        contributions.push(keygen(&KeygenOptions {
            consortium: "join-checks".into(),
            id: id.to_string(),
            role: role.to_string(),
            attributes: vec![],
            host: "127.0.0.1".into(),
            quic_port: 7700 + i as u16,
            api_port: 8700 + i as u16,
            ibe_after: (*role == "cpc").then(|| contributions[0].clone()),
            dir: d.join(id),
        })?);
    }
    let (d2, c2) = (d.clone(), contributions.clone());
    tokio::task::spawn_blocking(move || {
        assemble(&AssembleOptions {
            name: "join-checks".into(),
            contributions: c2,
            ca: d2.join("ca"),
            out: d2.join("genesis"),
            supply_records: vec![24],
            anonymous: false,
            ceremony: None,
            test_params: true,
            params_cache: Some(params),
        })
    })
    .await??;
    let genesis = d.join("genesis");
    let text = std::fs::read_to_string(genesis.join("consortium.toml"))?;
    let file = dualchain_node::config::ConsortiumFile::load(&genesis.join("consortium.toml"))?;
    // A tampered copy of the coordinator's output.
    let tampered = |name: &str, consortium: String, issued: Option<(&str, String)>| -> Result<PathBuf> {
        let g = d.join(name);
        std::fs::create_dir_all(g.join("issued"))?;
        std::os::unix::fs::symlink(genesis.join("params"), g.join("params"))?;
        std::fs::write(g.join("consortium.toml"), consortium)?;
        for (id, _) in specs {
            std::fs::copy(genesis.join(format!("issued/{id}.toml")), g.join(format!("issued/{id}.toml")))?;
        }
        if let Some((id, t)) = issued {
            std::fs::write(g.join(format!("issued/{id}.toml")), t)?;
        }
        Ok(g)
    };
    let try_join = |who: &str, g: &PathBuf| {
        join(&JoinOptions { dir: d.join(who), genesis: g.clone(), preset: "loopback".into(), default_cpc: None })
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    // Another validator key at hospital-a's node.
    let g = tampered("swap-key", text.replace(&file.validators[1].signing_key, &file.validators[2].signing_key), None)?;
    assert!(try_join("hospital-a", &g).unwrap_err().contains("validator key is not ours"));
    // research-1's member certificate handed to hospital-a.
    let cert_of = |id: &str| -> Result<String> {
        let t: toml::Value = toml::from_str(&std::fs::read_to_string(genesis.join(format!("issued/{id}.toml")))?)?;
        Ok(t["certificate"].as_str().unwrap_or_default().to_string())
    };
    let research = std::fs::read_to_string(genesis.join("issued/hospital-a.toml"))?
        .replace(&cert_of("hospital-a")?, &cert_of("research-1")?);
    let g = tampered("swap-cert", text.clone(), Some(("hospital-a", research)))?;
    assert!(try_join("hospital-a", &g).unwrap_err().contains("names someone else"));
    // A consensus TLS certificate for hospital-a's key, from a CA that is not the consortium's.
    let rogue_ca = dualchain_consensus::tls::TlsCa::generate("rogue")?;
    let contribution = dualchain_node::genesis::institution::Contribution::load(&contributions[1])?;
    let rogue = hex::encode(rogue_ca.certify(1, &hex::decode(&contribution.body.tls_public)?)?);
    let g = tampered("rogue-tls", text.replace(&file.validators[1].tls_cert, &rogue), None)?;
    assert!(try_join("hospital-a", &g).unwrap_err().contains("consensus TLS certificate"));
    // Another CP-ABE public key than the one the KGC made (the KGC sees it).
    let other_abe = dualchain_node::genesis::institution::Contribution::load(&contributions[0])?;
    let g = tampered("abe", text.replace(&other_abe.body.abe_public.clone().unwrap(), "3001"), None)?;
    assert!(try_join("kgc", &g).is_err());
    // Nothing was lost: the honest assembly joins every institution.
    for (id, _) in specs {
        try_join(id, &genesis).map_err(anyhow::Error::msg)?;
    }
    assert!(try_join("kgc", &genesis).unwrap_err().contains("joined already"));
    let _ = std::fs::remove_dir_all(&d);
    Ok(())
}
