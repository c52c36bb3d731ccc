//! The zero-knowledge forms of a member's certified attributes (the credential vector the
//! policy circuit takes) and of a dataset's access policy (a DNF over those attributes).

use anyhow::Result;
use dualchain_crypto::cert::AttributeSet;
use dualchain_prover::policy::{categorical, schema, Op, PolicyDnf, Predicate, ATTRIBUTES};

/// The credential's attribute vector from certified attributes `role:X`, `dept:X`,
/// `institution:X`, `country:X` (categorical) and `clearance:N` (numeric).
pub fn credential_vector(attributes: &AttributeSet) -> [u64; ATTRIBUTES] {
    let mut v = [0u64; ATTRIBUTES];
    for a in attributes.iter() {
        let Some((k, val)) = a.split_once(':') else { continue };
        match k {
            "role" => v[schema::ROLE as usize] = categorical(val),
            "dept" => v[schema::DEPARTMENT as usize] = categorical(val),
            "institution" => v[schema::INSTITUTION as usize] = categorical(val),
            "country" => v[schema::COUNTRY as usize] = categorical(val),
            "clearance" => v[schema::CLEARANCE as usize] = val.parse().unwrap_or(0),
            _ => {}
        }
    }
    v
}

/// `role = research ∧ dept ∈ departments` as a DNF (one clause per department).
pub fn research_in_departments(departments: &[&str]) -> Result<PolicyDnf> {
    let role = Predicate { attribute: schema::ROLE, op: Op::Eq, constant: categorical("research") };
    let clauses = departments
        .iter()
        .map(|d| vec![role, Predicate { attribute: schema::DEPARTMENT, op: Op::Eq, constant: categorical(d) }])
        .collect();
    Ok(PolicyDnf::new(clauses)?)
}
