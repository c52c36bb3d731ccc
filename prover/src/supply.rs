//! The `supply` circuit: a data owner proves that its committed dataset meets a published
//! data requirement, without revealing the records (DESIGN.md §4.4, §3 step 6).
//!
//! Public inputs (in order): the dataset commitment `C_D`, the requirement hash, the consent
//! commitment `C_K`, the use a demand asks for (`0..USES`). Private: the records as packed
//! field elements, their consent masks and the two commitments' salts.
//!
//! - A record is `present (1) ‖ FHIR code (32) ‖ unit (16) ‖ age band (8) ‖ sex (2) ‖
//!   value (32, fixed point ×1000) ‖ time (32, UNIX minutes) ‖ device (32)`, 155 bits
//!   packed little-endian into one field element; every field is range-checked by its bits,
//!   which makes the packing injective. Padding records have `present = 0`.
//! - `C_D = P2(M16(records), salt)` where `M16` is an arity-16 Poseidon Merkle tree padded
//!   with zeros ([`crate::poseidon::merkle16_root`]).
//! - A requirement is `(code, unit, age band range, sex or any, optional value minimum and
//!   maximum, time window, threshold)`, hashed as `P2(p0, p1)` over two packed elements.
//! - Consent (beyond DESIGN.md, for patient rights): each record slot has a consent mask of
//!   [`USES`] bits, one per use (a purpose of use for a role of recipient, numbered by the
//!   ledger's `consent` module), committed apart from the records because it changes after
//!   registration: `C_K = P2(M16(masks packed 31 to an element), salt_K)`. The owner
//!   publishes a new `C_K` whenever a patient's consent changes.
//! - The circuit proves the records hash to `C_D`, the masks to `C_K`, and that at least
//!   `threshold` present records whose mask permits the demand's use match code, unit,
//!   age range, sex, value bounds and time window.
//!
//! One circuit per shape (number of record slots): a dataset with fewer records uses the
//! next shape up with padding records, so new requirements never need new parameters.

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use ff::Field;

use crate::error::ProverError;
use crate::field::fr_from_u64;
use crate::gadgets::{self, Lc};
use crate::poseidon::{hash2, hash2_gadget, merkle16_root, merkle16_root_gadget};

/// Field widths of a record, in packing order.
const RECORD_FIELDS: [(&str, usize); 8] = [
    ("present", 1),
    ("code", 32),
    ("unit", 16),
    ("age band", 8),
    ("sex", 2),
    ("value", 32),
    ("time", 32),
    ("device", 32),
];
const RECORD_BITS: usize = 155;
const _: () = {
    let mut total = 0;
    let mut i = 0;
    while i < RECORD_FIELDS.len() {
        total += RECORD_FIELDS[i].1;
        i += 1;
    }
    assert!(total == RECORD_BITS && RECORD_BITS < 254);
};
/// Widths of the requirement's packed elements.
const REQ_P0: [(&str, usize); 8] = [
    ("code", 32),
    ("unit", 16),
    ("age lo", 8),
    ("age hi", 8),
    ("sex", 2),
    ("has min", 1),
    ("has max", 1),
    ("threshold", 16),
];
const REQ_P1: [(&str, usize); 4] = [("value min", 32), ("value max", 32), ("time from", 32), ("time to", 32)];
const COUNT_BITS: usize = 16;

/// Uses a record's consent mask distinguishes: one bit each (purpose of use × recipient role;
/// the ledger's `consent` module names them).
pub const USES: usize = 8;
/// A consent mask permitting every use: a record with no recorded consent.
pub const ALL_USES: u8 = u8::MAX;
/// Consent masks packed into one field element (8 × 31 = 248 bits < 254).
const MASKS_PER_LEAF: usize = 31;
const _: () = assert!(USES == u8::BITS as usize && USES * MASKS_PER_LEAF < 254);

/// Circuit shapes: the number of record slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SupplyShape {
    Records64,
    Records1024,
    /// Benchmark-only: its parameters are large.
    Records4096,
}

impl SupplyShape {
    pub const fn records(self) -> usize {
        match self {
            SupplyShape::Records64 => 64,
            SupplyShape::Records1024 => 1024,
            SupplyShape::Records4096 => 4096,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            SupplyShape::Records64 => "supply-64",
            SupplyShape::Records1024 => "supply-1024",
            SupplyShape::Records4096 => "supply-4096",
        }
    }
    /// The smallest shape holding `n` records.
    pub fn for_records(n: usize) -> Option<Self> {
        [SupplyShape::Records64, SupplyShape::Records1024, SupplyShape::Records4096]
            .into_iter()
            .find(|s| s.records() >= n)
    }
}
const _: () = assert!(SupplyShape::Records4096.records() < 1 << COUNT_BITS);

/// Sex code of a record (FHIR `administrative-gender`); in a requirement 0 means any.
pub mod sex {
    pub const UNKNOWN_OR_ANY: u8 = 0;
    pub const MALE: u8 = 1;
    pub const FEMALE: u8 = 2;
    pub const OTHER: u8 = 3;
}

/// One record as the circuit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub present: bool,
    /// LOINC code as an integer (`8867-4` → 88674).
    pub code: u32,
    pub unit: u16,
    /// Age band (e.g. 5-year bands: 8 = 40–44).
    pub age_band: u8,
    pub sex: u8,
    /// Value in fixed point, ×1000.
    pub value: u32,
    /// UNIX minutes.
    pub time: u32,
    pub device: u32,
}

impl Record {
    /// The fields in their committed order: present, code, unit, age band, sex, value,
    /// time, device.
    pub fn fields(&self) -> [u64; 8] {
        [
            u64::from(self.present),
            u64::from(self.code),
            u64::from(self.unit),
            u64::from(self.age_band),
            u64::from(self.sex),
            u64::from(self.value),
            u64::from(self.time),
            u64::from(self.device),
        ]
    }

    /// The inverse of [`Record::fields`]; a value wider than its field is refused.
    pub fn from_fields(f: [u64; 8]) -> Result<Self, ProverError> {
        let bad = |i: usize| ProverError::Statement(format!("record field {i} is out of range: {}", f[i]));
        let n32 = |i: usize| u32::try_from(f[i]).map_err(|_| bad(i));
        let r = Self {
            present: match f[0] {
                0 => false,
                1 => true,
                _ => return Err(bad(0)),
            },
            code: n32(1)?,
            unit: u16::try_from(f[2]).map_err(|_| bad(2))?,
            age_band: u8::try_from(f[3]).map_err(|_| bad(3))?,
            sex: u8::try_from(f[4]).map_err(|_| bad(4))?,
            value: n32(5)?,
            time: n32(6)?,
            device: n32(7)?,
        };
        r.validate()?;
        Ok(r)
    }

    /// The packed field element committed in the dataset tree.
    pub fn pack(&self) -> Fr {
        pack(&self.fields(), &RECORD_FIELDS)
    }

    fn validate(&self) -> Result<(), ProverError> {
        if self.sex > 3 {
            return Err(ProverError::Statement(format!("sex code {} is not 0..=3", self.sex)));
        }
        Ok(())
    }
}

fn pack(values: &[u64], widths: &[(&str, usize)]) -> Fr {
    let mut acc = Fr::ZERO;
    let mut offset = 0;
    for (v, (_, w)) in values.iter().zip(widths) {
        acc += fr_from_u64(*v) * gadgets::pow2(offset);
        offset += w;
    }
    acc
}

/// A requester's data requirement (published with a demand as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub code: u32,
    pub unit: u16,
    pub age_lo: u8,
    pub age_hi: u8,
    /// 0 for any.
    pub sex: u8,
    pub value_min: Option<u32>,
    pub value_max: Option<u32>,
    pub time_from: u32,
    pub time_to: u32,
    pub threshold: u16,
}

impl Requirement {
    fn p0(&self) -> [u64; 8] {
        [
            u64::from(self.code),
            u64::from(self.unit),
            u64::from(self.age_lo),
            u64::from(self.age_hi),
            u64::from(self.sex),
            u64::from(self.value_min.is_some()),
            u64::from(self.value_max.is_some()),
            u64::from(self.threshold),
        ]
    }
    fn p1(&self) -> [u64; 4] {
        [
            u64::from(self.value_min.unwrap_or(0)),
            u64::from(self.value_max.unwrap_or(0)),
            u64::from(self.time_from),
            u64::from(self.time_to),
        ]
    }

    /// The requirement hash, as a public input and as published with a demand.
    pub fn hash(&self) -> Fr {
        hash2(pack(&self.p0(), &REQ_P0), pack(&self.p1(), &REQ_P1))
    }

    pub fn validate(&self) -> Result<(), ProverError> {
        if self.sex > 3 {
            return Err(ProverError::Statement(format!("sex code {} is not 0..=3", self.sex)));
        }
        if self.threshold == 0 {
            return Err(ProverError::Statement("a requirement's threshold must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether one record matches the requirement's predicates.
    pub fn matches(&self, r: &Record) -> bool {
        r.present
            && r.code == self.code
            && r.unit == self.unit
            && (self.age_lo..=self.age_hi).contains(&r.age_band)
            && (self.sex == sex::UNKNOWN_OR_ANY || r.sex == self.sex)
            && self.value_min.is_none_or(|m| r.value >= m)
            && self.value_max.is_none_or(|m| r.value <= m)
            && (self.time_from..=self.time_to).contains(&r.time)
    }

    pub fn count_matching(&self, records: &[Record]) -> usize {
        records.iter().filter(|r| self.matches(r)).count()
    }
}

/// `C_D = P2(M16(records padded to the shape), salt)`.
pub fn dataset_commitment(shape: SupplyShape, records: &[Record], salt: Fr) -> Result<Fr, ProverError> {
    let padded = pad(shape, records)?;
    let leaves: Vec<Fr> = padded.iter().map(Record::pack).collect();
    Ok(hash2(merkle16_root(&leaves), salt))
}

/// The consent masks of a dataset's record slots, as committed: `C_K = P2(M16(masks packed
/// 31 to an element, padding slots 0), salt)`.
pub fn consent_commitment(shape: SupplyShape, masks: &[u8], salt: Fr) -> Result<Fr, ProverError> {
    Ok(hash2(merkle16_root(&consent_leaves(&pad_masks(shape, masks)?)), salt))
}

fn pad_masks(shape: SupplyShape, masks: &[u8]) -> Result<Vec<u8>, ProverError> {
    if masks.len() > shape.records() {
        return Err(ProverError::Statement(format!(
            "{} consent masks do not fit the {} shape",
            masks.len(),
            shape.name()
        )));
    }
    let mut padded = masks.to_vec();
    padded.resize(shape.records(), 0);
    Ok(padded)
}

fn consent_leaves(masks: &[u8]) -> Vec<Fr> {
    masks
        .chunks(MASKS_PER_LEAF)
        .map(|c| c.iter().enumerate().map(|(j, m)| fr_from_u64(u64::from(*m)) * gadgets::pow2(8 * j)).sum())
        .collect()
}

/// Which uses a consent mask permits.
pub fn permits(mask: u8, use_index: u8) -> bool {
    usize::from(use_index) < USES && mask >> use_index & 1 == 1
}

fn pad(shape: SupplyShape, records: &[Record]) -> Result<Vec<Record>, ProverError> {
    if records.len() > shape.records() {
        return Err(ProverError::Statement(format!("{} records do not fit the {} shape", records.len(), shape.name())));
    }
    for r in records {
        r.validate()?;
    }
    let mut padded = records.to_vec();
    padded.resize(shape.records(), Record::default());
    Ok(padded)
}

/// FHIR-to-field mappings used when a node turns Observations into records.
pub mod fhir {
    /// LOINC `NNNNN-C` as the integer `NNNNNC`.
    pub fn loinc_code(code: &str) -> Option<u32> {
        let (num, check) = code.split_once('-')?;
        if num.is_empty()
            || num.len() > 7
            || check.len() != 1
            || !num.bytes().chain(check.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        format!("{num}{check}").parse().ok()
    }

    /// UCUM unit codes used by bedside monitors; other units get a stable 16-bit code.
    pub fn unit_code(ucum: &str) -> u16 {
        match ucum {
            "/min" => 1,
            "%" => 2,
            "mm[Hg]" => 3,
            "Cel" => 4,
            "kg" => 5,
            "mg/dL" => 6,
            "mmol/L" => 7,
            other => 0x8000 | (crate::policy::categorical(other) as u16 & 0x7fff),
        }
    }

    /// A quantity in fixed point ×1000, if it is non-negative and fits 32 bits.
    pub fn fixed_point(value: f64) -> Option<u32> {
        let scaled = (value * 1000.0).round();
        (value.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&scaled)).then_some(scaled as u32)
    }

    /// UNIX seconds as UNIX minutes (32 bits reach the year 10136).
    pub fn minutes(unix_seconds: u64) -> Option<u32> {
        u32::try_from(unix_seconds / 60).ok()
    }

    /// A device reference as a 32-bit code.
    pub fn device_code(reference: &str) -> u32 {
        crate::policy::categorical(reference) as u32
    }
}

/// The public statement of a supply proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupplyStatement {
    pub dataset_commitment: Fr,
    pub requirement_hash: Fr,
    /// `C_K`, the consent masks' commitment the owner last published.
    pub consent_commitment: Fr,
    /// The use the demand asks for (`0..USES`).
    pub use_index: u8,
}

impl SupplyStatement {
    pub fn public_inputs(&self) -> Vec<Fr> {
        vec![
            self.dataset_commitment,
            self.requirement_hash,
            self.consent_commitment,
            fr_from_u64(u64::from(self.use_index)),
        ]
    }
}

/// Which records may count: each record slot's consent mask, the salt of their
/// commitment, and the use a demand asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub masks: Vec<u8>,
    pub salt: Fr,
    pub use_index: u8,
}

/// The supply circuit with its witness.
#[derive(Debug, Clone)]
pub struct SupplyCircuit {
    pub shape: SupplyShape,
    records: Vec<Record>,
    pub salt: Fr,
    pub requirement: Requirement,
    /// One mask per record slot (padding slots 0).
    masks: Vec<u8>,
    pub consent_salt: Fr,
    pub use_index: u8,
}

impl SupplyCircuit {
    pub fn new(
        shape: SupplyShape,
        records: &[Record],
        salt: Fr,
        requirement: Requirement,
    ) -> Result<Self, ProverError> {
        requirement.validate()?;
        let masks = pad_masks(shape, &vec![ALL_USES; records.len()])?;
        Ok(Self {
            shape,
            records: pad(shape, records)?,
            salt,
            requirement,
            masks,
            consent_salt: Fr::ZERO,
            use_index: 0,
        })
    }

    /// The instance for records that count only where their consent permits `use_index`
    /// (without it, every record's consent permits every use under a zero salt).
    pub fn with_consent(mut self, consent: &Consent) -> Result<Self, ProverError> {
        if usize::from(consent.use_index) >= USES {
            return Err(ProverError::Statement(format!("use {} is not 0..{USES}", consent.use_index)));
        }
        self.masks = pad_masks(self.shape, &consent.masks)?;
        self.consent_salt = consent.salt;
        self.use_index = consent.use_index;
        Ok(self)
    }

    /// A well-formed instance used only for parameter generation.
    pub fn blank(shape: SupplyShape) -> Self {
        let requirement = Requirement {
            code: 0,
            unit: 0,
            age_lo: 0,
            age_hi: 0,
            sex: 0,
            value_min: None,
            value_max: None,
            time_from: 0,
            time_to: 0,
            threshold: 1,
        };
        Self {
            shape,
            records: vec![Record::default(); shape.records()],
            salt: Fr::ZERO,
            requirement,
            masks: vec![0; shape.records()],
            consent_salt: Fr::ZERO,
            use_index: 0,
        }
    }

    /// The records that count: present, matching the requirement, and consented to the use.
    pub fn counted(&self) -> usize {
        self.records
            .iter()
            .zip(&self.masks)
            .filter(|(r, m)| self.requirement.matches(r) && permits(**m, self.use_index))
            .count()
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn statement(&self) -> SupplyStatement {
        let leaves: Vec<Fr> = self.records.iter().map(Record::pack).collect();
        SupplyStatement {
            dataset_commitment: hash2(merkle16_root(&leaves), self.salt),
            requirement_hash: self.requirement.hash(),
            consent_commitment: hash2(merkle16_root(&consent_leaves(&self.masks)), self.consent_salt),
            use_index: self.use_index,
        }
    }

    /// Native check of everything the circuit enforces, with a reason on failure.
    pub fn check(&self, expected: &SupplyStatement) -> Result<(), ProverError> {
        let actual = self.statement();
        if actual.dataset_commitment != expected.dataset_commitment {
            return Err(ProverError::Statement("the records do not hash to the dataset commitment".into()));
        }
        if actual.requirement_hash != expected.requirement_hash {
            return Err(ProverError::Statement("the requirement does not hash to the requirement hash".into()));
        }
        if actual.consent_commitment != expected.consent_commitment {
            return Err(ProverError::Statement("the consent masks do not hash to the consent commitment".into()));
        }
        if actual.use_index != expected.use_index {
            return Err(ProverError::Statement("the instance is for another use".into()));
        }
        let n = self.counted();
        if n < usize::from(self.requirement.threshold) {
            return Err(ProverError::Statement(format!(
                "{n} consented records meet the requirement, below its threshold of {}",
                self.requirement.threshold
            )));
        }
        Ok(())
    }
}

/// Allocates bit-decomposed fields; returns each field's value LC and their packing.
fn alloc_fields<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    values: &[u64],
    widths: &[(&str, usize)],
) -> Result<(Vec<Lc>, AllocatedNum<Fr>), SynthesisError> {
    let mut fields = Vec::with_capacity(values.len());
    let mut packed = Lc::constant::<CS>(Fr::ZERO);
    let mut offset = 0;
    for (v, (name, w)) in values.iter().zip(widths) {
        let bits: Vec<Lc> = (0..*w)
            .map(|i| gadgets::alloc_bit(cs.namespace(|| format!("{name} bit {i}")), (v >> i) & 1 == 1))
            .collect::<Result<_, _>>()?;
        let field = gadgets::pack_bits(&bits);
        packed = packed.add(&field.scale(gadgets::pow2(offset)));
        fields.push(field);
        offset += w;
    }
    let packed = gadgets::alloc_lc(cs.namespace(|| "packed"), &packed)?;
    Ok((fields, packed))
}

impl Circuit<Fr> for SupplyCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        if self.records.len() != self.shape.records() {
            return Err(SynthesisError::Unsatisfiable);
        }
        // The requirement, range-checked by its bits.
        let req = &self.requirement;
        let (p0, p0_num) = alloc_fields(cs.namespace(|| "requirement p0"), &req.p0(), &REQ_P0)?;
        let (p1, p1_num) = alloc_fields(cs.namespace(|| "requirement p1"), &req.p1(), &REQ_P1)?;
        let [r_code, r_unit, r_age_lo, r_age_hi, r_sex, r_has_min, r_has_max, r_threshold] =
            <[Lc; 8]>::try_from(p0).map_err(|_| SynthesisError::Unsatisfiable)?;
        let [r_min, r_max, r_from, r_to] = <[Lc; 4]>::try_from(p1).map_err(|_| SynthesisError::Unsatisfiable)?;
        let zero = Lc::constant::<CS>(Fr::ZERO);
        let any_sex = gadgets::is_equal(cs.namespace(|| "any sex"), &r_sex, &zero)?;
        // The use, one-hot, tied to its public input.
        let (use_bits, use_lc) = gadgets::one_hot(cs.namespace(|| "use"), usize::from(self.use_index), USES)?;
        let use_num = AllocatedNum::alloc(cs.namespace(|| "use value"), || Ok(use_lc.value))?;
        cs.enforce(|| "use is one-hot", |_| use_lc.lc.clone(), |lc| lc + CS::one(), |lc| lc + use_num.get_variable());

        // Records: packing, predicates, count.
        let mut leaves = Vec::with_capacity(self.records.len());
        let mut consent_leaves = Vec::with_capacity(self.records.len().div_ceil(MASKS_PER_LEAF));
        let mut consent_leaf = Lc::constant::<CS>(Fr::ZERO);
        let mut count = Lc::constant::<CS>(Fr::ZERO);
        for (i, (rec, mask)) in self.records.iter().zip(&self.masks).enumerate() {
            let mut cs = cs.namespace(|| format!("record {i}"));
            let mask_bits: Vec<Lc> = (0..USES)
                .map(|b| gadgets::alloc_bit(cs.namespace(|| format!("consent bit {b}")), mask >> b & 1 == 1))
                .collect::<Result<_, _>>()?;
            let consented = gadgets::select(cs.namespace(|| "consented"), &use_bits, &mask_bits)?;
            consent_leaf =
                consent_leaf.add(&gadgets::pack_bits(&mask_bits).scale(gadgets::pow2(8 * (i % MASKS_PER_LEAF))));
            if i % MASKS_PER_LEAF == MASKS_PER_LEAF - 1 || i + 1 == self.records.len() {
                consent_leaves.push(gadgets::alloc_lc(cs.namespace(|| "consent leaf"), &consent_leaf)?);
                consent_leaf = Lc::constant::<CS>(Fr::ZERO);
            }
            let (f, packed) = alloc_fields(cs.namespace(|| "fields"), &rec.fields(), &RECORD_FIELDS)?;
            let [present, code, unit, age, sex, value, time, _device] =
                <[Lc; 8]>::try_from(f).map_err(|_| SynthesisError::Unsatisfiable)?;
            let code_ok = gadgets::is_equal(cs.namespace(|| "code"), &code, &r_code)?;
            let unit_ok = gadgets::is_equal(cs.namespace(|| "unit"), &unit, &r_unit)?;
            let age_lo_ok = gadgets::geq(cs.namespace(|| "age lo"), &age, &r_age_lo, 8)?;
            let age_hi_ok = gadgets::geq(cs.namespace(|| "age hi"), &r_age_hi, &age, 8)?;
            let sex_eq = gadgets::is_equal(cs.namespace(|| "sex"), &sex, &r_sex)?;
            let sex_ok = gadgets::or(cs.namespace(|| "sex or any"), &any_sex, &sex_eq)?;
            let min_ge = gadgets::geq(cs.namespace(|| "min"), &value, &r_min, 32)?;
            let min_ok = gadgets::or(cs.namespace(|| "min or none"), &r_has_min.not::<CS>(), &min_ge)?;
            let max_le = gadgets::geq(cs.namespace(|| "max"), &r_max, &value, 32)?;
            let max_ok = gadgets::or(cs.namespace(|| "max or none"), &r_has_max.not::<CS>(), &max_le)?;
            let from_ok = gadgets::geq(cs.namespace(|| "from"), &time, &r_from, 32)?;
            let to_ok = gadgets::geq(cs.namespace(|| "to"), &r_to, &time, 32)?;
            let matched = gadgets::and_all(
                cs.namespace(|| "all"),
                &[present, code_ok, unit_ok, age_lo_ok, age_hi_ok, sex_ok, min_ok, max_ok, from_ok, to_ok, consented],
            )?;
            count = count.add(&matched);
            leaves.push(packed);
        }
        let enough = gadgets::geq(cs.namespace(|| "threshold"), &count, &r_threshold, COUNT_BITS)?;
        gadgets::enforce_true(cs.namespace(|| "threshold met"), &enough);

        let root = merkle16_root_gadget(cs.namespace(|| "records tree"), &leaves)?;
        let salt = AllocatedNum::alloc(cs.namespace(|| "salt"), || Ok(self.salt))?;
        let commitment = hash2_gadget(cs.namespace(|| "commitment"), &root, &salt)?;
        commitment.inputize(cs.namespace(|| "dataset commitment"))?;
        let req_hash = hash2_gadget(cs.namespace(|| "requirement hash"), &p0_num, &p1_num)?;
        req_hash.inputize(cs.namespace(|| "requirement hash input"))?;
        let consent_root = merkle16_root_gadget(cs.namespace(|| "consent tree"), &consent_leaves)?;
        let consent_salt = AllocatedNum::alloc(cs.namespace(|| "consent salt"), || Ok(self.consent_salt))?;
        let consent = hash2_gadget(cs.namespace(|| "consent commitment"), &consent_root, &consent_salt)?;
        consent.inputize(cs.namespace(|| "consent commitment input"))?;
        use_num.inputize(cs.namespace(|| "use input"))?;
        Ok(())
    }
}
