//! A node stopped in the middle of the flow and restarted from its stores: the flow
//! completes, all ledgers are identical, nothing is lost or applied twice.

mod common;

use std::collections::HashSet;

use anyhow::{ensure, Result};
use dualchain_storage::ledger::Chain;
use dualchain_testkit::consortium::{CPCS, HOSPITAL_A, RESEARCH, RESEARCH_2, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_restarted_mid_flow_catches_up() -> Result<()> {
    let mut c = common::consortium("restart", 12, 12).await?;
    c.ledgers_identical(WAIT).await?;

    // research-2's node goes down after registration; the other six go on.
    let down = c.index_of(RESEARCH_2)?;
    let stopped_at = c.ledger(down)?.applied_seq()?;
    c.stop_node(down).await?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    let demand = c.demand(RESEARCH, &a.dataset, 2).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    ensure!(access.granted, "{:?}", access.denial);
    let grant = access.request;

    // It restarts from its stores mid-flow (between the grant and the receipt) and the
    // flow completes.
    c.start_node(down).await?;
    c.wait_receipt(RESEARCH, &grant).await?;
    assert_eq!(c.fetch(RESEARCH, &grant).await?, a.observations);
    // Some more traffic after the restart.
    let demand2 = c.demand(RESEARCH, &a.dataset, 1).await?;
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
