//! The workspace's one bounded binary reader (`encoding::Reader`) and its list frames
//! (`decode_list`), which every record, key and frame decoder is built on. The first byte
//! picks a list decode (whose result must re-encode to the input) or a script: each byte
//! of a prefix names a `Reader` call, run against the rest of the input. Never panics;
//! a point or scalar the reader accepts re-encodes to the bytes it read, and the reader
//! never claims more bytes than remain.
#![no_main]

use dualchain_crypto::encoding::{check_ident, decode_list, encode_list, ListBounds, Reader, Writer};
use libfuzzer_sys::fuzz_target;

const SMALL: ListBounds = ListBounds { items_max: 16, item_len_max: 64, len_max: 1024 };
const HUGE: ListBounds = ListBounds { items_max: usize::MAX, item_len_max: usize::MAX, len_max: usize::MAX };

fn list(input: &[u8], bounds: ListBounds) {
    if let Ok(items) = decode_list(input, "fuzz list", bounds) {
        assert!(items.len() <= bounds.items_max);
        assert_eq!(encode_list(&items), input, "list re-encodes differently");
    }
}

/// Runs the Reader call named by `op`; `false` once the reader refuses.
fn step(r: &mut Reader<'_>, op: u8) -> bool {
    let before = r.remaining();
    let ok = match op % 20 {
        0 => r.u8().is_ok(),
        1 => r.u16().is_ok(),
        2 => r.u32().is_ok(),
        3 => r.u64().is_ok(),
        4 => r.u16_le().is_ok(),
        5 => r.u64_le().is_ok(),
        6 => r.bool("bool").is_ok(),
        7 => r.bytes("bytes", 64).is_ok(),
        8 => r.short_bytes("short", 16).is_ok(),
        9 => r.count("count", 1 << 20).is_ok(),
        10 => r.count_sized("count", usize::MAX, 48).is_ok(),
        11 => r.str("str", 128).is_ok(),
        12 => r.ident("ident").map(|s| check_ident("ident", &s).is_ok()).unwrap_or(false),
        13 => match r.g1("g1") {
            Ok(p) => {
                let mut w = Writer::default();
                w.g1(&p);
                assert_eq!(w.len(), 48);
                true
            }
            Err(_) => false,
        },
        14 => r.g2("g2").is_ok(),
        15 => r.scalar("scalar").is_ok(),
        16 => r.nonzero_scalar("scalar").is_ok(),
        17 => r.list("list", SMALL).is_ok(),
        18 => {
            let n = r.remaining() as u64;
            r.take_len("take", n / 2 + 1, usize::MAX).is_ok()
        }
        _ => {
            let _ = r.rest();
            true
        }
    };
    assert!(r.remaining() <= before, "the reader grew its input");
    ok
}

/// Points and scalars re-encode to the bytes they were read from.
fn canonical(input: &[u8]) {
    if let Some(raw) = input.get(..48) {
        if let Ok(p) = Reader::new(raw, "g1").g1("g1") {
            let mut w = Writer::default();
            w.g1(&p);
            assert_eq!(w.into_bytes(), raw, "G1 point re-encodes differently");
        }
    }
    if let Some(raw) = input.get(..96) {
        if let Ok(p) = Reader::new(raw, "g2").g2("g2") {
            let mut w = Writer::default();
            w.g2(&p);
            assert_eq!(w.into_bytes(), raw, "G2 point re-encodes differently");
        }
    }
    if let Some(raw) = input.get(..32) {
        if let Ok(s) = Reader::new(raw, "scalar").scalar("scalar") {
            let mut w = Writer::default();
            w.scalar(&s);
            assert_eq!(w.into_bytes(), raw, "scalar re-encodes differently");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which % 4 {
        0 => list(input, SMALL),
        1 => list(input, HUGE),
        2 => canonical(input),
        _ => {
            // A script of up to 8 calls, its length in the low bits of the first byte.
            let n = usize::from(which >> 2).min(8).min(input.len());
            let (ops, rest) = input.split_at(n);
            let mut r = Reader::new(rest, "fuzz");
            for &op in ops {
                if !step(&mut r, op) {
                    break;
                }
            }
            let _ = r.finish();
        }
    }
});
