use std::path::PathBuf;

use dualchain_testkit::consortium::{Consortium, FlowConfig};

/// A consortium in a fresh directory under the target's temporary directory, with the
/// Groth16 parameter cache shared by all tests, every member registered with its
/// credential.
pub async fn consortium(name: &str, records: usize, seed: u64) -> anyhow::Result<Consortium> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data_dir = tmp.join(format!("{name}-{}-{}", std::process::id(), rand::random::<u32>()));
    let c = Consortium::genesis(FlowConfig {
        records,
        seed: Some(seed),
        params_dir: tmp.join("params"),
        data_dir,
        institutions: false,
        ceremony: false,
    })
    .await?;
    c.wait_ready(std::time::Duration::from_secs(120)).await?;
    Ok(c)
}
