//! The CUDA C sources, embedded in the binary, and the compilation units built from them.
//!
//! NVRTC gets one self-contained source per unit: `#include "…"` lines are expanded here
//! (each header once, as `#pragma once` would), so no include path is needed at run time.
//! The unit's hash (of the expanded text) keys the on-disk module cache.

use sha2::{Digest, Sha256};

/// Every file under `kernels/cuda/` that a unit may include, by its path there.
const FILES: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../cuda/common.cuh")),
    ("ff/carry.cuh", include_str!("../cuda/ff/carry.cuh")),
    ("ff/field.cuh", include_str!("../cuda/ff/field.cuh")),
    ("ff/fp2.cuh", include_str!("../cuda/ff/fp2.cuh")),
    ("ec/curve.cuh", include_str!("../cuda/ec/curve.cuh")),
    ("ec/xyzz.cuh", include_str!("../cuda/ec/xyzz.cuh")),
    ("msm/msm.cuh", include_str!("../cuda/msm/msm.cuh")),
    ("msm/msm.cu", include_str!("../cuda/msm/msm.cu")),
    ("ntt/ntt.cuh", include_str!("../cuda/ntt/ntt.cuh")),
    ("ntt/ntt.cu", include_str!("../cuda/ntt/ntt.cu")),
    ("batch/batch.cuh", include_str!("../cuda/batch/batch.cuh")),
    ("batch/batch.cu", include_str!("../cuda/batch/batch.cu")),
    ("pairing/tower.cuh", include_str!("../cuda/pairing/tower.cuh")),
    ("pairing/miller.cuh", include_str!("../cuda/pairing/miller.cuh")),
    ("pairing/pairing.cu", include_str!("../cuda/pairing/pairing.cu")),
];

/// A compilation unit: one `.cu` file and the kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit {
    pub name: &'static str,
    pub path: &'static str,
    pub kernels: &'static [&'static str],
}

pub const MSM: Unit = Unit {
    name: "msm",
    path: "msm/msm.cu",
    kernels: &[
        "msm_digits",
        "msm_scan",
        "msm_scatter",
        "msm_chunk_g1",
        "msm_piece_tree_g1",
        "msm_bucket_g1",
        "msm_segment_g1",
        "msm_reduce_g1",
        "msm_combine_g1",
        "msm_shift_g1",
        "msm_affine_pairs_g1",
        "msm_affine_invert_g1",
        "msm_affine_finish_g1",
        "msm_chunk_g2",
        "msm_piece_tree_g2",
        "msm_bucket_g2",
        "msm_segment_g2",
        "msm_reduce_g2",
        "msm_combine_g2",
        "msm_shift_g2",
        "msm_affine_pairs_g2",
        "msm_affine_invert_g2",
        "msm_affine_finish_g2",
    ],
};

pub const NTT: Unit = Unit {
    name: "ntt",
    path: "ntt/ntt.cu",
    kernels: &["ntt_powers", "ntt_bitrev", "ntt_pass", "ntt_mul", "ntt_scale", "ntt_qap"],
};

pub const BATCH: Unit = Unit { name: "batch", path: "batch/batch.cu", kernels: &["g1_scale"] };

pub const PAIRING: Unit =
    Unit { name: "pairing", path: "pairing/pairing.cu", kernels: &["miller_loops", "fp12_pair_product"] };

/// Every unit, in the order the runtime loads them.
pub const UNITS: &[Unit] = &[MSM, NTT, BATCH, PAIRING];

fn file(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// Joins `dir` and a relative include path, resolving `..`.
fn resolve(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn expand(path: &str, seen: &mut Vec<String>, out: &mut String) {
    if seen.iter().any(|s| s == path) {
        return;
    }
    seen.push(path.to_string());
    let text = file(path).unwrap_or_else(|| panic!("kernel source {path} is not embedded"));
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    out.push_str(&format!("// ---- {path}\n"));
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "#pragma once" {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("#include \"") {
            let inc = rest.trim_end_matches('"');
            expand(&resolve(dir, inc), seen, out);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
}

impl Unit {
    /// The self-contained source NVRTC compiles.
    pub fn source(&self) -> String {
        let mut out = String::new();
        expand(self.path, &mut Vec::new(), &mut out);
        out
    }

    /// Hex SHA-256 of [`Unit::source`].
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.source().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_expand_every_include_once() {
        for unit in UNITS {
            let src = unit.source();
            assert!(!src.contains("#include \""), "{} still includes a file", unit.name);
            assert_eq!(src.matches("// ---- common.cuh").count(), 1, "{}", unit.name);
            for k in unit.kernels {
                // The G1/G2 kernels come from one macro, `…_##G(`.
                let generic = k.replace("_g1", "_##G").replace("_g2", "_##G");
                assert!(
                    src.contains(&format!("void {k}(")) || src.contains(&format!("void {generic}(")),
                    "{} lacks kernel {k}",
                    unit.name
                );
            }
        }
        assert_ne!(MSM.hash(), NTT.hash());
    }

    #[test]
    fn include_paths_resolve() {
        assert_eq!(resolve("msm", "../ec/curve.cuh"), "ec/curve.cuh");
        assert_eq!(resolve("", "common.cuh"), "common.cuh");
        assert_eq!(resolve("ff", "field.cuh"), "ff/field.cuh");
    }
}
