//! Uses a patient can consent to, as the supply circuit counts them: a purpose of use (HL7
//! v3 `PurposeOfUse`) for a role of recipient. A record's consent mask has one bit per use
//! ([`use_index`]); its owner commits every dataset's masks on chain (`CommitConsent`, the
//! `consent` contract), and a demand names its purpose, so a supply proof counts only
//! records whose patients permit that purpose for the requester's role.
//!
//! Break-glass (`ETREAT`) is not one of these uses: emergency treatment overrides a
//! consent, and is reviewed afterwards instead (the `emergency` contract).

use serde::{Deserialize, Serialize};

/// A demand's purpose of use (HL7 v3 ActReason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum Purpose {
    /// Healthcare research (`HRESCH`): the default, and what a research institute asks for.
    #[default]
    #[serde(rename = "HRESCH")]
    Research,
    /// Treatment (`TREAT`).
    #[serde(rename = "TREAT")]
    Treatment,
    /// Public health (`PUBHLTH`).
    #[serde(rename = "PUBHLTH")]
    PublicHealth,
    /// Healthcare operations (`HOPERAT`).
    #[serde(rename = "HOPERAT")]
    Operations,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [Purpose::Research, Purpose::Treatment, Purpose::PublicHealth, Purpose::Operations];

    /// The HL7 v3 ActReason code.
    pub fn code(self) -> &'static str {
        match self {
            Purpose::Research => "HRESCH",
            Purpose::Treatment => "TREAT",
            Purpose::PublicHealth => "PUBHLTH",
            Purpose::Operations => "HOPERAT",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Member roles that receive records, in the order of their bit within a purpose.
pub const RECIPIENT_ROLES: [&str; 2] = ["research", "hospital"];

/// The consent-mask bit of `purpose` for a recipient of `role`; `None` for a role that
/// receives no records.
pub fn use_index(purpose: Purpose, role: &str) -> Option<u8> {
    let r = RECIPIENT_ROLES.iter().position(|x| *x == role)?;
    let p = Purpose::ALL.iter().position(|x| *x == purpose).expect("ALL lists every purpose");
    u8::try_from(p * RECIPIENT_ROLES.len() + r).ok()
}

const _: () = assert!(Purpose::ALL.len() * RECIPIENT_ROLES.len() == dualchain_prover::supply::USES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purpose_and_role_has_its_own_bit() {
        let mut seen = std::collections::HashSet::new();
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_code(p.code()), Some(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.code()));
            for r in RECIPIENT_ROLES {
                let i = use_index(p, r).unwrap();
                assert!(usize::from(i) < dualchain_prover::supply::USES);
                assert!(seen.insert(i), "{p} {r} shares bit {i}");
            }
        }
        assert_eq!(use_index(Purpose::Research, "cpc"), None);
        assert_eq!(Purpose::from_code("ETREAT"), None);
    }
}
