//! The node's proving pipeline ([`dualchain_kernels::pipeline`]): proofs from many
//! callers come back to their own callers and verify, a full queue is refused at once, a
//! panicking synthesis fails its own job only. (A faulty device's proof made again on the
//! CPU inside the pipeline: `faulty_backend.rs`.)

#[path = "../../prover/tests/common.rs"]
mod common;

use std::sync::{Arc, Condvar, Mutex};

use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use dualchain_kernels::pipeline::QUEUE_JOBS;
use dualchain_kernels::Compute;
use dualchain_prover::shapes::Shape;
use dualchain_prover::ProverError;

fn leak(c: Compute) -> &'static Compute {
    Box::leak(Box::new(c))
}

#[test]
fn proofs_from_many_callers_come_back_to_each_and_verify() {
    let compute = leak(Compute::cpu("test: the pipeline on the CPU"));
    let pk = Arc::new(common::proving_key(Shape::Policy));
    let pvk = bellperson::groth16::prepare_verifying_key(pk.vk());
    std::thread::scope(|s| {
        for i in 0..6u8 {
            let (pk, pvk) = (pk.clone(), &pvk);
            s.spawn(move || {
                let (circuit, _) = common::policy_circuit(common::credential("icu", 3 + i as u64, [i; 32]), [i; 32]);
                let inputs = circuit.statement().public_inputs();
                let (proof, timings) = compute.prove_queued(pk.clone(), circuit).unwrap();
                dualchain_prover::verify::verify(pvk, pk.vk(), &proof, &inputs).unwrap();
                assert!(timings.synthesis > std::time::Duration::ZERO);
            });
        }
    });
    // A statement the witness does not prove is refused, and the pipeline goes on.
    let (bad, _) = common::policy_circuit(common::credential("icu", 1, [9; 32]), [9; 32]);
    assert!(matches!(compute.prove_queued(pk.clone(), bad), Err(ProverError::Unsatisfied { .. })));
    let (good, _) = common::policy_circuit(common::credential("icu", 4, [1; 32]), [1; 32]);
    let inputs = good.statement().public_inputs();
    let (proof, _) = compute.prove_queued(pk.clone(), good).unwrap();
    dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).unwrap();
}

/// A circuit whose synthesis waits for the test's signal, or panics when asked to.
#[derive(Clone)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    panics: bool,
}

impl Circuit<Fr> for Gate {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, _cs: &mut CS) -> Result<(), SynthesisError> {
        assert!(!self.panics, "a library panic inside synthesis");
        let (lock, cv) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        Ok(())
    }
}

#[test]
fn a_full_queue_is_refused_at_once_and_a_panic_fails_only_its_job() {
    let compute = leak(Compute::cpu("test: the pipeline's bounds"));
    let pk = Arc::new(common::proving_key(Shape::Policy));
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    let gate = Gate { open: open.clone(), panics: false };
    std::thread::scope(|s| {
        // One job holds the synthesis thread; QUEUE_JOBS more fill the queue.
        let mut waiting = Vec::new();
        for _ in 0..=QUEUE_JOBS {
            let (pk, gate) = (pk.clone(), gate.clone());
            waiting.push(s.spawn(move || compute.prove_queued(pk, gate)));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Wait until the queue is full: a further job is refused at once, not queued.
        let refused = (0..200)
            .find_map(|_| match compute.prove_queued(pk.clone(), gate.clone()) {
                Err(ProverError::Backend { reason, .. }) if reason.contains("queue is full") => Some(reason),
                _ => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
            })
            .expect("the queue is refused once full");
        assert!(refused.contains(&QUEUE_JOBS.to_string()), "{refused}");
        // Open the gate: every queued job is answered (a circuit of the wrong shape is an
        // error, not a hang).
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        for w in waiting {
            assert!(matches!(w.join().unwrap(), Err(ProverError::ShapeMismatch { .. })));
        }
    });
    // A panic in one job's synthesis is that job's error; the next proof is made.
    let panics = Gate { open, panics: true };
    match compute.prove_queued(pk.clone(), panics) {
        Err(ProverError::Backend { reason, .. }) => assert!(reason.contains("panicked"), "{reason}"),
        other => panic!("a panicking synthesis gave {:?}", other.map(|_| ())),
    }
    let (good, _) = common::policy_circuit(common::credential("icu", 4, [2; 32]), [2; 32]);
    let inputs = good.statement().public_inputs();
    let (proof, _) = compute.prove_queued(pk.clone(), good).unwrap();
    let pvk = bellperson::groth16::prepare_verifying_key(pk.vk());
    dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).unwrap();
}
