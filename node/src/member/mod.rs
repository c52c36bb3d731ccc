//! A member's private material and the off-chain steps of joining: certification by the
//! CA, escrow-free IBE key issuing (DESIGN.md §4.2), the credential leaf the KGC
//! publishes, and the CP-ABE key the KGC delivers IBE-encrypted.

use anyhow::{anyhow, Result};
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cbsre::DelegatingSecretKey;
use dualchain_crypto::cert::{
    AttributeSet, CaPublicKey, Certificate, CertificateAuthority, CertificateFields, NoRevocations, Role, TrustContext,
};
use dualchain_crypto::ibe::{self, AuthoritySecret, IbeCiphertext, IbePrivateKey, IbePublicParams, KeyRequest};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use dualchain_prover::anonymous::AnonymousCredential;
use dualchain_prover::policy::{key_hash, Credential};
use rand::{CryptoRng, RngCore};

pub mod anonymous;
pub mod client;
pub mod consent;
pub mod emergency;
pub mod erasure;
pub mod journal;
pub mod pseudonym;
pub mod sharing;

pub const ATTRIBUTE_SALT_LEN: usize = 32;
/// Associated data of the IBE envelope around a CP-ABE user key.
pub const ABE_KEY_AAD: &[u8] = b"cp-abe-user-key";
/// Associated data of the IBE envelope around a re-key token.
pub const REKEY_AAD: &[u8] = b"rekey-token";

pub type AbeUserKey = <Ac17 as AbeScheme>::UserKey;

/// A certified member with its private keys.
pub struct Member {
    pub id: String,
    pub role: Role,
    pub signer: SigningKeypair,
    pub dsk: DelegatingSecretKey,
    pub attributes: AttributeSet,
    pub attribute_salt: [u8; ATTRIBUTE_SALT_LEN],
    pub cert: Certificate,
    pub ibe_key: Option<IbePrivateKey>,
    pub abe_key: Option<AbeUserKey>,
}

impl Member {
    /// Keys and a CA certificate valid from `now - 60` for a year.
    pub fn certify(
        ca: &CertificateAuthority,
        rng: &mut (impl RngCore + CryptoRng),
        id: &str,
        role: Role,
        attrs: &[&str],
        serial: u64,
        now: u64,
    ) -> Result<Self> {
        let signer = SigningKeypair::generate(rng);
        let dsk = DelegatingSecretKey::generate(rng);
        let attributes = AttributeSet::new(attrs.iter().copied())?;
        dualchain_ledger::policy::check_attributes(&attributes)?;
        let mut attribute_salt = [0u8; ATTRIBUTE_SALT_LEN];
        rng.fill_bytes(&mut attribute_salt);
        let cert = ca.issue(CertificateFields {
            serial,
            subject: id.into(),
            role,
            signing_key: signer.public(),
            delegating_key: dsk.public(),
            attribute_commitment: attributes.commit(&attribute_salt),
            not_before: now - 60,
            not_after: now + 365 * 24 * 3600,
        })?;
        Ok(Self { id: id.into(), role, signer, dsk, attributes, attribute_salt, cert, ibe_key: None, abe_key: None })
    }

    /// The member's credential as the KGC builds it from the certified attributes: the
    /// attribute vector, the attribute salt as field element, the hash of its signing key.
    pub fn credential(&self) -> Credential {
        credential_for(&self.attributes, &self.attribute_salt, self.cert.fields.signing_key.as_bytes())
    }

    /// The member's nullifier key `nk` for the anonymous path
    /// (`dualchain_prover::anonymous`): derived from its signing key with RFC 9380's
    /// hash-to-field, so it needs no storage of its own, lives and dies with that key, and
    /// is known to the member alone. The KGC sees only its commitment.
    pub fn nullifier_key(&self) -> blstrs::Scalar {
        let secret = zeroize::Zeroizing::new(self.signer.to_bytes());
        dualchain_crypto::hash::hash_to_scalar("nullifier-key", &secret)
    }

    /// Its credential on the anonymous path (what the KGC's anonymous leaf commits to).
    pub fn anonymous_credential(&self) -> AnonymousCredential {
        let c = self.credential();
        AnonymousCredential {
            attributes: c.attributes,
            salt: c.salt,
            key_hash: c.key_hash,
            nullifier_key: self.nullifier_key(),
        }
    }

    pub fn ibe_key(&self) -> Result<&IbePrivateKey> {
        self.ibe_key.as_ref().ok_or_else(|| anyhow!("{} has no IBE key", self.id))
    }
}

/// A credential over `attributes` (what the KGC computes after checking their opening).
pub fn credential_for(
    attributes: &AttributeSet,
    salt: &[u8; ATTRIBUTE_SALT_LEN],
    signing_key: &[u8; 32],
) -> Credential {
    Credential {
        attributes: dualchain_ledger::policy::credential_vector(attributes),
        salt: dualchain_prover::field::fr_from_bytes16(&salt[..16]),
        key_hash: key_hash(signing_key),
    }
}

/// The blinded issuing round trip: request, one share per authority (each authenticates
/// the request against the member's certificate and checks the previous share),
/// unblinding.
pub fn issue_ibe_key(
    rng: &mut (impl RngCore + CryptoRng),
    params: &IbePublicParams,
    authorities: &[&AuthoritySecret],
    m: &Member,
    ca: &CaPublicKey,
    now: u64,
) -> Result<IbePrivateKey> {
    let (request, state) = KeyRequest::new(rng, &m.id, &m.signer)?;
    let request = KeyRequest::from_bytes(&request.to_bytes())?;
    let mut shares = Vec::with_capacity(authorities.len());
    for secret in authorities {
        let share = secret.issue_share(
            params,
            &request,
            shares.last(),
            &m.cert,
            &TrustContext::new(ca, now, &NoRevocations),
        )?;
        shares.push(share);
    }
    Ok(state.finish(params, &request, &shares)?)
}

/// The KGC's CP-ABE key for a member, checked against its certificate and sealed to it.
pub fn seal_abe_key(
    rng: &mut (impl RngCore + CryptoRng),
    params: &IbePublicParams,
    msk: &<Ac17 as AbeScheme>::MasterKey,
    m: &Member,
) -> Result<IbeCiphertext> {
    m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
    let key = Ac17::keygen(msk, &dualchain_ledger::policy::abe_key_attributes(&m.attributes)?)?;
    Ok(ibe::encrypt(rng, params, &m.id, &key.to_bytes(), ABE_KEY_AAD)?)
}

/// A member's keys on disk (`secrets/member.json`, written by `dualchain init`): its
/// signing and delegating keys, certified attributes and their salt, certificate, IBE
/// and CP-ABE keys, and what the member holds as an authority (its ESKI-IBE share; the
/// KGC's CP-ABE master key and the credential leaves it publishes).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    pub id: String,
    pub role: String,
    pub signer: String,
    pub dsk: String,
    pub attributes: Vec<String>,
    pub attribute_salt: String,
    pub certificate: String,
    pub ibe_key: Option<String>,
    pub abe_key: Option<String>,
    #[serde(default)]
    pub ibe_authority: Option<String>,
    #[serde(default)]
    pub abe_master: Option<String>,
    /// (member, credential leaf as hex of its 32 canonical bytes), for the KGC.
    #[serde(default)]
    pub credentials: Vec<(String, String)>,
    /// (member, anonymous credential leaf as hex), for the KGC: published with the
    /// credential of the same member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_credentials: Vec<(String, String)>,
}

pub fn role_from_str(s: &str) -> Result<Role> {
    Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| anyhow!("unknown role {s:?}"))
}

impl MemberFile {
    pub fn of(m: &Member) -> Self {
        use crate::files::to_hex;
        Self {
            id: m.id.clone(),
            role: m.role.as_str().into(),
            signer: to_hex(&m.signer),
            dsk: to_hex(&m.dsk),
            attributes: m.attributes.iter().map(str::to_string).collect(),
            attribute_salt: hex::encode(m.attribute_salt),
            certificate: to_hex(&m.cert),
            ibe_key: m.ibe_key.as_ref().map(to_hex),
            abe_key: m.abe_key.as_ref().map(to_hex),
            ibe_authority: None,
            abe_master: None,
            credentials: Vec::new(),
            anonymous_credentials: Vec::new(),
        }
    }

    /// The member, with its certificate checked against its keys and attributes.
    pub fn member(&self) -> Result<Member> {
        use crate::files::from_hex;
        let signer: SigningKeypair = from_hex(&self.signer, "signer")?;
        let dsk: DelegatingSecretKey = from_hex(&self.dsk, "delegating key")?;
        let cert: Certificate = from_hex(&self.certificate, "certificate")?;
        let attributes = AttributeSet::new(self.attributes.iter().map(String::as_str))?;
        let mut attribute_salt = [0u8; ATTRIBUTE_SALT_LEN];
        hex::decode_to_slice(&self.attribute_salt, &mut attribute_salt).map_err(|e| anyhow!("attribute salt: {e}"))?;
        let role = role_from_str(&self.role)?;
        if cert.fields.subject != self.id || cert.fields.role != role {
            return Err(anyhow!(
                "the certificate is {}'s ({}), not {}'s",
                cert.fields.subject,
                cert.fields.role,
                self.id
            ));
        }
        if cert.fields.signing_key != signer.public() || cert.fields.delegating_key != dsk.public() {
            return Err(anyhow!("the certificate does not certify {}'s keys", self.id));
        }
        cert.check_attribute_opening(&attributes, &attribute_salt)?;
        Ok(Member {
            id: self.id.clone(),
            role,
            signer,
            dsk,
            attributes,
            attribute_salt,
            cert,
            ibe_key: self.ibe_key.as_deref().map(|s| from_hex(s, "IBE key")).transpose()?,
            abe_key: self.abe_key.as_deref().map(|s| from_hex(s, "CP-ABE key")).transpose()?,
        })
    }
}
