//! An institution joins a running consortium (issue 19): keygen on its machine, a member
//! certificate and a validator slot from the coordinator's kept CAs (`dualchain issue`),
//! `join`, a validator set change approved by 2f + 1 validators (`dualchain validator
//! propose`, `approve`, `submit`), its node catching up by state transfer, its admission
//! approved by the membership quorum, its IBE and CP-ABE keys from the authorities over
//! the network, and then it shares data like a founder: it demands, is supplied, granted,
//! and fetches. The ledgers of all eight validators end identical. Then a genesis validator
//! is removed while members upload and demand, and the other seven carry on with
//! identical ledgers.
//!
//! Also: a validator rotates its consensus TLS certificate and address in place, keeping
//! its id (`dualchain validator tls-key`, `certify`, `propose --rotate`), with no restart,
//! and keeps them after one.

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_ledger::tx::{tx_hash, Outcome};
use dualchain_node::config::NodeConfig;
use dualchain_node::genesis::institution::{join, keygen, IssuedFile, JoinOptions, KeygenOptions};
use dualchain_node::genesis::issue::{issue, IssueOptions};
use dualchain_node::reconfigure::{fetch_sets, propose, submit, ChangeFile};
use dualchain_testkit::consortium::{free_port, wait_for, CPCS, HOSPITAL_A, HOSPITAL_B, NODES, RESEARCH};
use reqwest::Method;
use serde_json::{json, Value};

mod common;

const NEWCOMER: &str = "research-9";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_institution_joins_a_running_consortium_with_its_own_validator_and_shares_data() -> Result<()> {
    let (mut c, data_dir) = common::genesis("joining", 24, None, true).await?;
    let a = c.upload(HOSPITAL_A, "icu", "cpc-1").await?;

    // The newcomer's keys, made on its machine; the coordinator certifies it and gives its
    // node the next validator slot; the newcomer checks what it was issued and joins.
    let dir = c.dir.join(format!("node-{NODES}"));
    let contribution = keygen(&KeygenOptions {
        consortium: c.file.name.clone(),
        id: NEWCOMER.into(),
        role: "research".into(),
        attributes: vec!["role:research".into(), "dept:cardiology".into()],
        host: "127.0.0.1".into(),
        quic_port: free_port()?,
        api_port: free_port()?,
        ibe_after: None,
        dir: dir.clone(),
    })?;
    let genesis = c.dir.join("genesis");
    let issued = issue(&IssueOptions { ca: c.dir.join("ca"), genesis: genesis.clone(), contribution, days: 365 })?;
    assert_eq!(issued.node as usize, NODES, "the next validator slot after the genesis validators");
    let node = join(&JoinOptions {
        dir: dir.clone(),
        genesis: genesis.clone(),
        preset: "loopback".into(),
        default_cpc: None,
    })?;
    assert_eq!(node as usize, NODES);
    let cfg = NodeConfig::load(&dir.join("node.toml"))?;
    assert_eq!(cfg.joined.as_ref().map(|v| v.id as usize), Some(NODES), "node.toml carries its slot");
    let slot: IssuedFile = toml::from_str(&std::fs::read_to_string(&issued.path)?)?;
    let slot = slot.validator.ok_or_else(|| anyhow!("no validator slot issued"))?;

    // Its node starts as a learner: no validator talks to it before the change.
    c.add_node(NODES).await?;
    let newcomer = c.node(NODES)?.clone();
    let status = newcomer.validator.status().await.ok_or_else(|| anyhow!("the newcomer's engine is not running"))?;
    assert!(!status.member, "a validator not named by any change does not vote");

    // The change, proposed at node 0, approved by validators on their own keys.
    let ca = hex::decode(&c.file.tls_ca)?;
    let api0 = c.file.validators[0].api.clone();
    let sets = fetch_sets(&api0, &ca).await?;
    assert_eq!((sets.epoch, sets.roster.len()), (0, NODES));
    let mut change = propose(&c.file.name, &sets, std::slice::from_ref(&slot), &[], None)?;
    assert_eq!(change.epoch, 1);
    assert_eq!(change.members.iter().map(|m| m.id as usize).collect::<Vec<_>>(), (0..=NODES).collect::<Vec<_>>());
    let key_of = |i: usize| -> Result<SigningKeypair> {
        let cfg = NodeConfig::load(&c.dir.join(format!("node-{i}/node.toml")))?;
        let text = std::fs::read_to_string(cfg.path(&cfg.secrets.validator_key))?;
        dualchain_node::files::from_hex(text.trim(), "validator key")
    };
    // n = 7, f = 2: five approvals make the quorum; four are refused before ordering.
    for i in 0..4 {
        change.approve(&c.file, &key_of(i)?, i as u8)?;
    }
    let why = format!("{:#}", submit(&api0, &ca, &change).await.unwrap_err());
    assert!(why.contains("4 approvals") && why.contains("5 needed"), "{why}");
    // A file changed after approval (the new validator's address redirected) fails the
    // approvals: the next approver refuses it, and so does the node.
    let mut redirected = change.clone();
    redirected.added[0].quic = "127.0.0.1:9".parse()?;
    let why = format!("{:#}", redirected.clone().approve(&c.file, &key_of(4)?, 4).unwrap_err());
    assert!(why.contains("does not verify"), "{why}");
    let why = format!("{:#}", submit(&api0, &ca, &redirected).await.unwrap_err());
    assert!(why.contains("approval"), "{why}");
    // A validator's key approving under another's id is no approval.
    let mut forged = change.clone();
    forged.approve(&c.file, &key_of(0)?, 5)?;
    let why = format!("{:#}", submit(&api0, &ca, &forged).await.unwrap_err());
    assert!(why.contains("signature"), "{why}");

    change.approve(&c.file, &key_of(4)?, 4)?;
    let path = data_dir.join("change.json");
    change.save(&path)?;
    let change = ChangeFile::load(&path)?;
    let answer = submit(&api0, &ca, &change).await?;
    let after_seq = answer["after_seq"].as_u64().ok_or_else(|| anyhow!("no boundary in {answer}"))?;
    assert!(after_seq >= answer["executed_seq"].as_u64().unwrap_or(u64::MAX));
    // The same change again is refused: its epoch has been taken.
    let why = format!("{:#}", submit(&api0, &ca, &change).await.unwrap_err());
    assert!(why.contains("pending") || why.contains("epoch"), "{why}");

    // The newcomer catches up and votes in epoch 1 once the boundary is a stable
    // checkpoint (a quiet consortium fills the gap with null batches).
    let s = in_epoch(&newcomer, 1).await?;
    assert!(s.member && s.stable_seq >= after_seq, "the newcomer votes in epoch 1 from its boundary: {s:?}");
    // The others enter it at their own pace: wait for the two asked below.
    in_epoch(c.node(0)?, 1).await?;
    in_epoch(c.node(c.index_of(RESEARCH)?)?, 1).await?;
    let sets = fetch_sets(&api0, &ca).await?;
    assert_eq!(sets.epoch, 1);
    let health: Value = c.api(RESEARCH)?.call(Method::GET, "/health", None).await?;
    assert_eq!((health["epoch"].as_u64(), health["votes"].as_bool()), (Some(1), Some(true)), "{health}");
    assert_eq!(sets.epochs.last().map(|e| e.members.len()), Some(NODES + 1));

    // Its registration, sent through its own node, opened its admission; the membership
    // quorum approves the certificate `issue` printed, each member through its own node.
    let sha = hex::encode(issued.certificate_sha256);
    let ledger0 = c.ledger(0)?;
    // Every approver's node checks the admission on its own ledger first: wait for all.
    wait_for(Duration::from_secs(120), "the newcomer's admission to open everywhere", || {
        let mut open = true;
        for l in c.ledgers() {
            open &= l.admission(NEWCOMER)?.is_some();
        }
        Ok(open.then_some(()))
    })
    .await?;
    assert!(ledger0.member(NEWCOMER)?.is_none(), "a certificate alone admits no one");
    let view: Value = c.api(RESEARCH)?.call(Method::GET, &format!("/members/{NEWCOMER}/admission"), None).await?;
    assert_eq!(
        (view["certificate_sha256"].as_str(), view["admitted"].as_bool()),
        (Some(sha.as_str()), Some(false)),
        "{view}"
    );
    let quorum = c.file.membership_quorum() as usize;
    for m in c.file.members.iter().take(quorum) {
        let body = json!({ "certificate_sha256": sha });
        let _: Value = c.api(&m.id)?.call(Method::POST, &format!("/members/{NEWCOMER}/admit"), Some(&body)).await?;
    }
    // Registered, its keys issued by the authorities over the network, its credential
    // published: it is ready like a founder.
    c.wait_ready(Duration::from_secs(180)).await?;
    wait_for(Duration::from_secs(180), "the newcomer to be ready", || Ok(newcomer.ready()?.then_some(()))).await?;

    // It shares data: demands hospital-a's dataset, is supplied, granted, and fetches
    // exactly what it asked for.
    let demand = c.demand(NEWCOMER, &a.dataset, 4).await?;
    c.wait_supplied(NEWCOMER, &demand).await?;
    let access = c.request_access(NEWCOMER, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    c.wait_receipt(NEWCOMER, &access.request).await?;
    let fetched = c.fetch(NEWCOMER, &access.request).await?;
    a.check_delivery(&c.grant_requirement(&access.request)?, &fetched, &access.request)?;

    // Eight validators, one history, which records the change as such.
    let last = c.ledgers_identical(Duration::from_secs(120)).await?;
    assert!(last >= after_seq);
    assert_eq!(c.ledgers().len(), NODES + 1);
    let recorded = |change: &ChangeFile| -> Result<Outcome> {
        let hash = tx_hash(&change.reconfiguration()?.to_bytes());
        Ok(ledger0.tx(&hash)?.ok_or_else(|| anyhow!("the change is not on the ledger"))?.1.outcome)
    };
    assert_eq!(recorded(&change)?, Outcome::ValidatorSetChange { epoch: 1 });

    // Validator 6 is removed while members transact, this time with the operators'
    // commands (`dualchain validator propose`, `approve`, `submit`), each validator
    // approving with its own node.toml: two uploads and two demands run beside the change,
    // approved by six of the eight (the newcomer's approval counts).
    let config = |i: usize| c.dir.join(format!("node-{i}/node.toml")).display().to_string();
    let removal_path = data_dir.join("removal.json").display().to_string();
    let cli = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dualchain_node::cli::validator_command(&args).await
    };
    let s = |x: &str| x.to_string();
    cli(vec![s("propose"), s("--config"), config(0), s("--remove"), s("6"), s("--out"), removal_path.clone()]).await?;
    assert_eq!(ChangeFile::load(std::path::Path::new(&removal_path))?.epoch, 2);
    for i in [0, 1, 2, 3, 4] {
        cli(vec![s("approve"), s("--config"), config(i), s("--change"), removal_path.clone()]).await?;
    }
    let submit_cli = || cli(vec![s("submit"), s("--config"), config(0), s("--change"), removal_path.clone()]);
    let why = format!("{:#}", submit_cli().await.unwrap_err());
    assert!(why.contains("5 approvals") && why.contains("6 needed"), "a set of 8 needs 6: {why}");
    cli(vec![s("approve"), s("--config"), config(NODES), s("--change"), removal_path.clone()]).await?;
    let removal = ChangeFile::load(std::path::Path::new(&removal_path))?;
    assert_eq!(removal.approvers()?, vec![0, 1, 2, 3, 4, NODES as u8]);
    let load = async {
        let (up_a, up_b, d1, d2) = tokio::join!(
            c.upload(HOSPITAL_A, "ward-2", "cpc-1"),
            c.upload(HOSPITAL_B, "derm", "cpc-2"),
            c.demand(RESEARCH, &a.dataset, 4),
            c.demand(NEWCOMER, &a.dataset, 5),
        );
        Ok::<_, anyhow::Error>((up_a?, up_b?, d1?, d2?))
    };
    let (removed, loaded) = tokio::join!(submit_cli(), load);
    removed?;
    let (_, _, d1, d2) = loaded?;
    let sets = fetch_sets(&api0, &ca).await?;
    let after_removal =
        sets.epochs.iter().find(|e| e.epoch == 2).ok_or_else(|| anyhow!("epoch 2 is not scheduled"))?.after_seq;
    let six = c.node(6)?.clone();
    let s = in_epoch(&six, 2).await?;
    assert!(!s.member, "a removed validator votes no more: {s:?}");
    c.stop_node(6).await?;
    // The other seven carry on: what was demanded under load is supplied, and a demand
    // after the change is too.
    c.wait_supplied(RESEARCH, &d1).await?;
    c.wait_supplied(NEWCOMER, &d2).await?;
    let after = c.demand(NEWCOMER, &a.dataset, 6).await?;
    c.wait_supplied(NEWCOMER, &after).await?;
    in_epoch(c.node(0)?, 2).await?;
    let sets = fetch_sets(&api0, &ca).await?;
    assert_eq!(sets.epoch, 2);
    assert_eq!(sets.epochs.last().map(|e| e.members.clone()), Some(vec![0, 1, 2, 3, 4, 5, 7]));
    let last = c.ledgers_identical(Duration::from_secs(120)).await?;
    assert!(last > after_removal, "the seven ordered past the change's boundary");
    assert_eq!(c.ledgers().len(), NODES);
    assert_eq!(recorded(&removal)?, Outcome::ValidatorSetChange { epoch: 2 });

    // The members change the consortium's parameters by their quorum (four of the eight):
    // a longer grant limit, and a membership quorum of five from then on.
    let proposal = json!({"grant_duration_max_s": 7200, "membership_quorum": 5});
    for (i, m) in c.file.members.iter().take(quorum).enumerate() {
        let v: Value = c.api(&m.id)?.call(Method::POST, "/consortium/parameters", Some(&proposal)).await?;
        assert_eq!(v["proposal"]["applied"].as_bool(), Some(i + 1 == quorum), "{v}");
    }
    // Read at other nodes once their ledgers hold the last approval too.
    c.ledgers_identical(Duration::from_secs(120)).await?;
    let p: Value = c.api(NEWCOMER)?.call(Method::GET, "/consortium/parameters", None).await?;
    assert_eq!((p["grant_duration_max_s"].as_u64(), p["membership_quorum"].as_u64()), (Some(7200), Some(5)), "{p}");
    let view: Value = c.api(RESEARCH)?.call(Method::GET, &format!("/members/{NEWCOMER}/admission"), None).await?;
    assert_eq!(view["quorum"].as_u64(), Some(5), "admissions count against the quorum in effect: {view}");
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Validator rotation in place (`dualchain_node::reconfigure` module docs): the validator
/// hosting hospital-a makes a new TLS key, the CA keeper certifies it, the validator
/// proposes to be reached at a new address with it, five of seven approve, and it is
/// ordered while the node runs. Once the change is in effect, with two other validators
/// stopped (f = 2), every commit needs the rotated validator's votes over its new links:
/// an upload goes through, and again after the rotated node restarted (binding the new
/// address and presenting the new certificate from its log, its node.toml unchanged).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_rotates_its_consensus_certificate_and_address_without_a_restart() -> Result<()> {
    let (mut c, data_dir) = common::genesis("rotation", 12, None, true).await?;
    let rotating = c.index_of(HOSPITAL_A)?;
    let config = |i: usize| c.dir.join(format!("node-{i}/node.toml")).display().to_string();
    let path = |name: &str| data_dir.join(name).display().to_string();
    let cli = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dualchain_node::cli::validator_command(&args).await
    };
    let s = |x: &str| x.to_string();
    std::fs::create_dir_all(&data_dir)?;
    cli(vec![s("tls-key"), s("--config"), config(rotating), s("--out"), path("tls-request.json")]).await?;
    let (ca, genesis) = (c.dir.join("ca").display().to_string(), c.dir.join("genesis").display().to_string());
    let certify = vec![s("certify"), s("--ca"), ca, s("--genesis"), genesis, s("--request"), path("tls-request.json")];
    cli([certify, vec![s("--out"), path("tls-cert.json")]].concat()).await?;
    let moved: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    // Only the validator holding the key can propose its rotation: another node finds no
    // key for the certificate.
    let other = (rotating + 1) % NODES;
    let why = cli(vec![
        s("propose"),
        s("--config"),
        config(other),
        s("--rotate"),
        path("tls-cert.json"),
        s("--out"),
        path("rotation.json"),
    ])
    .await
    .unwrap_err();
    ensure!(format!("{why:#}").contains("certificate is for node"), "{why:#}");
    cli(vec![
        s("propose"),
        s("--config"),
        config(rotating),
        s("--rotate"),
        path("tls-cert.json"),
        s("--quic"),
        moved.to_string(),
        s("--out"),
        path("rotation.json"),
    ])
    .await?;
    let change = ChangeFile::load(std::path::Path::new(&path("rotation.json")))?;
    ensure!(change.rotated.len() == 1 && change.rotated[0].quic == moved, "{change:?}");
    for i in 0..5 {
        cli(vec![s("approve"), s("--config"), config(i), s("--change"), path("rotation.json")]).await?;
    }
    cli(vec![s("submit"), s("--config"), config(0), s("--change"), path("rotation.json")]).await?;
    for i in 0..NODES {
        in_epoch(c.node(i)?, 1).await?;
    }
    let sets = c.node(0)?.validator.validator_sets().await.ok_or_else(|| anyhow!("the engine stopped"))?;
    let named = dualchain_consensus::engine::parse_endpoint(sets.epochs.endpoint(rotating as u8));
    let cert = hex::decode(&change.rotated[0].tls_cert)?;
    ensure!(named == Some((moved, cert)), "the sets name the new endpoint: {named:?}");

    // Two validators down (f = 2): five of seven remain, the quorum, the rotated one with
    // them.
    let keep = [rotating, c.index_of(CPCS[0])?, c.index_of(RESEARCH)?];
    let down: Vec<usize> = (0..NODES).filter(|i| !keep.contains(i)).take(2).collect();
    for i in &down {
        c.stop_node(*i).await?;
    }
    c.upload(HOSPITAL_A, "after-rotation", CPCS[0]).await?;
    c.stop_node(rotating).await?;
    c.start_node(rotating).await?;
    c.upload(HOSPITAL_A, "after-restart", CPCS[0]).await?;
    for i in down {
        c.start_node(i).await?;
    }
    c.ledgers_identical(Duration::from_secs(120)).await?;
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Waits until `node`'s replica works in `epoch` (its boundary a stable checkpoint there):
/// its status then.
async fn in_epoch(
    node: &dualchain_node::runtime::Node,
    epoch: u64,
) -> Result<dualchain_consensus::engine::EngineStatus> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let s = node.validator.status().await.ok_or_else(|| anyhow!("the engine stopped"))?;
        if s.epoch == epoch {
            return Ok(s);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "validator {} never worked in epoch {epoch}: {s:?}",
            node.cfg.node
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
