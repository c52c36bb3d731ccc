//! The node's proving pipeline: every proof a node makes (an owner's supply proofs, a
//! requester's policy and anonymous proofs) goes through one queue served by two threads,
//! as [`Prover::prove_batch`] does for a batch known in advance:
//!
//! - the *synthesis* thread takes jobs in arrival order and synthesizes their witnesses on
//!   the CPU, up to [`AHEAD`] witnesses ahead of the prover;
//! - the *proving* thread runs the QAP and MSM stages ([`Stages`]: a node's `Compute`, on
//!   the device when there is one, with the CPU cross-check) and answers each caller.
//!
//! So the CPU synthesizes the next proof while the device (or the CPU's thread pool)
//! works on this one, and proofs no longer compete for the device stage by stage.
//!
//! Bounds: at most [`QUEUE_JOBS`] jobs wait; a caller past that gets
//! [`ProverError::Backend`] ("the proving queue is full") at once instead of waiting, and
//! retries as its reaction's backoff says. A waiting job holds its circuit (the witness
//! values, at most one dataset's records) and a synthesized one its evaluations (about
//! 100 bytes per constraint), so the queue's memory is bounded by the job bound times the
//! largest shape the node proves.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use bellpepper_core::Circuit;
use bellperson::groth16::Proof;
use blstrs::{Bls12, Scalar as Fr};
use dualchain_prover::groth16::{ProofTimings, Prover, Synthesized};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::ProverError;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

/// Jobs that may wait for the synthesis thread.
pub const QUEUE_JOBS: usize = 16;
/// Synthesized witnesses that may wait for the proving thread.
pub const AHEAD: usize = 2;

type Proved = Result<(Proof<Bls12>, ProofTimings), ProverError>;
/// A circuit's synthesis, as a closure: circuits are of many types.
type Synthesis = Box<dyn FnOnce(&ProvingKey) -> Result<Synthesized, ProverError> + Send>;
/// The same statement proved again on the CPU, if the device's proof does not verify.
type Redo = Box<dyn FnOnce(&ProvingKey, &mut ChaCha20Rng) -> Proved + Send>;

struct Job {
    pk: Arc<ProvingKey>,
    synthesis: Synthesis,
    redo: Redo,
    reply: SyncSender<Proved>,
}

struct Ready {
    pk: Arc<ProvingKey>,
    witness: Result<Synthesized, ProverError>,
    redo: Redo,
    reply: SyncSender<Proved>,
}

/// Stages 2–4 of a synthesized statement, with whatever check the backends need: `None`
/// when the proof made is not to be used (the job is then proved again on the CPU).
pub trait Stages: Sync + 'static {
    fn prove_synthesized(
        &self,
        pk: &ProvingKey,
        w: Synthesized,
        rng: &mut dyn RngCore,
    ) -> Result<Option<(Proof<Bls12>, ProofTimings)>, ProverError>;
}

/// The queue and its two threads (see the module docs).
pub struct ProofPipeline {
    jobs: SyncSender<Job>,
}

impl ProofPipeline {
    /// Starts the two threads, proving with `compute`.
    pub fn start(compute: &'static dyn Stages) -> Self {
        let (jobs, job_rx) = sync_channel::<Job>(QUEUE_JOBS);
        let (ready, ready_rx) = sync_channel::<Ready>(AHEAD);
        std::thread::Builder::new()
            .name("proof-synthesis".into())
            .spawn(move || synthesize(job_rx, ready))
            .expect("spawn the synthesis thread");
        std::thread::Builder::new()
            .name("proof-stages".into())
            .spawn(move || prove(compute, ready_rx))
            .expect("spawn the proving thread");
        Self { jobs }
    }

    /// Queues `circuit` and waits for its proof (call from a blocking context). A full
    /// queue is an error at once.
    pub fn prove<C: Circuit<Fr> + Clone + Send + 'static>(&self, pk: Arc<ProvingKey>, circuit: C) -> Proved {
        let again = circuit.clone();
        let (reply, answer) = sync_channel(1);
        let job = Job {
            pk,
            synthesis: Box::new(move |pk| Prover::synthesize(pk, circuit)),
            redo: Box::new(move |pk, rng| Prover::default().prove(pk, again, rng)),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ProverError::Backend {
                    backend: "pipeline",
                    reason: format!("the proving queue is full ({QUEUE_JOBS} proofs wait)"),
                })
            }
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        answer.recv().map_err(|_| stopped())?
    }
}

/// Where a node's `Compute` keeps its pipeline once started. A clone starts its own: the
/// threads prove with the `Compute` that started them.
#[derive(Default)]
pub struct PipelineSlot(OnceLock<ProofPipeline>);

impl Clone for PipelineSlot {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PipelineSlot {
    pub fn get_or_start(&self, compute: &'static dyn Stages) -> &ProofPipeline {
        self.0.get_or_init(|| ProofPipeline::start(compute))
    }
}

fn stopped() -> ProverError {
    ProverError::Backend { backend: "pipeline", reason: "the proving threads stopped".into() }
}

/// Runs `f`, turning a panic (a library's, on input it should have refused) into an error
/// so the thread goes on serving the other jobs.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, ProverError>) -> Result<T, ProverError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ProverError::Backend { backend: "pipeline", reason: format!("{what} panicked") }))
}

fn synthesize(jobs: Receiver<Job>, ready: SyncSender<Ready>) {
    for job in jobs {
        let (synthesis, pk) = (job.synthesis, &job.pk);
        let witness = guarded("synthesis", || synthesis(pk));
        let next = Ready { pk: job.pk, witness, redo: job.redo, reply: job.reply };
        if ready.send(next).is_err() {
            return;
        }
    }
}

fn prove(compute: &'static dyn Stages, ready: Receiver<Ready>) {
    let mut rng = ChaCha20Rng::from_entropy();
    for job in ready {
        let (pk, redo, rng) = (&job.pk, job.redo, &mut rng);
        let answer = job.witness.and_then(|w| {
            guarded("proving", || match compute.prove_synthesized(pk, w, rng)? {
                Some(proved) => Ok(proved),
                None => redo(pk, rng),
            })
        });
        // A caller that stopped waiting is no reason to stop serving the others.
        let _ = job.reply.send(answer);
    }
}
