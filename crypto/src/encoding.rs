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
//!
//! [`Reader`] and [`Writer`] are the one binary reader and writer of the workspace: the
//! storage records, the Groth16 parameter files and the API's list frames
//! ([`encode_list`]/[`decode_list`]) use them too. No input makes a [`Reader`] panic; every
//! length it reads is checked against a named maximum and against the bytes that remain.

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
    pub const ESCROW_DEALING: u8 = 0x40;
    pub const ESCROW_DKG_SHARE: u8 = 0x41;
    pub const ESCROW_KEY: u8 = 0x42;
    pub const ESCROW_AUTHORITY_SECRET: u8 = 0x43;
    pub const ESCROW_SEALED: u8 = 0x44;
    pub const ESCROW_DECRYPTION_SHARE: u8 = 0x45;
}

/// Appends fields in canonical form.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer whose buffer holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
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
    /// Little-endian, for formats fixed before this module (the Groth16 parameter files).
    pub fn u16_le(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Little-endian, for formats fixed before this module (the Groth16 parameter files).
    pub fn u64_le(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
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

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < n {
            return Err(DecodeError::Truncated { what: self.what });
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    /// Everything not read yet (for a trailing opaque field).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.input)
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
    /// Little-endian (see [`Writer::u16_le`]).
    pub fn u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Little-endian (see [`Writer::u64_le`]).
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::UnknownVariant { what: field, value }),
        }
    }

    /// `len` bytes, where `len` was read from the input (in whatever width the format uses):
    /// at most `max`, and no more than remain.
    pub fn take_len(&mut self, field: &'static str, len: u64, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::TooLong { what: field, len, max });
        }
        if len > self.input.len() {
            return Err(DecodeError::Truncated { what: field });
        }
        self.take(len)
    }

    /// `u32`-length-prefixed bytes of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()?;
        self.take_len(field, u64::from(len), max)
    }

    /// `u8`-length-prefixed bytes of at most `max` bytes (short names in fixed formats).
    pub fn short_bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u8()?;
        self.take_len(field, u64::from(len), max)
    }

    /// A `u32` length prefix for a list of at most `max` items, each at least one byte long
    /// (see [`Reader::count_sized`]).
    pub fn count(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        self.count_sized(field, max, 1)
    }

    /// A `u32` length prefix for a list of at most `max` items, each of which takes at least
    /// `item_len_min` bytes (at least one), so a count the remaining input cannot hold is
    /// refused before anything is allocated for it.
    pub fn count_sized(&mut self, field: &'static str, max: usize, item_len_min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()?;
        self.check_count(field, u64::from(n), max, item_len_min)
    }

    /// Checks an item count read from the input (in whatever width the format uses): at
    /// most `max`, and no more items of at least `item_len_min` bytes than remain.
    pub fn check_count(
        &self,
        field: &'static str,
        n: u64,
        max: usize,
        item_len_min: usize,
    ) -> Result<usize, DecodeError> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max {
            return Err(DecodeError::TooLong { what: field, len: n, max });
        }
        if n > self.input.len() / item_len_min.max(1) {
            return Err(DecodeError::Truncated { what: field });
        }
        Ok(n)
    }

    /// A list frame (see [`encode_list`]): a count, then each item `u32`-length-prefixed.
    pub fn list(&mut self, field: &'static str, bounds: ListBounds) -> Result<Vec<&'a [u8]>, DecodeError> {
        let n = self.count_sized(field, bounds.items_max, 4)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.bytes(field, bounds.item_len_max)?);
        }
        Ok(items)
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

/// The bounds a list frame is decoded under (see [`decode_list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListBounds {
    /// Most items the list may hold.
    pub items_max: usize,
    /// Longest item, in bytes.
    pub item_len_max: usize,
    /// Longest whole frame, in bytes (checked before anything is parsed).
    pub len_max: usize,
}

/// A list frame: `count (u32) ‖ (len (u32) ‖ item)*`, all big-endian. Items are opaque (each
/// usually an encoding of its own). The caller keeps the count and every item below
/// `u32::MAX`, as every decoder's bounds are far below it.
pub fn encode_list<I>(items: I) -> Vec<u8>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let items: Vec<I::Item> = items.into_iter().collect();
    let len = 4 + items.iter().map(|i| 4 + i.as_ref().len()).sum::<usize>();
    let mut w = Writer::with_capacity(len);
    w.u32(u32::try_from(items.len()).expect("list of more than u32::MAX items"));
    for item in &items {
        w.bytes(item.as_ref());
    }
    w.into_bytes()
}

/// Decodes a whole list frame (see [`encode_list`]) under `bounds`; trailing bytes are an
/// error. The items borrow from `bytes`.
pub fn decode_list<'a>(bytes: &'a [u8], what: &'static str, bounds: ListBounds) -> Result<Vec<&'a [u8]>, DecodeError> {
    if bytes.len() > bounds.len_max {
        return Err(DecodeError::TooLong { what, len: bytes.len(), max: bounds.len_max });
    }
    let mut r = Reader::new(bytes, what);
    let items = r.list(what, bounds)?;
    r.finish()?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: ListBounds = ListBounds { items_max: 8, item_len_max: 16, len_max: 256 };

    fn items() -> Vec<Vec<u8>> {
        vec![b"alpha".to_vec(), Vec::new(), vec![0xff; 16]]
    }

    #[test]
    fn list_round_trip_and_layout() {
        let enc = encode_list(items());
        assert_eq!(&enc[..4], &3u32.to_be_bytes(), "count first, big-endian");
        assert_eq!(&enc[4..8], &5u32.to_be_bytes(), "then each item's length");
        assert_eq!(&enc[8..13], b"alpha");
        let dec = decode_list(&enc, "list", BOUNDS).unwrap();
        assert_eq!(dec, items().iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(decode_list(&encode_list(Vec::<Vec<u8>>::new()), "list", BOUNDS).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn list_truncated_at_every_length_is_refused() {
        let enc = encode_list(items());
        for cut in 0..enc.len() {
            assert!(
                matches!(decode_list(&enc[..cut], "list", BOUNDS), Err(DecodeError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn list_trailing_bytes_are_refused() {
        let mut enc = encode_list(items());
        enc.push(0);
        assert!(matches!(decode_list(&enc, "list", BOUNDS), Err(DecodeError::TrailingBytes { count: 1, .. })));
    }

    #[test]
    fn list_oversize_counts_and_items_are_refused() {
        // More items than the bound, though every item is present.
        let many = encode_list(vec![[1u8]; BOUNDS.items_max + 1]);
        assert!(matches!(decode_list(&many, "list", BOUNDS), Err(DecodeError::TooLong { len: 9, max: 8, .. })));
        // A count within the bound that the input cannot hold: refused before allocating.
        let mut lying = 8u32.to_be_bytes().to_vec();
        lying.extend_from_slice(&[0; 12]);
        assert!(matches!(decode_list(&lying, "list", BOUNDS), Err(DecodeError::Truncated { .. })));
        // A count of u32::MAX with generous bounds: refused by the remaining input.
        let huge = ListBounds { items_max: usize::MAX, item_len_max: usize::MAX, len_max: usize::MAX };
        assert!(decode_list(&u32::MAX.to_be_bytes(), "list", huge).is_err());
        // An item longer than its bound, and an item length beyond the input.
        let long = encode_list([vec![0u8; BOUNDS.item_len_max + 1]]);
        assert!(matches!(decode_list(&long, "list", BOUNDS), Err(DecodeError::TooLong { len: 17, max: 16, .. })));
        let mut beyond = 1u32.to_be_bytes().to_vec();
        beyond.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_list(&beyond, "list", huge), Err(DecodeError::Truncated { .. })));
        // A whole frame longer than its bound.
        let frame = encode_list(items());
        let tight = ListBounds { len_max: frame.len() - 1, ..BOUNDS };
        assert!(matches!(decode_list(&frame, "list", tight), Err(DecodeError::TooLong { .. })));
    }

    #[test]
    fn list_garbage_never_panics() {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(16);
        let huge = ListBounds { items_max: usize::MAX, item_len_max: usize::MAX, len_max: usize::MAX };
        for len in 0..300 {
            let mut garbage = vec![0u8; len % 64];
            rng.fill_bytes(&mut garbage);
            // Small counts make some garbage parse; both outcomes are fine, a panic is not.
            if let Some(b) = garbage.first_mut() {
                *b &= 0x01;
            }
            let _ = decode_list(&garbage, "list", BOUNDS);
            let _ = decode_list(&garbage, "list", huge);
        }
    }

    #[test]
    fn reader_lengths_are_bounded_by_max_and_input() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1, 2], "field");
        assert!(matches!(r.bytes("field", 8), Err(DecodeError::TooLong { len: 9, max: 8, .. })));
        let mut r = Reader::new(&[0, 0, 0, 5, 1, 2], "field");
        assert!(matches!(r.bytes("field", 8), Err(DecodeError::Truncated { .. })));
        let mut r = Reader::new(&[3, b'a', b'b', b'c', 1], "field");
        assert_eq!(r.short_bytes("name", 3).unwrap(), b"abc");
        assert_eq!(r.remaining(), 1);
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 0, 0, 0, 0], "le");
        assert_eq!((r.u16_le().unwrap(), r.u64_le().unwrap()), (1, 2));
        assert!(r.is_empty());
        let mut r = Reader::new(&[0, 0, 0, 0, 0, 0, 0, 0], "field");
        assert!(matches!(r.take_len("field", u64::MAX, usize::MAX), Err(DecodeError::Truncated { .. })));
    }
}
