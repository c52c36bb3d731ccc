//! Poseidon over BLS12-381's scalar field (Grassi et al., "Poseidon: A New Hash Function
//! for Zero-Knowledge Proof Systems", USENIX Security 2021) as implemented by `neptune`:
//! the native hash and its gadget compute the same function, with neptune's Merkle-tree
//! domain tags and 128-bit-security round numbers. Constants are generated once per arity.

use std::sync::OnceLock;

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use generic_array::typenum::{U16, U2, U3};
use neptune::poseidon::PoseidonConstants;
use neptune::Poseidon;

fn constants2() -> &'static PoseidonConstants<Fr, U2> {
    static C: OnceLock<PoseidonConstants<Fr, U2>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}
fn constants3() -> &'static PoseidonConstants<Fr, U3> {
    static C: OnceLock<PoseidonConstants<Fr, U3>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}
fn constants16() -> &'static PoseidonConstants<Fr, U16> {
    static C: OnceLock<PoseidonConstants<Fr, U16>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}

/// Native Poseidon of exactly 2 elements.
pub fn hash2(a: Fr, b: Fr) -> Fr {
    Poseidon::new_with_preimage(&[a, b], constants2()).hash()
}
/// Native Poseidon of exactly 3 elements.
pub fn hash3(a: Fr, b: Fr, c: Fr) -> Fr {
    Poseidon::new_with_preimage(&[a, b, c], constants3()).hash()
}
/// Native Poseidon of exactly 16 elements.
pub fn hash16(x: &[Fr; 16]) -> Fr {
    Poseidon::new_with_preimage(x, constants16()).hash()
}

/// Gadget: Poseidon of 2 allocated elements.
pub fn hash2_gadget<CS: ConstraintSystem<Fr>>(
    cs: CS,
    a: &AllocatedNum<Fr>,
    b: &AllocatedNum<Fr>,
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    neptune::circuit::poseidon_hash(cs, vec![a.clone(), b.clone()], constants2())
}
/// Gadget: Poseidon of 3 allocated elements.
pub fn hash3_gadget<CS: ConstraintSystem<Fr>>(
    cs: CS,
    x: [&AllocatedNum<Fr>; 3],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    neptune::circuit::poseidon_hash(cs, x.iter().map(|n| (*n).clone()).collect(), constants3())
}
/// Gadget: Poseidon of 16 allocated elements.
pub fn hash16_gadget<CS: ConstraintSystem<Fr>>(
    cs: CS,
    x: &[AllocatedNum<Fr>],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    assert_eq!(x.len(), 16, "hash16 takes exactly 16 elements");
    neptune::circuit::poseidon_hash(cs, x.to_vec(), constants16())
}

/// Arity-16 Merkle root over `leaves`, padded with zeros to a power of 16 (at least 16).
pub fn merkle16_root(leaves: &[Fr]) -> Fr {
    let mut level: Vec<Fr> = leaves.to_vec();
    loop {
        let mut next = Vec::with_capacity(level.len().div_ceil(16));
        for chunk in level.chunks(16) {
            let mut block = [Fr::from(0u64); 16];
            block[..chunk.len()].copy_from_slice(chunk);
            next.push(hash16(&block));
        }
        if next.len() == 1 {
            return next[0];
        }
        level = next;
    }
}

/// Gadget for [`merkle16_root`].
pub fn merkle16_root_gadget<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    leaves: &[AllocatedNum<Fr>],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let zero = crate::gadgets::alloc_constant(cs.namespace(|| "zero"), Fr::from(0u64))?;
    let mut level: Vec<AllocatedNum<Fr>> = leaves.to_vec();
    let mut depth = 0;
    loop {
        let mut next = Vec::with_capacity(level.len().div_ceil(16));
        for (i, chunk) in level.chunks(16).enumerate() {
            let mut block = chunk.to_vec();
            block.resize(16, zero.clone());
            next.push(hash16_gadget(cs.namespace(|| format!("level {depth} node {i}")), &block)?);
        }
        if next.len() == 1 {
            return Ok(next.remove(0));
        }
        level = next;
        depth += 1;
    }
}
