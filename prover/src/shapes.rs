//! The registered circuit shapes: one trusted setup per shape, not per policy or
//! requirement.

use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;

use crate::anonymous::{self, AnonymousPolicyCircuit, DemandNullifierCircuit};
use crate::policy::PolicyCircuit;
use crate::r1cs::{CircuitShape, ShapeCs};
use crate::supply::{SupplyCircuit, SupplyShape};

/// A circuit shape with its own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Policy,
    /// The anonymous policy circuit (nullifier, one-time key, sealed identity), in a
    /// consortium assembled with the anonymous path.
    AnonymousPolicy,
    /// A named demand's nullifier proof, in a consortium with the anonymous path: one
    /// demand budget across named and anonymous demands.
    DemandNullifier,
    Supply(SupplyShape),
}

impl Shape {
    /// The shapes generated at genesis. `supply-4096` is benchmark-only.
    pub const DEFAULT_SET: [Shape; 3] =
        [Shape::Policy, Shape::Supply(SupplyShape::Records64), Shape::Supply(SupplyShape::Records1024)];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Policy => "policy",
            Shape::AnonymousPolicy => "policy-anonymous",
            Shape::DemandNullifier => "demand-nullifier",
            Shape::Supply(s) => s.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Shape::Policy,
            Shape::AnonymousPolicy,
            Shape::DemandNullifier,
            Shape::Supply(SupplyShape::Records64),
            Shape::Supply(SupplyShape::Records1024),
            Shape::Supply(SupplyShape::Records4096),
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Number of public inputs (without the constant one).
    pub fn public_inputs(self) -> usize {
        match self {
            Shape::Policy => 3,
            Shape::AnonymousPolicy => anonymous::PUBLIC_INPUTS,
            Shape::DemandNullifier => anonymous::DEMAND_NULLIFIER_PUBLIC_INPUTS,
            Shape::Supply(_) => 4,
        }
    }

    pub fn blank(self) -> AnyCircuit {
        match self {
            Shape::Policy => AnyCircuit::Policy(PolicyCircuit::blank()),
            Shape::AnonymousPolicy => AnyCircuit::AnonymousPolicy(Box::new(AnonymousPolicyCircuit::blank())),
            Shape::DemandNullifier => AnyCircuit::DemandNullifier(DemandNullifierCircuit::blank()),
            Shape::Supply(s) => AnyCircuit::Supply(SupplyCircuit::blank(s)),
        }
    }

    /// The structure and digest of this shape's circuit.
    pub fn circuit_shape(self) -> Result<CircuitShape, SynthesisError> {
        let mut cs = ShapeCs::new();
        self.blank().synthesize(&mut cs)?;
        Ok(cs.shape())
    }
}

/// Either circuit, so one pipeline and one parameter store serve both.
#[derive(Debug, Clone)]
pub enum AnyCircuit {
    Policy(PolicyCircuit),
    AnonymousPolicy(Box<AnonymousPolicyCircuit>),
    DemandNullifier(DemandNullifierCircuit),
    Supply(SupplyCircuit),
}

impl AnyCircuit {
    pub fn shape(&self) -> Shape {
        match self {
            AnyCircuit::Policy(_) => Shape::Policy,
            AnyCircuit::AnonymousPolicy(_) => Shape::AnonymousPolicy,
            AnyCircuit::DemandNullifier(_) => Shape::DemandNullifier,
            AnyCircuit::Supply(s) => Shape::Supply(s.shape),
        }
    }
}

impl Circuit<Fr> for AnyCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        match self {
            AnyCircuit::Policy(c) => c.synthesize(cs),
            AnyCircuit::AnonymousPolicy(c) => c.synthesize(cs),
            AnyCircuit::DemandNullifier(c) => c.synthesize(cs),
            AnyCircuit::Supply(c) => c.synthesize(cs),
        }
    }
}
