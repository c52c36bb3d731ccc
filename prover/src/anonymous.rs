//! The anonymous policy circuit (issue 17 item 3; docs/privacy.md "Open: requester
//! anonymity"): a requester proves what the `policy` circuit proves, that a credential in
//! the registry's tree satisfies a dataset's policy, without the proof naming the
//! credential, and with three additions that keep the properties the member's signature
//! gave: a rate-limiting nullifier, a binding to a fresh one-time key, and its identity
//! sealed for a quorum of audit authorities.
//!
//! Public inputs (in order): the credential root, the policy hash, the request binding,
//! the nullifier scope, the budget, the nullifier, the escrow key `(u, v)`, and the sealed
//! identity `(R_u, R_v, c)`. Private: the attributes, the salt, the key hash, the nullifier
//! key `nk`, the Merkle path, the policy, the counter and the sealing randomness.
//!
//! - **Credential leaf** `= P3(P16(a_0..a_15), salt, P2(key_hash, P2(NK_TAG, nk)))`. The
//!   member keeps `nk`; at enrollment the KGC sees its commitment `P2(NK_TAG, nk)` and
//!   not `nk`, so it cannot compute the member's nullifiers.
//! - **Nullifier** `= P3(nk, scope, counter + 2^16·NULLIFIER_TAG)` with
//!   `scope = P3(dataset_lo, dataset_hi, epoch)` and `counter < budget` (16 bits). One
//!   credential has exactly `budget` nullifiers per dataset and epoch; the ledger refuses a
//!   nullifier it has seen, so a credential makes at most `budget` requests there, and
//!   its requests cannot be linked to each other (each is a different pseudorandom value).
//!   This is the rate-limiting nullifier of the Semaphore/RLN family (Semaphore's
//!   `nullifier = H(identity nullifier, external nullifier)`, with RLN's message counter
//!   below a limit), kept to the hash the circuit already uses.
//! - **Binding** `= P3(request_id_lo, request_id_hi, H(one-time key))`, the same function
//!   as the `policy` circuit's but over a one-time key the requester makes for this
//!   request, not its member key. The verifier computes it; the circuit squares it, the
//!   usual way to bind a public input that no other constraint uses (as Tornado Cash binds
//!   its recipient), so the proof cannot be moved to another request or key.
//! - **Sealed identity**: the leaf index, which is the Merkle path's direction bits (no
//!   extra constraint to tie them), sealed under the escrow key with [`escrow::seal_gadget`].
//!   Revocation still works as before: a revoked credential's leaf leaves the tree, and
//!   the root after it is the one verifiers accept.

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use ff::Field;
use jubjub::{Fr as JubjubScalar, SubgroupPoint};

use crate::error::ProverError;
use crate::escrow::{self, Sealed};
use crate::field::{fr_from_bytes16, fr_from_u64};
use crate::gadgets::{self, Lc};
use crate::policy::{
    credential_parts, merkle_root_gadget, policy_gadget, root_from_path, CredentialParts, MerklePath, PolicyDnf,
    ATTRIBUTES, TREE_DEPTH,
};
use crate::poseidon::{hash16, hash2, hash2_gadget, hash3, hash3_gadget};

/// Poseidon domain tag of the nullifier key's commitment (ASCII "nk").
const NK_TAG: u64 = 0x6e_6b;
/// Tag folded into the nullifier's counter input (ASCII "nf").
const NULLIFIER_TAG: u64 = 0x6e_66;
/// Width of the counter and of the budget.
pub const COUNTER_BITS: usize = 16;
/// Number of public inputs.
pub const PUBLIC_INPUTS: usize = 11;

/// A member's credential on the anonymous path: the `policy` credential plus the
/// nullifier key only the member holds.
#[derive(Clone, PartialEq, Eq)]
pub struct AnonymousCredential {
    pub attributes: [u64; ATTRIBUTES],
    pub salt: Fr,
    pub key_hash: Fr,
    pub nullifier_key: Fr,
}

impl std::fmt::Debug for AnonymousCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonymousCredential").field("key_hash", &self.key_hash).finish_non_exhaustive()
    }
}

/// `P2(NK_TAG, nk)`: what the KGC sees of a nullifier key.
pub fn nullifier_commitment(nullifier_key: Fr) -> Fr {
    hash2(fr_from_u64(NK_TAG), nullifier_key)
}

impl AnonymousCredential {
    pub fn leaf(&self) -> Fr {
        anonymous_leaf(&self.attributes, self.salt, self.key_hash, nullifier_commitment(self.nullifier_key))
    }
}

/// The anonymous leaf from what the KGC holds at enrollment: the certified attributes,
/// the salt, the key hash and the member's nullifier key commitment (not the key).
pub fn anonymous_leaf(attributes: &[u64; ATTRIBUTES], salt: Fr, key_hash: Fr, nullifier_commitment: Fr) -> Fr {
    let attrs: Vec<Fr> = attributes.iter().map(|a| fr_from_u64(*a)).collect();
    let keys = hash2(key_hash, nullifier_commitment);
    hash3(hash16(&attrs.try_into().expect("16 attributes")), salt, keys)
}

/// The scope of a nullifier: one dataset in one epoch.
pub fn nullifier_scope(dataset: &[u8; 32], epoch: u64) -> Fr {
    hash3(fr_from_bytes16(&dataset[..16]), fr_from_bytes16(&dataset[16..]), fr_from_u64(epoch))
}

fn counter_input(counter: u16) -> Fr {
    fr_from_u64(u64::from(counter) + (NULLIFIER_TAG << COUNTER_BITS))
}

/// The nullifier of the `counter`-th request of a credential in a scope.
pub fn nullifier(nullifier_key: Fr, scope: Fr, counter: u16) -> Fr {
    hash3(nullifier_key, scope, counter_input(counter))
}

/// The public statement of an anonymous policy proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousStatement {
    pub credential_root: Fr,
    pub policy_hash: Fr,
    /// `policy::request_binding(request id, key_hash(one-time key))`.
    pub binding: Fr,
    pub scope: Fr,
    pub budget: u16,
    pub nullifier: Fr,
    pub escrow_key: SubgroupPoint,
    pub sealed: Sealed,
}

impl AnonymousStatement {
    pub fn public_inputs(&self) -> Vec<Fr> {
        let mut v = vec![
            self.credential_root,
            self.policy_hash,
            self.binding,
            self.scope,
            fr_from_u64(u64::from(self.budget)),
            self.nullifier,
        ];
        v.extend(escrow::public_key_inputs(&self.escrow_key));
        v.extend(self.sealed.inputs());
        v
    }
}

/// The anonymous policy circuit with its witness.
#[derive(Clone)]
pub struct AnonymousPolicyCircuit {
    pub credential: AnonymousCredential,
    pub path: MerklePath,
    pub policy: PolicyDnf,
    pub binding: Fr,
    pub scope: Fr,
    pub budget: u16,
    pub counter: u16,
    pub escrow_key: SubgroupPoint,
    pub seal_randomness: JubjubScalar,
}

impl std::fmt::Debug for AnonymousPolicyCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonymousPolicyCircuit").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl AnonymousPolicyCircuit {
    /// A well-formed instance used only for parameter generation (values do not matter).
    pub fn blank() -> Self {
        let base = crate::policy::PolicyCircuit::blank();
        Self {
            credential: AnonymousCredential {
                attributes: base.credential.attributes,
                salt: Fr::ZERO,
                key_hash: Fr::ZERO,
                nullifier_key: Fr::ZERO,
            },
            path: base.path,
            policy: base.policy,
            binding: Fr::ZERO,
            scope: Fr::ZERO,
            budget: 1,
            counter: 0,
            escrow_key: <SubgroupPoint as group::Group>::generator(),
            seal_randomness: JubjubScalar::ONE,
        }
    }

    /// The statement this witness proves.
    pub fn statement(&self) -> AnonymousStatement {
        AnonymousStatement {
            credential_root: root_from_path(self.credential.leaf(), &self.path),
            policy_hash: self.policy.hash(),
            binding: self.binding,
            scope: self.scope,
            budget: self.budget,
            nullifier: nullifier(self.credential.nullifier_key, self.scope, self.counter),
            escrow_key: self.escrow_key,
            sealed: escrow::seal_with(&self.escrow_key, self.path.index, &self.seal_randomness),
        }
    }

    /// Native check of everything the circuit enforces, with a reason on failure.
    pub fn check(&self, expected: &AnonymousStatement) -> Result<(), ProverError> {
        let actual = self.statement();
        let refuse = |why: &str| Err(ProverError::Statement(why.into()));
        if self.path.siblings.len() != TREE_DEPTH || self.path.index >> TREE_DEPTH != 0 {
            return refuse("the Merkle path is not one of the credential tree's");
        }
        if actual.credential_root != expected.credential_root {
            return refuse("the credential is not in the tree with this root");
        }
        if actual.policy_hash != expected.policy_hash {
            return refuse("the policy does not hash to the policy hash");
        }
        if !self.policy.is_satisfied_by(&self.credential.attributes) {
            return refuse("the credential's attributes do not satisfy the policy");
        }
        if (actual.binding, actual.scope, actual.budget) != (expected.binding, expected.scope, expected.budget) {
            return refuse("the binding, scope or budget is not this request's");
        }
        if self.counter >= self.budget {
            return refuse("the counter is not below the budget: this credential's requests in this scope are used up");
        }
        if actual.nullifier != expected.nullifier {
            return refuse("the nullifier is not this credential's for this scope and counter");
        }
        if (actual.escrow_key, &actual.sealed) != (expected.escrow_key, &expected.sealed) {
            return refuse("the sealed identity is not this credential's index under the escrow key");
        }
        Ok(())
    }
}

impl Circuit<Fr> for AnonymousPolicyCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let c = &self.credential;
        let CredentialParts { attr_lcs, attrs_hash, salt, key_hash } =
            credential_parts(cs, &c.attributes, c.salt, c.key_hash, &self.path)?;

        // Credential leaf, with the nullifier key's commitment, and Merkle path.
        let (nk, keys) = keys_gadget(cs, &key_hash, self.credential.nullifier_key)?;
        let leaf = hash3_gadget(cs.namespace(|| "leaf"), [&attrs_hash, &salt, &keys])?;
        let (root, directions) = merkle_root_gadget(cs, leaf, &self.path)?;
        root.inputize(cs.namespace(|| "credential root"))?;

        let policy_hash = policy_gadget(cs, &attr_lcs, &self.policy)?;
        policy_hash.inputize(cs.namespace(|| "policy hash input"))?;

        // The binding, squared so that the proof commits to it.
        let binding = AllocatedNum::alloc_input(cs.namespace(|| "binding"), || Ok(self.binding))?;
        binding.square(cs.namespace(|| "binding squared"))?;

        nullifier_gadget(cs, &nk, self.scope, self.budget, self.counter)?;

        // The leaf index, sealed under the escrow key.
        let key = escrow::alloc_key_input(cs.namespace(|| "escrow key"), &self.escrow_key)?;
        let index = gadgets::pack_bits(&directions);
        let (ephemeral, masked) = escrow::seal_gadget(cs.namespace(|| "seal"), &key, &index, &self.seal_randomness)?;
        escrow::inputize_sealed(cs.namespace(|| "sealed identity"), &ephemeral, &masked)
    }
}

/// Allocates the nullifier key and returns it with `P2(key_hash, P2(NK_TAG, nk))`, the
/// leaf's key part.
fn keys_gadget<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    key_hash: &AllocatedNum<Fr>,
    nullifier_key: Fr,
) -> Result<(AllocatedNum<Fr>, AllocatedNum<Fr>), SynthesisError> {
    let nk = AllocatedNum::alloc(cs.namespace(|| "nullifier key"), || Ok(nullifier_key))?;
    let nk_tag = gadgets::alloc_constant(cs.namespace(|| "nk tag"), fr_from_u64(NK_TAG))?;
    let nk_commitment = hash2_gadget(cs.namespace(|| "nk commitment"), &nk_tag, &nk)?;
    let keys = hash2_gadget(cs.namespace(|| "keys"), key_hash, &nk_commitment)?;
    Ok((nk, keys))
}

/// The scope and the budget as public inputs, `counter < budget`, and the nullifier
/// `P3(nk, scope, counter + tag)` as the next public input.
fn nullifier_gadget<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    nk: &AllocatedNum<Fr>,
    scope: Fr,
    budget: u16,
    counter: u16,
) -> Result<(), SynthesisError> {
    let scope = AllocatedNum::alloc_input(cs.namespace(|| "scope"), || Ok(scope))?;
    let budget = AllocatedNum::alloc_input(cs.namespace(|| "budget"), || Ok(fr_from_u64(u64::from(budget))))?;
    let (counter, _) = gadgets::alloc_uint(cs.namespace(|| "counter"), u64::from(counter), COUNTER_BITS)?;
    let next = Lc::num(&counter).add(&Lc::constant::<CS>(Fr::ONE));
    // budget < 2^16 (the verifier supplies it) and counter + 1 ≤ 2^16.
    let within = gadgets::geq(cs.namespace(|| "within budget"), &Lc::num(&budget), &next, COUNTER_BITS + 1)?;
    gadgets::enforce_true(cs.namespace(|| "counter below budget"), &within);
    let tagged = Lc::num(&counter).add(&Lc::constant::<CS>(fr_from_u64(NULLIFIER_TAG << COUNTER_BITS)));
    let tagged = gadgets::alloc_lc(cs.namespace(|| "tagged counter"), &tagged)?;
    let nullifier = hash3_gadget(cs.namespace(|| "nullifier"), [nk, &scope, &tagged])?;
    nullifier.inputize(cs.namespace(|| "nullifier input"))
}

/// Number of public inputs of the [`DemandNullifierCircuit`].
pub const DEMAND_NULLIFIER_PUBLIC_INPUTS: usize = 4;

/// The public statement of a named demand's nullifier proof: the member's anonymous leaf
/// (public on chain with its credential), the scope, the budget and the nullifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemandNullifierStatement {
    pub anonymous_leaf: Fr,
    pub scope: Fr,
    pub budget: u16,
    pub nullifier: Fr,
}

impl DemandNullifierStatement {
    pub fn public_inputs(&self) -> Vec<Fr> {
        vec![self.anonymous_leaf, self.scope, fr_from_u64(u64::from(self.budget)), self.nullifier]
    }
}

/// One demand budget across both paths (docs/privacy.md "Requester anonymity"): a
/// member's *named* demand spends one of its credential's nullifiers too, so that its
/// named and anonymous demands on a dataset in an epoch together stay within the budget.
///
/// The circuit proves that the nullifier is `P3(nk, scope, counter + tag)` with
/// `counter < budget`, for the `nk` committed in the member's anonymous leaf, the leaf the
/// ledger looks up for the demand's signer. It reveals nothing that links the demand to
/// the member's anonymous demands: those spend the credential's other nullifiers, each a
/// different pseudorandom value, and nothing else of the leaf's opening is public. No
/// binding to the demand is needed: the ledger checks the proof against the signer's own
/// leaf, so a copied proof proves nothing for another member, and a nullifier is spent
/// once.
#[derive(Clone)]
pub struct DemandNullifierCircuit {
    pub credential: AnonymousCredential,
    pub scope: Fr,
    pub budget: u16,
    pub counter: u16,
}

impl std::fmt::Debug for DemandNullifierCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemandNullifierCircuit").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl DemandNullifierCircuit {
    /// A well-formed instance used only for parameter generation.
    pub fn blank() -> Self {
        let c = AnonymousPolicyCircuit::blank();
        Self { credential: c.credential, scope: Fr::ZERO, budget: 1, counter: 0 }
    }

    pub fn statement(&self) -> DemandNullifierStatement {
        DemandNullifierStatement {
            anonymous_leaf: self.credential.leaf(),
            scope: self.scope,
            budget: self.budget,
            nullifier: nullifier(self.credential.nullifier_key, self.scope, self.counter),
        }
    }

    /// Native check of everything the circuit enforces, with a reason on failure.
    pub fn check(&self, expected: &DemandNullifierStatement) -> Result<(), ProverError> {
        let actual = self.statement();
        let refuse = |why: &str| Err(ProverError::Statement(why.into()));
        if actual.anonymous_leaf != expected.anonymous_leaf {
            return refuse("the credential is not the one whose anonymous leaf is on the ledger");
        }
        if (actual.scope, actual.budget) != (expected.scope, expected.budget) {
            return refuse("the scope or budget is not this demand's");
        }
        if self.counter >= self.budget {
            return refuse("the counter is not below the budget: this credential's demands in this scope are used up");
        }
        if actual.nullifier != expected.nullifier {
            return refuse("the nullifier is not this credential's for this scope and counter");
        }
        Ok(())
    }
}

impl Circuit<Fr> for DemandNullifierCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let c = &self.credential;
        let attrs: Vec<Fr> = c.attributes.iter().map(|a| fr_from_u64(*a)).collect();
        let attrs_hash = hash16(&attrs.try_into().expect("16 attributes"));
        let attrs_hash = AllocatedNum::alloc(cs.namespace(|| "attributes hash"), || Ok(attrs_hash))?;
        let salt = AllocatedNum::alloc(cs.namespace(|| "salt"), || Ok(c.salt))?;
        let key_hash = AllocatedNum::alloc(cs.namespace(|| "key hash"), || Ok(c.key_hash))?;
        let (nk, keys) = keys_gadget(cs, &key_hash, c.nullifier_key)?;
        let leaf = hash3_gadget(cs.namespace(|| "leaf"), [&attrs_hash, &salt, &keys])?;
        leaf.inputize(cs.namespace(|| "anonymous leaf"))?;
        nullifier_gadget(cs, &nk, self.scope, self.budget, self.counter)
    }
}
