//! `dualchain issue`: the coordinator certifies an institution that joins after genesis
//! (issue 19; the runbook is deploy/README.md, "Admitting a new institution").
//!
//! The newcomer makes its keys on its own machine with `dualchain keygen`, as a founder
//! did, and sends its `contribution.toml`. The coordinator checks it as assembly checks a
//! contribution ([`super::assemble::check_contribution`]: signed by the member key it
//! names, for this consortium, well formed), and that the newcomer is a hospital or a
//! research institute (the ESKI-IBE authorities, the KGC and the CPCs, are fixed at
//! genesis), not a member named at genesis nor certified already, and brings a signing key
//! no issued member holds. It then issues the member certificate from the member CA it
//! keeps, writes `issued/<member>.toml` and returns the certificate's SHA-256.
//!
//! The certificate alone admits no one: the newcomer's registration only opens its
//! admission on the ledger, and it is registered once the consortium's membership quorum
//! of members approved that certificate by its SHA-256 (`dualchain client admit-member`;
//! the ledger's `registry::admit_member`).
//!
//! Not within reach yet: the newcomer's node. A node is a validator slot in
//! consortium.toml, whose list is fixed at genesis; consensus can add a validator
//! (`dualchain_consensus::membership`), but the node's commands for it (or a follower mode
//! that sends a member's transactions through another node) are not built; so `issue`
//! writes no `node`, API TLS certificate or `node.toml`, and `dualchain join` refuses the
//! file it writes. Until then nothing sends the newcomer's `RegisterMember`, and its
//! admission cannot open.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use dualchain_crypto::cert::{Certificate, Role};
use dualchain_crypto::Codec;

use super::assemble::{check_contribution, Cas};
use super::institution::{Contribution, IssuedFile};
use crate::config::ConsortiumFile;
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
    cas.save(&opts.ca, &consortium.name)?;
    let certificate_sha256 = dualchain_ledger::tx::certificate_sha256(&cert.to_bytes());
    let file = IssuedFile { id: c.body.id.clone(), node: None, certificate: to_hex(&cert), api_tls_cert: None };
    let header = format!(
        "# {}'s member certificate, issued after genesis: it joins once the consortium's membership\n\
         # quorum approved the certificate of SHA-256 {}\n",
        c.body.id,
        hex::encode(certificate_sha256)
    );
    let path = file.save(&opts.genesis, Some(&header))?;
    Ok(Issued { member: c.body.id, serial: cert.fields.serial, not_after, certificate_sha256, path })
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
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::assemble::tests::{contribute, resigned, NAME};
    use super::*;
    use crate::config::{MemberEntry, ValidatorEntry};
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
            member_ca: to_hex(cas.member.public()),
            tls_ca: String::new(),
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
            &[("clinic-n", "hospital", None), ("hospital-a", "hospital", None), ("kgc-2", "kgc", None)],
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
        assert_eq!((file.node, file.api_tls_cert), (None, None), "no node slot is made");
        let cert: Certificate = from_hex(&file.certificate, "certificate").unwrap();
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
