//! A node stopped in the middle of the flow and restarted from its stores: the flow
//! completes, all ledgers are identical, nothing is lost or applied twice.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{ensure, Result};
use dualchain_ledger::reason::Reason;
use dualchain_ledger::state::{member_key, MemberRecord};
use dualchain_ledger::tx::TxKind;
use dualchain_storage::engine::{Cf, WriteBatch};
use dualchain_storage::ledger::{Chain, LedgerStore};
use dualchain_storage::record;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::KvEngine;
use dualchain_testkit::consortium::{wait_for, CPCS, FIXTURE_COHORT, HOSPITAL_A, RESEARCH, RESEARCH_2, WAIT};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_restarted_mid_flow_catches_up() -> Result<()> {
    let mut c = common::consortium("restart", 12, 12).await?;
    c.ledgers_identical(WAIT).await?;

    // research-2's node goes down after registration; the other six go on.
    let down = c.index_of(RESEARCH_2)?;
    let stopped_at = c.ledger(down)?.applied_seq()?;
    c.stop_node(down).await?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    // 12 observations, 4 heart rates: the fixture's cohort minimum.
    let demand = c.demand(RESEARCH, &a.dataset, FIXTURE_COHORT).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    ensure!(access.granted, "{:?}", access.denial);
    let grant = access.request;

    // It restarts from its stores mid-flow (between the grant and the receipt) and the
    // flow completes.
    c.start_node(down).await?;
    c.wait_receipt(RESEARCH, &grant).await?;
    a.check_delivery(&c.grant_requirement(&grant)?, &c.fetch(RESEARCH, &grant).await?, &grant)?;
    // Some more traffic after the restart.
    let demand2 = c.demand(RESEARCH, &a.dataset, FIXTURE_COHORT).await?;
    c.wait_supplied(RESEARCH, &demand2).await?;

    let seq = c.ledgers_identical(WAIT).await?;
    ensure!(seq > stopped_at.unwrap_or(0), "the ledger moved on while the node was down");
    // Identical blocks on every node, and every transaction exactly once.
    let reference = c.ledger(0)?;
    for chain in [Chain::Data, Chain::Access] {
        let height = reference.tip(chain)?.map_or(0, |t| t.height + 1);
        let mut seen = HashSet::new();
        for h in 0..height {
            let block = reference.block(chain, h)?.unwrap();
            for e in &block.entries {
                // A resubmission of the same bytes (an agent retrying across the restart)
                // is recorded and refused as a duplicate: applied once all the same.
                if e.outcome.reason() == Some(&Reason::Duplicate) {
                    assert!(seen.contains(&e.hash()), "a duplicate of nothing on {chain:?}");
                    continue;
                }
                assert!(seen.insert(e.hash()), "transaction applied twice on {chain:?}");
            }
            for (i, l) in c.ledgers().iter().enumerate() {
                let other = l.block(chain, h)?.unwrap();
                assert_eq!(other.hash, block.hash, "node {i} block {chain:?}/{h}");
            }
        }
    }
    let members = reference.members()?;
    assert_eq!(c.ledger(down)?.members()?, members);
    assert_eq!(c.ledger(down)?.grant(&grant)?.unwrap().receipts, 1);
    c.shutdown().await
}

/// A validator whose ledger state was damaged while it was down (a member record edited
/// behind the ledger's back) halts at the first checkpoint after its ledger departs from
/// the consortium's, says where, and the others go on. Cleared with `ledger-rebuild`, it
/// re-applies the consensus archive into the consortium's ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_ledger_halts_at_the_next_checkpoint_and_rebuilds_from_the_archive() -> Result<()> {
    let mut c = common::consortium("diverge", 12, 14).await?;
    c.ledgers_identical(WAIT).await?;
    let damaged = c.index_of(HOSPITAL_A)?;
    let cfg = c.node(damaged)?.cfg.clone();
    c.stop_node(damaged).await?;
    {
        let path = cfg.path(&cfg.data_dir).join("validator");
        let engine: Arc<dyn KvEngine> =
            Arc::new(once_released(|| Ok(RocksEngine::open(&path, &RocksConfig::default())?)).await?);
        let store = LedgerStore::open(engine.clone())?;
        let key = member_key(RESEARCH_2);
        let mut m: MemberRecord = serde_json::from_slice(&store.state(&key)?.expect("research-2 is registered"))?;
        m.revoked = Some("bit rot".into());
        let mut wb = WriteBatch::new();
        wb.put(Cf::State, key, record::seal(&serde_json::to_vec(&m)?));
        engine.write(wb)?;
    }
    c.start_node(damaged).await?;

    // research-2's probes are refused everywhere (no such grant), but for another reason at
    // the damaged validator: its blocks differ from the first probe on.
    let interval = dualchain_consensus::Config::loopback(7, 0).checkpoint_interval;
    let client = c.client(RESEARCH_2)?;
    let node = c.node(damaged)?.clone();
    let probe = |i: u64| TxKind::RevokeGrant { grant: [i as u8; 32], reason: "probe".into() };
    let t0 = std::time::Instant::now();
    let first = client.submit(probe(0)).await?.seq;
    for i in 1..3 * interval {
        if node.validator.divergence().is_some() {
            break;
        }
        client.submit(probe(i)).await?;
    }
    let d = wait_for(WAIT, "the damaged validator to find its divergence", || Ok(node.validator.divergence())).await?;
    eprintln!("divergence from batch {first} found at checkpoint {} after {:?}", d.seq, t0.elapsed());
    assert_eq!(d.seq, first.div_ceil(interval) * interval, "the first checkpoint at or after batch {first}");
    // A batch the applier had begun before the divergence was found is finished, not
    // undone; from then on nothing is applied.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let halted = node.ledger.applied_seq()?;
    for i in 0..4 {
        client.submit(probe(100 + i)).await?;
    }
    assert_eq!(node.ledger.applied_seq()?, halted, "a halted ledger applies nothing more");
    let health: Value = c.api(HOSPITAL_A)?.get_public("/health").await?.json()?;
    assert_eq!((health["status"].as_str(), health["diverged"]["checkpoint"].as_u64()), (Some("diverged"), Some(d.seq)));
    for i in (0..7).filter(|i| *i != damaged) {
        assert!(c.node(i)?.validator.divergence().is_none(), "node {i} is not disturbed");
    }

    // The repair: cleared, the ledger re-applies the archive and matches the others.
    drop(node);
    c.stop_node(damaged).await?;
    let (applied, archived) = once_released(|| dualchain_node::service::clear_ledger(&cfg)).await?;
    assert_eq!(applied, halted);
    assert!(archived > halted.unwrap_or(0), "the archive went on while the ledger was halted");
    let t1 = std::time::Instant::now();
    c.start_node(damaged).await?;
    let seq = c.ledgers_identical(WAIT).await?;
    eprintln!("ledger rebuilt from the archive ({seq} batches) and identical after {:?}", t1.elapsed());
    assert!(c.node(damaged)?.validator.divergence().is_none());
    assert!(c.ledger(damaged)?.member(RESEARCH_2)?.unwrap().revoked.is_none());
    c.shutdown().await
}

/// Retries `f` while a stopped node's last tasks still hold its store's lock.
async fn once_released<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(e) if std::time::Instant::now() < deadline && format!("{e:#}").contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}
