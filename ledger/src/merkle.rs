//! Binary Merkle tree over a block's entries, with inclusion proofs (the construction of
//! RFC 6962 §2.1: leaf hashes `H(0x00 ‖ leaf)`, interior `H(0x01 ‖ left ‖ right)`, a lone
//! right-most node promoted unchanged), so a proof never confuses a leaf with a node.

use sha2::{Digest as _, Sha256};

use crate::tx::Hash;

pub fn leaf_hash(leaf: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(leaf).finalize().into()
}

fn node_hash(l: &Hash, r: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
}

/// The root over leaf hashes (the hash of nothing for an empty tree).
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| if let [l, r] = p { node_hash(l, r) } else { p[0] }).collect();
    }
    level[0]
}

/// The sibling path of leaf `index` (bottom up); `None` on an out-of-range index.
pub fn path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut level = leaves.to_vec();
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            out.push(level[sibling]);
        }
        level = level.chunks(2).map(|p| if let [l, r] = p { node_hash(l, r) } else { p[0] }).collect();
        i /= 2;
    }
    Some(out)
}

/// Recomputes the root from a leaf hash, its index, the tree size and the path.
pub fn root_from_path(leaf: Hash, mut index: usize, mut size: usize, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let mut cur = leaf;
    let mut p = path.iter();
    while size > 1 {
        let sibling = index ^ 1;
        if sibling < size {
            let s = p.next()?;
            cur = if index & 1 == 0 { node_hash(&cur, s) } else { node_hash(s, &cur) };
        }
        index /= 2;
        size = size.div_ceil(2);
    }
    if p.next().is_some() {
        return None;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_of_every_size_proves_and_a_wrong_leaf_does_not() {
        for n in 1..=17usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let r = root(&leaves);
            for i in 0..n {
                let p = path(&leaves, i).unwrap();
                assert_eq!(root_from_path(leaves[i], i, n, &p), Some(r), "n {n} leaf {i}");
                assert_ne!(root_from_path(leaf_hash(b"other"), i, n, &p), Some(r));
                if n > 1 {
                    assert_ne!(root_from_path(leaves[i], (i + 1) % n, n, &p), Some(r), "index is bound");
                }
            }
            assert!(path(&leaves, n).is_none());
        }
    }
}
