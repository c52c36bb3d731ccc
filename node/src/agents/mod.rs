//! What members' nodes do on their own as the ledger moves (DESIGN.md §3 steps 6, 8–10):
//!
//! | module | agent |
//! | --- | --- |
//! | [`owner`] | a hospital's node proves supply as soon as a demand on one of its datasets is final, and issues the re-key (sealed to the grant's CPC) as soon as a grant is final |
//! | [`cpc`] | a CPC's node, once a re-key for one of its grants is final, opens it, checks it against the chain and its manifest, re-encrypts the dataset's capsules in one batch and files the receipt; it drops a grant the moment its revocation is final, and serves re-encrypted records only to the grant's requester while the grant is usable |
//! | [`kgc`] | the KGC's node publishes the credential leaves named at genesis as members register |
//! | [`registration`] | every node registers its member's certificate on first start |
//! | [`metrics`] | what the agents count for Prometheus |
//!
//! Each agent follows its home validator's applied batches ([`follow`]); a reaction runs in
//! its own task so a long proof never holds up the next event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use dualchain_ledger::tx::{Hash, TxKind};
use dualchain_ledger::Ledger;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::member::client::Client;

pub mod cpc;
pub mod kgc;
pub mod metrics;
pub mod owner;
pub mod registration;

pub use cpc::{CpcNode, FetchRequest};
pub use metrics::AgentMetrics;
pub use owner::{OwnedDataset, OwnerNode};

/// Something a node did, for the demo's summary and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    SupplyProved { demand: Hash, prove: Duration },
    SupplyImpossible { demand: Hash, reason: String },
    ReKeyIssued { grant: Hash },
    Reencrypted { grant: Hash, records: u64, took: Duration },
    GrantDropped { grant: Hash },
    Failed { what: String, error: String },
}

/// A shared activity log.
#[derive(Default, Clone)]
pub struct Log(Arc<Mutex<Vec<(String, Activity)>>>);

impl Log {
    pub fn push(&self, who: &str, a: Activity) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((who.to_string(), a));
    }
    pub fn entries(&self) -> Vec<(String, Activity)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A node's reaction to one accepted transaction.
pub(crate) type Reaction = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// Follows the client's home validator and runs `react` for every accepted transaction,
/// each reaction in its own task; failures go to the log.
///
/// It first replays what is already on the ledger (after a restart, the demands, grants
/// and re-keys that arrived while the node was down), then follows new batches; each
/// transaction is dispatched once, and every reaction checks the ledger before it acts,
/// so replaying work already done does nothing.
pub(crate) fn follow(
    who: &str,
    log: Log,
    client: &Client,
    react: impl Fn(TxKind) -> Option<Reaction> + Send + Sync + 'static,
) -> JoinHandle<()> {
    let who = who.to_string();
    let mut events = client.home().subscribe();
    let ledger = client.home().ledger.clone();
    tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let dispatch = |hash: Hash, tx: &dualchain_ledger::tx::Tx, seen: &mut std::collections::HashSet<Hash>| {
            if !seen.insert(hash) {
                return;
            }
            if let Some(fut) = react(tx.kind.clone()) {
                let (log, who, what) = (log.clone(), who.clone(), tx.kind.name());
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        log.push(
                            &who,
                            Activity::Failed { what: format!("reacting to {what}"), error: format!("{e:#}") },
                        );
                    }
                });
            }
        };
        match accepted_txs(&ledger) {
            Ok(past) => past.iter().for_each(|(h, tx)| dispatch(*h, tx, &mut seen)),
            Err(e) => log.push(&who, Activity::Failed { what: "replaying the ledger".into(), error: format!("{e:#}") }),
        }
        loop {
            let applied = match events.recv().await {
                Ok(a) => a,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    log.push(
                        &who,
                        Activity::Failed { what: "following the ledger".into(), error: format!("missed {n} batches") },
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for t in &applied.txs {
                if let (Some(tx), true) = (&t.tx, t.outcome.is_accepted()) {
                    dispatch(t.hash, tx, &mut seen);
                }
            }
        }
    })
}

/// Every accepted transaction on the ledger, data chain then access chain.
pub(crate) fn accepted_txs(ledger: &Ledger) -> Result<Vec<(Hash, dualchain_ledger::tx::Tx)>> {
    use dualchain_storage::ledger::Chain;
    let mut out = Vec::new();
    for chain in [Chain::Data, Chain::Access] {
        let tip = ledger.tip(chain)?.map_or(0, |t| t.height);
        for h in 1..=tip {
            let block = ledger.block(chain, h)?.ok_or_else(|| anyhow!("block {h} missing"))?;
            for e in block.entries.iter().filter(|e| e.outcome.is_accepted()) {
                let stx = dualchain_ledger::tx::SignedTx::from_bytes(&e.tx)?;
                out.push((e.hash(), stx.tx));
            }
        }
    }
    Ok(out)
}
