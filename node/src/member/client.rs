//! A member's client: it signs transactions with the member's key and submits them through
//! its home validator, then waits until they are final on that validator's ledger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use dualchain_consensus::Request;
use dualchain_crypto::sign::SigningKeypair;
use dualchain_ledger::tx::{Hash, Outcome, SignedTx, Tx, TxKind};

use crate::validator::Validator;

/// Submits a signed transaction through validator `home`, under its sender's client id,
/// and waits until it is final on `home`'s ledger.
pub async fn submit_through(home: &Validator, stx: &SignedTx) -> Result<Final> {
    let client = dualchain_ledger::tx::client_id(&stx.tx.sender);
    let seq = home.submit(Request { client, id: stx.tx.nonce, payload: stx.to_bytes() }).await?;
    home.wait_applied(seq).await?;
    let (_, entry) =
        home.ledger.tx(&stx.hash)?.ok_or_else(|| anyhow!("transaction not on the ledger after batch {seq}"))?;
    Ok(Final { hash: stx.hash, seq, outcome: entry.outcome })
}

/// A member's client: signs transactions and submits them through its home validator.
pub struct Client {
    pub id: String,
    signer: SigningKeypair,
    home: Arc<Validator>,
    nonce: AtomicU64,
}

/// A transaction once final on the home validator's ledger.
#[derive(Debug, Clone)]
pub struct Final {
    pub hash: Hash,
    pub seq: u64,
    pub outcome: Outcome,
}

impl Client {
    pub fn new(id: &str, signer: SigningKeypair, home: Arc<Validator>) -> Self {
        // Nonces start from the wall clock so a restarted client never reuses one.
        let start =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
        Self { id: id.to_string(), signer, home, nonce: AtomicU64::new(start) }
    }

    pub fn home(&self) -> &Arc<Validator> {
        &self.home
    }

    pub fn signer(&self) -> &SigningKeypair {
        &self.signer
    }

    /// Signs a transaction (not submitted).
    pub fn sign(&self, kind: TxKind) -> Result<SignedTx> {
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        Ok(SignedTx::sign(Tx { sender: self.id.clone(), nonce, kind }, &self.signer, self.home.ledger.tx_domain())?)
    }

    /// Submits signed bytes and waits until they are final on the home ledger. The request
    /// names the transaction's sender as its client: the member, or a pseudonym of its
    /// anonymous requests (`member::anonymous`), whose transactions it relays.
    pub async fn submit_signed(&self, stx: &SignedTx) -> Result<Final> {
        submit_through(&self.home, stx).await.with_context(|| format!("{} submitting {}", self.id, stx.tx.kind.name()))
    }

    /// Signs, submits and waits for finality.
    pub async fn submit(&self, kind: TxKind) -> Result<Final> {
        let stx = self.sign(kind)?;
        self.submit_signed(&stx).await
    }

    /// Like [`Client::submit`], failing unless the contracts accepted the transaction.
    pub async fn submit_accepted(&self, kind: TxKind) -> Result<Final> {
        self.submit_signed_accepted(&self.sign(kind)?).await
    }

    /// Like [`Client::submit_signed`], failing unless the contracts accepted the transaction.
    pub async fn submit_signed_accepted(&self, stx: &SignedTx) -> Result<Final> {
        let f = self.submit_signed(stx).await?;
        if let Outcome::Rejected { reason } = &f.outcome {
            bail!("{} {} rejected: {reason}", self.id, stx.tx.kind.name());
        }
        Ok(f)
    }
}
