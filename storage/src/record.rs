//! The envelope of every stored record: `version (1) ‖ CRC-32C (4, over version and
//! payload) ‖ payload`. A record that fails its checksum or carries an unknown version is
//! reported with its column family and key, never returned as data.
//!
//! Payloads are read with the workspace's one bounded reader
//! ([`dualchain_crypto::encoding::Reader`], through [`decode`]) and written with its
//! [`dualchain_crypto::encoding::Writer`].

use dualchain_crypto::encoding::Reader;
use dualchain_crypto::DecodeError;

use crate::engine::{Cf, KvEngine};
use crate::error::{key_hex, Result, StorageError};

pub const RECORD_VERSION: u8 = 1;
const HEADER_LEN: usize = 5;

/// Wraps a payload in the versioned, checksummed envelope.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(RECORD_VERSION);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[RECORD_VERSION]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks and strips the envelope.
pub fn open<'a>(cf: Cf, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8]> {
    let mut r = Reader::new(bytes, "record envelope");
    let (Ok(version), Ok(stored)) = (r.u8(), r.array::<4>()) else {
        return Err(corrupt(cf, key, "record shorter than its header"));
    };
    if version != RECORD_VERSION {
        return Err(corrupt(cf, key, format!("unknown record version {version}")));
    }
    let payload = r.rest();
    if crc32c::crc32c_append(crc32c::crc32c(&[version]), payload) != u32::from_le_bytes(stored) {
        return Err(corrupt(cf, key, "checksum mismatch"));
    }
    Ok(payload)
}

/// Reads a record and opens its envelope.
pub fn get(engine: &dyn KvEngine, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
    match engine.get(cf, key)? {
        Some(raw) => Ok(Some(open(cf, key, &raw)?.to_vec())),
        None => Ok(None),
    }
}

/// Big-endian u64 key component (keys sort numerically).
pub fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// The error for a record that fails to decode or to check, naming its column family and key.
pub fn corrupt(cf: Cf, key: &[u8], reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { cf: cf.name(), key: key_hex(key), reason: reason.into() }
}

/// Decodes a record's payload with the workspace's bounded [`Reader`]: `read` reads the
/// fields, the payload must be consumed whole, and any malformation is reported as
/// corruption of this record (see [`corrupt`]).
pub fn decode<'a, T>(
    cf: Cf,
    key: &[u8],
    payload: &'a [u8],
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<T> {
    let mut r = Reader::new(payload, cf.name());
    read(&mut r).and_then(|value| r.finish().map(|()| value)).map_err(|e| corrupt(cf, key, e.to_string()))
}

/// Decodes an 8-byte big-endian value stored in a record.
pub fn read_u64(cf: Cf, key: &[u8], payload: &[u8]) -> Result<u64> {
    decode(cf, key, payload, Reader::u64)
}
