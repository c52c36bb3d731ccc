//! The identity escrow (`dualchain_prover::escrow`): dealings, DKG shares, escrow keys,
//! authority secrets, sealed identities and decryption shares, picked by their own type
//! tag, then used as an audit authority would use one from outside. Never panics; whatever
//! decodes re-encodes to the same bytes; no decryption share that verifies makes the
//! fixture's sealed index open to anything else.
#![no_main]

use dualchain_crypto::encoding::tags;
use dualchain_fuzz::escrow::{escrow_world, CONTEXT, SEALED_INDEX};
use dualchain_fuzz::{decode, rng};
use dualchain_prover::escrow::{seal, AuthoritySecret, DecryptionShare, Dealing, DkgShare, EscrowKey, Sealed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = escrow_world();
    match data.first().copied() {
        Some(tags::ESCROW_DEALING) => {
            if let Some(d) = decode::<Dealing>(data) {
                let _ = d.check(&w.committee);
                w.shares.iter().for_each(|s| {
                    let _ = d.verify_share(s);
                });
                // In place of the fixture's dealing of the same dealer, if there is one.
                let mut dealings: Vec<Dealing> = w.dealings.iter().filter(|x| x.dealer() != d.dealer()).cloned().collect();
                dealings.push(d);
                let _ = EscrowKey::from_dealings(&w.committee, &dealings);
            }
        }
        Some(tags::ESCROW_DKG_SHARE) => {
            if let Some(s) = decode::<DkgShare>(data) {
                w.dealings.iter().for_each(|d| {
                    let _ = d.verify_share(&s);
                });
                let mut shares = vec![s.clone()];
                shares.extend(w.shares.iter().cloned());
                let _ = AuthoritySecret::from_shares(&w.committee, s.recipient(), &w.dealings, &shares);
            }
        }
        Some(tags::ESCROW_KEY) => {
            if let Some(k) = decode::<EscrowKey>(data) {
                if let Ok((sealed, _)) = seal(&k, 7, &mut rng(1)) {
                    let _ = w.secrets[0].decryption_share(&k, &sealed, CONTEXT, &mut rng(2));
                    let _ = k.open(&sealed, &w.decryption, CONTEXT);
                }
            }
        }
        Some(tags::ESCROW_AUTHORITY_SECRET) => {
            if let Some(s) = decode::<AuthoritySecret>(data) {
                if let Ok(share) = s.decryption_share(&w.key, &w.sealed, CONTEXT, &mut rng(3)) {
                    let opened = w.key.open(&w.sealed, &[share, w.decryption[0].clone()], CONTEXT);
                    assert!(matches!(opened, Ok(SEALED_INDEX) | Err(_)), "a valid share opened the index to {opened:?}");
                }
            }
        }
        Some(tags::ESCROW_SEALED) => {
            if let Some(sealed) = decode::<Sealed>(data) {
                let shares: Vec<DecryptionShare> = w.secrets[1..]
                    .iter()
                    .filter_map(|s| s.decryption_share(&w.key, &sealed, CONTEXT, &mut rng(4)).ok())
                    .collect();
                let _ = w.key.open(&sealed, &shares, CONTEXT);
            }
        }
        Some(tags::ESCROW_DECRYPTION_SHARE) => {
            if let Some(share) = decode::<DecryptionShare>(data) {
                if w.key.verify_share(&w.sealed, &share, CONTEXT).is_ok() {
                    let good = if share.index() == 1 { &w.decryption[1] } else { &w.decryption[0] };
                    let opened = w.key.open(&w.sealed, &[share, good.clone()], CONTEXT);
                    assert!(matches!(opened, Ok(SEALED_INDEX) | Err(_)), "a verified share opened the index to {opened:?}");
                }
            }
        }
        _ => {}
    }
});
