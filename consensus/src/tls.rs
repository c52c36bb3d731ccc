//! Mutual TLS for the consensus transport.
//!
//! At genesis the consortium creates a TLS certificate authority (ECDSA P-256, rcgen) and
//! issues every validator a certificate for the name `replica-<i>.dualchain`, usable as
//! both server and client. Every QUIC connection is TLS 1.3 with both sides presenting a
//! certificate chaining to that CA (rustls' WebPKI verifiers, ring provider); a peer is then
//! identified by the exact certificate it presented, which must be the one genesis or a
//! validator set change named for that replica (a change may rotate it in place: see the
//! consensus engine's module docs), so a certificate the CA issued to someone else does
//! not make its holder a replica. Messages on a connection must be signed by the replica
//! it belongs to.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

/// One-way streams a peer may hold open on one connection.
pub const UNI_STREAMS_MAX: u32 = 4;

/// ALPN protocol of the consensus transport.
pub const ALPN: &[u8] = b"dualchain-pbft/1";

/// Errors setting up TLS.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC refused the TLS configuration: {0}")]
    Quic(String),
}

/// The consortium's TLS certificate authority.
pub struct TlsCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A validator's TLS identity: its certificate and PKCS#8 private key (DER).
#[derive(Clone)]
pub struct NodeTls {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls").field("cert_der", &format!("{} bytes", self.cert_der.len())).finish_non_exhaustive()
    }
}

/// The TLS server name of replica `id`.
pub fn server_name(id: u8) -> String {
    format!("replica-{id}.dualchain")
}

/// A TLS key made on the machine that will use it: its PKCS#8 private key (DER) and the
/// raw public key (an uncompressed P-256 point) the CA certifies without seeing the
/// private key (per-institution key generation).
pub struct TlsKey {
    pub key_der: Vec<u8>,
    pub public_raw: Vec<u8>,
}

impl TlsKey {
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        Ok(Self { public_raw: key.public_key_raw().to_vec(), key_der: key.serialize_der() })
    }
}

/// A P-256 public key given as raw bytes, for the CA to certify.
struct RawP256<'a>(&'a [u8]);

impl rcgen::PublicKeyData for RawP256<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// An uncompressed P-256 point: 0x04, then 32 bytes each of x and y.
fn check_p256(raw: &[u8]) -> Result<(), TlsError> {
    if raw.len() == 65 && raw[0] == 4 {
        Ok(())
    } else {
        Err(TlsError::Generate(rcgen::Error::UnsupportedSignatureAlgorithm))
    }
}

impl TlsCa {
    pub fn generate(consortium: &str) -> Result<Self, TlsError> {
        Self::with_key(consortium, KeyPair::generate()?)
    }

    /// The CA of `consortium` from its kept private key (PKCS#8 DER, [`TlsCa::key_der`]):
    /// what it issues chains to the certificate genesis published (same name, same key).
    pub fn from_key_der(consortium: &str, key_der: &[u8]) -> Result<Self, TlsError> {
        Self::with_key(consortium, KeyPair::try_from(key_der)?)
    }

    fn with_key(consortium: &str, key: KeyPair) -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, format!("{consortium} consensus TLS CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA's private key (PKCS#8 DER), for whoever keeps the CA.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    fn replica_params(id: u8) -> Result<CertificateParams, TlsError> {
        let name = server_name(id);
        let mut params = CertificateParams::new(vec![name.clone()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params)
    }

    fn api_params(id: u8, host: &str) -> Result<CertificateParams, TlsError> {
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, format!("api-{id}.dualchain"));
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Ok(params)
    }

    /// Issues replica `id` its certificate, with a key made here.
    pub fn issue(&self, id: u8) -> Result<NodeTls, TlsError> {
        let key = KeyPair::generate()?;
        let cert = Self::replica_params(id)?.signed_by(&key, &self.cert, &self.key)?;
        Ok(NodeTls { cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
    }

    /// Issues replica `id` its certificate for a key made on its own machine
    /// ([`TlsKey::public_raw`]); returns the certificate (DER).
    pub fn certify(&self, id: u8, public_raw: &[u8]) -> Result<Vec<u8>, TlsError> {
        check_p256(public_raw)?;
        Ok(Self::replica_params(id)?.signed_by(&RawP256(public_raw), &self.cert, &self.key)?.der().to_vec())
    }

    /// Issues node `id` the HTTPS certificate of its API, valid for `host` (the IP address
    /// or DNS name its API URL names). Clients trust only the consortium's CA.
    pub fn issue_api(&self, id: u8, host: &str) -> Result<NodeTls, TlsError> {
        let key = KeyPair::generate()?;
        let cert = Self::api_params(id, host)?.signed_by(&key, &self.cert, &self.key)?;
        Ok(NodeTls { cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
    }

    /// [`TlsCa::issue_api`] for a key made on the node's own machine.
    pub fn certify_api(&self, id: u8, host: &str, public_raw: &[u8]) -> Result<Vec<u8>, TlsError> {
        check_p256(public_raw)?;
        Ok(Self::api_params(id, host)?.signed_by(&RawP256(public_raw), &self.cert, &self.key)?.der().to_vec())
    }
}

/// Checks a TLS identity before a node uses it: the certificate is for this private key,
/// chains to the consortium's CA `ca_der` and is valid for `name` (a replica's server name
/// or the API's host). The check an institution makes on what the CA issued it.
pub fn check_identity(ca_der: &[u8], node: &NodeTls, name: &str) -> Result<(), TlsError> {
    certified(node)?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider()).build()?;
    let chain = [CertificateDer::from(node.cert_der.clone())];
    let name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| TlsError::Rustls(rustls::Error::General(format!("{name:?} is not a server name: {e}"))))?;
    use rustls::client::danger::ServerCertVerifier as _;
    verifier.verify_server_cert(&chain[0], &[], &name, &[], rustls::pki_types::UnixTime::now())?;
    Ok(())
}

/// The raw public key of a PKCS#8 private key (to check a certificate against the key a
/// node holds).
pub fn public_raw_of(key_der: &[u8]) -> Result<Vec<u8>, TlsError> {
    Ok(KeyPair::try_from(key_der)?.public_key_raw().to_vec())
}

/// A server certificate that can be replaced while the server runs: handshakes after
/// [`CertSlot::replace`] present the new one; connections already open keep theirs.
#[derive(Debug)]
pub struct CertSlot(std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>);

impl CertSlot {
    pub fn new(node: &NodeTls) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self(std::sync::RwLock::new(Arc::new(certified(node)?)))))
    }

    /// Serves `node` from the next handshake on; refused (and the current one kept) where
    /// the certificate is not for the private key.
    pub fn replace(&self, node: &NodeTls) -> Result<(), TlsError> {
        let next = Arc::new(certified(node)?);
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The certificate presented now (DER).
    pub fn current(&self) -> Vec<u8> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl rustls::server::ResolvesServerCert for CertSlot {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// `node`'s certificate with its signing key, checked to be the certificate's key.
fn certified(node: &NodeTls) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let (chain, key) = identity(node);
    Ok(rustls::sign::CertifiedKey::from_der(chain, key, &provider())?)
}

/// The HTTPS API's server side: TLS 1.2 or 1.3, HTTP/1.1, no client certificate (members
/// authenticate each request with their signature), the certificate from `slot` (so the
/// node can replace it without a restart).
pub fn https_server_config(slot: Arc<CertSlot>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &[u8]) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec()))?;
    Ok(Arc::new(roots))
}

fn identity(node: &NodeTls) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from(node.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node.key_der.clone())),
    )
}

/// The QUIC server side: TLS 1.3, a client certificate from the CA required.
pub fn quic_server_config(ca_der: &[u8], node: &NodeTls) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider.clone()).build()?;
    let (chain, key) = identity(node);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(transport());
    Ok(server)
}

/// The QUIC client side: the server's certificate must chain to the CA; this node presents
/// its own.
pub fn quic_client_config(ca_der: &[u8], node: &NodeTls) -> Result<quinn::ClientConfig, TlsError> {
    let (chain, key) = identity(node);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_der)?)
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport());
    Ok(client)
}

/// Transport tuning: generous flow-control windows (pre-prepares carry megabyte batches),
/// keep-alives so idle links stay up, an idle timeout that notices a dead peer, and the
/// streams the protocol needs: a sender opens two one-way streams (ordering, control) per
/// connection; a peer may open no more than [`UNI_STREAMS_MAX`], and no two-way stream.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(64 << 20));
    t.receive_window(quinn::VarInt::from_u32(256 << 20));
    t.send_window(256 << 20);
    // A connection that heard nothing for 3 s is closed and replaced: one that lived
    // through a partition has backed its probe timer off exponentially (QUIC has no cap)
    // and would stay silent for seconds after the heal; a new one starts afresh.
    t.keep_alive_interval(Some(std::time::Duration::from_millis(750)));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(3_000))));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(UNI_STREAMS_MAX));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    Arc::new(t)
}
