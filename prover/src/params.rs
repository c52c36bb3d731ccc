//! Groth16 parameters per shape: generation, on-disk files with a content hash, and
//! loading that rejects corrupt or mismatched files with a clear error.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! magic "DCGROTH1" ‖ format u16 ‖ shape name (u8 length ‖ bytes) ‖ circuit digest [32]
//! ‖ constraints u64 ‖ inputs u64 ‖ aux u64 ‖ body length u64 ‖ body (bellperson
//! `Parameters::write`) ‖ SHA-256 of everything before [32]
//! ```
//!
//! The trailing SHA-256 is the parameters' content hash, pinned at genesis. Loading checks
//! it, then the shape name and circuit digest against the circuit this build synthesizes,
//! then parses the body with bellperson's checked reader (every point on the curve and in
//! its subgroup).
//!
//! Generation and loading take from seconds to minutes for the large shapes: both show a
//! step-wise [`Progress`] named after the shape (a bar on a terminal, log lines otherwise).

use std::path::Path;

use bellperson::groth16::{self, Parameters, PreparedVerifyingKey, VerifyingKey};
use blstrs::Bls12;
use dualchain_progress::Progress;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ProverError;
use crate::r1cs::CircuitShape;
use crate::shapes::Shape;

const MAGIC: &[u8; 8] = b"DCGROTH1";
const FORMAT: u16 = 1;
/// Steps of checking a file's bytes: content hash, header against the circuit, points,
/// verifying key.
const CHECK_STEPS: u64 = 4;

/// A shape's parameters, resident in memory for any number of proofs.
pub struct ProvingKey {
    pub shape: Shape,
    pub circuit: CircuitShape,
    pub params: Parameters<Bls12>,
    pub pvk: PreparedVerifyingKey<Bls12>,
    /// SHA-256 of the parameter file's contents (see the module docs).
    pub content_hash: [u8; 32],
}

impl std::fmt::Debug for ProvingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvingKey").field("shape", &self.shape).field("circuit", &self.circuit).finish_non_exhaustive()
    }
}

impl ProvingKey {
    /// Runs the (single-party) trusted setup for a shape.
    pub fn generate(shape: Shape, rng: &mut (impl RngCore + Send)) -> Result<Self, ProverError> {
        let progress = Progress::new(&format!("groth16 setup {}", shape.name()), 3);
        progress.set_message("synthesizing the circuit");
        let circuit = shape.circuit_shape()?;
        progress.inc(1);
        progress.set_message(format!("generating parameters for {} constraints", circuit.constraints));
        let params = groth16::generate_random_parameters::<Bls12, _, _>(shape.blank(), rng)?;
        progress.inc(1);
        progress.set_message("hashing the parameters");
        let pvk = groth16::prepare_verifying_key(&params.vk);
        let mut pk = Self { shape, circuit, params, pvk, content_hash: [0; 32] };
        pk.content_hash = Sha256::digest(pk.encode_without_trailer()?).into();
        progress.inc(1);
        Ok(pk)
    }

    pub fn vk(&self) -> &VerifyingKey<Bls12> {
        &self.params.vk
    }

    fn encode_without_trailer(&self) -> Result<Vec<u8>, ProverError> {
        let mut body = Vec::new();
        self.params.write(&mut body)?;
        let name = self.shape.name().as_bytes();
        let mut out = Vec::with_capacity(body.len() + 128);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&self.circuit.digest);
        for v in [self.circuit.constraints, self.circuit.inputs, self.circuit.aux, body.len()] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The full file contents. The trailer is the content hash computed when the key was
    /// generated or loaded, so writing does not hash the whole body again.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, ProverError> {
        let mut out = self.encode_without_trailer()?;
        out.extend_from_slice(&self.content_hash);
        Ok(out)
    }

    /// Writes the file atomically (temporary file, sync, rename) and returns its content hash.
    pub fn write_file(&self, path: &Path) -> Result<[u8; 32], ProverError> {
        use std::io::Write;
        let bytes = self.to_file_bytes()?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(self.content_hash)
    }

    /// Loads and checks a parameter file for `shape`; `pinned` is the expected content hash
    /// where one is known (from genesis).
    pub fn load_file(path: &Path, shape: Shape, pinned: Option<[u8; 32]>) -> Result<Self, ProverError> {
        let progress = Progress::new(&format!("loading groth16 key {}", shape.name()), 1 + CHECK_STEPS);
        progress.set_message("reading the file");
        let bytes = std::fs::read(path)
            .map_err(|e| ProverError::Params { path: path.display().to_string(), reason: e.to_string() })?;
        progress.inc(1);
        Self::check_file_bytes(&bytes, shape, pinned, &progress).map_err(|e| match e {
            ProverError::Params { reason, .. } => ProverError::Params { path: path.display().to_string(), reason },
            other => other,
        })
    }

    /// [`ProvingKey::load_file`] on bytes already in memory.
    pub fn from_file_bytes(bytes: &[u8], shape: Shape, pinned: Option<[u8; 32]>) -> Result<Self, ProverError> {
        let progress = Progress::new(&format!("checking groth16 key {}", shape.name()), CHECK_STEPS);
        Self::check_file_bytes(bytes, shape, pinned, &progress)
    }

    /// [`ProvingKey::from_file_bytes`], advancing `progress` by [`CHECK_STEPS`].
    fn check_file_bytes(
        bytes: &[u8],
        shape: Shape,
        pinned: Option<[u8; 32]>,
        progress: &Progress,
    ) -> Result<Self, ProverError> {
        let bad = |reason: String| ProverError::Params { path: "<memory>".into(), reason };
        progress.set_message("checking the content hash");
        if bytes.len() < MAGIC.len() + 2 + 1 + 32 + 32 + 32 {
            return Err(bad(format!("truncated: {} bytes", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a dualchain Groth16 parameter file (bad magic)".into()));
        }
        let (content, trailer) = bytes.split_at(bytes.len() - 32);
        let hash: [u8; 32] = Sha256::digest(content).into();
        if hash != trailer {
            return Err(bad("content hash mismatch: the file is corrupt or truncated".into()));
        }
        if let Some(p) = pinned {
            if p != hash {
                return Err(bad("content hash differs from the hash pinned at genesis".into()));
            }
        }
        progress.inc(1);
        progress.set_message("checking the header against the circuit");
        let mut r = content;
        let mut take = |n: usize| -> Result<&[u8], ProverError> {
            if r.len() < n {
                return Err(bad("truncated header".into()));
            }
            let (h, t) = r.split_at(n);
            r = t;
            Ok(h)
        };
        take(8)?;
        let format = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes"));
        if format != FORMAT {
            return Err(bad(format!("unsupported format version {format} (this build reads {FORMAT})")));
        }
        let name_len = take(1)?[0] as usize;
        let name = String::from_utf8_lossy(take(name_len)?).into_owned();
        if name != shape.name() {
            return Err(ProverError::ShapeMismatch { expected: shape.name().into(), found: name });
        }
        let digest: [u8; 32] = take(32)?.try_into().expect("32 bytes");
        let mut counts = [0usize; 4];
        for c in &mut counts {
            *c = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
        }
        let [constraints, inputs, aux, body_len] = counts;
        let body = take(body_len)?;
        if !r.is_empty() {
            return Err(bad("trailing bytes after the body".into()));
        }
        let circuit = shape.circuit_shape()?;
        if circuit != (CircuitShape { constraints, inputs, aux, digest }) {
            return Err(ProverError::ShapeMismatch {
                expected: format!("{} circuit digest {}", shape.name(), hex8(&circuit.digest)),
                found: format!("parameters for circuit digest {} (another version of the circuit)", hex8(&digest)),
            });
        }
        progress.inc(1);
        progress.set_message("checking every point (on the curve, in the subgroup)");
        let params = Parameters::<Bls12>::read(body, true).map_err(|e| bad(format!("malformed parameters: {e}")))?;
        if params.vk.ic.len() != shape.public_inputs() + 1
            || params.h.len() + 1 != circuit.domain_size()
            || params.l.len() != aux
        {
            return Err(bad("parameter sizes do not match the circuit".into()));
        }
        progress.inc(1);
        progress.set_message("preparing the verifying key");
        let pvk = groth16::prepare_verifying_key(&params.vk);
        progress.inc(1);
        Ok(Self { shape, circuit, params, pvk, content_hash: hash })
    }
}

fn hex8(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}
