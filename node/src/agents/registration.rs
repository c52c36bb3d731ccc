//! Every node registers its hosted member's certificate on the data chain at first start
//! (and again after a renewal that raised the serial), retrying until it is final.

use std::sync::Arc;
use std::time::Duration;

use dualchain_crypto::Codec;
use dualchain_ledger::tx::{Outcome, TxKind};
use dualchain_ledger::Ledger;

use crate::member::client::Client;
use crate::member::Member;

/// How long one registration attempt may wait for finality before it is sent again.
const ATTEMPT_WAIT_MAX: Duration = Duration::from_secs(30);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Registers `member`'s certificate unless `ledger` already holds it (or a later one).
pub async fn register_member(ledger: Arc<Ledger>, client: Arc<Client>, member: Arc<Member>) {
    loop {
        match ledger.member(&member.id) {
            Ok(Some(m)) if m.serial >= member.cert.fields.serial => {
                tracing::info!(member = %member.id, "member registered on the ledger");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the registry"),
        }
        let kind = TxKind::RegisterMember { certificate: member.cert.to_bytes() };
        match tokio::time::timeout(ATTEMPT_WAIT_MAX, client.submit(kind)).await {
            Ok(Ok(f)) => {
                if let Outcome::Rejected { reason } = f.outcome {
                    tracing::warn!(member = %member.id, %reason, "registration rejected");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "registration not final yet"),
            Err(_) => tracing::warn!("registration not final within {ATTEMPT_WAIT_MAX:?}; retrying"),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
