//! The Groth16 ceremony as the consortium's institutions run it (`dualchain ceremony …`),
//! on [`dualchain_prover::ceremony`] (BGM17 phases 1 and 2).
//!
//! A ceremony directory travels from institution to institution (the coordinator passes
//! it on); each command reads it, adds one thing and writes it back:
//!
//! | command | adds |
//! | --- | --- |
//! | `ceremony new --dir D --supply-records 64,1024` | `ceremony.toml`, the starting `tau.acc` and an empty `tau.transcript` |
//! | `ceremony tau --dir D --name X` | X's phase-1 contribution (secrets from the OS, gone when the command ends) |
//! | `ceremony start --dir D` | after checking phase 1: each shape's starting `<shape>.params` and an empty `<shape>.phase2` |
//! | `ceremony delta --dir D --name X` | X's phase-2 contribution to every shape |
//! | `ceremony verify --dir D` | nothing: checks everything and prints each step's digest |
//!
//! `dualchain init --ceremony D` takes the parameters from a directory that verifies, and
//! pins the transcripts in `consortium.toml`; a node then refuses to start on parameters
//! whose transcripts it has not verified (once per machine; the verdict is kept in its data
//! directory). Without a ceremony, `init` writes [`TEST_CONSORTIUM`] into `consortium.toml`:
//! one machine made the trapdoor, and the file says so in words.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_prover::ceremony::{phase1, phase2};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ConsortiumFile, ParamsEntry, TauEntry};

/// The statement a consortium file carries when its parameters come from one machine
/// (`init` without `--ceremony`). A node accepts unverified parameters only beside these
/// exact words.
pub const TEST_CONSORTIUM: &str =
    "test consortium: one machine made every secret and the Groth16 trapdoor; not for patient data";

const MANIFEST: &str = "ceremony.toml";
const ACC: &str = "tau.acc";
const TAU_TRANSCRIPT: &str = "tau.transcript";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// The phase-1 domain: 2^log_m points serve the largest shape.
    log_m: u32,
    shapes: Vec<String>,
}

fn params_file(shape: Shape) -> String {
    format!("{}.params", shape.name())
}

fn phase2_file(shape: Shape) -> String {
    format!("{}.phase2", shape.name())
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>> {
    let p = dir.join(file);
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

/// Written aside and renamed: a crash leaves the old file or the new one.
fn replace(dir: &Path, file: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(file)).with_context(|| format!("replacing {}", dir.join(file).display()))?;
    Ok(())
}

fn manifest(dir: &Path) -> Result<(Manifest, Vec<Shape>)> {
    let text = String::from_utf8(read(dir, MANIFEST)?).context("ceremony.toml is not UTF-8")?;
    let m: Manifest = toml::from_str(&text).context("parsing ceremony.toml")?;
    let shapes = m
        .shapes
        .iter()
        .map(|s| Shape::from_name(s).ok_or_else(|| anyhow!("ceremony.toml names an unknown shape {s:?}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((m, shapes))
}

fn load_phase1(dir: &Path) -> Result<(phase1::Accumulator, phase1::Transcript)> {
    let acc = phase1::Accumulator::from_bytes(&read(dir, ACC)?).context("tau.acc")?;
    let t = phase1::Transcript::from_bytes(&read(dir, TAU_TRANSCRIPT)?).context("tau.transcript")?;
    Ok((acc, t))
}

fn entropy() -> ChaCha20Rng {
    ChaCha20Rng::from_entropy()
}

/// Starts a ceremony for `shapes` in an empty directory.
pub fn new(dir: &Path, shapes: &[Shape]) -> Result<u32> {
    ensure!(!dir.join(MANIFEST).exists(), "{} already holds a ceremony", dir.display());
    ensure!(shapes.contains(&Shape::Policy), "a consortium's ceremony includes the policy shape");
    let mut log_m = 1;
    for s in shapes {
        log_m = log_m.max(s.circuit_shape()?.domain_size().trailing_zeros());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let m = Manifest { log_m, shapes: shapes.iter().map(|s| s.name().to_string()).collect() };
    replace(dir, ACC, &phase1::Accumulator::new(log_m)?.to_bytes())?;
    replace(dir, TAU_TRANSCRIPT, &phase1::Transcript::new(log_m).to_bytes())?;
    replace(dir, MANIFEST, toml::to_string_pretty(&m)?.as_bytes())?;
    Ok(log_m)
}

/// `who`'s phase-1 contribution. Returns its step digest.
pub fn tau(dir: &Path, who: &str) -> Result<[u8; 32]> {
    manifest(dir)?;
    ensure!(!dir.join(phase2_file(Shape::Policy)).exists(), "phase 2 has started: phase 1 is closed");
    let (mut acc, mut t) = load_phase1(dir)?;
    ensure!(t.steps.iter().all(|s| s.who != who), "{who} has already contributed to phase 1");
    t.contribute(&mut acc, who, &mut entropy())?;
    let digest = t.steps.last().expect("just contributed").digest();
    replace(dir, ACC, &acc.to_bytes())?;
    replace(dir, TAU_TRANSCRIPT, &t.to_bytes())?;
    Ok(digest)
}

/// Closes phase 1 (after verifying it) and writes each shape's starting parameters.
pub fn start(dir: &Path) -> Result<()> {
    let (_, shapes) = manifest(dir)?;
    let (acc, t) = load_phase1(dir)?;
    t.verify(&acc, &mut entropy()).context("phase 1 does not verify")?;
    // The Lagrange bases (most of the work) once per domain size, shared by its shapes.
    let mut bases: Option<phase2::Lagrange> = None;
    let mut shapes = shapes;
    shapes.sort_by_cached_key(|s| s.circuit_shape().map(|c| c.domain_size()).unwrap_or(0));
    for shape in shapes {
        let matrices = phase2::Matrices::of(shape.blank())?;
        if bases.as_ref().map(|b| b.domain()) != Some(matrices.domain()) {
            drop(bases.take()); // one domain's bases at a time in memory
            bases = Some(phase2::Lagrange::of(&acc, matrices.domain())?);
        }
        let params = phase2::initial_from(&acc, bases.as_ref().expect("just made"), &matrices)?;
        let pk = ProvingKey::from_parameters(shape, params)?;
        replace(dir, &params_file(shape), &pk.to_file_bytes()?)?;
        let t2 = phase2::Transcript::new(shape.name(), pk.circuit.digest);
        replace(dir, &phase2_file(shape), &t2.to_bytes())?;
    }
    Ok(())
}

/// `who`'s phase-2 contribution to every shape. Returns each shape's step digest.
pub fn delta(dir: &Path, who: &str) -> Result<Vec<(Shape, [u8; 32])>> {
    let (_, shapes) = manifest(dir)?;
    let mut rng = entropy();
    let mut out = Vec::new();
    for shape in shapes {
        let pk = ProvingKey::from_file_bytes(&read(dir, &params_file(shape))?, shape, None)
            .with_context(|| format!("{}: run `ceremony start` first", params_file(shape)))?;
        let mut t = phase2::Transcript::from_bytes(&read(dir, &phase2_file(shape))?)?;
        ensure!(t.steps.iter().all(|s| s.who != who), "{who} has already contributed to {}", shape.name());
        let mut params = pk.params;
        t.contribute(&mut params, who, &mut rng)?;
        out.push((shape, t.steps.last().expect("just contributed").digest()));
        let pk = ProvingKey::from_parameters(shape, params)?;
        replace(dir, &params_file(shape), &pk.to_file_bytes()?)?;
        replace(dir, &phase2_file(shape), &t.to_bytes())?;
    }
    Ok(out)
}

/// Each contribution of a phase, in order: the participant and its step digest.
pub type Steps = Vec<(String, [u8; 32])>;

/// What a verified ceremony shows: every step, by participant, with its digest.
#[derive(Debug)]
pub struct Verified {
    pub tau: Steps,
    pub shapes: Vec<(Shape, Steps)>,
}

fn named<S>(steps: &[S], digests: Vec<[u8; 32]>, who: impl Fn(&S) -> String) -> Steps {
    steps.iter().map(who).zip(digests).collect()
}

/// Checks phase 1, and phase 2 of each of `shapes` against the circuit this build
/// synthesizes. Files are read from `dir` under their ceremony names.
pub fn verify_files(dir: &Path, shapes: &[Shape], files: &dyn Fn(Shape) -> (String, String)) -> Result<Verified> {
    let mut rng = entropy();
    let (acc, t) = load_phase1(dir)?;
    let tau = named(&t.steps, t.verify(&acc, &mut rng).context("phase 1")?, |s| s.who.clone());
    let mut out = Verified { tau, shapes: Vec::new() };
    for &shape in shapes {
        let (pf, tf) = files(shape);
        let pk = ProvingKey::from_file_bytes(&read(dir, &pf)?, shape, None).with_context(|| pf.clone())?;
        let t2 = phase2::Transcript::from_bytes(&read(dir, &tf)?).with_context(|| tf.clone())?;
        ensure!(
            t2.shape == shape.name() && t2.circuit_digest == pk.circuit.digest,
            "{tf} is the transcript of another circuit"
        );
        let matrices = phase2::Matrices::of(shape.blank())?;
        let digests =
            t2.verify(&acc, &matrices, &pk.params, &mut rng).with_context(|| format!("phase 2 of {}", shape.name()))?;
        out.shapes.push((shape, named(&t2.steps, digests, |s| s.who.clone())));
    }
    Ok(out)
}

/// Verifies a ceremony directory as `ceremony verify` does.
pub fn verify(dir: &Path) -> Result<Verified> {
    verify_shapes(dir, &manifest(dir)?.1)
}

/// Verifies phase 1 and the phase 2 of `shapes` in a ceremony directory.
pub fn verify_shapes(dir: &Path, shapes: &[Shape]) -> Result<Verified> {
    verify_files(dir, shapes, &|s| (params_file(s), phase2_file(s)))
}

/// The transcript files `init --ceremony` copies next to the parameters, and pins.
pub struct CeremonyFiles {
    pub dir: PathBuf,
}

impl CeremonyFiles {
    /// Copies the phase-1 files and `shape`'s parameters and transcript into `out`;
    /// returns (parameter file name, transcript file name).
    pub fn copy_shape(&self, shape: Shape, out: &Path) -> Result<(String, String)> {
        let (pf, tf) = (params_file(shape), phase2_file(shape));
        for f in [&pf, &tf] {
            ensure!(self.dir.join(f).exists(), "the ceremony in {} has no {}", self.dir.display(), f);
            std::fs::copy(self.dir.join(f), out.join(f)).with_context(|| format!("copying {f}"))?;
        }
        Ok((pf, tf))
    }

    /// Copies the phase-1 files into `out`; returns their pinned entry.
    pub fn copy_phase1(&self, out: &Path) -> Result<TauEntry> {
        for f in [ACC, TAU_TRANSCRIPT] {
            std::fs::copy(self.dir.join(f), out.join(f)).with_context(|| format!("copying {f}"))?;
        }
        Ok(TauEntry {
            accumulator: ACC.into(),
            accumulator_sha256: file_sha256(&out.join(ACC))?,
            transcript: TAU_TRANSCRIPT.into(),
            transcript_sha256: file_sha256(&out.join(TAU_TRANSCRIPT))?,
        })
    }
}

/// SHA-256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)))
}

/// Where a consortium's parameters come from, as a node checks it at start.
#[derive(Debug, PartialEq, Eq)]
pub enum Provenance {
    /// `consortium.toml` says in words that it is a test consortium.
    Test,
    /// Every parameter file's ceremony verified on this machine (now or at an earlier start).
    Ceremony { verified_now: bool },
}

/// Refuses parameters that neither come from a ceremony this machine verified nor belong
/// to a consortium that says it is a test consortium. A verification (about a minute
/// with the largest shape, supply-1024, on 2 cores) is done once per machine: its
/// verdict is kept in `data_dir`, keyed by the pins of every file it covered.
pub fn check_provenance(consortium: &ConsortiumFile, params_dir: &Path, data_dir: &Path) -> Result<Provenance> {
    if let Some(statement) = &consortium.test_consortium {
        ensure!(
            statement == TEST_CONSORTIUM,
            "consortium.toml's test_consortium statement is not the one dualchain writes; \
             a consortium either says it is a test consortium in these words or names its ceremony"
        );
        return Ok(Provenance::Test);
    }
    let tau = consortium.tau.as_ref().ok_or_else(|| {
        anyhow!(
            "consortium.toml names no Groth16 ceremony and does not say it is a test consortium: \
             refusing parameters whose trapdoor someone may hold (run a ceremony, see README)"
        )
    })?;
    check_pin(params_dir, &tau.accumulator, &tau.accumulator_sha256)?;
    check_pin(params_dir, &tau.transcript, &tau.transcript_sha256)?;
    let mut shapes = Vec::new();
    for p in &consortium.params {
        let (Some(tf), Some(ts)) = (&p.transcript, &p.transcript_sha256) else {
            bail!("the {} parameters name no ceremony transcript", p.shape);
        };
        check_params_pin(params_dir, &p.file, &p.sha256)?;
        check_pin(params_dir, tf, ts)?;
        let shape = Shape::from_name(&p.shape).ok_or_else(|| anyhow!("unknown circuit shape {:?}", p.shape))?;
        shapes.push((shape, p.file.clone(), tf.clone()));
    }
    ensure!(tau.accumulator == ACC && tau.transcript == TAU_TRANSCRIPT, "the phase-1 files have unexpected names");
    let key = verdict_key(tau, &consortium.params);
    let verdict = data_dir.join("ceremony-verified");
    if std::fs::read_to_string(&verdict).map(|v| v.trim() == key).unwrap_or(false) {
        return Ok(Provenance::Ceremony { verified_now: false });
    }
    if verified_in_process(&key) {
        std::fs::create_dir_all(data_dir).ok();
        std::fs::write(&verdict, format!("{key}\n")).with_context(|| format!("writing {}", verdict.display()))?;
        return Ok(Provenance::Ceremony { verified_now: false });
    }
    let list: Vec<Shape> = shapes.iter().map(|(s, _, _)| *s).collect();
    let files = |s: Shape| {
        let (_, p, t) = shapes.iter().find(|(x, _, _)| *x == s).expect("listed");
        (p.clone(), t.clone())
    };
    let v = verify_files(params_dir, &list, &files).context("the consortium's Groth16 ceremony does not verify")?;
    tracing::info!(
        phase1 = v.tau.len(),
        shapes = v.shapes.len(),
        "Groth16 ceremony verified: phase 1 by {}",
        v.tau.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
    );
    std::fs::create_dir_all(data_dir).ok();
    std::fs::write(&verdict, format!("{key}\n")).with_context(|| format!("writing {}", verdict.display()))?;
    remember_verified(key);
    Ok(Provenance::Ceremony { verified_now: true })
}

/// The verdict's key: the hash of every pin `consortium.toml` names (phase-1 files, then
/// each shape's parameters and transcript, in its order), so it names exactly the bytes
/// verified once each pin is checked.
pub(crate) fn verdict_key(tau: &TauEntry, params: &[ParamsEntry]) -> String {
    let mut pins = vec![tau.accumulator_sha256.as_str(), tau.transcript_sha256.as_str()];
    for p in params {
        pins.push(&p.sha256);
        pins.extend(p.transcript_sha256.as_deref());
    }
    hex::encode(Sha256::digest(pins.join("\n")))
}

/// Keys of ceremonies this process has verified. Verification is a function of the bytes
/// the key names, so nodes of an in-process consortium (the demo, tests) and a coordinator
/// in the same process verify a ceremony once, not once each.
static VERIFIED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn remember_verified(key: String) {
    let mut v = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if !v.contains(&key) {
        v.push(key);
    }
}

/// Forgets what this process verified, so that the next check verifies as a node in a
/// process of its own does (tests of that check).
pub fn forget_verified() {
    VERIFIED.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

fn verified_in_process(key: &str) -> bool {
    VERIFIED.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|k| k == key)
}

/// A parameter file's pin, as `consortium.toml` names it and a node checks it when it loads
/// the file: the SHA-256 of the file's content, which the file carries as its trailer.
pub fn params_pin(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(bytes.len() > 32, "{} is truncated", path.display());
    let (content, trailer) = bytes.split_at(bytes.len() - 32);
    let hash = Sha256::digest(content);
    ensure!(hash.as_slice() == trailer, "{} is corrupt: its content hash does not match its trailer", path.display());
    Ok(hex::encode(hash))
}

fn check_pin(dir: &Path, file: &str, pin: &str) -> Result<()> {
    check_pinned(dir, file, pin, file_sha256)
}

/// A parameter file against its content-hash pin ([`params_pin`]).
fn check_params_pin(dir: &Path, file: &str, pin: &str) -> Result<()> {
    check_pinned(dir, file, pin, params_pin)
}

fn check_pinned(dir: &Path, file: &str, pin: &str, hash: fn(&Path) -> Result<String>) -> Result<()> {
    ensure!(!file.contains('/') && !file.contains(".."), "{file:?} is not a plain file name");
    ensure!(hash(&dir.join(file))? == pin, "{file} does not match its pin in consortium.toml");
    Ok(())
}
