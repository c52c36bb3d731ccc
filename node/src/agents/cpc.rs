//! A cloud privacy center's node: it takes owners' signcrypted records (checking each
//! signature), re-encrypts a dataset's capsules in one batch once a re-key for one of its
//! grants is final, files the receipt, drops a grant when its revocation is final, and
//! serves re-encrypted records only to the grant's requester while the grant is usable.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_crypto::cbsre::{DatasetId, ReKeyToken, Reencrypted, Signcrypted};
use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::reencrypt::ReencryptBackend;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{Hash, Outcome, TxKind};
use dualchain_ledger::Ledger;
use dualchain_storage::cpc::{CpcStore, Manifest, Swept};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::follow::{follow_home, Agent};
use super::metrics::ResultLabel;
use super::{Activity, AgentMetrics, Log, Reaction};
use crate::clock::unix_ms;
use crate::member::client::Client;
use crate::member::{Member, REKEY_AAD};

/// A signed request for re-encrypted records (JSON with hex bytes between nodes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub grant: Hash,
    pub requester: String,
    /// H1 as the requester read it from the CP-ABE index.
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub h1: Hash,
    pub at_ms: u64,
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub signature: [u8; 64],
}

pub const FETCH_SIGNING_USE: &str = "cpc-fetch";
/// How far a fetch request's time may be from the CPC's clock.
pub const FETCH_SKEW_MS: u64 = 60_000;

impl FetchRequest {
    fn message(grant: &Hash, requester: &str, h1: &Hash, at_ms: u64) -> Vec<u8> {
        let mut m = grant.to_vec();
        m.extend_from_slice(h1);
        m.extend_from_slice(&at_ms.to_be_bytes());
        m.extend_from_slice(requester.as_bytes());
        m
    }
    /// A fetch by the pseudonym of `signer`, a one-time key (`member::anonymous`).
    pub fn sign_as(signer: &dualchain_crypto::sign::SigningKeypair, requester: &str, grant: Hash, h1: Hash) -> Self {
        let at_ms = unix_ms();
        let signature = signer.sign(FETCH_SIGNING_USE, &Self::message(&grant, requester, &h1, at_ms));
        Self { grant, requester: requester.to_string(), h1, at_ms, signature }
    }

    pub fn sign(member: &Member, grant: Hash, h1: Hash) -> Self {
        let at_ms = unix_ms();
        let signature = member.signer.sign(FETCH_SIGNING_USE, &Self::message(&grant, &member.id, &h1, at_ms));
        Self { grant, requester: member.id.clone(), h1, at_ms, signature }
    }
}

/// How often a CPC's retention sweep runs.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A cloud privacy center's node.
pub struct CpcNode {
    pub member: Arc<Member>,
    pub client: Arc<Client>,
    pub store: Arc<CpcStore>,
    pub backend: Arc<dyn ReencryptBackend + Send + Sync>,
    pub log: Log,
    /// Capsules re-encrypted per batch chunk.
    pub chunk_records: usize,
    pub metrics: AgentMetrics,
}

impl CpcNode {
    /// A CPC's agent re-encrypting on `backend` (the CUDA one or the CPU's, chosen by whoever
    /// assembles the node).
    pub fn new(
        member: Arc<Member>,
        client: Arc<Client>,
        store: Arc<CpcStore>,
        backend: Arc<dyn ReencryptBackend + Send + Sync>,
        log: Log,
    ) -> Self {
        Self { member, client, store, backend, log, chunk_records: 4096, metrics: AgentMetrics::default() }
    }

    fn ledger(&self) -> &Ledger {
        &self.client.home().ledger
    }

    fn signing_key_of(&self, member: &str) -> Result<PublicKey> {
        // An anonymous requester's pseudonym is its one-time key.
        if let Some(key) = dualchain_ledger::tx::pseudonym_key(member) {
            return key.map_err(|e| anyhow!(e));
        }
        let m = self.ledger().member(member)?.ok_or_else(|| anyhow!("unknown member {member}"))?;
        if let Some(r) = m.revoked {
            bail!("member {member} is revoked ({r})");
        }
        Ok(PublicKey::from_raw(&m.signing_key)?)
    }

    /// Takes an owner's signcrypted records (each signature checked) and returns the
    /// manifest, whose hash is H1′.
    pub fn upload(&self, owner: &str, records: &[Signcrypted]) -> Result<Manifest> {
        let m = self.ledger().member(owner)?.ok_or_else(|| anyhow!("unknown member {owner}"))?;
        ensure!(m.role == "hospital" && m.revoked.is_none(), "{owner} is not an active data owner");
        let manifest = self.store.ingest(&PublicKey::from_raw(&m.signing_key)?, records)?;
        self.metrics.ingested_records.inc_by(records.len() as u64);
        Ok(manifest)
    }

    pub fn spawn(self: &Arc<Self>) -> Agent {
        let me = self.clone();
        follow_home(&self.member.id, self.log.clone(), &self.client, move |kind| {
            let me = me.clone();
            match kind {
                TxKind::IssueReKey { grant, sealed_token, .. }
                | TxKind::BreakGlassGrant { grant, sealed_token, .. } => {
                    Some(Box::pin(async move { me.serve_grant(grant, sealed_token).await }) as Reaction)
                }
                TxKind::RevokeGrant { grant, .. } => Some(Box::pin(async move { me.drop_grant(grant) })),
                // An unjustified break-glass review ends its grants on chain: their results go at once.
                TxKind::ReviewBreakGlass { request, justified: false, .. } => Some(Box::pin(async move {
                    let Some(bg) = me.ledger().break_glass(&request)? else { return Ok(()) };
                    for g in bg.grants {
                        me.drop_grant(g.0)?;
                    }
                    Ok(())
                })),
                TxKind::EraseDataset { dataset, .. } => Some(Box::pin(async move { me.erase(dataset) })),
                _ => None,
            }
        })
    }

    async fn serve_grant(self: Arc<Self>, grant_id: Hash, sealed: Vec<u8>) -> Result<()> {
        let Some(grant) = self.ledger().grant(&grant_id)? else { return Ok(()) };
        if grant.cpc != self.member.id || grant.receipts > 0 || grant.usable(unix_ms()).is_err() {
            return Ok(()); // someone else's, served before, or no longer usable
        }
        let ct = IbeCiphertext::from_bytes(&sealed)?;
        let token = ReKeyToken::from_bytes(&self.member.ibe_key()?.decrypt(&ct, REKEY_AAD)?)?;
        ensure!(
            token.grant_id == grant_id && token.owner == grant.owner && token.requester == grant.requester,
            "the re-key token does not match its grant"
        );
        ensure!(token.dataset.0 == grant.dataset, "the re-key token names another dataset than its grant");
        let owner_key = self.signing_key_of(&grant.owner)?;
        let now_s = unix_ms() / 1000;
        if self.store.grant(&grant_id)?.is_none() {
            self.store.put_grant(grant_id, token, &owner_key, now_s).context("storing the grant")?;
        }
        let me = self.clone();
        let started = Instant::now();
        let receipt = tokio::task::spawn_blocking(move || {
            me.store.reencrypt(
                &grant_id,
                me.backend.as_ref(),
                &owner_key,
                now_s,
                me.chunk_records,
                &mut ChaCha20Rng::from_entropy(),
            )
        })
        .await??;
        let took = started.elapsed();
        self.metrics.reencrypted_records.inc_by(receipt.records);
        self.metrics.reencrypt_batches.inc();
        self.client
            .submit_accepted(TxKind::Receipt {
                grant: grant_id,
                records: receipt.records,
                results_digest: receipt.results_digest,
            })
            .await?;
        self.log.push(&self.member.id, Activity::Reencrypted { grant: grant_id, records: receipt.records, took });
        Ok(())
    }

    fn drop_grant(&self, grant_id: Hash) -> Result<()> {
        if self.store.grant(&grant_id)?.is_some() {
            self.store.revoke_grant(&grant_id)?;
            self.log.push(&self.member.id, Activity::GrantDropped { grant: grant_id });
            // A revoked grant's records are deleted at once, not at the next sweep.
            self.sweep()?;
        }
        Ok(())
    }

    /// Gives an owner back its own signcrypted records of a dataset, as stored (a patient's
    /// erasure re-registers the other patients' records under a new key). Nothing is
    /// re-encrypted: they open only with the dataset's key, which the owner holds. Refused
    /// for anyone but the member whose signatures the records carry, for a revoked owner,
    /// and for a dataset erased here.
    pub fn retrieve(&self, owner: &str, dataset: &DatasetId) -> Result<Vec<Signcrypted>> {
        let key = self.signing_key_of(owner)?;
        ensure!(self.store.erased(dataset)?.is_none(), "dataset {dataset} was erased");
        let records = self.store.records(dataset)?;
        for r in &records {
            ensure!(r.header.owner == owner, "dataset {dataset} is not {owner}'s");
            r.verify_signature(&key).with_context(|| format!("dataset {dataset} is not {owner}'s"))?;
        }
        Ok(records)
    }

    /// Erases a dataset its owner erased on chain, if it is stored here.
    fn erase(&self, dataset: Hash) -> Result<()> {
        let id = DatasetId(dataset);
        if self.store.manifest(&id)?.is_none() {
            return Ok(());
        }
        let erased = self.store.erase_dataset(&id, unix_ms() / 1000)?;
        self.log.push(&self.member.id, Activity::Erased { dataset, records: erased.records, grants: erased.grants });
        Ok(())
    }

    /// The retention sweep ([`CpcStore::sweep`]): deletes the re-encrypted records, jobs
    /// and tokens of grants that were revoked or have expired.
    pub fn sweep(&self) -> Result<Swept> {
        let swept = self.store.sweep(unix_ms() / 1000)?;
        if swept.grants > 0 {
            self.log.push(&self.member.id, Activity::Swept { grants: swept.grants, records: swept.results });
            tracing::info!(grants = swept.grants, records = swept.results, "cpc.retention: ended grants swept");
        }
        Ok(swept)
    }

    /// Runs the retention sweep every `every` (expired grants end without a transaction).
    pub async fn sweep_every(self: Arc<Self>, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.sweep()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "cpc.retention: the sweep failed; retried"),
                Err(e) => tracing::warn!(error = %e, "cpc.retention: the sweep task failed"),
            }
        }
    }

    /// Serves a grant's re-encrypted records to its requester: the request's signature,
    /// the requester's membership, the grant's state on chain (active, not expired), H1
    /// against this CPC's manifest H1′, then the stored results.
    pub fn fetch(&self, req: &FetchRequest) -> Result<Vec<Reencrypted>> {
        let r = self.fetch_checked(req);
        let result = if r.is_ok() { "ok" } else { "refused" };
        self.metrics.fetches.get_or_create(&ResultLabel { result: result.into() }).inc();
        r
    }

    /// Records on the access chain that `results` of a grant are served to its requester
    /// (`Fetched`: their number and the digest of the receipt they are the results of),
    /// before they are: what the ledger made of it.
    pub async fn record_fetch(&self, grant: Hash, results: &[Reencrypted]) -> Result<Outcome> {
        let receipt = self.store.receipt(&grant)?.ok_or_else(|| anyhow!("no receipt for the grant"))?;
        let kind = TxKind::Fetched { grant, records: results.len() as u64, results_digest: receipt.results_digest };
        Ok(self.client.submit(kind).await?.outcome)
    }

    fn fetch_checked(&self, req: &FetchRequest) -> Result<Vec<Reencrypted>> {
        let now = unix_ms();
        ensure!(now.abs_diff(req.at_ms) <= FETCH_SKEW_MS, "fetch request too old or from the future");
        let key = self.signing_key_of(&req.requester)?;
        ensure!(
            key.verify(
                FETCH_SIGNING_USE,
                &FetchRequest::message(&req.grant, &req.requester, &req.h1, req.at_ms),
                &req.signature
            ),
            "fetch request signature does not verify"
        );
        let grant = self.ledger().grant_usable(&req.grant, now).map_err(|e| anyhow!("refused: {e}"))?;
        ensure!(
            grant.requester == req.requester,
            "refused: the grant is {}'s, not {}'s",
            grant.requester,
            req.requester
        );
        ensure!(grant.cpc == self.member.id, "refused: the grant is served by {}", grant.cpc);
        let manifest =
            self.store.manifest(&DatasetId(grant.dataset))?.ok_or_else(|| anyhow!("dataset not held here"))?;
        ensure!(manifest.hash() == req.h1, "refused: H1 from the index differs from this CPC's manifest H1'");
        let owner_key = self.signing_key_of(&grant.owner)?;
        Ok(self.store.results(&req.grant, &owner_key, now / 1000)?)
    }
}
