//! The requester's side of the anonymous path (`dualchain_ledger::contracts::anonymous`,
//! docs/privacy.md): a demand made by a one-time key with an anonymous policy proof, and
//! what follows it (the access request, the fetch, the decryption) done with that key and
//! a one-time delegating key, never with the member's own.
//!
//! Each anonymous demand's one-time keys are kept in `data/anonymous/<demand>.json`
//! (mode 0600) on the requester's node: losing them loses the grant, and anyone holding
//! them could fetch its records. Nothing in them names the member.
//!
//! The credential's nullifier for the demand is the first of its `budget` nullifiers for
//! the dataset and epoch that neither the ledger nor a pending demand of this node has
//! spent. The member's *named* demands spend the same nullifiers ([`named_nullifier`]),
//! so that both paths together stay within the dataset's budget.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dualchain_crypto::cbsre::DelegatingSecretKey;
use dualchain_crypto::sign::SigningKeypair;
use dualchain_kernels::Compute;
use dualchain_ledger::consent::Purpose;
use dualchain_ledger::tx::{
    pseudonym_of, AnonymousDemand, DemandNullifier, FrBytes, Hash, SignedTx, Tx, TxDomain, TxKind,
};
use dualchain_ledger::Ledger;
use dualchain_prover::anonymous::{nullifier, nullifier_scope, AnonymousPolicyCircuit, DemandNullifierCircuit};
use dualchain_prover::escrow::seal;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{key_hash, request_binding, PolicyDnf};
use dualchain_prover::supply::Requirement;
use dualchain_prover::verify::proof_to_bytes;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::Member;
use crate::files::{from_hex, read_secret, to_hex, write_private};

/// The one-time keys of one anonymous demand.
pub struct OneTime {
    pub demand: Hash,
    pub dataset: Hash,
    pub signer: SigningKeypair,
    pub dsk: DelegatingSecretKey,
    /// The nullifier the demand spends (kept so that a second demand does not pick it
    /// while the first is pending).
    pub nullifier: FrBytes,
}

#[derive(Serialize, Deserialize)]
struct OneTimeFile {
    demand: String,
    dataset: String,
    signer: String,
    dsk: String,
    nullifier: String,
}

impl OneTime {
    /// The pseudonym it acts as.
    pub fn pseudonym(&self) -> String {
        pseudonym_of(&self.signer.public())
    }

    /// Signs `kind` as the pseudonym (the nonce from the clock, as a member's client does).
    pub fn sign(&self, domain: &TxDomain, kind: TxKind) -> Result<SignedTx> {
        let nonce =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
        Ok(SignedTx::sign(Tx { sender: self.pseudonym(), nonce, kind }, &self.signer, domain)?)
    }
}

/// Where a requester's node keeps its one-time keys.
pub struct OneTimeStore {
    dir: PathBuf,
}

impl OneTimeStore {
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("anonymous") }
    }

    fn path(&self, demand: &Hash) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(demand)))
    }

    /// Keeps `one` before anything signed with it leaves the node.
    pub fn save(&self, one: &OneTime) -> Result<()> {
        let f = OneTimeFile {
            demand: hex::encode(one.demand),
            dataset: hex::encode(one.dataset),
            signer: to_hex(&one.signer),
            dsk: to_hex(&one.dsk),
            nullifier: hex::encode(one.nullifier.0),
        };
        write_private(&self.path(&one.demand), &serde_json::to_vec_pretty(&f)?)
    }

    /// The one-time keys of `demand`, if this node made it.
    pub fn load(&self, demand: &Hash) -> Result<Option<OneTime>> {
        let path = self.path(demand);
        if !path.exists() {
            return Ok(None);
        }
        let f: OneTimeFile = serde_json::from_slice(&read_secret(&path)?)?;
        let id = |h: &str, what: &str| -> Result<Hash> {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b).with_context(|| format!("{what} in {}", path.display()))?;
            Ok(b)
        };
        Ok(Some(OneTime {
            demand: id(&f.demand, "demand")?,
            dataset: id(&f.dataset, "dataset")?,
            signer: from_hex(&f.signer, "one-time signing key")?,
            dsk: from_hex(&f.dsk, "one-time delegating key")?,
            nullifier: FrBytes(id(&f.nullifier, "nullifier")?),
        }))
    }

    /// Every one-time key set kept here.
    fn all(&self) -> Result<Vec<OneTime>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for e in entries {
            let name = e?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            let mut demand = [0u8; 32];
            if hex::decode_to_slice(stem, &mut demand).is_ok() {
                out.extend(self.load(&demand)?);
            }
        }
        Ok(out)
    }

    /// The one-time keys behind `pseudonym`'s demand `demand`, if this node holds them.
    pub fn of_pseudonym(&self, demand: &Hash, pseudonym: &str) -> Result<Option<OneTime>> {
        Ok(self.load(demand)?.filter(|o| o.pseudonym() == pseudonym))
    }

    /// The one-time keys a grant's requester holds, if the grant is to a pseudonym whose
    /// keys this node holds (a named grant: none).
    pub fn of_grant(&self, grant: &dualchain_ledger::state::GrantRecord) -> Result<Option<OneTime>> {
        if !dualchain_ledger::tx::is_pseudonym(&grant.requester) {
            return Ok(None);
        }
        self.of_pseudonym(&grant.demand, &grant.requester)
    }
}

/// What an anonymous demand needs from the ledger and the dataset's index.
pub struct DemandInputs<'a> {
    pub ledger: &'a Ledger,
    pub compute: &'static Compute,
    pub pk: std::sync::Arc<ProvingKey>,
    /// The dataset's zero-knowledge policy, opened from its CP-ABE index.
    pub policy: PolicyDnf,
    pub dataset: Hash,
    pub requirement: Requirement,
    pub purpose: Purpose,
    /// The ledger time the demand is expected at (its epoch scopes the nullifier).
    pub now_ms: u64,
    /// The nullifiers this node's named demands are spending now.
    pub named_pending: &'a PendingNullifiers,
}

/// The first of a credential's `budget` nullifiers in `scope` that neither the ledger nor
/// `pending` has spent, with its counter.
fn unspent_nullifier(
    ledger: &Ledger,
    nk: blstrs::Scalar,
    scope: blstrs::Scalar,
    budget: u16,
    pending: &[FrBytes],
) -> Result<Option<(u16, FrBytes)>> {
    for counter in 0..budget {
        let n = FrBytes::from_fr(&nullifier(nk, scope, counter));
        if ledger.nullifier(&n)?.is_none() && !pending.contains(&n) {
            return Ok(Some((counter, n)));
        }
    }
    Ok(None)
}

/// The nullifiers of named demands this node is submitting. Kept in memory only: a demand
/// that never reached the ledger spent nothing, and one that did is on the ledger.
#[derive(Default)]
pub struct PendingNullifiers(std::sync::Mutex<Vec<FrBytes>>);

impl PendingNullifiers {
    fn list(&self) -> Vec<FrBytes> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A named demand's hold on its nullifier until the demand is final; dropping it frees
/// the nullifier for the next demand if the ledger did not take it.
pub struct PendingHold<'a> {
    pending: &'a PendingNullifiers,
    nullifier: FrBytes,
}

impl Drop for PendingHold<'_> {
    fn drop(&mut self) {
        self.pending.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| *n != self.nullifier);
    }
}

/// What [`named_nullifier`] works with: the node's ledger, prover, `demand-nullifier` key
/// (none without the anonymous path), one-time keys and pending named nullifiers.
pub struct NamedInputs<'a, 'p> {
    pub ledger: &'a Ledger,
    pub compute: &'static Compute,
    pub pk: Option<std::sync::Arc<ProvingKey>>,
    pub store: &'a OneTimeStore,
    pub pending: &'p PendingNullifiers,
}

/// The nullifier a named demand of `member` on `dataset` spends, with its proof, where the
/// consortium has the anonymous path (`pk`) and the member's credential an anonymous leaf
/// (`None` elsewhere: its demands are then counted by name alone). Chosen as an anonymous
/// demand's is, so that the two paths share the credential's budget.
pub async fn named_nullifier<'p>(
    member: &Member,
    n: NamedInputs<'_, 'p>,
    dataset: &Hash,
    now_ms: u64,
) -> Result<Option<(DemandNullifier, PendingHold<'p>, Duration)>> {
    let NamedInputs { ledger, compute, pk, store, pending } = n;
    let Some(pk) = pk else { return Ok(None) };
    if ledger.anonymous_credential(&member.id)?.is_none() {
        return Ok(None);
    }
    let ds = ledger.dataset(dataset)?.ok_or_else(|| anyhow!("unknown dataset"))?;
    let budget = ds.disclosure.demands_per_epoch;
    let scope = nullifier_scope(dataset, ds.disclosure.epoch_of(now_ms));
    let (hold, counter) = {
        let mut held = pending.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken: Vec<FrBytes> = store.all()?.into_iter().map(|o| o.nullifier).collect();
        taken.extend(held.iter().copied());
        let Some((counter, n)) = unspent_nullifier(ledger, member.nullifier_key(), scope, budget, &taken)? else {
            bail!(
                "this credential's {budget} demands on the dataset this epoch are spent (named and anonymous together)"
            );
        };
        held.push(n);
        (PendingHold { pending, nullifier: n }, counter)
    };
    let circuit = DemandNullifierCircuit { credential: member.anonymous_credential(), scope, budget, counter };
    circuit.check(&circuit.statement()).map_err(|e| anyhow!("this member cannot prove its nullifier: {e}"))?;
    let started = Instant::now();
    let proof = tokio::task::spawn_blocking(move || compute.prove_queued(pk, circuit)).await??.0;
    let body = DemandNullifier { nullifier: hold.nullifier, proof: proof_to_bytes(&proof).to_vec() };
    Ok(Some((body, hold, started.elapsed())))
}

/// Makes, keeps and signs an anonymous demand of `member`: fresh one-time keys, an unspent
/// nullifier, the identity sealed under the consortium's escrow key, the proof. Returns the
/// keys, the transaction and the proving time.
pub async fn demand(
    member: &Member,
    store: &OneTimeStore,
    i: DemandInputs<'_>,
) -> Result<(OneTime, SignedTx, Duration)> {
    let ledger = i.ledger;
    let escrow = ledger.escrow_key()?.ok_or_else(|| anyhow!("the anonymous path is not open: no escrow key yet"))?;
    let ds = ledger.dataset(&i.dataset)?.ok_or_else(|| anyhow!("unknown dataset"))?;
    let path = ledger
        .anonymous_credential_path(&member.id)?
        .ok_or_else(|| anyhow!("{} holds no anonymous credential", member.id))?;
    let root = ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root yet"))?;
    let budget = ds.disclosure.demands_per_epoch;
    let scope = nullifier_scope(&i.dataset, ds.disclosure.epoch_of(i.now_ms));
    let nk = member.nullifier_key();
    let mut pending: Vec<FrBytes> = store.all()?.into_iter().map(|o| o.nullifier).collect();
    pending.extend(i.named_pending.list());
    let Some((counter, nullifier)) = unspent_nullifier(ledger, nk, scope, budget, &pending)? else {
        bail!("this credential's {budget} demands on the dataset this epoch are spent");
    };
    let signer = SigningKeypair::generate(&mut OsRng);
    let dsk = DelegatingSecretKey::generate(&mut OsRng);
    let mut demand = [0u8; 32];
    OsRng.fill_bytes(&mut demand);
    let (_, randomness) = seal(&escrow, 0, &mut OsRng)?;
    let circuit = AnonymousPolicyCircuit {
        credential: member.anonymous_credential(),
        path,
        policy: i.policy,
        binding: request_binding(&demand, key_hash(signer.public().as_bytes())),
        scope,
        budget,
        counter,
        escrow_key: escrow.public_key(),
        seal_randomness: randomness,
    };
    let statement = circuit.statement();
    circuit.check(&statement).map_err(|e| anyhow!("this member cannot make the anonymous proof: {e}"))?;
    let started = Instant::now();
    let (pk, compute) = (i.pk.clone(), i.compute);
    let proof = tokio::task::spawn_blocking(move || compute.prove_queued(pk, circuit)).await??.0;
    let took = started.elapsed();
    let one = OneTime { demand, dataset: i.dataset, signer, dsk, nullifier };
    store.save(&one)?;
    let body = AnonymousDemand {
        demand,
        dataset: i.dataset,
        requirement: i.requirement,
        purpose: i.purpose,
        root,
        nullifier,
        sealed_identity: dualchain_crypto::Codec::to_bytes(&statement.sealed),
        delegating_key: dualchain_crypto::Codec::to_bytes(&one.dsk.public()),
        proof: proof_to_bytes(&proof).to_vec(),
    };
    let stx = one.sign(ledger.tx_domain(), TxKind::AnonymousDemand(body))?;
    Ok((one, stx, took))
}

impl OneTimeStore {
    /// Forgets the one-time keys of a demand the ledger refused, so that its nullifier is
    /// free for the next demand (the refused one spent nothing).
    pub fn discard(&self, demand: &Hash) -> Result<()> {
        match std::fs::remove_file(self.path(demand)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
