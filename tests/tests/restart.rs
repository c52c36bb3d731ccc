//! A validator stopped in the middle of the flow and restarted from its store: the flow
//! completes, all ledgers are identical, nothing is lost or applied twice.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use dualchain_node::flow::{Consortium, CPCS, HOSPITAL_A, RESEARCH};
use dualchain_storage::ledger::Chain;

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validator_restarted_mid_flow_catches_up() -> Result<()> {
    let mut c = common::consortium("restart", 12, 12).await?;
    c.register_members().await?;
    c.issue_keys().await?;
    c.ledgers_identical(WAIT).await?;

    // Validator 3 goes down after registration; the other three go on.
    c.stop_validator(3).await?;
    let stopped_at = c.validators[3].ledger.applied_seq()?;
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0], &|_, _| {}).await?;
    let (demand, f) = c.demand(RESEARCH, &a.dataset, Consortium::heart_rate_requirement(2)?).await?;
    ensure!(f.outcome.is_accepted(), "{:?}", f.outcome);
    c.wait_demand(RESEARCH, &demand, WAIT).await?;
    let (grant, f, _) = c.request_access(RESEARCH, &demand, 3600).await?;
    ensure!(f.outcome.is_accepted(), "{:?}", f.outcome);

    // It restarts from its store mid-flow (between the grant and the receipt) and the
    // flow completes.
    c.restart_validator(3)?;
    c.wait_receipt(RESEARCH, &grant, WAIT).await?;
    let pointer = c.open_index(RESEARCH, &a.dataset)?;
    assert_eq!(c.fetch_and_decrypt(RESEARCH, &grant, &pointer).await?, a.plaintexts);
    // Some more traffic after the restart, through every live validator's members.
    let (demand2, _) = c.demand(RESEARCH, &a.dataset, Consortium::heart_rate_requirement(1)?).await?;
    c.wait_demand(RESEARCH, &demand2, WAIT).await?;

    let seq = c.ledgers_identical(WAIT).await?;
    ensure!(seq > stopped_at.unwrap_or(0), "the ledger moved on while validator 3 was down");
    // Identical blocks on every validator, and every transaction exactly once.
    let reference = &c.validators[0].ledger;
    for chain in [Chain::Data, Chain::Access] {
        let height = reference.tip(chain)?.map_or(0, |t| t.height + 1);
        let mut seen = HashSet::new();
        for h in 0..height {
            let block = reference.block(chain, h)?.unwrap();
            for e in &block.entries {
                assert!(seen.insert(e.hash()), "transaction applied twice on {chain:?}");
            }
            for v in &c.validators[1..] {
                let other = v.ledger.block(chain, h)?.unwrap();
                assert_eq!(other.hash, block.hash, "validator {} block {chain:?}/{h}", v.id);
            }
        }
    }
    let members = reference.members()?;
    assert_eq!(c.validators[3].ledger.members()?, members);
    assert_eq!(c.validators[3].ledger.grant(&grant)?.unwrap().receipts, 1);
    c.shutdown().await
}
