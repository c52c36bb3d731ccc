//! `dualchain issue`: the coordinator certifies an institution that joins after genesis
//! (issue 19; the runbook is deploy/README.md, "Admitting a new institution").
//!
//! The newcomer makes its keys on its own machine with `dualchain keygen`, as a founder
//! did, and sends its `contribution.toml`. The coordinator checks it as assembly checks a
//! contribution ([`super::assemble::check_contribution`]: signed by the member key it
//! names, for this consortium, well formed), and that the newcomer is a hospital or a
//! research institute (the ESKI-IBE authorities, the KGC and the CPCs, are fixed at
//! genesis), not a member named at genesis nor certified already, and brings a signing key
//! no issued member holds, and a validator key no validator holds. It then issues the
//! member certificate from the member CA it keeps, gives the newcomer's node a validator
//! slot (the next id after every genesis and earlier issued validator, with its consensus
//! TLS and API certificates from the kept TLS CA), writes `issued/<member>.toml` and
//! returns the certificate's SHA-256.
//!
//! The certificate alone admits no one: the newcomer's registration only opens its
//! admission on the ledger, and it is registered once the consortium's membership quorum
//! of members approved that certificate by its SHA-256 (`dualchain client admit-member`;
//! the ledger's `registry::admit_member`).
//!
//! The newcomer's node: `dualchain join` writes its `node.toml` with the slot as
//! `[joined]` (consortium.toml, fixed at genesis, does not list it). Started, it follows
//! the consortium as a learner; once 2f + 1 validators approved a validator set change that
//! names it (`dualchain validator propose`, `approve`, `submit`), it votes, and its member's
//! registration goes through it like any other. The slot promises nothing: until the
//! change executes, no validator orders what it forwards.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use dualchain_crypto::cert::{Certificate, Role};
use dualchain_crypto::Codec;

use super::assemble::{check_contribution, Cas};
use super::institution::{Contribution, IssuedFile};
use crate::config::{ConsortiumFile, ValidatorEntry};
use crate::files::{from_hex, to_hex};

/// `dualchain issue`'s arguments (the coordinator).
#[derive(Debug, Clone, clap::Args)]
pub struct IssueOptions {
    /// The certificate authorities' directory `assemble` used.
    #[arg(long)]
    pub ca: PathBuf,
    /// The assembled consortium (`consortium.toml`, `issued/`).
    #[arg(long)]
    pub genesis: PathBuf,
    /// The newcomer's `contribution.toml` (made by `dualchain keygen` on its machine).
    #[arg(long)]
    pub contribution: PathBuf,
    /// Validity of the certificate, in days from now.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
}

/// What `issue` certified.
#[derive(Debug)]
pub struct Issued {
    pub member: String,
    pub serial: u64,
    pub not_after: u64,
    /// The validator slot of its node.
    pub node: u8,
    /// What members approve (`AdmitMember`): SHA-256 of the certificate's encoding.
    pub certificate_sha256: [u8; 32],
    /// `issued/<member>.toml`.
    pub path: PathBuf,
}

/// Checks a newcomer's contribution and issues its member certificate (module docs).
pub fn issue(opts: &IssueOptions) -> Result<Issued> {
    ensure!((1..=3650).contains(&opts.days), "--days must be in 1..=3650");
    let consortium = ConsortiumFile::load(&opts.genesis.join("consortium.toml"))?;
    let c = Contribution::load(&opts.contribution)?;
    check_newcomer(opts, &consortium, &c)?;
    let mut cas = Cas::open_kept(&opts.ca, &consortium)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let not_after = now + opts.days * 24 * 3600;
    let cert = cas.certify_member(&c.body, now, not_after)?;
    let slot = next_validator_id(opts, &consortium)?;
    let b = &c.body;
    let quic: std::net::SocketAddr = format!("{}:{}", b.host, b.quic_port)
        .parse()
        .with_context(|| format!("{}'s host {:?} is not an IP address", b.id, b.host))?;
    let tls_cert = cas.tls.certify(slot, &hex::decode(&b.tls_public)?)?;
    let api_tls_cert = cas.tls.certify_api(slot, &b.host, &hex::decode(&b.api_tls_public)?)?;
    cas.save(&opts.ca, &consortium.name)?;
    let certificate_sha256 = dualchain_ledger::tx::certificate_sha256(&cert.to_bytes());
    let validator = ValidatorEntry {
        id: slot,
        quic,
        api: format!("https://{}:{}", b.host, b.api_port),
        signing_key: b.validator_key.clone(),
        tls_cert: hex::encode(tls_cert),
    };
    let file = IssuedFile {
        id: c.body.id.clone(),
        node: Some(slot),
        certificate: to_hex(&cert),
        api_tls_cert: Some(hex::encode(api_tls_cert)),
        validator: Some(validator),
    };
    let header = format!(
        "# {}'s member certificate, issued after genesis: it joins once the consortium's membership\n\
         # quorum approved the certificate of SHA-256 {}\n\
         # Its node is validator {slot}: it votes once a validator set change names it.\n",
        c.body.id,
        hex::encode(certificate_sha256)
    );
    let path = file.save(&opts.genesis, Some(&header))?;
    Ok(Issued { member: c.body.id, serial: cert.fields.serial, not_after, node: slot, certificate_sha256, path })
}

/// The checks on a newcomer's contribution (module docs).
fn check_newcomer(opts: &IssueOptions, consortium: &ConsortiumFile, c: &Contribution) -> Result<()> {
    let b = &c.body;
    let role = check_contribution(&consortium.name, c)
        .with_context(|| format!("{} is not a valid contribution", opts.contribution.display()))?;
    ensure!(
        matches!(role, Role::Hospital | Role::ResearchInstitute),
        "{} is a {role}: the ESKI-IBE authorities (the KGC and the CPCs) are fixed at genesis; \
         a member that joins later is a hospital or a research institute",
        b.id
    );
    ensure!(
        consortium.member(&b.id).is_none(),
        "{} is a member named at genesis: its certificate is renewed (dualchain renew), not issued",
        b.id
    );
    let path = IssuedFile::path(&opts.genesis, &b.id);
    ensure!(!path.exists(), "{} exists: {} is certified already (dualchain renew renews it)", path.display(), b.id);
    let key = b.signing_key()?;
    for entry in std::fs::read_dir(opts.genesis.join("issued")).context("reading issued/")? {
        let p = entry?.path();
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let f: IssuedFile = toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        let held: Certificate = from_hex(&f.certificate, "member certificate")?;
        ensure!(held.fields.signing_key != key, "{}'s signing key is already {}'s", b.id, f.id);
        ensure!(
            f.validator.as_ref().is_none_or(|v| v.signing_key != b.validator_key),
            "{}'s validator key is already {}'s node's",
            b.id,
            f.id
        );
    }
    ensure!(
        consortium.validators.iter().all(|v| v.signing_key != b.validator_key),
        "{}'s validator key is already a genesis validator's",
        b.id
    );
    Ok(())
}

/// The next validator id: above every genesis validator and every slot issued before
/// (ids are never reused, so a removed validator's id stays taken).
fn next_validator_id(opts: &IssueOptions, consortium: &ConsortiumFile) -> Result<u8> {
    let mut next = consortium.validators.len();
    for entry in std::fs::read_dir(opts.genesis.join("issued")).context("reading issued/")? {
        let p = entry?.path();
        let f: IssuedFile =
            toml::from_str(&std::fs::read_to_string(&p)?).with_context(|| format!("parsing {}", p.display()))?;
        if let Some(v) = f.validator {
            next = next.max(v.id as usize + 1);
        }
    }
    u8::try_from(next)
        .ok()
        .filter(|id| (*id as usize) < dualchain_consensus::message::REPLICAS_MAX)
        .ok_or_else(|| anyhow::anyhow!("every validator id is taken"))
}

/// Certifies a validator's next consensus TLS key (a rotation in place,
/// `crate::reconfigure`) from the kept TLS CA. The certificate names the replica; it takes
/// effect only through a validator set change that 2f + 1 validators approve.
pub fn certify_tls(
    ca: &std::path::Path,
    genesis: &std::path::Path,
    request: &crate::reconfigure::TlsRequest,
) -> Result<crate::reconfigure::TlsCertified> {
    let consortium = ConsortiumFile::load(&genesis.join("consortium.toml"))?;
    ensure!(
        request.consortium == consortium.name,
        "the request is for consortium {:?}, the CA's is {:?}",
        request.consortium,
        consortium.name
    );
    let public = hex::decode(&request.public_key).context("the request's public key")?;
    let cas = Cas::open_kept(ca, &consortium)?;
    let cert = cas
        .tls
        .certify(request.node, &public)
        .map_err(|e| anyhow::anyhow!("the request's key is not a P-256 public key: {e}"))?;
    Ok(crate::reconfigure::TlsCertified {
        consortium: consortium.name,
        node: request.node,
        tls_cert: hex::encode(cert),
    })
}

#[cfg(test)]
mod tests {
    use super::super::assemble::tests::{contribute, resigned, NAME};
    use super::*;
    use crate::config::{MemberEntry, ValidatorEntry};
    use dualchain_consensus::tls::{check_identity, server_name, NodeTls};
    use dualchain_crypto::cert::NoRevocations;
    use sha2::Digest as _;

    /// A consortium of four founders whose member CA is kept in `dir/ca`, assembled in
    /// `dir/genesis` (only what `issue` reads: consortium.toml and issued/).
    fn consortium(dir: &std::path::Path) -> ConsortiumFile {
        let cas = Cas::open_or_create(&dir.join("ca"), NAME).unwrap();
        let founders = ["kgc", "hospital-a", "research-1", "cpc-1"];
        let validator = |id: u8| ValidatorEntry {
            id,
            quic: format!("127.0.0.1:{}", 7700 + u16::from(id)).parse().unwrap(),
            api: format!("https://127.0.0.1:{}", 8700 + u16::from(id)),
            signing_key: String::new(),
            tls_cert: String::new(),
        };
        let c = ConsortiumFile {
            name: NAME.into(),
            created_unix: 0,
            grant_duration_max_s: 60,
            revocation_quorum: Some(3),
            dissemination: Some(true),
            member_ca: to_hex(cas.member.public()),
            tls_ca: hex::encode(cas.tls.cert_der()),
            ibe_params: String::new(),
            abe_public: String::new(),
            test_consortium: None,
            params: vec![],
            tau: None,
            validators: (0..4).map(validator).collect(),
            members: (0u8..)
                .zip(founders)
                .map(|(node, id)| MemberEntry { id: id.into(), role: "hospital".into(), node })
                .collect(),
        };
        std::fs::create_dir_all(dir.join("genesis/issued")).unwrap();
        std::fs::write(dir.join("genesis/consortium.toml"), toml::to_string(&c).unwrap()).unwrap();
        c
    }

    #[test]
    fn issue_certifies_a_newcomer_from_the_kept_ca_and_nobody_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let c = consortium(dir);
        let paths = contribute(
            dir,
            &[
                ("clinic-n", "hospital", None),
                ("hospital-a", "hospital", None),
                ("kgc-2", "kgc", None),
                ("lab-p", "research", None),
            ],
        );
        let opts = |contribution: &std::path::Path| IssueOptions {
            ca: dir.join("ca"),
            genesis: dir.join("genesis"),
            contribution: contribution.to_path_buf(),
            days: 30,
        };
        let why = |contribution: &std::path::Path| format!("{:#}", issue(&opts(contribution)).unwrap_err());

        let issued = issue(&opts(&paths[0])).unwrap();
        assert_eq!((issued.member.as_str(), issued.serial), ("clinic-n", 1));
        assert_eq!(issued.path, dir.join("genesis/issued/clinic-n.toml"));
        let text = std::fs::read_to_string(&issued.path).unwrap();
        assert!(text.contains(&hex::encode(issued.certificate_sha256)), "{text}");
        let file: IssuedFile = toml::from_str(&text).unwrap();
        let cert: Certificate = from_hex(&file.certificate, "certificate").unwrap();
        // Its node gets the next validator slot, with TLS certificates from the kept CA for
        // the TLS keys it contributed.
        let body = Contribution::load(&paths[0]).unwrap().body;
        let v = file.validator.clone().expect("a validator slot");
        assert_eq!((file.node, v.id), (Some(4), 4));
        assert_eq!(v.signing_key, body.validator_key);
        assert_eq!(v.quic, format!("{}:{}", body.host, body.quic_port).parse().unwrap());
        let tls_ca = hex::decode(&c.tls_ca).unwrap();
        let secret = |f: &str| crate::files::read_secret(&dir.join("clinic-n/secrets").join(f)).unwrap();
        for (der, key, name) in [
            (&v.tls_cert, "tls.key", server_name(4)),
            (file.api_tls_cert.as_ref().unwrap(), "api-tls.key", body.host.clone()),
        ] {
            let tls = NodeTls { cert_der: hex::decode(der).unwrap(), key_der: secret(key) };
            check_identity(&tls_ca, &tls, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let next = issue(&opts(&paths[3])).unwrap();
        let next: IssuedFile = toml::from_str(&std::fs::read_to_string(&next.path).unwrap()).unwrap();
        assert_eq!(next.validator.map(|v| v.id), Some(5), "slots are never handed out twice");
        assert_eq!(issued.certificate_sha256, <[u8; 32]>::from(sha2::Sha256::digest(cert.to_bytes())));
        let ca = from_hex(&c.member_ca, "member CA").unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        cert.verify(&ca, now, &NoRevocations).unwrap();
        let body = Contribution::load(&paths[0]).unwrap().body;
        let f = &cert.fields;
        assert_eq!((f.subject.as_str(), f.role), ("clinic-n", Role::Hospital));
        assert_eq!(f.signing_key, body.signing_key().unwrap());
        assert_eq!(f.attribute_commitment, body.attribute_set().unwrap().commit(&body.attribute_salt().unwrap()));
        assert_eq!(issued.not_after, f.not_after);
        assert!(f.not_after.abs_diff(now + 30 * 24 * 3600) < 60);

        // Refused: issued twice, the same key under another id, a founder, an authority,
        // a contribution changed after signing, and a CA that is not the consortium's.
        assert!(why(&paths[0]).contains("certified already"), "{}", why(&paths[0]));
        let same_key = resigned(dir, &Contribution::load(&paths[0]).unwrap(), |b| b.id = "clinic-m".into());
        let same_key_path = dir.join("clinic-m.toml");
        std::fs::write(&same_key_path, toml::to_string(&same_key).unwrap()).unwrap();
        assert!(why(&same_key_path).contains("signing key is already clinic-n's"), "{}", why(&same_key_path));
        assert!(why(&paths[1]).contains("named at genesis"), "{}", why(&paths[1]));
        assert!(why(&paths[2]).contains("fixed at genesis"), "{}", why(&paths[2]));
        let mut forged = Contribution::load(&paths[1]).unwrap();
        forged.body.id = "clinic-x".into();
        let forged_path = dir.join("clinic-x.toml");
        std::fs::write(&forged_path, toml::to_string(&forged).unwrap()).unwrap();
        assert!(why(&forged_path).contains("does not verify"), "{}", why(&forged_path));
        std::fs::remove_file(&issued.path).unwrap();
        let other = Cas::open_or_create(&dir.join("other-ca"), NAME).unwrap();
        drop(other);
        let mut o = opts(&paths[0]);
        o.ca = dir.join("other-ca");
        assert!(format!("{:#}", issue(&o).unwrap_err()).contains("not the one consortium.toml names"));
        assert!(!issued.path.exists(), "a refusal writes nothing");
    }
}
