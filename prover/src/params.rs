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
//! then parses the body and checks every point (on the curve and in its prime-order
//! subgroup; in parallel, where bellperson's checked reader goes one point at a time). The header is read and written with the workspace's one bounded reader and
//! writer ([`dualchain_crypto::encoding`]); its integers stay little-endian, as first fixed.
//!
//! Generation and loading take from seconds to minutes for the large shapes: both show a
//! step-wise [`Progress`] named after the shape (a bar on a terminal, log lines otherwise).

use std::path::Path;

use bellperson::groth16::{self, Parameters, PreparedVerifyingKey, VerifyingKey};
use blstrs::Bls12;
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::DecodeError;
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
/// Longest shape name (its length prefix is one byte).
const SHAPE_NAME_LEN_MAX: usize = u8::MAX as usize;
/// Largest parameter body accepted; far above the largest shape's, and a file is read into
/// memory whole before this is checked, so the remaining input bounds it first.
const BODY_LEN_MAX: usize = u32::MAX as usize;
/// The content hash trailing every file.
const TRAILER_LEN: usize = 32;
/// The shortest possible file: magic, format, an empty name, digest, four counts, trailer.
const FILE_LEN_MIN: usize = MAGIC.len() + 2 + 1 + 32 + 4 * 8 + TRAILER_LEN;

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
        let pk = Self::with_circuit(shape, circuit, params)?;
        progress.inc(1);
        Ok(pk)
    }

    /// Parameters for tests: made once from a fixed seed and cached in `dir` per circuit
    /// digest, so test processes share them. Anyone can recompute their trapdoor: they are
    /// for tests of their callers only, never for a consortium (whose parameters come
    /// from a ceremony and are pinned by hash).
    pub fn cached_for_tests(shape: Shape, dir: &Path) -> Result<Self, ProverError> {
        let digest = shape.circuit_shape()?.digest;
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("test-params-{}-{hex}.bin", shape.name()));
        if let Ok(pk) = Self::load_file(&path, shape, None) {
            return Ok(pk);
        }
        let pk = Self::generate(shape, &mut <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(1))?;
        std::fs::create_dir_all(dir)?;
        // A name unique to this process, then an atomic rename: concurrent tests never read
        // a half-written file.
        let tmp = path.with_extension(format!("{}.part", std::process::id()));
        std::fs::write(&tmp, pk.to_file_bytes()?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(pk)
    }

    /// Parameters made elsewhere (a multi-party ceremony's phase 2, `crate::ceremony`) for
    /// `shape`; their lengths must fit the circuit this build synthesizes.
    pub fn from_parameters(shape: Shape, params: Parameters<Bls12>) -> Result<Self, ProverError> {
        let circuit = shape.circuit_shape()?;
        let fits = params.vk.ic.len() == circuit.inputs
            && params.l.len() == circuit.aux
            && params.h.len() + 1 == circuit.domain_size();
        if !fits {
            return Err(ProverError::ShapeMismatch {
                expected: format!("{} ({} inputs, {} aux)", shape.name(), circuit.inputs, circuit.aux),
                found: format!("parameters for {} inputs, {} aux", params.vk.ic.len(), params.l.len()),
            });
        }
        Self::with_circuit(shape, circuit, params)
    }

    fn with_circuit(shape: Shape, circuit: CircuitShape, params: Parameters<Bls12>) -> Result<Self, ProverError> {
        let pvk = groth16::prepare_verifying_key(&params.vk);
        let mut pk = Self { shape, circuit, params, pvk, content_hash: [0; 32] };
        pk.content_hash = Sha256::digest(pk.encode_without_trailer()?).into();
        Ok(pk)
    }

    pub fn vk(&self) -> &VerifyingKey<Bls12> {
        &self.params.vk
    }

    fn encode_without_trailer(&self) -> Result<Vec<u8>, ProverError> {
        let mut body = Vec::new();
        self.params.write(&mut body)?;
        let name = self.shape.name().as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| ProverError::Params {
            path: "<memory>".into(),
            reason: format!("shape name of {} bytes exceeds {SHAPE_NAME_LEN_MAX}", name.len()),
        })?;
        let mut w = Writer::with_capacity(body.len() + FILE_LEN_MIN + name.len());
        w.fixed(MAGIC);
        w.u16_le(FORMAT);
        w.u8(name_len);
        w.fixed(name);
        w.fixed(&self.circuit.digest);
        for v in [self.circuit.constraints, self.circuit.inputs, self.circuit.aux, body.len()] {
            w.u64_le(v as u64);
        }
        w.fixed(&body);
        Ok(w.into_bytes())
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
        progress.set_message("checking the content hash");
        let hash = check_content_hash(bytes, pinned)?;
        progress.inc(1);
        progress.set_message("checking the header against the circuit");
        let content = &bytes[..bytes.len() - TRAILER_LEN];
        let header = FileHeader::read(content, shape)?;
        let circuit = shape.circuit_shape()?;
        if circuit != header.circuit {
            return Err(ProverError::ShapeMismatch {
                expected: format!("{} circuit digest {}", shape.name(), hex8(&circuit.digest)),
                found: format!(
                    "parameters for circuit digest {} (another version of the circuit)",
                    hex8(&header.circuit.digest)
                ),
            });
        }
        progress.inc(1);
        progress.set_message("checking every point (on the curve, in the subgroup)");
        // Read unchecked (blst still refuses points off the curve, bellperson the identity),
        // then every point checked in parallel: bellperson's checked read makes the same
        // checks one point at a time, which is most of a node's start.
        let params =
            Parameters::<Bls12>::read(header.body, false).map_err(|e| bad(format!("malformed parameters: {e}")))?;
        check_points(&params)?;
        if params.vk.ic.len() != shape.public_inputs() + 1
            || params.h.len() + 1 != circuit.domain_size()
            || params.l.len() != circuit.aux
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

/// Every point of `p` on its curve and in its prime-order subgroup, checked in parallel.
fn check_points(p: &Parameters<Bls12>) -> Result<(), ProverError> {
    use blstrs::{G1Affine, G2Affine};
    use rayon::prelude::*;
    let vk = &p.vk;
    let g1: [(&str, &[G1Affine]); 6] = [
        ("h", &p.h),
        ("l", &p.l),
        ("a", &p.a),
        ("b_g1", &p.b_g1),
        ("ic", &vk.ic),
        ("alpha_g1, beta_g1, delta_g1", &[vk.alpha_g1, vk.beta_g1, vk.delta_g1]),
    ];
    let g2: [(&str, &[G2Affine]); 2] =
        [("b_g2", &p.b_g2), ("beta_g2, gamma_g2, delta_g2", &[vk.beta_g2, vk.gamma_g2, vk.delta_g2])];
    let refuse = |name: &str, i: usize| bad(format!("point {i} of {name} is not on the curve or not in its subgroup"));
    for (name, points) in g1 {
        if let Some(i) = points.par_iter().position_any(|g| !bool::from(g.is_on_curve() & g.is_torsion_free())) {
            return Err(refuse(name, i));
        }
    }
    for (name, points) in g2 {
        if let Some(i) = points.par_iter().position_any(|g| !bool::from(g.is_on_curve() & g.is_torsion_free())) {
            return Err(refuse(name, i));
        }
    }
    Ok(())
}

/// A file's error before its path is known ([`ProvingKey::load_file`] fills it in).
fn bad(reason: String) -> ProverError {
    ProverError::Params { path: "<memory>".into(), reason }
}

/// Checks the length, the magic and the trailing content hash (and the pinned hash, if any);
/// returns the content hash.
fn check_content_hash(bytes: &[u8], pinned: Option<[u8; 32]>) -> Result<[u8; 32], ProverError> {
    if bytes.len() < FILE_LEN_MIN {
        return Err(bad(format!("truncated: {} bytes", bytes.len())));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(bad("not a dualchain Groth16 parameter file (bad magic)".into()));
    }
    let (content, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let hash: [u8; 32] = Sha256::digest(content).into();
    if hash != trailer {
        return Err(bad("content hash mismatch: the file is corrupt or truncated".into()));
    }
    if pinned.is_some_and(|p| p != hash) {
        return Err(bad("content hash differs from the hash pinned at genesis".into()));
    }
    Ok(hash)
}

/// The header of a parameter file and the body it frames.
struct FileHeader<'a> {
    circuit: CircuitShape,
    body: &'a [u8],
}

impl<'a> FileHeader<'a> {
    /// Reads everything before the trailer: magic (already checked), format, the shape name
    /// (which must be `shape`'s), the circuit and the body, with nothing after it.
    fn read(content: &'a [u8], shape: Shape) -> Result<Self, ProverError> {
        let malformed = |e: DecodeError| bad(e.to_string());
        let mut r = Reader::new(content, "parameter file header");
        r.take(MAGIC.len()).map_err(malformed)?;
        let format = r.u16_le().map_err(malformed)?;
        if format != FORMAT {
            return Err(bad(format!("unsupported format version {format} (this build reads {FORMAT})")));
        }
        let name = String::from_utf8_lossy(r.short_bytes("shape name", SHAPE_NAME_LEN_MAX).map_err(malformed)?);
        if name != shape.name() {
            return Err(ProverError::ShapeMismatch { expected: shape.name().into(), found: name.into_owned() });
        }
        let digest = r.array::<32>().map_err(malformed)?;
        let mut count = |field: &'static str| -> Result<usize, ProverError> {
            let v = r.u64_le().map_err(malformed)?;
            usize::try_from(v).map_err(|_| bad(format!("{field} count {v} does not fit this machine")))
        };
        let (constraints, inputs, aux) = (count("constraint")?, count("input")?, count("aux")?);
        let body_len = r.u64_le().map_err(malformed)?;
        let body = r.take_len("parameter body", body_len, BODY_LEN_MAX).map_err(malformed)?;
        r.finish().map_err(|_| bad("trailing bytes after the body".into()))?;
        Ok(Self { circuit: CircuitShape { constraints, inputs, aux, digest }, body })
    }
}

fn hex8(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}
