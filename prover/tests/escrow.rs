//! Identity escrow, t of n (issue 17 item 3): a dealer-free key generation, sealing of a
//! credential index, and opening by any t authorities' proven decryption shares. Forged,
//! misdirected and replayed shares, a dealer that cheats, too few authorities and hostile
//! encodings are each refused with a reason.

use dualchain_crypto::Codec;
use dualchain_prover::escrow::{
    deal, seal, AuthoritySecret, Committee, Dealing, DecryptionShare, DkgShare, EscrowError, EscrowKey, Sealed,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Ceremony {
    committee: Committee,
    dealings: Vec<Dealing>,
    shares: Vec<DkgShare>,
}

fn ceremony(t: u16, n: u16, rng: &mut ChaCha20Rng) -> Ceremony {
    let committee = Committee::new(t, n).unwrap();
    let (mut dealings, mut shares) = (Vec::new(), Vec::new());
    for dealer in 1..=n {
        let (d, s) = deal(&committee, dealer, rng).unwrap();
        dealings.push(d);
        shares.extend(s);
    }
    Ceremony { committee, dealings, shares }
}

impl Ceremony {
    fn key(&self) -> EscrowKey {
        EscrowKey::from_dealings(&self.committee, &self.dealings).unwrap()
    }
    fn secret(&self, index: u16) -> AuthoritySecret {
        AuthoritySecret::from_shares(&self.committee, index, &self.dealings, &self.shares).unwrap()
    }
}

fn shares_of(
    c: &Ceremony,
    key: &EscrowKey,
    sealed: &Sealed,
    who: &[u16],
    context: &[u8],
    rng: &mut ChaCha20Rng,
) -> Vec<DecryptionShare> {
    who.iter().map(|i| c.secret(*i).decryption_share(key, sealed, context, rng).unwrap()).collect()
}

const CASE: &[u8] = b"audit case 2026-117: demand 9f3c on dataset 51aa";

#[test]
fn any_t_authorities_open_a_sealed_index_and_fewer_cannot() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let c = ceremony(3, 5, &mut rng);
    let key = c.key();
    // A large index, close to the tree's 2^32 leaves.
    let expected = 4_000_000_007;
    let (sealed, _) = seal(&key, expected, &mut rng).unwrap();
    for who in [[1, 2, 3], [1, 3, 5], [2, 4, 5], [5, 4, 1]] {
        let shares = shares_of(&c, &key, &sealed, &who, CASE, &mut rng);
        assert_eq!(key.open(&sealed, &shares, CASE).unwrap(), expected, "{who:?}");
    }
    // All five shares open it too (any t of them are used).
    let all = shares_of(&c, &key, &sealed, &[1, 2, 3, 4, 5], CASE, &mut rng);
    assert_eq!(key.open(&sealed, &all, CASE).unwrap(), expected);
    // Two authorities are not enough, nor is one authority's share given three times.
    let two = shares_of(&c, &key, &sealed, &[2, 5], CASE, &mut rng);
    assert_eq!(key.open(&sealed, &two, CASE), Err(EscrowError::TooFewShares { found: 2, threshold: 3 }));
    let one = shares_of(&c, &key, &sealed, &[4], CASE, &mut rng);
    let thrice = vec![one[0].clone(), one[0].clone(), one[0].clone()];
    assert_eq!(key.open(&sealed, &thrice, CASE), Err(EscrowError::TooFewShares { found: 1, threshold: 3 }));
    // Sealing is randomised: the same index sealed twice shares nothing an observer sees.
    let (again, _) = seal(&key, expected, &mut rng).unwrap();
    assert_ne!(again.to_bytes()[2..34], sealed.to_bytes()[2..34]);
    assert_ne!(again.to_bytes()[34..], sealed.to_bytes()[34..]);
}

#[test]
fn every_authority_derives_the_same_key_and_a_one_of_one_committee_works() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let c = ceremony(2, 3, &mut rng);
    // The key depends on the dealings only: the order they are listed in does not matter.
    let mut reversed = c.dealings.clone();
    reversed.reverse();
    assert_eq!(EscrowKey::from_dealings(&c.committee, &reversed).unwrap(), c.key());
    let solo = ceremony(1, 1, &mut rng);
    let key = solo.key();
    let (sealed, _) = seal(&key, 7, &mut rng).unwrap();
    let shares = shares_of(&solo, &key, &sealed, &[1], b"", &mut rng);
    assert_eq!(key.open(&sealed, &shares, b"").unwrap(), 7);
}

#[test]
fn forged_misdirected_and_replayed_decryption_shares_are_refused_and_named() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let c = ceremony(2, 4, &mut rng);
    let key = c.key();
    let (sealed, _) = seal(&key, 42, &mut rng).unwrap();
    let (other, _) = seal(&key, 43, &mut rng).unwrap();
    let good = shares_of(&c, &key, &sealed, &[1, 2], CASE, &mut rng);

    // A share made for another sealed value (a replay) is refused, even beside good ones.
    let replayed = shares_of(&c, &key, &other, &[3], CASE, &mut rng).remove(0);
    let with_replay = vec![good[0].clone(), replayed, good[1].clone()];
    assert_eq!(key.open(&sealed, &with_replay, CASE), Err(EscrowError::BadDecryptionShare(3)));
    // A share made for another audit case is refused for this one.
    let elsewhere = shares_of(&c, &key, &sealed, &[1, 2], b"another case", &mut rng);
    assert_eq!(key.open(&sealed, &elsewhere, CASE), Err(EscrowError::BadDecryptionShare(1)));
    // A share relabelled as another authority's is refused.
    let mut bytes = good[0].to_bytes();
    bytes[2..4].copy_from_slice(&4u16.to_be_bytes());
    let relabelled = DecryptionShare::from_bytes(&bytes).unwrap();
    assert_eq!(key.verify_share(&sealed, &relabelled, CASE), Err(EscrowError::BadDecryptionShare(4)));
    // A share whose point was swapped for another valid point is refused (its proof
    // covers the point): here authority 2's point under authority 1's proof.
    let mut swapped = good[0].to_bytes();
    swapped[4..36].copy_from_slice(&good[1].to_bytes()[4..36]);
    let swapped = DecryptionShare::from_bytes(&swapped).unwrap();
    assert_eq!(key.verify_share(&sealed, &swapped, CASE), Err(EscrowError::BadDecryptionShare(1)));
    // An authority outside the committee is refused as unknown.
    let mut outsider = good[0].to_bytes();
    outsider[2..4].copy_from_slice(&9u16.to_be_bytes());
    let outsider = DecryptionShare::from_bytes(&outsider).unwrap();
    assert_eq!(key.verify_share(&sealed, &outsider, CASE), Err(EscrowError::UnknownAuthority(9)));
    // The good shares still open it.
    assert_eq!(key.open(&sealed, &good, CASE).unwrap(), 42);
}

#[test]
fn a_value_sealed_under_another_escrow_key_does_not_open() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ours = ceremony(2, 3, &mut rng);
    let theirs = ceremony(2, 3, &mut rng);
    let (sealed, _) = seal(&theirs.key(), 1234, &mut rng).unwrap();
    let key = ours.key();
    let shares = shares_of(&ours, &key, &sealed, &[1, 2], CASE, &mut rng);
    assert_eq!(key.open(&sealed, &shares, CASE), Err(EscrowError::NotSealedUnderKey));
    // And a secret checked against a key it is not part of makes no share.
    let stranger = theirs.secret(1);
    assert_eq!(stranger.decryption_share(&key, &sealed, CASE, &mut rng), Err(EscrowError::BadDecryptionShare(1)));
}

#[test]
fn a_dealer_whose_share_is_wrong_is_named_and_left_out() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut c = ceremony(3, 5, &mut rng);
    // Dealer 2 sends authority 4 a share of another polynomial.
    let (_, foreign) = deal(&c.committee, 2, &mut rng).unwrap();
    let slot = c.shares.iter().position(|s| s.dealer() == 2 && s.recipient() == 4).unwrap();
    c.shares[slot] = foreign.into_iter().find(|s| s.recipient() == 4).unwrap();
    // Authority 4 finds it and accuses dealer 2 ...
    assert_eq!(
        AuthoritySecret::from_shares(&c.committee, 4, &c.dealings, &c.shares).unwrap_err(),
        EscrowError::BadShare { dealer: 2, recipient: 4 }
    );
    // ... everyone checks the share dealer 2 reveals, and it fails ...
    let dealing2 = c.dealings.iter().find(|d| d.dealer() == 2).unwrap();
    assert!(dealing2.verify_share(&c.shares[slot]).is_err());
    // ... so the qualified set leaves dealer 2 out, and the committee still works.
    c.dealings.retain(|d| d.dealer() != 2);
    let key = c.key();
    let (sealed, _) = seal(&key, 99, &mut rng).unwrap();
    let shares = shares_of(&c, &key, &sealed, &[4, 2, 5], CASE, &mut rng);
    assert_eq!(key.open(&sealed, &shares, CASE).unwrap(), 99);
    // Fewer qualified dealings than the threshold make no key.
    c.dealings.truncate(2);
    assert_eq!(
        EscrowKey::from_dealings(&c.committee, &c.dealings),
        Err(EscrowError::TooFewDealings { found: 2, threshold: 3 })
    );
}

#[test]
fn committees_values_and_dealings_out_of_shape_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    for (t, n) in [(0, 3), (4, 3), (2, 65)] {
        assert_eq!(Committee::new(t, n), Err(EscrowError::Committee { threshold: t, authorities: n }));
    }
    let c = ceremony(2, 3, &mut rng);
    assert!(matches!(seal(&c.key(), 1 << 32, &mut rng), Err(EscrowError::Value(_))));
    assert_eq!(deal(&c.committee, 4, &mut rng).unwrap_err(), EscrowError::UnknownAuthority(4));
    // A dealing made for a threshold of 3 does not fit a committee of threshold 2.
    let wider = Committee::new(3, 3).unwrap();
    let (odd, _) = deal(&wider, 3, &mut rng).unwrap();
    let mut dealings = c.dealings.clone();
    dealings[2] = odd;
    assert!(matches!(EscrowKey::from_dealings(&c.committee, &dealings), Err(EscrowError::Dealing { dealer: 3, .. })));
    // The same dealer twice is refused.
    let mut twice = c.dealings.clone();
    twice[1] = twice[0].clone();
    assert!(matches!(EscrowKey::from_dealings(&c.committee, &twice), Err(EscrowError::Dealing { dealer: 1, .. })));
}

/// The rogue-key attack on joint-Feldman: the last dealer, having seen the others'
/// commitments, publishes `A = Y − Σ A_i` so that the escrow key is a `Y` whose secret it
/// holds. It cannot know `log_G(A)`, so its dealing carries no valid proof of knowledge.
#[test]
fn a_rogue_key_dealing_is_refused_for_want_of_its_proof() {
    use group::{Group, GroupEncoding};
    use jubjub::SubgroupPoint;
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let c = ceremony(2, 3, &mut rng);
    let honest = &c.dealings[2];
    honest.check(&c.committee).unwrap();
    let target = SubgroupPoint::generator() * jubjub::Fr::from(424_242u64);
    let rogue_first = target - c.dealings[0].commitments()[0] - c.dealings[1].commitments()[0];
    // Dealer 3 swaps its first commitment for the rogue one and keeps its proof.
    let mut bytes = honest.to_bytes();
    let old = honest.commitments()[0].to_bytes();
    let at = bytes.windows(32).position(|w| w == old).unwrap();
    bytes[at..at + 32].copy_from_slice(&rogue_first.to_bytes());
    let rogue = Dealing::from_bytes(&bytes).unwrap();
    let sum: SubgroupPoint = [&c.dealings[0], &c.dealings[1], &rogue].iter().map(|d| d.commitments()[0]).sum();
    assert_eq!(sum, target, "taken, the rogue dealing would set the key");
    match rogue.check(&c.committee) {
        Err(EscrowError::Dealing { dealer: 3, reason }) => assert!(reason.contains("knows its secret"), "{reason}"),
        other => panic!("a rogue-key dealing passed: {other:?}"),
    }
    let mut dealings = c.dealings.clone();
    dealings[2] = rogue;
    assert!(matches!(EscrowKey::from_dealings(&c.committee, &dealings), Err(EscrowError::Dealing { dealer: 3, .. })));
    // The proof is bound to its committee: the same dealing does not fit one of 4.
    let other = Committee::new(2, 4).unwrap();
    assert!(matches!(honest.check(&other), Err(EscrowError::Dealing { dealer: 3, .. })));
}

#[test]
fn encodings_round_trip_and_hostile_bytes_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let c = ceremony(2, 3, &mut rng);
    let key = c.key();
    let (sealed, _) = seal(&key, 5, &mut rng).unwrap();
    let share = shares_of(&c, &key, &sealed, &[2], CASE, &mut rng).remove(0);

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(v: &T) -> Vec<u8> {
        let bytes = v.to_bytes();
        assert_eq!(&T::from_bytes(&bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            assert!(T::from_bytes(&bytes[..cut]).is_err(), "{} cut at {cut}", T::NAME);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(T::from_bytes(&longer).is_err(), "{} with a trailing byte", T::NAME);
        bytes
    }
    round_trip(&c.dealings[0]);
    round_trip(&c.shares[0]);
    let key_bytes = round_trip(&key);
    round_trip(&c.secret(3));
    let sealed_bytes = round_trip(&sealed);
    let share_bytes = round_trip(&share);

    // Every single-bit change is either refused or decodes to something that re-encodes to
    // the same bytes and fails where it is used.
    for bit in 16..sealed_bytes.len() * 8 {
        let mut b = sealed_bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(changed) = Sealed::from_bytes(&b) {
            assert_eq!(changed.to_bytes(), b);
            let shares = shares_of(&c, &key, &changed, &[1, 3], CASE, &mut rng);
            assert_ne!(key.open(&changed, &shares, CASE).ok(), Some(5), "bit {bit}");
        }
    }
    for bit in 16..share_bytes.len() * 8 {
        let mut b = share_bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(changed) = DecryptionShare::from_bytes(&b) {
            assert_eq!(changed.to_bytes(), b);
            assert!(key.verify_share(&sealed, &changed, CASE).is_err(), "bit {bit}");
        }
    }
    // The identity as R (it would make the mask public) and a scalar at the group order are
    // refused; so is a key whose committee is out of shape.
    let mut b = sealed_bytes.clone();
    b[2..34].copy_from_slice(&{
        let mut id = [0u8; 32];
        id[0] = 1; // (u, v) = (0, 1)
        id
    });
    assert!(Sealed::from_bytes(&b).is_err());
    let order_le = hex::decode(
        "b7 2c f7 d6 5e 0e 97 d0 82 10 c8 cc 93 20 68 a6 00 3b 34 01 01 3b 67 06 a9 af 33 65 ea b4 7d 0e"
            .replace(' ', ""),
    )
    .unwrap();
    let mut b = share_bytes.clone();
    let end = b.len();
    b[end - 32..].copy_from_slice(&order_le);
    assert!(DecryptionShare::from_bytes(&b).is_err());
    let mut b = key_bytes.clone();
    b[2..4].copy_from_slice(&9u16.to_be_bytes());
    assert!(EscrowKey::from_bytes(&b).is_err());
    // A key whose verification keys are not shares of its public key (one authority's
    // replaced by another's, or the public key replaced) is refused.
    for (from, to) in [(2 + 4 + 32, 2 + 4 + 64), (2 + 4, 2 + 4 + 32)] {
        let mut b = key_bytes.clone();
        let other: Vec<u8> = key_bytes[to..to + 32].to_vec();
        b[from..from + 32].copy_from_slice(&other);
        match EscrowKey::from_bytes(&b) {
            Err(dualchain_crypto::error::DecodeError::Invalid { reason, .. }) => {
                assert!(reason.contains("not shares"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_seal_circuit_proves_exactly_the_sealed_index_under_the_recorded_key() {
    use bellpepper_core::test_cs::TestConstraintSystem;
    use bellpepper_core::Circuit;
    use dualchain_prover::escrow::SealCircuit;

    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let c = ceremony(2, 3, &mut rng);
    let key = c.key();
    let (sealed, randomness) = seal(&key, 31337, &mut rng).unwrap();
    let public = sealed.public_inputs(&key);

    let synthesize = |value: u64, randomness| {
        let mut cs = TestConstraintSystem::new();
        let circuit = SealCircuit { key: key.public_key(), value, randomness };
        circuit.synthesize(&mut cs).unwrap();
        cs
    };
    let cs = synthesize(31337, randomness);
    assert!(cs.is_satisfied(), "{:?}", cs.which_is_unsatisfied());
    assert!(cs.verify(&public), "the circuit's inputs are the sealed value's");
    // Its cost: 252 scalar bits, 6 per bit of r·G and 14 of r·Y (less the first
    // additions), 1 that R is not the identity, the mask's Poseidon, the index's range
    // check and the public inputs.
    assert_eq!(cs.num_constraints(), 5_660);
    // Another index or another randomness proves another sealed value, not this one.
    assert!(!synthesize(31338, randomness).verify(&public));
    let (_, other_randomness) = seal(&key, 31337, &mut rng).unwrap();
    assert!(!synthesize(31337, other_randomness).verify(&public));
    // Randomness zero (R the identity, the mask public) is not provable.
    assert!(!synthesize(31337, <jubjub::Fr as ff::Field>::ZERO).is_satisfied());
    // An index the credential tree cannot hold is not provable.
    assert!(!synthesize(1 << 32, randomness).is_satisfied());
    // And the opening of what the circuit proved is the index it was given.
    let shares = shares_of(&c, &key, &sealed, &[1, 3], CASE, &mut rng);
    assert_eq!(key.open(&sealed, &shares, CASE).unwrap(), 31337);
}
