//! The KGC's node publishes each credential leaf named at genesis once its member is
//! registered, and never one whose member or credential was revoked.

use std::sync::Arc;
use std::time::Duration;

use dualchain_ledger::tx::{FrBytes, Outcome, TxKind};
use dualchain_ledger::Ledger;

use crate::member::client::Client;
use crate::member::Member;

/// How long one publication may wait for finality before the round is tried again.
const ATTEMPT_WAIT_MAX: Duration = Duration::from_secs(30);
const ROUND_PAUSE: Duration = Duration::from_millis(300);

/// Publishes `credentials` (member, leaf) as their members register; returns when every
/// one is on the ledger or can no longer be published.
pub async fn publish_credentials(
    ledger: Arc<Ledger>,
    client: Arc<Client>,
    kgc: Arc<Member>,
    credentials: Vec<(String, FrBytes)>,
) {
    loop {
        if ledger.member(&kgc.id).ok().flatten().is_none() {
            // The KGC itself is not registered yet.
            tokio::time::sleep(ROUND_PAUSE).await;
            continue;
        }
        let mut pending = 0;
        for (m, leaf) in &credentials {
            let rec = match ledger.member(m) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    pending += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the registry");
                    pending += 1;
                    continue;
                }
            };
            if rec.credential.is_some() || rec.credential_revoked.is_some() || rec.revoked.is_some() {
                continue;
            }
            pending += 1;
            let kind = TxKind::IssueCredential { member: m.clone(), leaf: *leaf };
            match tokio::time::timeout(ATTEMPT_WAIT_MAX, client.submit(kind)).await {
                Ok(Ok(f)) => match f.outcome {
                    Outcome::Rejected { reason } => tracing::warn!(member = %m, %reason, "credential rejected"),
                    _ => tracing::info!(member = %m, "credential published"),
                },
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "credential not final yet"),
                Err(_) => tracing::warn!("credential not final within {ATTEMPT_WAIT_MAX:?}; retrying"),
            }
        }
        if pending == 0 {
            return;
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}
