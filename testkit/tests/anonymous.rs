//! The anonymous path in a consortium whose institutions made their own keys
//! (`assemble --anonymous`): the audit authorities' nodes (the KGC and the CPCs) make the
//! escrow key on chain by themselves, each keeps its share of the secret on its own
//! machine, no other node holds any, and any majority of them opens what a requester
//! seals under the key while one cannot. Then a researcher demands, is granted and
//! fetches through its node without the ledger naming it or the transport showing it to
//! the validators and the CPC (its requests go through relays to gateways), and its named
//! demand spends the same credential's budget.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dualchain_crypto::cbsre::Signcrypted;
use dualchain_crypto::oblivious::{seal_request, KeyConfig};
use dualchain_crypto::Codec;
use dualchain_ledger::state::GrantStatus;
use dualchain_ledger::tx::TxKind;
use dualchain_node::agents::escrow::{load_secret, DEALING_FILE, SECRET_FILE};
use dualchain_node::agents::metrics::ObliviousLabel;
use dualchain_node::api::oblivious::SignedKeyConfig;
use dualchain_prover::escrow::{seal, AuthoritySecret, Sealed};
use dualchain_testkit::consortium::{Consortium, FlowConfig, CPCS, HOSPITAL_A, HOSPITAL_B, KGC, NODES, RESEARCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_authorities_make_the_escrow_key_and_each_keeps_its_share() -> Result<()> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data_dir = tmp.join(format!("anonymous-{}-{}", std::process::id(), rand::random::<u32>()));
    let mut c = Consortium::genesis(FlowConfig {
        records: 24,
        seed: None,
        params_dir: tmp.join("params"),
        data_dir: data_dir.clone(),
        institutions: true,
        ceremony: false,
        validators_only: 0,
        anonymous: true,
    })
    .await?;
    c.wait_ready(Duration::from_secs(120)).await?;

    let authorities = [KGC, CPCS[0], CPCS[1]];
    let secrets = |id: &str| -> Result<PathBuf> { Ok(c.dir.join(format!("node-{}/secrets", c.index_of(id)?))) };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let formed = c.ledger(0)?.escrow_key()?.is_some();
        let kept =
            authorities.iter().map(|a| secrets(a).map(|d| d.join(SECRET_FILE).exists())).collect::<Result<Vec<_>>>()?;
        if formed && kept.iter().all(|k| *k) {
            break;
        }
        ensure!(Instant::now() < deadline, "the escrow key did not form: formed {formed}, kept {kept:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every validator holds the same key, made from all three honest dealings.
    let key = c.ledger(0)?.escrow_key()?.unwrap();
    for ledger in c.ledgers() {
        let (dealings, complaints, record) = ledger.escrow_dkg()?;
        assert_eq!(ledger.escrow_key()?.as_ref(), Some(&key));
        assert_eq!((dealings.len(), complaints.len()), (3, 0));
        assert_eq!(record.unwrap().qualified, vec![1, 2, 3]);
    }
    // Each authority kept its share, readable by its owner alone, and dropped its polynomial.
    let mut kept = Vec::new();
    for a in authorities {
        let dir = secrets(a)?;
        let (secret, of) = load_secret(&dir)?.expect("a kept share");
        assert_eq!(of, key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(dir.join(SECRET_FILE))?.permissions().mode() & 0o777, 0o600);
        }
        assert!(!dir.join(DEALING_FILE).exists(), "{a} kept its dealing");
        kept.push(secret);
    }
    // No other institution's node holds any of it.
    for i in (0..NODES).filter(|i| authorities.iter().all(|a| c.index_of(a).ok() != Some(*i))) {
        let dir = c.dir.join(format!("node-{i}/secrets"));
        assert!(!dir.join(SECRET_FILE).exists() && !dir.join(DEALING_FILE).exists(), "node {i} holds escrow material");
    }
    // Any two authorities open a credential index sealed under the key; one cannot.
    let mut rng = rand::rngs::OsRng;
    let (sealed, _) = seal(&key, 17, &mut rng)?;
    let case = b"audit case: test";
    for pair in [[0, 1], [0, 2], [1, 2]] {
        let shares: Vec<_> =
            pair.iter().map(|i| kept[*i].decryption_share(&key, &sealed, case, &mut rng)).collect::<Result<_, _>>()?;
        assert_eq!(key.open(&sealed, &shares, case)?, 17);
        assert!(key.open(&sealed, &shares[..1], case).is_err());
    }
    anonymous_flow(&mut c, &kept).await?;
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// research-1 demands, is granted and fetches anonymously through its own node: the
/// records arrive as asked, nothing on the ledger of the flow names research-1, another
/// member cannot act for the pseudonym, and two audit authorities open its identity.
async fn anonymous_flow(c: &mut Consortium, secrets: &[AuthoritySecret]) -> Result<()> {
    let ledger = c.ledger(0)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while ledger.anonymous_credential(RESEARCH)?.is_none() {
        ensure!(Instant::now() < deadline, "research-1's anonymous leaf was not published");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    // hospital-b's node is down while research-1 asks: a relay or gateway that does not
    // answer is passed over for another.
    let down = c.index_of(HOSPITAL_B)?;
    c.stop_node(down).await?;
    let (demand, pseudonym, _) = c.demand_anonymous(RESEARCH, &a.dataset, 4).await?;
    assert!(dualchain_ledger::tx::is_pseudonym(&pseudonym), "{pseudonym}");
    let d = c.wait_supplied(RESEARCH, &demand).await?;
    assert_eq!(d.requester, pseudonym);
    // Another member's node holds no key of the pseudonym.
    let body = serde_json::json!({"demand": hex::encode(demand), "duration_s": 600});
    let r = c.api(HOSPITAL_A)?.call::<serde_json::Value>(reqwest::Method::POST, "/access", Some(&body)).await;
    assert!(r.is_err_and(|e| format!("{e:#}").contains("not-yours")));
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    c.wait_receipt(RESEARCH, &access.request).await?;
    let fetched = c.fetch(RESEARCH, &access.request).await?;
    // Exactly the matching records, without what linked them to their patients, each
    // with a pseudonym of this grant as its subject (signcrypted by the owner to the
    // demand's one-time key: a pseudonym has no IBE identity).
    let anonymous = a.check_delivery(&c.grant_requirement(&access.request)?, &fetched, &access.request)?;
    let sealed = ledger.grant(&access.request)?.unwrap().sealed_pseudonyms.expect("the grant's pseudonyms are sealed");
    assert!(Signcrypted::from_bytes(&sealed).is_ok(), "signcrypted, not IBE-sealed");
    // The flow on the ledger names the pseudonym, never research-1.
    let grant = ledger.grant(&access.request)?.unwrap();
    assert_eq!(grant.requester, pseudonym);
    let records = ledger.access_records(&a.dataset.0)?;
    assert!(records.len() >= 2 && records.iter().all(|r| r.requester == pseudonym), "{records:?}");
    let member = ledger.member(RESEARCH)?.unwrap();
    let (txs, _) = ledger.accepted_txs_since(Default::default())?;
    let mut flow = 0;
    for (_, tx) in &txs {
        let ours = match &tx.kind {
            TxKind::AnonymousDemand(x) => x.demand == demand,
            TxKind::SupplyProof { demand: x, .. } | TxKind::RequestAccess { demand: x, .. } => *x == demand,
            TxKind::IssueReKey { grant: x, .. }
            | TxKind::Receipt { grant: x, .. }
            | TxKind::Fetched { grant: x, .. } => *x == access.request,
            _ => false,
        };
        if ours {
            flow += 1;
            let json = serde_json::to_string(tx)?;
            assert!(!json.contains(RESEARCH) && !json.contains(&hex::encode(member.signing_key)), "{json}");
        }
    }
    assert!(flow >= 6, "{flow} transactions of the flow");
    // research-1 revokes the grant through its node: the pseudonym's one-time key signs,
    // so the revocation names the pseudonym, never research-1.
    c.revoke_grant(RESEARCH, &access.request, "").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = ledger.grant(&access.request)?.unwrap().status;
        if matches!(status, GrantStatus::Revoked { .. }) || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match &status {
        GrantStatus::Revoked { reason, .. } => assert_eq!(reason, &format!("revoked by {pseudonym}")),
        other => panic!("the grant was not revoked: {other:?}"),
    }
    let (txs, _) = ledger.accepted_txs_since(Default::default())?;
    let (_, revocation) = txs
        .iter()
        .find(|(_, tx)| matches!(&tx.kind, TxKind::RevokeGrant { grant, .. } if *grant == access.request))
        .expect("the revocation is on the ledger");
    let json = serde_json::to_string(revocation)?;
    assert!(!json.contains(RESEARCH) && json.contains(&pseudonym), "{json}");
    c.start_node(down).await?;
    // The transport: research-1's node sent the pseudonym's demand, access request and
    // revocation, and its fetch, through relays (other members' nodes) to gateways: the
    // CPC served the fetch to a relay, and no gateway was ever called by research-1.
    let members: Vec<String> = c.file.members.iter().map(|m| m.id.clone()).collect();
    let count = |at: &str, role: &str, op: &str, peer: &str| -> Result<u64> {
        let label = ObliviousLabel { role: role.into(), op: op.into(), peer: peer.into() };
        Ok(c.node_of(at)?.agent_metrics.oblivious.get_or_create(&label).get())
    };
    let mut by_research = 0;
    let (mut submitted, mut fetched_via_relay, mut relayed) = (0, 0, 0);
    for at in &members {
        by_research += count(at, "gateway", "submit", RESEARCH)? + count(at, "gateway", "fetch", RESEARCH)?;
        relayed += count(at, "relay", "forward", RESEARCH)?;
        for peer in &members {
            submitted += count(at, "gateway", "submit", peer)?;
            if at == CPCS[0] {
                fetched_via_relay += count(at, "gateway", "fetch", peer)?;
            }
        }
    }
    assert_eq!(by_research, 0, "a gateway saw research-1 as its caller");
    assert!(submitted >= 3 && fetched_via_relay >= 1, "submitted {submitted}, fetched {fetched_via_relay}");
    assert!(relayed >= 4, "research-1's node relayed {relayed} requests");
    assert_eq!(count(CPCS[0], "gateway", "fetch", CPCS[0])?, 0);
    // A gateway serves pseudonyms only: a member's own transaction or fetch, encapsulated,
    // is refused inside the encapsulation; bytes that do not open are refused in the
    // clear; a relay does not forward to its own node.
    let api = c.api(CPCS[0])?;
    let key: SignedKeyConfig = api.call(reqwest::Method::GET, "/oblivious/key", None).await?;
    let config = KeyConfig::from_bytes(&hex::decode(&key.config)?)?;
    let ask = |inner: serde_json::Value| {
        let config = config.clone();
        async move {
            let (request, ctx) = seal_request(&config, &serde_json::to_vec(&inner)?, &mut rand::rngs::OsRng)?;
            let resp =
                api.send(reqwest::Method::POST, "/oblivious/gateway", request.clone(), "message/ohttp-req").await?;
            ensure!(resp.status == 200, "the gateway answered {}", resp.status);
            let answer: serde_json::Value = serde_json::from_slice(&ctx.open_response(&resp.body)?)?;
            anyhow::Ok((answer, request))
        }
    };
    let named = c.client(RESEARCH)?.sign(TxKind::RevokeGrant { grant: named_probe(), reason: "probe".into() })?;
    let (answer, request) = ask(serde_json::json!({"op": "submit", "tx": hex::encode(named.to_bytes())})).await?;
    assert_eq!(answer["error"]["reason"], "not-a-pseudonym", "{answer}");
    let fetch = serde_json::json!({"grant": hex::encode(named_probe()), "requester": RESEARCH,
        "h1": hex::encode([0u8; 32]), "at_ms": 1, "signature": hex::encode([0u8; 64])});
    let (answer, _) = ask(serde_json::json!({"op": "fetch", "request": fetch})).await?;
    assert_eq!(answer["error"]["reason"], "not-a-pseudonym", "{answer}");
    let mut tampered = request;
    *tampered.last_mut().unwrap() ^= 1;
    let resp = api.send(reqwest::Method::POST, "/oblivious/gateway", tampered, "message/ohttp-req").await?;
    assert_eq!((resp.status, resp.refusal().reason.as_str()), (400, "not-encapsulated"));
    let resp = api.send(reqwest::Method::POST, &format!("/oblivious/relay/{}", CPCS[0]), vec![1], "x").await?;
    assert_eq!((resp.status, resp.refusal().reason.as_str()), (400, "relay-to-self"));
    // An audit case: the membership quorum approves it through their nodes (no authority
    // gives a share before); the audit authorities' nodes then give theirs by themselves,
    // and the ledger records research-1.
    let (approvers, opened) = c.open_audit(&pseudonym, "audit of demand volume, case 1", RESEARCH).await?;
    assert_eq!(approvers.len(), c.file.membership_quorum() as usize);
    assert_eq!(opened, RESEARCH);
    // Two audit authorities' kept shares open the sealed identity directly too.
    let key = ledger.escrow_key()?.unwrap();
    let sealed = Sealed::from_bytes(&ledger.pseudonym(&pseudonym)?.unwrap().sealed_identity)?;
    let case = b"audit case: anonymous demand";
    let shares: Vec<_> = secrets[..2]
        .iter()
        .map(|s| s.decryption_share(&key, &sealed, case, &mut rand::rngs::OsRng))
        .collect::<Result<_, _>>()?;
    let index = key.open(&sealed, &shares, case)?;
    assert_eq!(ledger.credential_holder(index)?.map(|m| m.id).as_deref(), Some(RESEARCH));
    // The same records granted to research-1 by name carry none of the anonymous grant's
    // pseudonyms: the two grants cannot be joined on a patient. (Last: this grant adds
    // access records that name research-1.)
    let named_demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &named_demand).await?;
    // The named demand spent one of research-1's nullifiers for the dataset and epoch,
    // the anonymous demand another: one budget for both paths, and nothing that links them.
    let (txs, _) = ledger.accepted_txs_since(Default::default())?;
    let spent = txs
        .iter()
        .find_map(|(_, tx)| match &tx.kind {
            TxKind::Demand { demand, nullifier, .. } if *demand == named_demand => Some(nullifier.clone()),
            _ => None,
        })
        .expect("the named demand is on the ledger")
        .expect("it carries a nullifier");
    assert_eq!(ledger.nullifier(&spent.nullifier)?, Some(named_demand));
    assert_ne!(spent.nullifier, ledger.pseudonym(&pseudonym)?.unwrap().nullifier);
    let named = c.request_access(RESEARCH, &named_demand, 3600).await?;
    assert!(named.granted, "{:?}", named.denial);
    c.wait_receipt(RESEARCH, &named.request).await?;
    let again = c.fetch(RESEARCH, &named.request).await?;
    let by_name = a.check_delivery(&c.grant_requirement(&named.request)?, &again, &named.request)?;
    assert!(by_name.iter().all(|p| !anonymous.contains(p)), "the named and the anonymous grant share a pseudonym");
    Ok(())
}

/// A grant id no grant has (the gateway refuses before the ledger would).
fn named_probe() -> [u8; 32] {
    [0x5e; 32]
}
