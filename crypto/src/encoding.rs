//! Versioned, canonical, bounded byte encodings.
//!
//! Every key, certificate, capsule, token and ciphertext of dualchain encodes as
//! `tag (1 byte) ‖ version (1 byte) ‖ body`, where the body is a fixed sequence of fields:
//! big-endian fixed-width integers, `u32` length prefixes checked against a named maximum,
//! curve points in the compressed ZCash/IETF form of BLS12-381 (48 bytes G1, 96 bytes G2),
//! scalars as 32 little-endian bytes below the group order.
//!
//! Decoders treat input as adversarial: the total length is bounded before parsing, every
//! length prefix is bounded, points are checked on-curve and in the prime-order subgroup
//! (blst's `from_compressed` does both and rejects non-canonical field elements and
//! malformed infinity encodings), scalars must be canonical, enums reject unknown values and
//! trailing bytes are an error. Because every field has exactly one encoding, decoding then
//! re-encoding gives back the input byte for byte — the conformance tests check this.

use blstrs::{G1Affine, G2Affine, Scalar};
use group::prime::PrimeCurveAffine;

use crate::error::DecodeError;

/// The only encoding version this build writes and reads.
pub const ENCODING_VERSION: u8 = 1;

/// A type with a canonical, versioned byte encoding.
pub trait Codec: Sized {
    /// Type tag, unique per encoded type (see [`tags`]).
    const TAG: u8;
    /// Human-readable name used in error messages.
    const NAME: &'static str;
    /// Upper bound on the whole encoding, checked before parsing.
    const MAX_LEN: usize;

    /// Writes the body (without tag and version).
    fn encode_body(&self, w: &mut Writer);
    /// Reads the body (without tag and version).
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The canonical encoding: tag, version, body.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(Self::TAG);
        w.u8(ENCODING_VERSION);
        self.encode_body(&mut w);
        w.into_bytes()
    }

    /// Decodes a canonical encoding, rejecting anything else.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(DecodeError::TooLong { what: Self::NAME, len: bytes.len(), max: Self::MAX_LEN });
        }
        let mut r = Reader::new(bytes, Self::NAME);
        let tag = r.u8()?;
        if tag != Self::TAG {
            return Err(DecodeError::WrongTag { what: Self::NAME, expected: Self::TAG, found: tag });
        }
        let version = r.u8()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: Self::NAME,
                found: version,
                supported: ENCODING_VERSION,
            });
        }
        let value = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// Type tags of every encoded type; unique so that one type's bytes never decode as another's.
pub mod tags {
    pub const CA_PUBLIC_KEY: u8 = 0x01;
    pub const CERTIFICATE: u8 = 0x02;
    pub const SIGNING_KEY: u8 = 0x03;
    pub const DELEGATING_SECRET: u8 = 0x10;
    pub const DELEGATING_PUBLIC: u8 = 0x11;
    pub const CAPSULE: u8 = 0x12;
    pub const SIGNCRYPTED: u8 = 0x13;
    pub const REKEY_TOKEN: u8 = 0x14;
    pub const REENCRYPTED: u8 = 0x15;
    pub const IBE_PUBLIC_PARAMS: u8 = 0x20;
    pub const IBE_KEY_REQUEST: u8 = 0x21;
    pub const IBE_KEY_SHARE: u8 = 0x22;
    pub const IBE_PRIVATE_KEY: u8 = 0x23;
    pub const IBE_CIPHERTEXT: u8 = 0x24;
    pub const IBE_AUTHORITY_SECRET: u8 = 0x25;
    pub const ABE_PUBLIC_KEY: u8 = 0x30;
    pub const ABE_MASTER_KEY: u8 = 0x31;
    pub const ABE_USER_KEY: u8 = 0x32;
    pub const ABE_CIPHERTEXT: u8 = 0x33;
}

/// Appends fields in canonical form.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// Length-prefixed bytes. Callers keep lengths below their decoder's maximum, which is
    /// always far below `u32::MAX`.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("encoded field longer than u32::MAX");
        self.u32(len);
        self.fixed(bytes);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn g1(&mut self, p: &G1Affine) {
        self.fixed(&p.to_compressed());
    }
    pub fn g2(&mut self, p: &G2Affine) {
        self.fixed(&p.to_compressed());
    }
    pub fn scalar(&mut self, s: &Scalar) {
        self.fixed(&s.to_bytes_le());
    }
    /// Nested value of a fixed type: its body only.
    pub fn nested<T: Codec>(&mut self, v: &T) {
        v.encode_body(self);
    }
}

/// Reads fields from untrusted input, bounding every length.
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8], what: &'static str) -> Self {
        Self { input, what }
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { what: self.what, count: self.input.len() })
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < n {
            return Err(DecodeError::Truncated { what: self.what });
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::UnknownVariant { what: field, value }),
        }
    }

    /// Length-prefixed bytes of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what: field, len, max });
        }
        self.take(len)
    }

    /// A length prefix for a list of at most `max` items.
    pub fn count(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooLong { what: field, len: n, max });
        }
        Ok(n)
    }

    pub fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let raw = self.bytes(field, max)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::Invalid { what: field, reason: "not valid UTF-8".into() })
    }

    /// A G1 point in the prime-order subgroup; the identity is rejected.
    pub fn g1(&mut self, field: &'static str) -> Result<G1Affine, DecodeError> {
        let raw = self.array::<48>()?;
        let p: Option<G1Affine> = G1Affine::from_compressed(&raw).into();
        let p = p.ok_or(DecodeError::InvalidPoint { what: field })?;
        if bool::from(p.is_identity()) {
            return Err(DecodeError::IdentityPoint { what: field });
        }
        Ok(p)
    }

    /// A G2 point in the prime-order subgroup; the identity is rejected.
    pub fn g2(&mut self, field: &'static str) -> Result<G2Affine, DecodeError> {
        let raw = self.array::<96>()?;
        let p: Option<G2Affine> = G2Affine::from_compressed(&raw).into();
        let p = p.ok_or(DecodeError::InvalidPoint { what: field })?;
        if bool::from(p.is_identity()) {
            return Err(DecodeError::IdentityPoint { what: field });
        }
        Ok(p)
    }

    /// A canonical scalar (strictly below the group order).
    pub fn scalar(&mut self, field: &'static str) -> Result<Scalar, DecodeError> {
        let raw = self.array::<32>()?;
        Option::from(Scalar::from_bytes_le(&raw)).ok_or(DecodeError::NonCanonicalScalar { what: field })
    }

    /// A canonical, non-zero scalar.
    pub fn nonzero_scalar(&mut self, field: &'static str) -> Result<Scalar, DecodeError> {
        let s = self.scalar(field)?;
        if bool::from(ff::Field::is_zero(&s)) {
            return Err(DecodeError::Invalid { what: field, reason: "zero scalar".into() });
        }
        Ok(s)
    }

    pub fn nested<T: Codec>(&mut self) -> Result<T, DecodeError> {
        T::decode_body(self)
    }
}

/// A bounded identifier: 1..=[`IDENT_LEN_MAX`] bytes of `[a-z0-9._:-]`. Member ids, roles
/// of attributes and dataset names use it, so identifiers are canonical by construction
/// (no case folding, no Unicode confusables).
pub const IDENT_LEN_MAX: usize = 64;

/// Checks an identifier; `field` names it in the error.
pub fn check_ident(field: &'static str, s: &str) -> Result<(), DecodeError> {
    if s.is_empty() || s.len() > IDENT_LEN_MAX {
        return Err(DecodeError::Invalid {
            what: field,
            reason: format!("must be 1..={IDENT_LEN_MAX} bytes, got {}", s.len()),
        });
    }
    if let Some(c) = s.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | ':' | '-')) {
        return Err(DecodeError::Invalid {
            what: field,
            reason: format!("character {c:?} is not allowed (use a-z, 0-9, '.', '_', ':', '-')"),
        });
    }
    Ok(())
}

impl Reader<'_> {
    /// A length-prefixed identifier (see [`check_ident`]).
    pub fn ident(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let s = self.str(field, IDENT_LEN_MAX)?;
        check_ident(field, s)?;
        Ok(s.to_owned())
    }
}
