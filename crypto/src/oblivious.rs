//! Oblivious relaying: the encapsulation of Oblivious HTTP (RFC 9458, §4.3 and §4.4), so
//! that a request can pass through a relay that learns who sent it but not what it says,
//! to a gateway that learns what it says but not who sent it.
//!
//! A client encrypts its request to the gateway's key with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) and sends it through a
//! relay; the gateway answers with a response keyed from the same HPKE context (an
//! exported secret, a fresh response nonce, HKDF), which only the client can open.
//!
//! As RFC 9458 specifies, with one difference: the messages inside are dualchain's own
//! JSON, not Binary HTTP, so the HPKE `info` and export labels name that media type
//! (`message/dualchain+json request` / `response`) instead of `message/bhttp`, and a
//! ciphertext made for one cannot be read as the other.
//!
//! Encodings: a key configuration is `key_id (1) ‖ kem_id (2) ‖ public key (32) ‖ kdf_id
//! (2) ‖ aead_id (2)` (RFC 9458 §3, one symmetric suite); an encapsulated request is
//! `key_id ‖ kem_id ‖ kdf_id ‖ aead_id ‖ enc (32) ‖ ciphertext`; an encapsulated response
//! is `response_nonce (32) ‖ ciphertext`.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hpke::aead::{AeadCtxR, AeadCtxS, ChaCha20Poly1305 as HpkeChaCha};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CryptoError;

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
const AEAD_ID: u16 = 0x0003;
const REQUEST_LABEL: &[u8] = b"message/dualchain+json request";
const RESPONSE_LABEL: &[u8] = b"message/dualchain+json response";
/// `Nk` of ChaCha20-Poly1305, and `max(Nn, Nk)`: the response nonce's length.
const NK: usize = 32;
const NN: usize = 12;
const HEADER_LEN: usize = 7;
const ENC_LEN: usize = 32;
/// Length of an encoded key configuration.
pub const KEY_CONFIG_LEN: usize = 1 + 2 + 32 + 2 + 2;

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

fn bad(why: &'static str) -> CryptoError {
    CryptoError::Decryption(why)
}

/// A gateway's public key configuration: what a client encrypts to.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub key_id: u8,
    public: PublicKey,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KeyConfig {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(KEY_CONFIG_LEN);
        v.push(self.key_id);
        v.extend(KEM_ID.to_be_bytes());
        v.extend(self.public.to_bytes().as_slice());
        v.extend(KDF_ID.to_be_bytes());
        v.extend(AEAD_ID.to_be_bytes());
        v
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        if b.len() != KEY_CONFIG_LEN {
            return Err(bad("a key configuration is 39 bytes"));
        }
        let suite =
            (u16::from_be_bytes([b[1], b[2]]), u16::from_be_bytes([b[35], b[36]]), u16::from_be_bytes([b[37], b[38]]));
        if suite != (KEM_ID, KDF_ID, AEAD_ID) {
            return Err(bad("a key configuration of another suite"));
        }
        let public = PublicKey::from_bytes(&b[3..35]).map_err(|_| bad("not an X25519 public key"))?;
        Ok(Self { key_id: b[0], public })
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.key_id;
        h[1..3].copy_from_slice(&KEM_ID.to_be_bytes());
        h[3..5].copy_from_slice(&KDF_ID.to_be_bytes());
        h[5..7].copy_from_slice(&AEAD_ID.to_be_bytes());
        h
    }
}

/// `info = label ‖ 0x00 ‖ header` (RFC 9458 §4.3).
fn info(header: &[u8; HEADER_LEN]) -> Vec<u8> {
    let mut v = REQUEST_LABEL.to_vec();
    v.push(0);
    v.extend(header);
    v
}

/// A gateway's key pair.
pub struct GatewayKey {
    pub key_id: u8,
    secret: PrivateKey,
    public: PublicKey,
}

impl GatewayKey {
    pub fn generate<R: RngCore + CryptoRng>(key_id: u8, rng: &mut R) -> Self {
        let (secret, public) = Kem::gen_keypair(rng);
        Self { key_id, secret, public }
    }

    /// The secret key's 32 bytes (to keep it on the gateway's disk).
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.secret.to_bytes().to_vec())
    }

    pub fn from_secret(key_id: u8, secret: &[u8]) -> Result<Self, CryptoError> {
        let secret = PrivateKey::from_bytes(secret).map_err(|_| bad("not an X25519 secret key"))?;
        let public = Kem::sk_to_pk(&secret);
        Ok(Self { key_id, secret, public })
    }

    pub fn config(&self) -> KeyConfig {
        KeyConfig { key_id: self.key_id, public: self.public.clone() }
    }

    /// Opens an encapsulated request: its plaintext, and what answers it.
    pub fn open_request(&self, request: &[u8]) -> Result<(Vec<u8>, ResponseContext), CryptoError> {
        if request.len() < HEADER_LEN + ENC_LEN {
            return Err(bad("an encapsulated request is shorter than its header"));
        }
        let header: [u8; HEADER_LEN] = request[..HEADER_LEN].try_into().expect("7 bytes");
        if header != self.config().header() {
            return Err(bad("an encapsulated request for another key or suite"));
        }
        let enc_bytes = &request[HEADER_LEN..HEADER_LEN + ENC_LEN];
        let enc = EncappedKey::from_bytes(enc_bytes).map_err(|_| bad("not an encapsulated X25519 key"))?;
        let mut ctx: AeadCtxR<HpkeChaCha, HkdfSha256, Kem> =
            hpke::setup_receiver(&OpModeR::Base, &self.secret, &enc, &info(&header))
                .map_err(|_| bad("the request's key does not decapsulate"))?;
        let plaintext =
            ctx.open(&request[HEADER_LEN + ENC_LEN..], b"").map_err(|_| bad("the request does not open"))?;
        let mut secret = Zeroizing::new([0u8; NK]);
        ctx.export(RESPONSE_LABEL, secret.as_mut()).map_err(|_| bad("export"))?;
        Ok((plaintext, ResponseContext { enc: enc_bytes.to_vec(), secret }))
    }
}

/// Derives the response's AEAD key and nonce (RFC 9458 §4.4).
fn response_aead(enc: &[u8], response_nonce: &[u8], secret: &[u8; NK]) -> (Zeroizing<[u8; NK]>, [u8; NN]) {
    let mut salt = enc.to_vec();
    salt.extend(response_nonce);
    let hk = Hkdf::<Sha256>::new(Some(&salt), secret);
    let mut key = Zeroizing::new([0u8; NK]);
    let mut nonce = [0u8; NN];
    hk.expand(b"key", key.as_mut()).expect("32 bytes is a valid HKDF length");
    hk.expand(b"nonce", &mut nonce).expect("12 bytes is a valid HKDF length");
    (key, nonce)
}

/// What a gateway answers one request with.
pub struct ResponseContext {
    enc: Vec<u8>,
    secret: Zeroizing<[u8; NK]>,
}

impl ResponseContext {
    pub fn seal<R: RngCore + CryptoRng>(&self, response: &[u8], rng: &mut R) -> Vec<u8> {
        let mut response_nonce = [0u8; NK];
        rng.fill_bytes(&mut response_nonce);
        let (key, nonce) = response_aead(&self.enc, &response_nonce, &self.secret);
        let ct = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
            .encrypt(Nonce::from_slice(&nonce), response)
            .expect("ChaCha20-Poly1305 seals any length this API carries");
        let mut v = response_nonce.to_vec();
        v.extend(ct);
        v
    }
}

/// A client's pending request: opens the one response to it.
pub struct ClientContext {
    enc: Vec<u8>,
    secret: Zeroizing<[u8; NK]>,
}

/// Encapsulates `request` for the gateway of `config`: the bytes to send through a relay,
/// and what opens the response.
pub fn seal_request<R: RngCore + CryptoRng>(
    config: &KeyConfig,
    request: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, ClientContext), CryptoError> {
    let header = config.header();
    let (enc, mut ctx): (EncappedKey, AeadCtxS<HpkeChaCha, HkdfSha256, Kem>) =
        hpke::setup_sender(&OpModeS::Base, &config.public, &info(&header), rng)
            .map_err(|_| CryptoError::InvalidArgument("HPKE encapsulation failed".into()))?;
    let ct = ctx.seal(request, b"").map_err(|_| CryptoError::InvalidArgument("HPKE seal failed".into()))?;
    let mut secret = Zeroizing::new([0u8; NK]);
    ctx.export(RESPONSE_LABEL, secret.as_mut()).map_err(|_| CryptoError::InvalidArgument("export".into()))?;
    let enc = enc.to_bytes().to_vec();
    let mut v = header.to_vec();
    v.extend(&enc);
    v.extend(ct);
    Ok((v, ClientContext { enc, secret }))
}

impl ClientContext {
    /// Opens the gateway's response to this request.
    pub fn open_response(&self, response: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if response.len() < NK {
            return Err(bad("an encapsulated response is shorter than its nonce"));
        }
        let (response_nonce, ct) = response.split_at(NK);
        let (key, nonce) = response_aead(&self.enc, response_nonce, &self.secret);
        ChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
            .decrypt(Nonce::from_slice(&nonce), ct)
            .map_err(|_| bad("the response does not open"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn gateway(seed: u64) -> GatewayKey {
        GatewayKey::generate(7, &mut ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn a_request_opens_at_its_gateway_and_the_response_at_its_client_only() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let g = gateway(2);
        let config = KeyConfig::from_bytes(&g.config().to_bytes()).unwrap();
        assert_eq!(config, g.config());
        let (req, client) = seal_request(&config, b"{\"op\":\"fetch\"}", &mut rng).unwrap();
        assert!(!req.windows(5).any(|w| w == b"fetch"), "the relay sees no plaintext");
        let (plain, answer) = g.open_request(&req).unwrap();
        assert_eq!(plain, b"{\"op\":\"fetch\"}");
        let resp = answer.seal(b"records", &mut rng);
        assert_eq!(client.open_response(&resp).unwrap(), b"records");

        // Another request's context cannot open this response, nor another gateway the request.
        let (_, other) = seal_request(&config, b"x", &mut rng).unwrap();
        assert!(other.open_response(&resp).is_err());
        let g2 = GatewayKey::from_secret(7, &gateway(3).secret_bytes()).unwrap();
        assert!(g2.open_request(&req).is_err());
        // The key round-trips through its secret bytes.
        let again = GatewayKey::from_secret(7, &g.secret_bytes()).unwrap();
        assert_eq!(again.config(), g.config());
        assert!(again.open_request(&req).is_ok());
    }

    #[test]
    fn tampered_or_truncated_messages_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let g = gateway(5);
        let (req, client) = seal_request(&g.config(), b"request", &mut rng).unwrap();
        for i in [0, 1, 6, HEADER_LEN, HEADER_LEN + ENC_LEN, req.len() - 1] {
            let mut t = req.clone();
            t[i] ^= 1;
            assert!(g.open_request(&t).is_err(), "byte {i} flipped");
        }
        for n in [0, HEADER_LEN, HEADER_LEN + ENC_LEN, req.len() - 1] {
            assert!(g.open_request(&req[..n]).is_err(), "cut at {n}");
        }
        let (_, answer) = g.open_request(&req).unwrap();
        let resp = answer.seal(b"response", &mut rng);
        for i in [0, NK, resp.len() - 1] {
            let mut t = resp.clone();
            t[i] ^= 1;
            assert!(client.open_response(&t).is_err(), "byte {i} flipped");
        }
        assert!(client.open_response(&resp[..NK - 1]).is_err());
        let mut config = g.config().to_bytes();
        config[2] ^= 1;
        assert!(KeyConfig::from_bytes(&config).is_err(), "another KEM");
        assert!(KeyConfig::from_bytes(&config[..10]).is_err());
    }
}
