use std::path::PathBuf;

use dualchain_testkit::consortium::{Consortium, FlowConfig};

/// A consortium in a fresh directory under the target's temporary directory, with the
/// Groth16 parameter cache shared by all tests, every member registered with its
/// credential.
#[allow(dead_code)] // not every test crate starts a seeded one-machine consortium
pub async fn consortium(name: &str, records: usize, seed: u64) -> anyhow::Result<Consortium> {
    Ok(genesis(name, records, Some(seed), false).await?.0)
}

/// A ready consortium in a fresh directory `<name>-…` under the target's temporary
/// directory (returned, for removal), with the shared Groth16 parameter cache: keys from
/// `seed` (none: fresh), or made by each institution (`institutions`: keygen, assemble,
/// join, keys issued online).
pub async fn genesis(
    name: &str,
    records: usize,
    seed: Option<u64>,
    institutions: bool,
) -> anyhow::Result<(Consortium, PathBuf)> {
    genesis_with(name, records, seed, institutions, 0).await
}

/// [`genesis`] with `validators_only` validator-only institutions beside the members'
/// nodes (`institutions` only).
pub async fn genesis_with(
    name: &str,
    records: usize,
    seed: Option<u64>,
    institutions: bool,
    validators_only: usize,
) -> anyhow::Result<(Consortium, PathBuf)> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data_dir = tmp.join(format!("{name}-{}-{}", std::process::id(), rand::random::<u32>()));
    let c = Consortium::genesis(FlowConfig {
        records,
        seed,
        params_dir: tmp.join("params"),
        data_dir: data_dir.clone(),
        institutions,
        ceremony: false,
        validators_only,
        anonymous: false,
    })
    .await?;
    c.wait_ready(std::time::Duration::from_secs(120)).await?;
    Ok((c, data_dir))
}

/// Runs the validator on `files` (and the stock client against `metadata`, trusting `ca`);
/// its exit status and what it printed.
#[allow(dead_code)] // not every test crate validates FHIR
pub fn fhir_validate(files: &[PathBuf], metadata: Option<(&str, &std::path::Path)>) -> anyhow::Result<(bool, String)> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fhir-validate.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).args(files);
    if let Some((base, ca)) = metadata {
        cmd.arg("--metadata").arg(base).arg("--ca").arg(ca);
    }
    let out = cmd.output().map_err(|e| anyhow::anyhow!("running python3 scripts/fhir-validate.py: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// The refusal's reason and message of a call that must be refused (panics if it was not).
#[allow(dead_code)] // not every test crate expects refusals
pub fn refused<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(v) => panic!("not refused: {v:?}"),
        Err(e) => dualchain_testkit::consortium::refusal(&e)
            .map_or_else(|| format!("not a refusal: {e:#}"), |x| format!("{} {}", x.reason, x.message)),
    }
}

/// The heart-rate Observations among `obs`, as sorted (value, time) pairs.
#[allow(dead_code)] // not every test crate reads heart rates
pub fn heart_rates<'a>(obs: impl IntoIterator<Item = &'a serde_json::Value>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = obs
        .into_iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "8867-4")
        .map(|o| (o["valueQuantity"]["value"].to_string(), o["effectiveDateTime"].to_string()))
        .collect();
    v.sort();
    v
}
