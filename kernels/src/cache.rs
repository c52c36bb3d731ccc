//! On-disk cache of compiled modules, keyed by unit, source hash and architecture, so a
//! node compiles its kernels once per build and GPU model rather than at every start.
//!
//! Location: `$DUALCHAIN_KERNEL_CACHE`, else `$XDG_CACHE_HOME/dualchain/kernels`, else
//! `$HOME/.cache/dualchain/kernels`. Entries are written to a temporary file and renamed,
//! so a crash never leaves a truncated module; an unreadable entry is recompiled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{KernelError, Result};
use crate::source::Unit;

/// The cache directory in effect.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DUALCHAIN_KERNEL_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("dualchain/kernels");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/dualchain/kernels")
}

/// A module cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry's path: `<unit>-<first 16 hex of the source hash>-<arch>.cubin`.
    pub fn path(&self, unit: &Unit, arch: &str) -> PathBuf {
        self.dir.join(format!("{}-{}-{arch}.cubin", unit.name, &unit.hash()[..16]))
    }

    /// The cached image, if present and plausibly a CUBIN (an ELF file).
    pub fn get(&self, unit: &Unit, arch: &str) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(unit, arch)).ok()?;
        bytes.starts_with(b"\x7fELF").then_some(bytes)
    }

    pub fn put(&self, unit: &Unit, arch: &str, image: &[u8]) -> Result<()> {
        let path = self.path(unit, arch);
        let err = |source| KernelError::Cache { path: path.display().to_string(), source };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(image).and_then(|_| f.sync_all()).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)
    }

    /// The image from the cache, or compiled with NVRTC and stored.
    pub fn get_or_compile(&self, unit: &Unit, arch: &str) -> Result<(Vec<u8>, bool)> {
        if let Some(image) = self.get(unit, arch) {
            return Ok((image, true));
        }
        let image = crate::nvrtc::compile(unit, arch)?;
        if let Err(e) = self.put(unit, arch, &image) {
            tracing::warn!(error = %e, "could not cache a compiled kernel module; it will be compiled again next time");
        }
        Ok((image, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{MSM, NTT};

    #[test]
    fn entries_round_trip_and_junk_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("k"));
        assert!(cache.get(&MSM, "sm_90").is_none());
        let image = b"\x7fELF fake module".to_vec();
        cache.put(&MSM, "sm_90", &image).unwrap();
        assert_eq!(cache.get(&MSM, "sm_90").unwrap(), image);
        // Keyed by architecture and unit.
        assert!(cache.get(&MSM, "sm_80").is_none());
        assert!(cache.get(&NTT, "sm_90").is_none());
        // A truncated or foreign file is not a module.
        std::fs::write(cache.path(&NTT, "sm_90"), b"garbage").unwrap();
        assert!(cache.get(&NTT, "sm_90").is_none());
        assert!(cache.path(&MSM, "sm_90").file_name().unwrap().to_str().unwrap().starts_with("msm-"));
    }
}
