//! The envelope of every stored record: `version (1) ‖ CRC-32C (4, over version and
//! payload) ‖ payload`. A record that fails its checksum or carries an unknown version is
//! reported with its column family and key, never returned as data.

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
    let corrupt = |reason: &str| StorageError::Corrupt { cf: cf.name(), key: key_hex(key), reason: reason.into() };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("record shorter than its header"));
    }
    if bytes[0] != RECORD_VERSION {
        return Err(corrupt(&format!("unknown record version {}", bytes[0])));
    }
    let stored = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if crc32c::crc32c_append(crc32c::crc32c(&bytes[..1]), payload) != stored {
        return Err(corrupt("checksum mismatch"));
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

/// Decodes an 8-byte big-endian value stored in a record.
pub fn read_u64(cf: Cf, key: &[u8], payload: &[u8]) -> Result<u64> {
    payload.try_into().map(u64::from_be_bytes).map_err(|_| StorageError::Corrupt {
        cf: cf.name(),
        key: key_hex(key),
        reason: "expected 8 bytes".into(),
    })
}

/// A small cursor for decoding stored payloads, reporting corruption with the record's key.
pub struct Cursor<'a> {
    buf: &'a [u8],
    cf: Cf,
    key: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(cf: Cf, key: &'a [u8], buf: &'a [u8]) -> Self {
        Self { buf, cf, key }
    }
    fn corrupt(&self, reason: &str) -> StorageError {
        StorageError::Corrupt { cf: self.cf.name(), key: key_hex(self.key), reason: reason.into() }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.corrupt("truncated payload"));
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    /// u32-length-prefixed bytes of at most `max`.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.corrupt("length prefix exceeds its bound"));
        }
        self.take(n)
    }
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

/// Appends a u32-length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}
