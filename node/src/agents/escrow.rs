//! An audit authority's part in the escrow DKG (`dualchain_ledger::contracts::escrow`):
//! the node hosting the KGC or a CPC of a consortium that opened the anonymous path makes
//! the escrow key on chain with the other authorities, and keeps its share of the secret.
//!
//! One round every [`ROUND_PAUSE`], reading the ledger each time, so a restart resumes
//! wherever the DKG stands:
//! - **deal**: unless its dealing is on chain, the authority makes its polynomial once,
//!   writes the dealing and its shares to `secrets/escrow-dealing.json` (mode 0600) before
//!   anything leaves the machine, and posts the dealing with each share IBE-sealed to its
//!   authority's identity;
//! - **check**: it opens its share of every dealing with its IBE key and checks it against
//!   the dealing; a share that does not open or does not match is a complaint;
//! - **answer**: a complaint against it is answered with the share it owed, from its file;
//! - **acknowledge**: once every dealing is on chain and each of its shares verified (or
//!   revealed in answer to its complaint), it acknowledges them;
//! - **close**: once every authority dealt and acknowledged and no complaint is open (or
//!   the contract's window passed), it closes the DKG;
//! - **keep**: once the key is formed, it sums its shares of the qualified dealings (the
//!   revealed one where it complained and was answered) into its secret, checks it against
//!   the key's verification key by decrypting a value it sealed itself, writes it to
//!   `secrets/escrow-secret.json` (mode 0600), and deletes its dealing file: the
//!   polynomial is no longer needed, and a leaked one would give away every authority's
//!   share of it;
//! - **audit**: from then on, for as long as the node runs, it posts its decryption share
//!   of every audit case the membership quorum approved (`contracts::audit`), bound to
//!   that case. It never opens an identity by itself, and its share of one case opens no
//!   other.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use dualchain_crypto::ibe::{self, IbeCiphertext, IbePrivateKey, IbePublicParams};
use dualchain_crypto::Codec;
use dualchain_ledger::genesis::Escrow;
use dualchain_ledger::state::{ComplaintRecord, DealingRecord};
use dualchain_ledger::tx::{Outcome, TxKind};
use dualchain_ledger::Ledger;
use dualchain_prover::escrow::{deal, seal, AuthoritySecret, Committee, Dealing, DkgShare, EscrowKey};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::files::{read_secret, write_private};
use crate::member::client::Client;
use crate::member::Member;

/// Pause between rounds.
pub const ROUND_PAUSE: Duration = Duration::from_secs(1);
/// Associated data of a sealed DKG share.
pub const SHARE_AAD: &[u8] = b"dualchain/v1/escrow-share";
/// The authority's dealing until the key forms.
pub const DEALING_FILE: &str = "escrow-dealing.json";
/// The authority's share of the escrow secret.
pub const SECRET_FILE: &str = "escrow-secret.json";

#[derive(Serialize, Deserialize)]
struct DealingFile {
    dealing: String,
    shares: Vec<String>,
}

/// The secret file: the authority's index and secret, and the key it belongs to.
#[derive(Serialize, Deserialize)]
pub struct SecretFile {
    pub secret: String,
    pub key: String,
}

/// Whether `member` is one of the audit authorities of `ledger`'s genesis; its committee,
/// index and the committee's member ids.
pub fn committee_of(ledger: &Ledger, member: &str) -> Option<(Committee, u16, Vec<String>)> {
    let Escrow::Committee { members, threshold } = &ledger.genesis().anonymous.as_ref()?.escrow else { return None };
    let index = members.iter().position(|m| m == member)? as u16 + 1;
    let committee = Committee::new(*threshold, members.len() as u16).ok()?;
    Some((committee, index, members.clone()))
}

/// The authority's DKG until its secret is kept, then its shares of approved audit cases
/// for as long as the node runs.
pub async fn run(
    ledger: Arc<Ledger>,
    client: Arc<Client>,
    member: Arc<Member>,
    ibe: IbePublicParams,
    secrets_dir: PathBuf,
) {
    let Some((committee, index, members)) = committee_of(&ledger, &member.id) else { return };
    let a = Authority { committee, index, members, ledger, client, member, ibe, dir: secrets_dir };
    loop {
        match a.round().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "escrow DKG"),
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    loop {
        if let Err(e) = a.serve_cases().await {
            tracing::warn!(error = %format!("{e:#}"), "audit cases");
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

struct Authority {
    committee: Committee,
    index: u16,
    members: Vec<String>,
    ledger: Arc<Ledger>,
    client: Arc<Client>,
    member: Arc<Member>,
    ibe: IbePublicParams,
    dir: PathBuf,
}

impl Authority {
    /// One round; `true` once the secret is kept.
    async fn round(&self) -> Result<bool> {
        if self.dir.join(SECRET_FILE).exists() {
            return Ok(true);
        }
        if self.ledger.member(&self.member.id)?.is_none() {
            return Ok(false);
        }
        let (dealings, complaints, key) = self.ledger.escrow_dkg()?;
        let ibe_key = self.member.ibe_key()?;
        if let Some(record) = key {
            let key = EscrowKey::from_bytes(&record.key)?;
            let qualified: Vec<&DealingRecord> =
                dealings.iter().filter(|d| record.qualified.contains(&d.dealer)).collect();
            self.keep(&key, &qualified, &complaints, ibe_key)?;
            return Ok(true);
        }
        if !dealings.iter().any(|d| d.dealer == self.index) {
            let (dealing, shares) = self.dealing()?;
            let sealed = self
                .members
                .iter()
                .zip(&shares)
                .map(|(id, s)| Ok(ibe::encrypt(&mut OsRng, &self.ibe, id, &s.to_bytes(), SHARE_AAD)?.to_bytes()))
                .collect::<Result<Vec<_>>>()?;
            self.submit(TxKind::EscrowDealing { dealing: dealing.to_bytes(), sealed_shares: sealed }).await?;
            return Ok(false);
        }
        for d in &dealings {
            let mine = complaints.iter().any(|c| c.dealer == d.dealer && c.recipient == self.index);
            if !mine && self.my_share(d, ibe_key).is_err() {
                tracing::warn!(dealer = d.dealer, member = %d.member, "escrow DKG: a bad share; complaining");
                self.submit(TxKind::EscrowComplaint { dealer: d.dealer }).await?;
            }
        }
        for c in complaints.iter().filter(|c| c.dealer == self.index && c.revealed.is_none()) {
            let (_, shares) = self.dealing()?;
            let share = shares
                .iter()
                .find(|s| s.recipient() == c.recipient)
                .ok_or_else(|| anyhow!("no share for authority {}", c.recipient))?;
            self.submit(TxKind::EscrowReveal { recipient: c.recipient, share: share.to_bytes() }).await?;
        }
        let all_dealt = dealings.len() == self.members.len();
        let acks = self.ledger.escrow_acks()?;
        if all_dealt && !acks.contains(&self.index) {
            // Every share of ours verified, or revealed in answer to our complaint.
            let checked = dealings.iter().all(|d| {
                match complaints.iter().find(|c| c.dealer == d.dealer && c.recipient == self.index) {
                    Some(c) => c.revealed.is_some(),
                    None => self.my_share(d, ibe_key).is_ok(),
                }
            });
            if checked {
                self.submit(TxKind::EscrowAck {}).await?;
            }
            return Ok(false);
        }
        let open = complaints.iter().any(|c| c.revealed.is_none());
        if all_dealt && acks.len() == self.members.len() && !open {
            self.submit(TxKind::CloseEscrow {}).await?;
        }
        Ok(false)
    }

    /// This authority's dealing and shares: from its file, or made now and written there
    /// before they are used.
    fn dealing(&self) -> Result<(Dealing, Vec<DkgShare>)> {
        let path = self.dir.join(DEALING_FILE);
        if path.exists() {
            let f: DealingFile = serde_json::from_slice(&read_secret(&path)?)?;
            let dealing = Dealing::from_bytes(&hex::decode(&f.dealing)?)?;
            let shares = f
                .shares
                .iter()
                .map(|s| Ok(DkgShare::from_bytes(&hex::decode(s)?)?))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok((dealing, shares));
        }
        let (dealing, shares) = deal(&self.committee, self.index, &mut OsRng)?;
        let f = DealingFile {
            dealing: hex::encode(dealing.to_bytes()),
            shares: shares.iter().map(|s| hex::encode(s.to_bytes())).collect(),
        };
        write_private(&path, &serde_json::to_vec_pretty(&f)?)?;
        Ok((dealing, shares))
    }

    /// Opens and checks this authority's share of a dealing.
    fn my_share(&self, d: &DealingRecord, ibe_key: &IbePrivateKey) -> Result<DkgShare> {
        let sealed = d.sealed_shares.get(usize::from(self.index) - 1).ok_or_else(|| anyhow!("no share for us"))?;
        let share = DkgShare::from_bytes(&ibe_key.decrypt(&IbeCiphertext::from_bytes(sealed)?, SHARE_AAD)?)?;
        anyhow::ensure!(share.recipient() == self.index, "a share for authority {}", share.recipient());
        Dealing::from_bytes(&d.dealing)?.verify_share(&share)?;
        Ok(share)
    }

    /// Computes, checks and writes this authority's secret; deletes its dealing file.
    fn keep(
        &self,
        key: &EscrowKey,
        qualified: &[&DealingRecord],
        complaints: &[ComplaintRecord],
        ibe_key: &IbePrivateKey,
    ) -> Result<()> {
        let mut dealings = Vec::new();
        let mut shares = Vec::new();
        for d in qualified {
            dealings.push(Dealing::from_bytes(&d.dealing)?);
            let revealed = complaints
                .iter()
                .find(|c| c.dealer == d.dealer && c.recipient == self.index)
                .and_then(|c| c.revealed.as_ref());
            shares.push(match revealed {
                Some(r) => DkgShare::from_bytes(r)?,
                None => self.my_share(d, ibe_key)?,
            });
        }
        let secret = AuthoritySecret::from_shares(&self.committee, self.index, &dealings, &shares)?;
        check_secret(key, &secret)?;
        let f = SecretFile { secret: hex::encode(secret.to_bytes()), key: hex::encode(key.to_bytes()) };
        write_private(&self.dir.join(SECRET_FILE), &serde_json::to_vec_pretty(&f)?)?;
        let _ = std::fs::remove_file(self.dir.join(DEALING_FILE));
        tracing::info!(authority = self.index, qualified = qualified.len(), "escrow key formed; share kept");
        Ok(())
    }

    /// Posts this authority's decryption share of each approved, unopened case it has not
    /// answered yet.
    async fn serve_cases(&self) -> Result<()> {
        let cases = self.ledger.audit_cases()?;
        let open: Vec<_> = cases
            .into_iter()
            .filter(|c| c.approved_ms.is_some() && c.opening.is_none())
            .filter(|c| !c.shares.iter().any(|(i, _)| *i == self.index))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let (secret, key) = load_secret(&self.dir)?.ok_or_else(|| anyhow!("no escrow share kept"))?;
        for case in open {
            let p = self.ledger.pseudonym(&case.pseudonym)?.ok_or_else(|| anyhow!("unknown pseudonym"))?;
            let sealed = dualchain_prover::escrow::Sealed::from_bytes(&p.sealed_identity)?;
            let share = secret.decryption_share(&key, &sealed, &case.id, &mut OsRng)?;
            tracing::info!(case = %hex::encode(case.id), reason = %case.case, "audit case: giving this authority's share");
            self.submit(TxKind::AuditShare { case: case.id, share: share.to_bytes() }).await?;
        }
        Ok(())
    }

    async fn submit(&self, kind: TxKind) -> Result<()> {
        let name = kind.name();
        let f = self.client.submit(kind).await?;
        if let Outcome::Rejected { reason } = f.outcome {
            tracing::debug!(%reason, "escrow DKG: {name} refused");
        }
        Ok(())
    }
}

/// Whether `secret` is a share of `key`: its decryption share of a value sealed now
/// verifies against the key's verification key for its index.
pub fn check_secret(key: &EscrowKey, secret: &AuthoritySecret) -> Result<()> {
    let (sealed, _) = seal(key, 1, &mut OsRng)?;
    let context = b"dualchain/v1/escrow-self-check";
    let share = secret.decryption_share(key, &sealed, context, &mut OsRng)?;
    key.verify_share(&sealed, &share, context).map_err(|e| anyhow!("the kept escrow share is not the key's: {e}"))
}

/// This authority's escrow secret, once kept (the audit API opens identities with it).
pub fn load_secret(secrets_dir: &Path) -> Result<Option<(AuthoritySecret, EscrowKey)>> {
    let path = secrets_dir.join(SECRET_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let f: SecretFile = serde_json::from_slice(&read_secret(&path)?)?;
    Ok(Some((AuthoritySecret::from_bytes(&hex::decode(f.secret)?)?, EscrowKey::from_bytes(&hex::decode(f.key)?)?)))
}
