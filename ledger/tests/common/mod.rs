//! What the ledger's test files share.

use dualchain_prover::supply::Requirement;

/// Heart rates of anyone at any time, `threshold` of them.
pub fn any_heart_rate(threshold: u16) -> Requirement {
    Requirement {
        code: 88674,
        unit: 1,
        age_lo: 0,
        age_hi: 120,
        sex: 0,
        value_min: None,
        value_max: None,
        time_from: 0,
        time_to: u32::MAX,
        threshold,
    }
}
