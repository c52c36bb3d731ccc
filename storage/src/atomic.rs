//! All-or-nothing batches on any engine.
//!
//! RocksDB applies a `WriteBatch` atomically, so [`commit`] hands it over as is. On an
//! engine without atomic batches (the `Faulty` tearing engine models one), [`commit`] uses
//! a redo intent: (1) the whole batch as one record under `meta/intent` — a single put lands
//! whole or not at all — (2) the batch, (3) the deletion of the intent. [`recover`], run
//! whenever a store opens, re-applies a pending intent; its operations are absolute puts
//! and deletes, so applying them twice is the same as once.

use crate::engine::{Cf, KvEngine, Op, WriteBatch};
use crate::error::{Result, StorageError};
use crate::record::{self, put_bytes, Cursor};

const INTENT_KEY: &[u8] = b"intent";
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_RANGE: u8 = 3;
/// Largest key or value an intent may carry.
const FIELD_MAX: usize = 64 << 20;

/// Applies `batch` so that after any crash either all of it or none of it is visible
/// (once [`recover`] has run).
pub fn commit(engine: &dyn KvEngine, batch: WriteBatch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if engine.atomic_batches() {
        return engine.write(batch);
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
    let mut out = Vec::with_capacity(batch.payload_bytes() + 16 * batch.len());
    out.extend_from_slice(&(batch.len() as u32).to_be_bytes());
    for op in &batch.ops {
        match op {
            Op::Put { cf, key, value } => {
                out.extend_from_slice(&[OP_PUT, cf.code()]);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Op::Delete { cf, key } => {
                out.extend_from_slice(&[OP_DELETE, cf.code()]);
                put_bytes(&mut out, key);
            }
            Op::DeleteRange { cf, from, to } => {
                out.extend_from_slice(&[OP_DELETE_RANGE, cf.code()]);
                put_bytes(&mut out, from);
                put_bytes(&mut out, to);
            }
        }
    }
    out
}

fn decode(payload: &[u8]) -> Result<WriteBatch> {
    let mut c = Cursor::new(Cf::Meta, INTENT_KEY, payload);
    let n = c.u32()? as usize;
    let mut batch = WriteBatch::new();
    for _ in 0..n {
        let tag = c.u8()?;
        let cf = Cf::from_code(c.u8()?).ok_or_else(|| StorageError::Corrupt {
            cf: "meta",
            key: "intent".into(),
            reason: "unknown column family".into(),
        })?;
        let a = c.bytes(FIELD_MAX)?.to_vec();
        match tag {
            OP_PUT => batch.put(cf, a, c.bytes(FIELD_MAX)?.to_vec()),
            OP_DELETE => batch.delete(cf, a),
            OP_DELETE_RANGE => batch.delete_range(cf, a, c.bytes(FIELD_MAX)?.to_vec()),
            _ => {
                return Err(StorageError::Corrupt {
                    cf: "meta",
                    key: "intent".into(),
                    reason: "unknown operation".into(),
                })
            }
        }
    }
    c.finish()?;
    Ok(batch)
}
