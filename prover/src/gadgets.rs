//! Small R1CS gadgets over linear combinations: bit decomposition with range checks,
//! equality, comparison, boolean AND/OR, one-hot selection. Every gadget documents its
//! constraint cost; comparisons are sound only for inputs already range-checked to the
//! stated width.

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{ConstraintSystem, LinearCombination, SynthesisError, Variable};
use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};

/// A linear combination with its witness value.
#[derive(Clone)]
pub struct Lc {
    pub lc: LinearCombination<Fr>,
    pub value: Fr,
}

impl Lc {
    pub fn constant<CS: ConstraintSystem<Fr>>(v: Fr) -> Self {
        Self { lc: LinearCombination::zero() + (v, CS::one()), value: v }
    }
    pub fn var(v: Variable, value: Fr) -> Self {
        Self { lc: LinearCombination::zero() + v, value }
    }
    pub fn num(n: &AllocatedNum<Fr>) -> Self {
        Self::var(n.get_variable(), n.get_value().unwrap_or(Fr::ZERO))
    }
    pub fn add(&self, other: &Lc) -> Lc {
        Lc { lc: self.lc.clone() + &other.lc, value: self.value + other.value }
    }
    pub fn sub(&self, other: &Lc) -> Lc {
        Lc { lc: self.lc.clone() - &other.lc, value: self.value - other.value }
    }
    pub fn scale(&self, k: Fr) -> Lc {
        let mut lc = LinearCombination::zero();
        lc = lc + (k, &self.lc);
        Lc { lc, value: self.value * k }
    }
    /// `1 - self` for a boolean.
    pub fn not<CS: ConstraintSystem<Fr>>(&self) -> Lc {
        Lc::constant::<CS>(Fr::ONE).sub(self)
    }
}

/// 2^k as a field element.
pub fn pow2(k: usize) -> Fr {
    Fr::from(2u64).pow_vartime([k as u64])
}

/// Low `n` bits of a field element's canonical representation (little-endian).
pub fn bits_of(v: Fr, n: usize) -> Vec<bool> {
    let repr = v.to_repr();
    let bytes = repr.as_ref();
    (0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1 == 1).collect()
}

/// Allocates one boolean (1 constraint: b·(1 − b) = 0).
pub fn alloc_bit<CS: ConstraintSystem<Fr>>(mut cs: CS, value: bool) -> Result<Lc, SynthesisError> {
    let v = if value { Fr::ONE } else { Fr::ZERO };
    let var = cs.alloc(|| "bit", || Ok(v))?;
    cs.enforce(|| "boolean", |lc| lc + var, |lc| lc + CS::one() - var, |lc| lc);
    Ok(Lc::var(var, v))
}

/// Decomposes `x` into `n` bits and enforces `Σ 2^i b_i = x` (n + 1 constraints). This is
/// the range check `x < 2^n`. `n` must be below the field's capacity.
pub fn decompose<CS: ConstraintSystem<Fr>>(mut cs: CS, x: &Lc, n: usize) -> Result<Vec<Lc>, SynthesisError> {
    assert!(n < Fr::CAPACITY as usize, "decomposition wider than the field");
    let bits_v = bits_of(x.value, n);
    let mut bits = Vec::with_capacity(n);
    let mut sum = LinearCombination::zero();
    for (i, b) in bits_v.into_iter().enumerate() {
        let bit = alloc_bit(cs.namespace(|| format!("bit {i}")), b)?;
        sum = sum + (pow2(i), &bit.lc);
        bits.push(bit);
    }
    cs.enforce(|| "packing", |_| sum, |lc| lc + CS::one(), |_| x.lc.clone());
    Ok(bits)
}

/// Allocates `value` as an `n`-bit number: the number and its bits (n + 1 constraints).
pub fn alloc_uint<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    value: u64,
    n: usize,
) -> Result<(AllocatedNum<Fr>, Vec<Lc>), SynthesisError> {
    let num = AllocatedNum::alloc(cs.namespace(|| "value"), || Ok(Fr::from(value)))?;
    let bits = decompose(cs.namespace(|| "range"), &Lc::num(&num), n)?;
    Ok((num, bits))
}

/// Σ 2^i b_i over a slice of bits, as a linear combination.
pub fn pack_bits(bits: &[Lc]) -> Lc {
    let mut acc = Lc { lc: LinearCombination::zero(), value: Fr::ZERO };
    for (i, b) in bits.iter().enumerate() {
        acc = acc.add(&b.scale(pow2(i)));
    }
    acc
}

/// Allocates a linear combination as a variable (1 constraint), e.g. to feed Poseidon.
pub fn alloc_lc<CS: ConstraintSystem<Fr>>(mut cs: CS, x: &Lc) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let n = AllocatedNum::alloc(cs.namespace(|| "num"), || Ok(x.value))?;
    cs.enforce(|| "equals", |_| x.lc.clone(), |lc| lc + CS::one(), |lc| lc + n.get_variable());
    Ok(n)
}

/// Allocates a fixed constant (1 constraint).
pub fn alloc_constant<CS: ConstraintSystem<Fr>>(cs: CS, c: Fr) -> Result<AllocatedNum<Fr>, SynthesisError> {
    alloc_lc(cs, &Lc::constant::<CS>(c))
}

/// `a · b` as a new variable (1 constraint). For booleans this is AND.
pub fn mul<CS: ConstraintSystem<Fr>>(mut cs: CS, a: &Lc, b: &Lc) -> Result<Lc, SynthesisError> {
    let v = a.value * b.value;
    let var = cs.alloc(|| "product value", || Ok(v))?;
    cs.enforce(|| "product", |_| a.lc.clone(), |_| b.lc.clone(), |lc| lc + var);
    Ok(Lc::var(var, v))
}

/// Boolean OR: `a + b − a·b` (1 constraint).
pub fn or<CS: ConstraintSystem<Fr>>(cs: CS, a: &Lc, b: &Lc) -> Result<Lc, SynthesisError> {
    let ab = mul(cs, a, b)?;
    Ok(a.add(b).sub(&ab))
}

/// AND of many booleans (len − 1 constraints).
pub fn and_all<CS: ConstraintSystem<Fr>>(mut cs: CS, xs: &[Lc]) -> Result<Lc, SynthesisError> {
    let mut acc = xs[0].clone();
    for (i, x) in xs.iter().enumerate().skip(1) {
        acc = mul(cs.namespace(|| format!("and {i}")), &acc, x)?;
    }
    Ok(acc)
}

/// `a == b` as a boolean (2 constraints): `d·inv = 1 − eq`, `d·eq = 0` with `d = a − b`.
pub fn is_equal<CS: ConstraintSystem<Fr>>(mut cs: CS, a: &Lc, b: &Lc) -> Result<Lc, SynthesisError> {
    let d = a.sub(b);
    let eq_v = if d.value.is_zero_vartime() { Fr::ONE } else { Fr::ZERO };
    let inv_v = d.value.invert().unwrap_or(Fr::ZERO);
    let eq = cs.alloc(|| "eq", || Ok(eq_v))?;
    let inv = cs.alloc(|| "inv", || Ok(inv_v))?;
    cs.enforce(|| "d*inv = 1-eq", |_| d.lc.clone(), |lc| lc + inv, |lc| lc + CS::one() - eq);
    cs.enforce(|| "d*eq = 0", |_| d.lc.clone(), |lc| lc + eq, |lc| lc);
    Ok(Lc::var(eq, eq_v))
}

/// `a ≥ b` as a boolean for `a, b < 2^n` (n + 2 constraints): the top bit of
/// `a − b + 2^n`, which lies in `[1, 2^(n+1))`.
pub fn geq<CS: ConstraintSystem<Fr>>(mut cs: CS, a: &Lc, b: &Lc, n: usize) -> Result<Lc, SynthesisError> {
    let shifted = a.sub(b).add(&Lc::constant::<CS>(pow2(n)));
    let bits = decompose(cs.namespace(|| "difference"), &shifted, n + 1)?;
    Ok(bits[n].clone())
}

/// Enforces `x = 1`.
pub fn enforce_true<CS: ConstraintSystem<Fr>>(mut cs: CS, x: &Lc) {
    cs.enforce(|| "is true", |_| x.lc.clone(), |lc| lc + CS::one(), |lc| lc + CS::one());
}

/// One-hot selection: allocates `k` booleans with exactly one set at `index`, and returns
/// them with the selected index as a linear combination (k + 1 constraints).
pub fn one_hot<CS: ConstraintSystem<Fr>>(mut cs: CS, index: usize, k: usize) -> Result<(Vec<Lc>, Lc), SynthesisError> {
    let mut bits = Vec::with_capacity(k);
    let mut sum = LinearCombination::zero();
    let mut idx = Lc { lc: LinearCombination::zero(), value: Fr::ZERO };
    for i in 0..k {
        let b = alloc_bit(cs.namespace(|| format!("one-hot {i}")), i == index)?;
        sum = sum + &b.lc;
        idx = idx.add(&b.scale(Fr::from(i as u64)));
        bits.push(b);
    }
    cs.enforce(|| "exactly one", |_| sum, |lc| lc + CS::one(), |lc| lc + CS::one());
    Ok((bits, idx))
}

/// Σ sel_i · x_i for a one-hot `sel` (len constraints).
pub fn select<CS: ConstraintSystem<Fr>>(mut cs: CS, sel: &[Lc], xs: &[Lc]) -> Result<Lc, SynthesisError> {
    let mut acc = Lc { lc: LinearCombination::zero(), value: Fr::ZERO };
    for (i, (s, x)) in sel.iter().zip(xs).enumerate() {
        acc = acc.add(&mul(cs.namespace(|| format!("select {i}")), s, x)?);
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellpepper_core::test_cs::TestConstraintSystem;

    fn num(cs: &mut TestConstraintSystem<Fr>, v: u64) -> Lc {
        let name = format!("n{}", cs.num_inputs() + cs.scalar_aux().len());
        let n = AllocatedNum::alloc(cs.namespace(|| name), || Ok(Fr::from(v))).unwrap();
        Lc::num(&n)
    }

    #[test]
    fn comparisons_and_equality_match_integers() {
        for (a, b) in [(5u64, 3u64), (3, 5), (7, 7), (0, u64::MAX), (u64::MAX, 0), (u64::MAX, u64::MAX)] {
            let mut cs = TestConstraintSystem::<Fr>::new();
            let x = num(&mut cs, a);
            let y = num(&mut cs, b);
            let ge = geq(cs.namespace(|| "ge"), &x, &y, 64).unwrap();
            let eq = is_equal(cs.namespace(|| "eq"), &x, &y).unwrap();
            assert!(cs.is_satisfied());
            assert_eq!(ge.value == Fr::ONE, a >= b, "{a} >= {b}");
            assert_eq!(eq.value == Fr::ONE, a == b);
        }
    }

    #[test]
    fn range_checks_reject_wide_values() {
        let mut cs = TestConstraintSystem::<Fr>::new();
        let x = num(&mut cs, 1 << 20);
        decompose(cs.namespace(|| "d"), &x, 16).unwrap();
        assert!(!cs.is_satisfied(), "a 21-bit value passed a 16-bit range check");
    }

    #[test]
    fn one_hot_selects() {
        let mut cs = TestConstraintSystem::<Fr>::new();
        let xs: Vec<Lc> = (0..5).map(|i| num(&mut cs, 10 + i)).collect();
        let (sel, idx) = one_hot(cs.namespace(|| "oh"), 3, 5).unwrap();
        let s = select(cs.namespace(|| "sel"), &sel, &xs).unwrap();
        assert!(cs.is_satisfied());
        assert_eq!(s.value, Fr::from(13u64));
        assert_eq!(idx.value, Fr::from(3u64));
    }
}
