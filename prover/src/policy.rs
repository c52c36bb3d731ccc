//! The `policy` circuit: a requester proves that its certified attributes satisfy a
//! dataset's access policy, without revealing the attributes (DESIGN.md §4.4, §3 step 7).
//!
//! Public inputs (in order): the credential Merkle root, the policy hash, the request
//! binding. Private: 16 attributes (64-bit), a salt, the requester key hash, the Merkle path
//! (depth 32) of the credential leaf, the request id, and the policy as 4 clauses of 4
//! predicates in disjunctive normal form.
//!
//! - Credential leaf `= P3(P16(a_0..a_15), salt, key_hash)`; the registry keeps these
//!   leaves in a sparse Poseidon Merkle tree of depth 32 ([`CredentialTree`]).
//! - Predicate slot `(attribute index, op ∈ {=, ≠, ≥, ≤}, 64-bit constant, enabled)`,
//!   packed as `index + 2^4·op + 2^6·enabled + 2^7·constant`; clause-enable bits packed as a
//!   4-bit mask; policy hash `= P2(P16(slots), mask)`. A disabled predicate is true, a
//!   disabled clause is false, the policy is the OR of its clauses.
//! - Request binding `= P3(request_id_lo, request_id_hi, key_hash)`: the proof is bound to
//!   one request and to the key in the credential, so it cannot be replayed for another.
//!
//! Range: comparisons are sound for operands below 2^64. Attributes come from CA-validated
//! 64-bit vectors (the registry inserts leaves only from those) and constants from the
//! public policy hash, which verifiers compute from 64-bit constants; both are bound by a
//! hash, so the circuit does not re-check their range.
//!
//! The circuit is universal for its shape: any policy of up to 4×4 predicates over the 16
//! attribute slots uses the same parameters.

use std::collections::{BTreeMap, HashMap};

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use ff::Field;

use crate::error::ProverError;
use crate::field::{fr_from_bytes16, fr_from_u64};
use crate::gadgets::{self, Lc};
use crate::poseidon::{hash16, hash16_gadget, hash2, hash2_gadget, hash3, hash3_gadget};

pub const ATTRIBUTES: usize = 16;
pub const CLAUSES: usize = 4;
pub const PREDICATES_PER_CLAUSE: usize = 4;
pub const SLOTS: usize = CLAUSES * PREDICATES_PER_CLAUSE;
pub const TREE_DEPTH: usize = 32;
pub const ATTRIBUTE_BITS: usize = 64;
const _: () = assert!(SLOTS == 16, "the policy hash absorbs exactly 16 slots");

/// Attribute slots every consortium credential uses.
pub mod schema {
    pub const ROLE: u8 = 0;
    pub const DEPARTMENT: u8 = 1;
    pub const INSTITUTION: u8 = 2;
    pub const CLEARANCE: u8 = 3;
    /// Day number (UNIX days) until which the member's ethics training is valid.
    pub const TRAINING_VALID_UNTIL: u8 = 4;
    pub const COUNTRY: u8 = 5;
}

/// A categorical attribute value (`research`, `cardiology`) as a 63-bit code.
pub fn categorical(value: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::new().chain_update(b"dualchain/v1/attribute-code").chain_update(value.as_bytes()).finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) >> 1
}

/// Comparison of a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
}

impl Op {
    fn code(self) -> usize {
        match self {
            Op::Eq => 0,
            Op::Ne => 1,
            Op::Ge => 2,
            Op::Le => 3,
        }
    }
    fn holds(self, attr: u64, constant: u64) -> bool {
        match self {
            Op::Eq => attr == constant,
            Op::Ne => attr != constant,
            Op::Ge => attr >= constant,
            Op::Le => attr <= constant,
        }
    }
}

/// `attributes[attribute] op constant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicate {
    pub attribute: u8,
    pub op: Op,
    pub constant: u64,
}

/// A policy in disjunctive normal form: up to 4 clauses of up to 4 predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDnf {
    clauses: Vec<Vec<Predicate>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    index: usize,
    op: usize,
    constant: u64,
    enabled: bool,
}

impl PolicyDnf {
    pub fn new(clauses: Vec<Vec<Predicate>>) -> Result<Self, ProverError> {
        if clauses.is_empty() || clauses.len() > CLAUSES {
            return Err(ProverError::Statement(format!("a policy has 1..={CLAUSES} clauses, got {}", clauses.len())));
        }
        for (i, c) in clauses.iter().enumerate() {
            if c.is_empty() || c.len() > PREDICATES_PER_CLAUSE {
                return Err(ProverError::Statement(format!(
                    "clause {i} has {} predicates; 1..={PREDICATES_PER_CLAUSE} allowed",
                    c.len()
                )));
            }
            if let Some(p) = c.iter().find(|p| p.attribute as usize >= ATTRIBUTES) {
                return Err(ProverError::Statement(format!(
                    "attribute index {} is not below {ATTRIBUTES}",
                    p.attribute
                )));
            }
        }
        Ok(Self { clauses })
    }

    pub fn clauses(&self) -> &[Vec<Predicate>] {
        &self.clauses
    }

    fn slots(&self) -> ([Slot; SLOTS], [bool; CLAUSES]) {
        let mut slots = [Slot::default(); SLOTS];
        let mut enabled = [false; CLAUSES];
        for (c, clause) in self.clauses.iter().enumerate() {
            enabled[c] = true;
            for (p, pred) in clause.iter().enumerate() {
                slots[c * PREDICATES_PER_CLAUSE + p] =
                    Slot { index: pred.attribute as usize, op: pred.op.code(), constant: pred.constant, enabled: true };
            }
        }
        (slots, enabled)
    }

    /// The policy hash, as a public input and as pinned with a dataset.
    pub fn hash(&self) -> Fr {
        let (slots, enabled) = self.slots();
        let packed: Vec<Fr> = slots.iter().map(pack_slot).collect();
        let mask = enabled.iter().enumerate().fold(0u64, |m, (i, e)| m | (u64::from(*e) << i));
        hash2(hash16(&packed.try_into().expect("16 slots")), fr_from_u64(mask))
    }

    /// Native evaluation.
    pub fn is_satisfied_by(&self, attributes: &[u64; ATTRIBUTES]) -> bool {
        self.clauses.iter().any(|c| c.iter().all(|p| p.op.holds(attributes[p.attribute as usize], p.constant)))
    }
}

fn pack_slot(s: &Slot) -> Fr {
    fr_from_u64(s.index as u64)
        + fr_from_u64(s.op as u64) * gadgets::pow2(4)
        + fr_from_u64(u64::from(s.enabled)) * gadgets::pow2(6)
        + fr_from_u64(s.constant) * gadgets::pow2(7)
}

/// `H(key)` of a requester's 32-byte public key, as a field element.
pub fn key_hash(key: &[u8; 32]) -> Fr {
    hash2(fr_from_bytes16(&key[..16]), fr_from_bytes16(&key[16..]))
}

/// A member's credential: its attribute vector, salt and key hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub attributes: [u64; ATTRIBUTES],
    pub salt: Fr,
    pub key_hash: Fr,
}

impl Credential {
    pub fn leaf(&self) -> Fr {
        let attrs: Vec<Fr> = self.attributes.iter().map(|a| fr_from_u64(*a)).collect();
        hash3(hash16(&attrs.try_into().expect("16 attributes")), self.salt, self.key_hash)
    }
}

/// The request binding `P3(id_lo, id_hi, key_hash)` for a 32-byte request id.
pub fn request_binding(request_id: &[u8; 32], key_hash: Fr) -> Fr {
    hash3(fr_from_bytes16(&request_id[..16]), fr_from_bytes16(&request_id[16..]), key_hash)
}

/// A Merkle authentication path: the leaf index and one sibling per level, leaf first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerklePath {
    pub index: u64,
    pub siblings: Vec<Fr>,
}

/// Sparse Poseidon Merkle tree of depth 32 over credential leaves; empty leaves are zero.
#[derive(Debug, Clone)]
pub struct CredentialTree {
    leaves: BTreeMap<u64, Fr>,
    /// Non-default nodes per level (level 0 = leaves).
    nodes: Vec<HashMap<u64, Fr>>,
    defaults: Vec<Fr>,
}

impl Default for CredentialTree {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialTree {
    pub fn new() -> Self {
        let mut defaults = vec![Fr::ZERO];
        for i in 0..TREE_DEPTH {
            defaults.push(hash2(defaults[i], defaults[i]));
        }
        Self { leaves: BTreeMap::new(), nodes: vec![HashMap::new(); TREE_DEPTH + 1], defaults }
    }

    fn node(&self, level: usize, index: u64) -> Fr {
        self.nodes[level].get(&index).copied().unwrap_or(self.defaults[level])
    }

    /// Sets (or, with zero, clears) the leaf at `index` and updates the path to the root.
    pub fn set(&mut self, index: u64, leaf: Fr) {
        if leaf.is_zero_vartime() {
            self.leaves.remove(&index);
        } else {
            self.leaves.insert(index, leaf);
        }
        let mut idx = index;
        let mut cur = leaf;
        for level in 0..TREE_DEPTH {
            if cur == self.defaults[level] {
                self.nodes[level].remove(&idx);
            } else {
                self.nodes[level].insert(idx, cur);
            }
            let sibling = self.node(level, idx ^ 1);
            cur = if idx & 1 == 0 { hash2(cur, sibling) } else { hash2(sibling, cur) };
            idx >>= 1;
        }
        self.nodes[TREE_DEPTH].insert(0, cur);
    }

    pub fn root(&self) -> Fr {
        self.node(TREE_DEPTH, 0)
    }

    pub fn leaf(&self, index: u64) -> Option<Fr> {
        self.leaves.get(&index).copied()
    }

    pub fn path(&self, index: u64) -> MerklePath {
        let siblings = (0..TREE_DEPTH).map(|level| self.node(level, (index >> level) ^ 1)).collect();
        MerklePath { index, siblings }
    }
}

/// Root from a leaf and its path (native verification of a path).
pub fn root_from_path(leaf: Fr, path: &MerklePath) -> Fr {
    path.siblings.iter().enumerate().fold(leaf, |cur, (level, s)| {
        if (path.index >> level) & 1 == 0 {
            hash2(cur, *s)
        } else {
            hash2(*s, cur)
        }
    })
}

/// The public statement of a policy proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyStatement {
    pub credential_root: Fr,
    pub policy_hash: Fr,
    pub binding: Fr,
}

impl PolicyStatement {
    pub fn public_inputs(&self) -> Vec<Fr> {
        vec![self.credential_root, self.policy_hash, self.binding]
    }
}

/// The policy circuit with its witness.
#[derive(Debug, Clone)]
pub struct PolicyCircuit {
    pub credential: Credential,
    pub path: MerklePath,
    pub policy: PolicyDnf,
    pub request_id: [u8; 32],
}

impl PolicyCircuit {
    /// A well-formed instance used only for parameter generation (values do not matter).
    pub fn blank() -> Self {
        let credential = Credential { attributes: [0; ATTRIBUTES], salt: Fr::ZERO, key_hash: Fr::ZERO };
        let policy = PolicyDnf::new(vec![vec![Predicate { attribute: 0, op: Op::Eq, constant: 0 }]])
            .expect("a one-predicate policy is valid");
        Self {
            credential,
            path: MerklePath { index: 0, siblings: vec![Fr::ZERO; TREE_DEPTH] },
            policy,
            request_id: [0; 32],
        }
    }

    /// The statement this witness proves.
    pub fn statement(&self) -> PolicyStatement {
        PolicyStatement {
            credential_root: root_from_path(self.credential.leaf(), &self.path),
            policy_hash: self.policy.hash(),
            binding: request_binding(&self.request_id, self.credential.key_hash),
        }
    }

    /// Native check of everything the circuit enforces, with a reason on failure.
    pub fn check(&self, expected: &PolicyStatement) -> Result<(), ProverError> {
        let actual = self.statement();
        if actual.credential_root != expected.credential_root {
            return Err(ProverError::Statement("the credential is not in the tree with this root".into()));
        }
        if actual.policy_hash != expected.policy_hash {
            return Err(ProverError::Statement("the policy does not hash to the policy hash".into()));
        }
        if actual.binding != expected.binding {
            return Err(ProverError::Statement("the request binding does not match this request and key".into()));
        }
        if !self.policy.is_satisfied_by(&self.credential.attributes) {
            return Err(ProverError::Statement("the credential's attributes do not satisfy the policy".into()));
        }
        Ok(())
    }
}

impl Circuit<Fr> for PolicyCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let c = self.credential;
        let CredentialParts { attr_lcs, attrs_hash, salt, key_hash } =
            credential_parts(cs, &c.attributes, c.salt, c.key_hash, &self.path)?;

        // Credential leaf and Merkle path.
        let leaf = hash3_gadget(cs.namespace(|| "leaf"), [&attrs_hash, &salt, &key_hash])?;
        let (root, _) = merkle_root_gadget(cs, leaf, &self.path)?;
        root.inputize(cs.namespace(|| "credential root"))?;

        let policy_hash = policy_gadget(cs, &attr_lcs, &self.policy)?;
        policy_hash.inputize(cs.namespace(|| "policy hash input"))?;

        // Request binding.
        let lo = AllocatedNum::alloc(cs.namespace(|| "request id lo"), || Ok(fr_from_bytes16(&self.request_id[..16])))?;
        let hi = AllocatedNum::alloc(cs.namespace(|| "request id hi"), || Ok(fr_from_bytes16(&self.request_id[16..])))?;
        let binding = hash3_gadget(cs.namespace(|| "binding"), [&lo, &hi, &key_hash])?;
        binding.inputize(cs.namespace(|| "binding input"))?;
        Ok(())
    }
}

/// What both policy circuits make of a credential first: its attributes (as linear
/// combinations), their hash, the salt and the key hash, in this constraint order. A path
/// must have [`TREE_DEPTH`] siblings.
pub(crate) struct CredentialParts {
    pub attr_lcs: Vec<Lc>,
    pub attrs_hash: AllocatedNum<Fr>,
    pub salt: AllocatedNum<Fr>,
    pub key_hash: AllocatedNum<Fr>,
}

pub(crate) fn credential_parts<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    attributes: &[u64; ATTRIBUTES],
    salt: Fr,
    key_hash: Fr,
    path: &MerklePath,
) -> Result<CredentialParts, SynthesisError> {
    if path.siblings.len() != TREE_DEPTH {
        return Err(SynthesisError::Unsatisfiable);
    }
    let (attrs, attr_lcs) = alloc_attributes(cs, attributes)?;
    let attrs_hash = hash16_gadget(cs.namespace(|| "attributes hash"), &attrs)?;
    let salt = AllocatedNum::alloc(cs.namespace(|| "salt"), || Ok(salt))?;
    let key_hash = AllocatedNum::alloc(cs.namespace(|| "key hash"), || Ok(key_hash))?;
    Ok(CredentialParts { attr_lcs, attrs_hash, salt, key_hash })
}

/// Allocates a credential's attributes. They are not range-checked here: a leaf enters the
/// registry's tree only from a CA-validated vector of 64-bit attributes, and the leaf hash
/// binds them, so every attribute that reaches a comparison is below 2^64 (saving 1040
/// constraints).
fn alloc_attributes<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    attributes: &[u64; ATTRIBUTES],
) -> Result<(Vec<AllocatedNum<Fr>>, Vec<Lc>), SynthesisError> {
    let mut attrs = Vec::with_capacity(ATTRIBUTES);
    for (i, a) in attributes.iter().enumerate() {
        attrs.push(AllocatedNum::alloc(cs.namespace(|| format!("attribute {i}")), || Ok(fr_from_u64(*a)))?);
    }
    let attr_lcs = attrs.iter().map(Lc::num).collect();
    Ok((attrs, attr_lcs))
}

/// The root of the credential tree from a leaf and its path, and the path's direction
/// bits (leaf level first: the bits of the leaf index, least significant first). A path
/// must have [`TREE_DEPTH`] siblings.
pub(crate) fn merkle_root_gadget<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    leaf: AllocatedNum<Fr>,
    path: &MerklePath,
) -> Result<(AllocatedNum<Fr>, Vec<Lc>), SynthesisError> {
    let mut cur = leaf;
    let mut directions = Vec::with_capacity(TREE_DEPTH);
    for (level, sibling) in path.siblings.iter().enumerate() {
        let mut cs = cs.namespace(|| format!("merkle level {level}"));
        let d = gadgets::alloc_bit(cs.namespace(|| "direction"), (path.index >> level) & 1 == 1)?;
        let s = AllocatedNum::alloc(cs.namespace(|| "sibling"), || Ok(*sibling))?;
        let cur_lc = Lc::num(&cur);
        // left = cur + d·(s − cur); right = cur + s − left.
        let swap = gadgets::mul(cs.namespace(|| "swap"), &d, &Lc::num(&s).sub(&cur_lc))?;
        let left = gadgets::alloc_lc(cs.namespace(|| "left"), &cur_lc.add(&swap))?;
        let right = gadgets::alloc_lc(cs.namespace(|| "right"), &cur_lc.add(&Lc::num(&s)).sub(&Lc::num(&left)))?;
        cur = hash2_gadget(cs.namespace(|| "hash"), &left, &right)?;
        directions.push(d);
    }
    Ok((cur, directions))
}

/// Enforces that the attributes satisfy `policy` and returns the policy hash.
pub(crate) fn policy_gadget<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    attr_lcs: &[Lc],
    policy: &PolicyDnf,
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let (slots, clause_enabled) = policy.slots();
    let mut packed = Vec::with_capacity(SLOTS);
    let mut clause_outs = Vec::with_capacity(CLAUSES);
    let mut mask = Lc::constant::<CS>(Fr::ZERO);
    for c in 0..CLAUSES {
        let mut cs = cs.namespace(|| format!("clause {c}"));
        let mut outs = Vec::with_capacity(PREDICATES_PER_CLAUSE);
        for p in 0..PREDICATES_PER_CLAUSE {
            let slot = slots[c * PREDICATES_PER_CLAUSE + p];
            let mut cs = cs.namespace(|| format!("predicate {p}"));
            let en = gadgets::alloc_bit(cs.namespace(|| "enabled"), slot.enabled)?;
            let (sel, idx) = gadgets::one_hot(cs.namespace(|| "attribute"), slot.index, ATTRIBUTES)?;
            let value = gadgets::select(cs.namespace(|| "select"), &sel, attr_lcs)?;
            let (ops, op) = gadgets::one_hot(cs.namespace(|| "op"), slot.op, 4)?;
            // The constant is bound by the public policy hash, which verifiers compute
            // from 64-bit constants, so it needs no range check either.
            let constant =
                Lc::num(&AllocatedNum::alloc(cs.namespace(|| "constant"), || Ok(fr_from_u64(slot.constant)))?);
            let eq = gadgets::is_equal(cs.namespace(|| "eq"), &value, &constant)?;
            let ge = gadgets::geq(cs.namespace(|| "ge"), &value, &constant, ATTRIBUTE_BITS)?;
            let le = gadgets::geq(cs.namespace(|| "le"), &constant, &value, ATTRIBUTE_BITS)?;
            let ne = eq.not::<CS>();
            let mut res = Lc::constant::<CS>(Fr::ZERO);
            for (k, (o, r)) in ops.iter().zip([&eq, &ne, &ge, &le]).enumerate() {
                res = res.add(&gadgets::mul(cs.namespace(|| format!("op {k}")), o, r)?);
            }
            // Disabled predicates are true: out = 1 − en + en·res.
            let en_res = gadgets::mul(cs.namespace(|| "enabled result"), &en, &res)?;
            outs.push(en.not::<CS>().add(&en_res));
            let slot_lc = idx
                .add(&op.scale(gadgets::pow2(4)))
                .add(&en.scale(gadgets::pow2(6)))
                .add(&constant.scale(gadgets::pow2(7)));
            packed.push(gadgets::alloc_lc(cs.namespace(|| "packed"), &slot_lc)?);
        }
        let clause = gadgets::and_all(cs.namespace(|| "and"), &outs)?;
        let c_en = gadgets::alloc_bit(cs.namespace(|| "clause enabled"), clause_enabled[c])?;
        mask = mask.add(&c_en.scale(gadgets::pow2(c)));
        clause_outs.push(gadgets::mul(cs.namespace(|| "clause out"), &c_en, &clause)?);
    }
    // OR of clauses: 1 − Π(1 − clause_j) must be 1.
    let mut none = clause_outs[0].not::<CS>();
    for (j, c) in clause_outs.iter().enumerate().skip(1) {
        none = gadgets::mul(cs.namespace(|| format!("or {j}")), &none, &c.not::<CS>())?;
    }
    gadgets::enforce_true(cs.namespace(|| "policy satisfied"), &none.not::<CS>());
    let slots_hash = hash16_gadget(cs.namespace(|| "slots hash"), &packed)?;
    let mask = gadgets::alloc_lc(cs.namespace(|| "clause mask"), &mask)?;
    hash2_gadget(cs.namespace(|| "policy hash"), &slots_hash, &mask)
}
