//! All-or-nothing batches on any engine.
//!
//! RocksDB applies a `WriteBatch` atomically, so [`commit`] hands it over as is. On an
//! engine without atomic batches (the `Faulty` tearing engine models one), [`commit`] uses
//! a redo intent: (1) the whole batch as one record under `meta/intent` — a single put lands
//! whole or not at all — (2) the batch, (3) the deletion of the intent. [`recover`], run
//! whenever a store opens, re-applies a pending intent; its operations are absolute puts
//! and deletes, so applying them twice is the same as once.

use dualchain_crypto::encoding::Writer;
use dualchain_crypto::DecodeError;

use crate::engine::{Cf, KvEngine, Op, WriteBatch};
use crate::error::{Result, StorageError};
use crate::record;

const INTENT_KEY: &[u8] = b"intent";
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_RANGE: u8 = 3;
/// Largest key or value an intent may carry.
const FIELD_MAX: usize = 64 << 20;
/// Most operations one intent may carry; [`commit`] refuses larger batches on engines
/// without atomic batches, so every intent it writes can be read back.
const INTENT_OPS_MAX: usize = 1 << 24;
/// The shortest encoded operation: tag, column family, an empty key's length prefix.
const OP_LEN_MIN: usize = 2 + 4;

/// Applies `batch` so that after any crash either all of it or none of it is visible
/// (once [`recover`] has run).
pub fn commit(engine: &dyn KvEngine, batch: WriteBatch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if engine.atomic_batches() {
        return engine.write(batch);
    }
    if batch.len() > INTENT_OPS_MAX {
        return Err(StorageError::Invalid(format!(
            "a batch of {} operations exceeds the {INTENT_OPS_MAX} an intent may carry",
            batch.len()
        )));
    }
    let mut intent = WriteBatch::new();
    intent.put(Cf::Meta, INTENT_KEY, record::seal(&encode(&batch)));
    engine.write(intent)?;
    engine.write(batch)?;
    let mut done = WriteBatch::new();
    done.delete(Cf::Meta, INTENT_KEY);
    engine.write(done)
}

/// Re-applies a pending intent, if any. Returns whether one was found.
pub fn recover(engine: &dyn KvEngine) -> Result<bool> {
    let Some(raw) = engine.get(Cf::Meta, INTENT_KEY)? else { return Ok(false) };
    let payload = record::open(Cf::Meta, INTENT_KEY, &raw)?;
    let mut batch = decode(payload)?;
    batch.delete(Cf::Meta, INTENT_KEY);
    engine.write(batch)?;
    Ok(true)
}

fn encode(batch: &WriteBatch) -> Vec<u8> {
    let mut w = Writer::with_capacity(batch.payload_bytes() + 16 * batch.len());
    w.u32(u32::try_from(batch.len()).expect("intent checked against INTENT_OPS_MAX"));
    for op in &batch.ops {
        match op {
            Op::Put { cf, key, value } => {
                w.fixed(&[OP_PUT, cf.code()]);
                w.bytes(key);
                w.bytes(value);
            }
            Op::Delete { cf, key } => {
                w.fixed(&[OP_DELETE, cf.code()]);
                w.bytes(key);
            }
            Op::DeleteRange { cf, from, to } => {
                w.fixed(&[OP_DELETE_RANGE, cf.code()]);
                w.bytes(from);
                w.bytes(to);
            }
        }
    }
    w.into_bytes()
}

fn decode(payload: &[u8]) -> Result<WriteBatch> {
    record::decode(Cf::Meta, INTENT_KEY, payload, |r| {
        let n = r.count_sized("intent operations", INTENT_OPS_MAX, OP_LEN_MIN)?;
        let mut batch = WriteBatch::new();
        for _ in 0..n {
            let tag = r.u8()?;
            let code = r.u8()?;
            let cf = Cf::from_code(code).ok_or(DecodeError::UnknownVariant { what: "column family", value: code })?;
            let a = r.bytes("intent key", FIELD_MAX)?.to_vec();
            match tag {
                OP_PUT => batch.put(cf, a, r.bytes("intent value", FIELD_MAX)?.to_vec()),
                OP_DELETE => batch.delete(cf, a),
                OP_DELETE_RANGE => batch.delete_range(cf, a, r.bytes("intent range end", FIELD_MAX)?.to_vec()),
                value => return Err(DecodeError::UnknownVariant { what: "intent operation", value }),
            }
        }
        Ok(batch)
    })
}
