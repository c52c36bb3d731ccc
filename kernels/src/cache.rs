//! On-disk cache of compiled modules, keyed by unit, source hash, architecture, NVRTC
//! version and compile options, so a node compiles its kernels once per build, toolkit and
//! GPU model rather than at every start. An entry the driver refuses is compiled again
//! and replaced (`device.rs`).
//!
//! Location: `$DUALCHAIN_KERNEL_CACHE`, else `$XDG_CACHE_HOME/dualchain/kernels`, else
//! `$HOME/.cache/dualchain/kernels`. Entries are written to a temporary file and renamed,
//! so a crash never leaves a truncated module; an unreadable entry is recompiled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

    /// The entry's path for the NVRTC in use (see [`ModuleCache::path_for`]).
    pub fn path(&self, unit: &Unit, arch: &str) -> PathBuf {
        self.path_for(unit, arch, crate::nvrtc::version().unwrap_or((0, 0)))
    }

    /// `<unit>-<16 hex of SHA-256(source hash, NVRTC version, options)>-<arch>.cubin`: a new
    /// toolkit or new options never load a module another one compiled.
    pub fn path_for(&self, unit: &Unit, arch: &str, nvrtc: (i32, i32)) -> PathBuf {
        let mut h = Sha256::new();
        h.update(unit.hash().as_bytes());
        h.update(format!("nvrtc {}.{}", nvrtc.0, nvrtc.1).as_bytes());
        for o in crate::nvrtc::options(arch) {
            h.update([0]);
            h.update(o.as_bytes());
        }
        let key = hex::encode(&h.finalize()[..8]);
        self.dir.join(format!("{}-{key}-{arch}.cubin", unit.name))
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
        Ok((self.compile_and_put(unit, arch)?, false))
    }

    /// Compiled with NVRTC now, and stored in place of any entry.
    pub fn compile_and_put(&self, unit: &Unit, arch: &str) -> Result<Vec<u8>> {
        let image = crate::nvrtc::compile(unit, arch)?;
        if let Err(e) = self.put(unit, arch, &image) {
            tracing::warn!(error = %e, "could not cache a compiled kernel module; it will be compiled again next time");
        }
        Ok(image)
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

    #[test]
    fn a_new_nvrtc_or_new_options_never_reuse_a_module() {
        let cache = ModuleCache::new("/cache");
        let a = cache.path_for(&MSM, "sm_90", (13, 0));
        assert_eq!(a, cache.path_for(&MSM, "sm_90", (13, 0)));
        assert_ne!(a, cache.path_for(&MSM, "sm_90", (13, 1)));
        assert_ne!(a, cache.path_for(&MSM, "sm_89", (13, 0)));
        assert_ne!(a, cache.path_for(&NTT, "sm_90", (13, 0)));
        assert!(a.to_str().unwrap().ends_with("-sm_90.cubin"));
    }
}
