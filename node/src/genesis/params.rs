//! Groth16 parameter files: the local cache per circuit shape, and the files genesis pins
//! by hash in `consortium.toml`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use anyhow::{anyhow, bail, Context, Result};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use rand::{CryptoRng, RngCore};

use crate::config::ConsortiumFile;

/// Where parameter files are cached: `$XDG_CACHE_HOME/dualchain/params`, else
/// `$HOME/.cache/dualchain/params`, else the system temporary directory.
pub fn default_params_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("dualchain/params");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/dualchain/params");
    }
    std::env::temp_dir().join("dualchain-params")
}

/// Loads the shape's parameters from `dir` if a valid file for this exact circuit is there;
/// otherwise generates them and writes the file. Returns the key and whether it was generated.
///
/// Parameters from a `seeded` generator (tests, demos) live apart, in `dir/insecure-seeded/`:
/// anyone can recompute their trapdoor, so an unseeded genesis never picks them up.
pub fn load_or_generate(
    shape: Shape,
    dir: &Path,
    seeded: bool,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<(ProvingKey, bool)> {
    let seeded_dir;
    let dir = if seeded {
        seeded_dir = dir.join("insecure-seeded");
        seeded_dir.as_path()
    } else {
        dir
    };
    let digest = shape.circuit_shape()?.digest;
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{}-{tag}.params", shape.name()));
    if path.exists() {
        match ProvingKey::load_file(&path, shape, None) {
            Ok(pk) => return Ok((pk, false)),
            Err(e) => eprintln!("warning: ignoring {}: {e}; generating new parameters", path.display()),
        }
    }
    let pk = ProvingKey::generate(shape, rng)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Written aside and renamed, so a concurrent reader never sees half a file.
    let tmp = dir.join(format!(".{}-{tag}.{}-{}.tmp", shape.name(), std::process::id(), rng.next_u32()));
    pk.write_file(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok((pk, true))
}

/// Loads every parameter file named in the genesis, checked against its pin.
///
/// Keys are shared within a process by pin: the nodes of an in-process consortium (the demo,
/// the tests) load and check each file once, not once per node. A deployed node loads each
/// once anyway.
pub fn load_params(consortium: &ConsortiumFile, dir: &Path) -> Result<Vec<(Shape, Arc<ProvingKey>)>> {
    static LOADED: Mutex<Vec<([u8; 32], Weak<ProvingKey>)>> = Mutex::new(Vec::new());
    let mut out = Vec::new();
    for p in &consortium.params {
        let shape = Shape::from_name(&p.shape).ok_or_else(|| anyhow!("unknown circuit shape {:?}", p.shape))?;
        let mut pin = [0u8; 32];
        hex::decode_to_slice(&p.sha256, &mut pin).map_err(|e| anyhow!("params pin for {}: {e}", p.shape))?;
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        loaded.retain(|(_, w)| w.strong_count() > 0);
        let shared = loaded.iter().find(|(k, _)| *k == pin).and_then(|(_, w)| w.upgrade());
        let pk = match shared {
            Some(pk) => pk,
            None => {
                let pk = Arc::new(
                    ProvingKey::load_file(&dir.join(&p.file), shape, Some(pin))
                        .with_context(|| format!("loading the {} parameters", p.shape))?,
                );
                loaded.push((pin, Arc::downgrade(&pk)));
                pk
            }
        };
        out.push((shape, pk));
    }
    if !out.iter().any(|(s, _)| *s == Shape::Policy) {
        bail!("the genesis names no policy circuit parameters");
    }
    Ok(out)
}
