//! An in-memory engine for unit tests: ordered maps per column family behind one lock,
//! atomic batches.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::engine::{Cf, Entry, KvEngine, Op, Poison, WriteBatch};
use crate::error::Result;

/// One ordered map per column family.
type Families = BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub struct MemoryEngine {
    maps: RwLock<Families>,
    poison: Poison,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one operation, bypassing atomicity (the `Faulty` wrapper tears batches with it).
    pub(crate) fn apply_op(&self, op: &Op) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut maps, op);
    }
}

fn apply(maps: &mut Families, op: &Op) {
    match op {
        Op::Put { cf, key, value } => {
            maps.entry(*cf).or_default().insert(key.clone(), value.clone());
        }
        Op::Delete { cf, key } => {
            maps.entry(*cf).or_default().remove(key);
        }
        Op::DeleteRange { cf, from, to } => {
            let m = maps.entry(*cf).or_default();
            let doomed: Vec<Vec<u8>> = m.range(from.clone()..to.clone()).map(|(k, _)| k.clone()).collect();
            for k in doomed {
                m.remove(&k);
            }
        }
    }
}

impl KvEngine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        Ok(maps.get(&cf).and_then(|m| m.get(key).cloned()))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.poison.check()?;
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        for op in &batch.ops {
            apply(&mut maps, op);
        }
        Ok(())
    }

    fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let Some(m) = maps.get(&cf) else { return Ok(Vec::new()) };
        Ok(m.range(from.to_vec()..)
            .take_while(|(k, _)| to.is_none_or(|t| k.as_slice() < t))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
