//! Files on disk: atomic private writes, secret files (refusing to be quiet about loose
//! permissions) and values as hex of their canonical encoding.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use dualchain_crypto::Codec;

/// Hex of a value's canonical encoding.
pub fn to_hex<T: Codec>(v: &T) -> String {
    hex::encode(v.to_bytes())
}

/// A value from hex of its canonical encoding.
pub fn from_hex<T: Codec>(s: &str, what: &str) -> Result<T> {
    let bytes = hex::decode(s).with_context(|| format!("{what} is not hex"))?;
    T::from_bytes(&bytes).map_err(|e| anyhow!("{what}: {e}"))
}

/// Writes `bytes` to `path` atomically (aside, synced, renamed), readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("bad file name {}", path.display()))?
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a secret file, warning when group or others can read it.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "secret file is readable by group or others; chmod 600 it");
            }
        }
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
