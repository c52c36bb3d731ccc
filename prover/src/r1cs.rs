//! Constraint systems the prover runs a circuit through: [`WitnessCs`] records the
//! witness and the evaluations `⟨A_i, z⟩, ⟨B_i, z⟩, ⟨C_i, z⟩` of every constraint, with the
//! query densities bellperson's parameters are laid out by; [`ShapeCs`] records only the
//! structure and hashes it into a circuit digest that parameter files are checked against.

use bellpepper_core::{ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};
use sha2::{Digest, Sha256};

/// Which variables occur (with a non-zero coefficient) in some A or B linear combination.
/// bellperson drops the parameters of variables that never occur, so the prover must skip
/// exactly the same ones.
#[derive(Debug, Default, Clone)]
pub struct Density {
    pub a_aux: Vec<bool>,
    pub b_input: Vec<bool>,
    pub b_aux: Vec<bool>,
}

/// The witness and constraint evaluations of one circuit instance.
#[derive(Debug, Default)]
pub struct WitnessCs {
    pub inputs: Vec<Fr>,
    pub aux: Vec<Fr>,
    pub a: Vec<Fr>,
    pub b: Vec<Fr>,
    pub c: Vec<Fr>,
    pub density: Density,
    /// The first constraint the witness does not satisfy.
    pub first_unsatisfied: Option<usize>,
}

fn eval(
    lc: &LinearCombination<Fr>,
    inputs: &[Fr],
    aux: &[Fr],
    mut in_d: Option<&mut [bool]>,
    mut aux_d: Option<&mut [bool]>,
) -> Fr {
    let mut acc = Fr::ZERO;
    for (i, coeff) in lc.iter_inputs() {
        if coeff.is_zero_vartime() {
            continue;
        }
        acc += if *coeff == Fr::ONE { inputs[*i] } else { inputs[*i] * coeff };
        if let Some(d) = in_d.as_deref_mut() {
            d[*i] = true;
        }
    }
    for (i, coeff) in lc.iter_aux() {
        if coeff.is_zero_vartime() {
            continue;
        }
        acc += if *coeff == Fr::ONE { aux[*i] } else { aux[*i] * coeff };
        if let Some(d) = aux_d.as_deref_mut() {
            d[*i] = true;
        }
    }
    acc
}

impl WitnessCs {
    /// Adds bellperson's `input_i · 0 = 0` constraints, which make every input occur in A.
    pub fn finish(&mut self) {
        for i in 0..self.inputs.len() {
            self.a.push(self.inputs[i]);
            self.b.push(Fr::ZERO);
            self.c.push(Fr::ZERO);
        }
    }
}

impl ConstraintSystem<Fr> for WitnessCs {
    type Root = Self;

    fn new() -> Self {
        let mut cs = Self::default();
        cs.inputs.push(Fr::ONE);
        cs.density.b_input.push(false);
        cs
    }

    fn alloc<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux.push(f()?);
        self.density.a_aux.push(false);
        self.density.b_aux.push(false);
        Ok(Variable::new_unchecked(Index::Aux(self.aux.len() - 1)))
    }

    fn alloc_input<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs.push(f()?);
        self.density.b_input.push(false);
        Ok(Variable::new_unchecked(Index::Input(self.inputs.len() - 1)))
    }

    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        let (a, b, c) = (a(LinearCombination::zero()), b(LinearCombination::zero()), c(LinearCombination::zero()));
        let av = eval(&a, &self.inputs, &self.aux, None, Some(&mut self.density.a_aux));
        let bv = eval(&b, &self.inputs, &self.aux, Some(&mut self.density.b_input), Some(&mut self.density.b_aux));
        let cv = eval(&c, &self.inputs, &self.aux, None, None);
        if self.first_unsatisfied.is_none() && av * bv != cv {
            self.first_unsatisfied = Some(self.a.len());
        }
        self.a.push(av);
        self.b.push(bv);
        self.c.push(cv);
    }

    fn push_namespace<NR, N>(&mut self, _: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
    }
    fn pop_namespace(&mut self) {}
    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}

/// The structure of a circuit: counts and a SHA-256 digest over every constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitShape {
    pub constraints: usize,
    /// Including the constant-one input.
    pub inputs: usize,
    pub aux: usize,
    pub digest: [u8; 32],
}

impl CircuitShape {
    /// The evaluation-domain size bellperson uses: the next power of two of
    /// constraints + inputs (one `input · 0 = 0` constraint per input).
    pub fn domain_size(&self) -> usize {
        (self.constraints + self.inputs).next_power_of_two()
    }
}

/// Records a circuit's structure (no witness values are computed).
pub struct ShapeCs {
    hasher: Sha256,
    constraints: usize,
    inputs: usize,
    aux: usize,
}

impl ShapeCs {
    pub fn shape(self) -> CircuitShape {
        let mut h = self.hasher;
        h.update((self.constraints as u64).to_le_bytes());
        h.update((self.inputs as u64).to_le_bytes());
        h.update((self.aux as u64).to_le_bytes());
        CircuitShape { constraints: self.constraints, inputs: self.inputs, aux: self.aux, digest: h.finalize().into() }
    }

    fn absorb(&mut self, lc: &LinearCombination<Fr>) {
        self.hasher.update((lc.len() as u64).to_le_bytes());
        for (i, coeff) in lc.iter_inputs() {
            self.hasher.update([0u8]);
            self.hasher.update((*i as u64).to_le_bytes());
            self.hasher.update(coeff.to_repr());
        }
        for (i, coeff) in lc.iter_aux() {
            self.hasher.update([1u8]);
            self.hasher.update((*i as u64).to_le_bytes());
            self.hasher.update(coeff.to_repr());
        }
    }
}

impl ConstraintSystem<Fr> for ShapeCs {
    type Root = Self;

    fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"dualchain/v1/circuit-shape");
        Self { hasher, constraints: 0, inputs: 1, aux: 0 }
    }
    fn alloc<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux += 1;
        Ok(Variable::new_unchecked(Index::Aux(self.aux - 1)))
    }
    fn alloc_input<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs += 1;
        Ok(Variable::new_unchecked(Index::Input(self.inputs - 1)))
    }
    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        self.absorb(&a(LinearCombination::zero()));
        self.absorb(&b(LinearCombination::zero()));
        self.absorb(&c(LinearCombination::zero()));
        self.constraints += 1;
    }
    fn push_namespace<NR, N>(&mut self, _: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
    }
    fn pop_namespace(&mut self) {}
    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}
