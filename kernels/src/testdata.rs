//! Inputs for differential tests and benchmarks at large sizes: distinct curve points made
//! cheaply (a random start plus multiples of a random step, in parallel chunks, then one
//! batch normalisation per chunk) and random scalars.

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve, Group};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const CHUNK: usize = 1 << 12;

fn points<P, A>(n: usize, seed: u64, normalize: impl Fn(&[P], &mut [A]) + Sync) -> Vec<A>
where
    P: Group<Scalar = Fr> + Send + Sync,
    A: PrimeCurveAffine + Send + Sync,
{
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = P::random(&mut rng);
    let step = P::random(&mut rng);
    let mut out = vec![A::identity(); n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(j, chunk)| {
        let mut cur = start + step * Fr::from((j * CHUNK) as u64);
        let proj: Vec<P> = (0..chunk.len())
            .map(|_| {
                let p = cur;
                cur += step;
                p
            })
            .collect();
        normalize(&proj, chunk);
    });
    out
}

/// `n` distinct G1 points.
pub fn g1_points(n: usize, seed: u64) -> Vec<G1Affine> {
    points::<G1Projective, G1Affine>(n, seed, G1Projective::batch_normalize)
}

/// `n` distinct G2 points.
pub fn g2_points(n: usize, seed: u64) -> Vec<G2Affine> {
    points::<G2Projective, G2Affine>(n, seed, G2Projective::batch_normalize)
}

/// `n` random scalars.
pub fn scalars(n: usize, seed: u64) -> Vec<Fr> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let seeds: Vec<u64> = (0..n.div_ceil(CHUNK)).map(|_| rng.next_u64()).collect();
    let mut out = vec![Fr::ZERO; n];
    out.par_chunks_mut(CHUNK).zip(seeds).for_each(|(chunk, s)| {
        let mut r = ChaCha8Rng::seed_from_u64(s);
        for v in chunk {
            *v = Fr::random(&mut r);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_distinct_and_on_the_curve() {
        let p = g1_points(CHUNK + 5, 1);
        assert_eq!(p.len(), CHUNK + 5);
        assert!(p.iter().all(|a| bool::from(a.is_on_curve()) && !bool::from(a.is_identity())));
        assert_ne!(p[0], p[1]);
        assert_ne!(p[CHUNK - 1], p[CHUNK]);
        assert_eq!(
            G1Projective::from(p[CHUNK]) - G1Projective::from(p[CHUNK - 1]),
            G1Projective::from(p[1]) - G1Projective::from(p[0])
        );
        let q = g2_points(10, 2);
        assert!(q.iter().all(|a| bool::from(a.is_on_curve())));
        assert_eq!(scalars(CHUNK * 2 + 1, 3).len(), CHUNK * 2 + 1);
        assert_ne!(scalars(4, 3), scalars(4, 4));
    }
}
