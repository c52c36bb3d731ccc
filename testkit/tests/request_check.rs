//! The validators' check of forwarded requests (`dualchain_node::validator::MemberRequests`):
//! the squatting attack (a replica forwarding a request of its own under the KGC's client
//! and next nonce, to censor its revocation) and its relatives are refused before
//! ordering; the KGC's own request, and one of a member this ledger does not know yet, are
//! admitted. A transaction signed by the right key for another consortium is refused. A
//! validator set change passes when it decodes (its approvals are checked where it
//! executes); bytes under its client id that are no change are refused.

use dualchain_consensus::engine::{Refused, RequestCheck};
use dualchain_consensus::membership::{Reconfiguration, RECONFIGURE_CLIENT};
use dualchain_consensus::Request;
use dualchain_crypto::cert::{CertificateAuthority, Role};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_ledger::tx::{client_id, TxDomain, TxKind};
use dualchain_node::validator::MemberRequests;
use dualchain_testkit::members::{request, signed, MemberLedger};

#[test]
fn forwarded_requests_must_be_their_members_own() {
    let mut w = MemberLedger::new(3).unwrap();
    let kgc = w.register("kgc", Role::Kgc).unwrap();
    let revoke = TxKind::RevokeMember { member: "hospital-a".into(), reason: "audit".into() };
    let genuine = w.signed("kgc", 7, revoke.clone(), &kgc).unwrap();
    let mallory = SigningKeypair::generate(&mut w.rng);
    let squat = w.signed("kgc", 7, revoke.clone(), &mallory).unwrap();
    let newcomer_key = SigningKeypair::generate(&mut w.rng);
    let newcomer = w.signed("lab-9", 1, revoke.clone(), &newcomer_key).unwrap();
    let newcomer_cert = w.certificate("lab-9", Role::ResearchInstitute, &newcomer_key).unwrap();
    let registers =
        w.signed("lab-9", 2, TxKind::RegisterMember { certificate: newcomer_cert.clone() }, &newcomer_key).unwrap();
    let forged_registration =
        w.signed("lab-9", 3, TxKind::RegisterMember { certificate: newcomer_cert }, &mallory).unwrap();
    let mut requests = vec![
        request(&genuine),
        request(&squat),
        Request { client: client_id("kgc"), id: 8, payload: vec![0xee; 8] },
        Request { id: 9, ..request(&genuine) },
        Request { client: client_id("hospital-a"), ..request(&genuine) },
        request(&newcomer),
        request(&registers),
        request(&forged_registration),
    ];
    let check = MemberRequests { ledger: w.ledger.clone() };
    assert_eq!(
        check.check(&requests),
        vec![
            Ok(()),
            Err(Refused::Invalid("not signed by the sender's key")),
            Err(Refused::Forged("not a transaction")),
            Err(Refused::Forged("request number is not the transaction's nonce")),
            Err(Refused::Forged("client is not the sender's")),
            Ok(()),
            Ok(()),
            Err(Refused::Forged("a registration not signed by its certificate's key")),
        ]
    );
    // A pseudonym (an anonymous requester's one-time key) is its own key: admitted when
    // that key signed, refused as forged otherwise, and a name that is no key is refused.
    let one_time = SigningKeypair::generate(&mut w.rng);
    let pseudonym = dualchain_ledger::tx::pseudonym_of(&one_time.public());
    let ask = TxKind::RevokeGrant { grant: [3; 32], reason: "done".into() };
    let own = w.signed(&pseudonym, 1, ask.clone(), &one_time).unwrap();
    let stolen = w.signed(&pseudonym, 2, ask.clone(), &mallory).unwrap();
    let nameless = w.signed("anon:notakey", 3, ask, &one_time).unwrap();
    assert_eq!(
        check.check(&[request(&own), request(&stolen), request(&nameless)]),
        vec![
            Ok(()),
            Err(Refused::Forged("a pseudonym's transaction not signed by its one-time key")),
            Err(Refused::Forged("a pseudonym that names no key")),
        ]
    );
    // Signed by the right key, for another consortium (another CA): refused.
    let elsewhere = CertificateAuthority::generate("another-consortium", &mut w.rng).unwrap();
    let elsewhere = signed("kgc", 8, revoke.clone(), &kgc, &TxDomain::of(elsewhere.public())).unwrap();
    assert_eq!(check.check(&[request(&elsewhere)]), vec![Err(Refused::Invalid("not signed by the sender's key"))]);
    // Validator set changes: checked where they execute, against the sets there.
    let key = SigningKeypair::generate(&mut w.rng);
    let members: Vec<_> = (0..4).map(|_| (0u8, key.public())).collect();
    let approvals = vec![Reconfiguration::approve(&key, 0, 1, &members, &[])];
    let change = Reconfiguration { epoch: 1, members, endpoints: vec![], approvals }.request();
    let garbage = Request { client: RECONFIGURE_CLIENT, id: 1, payload: vec![0xee; 40] };
    assert_eq!(check.check(&[change, garbage]), vec![Ok(()), Err(Refused::Forged("not a validator set change"))]);
    // All good: one batch verification admits them all.
    requests.truncate(1);
    requests.push(request(&w.signed("kgc", 8, revoke, &kgc).unwrap()));
    assert_eq!(check.check(&requests), vec![Ok(()), Ok(())]);
}
