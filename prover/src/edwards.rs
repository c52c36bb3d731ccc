//! Jubjub arithmetic in R1CS over BLS12-381's scalar field (Jubjub's base field), for
//! proofs about the identity escrow (the `escrow` module): affine twisted Edwards addition
//! and fixed- and variable-base scalar multiplication by a scalar given as bits.
//!
//! Jubjub is `−u² + v² = 1 + d·u²·v²` with `d = −10240/10241` (Zcash protocol
//! specification, §5.4.9.3). Its addition law is complete (`a = −1` a square, `d` not a
//! square: D. J. Bernstein, P. Birkner, M. Joye, T. Lange, C. Peters, "Twisted Edwards
//! curves", AFRICACRYPT 2008, Theorem 3.3), so one formula adds any two points, doubles,
//! and adds the identity `(0, 1)`, with no exceptional case to rule out. The constraints
//! are those of the Zcash specification's affine addition (§A.3.3.6):
//!
//! ```text
//! β = u₁·v₂   γ = v₁·u₂   δ = (u₁ + v₁)·(u₂ + v₂)   τ = β·γ
//! (1 + d·τ)·u₃ = β + γ     (1 − d·τ)·v₃ = δ − β − γ
//! ```
//!
//! Costs: an addition 6 constraints; a fixed-base multiplication by an `n`-bit scalar
//! `6·(n − 1)` (the multiples `2^i·B` are constants and a bit selects one of them with a
//! linear combination); a variable-base one `14·n − 12` (a doubling, a two-constraint
//! selection and an addition per bit, less the first doubling and addition).

use bellpepper_core::{ConstraintSystem, LinearCombination, SynthesisError};
use blstrs::Scalar as Fr;
use ff::Field;
use group::Group;
use jubjub::{AffinePoint, ExtendedPoint, SubgroupPoint};

use crate::field::fr_from_bytes;
use crate::gadgets::{self, Lc};

/// Jubjub's `d = −10240/10241`.
pub fn edwards_d() -> Fr {
    -Fr::from(10240u64) * Option::<Fr>::from(Fr::from(10241u64).invert()).expect("10241 is not zero")
}

/// A Jubjub point's affine coordinates `(u, v)` in the circuit's field.
pub fn coordinates(p: &SubgroupPoint) -> (Fr, Fr) {
    let affine = AffinePoint::from(ExtendedPoint::from(*p));
    let convert = |x: [u8; 32]| fr_from_bytes(&x).expect("Jubjub's base field is BLS12-381's scalar field");
    (convert(affine.get_u().to_bytes()), convert(affine.get_v().to_bytes()))
}

/// A point in the circuit: two linear combinations with their values.
#[derive(Clone)]
pub struct Point {
    pub u: Lc,
    pub v: Lc,
}

impl Point {
    /// A constant point (no constraints).
    pub fn constant<CS: ConstraintSystem<Fr>>(p: &SubgroupPoint) -> Self {
        let (u, v) = coordinates(p);
        Self { u: Lc::constant::<CS>(u), v: Lc::constant::<CS>(v) }
    }

    /// The identity `(0, 1)`.
    pub fn identity<CS: ConstraintSystem<Fr>>() -> Self {
        Self::constant::<CS>(&SubgroupPoint::identity())
    }

    /// The witness values `(u, v)`.
    pub fn value(&self) -> (Fr, Fr) {
        (self.u.value, self.v.value)
    }

    /// `self + other` (6 constraints).
    pub fn add<CS: ConstraintSystem<Fr>>(&self, mut cs: CS, other: &Point) -> Result<Point, SynthesisError> {
        let d = edwards_d();
        let beta = gadgets::mul(cs.namespace(|| "beta"), &self.u, &other.v)?;
        let gamma = gadgets::mul(cs.namespace(|| "gamma"), &self.v, &other.u)?;
        let delta = gadgets::mul(cs.namespace(|| "delta"), &self.u.add(&self.v), &other.u.add(&other.v))?;
        let tau = gadgets::mul(cs.namespace(|| "tau"), &beta, &gamma)?;
        let one = Lc::constant::<CS>(Fr::ONE);
        let dtau = tau.scale(d);
        let u_num = beta.add(&gamma);
        let v_num = delta.sub(&beta).sub(&gamma);
        let (u_den, v_den) = (one.add(&dtau), one.sub(&dtau));
        // Completeness: the denominators are never zero for points on the curve.
        let quotient = |num: &Lc, den: &Lc| num.value * Option::<Fr>::from(den.value.invert()).unwrap_or(Fr::ZERO);
        let u = cs.alloc(|| "u", || Ok(quotient(&u_num, &u_den)))?;
        let v = cs.alloc(|| "v", || Ok(quotient(&v_num, &v_den)))?;
        let (u_val, v_val) = (quotient(&u_num, &u_den), quotient(&v_num, &v_den));
        cs.enforce(|| "u equation", |_| u_den.lc.clone(), |lc| lc + u, |_| u_num.lc.clone());
        cs.enforce(|| "v equation", |_| v_den.lc.clone(), |lc| lc + v, |_| v_num.lc.clone());
        Ok(Point { u: Lc::var(u, u_val), v: Lc::var(v, v_val) })
    }

    /// `bit ? self : identity` for a boolean `bit` (2 constraints).
    fn select_or_identity<CS: ConstraintSystem<Fr>>(&self, mut cs: CS, bit: &Lc) -> Result<Point, SynthesisError> {
        let one = Lc::constant::<CS>(Fr::ONE);
        let u = gadgets::mul(cs.namespace(|| "u"), bit, &self.u)?;
        // v = 1 + bit·(v − 1)
        let v = gadgets::mul(cs.namespace(|| "v"), bit, &self.v.sub(&one))?.add(&one);
        Ok(Point { u, v })
    }
}

/// `Σ bits_i·2^i·base` for a constant base: the multiples are constants and each bit
/// picks its own with a linear combination (6 constraints per bit after the first).
pub fn fixed_base_mul<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    base: &SubgroupPoint,
    bits: &[Lc],
) -> Result<Point, SynthesisError> {
    let one = Lc::constant::<CS>(Fr::ONE);
    let mut multiple = *base;
    let mut acc: Option<Point> = None;
    for (i, bit) in bits.iter().enumerate() {
        let (mu, mv) = coordinates(&multiple);
        let picked = Point { u: bit.scale(mu), v: one.add(&bit.scale(mv - Fr::ONE)) };
        acc = Some(match acc {
            None => picked,
            Some(acc) => acc.add(cs.namespace(|| format!("add {i}")), &picked)?,
        });
        multiple = multiple.double();
    }
    Ok(acc.unwrap_or_else(Point::identity::<CS>))
}

/// `Σ bits_i·2^i·base` for a base in the circuit (14 constraints per bit, less 12).
pub fn variable_base_mul<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    base: &Point,
    bits: &[Lc],
) -> Result<Point, SynthesisError> {
    let mut multiple = base.clone();
    let mut acc: Option<Point> = None;
    for (i, bit) in bits.iter().enumerate() {
        if i > 0 {
            multiple = multiple.add(cs.namespace(|| format!("double {i}")), &multiple)?;
        }
        let picked = multiple.select_or_identity(cs.namespace(|| format!("select {i}")), bit)?;
        acc = Some(match acc {
            None => picked,
            Some(acc) => acc.add(cs.namespace(|| format!("add {i}")), &picked)?,
        });
    }
    Ok(acc.unwrap_or_else(Point::identity::<CS>))
}

/// Enforces that a point in the circuit equals the given coordinates (2 constraints).
pub fn enforce_equal<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    p: &Point,
    u: &LinearCombination<Fr>,
    v: &LinearCombination<Fr>,
) {
    cs.enforce(|| "u", |_| p.u.lc.clone(), |lc| lc + CS::one(), |_| u.clone());
    cs.enforce(|| "v", |_| p.v.lc.clone(), |lc| lc + CS::one(), |_| v.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellpepper_core::test_cs::TestConstraintSystem;
    use ff::PrimeField;
    use jubjub::Fr as Scalar;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn alloc_point(cs: &mut TestConstraintSystem<Fr>, name: &str, p: &SubgroupPoint) -> Point {
        let (u, v) = coordinates(p);
        let uv = cs.alloc(|| format!("{name} u"), || Ok(u)).unwrap();
        let vv = cs.alloc(|| format!("{name} v"), || Ok(v)).unwrap();
        Point { u: Lc::var(uv, u), v: Lc::var(vv, v) }
    }

    fn scalar_bits(cs: &mut TestConstraintSystem<Fr>, s: &Scalar) -> Vec<Lc> {
        let repr = s.to_repr();
        (0..252)
            .map(|i| {
                gadgets::alloc_bit(cs.namespace(|| format!("bit {i}")), (repr[i / 8] >> (i % 8)) & 1 == 1).unwrap()
            })
            .collect()
    }

    #[test]
    fn addition_doubling_and_the_identity_match_jubjub() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let p = SubgroupPoint::random(&mut rng);
        let q = SubgroupPoint::random(&mut rng);
        for (a, b) in [(p, q), (p, p), (p, SubgroupPoint::identity()), (p, -p)] {
            let mut cs = TestConstraintSystem::<Fr>::new();
            let pa = alloc_point(&mut cs, "a", &a);
            let pb = alloc_point(&mut cs, "b", &b);
            let sum = pa.add(cs.namespace(|| "sum"), &pb).unwrap();
            assert_eq!(sum.value(), coordinates(&(a + b)));
            assert!(cs.is_satisfied(), "{:?}", cs.which_is_unsatisfied());
            assert_eq!(cs.num_constraints(), 6);
        }
    }

    #[test]
    fn scalar_multiplications_match_jubjub_and_wrong_witnesses_are_unsatisfied() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let base = SubgroupPoint::random(&mut rng);
        let k = Scalar::random(&mut rng);
        let mut cs = TestConstraintSystem::<Fr>::new();
        let bits = scalar_bits(&mut cs, &k);
        let fixed = fixed_base_mul(cs.namespace(|| "fixed"), &SubgroupPoint::generator(), &bits).unwrap();
        let b = alloc_point(&mut cs, "base", &base);
        let variable = variable_base_mul(cs.namespace(|| "variable"), &b, &bits).unwrap();
        assert_eq!(fixed.value(), coordinates(&(SubgroupPoint::generator() * k)));
        assert_eq!(variable.value(), coordinates(&(base * k)));
        assert!(cs.is_satisfied());
        assert_eq!(cs.num_constraints(), 252 + 6 * 251 + (14 * 252 - 12));
        // A result that is not the product does not satisfy the constraints.
        let (wu, wv) = coordinates(&(base * (k + Scalar::ONE)));
        let mut wrong = cs;
        let uv = wrong.alloc(|| "claimed u", || Ok(wu)).unwrap();
        let vv = wrong.alloc(|| "claimed v", || Ok(wv)).unwrap();
        enforce_equal(
            wrong.namespace(|| "claim"),
            &variable,
            &(LinearCombination::zero() + uv),
            &(LinearCombination::zero() + vv),
        );
        assert!(!wrong.is_satisfied());
    }
}
