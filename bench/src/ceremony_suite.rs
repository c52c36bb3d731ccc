//! The `ceremony` suite: the multi-party Groth16 setup (`dualchain_prover::ceremony`) per
//! circuit shape: one phase-1 contribution at the shape's domain and phase 1's
//! verification (one participant, and two below 2^16); phase 2's start (the group FFTs
//! into the Lagrange basis and the QAP in the exponent), one phase-2 contribution and
//! phase 2's verification with two and with four participants; and the sizes of the
//! accumulator and of the transcripts. The baseline of each time is the single-party setup
//! of the same shape on the same machine (`ProvingKey::generate`), which a ceremony
//! replaces.
//!
//! Verification grows linearly with the participants (pairing checks per step) on top of
//! a fixed part: the random-linear-combination checks of the final accumulator or
//! parameters, which are MSMs over them.
//!
//! `--quick`: the policy shape; full: policy, supply-64 and supply-1024;
//! `--max-log-size N` leaves out the shapes whose domain exceeds 2^N (supply-1024 is 2^19:
//! its phase-2 start alone takes about twenty minutes on 2 cores).

use std::time::Instant;

use anyhow::Result;
use dualchain_prover::ceremony::{phase1, phase2};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::measure::{Record as Row, Rows};

fn secs(name: &str, params: String, t: Instant, baseline: f64) -> Row {
    let v = t.elapsed().as_secs_f64();
    Row { name: name.into(), params, value: v, unit: "s".into(), baseline: Some(baseline), ratio: Some(v / baseline) }
}

fn bytes(name: &str, params: String, n: usize) -> Row {
    Row { name: name.into(), params, value: n as f64, unit: "bytes".into(), baseline: None, ratio: None }
}

pub fn run(quick: bool, max_log: Option<u32>) -> Result<Vec<Row>> {
    let mut shapes = vec![Shape::Policy];
    if !quick {
        shapes.push(Shape::Supply(SupplyShape::Records64));
        shapes.push(Shape::Supply(SupplyShape::Records1024));
    }
    let mut kept = Vec::new();
    for shape in shapes {
        let log_m = shape.circuit_shape()?.domain_size().trailing_zeros();
        if max_log.is_some_and(|m| log_m > m) {
            eprintln!("ceremony: {} left out (domain 2^{log_m} > --max-log-size)", shape.name());
        } else {
            kept.push(shape);
        }
    }
    let shapes = kept;
    let rng = &mut ChaCha20Rng::from_entropy();
    let mut out = Rows::default();
    for shape in shapes {
        let name = shape.name();
        let log_m = shape.circuit_shape()?.domain_size().trailing_zeros();
        let t = Instant::now();
        ProvingKey::generate(shape, rng)?;
        let single = t.elapsed().as_secs_f64();
        out.push(Row {
            name: "ceremony::single_party_setup".into(),
            params: format!("shape={name}"),
            value: single,
            unit: "s".into(),
            baseline: None,
            ratio: None,
        });

        let mut acc = phase1::Accumulator::new(log_m)?;
        let mut t1 = phase1::Transcript::new(log_m);
        let t = Instant::now();
        t1.contribute(&mut acc, "first", rng)?;
        out.push(secs("ceremony::tau_contribution", format!("shape={name},m=2^{log_m}"), t, single));
        let t = Instant::now();
        t1.verify(&acc, rng)?;
        out.push(secs("ceremony::tau_verify", format!("shape={name},participants=1"), t, single));
        // A second participant shows the growth (cheap below 2^16; minutes at 2^19).
        if log_m <= 15 {
            t1.contribute(&mut acc, "second", rng)?;
            let t = Instant::now();
            t1.verify(&acc, rng)?;
            out.push(secs("ceremony::tau_verify", format!("shape={name},participants=2"), t, single));
        }
        out.push(bytes("ceremony::accumulator", format!("m=2^{log_m}"), acc.to_bytes().len()));
        out.push(bytes("ceremony::tau_transcript", format!("participants={}", t1.steps.len()), t1.to_bytes().len()));

        let t = Instant::now();
        let matrices = phase2::Matrices::of(shape.blank())?;
        let mut params = phase2::initial(&acc, &matrices)?;
        out.push(secs("ceremony::phase2_start", format!("shape={name}"), t, single));
        let mut t2 = phase2::Transcript::new(name, shape.circuit_shape()?.digest);
        let t = Instant::now();
        t2.contribute(&mut params, "p1", rng)?;
        out.push(secs("ceremony::delta_contribution", format!("shape={name}"), t, single));
        for k in [2, 4] {
            while t2.steps.len() < k {
                t2.contribute(&mut params, &format!("p{}", t2.steps.len() + 1), rng)?;
            }
            let t = Instant::now();
            t2.verify(&acc, &matrices, &params, rng)?;
            out.push(secs("ceremony::phase2_verify", format!("shape={name},participants={k}"), t, single));
        }
        out.push(bytes("ceremony::phase2_transcript", format!("shape={name},participants=4"), t2.to_bytes().len()));
    }
    Ok(out.0)
}
