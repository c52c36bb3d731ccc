//! A hospital's own journals, its patients' Consents (the `consent` module) and its
//! erasures (the `erasure` module), in a RocksDB of their own: `member/` in the node's data directory,
//! created mode 0700 (the journals name patients).
//!
//! Each entry is one key, `<journal>/<sequence, 20 digits>` in the store's `Meta` family,
//! written synced. A new entry costs one small write however long the journal is (earlier
//! builds rewrote a whole JSON file for every entry: quadratic over a hospital's years of
//! Consents), and an entry replaced together with others (an erasure settled, its other
//! attempts dropped) changes in one atomic batch, so a crash leaves the journal as it was
//! before the write or after it.
//!
//! A journal that an earlier build left as a JSON list (`consents.json`, `erasures.json`)
//! is imported once, into an empty journal, and renamed `<file>.imported`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use dualchain_storage::engine::{Cf, WriteBatch};
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::KvEngine;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Opens (creating, mode 0700) the hospital's journal store in `dir`.
pub fn open_store(dir: &Path) -> Result<Arc<dyn KvEngine>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    let engine =
        RocksEngine::open(dir, &RocksConfig::default()).with_context(|| format!("opening {}", dir.display()))?;
    Ok(Arc::new(engine))
}

/// One journal in the store (none: kept in memory only, for tests and tools).
pub struct Journal {
    engine: Option<Arc<dyn KvEngine>>,
    name: &'static str,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("name", &self.name).field("stored", &self.engine.is_some()).finish()
    }
}

impl Journal {
    pub fn new(engine: Option<Arc<dyn KvEngine>>, name: &'static str) -> Self {
        Self { engine, name }
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        format!("{}/{seq:020}", self.name).into_bytes()
    }

    /// Every entry, in sequence order.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Vec<(u64, T)>> {
        let Some(engine) = &self.engine else { return Ok(Vec::new()) };
        let from = format!("{}/", self.name).into_bytes();
        let to = format!("{}0", self.name).into_bytes(); // '0' follows '/'
        let mut out = Vec::new();
        for (k, v) in engine.scan(Cf::Meta, &from, Some(&to), usize::MAX)? {
            let seq = std::str::from_utf8(&k[from.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("a {} journal key {:?}", self.name, String::from_utf8_lossy(&k)))?;
            let value = serde_json::from_slice(&v).with_context(|| format!("{} journal entry {seq}", self.name))?;
            out.push((seq, value));
        }
        Ok(out)
    }

    /// Writes `put` and removes `delete`, in one synced batch.
    pub fn write<T: Serialize>(&self, put: &[(u64, &T)], delete: &[u64]) -> Result<()> {
        let Some(engine) = &self.engine else { return Ok(()) };
        let mut batch = WriteBatch::new();
        for (seq, value) in put {
            batch.put(Cf::Meta, self.key(*seq), serde_json::to_vec(value)?);
        }
        for seq in delete {
            batch.delete(Cf::Meta, self.key(*seq));
        }
        engine.write(batch).with_context(|| format!("writing the {} journal", self.name))
    }

    /// Imports the JSON list an earlier build kept at `legacy`, if there is one and this
    /// journal is still empty, then renames the file `<file>.imported`. Returns what it
    /// imported, numbered from 0.
    pub fn import<T: DeserializeOwned + Serialize>(&self, legacy: &Path, empty: bool) -> Result<Vec<(u64, T)>> {
        if self.engine.is_none() {
            return Ok(Vec::new());
        }
        let bytes = match std::fs::read(legacy) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", legacy.display())),
        };
        let mut imported = Vec::new();
        if empty {
            let list: Vec<T> =
                serde_json::from_slice(&bytes).with_context(|| format!("reading {}", legacy.display()))?;
            imported = list.into_iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
            let put: Vec<(u64, &T)> = imported.iter().map(|(i, v)| (*i, v)).collect();
            self.write(&put, &[])?;
        }
        // Imported now, or by a run that stopped before the rename.
        let mut done = legacy.as_os_str().to_owned();
        done.push(".imported");
        std::fs::rename(legacy, &done).with_context(|| format!("renaming {}", legacy.display()))?;
        tracing::info!(journal = self.name, entries = imported.len(), from = %legacy.display(), "journal imported");
        Ok(imported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_a_legacy_list_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("things.json");
        std::fs::write(&legacy, br#"["a", "b"]"#).unwrap();
        {
            let j = Journal::new(Some(open_store(&dir.path().join("member")).unwrap()), "thing");
            let got: Vec<(u64, String)> = j.import(&legacy, true).unwrap();
            assert_eq!(got, vec![(0, "a".to_string()), (1, "b".to_string())]);
            assert!(!legacy.exists() && dir.path().join("things.json.imported").exists());
            j.write(&[(2, &"c".to_string()), (1, &"B".to_string())], &[0]).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("member")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let j = Journal::new(Some(open_store(&dir.path().join("member")).unwrap()), "thing");
        assert_eq!(j.load::<String>().unwrap(), vec![(1, "B".to_string()), (2, "c".to_string())]);
        // Another journal in the same store sees none of it.
        assert!(Journal::new(j.engine.clone(), "thin").load::<String>().unwrap().is_empty());
        // A list left beside a journal that has entries is not imported again.
        std::fs::write(&legacy, br#"["x"]"#).unwrap();
        assert!(j.import::<String>(&legacy, false).unwrap().is_empty());
        assert_eq!(j.load::<String>().unwrap().len(), 2);
        // A damaged legacy list is an error, and stays where it is.
        std::fs::write(&legacy, b"[{").unwrap();
        assert!(j.import::<String>(&legacy, true).is_err());
        assert!(legacy.exists());
    }
}
