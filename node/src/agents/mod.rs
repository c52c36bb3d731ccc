//! What members' nodes do on their own as the ledger moves (DESIGN.md §3 steps 6, 8–10):
//!
//! | module | agent |
//! | --- | --- |
//! | [`owner`] | a hospital's node proves supply as soon as a demand on one of its datasets is final, issues the re-key (sealed to the grant's CPC) as soon as a grant is final, and answers a break-glass request with grants over the named patients' records |
//! | [`cpc`] | a CPC's node, once a re-key for one of its grants is final, opens it, checks it against the chain and its manifest, re-encrypts the dataset's capsules in one batch and files the receipt; it drops a grant the moment its revocation is final, and serves re-encrypted records only to the grant's requester while the grant is usable |
//! | [`kgc`] | the KGC's node publishes the credential leaves named at genesis as members register |
//! | [`registration`] | every node registers its member's certificate on first start |
//! | [`metrics`] | what the agents count for Prometheus |
//! | [`follow`] | how an agent follows the ledger: replay, retries, concurrency, drain |
//!
//! Each agent follows its home validator's applied batches ([`follow`]): the ledger is its
//! durable outbox (replayed on start and after a lag), failed reactions are retried with
//! backoff, a bounded number run at once, each in its own task so a long proof never holds
//! up the next event, and a stopping node drains them within a bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use dualchain_ledger::tx::Hash;

pub mod cpc;
pub mod escrow;
pub mod follow;
pub mod kgc;
pub mod metrics;
pub mod owner;
pub mod registration;

pub use cpc::{CpcNode, FetchRequest};
pub use follow::{Agent, Retry};
pub use metrics::AgentMetrics;
pub use owner::{OwnedDataset, OwnerNode};

/// Something a node did, for the demo's summary and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    SupplyProved {
        demand: Hash,
        prove: Duration,
    },
    SupplyImpossible {
        demand: Hash,
        reason: String,
    },
    ReKeyIssued {
        grant: Hash,
    },
    Reencrypted {
        grant: Hash,
        records: u64,
        took: Duration,
    },
    GrantDropped {
        grant: Hash,
    },
    /// An owner answered a break-glass request with `grants` grants (none: it holds no
    /// record of the patients named).
    BreakGlassAnswered {
        request: Hash,
        grants: usize,
    },
    /// A CPC erased a dataset its owner erased on chain.
    Erased {
        dataset: Hash,
        records: usize,
        grants: usize,
    },
    /// The retention sweep deleted the re-encrypted records of grants that ended.
    Swept {
        grants: usize,
        records: usize,
    },
    Failed {
        what: String,
        error: String,
    },
}

/// How many activities a node keeps in memory: the newest (a node runs for years; every
/// failure also goes to its log output, and [`Log::failures`] counts all of them).
pub const LOG_KEEP: usize = 4096;

/// A shared activity log, bounded to the newest [`LOG_KEEP`] entries.
#[derive(Default, Clone)]
pub struct Log(Arc<LogInner>);

#[derive(Default)]
struct LogInner {
    entries: Mutex<VecDeque<(String, Activity)>>,
    failures: AtomicU64,
}

impl Log {
    pub fn push(&self, who: &str, a: Activity) {
        if let Activity::Failed { what, error } = &a {
            self.0.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(member = who, what = %what, error = %error, "agent failed");
        }
        let mut entries = self.0.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == LOG_KEEP {
            entries.pop_front();
        }
        entries.push_back((who.to_string(), a));
    }
    /// The newest entries, oldest first.
    pub fn entries(&self) -> Vec<(String, Activity)> {
        self.0.entries.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
    /// Every failure since the node started, kept or not.
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Relaxed)
    }
}

/// A node's reaction to one accepted transaction.
pub(crate) type Reaction = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_entries_and_counts_every_failure() {
        let log = Log::default();
        for i in 0..LOG_KEEP + 10 {
            let a = if i % 100 == 0 {
                Activity::Failed { what: format!("step {i}"), error: "x".into() }
            } else {
                Activity::ReKeyIssued { grant: [(i % 251) as u8; 32] }
            };
            log.push("m", a);
        }
        let entries = log.entries();
        assert_eq!(entries.len(), LOG_KEEP);
        assert_eq!(entries[0].1, Activity::ReKeyIssued { grant: [10; 32] }, "the 10 oldest went");
        assert_eq!(log.failures(), (LOG_KEEP as u64 + 10).div_ceil(100));
        assert_eq!(log.clone().failures(), log.failures(), "clones share the log");
    }
}
