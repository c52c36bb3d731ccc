//! Blocks as the ledger reads them back (`Block::open` on a stored block's header, body and
//! notes, with the batch its entries refer to as a ledger keeps it) and inclusion proofs as
//! a client checks them (`InclusionProof::verify` on any JSON). The first byte picks which;
//! for blocks the rest is cut into header, body, notes and kept batch
//! (`dualchain_fuzz::split`). Never panics. A block that opens yields, for every entry, an
//! inclusion proof that verifies to the block's hash, the same proof from the stored block
//! alone (`Block::proof_of`) and the same entry read alone (`Block::open_entry`, its one
//! payload from the kept batch), and sealing the decoded block again opens to the same
//! block; a proof that verifies survives a JSON round trip. Reading one entry or a proof of
//! any stored block, opened or not, never panics.
#![no_main]

use dualchain_ledger::block::{decode_kept_batch, kept_batch_payload, Block, InclusionProof, BLOCK_VERSION};
use dualchain_storage::ledger::{BlockRef, StoredBlock};
use libfuzzer_sys::fuzz_target;

fn block(input: &[u8]) {
    let parts = dualchain_fuzz::split(input, 4);
    let cross = BlockRef { height: 3, hash: [1; 32] };
    let stored =
        StoredBlock::new(7, [2; 32], cross, parts[0].to_vec(), parts[1].to_vec()).with_notes(parts[2].to_vec());
    let batch = |seq, digest: &_| decode_kept_batch(seq, digest, parts[3]);
    let one = |seq, digest: &_, at| kept_batch_payload(seq, digest, parts[3], at);
    let _ = (Block::open_entry(&stored, 0, one), Block::proof_of(&stored, 0));
    let Ok(b) = Block::open(&stored, batch) else { return };
    for i in 0..b.entries.len() {
        let proof = b.inclusion_proof(&stored, i).expect("every entry has an inclusion proof");
        assert_eq!(proof.verify().ok(), Some(stored.hash), "entry {i}'s proof does not lead to its block");
        assert_eq!(Block::proof_of(&stored, i).ok(), Some(Some(proof)), "entry {i}'s proof differs read alone");
        let entry = Block::open_entry(&stored, i, one).expect("an entry of a block that opens reads alone");
        assert_eq!(entry.as_ref(), Some(&b.entries[i]), "entry {i} differs read alone");
    }
    assert!(matches!(Block::open_entry(&stored, b.entries.len(), one), Ok(None)));
    assert!(b.inclusion_proof(&stored, b.entries.len()).is_none());
    let resealed =
        Block::seal(b.height, b.prev_hash, b.cross_link, &b.header, &b.refs(), b.certificate.clone(), &b.notes)
            .expect("a decoded block seals");
    if b.header.version == BLOCK_VERSION {
        let again = Block::open(&resealed, batch).expect("a resealed block opens");
        assert_eq!((&again.header, &again.entries, &again.notes), (&b.header, &b.entries, &b.notes));
    }
}

fn proof(input: &[u8]) {
    let Ok(p) = serde_json::from_slice::<InclusionProof>(input) else { return };
    let Ok(hash) = p.verify() else { return };
    let again: InclusionProof =
        serde_json::from_slice(&serde_json::to_vec(&p).expect("a proof serialises")).expect("a proof's JSON decodes");
    assert_eq!(again.verify().ok(), Some(hash), "a proof's JSON round trip changes its verdict");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    if which % 2 == 0 {
        block(input);
    } else {
        proof(input);
    }
});
