//! Field-element conversions shared by the circuits and their native twins.

use blstrs::Scalar as Fr;

pub fn fr_from_u64(v: u64) -> Fr {
    Fr::from(v)
}

/// Up to 16 bytes (little-endian) as a field element; injective on 16-byte strings.
pub fn fr_from_bytes16(bytes: &[u8]) -> Fr {
    assert!(bytes.len() <= 16, "at most 16 bytes fit below the field order with room to spare");
    let mut le = [0u8; 32];
    le[..bytes.len()].copy_from_slice(bytes);
    Option::from(Fr::from_bytes_le(&le)).expect("a 128-bit value is below the field order")
}

/// A field element's canonical 32-byte little-endian encoding.
pub fn fr_to_bytes(v: &Fr) -> [u8; 32] {
    v.to_bytes_le()
}

/// Decodes a canonical field element.
pub fn fr_from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    Option::from(Fr::from_bytes_le(bytes))
}
