//! The node's use of the prover: parameter files cached per shape, credentials from
//! certified attributes, and the access policies and requirements of the sharing flow.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dualchain_crypto::cert::AttributeSet;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{categorical, schema, Op, PolicyDnf, Predicate, ATTRIBUTES};
use dualchain_prover::shapes::Shape;
use rand::{CryptoRng, RngCore};

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
pub fn load_or_generate(
    shape: Shape,
    dir: &Path,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<(ProvingKey, bool)> {
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

/// The credential's attribute vector from certified attributes `role:X`, `dept:X`,
/// `institution:X`, `country:X` (categorical) and `clearance:N` (numeric).
pub fn credential_vector(attributes: &AttributeSet) -> [u64; ATTRIBUTES] {
    let mut v = [0u64; ATTRIBUTES];
    for a in attributes.iter() {
        let Some((k, val)) = a.split_once(':') else { continue };
        match k {
            "role" => v[schema::ROLE as usize] = categorical(val),
            "dept" => v[schema::DEPARTMENT as usize] = categorical(val),
            "institution" => v[schema::INSTITUTION as usize] = categorical(val),
            "country" => v[schema::COUNTRY as usize] = categorical(val),
            "clearance" => v[schema::CLEARANCE as usize] = val.parse().unwrap_or(0),
            _ => {}
        }
    }
    v
}

/// `role = research ∧ dept ∈ departments` as a DNF (one clause per department).
pub fn research_in_departments(departments: &[&str]) -> Result<PolicyDnf> {
    let role = Predicate { attribute: schema::ROLE, op: Op::Eq, constant: categorical("research") };
    let clauses = departments
        .iter()
        .map(|d| vec![role, Predicate { attribute: schema::DEPARTMENT, op: Op::Eq, constant: categorical(d) }])
        .collect();
    Ok(PolicyDnf::new(clauses)?)
}
