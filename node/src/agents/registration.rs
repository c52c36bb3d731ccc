//! Every node registers its hosted member's certificate on the data chain at first start,
//! retrying until it is final, and registers a renewed certificate (a higher serial, the
//! same keys) as soon as one is installed in the member's file, without a restart: the
//! renewal takes effect at the height of that registration. A member not named at genesis
//! is registered only once the members approved its admission (`registry::admit_member`):
//! its registration opens the admission, and the node then waits for the approvals
//! instead of sending it again.

use std::sync::Arc;
use std::time::Duration;

use dualchain_crypto::Codec;
use dualchain_ledger::tx::{certificate_sha256, Outcome, TxKind};
use dualchain_ledger::Ledger;

use crate::member::client::Client;
use crate::member::Member;

/// How long one registration attempt may wait for finality before it is sent again.
const ATTEMPT_WAIT_MAX: Duration = Duration::from_secs(30);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Registers `member`'s certificate unless `ledger` already holds it (or a later one).
pub async fn register_member(ledger: Arc<Ledger>, client: Arc<Client>, member: Arc<Member>) {
    let certificate = member.cert.to_bytes();
    let digest = certificate_sha256(&certificate);
    let mut awaiting = false;
    loop {
        match ledger.member(&member.id) {
            Ok(Some(m)) if m.serial >= member.cert.fields.serial => {
                tracing::info!(member = %member.id, "member registered on the ledger");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the registry"),
        }
        match ledger.admission(&member.id) {
            Ok(Some(a)) if a.certificate_sha256 == digest && a.admitted_ms.is_none() => {
                if !std::mem::replace(&mut awaiting, true) {
                    tracing::info!(
                        member = %member.id,
                        certificate_sha256 = %hex::encode(digest),
                        "not named at genesis: the admission awaits the members' approvals"
                    );
                }
                tokio::time::sleep(RENEWAL_POLL).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the admissions"),
        }
        let kind = TxKind::RegisterMember { certificate: certificate.clone() };
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

/// How often the member's file is read for a renewed certificate.
pub const RENEWAL_POLL: Duration = Duration::from_secs(30);

/// Watches the member file at `path` for a renewed certificate of `member` (same keys,
/// higher serial than the ledger's) and registers it.
pub async fn follow_renewals(ledger: Arc<Ledger>, client: Arc<Client>, member: Arc<Member>, path: std::path::PathBuf) {
    loop {
        tokio::time::sleep(RENEWAL_POLL).await;
        let renewed = match read_certificate(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), path = %path.display(), "reading the member file for renewals");
                continue;
            }
        };
        let f = &renewed.fields;
        let held = &member.cert.fields;
        if f.subject != held.subject || f.signing_key != held.signing_key || f.delegating_key != held.delegating_key {
            tracing::warn!(
                "the member file's certificate is for other keys; not registered (restart the node to change keys)"
            );
            continue;
        }
        match ledger.member(&member.id) {
            Ok(Some(m)) if m.serial >= f.serial => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the registry");
                continue;
            }
        }
        let kind = TxKind::RegisterMember { certificate: renewed.to_bytes() };
        match tokio::time::timeout(ATTEMPT_WAIT_MAX, client.submit(kind)).await {
            Ok(Ok(fin)) => match fin.outcome {
                Outcome::Rejected { reason } => {
                    tracing::warn!(member = %member.id, %reason, "renewed certificate rejected")
                }
                _ => {
                    tracing::info!(member = %member.id, serial = f.serial, not_after = f.not_after, "renewed certificate registered")
                }
            },
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "renewed certificate not final yet"),
            Err(_) => tracing::warn!("renewed certificate not final within {ATTEMPT_WAIT_MAX:?}; retrying"),
        }
    }
}

fn read_certificate(path: &std::path::Path) -> anyhow::Result<dualchain_crypto::cert::Certificate> {
    let file: crate::member::MemberFile = serde_json::from_slice(&crate::files::read_secret(path)?)?;
    crate::files::from_hex(&file.certificate, "certificate")
}
