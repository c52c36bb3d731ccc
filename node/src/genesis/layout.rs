//! Which member each node hosts: the default layout and `--member id:role[:attrs]`.

use anyhow::{anyhow, ensure, Context, Result};
use dualchain_crypto::cert::Role;

use crate::member::role_from_str;

/// A member of the layout.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    pub role: Role,
    pub attributes: Vec<String>,
}

pub fn default_layout(n: usize) -> Vec<Option<Spec>> {
    let all: [(&str, Role, &[&str]); 7] = [
        ("kgc", Role::Kgc, &["role:kgc"]),
        ("hospital-a", Role::Hospital, &["role:hospital", "dept:icu"]),
        ("research-1", Role::ResearchInstitute, &["role:research", "dept:cardiology"]),
        ("cpc-1", Role::Cpc, &["role:cpc"]),
        ("hospital-b", Role::Hospital, &["role:hospital", "dept:dermatology"]),
        ("cpc-2", Role::Cpc, &["role:cpc"]),
        ("research-2", Role::ResearchInstitute, &["role:research", "dept:icu"]),
    ];
    (0..n)
        .map(|i| {
            all.get(i).map(|(id, role, attrs)| Spec {
                id: id.to_string(),
                role: *role,
                attributes: attrs.iter().map(|a| a.to_string()).collect(),
            })
        })
        .collect()
}

pub fn parse_member(s: &str) -> Result<Option<Spec>> {
    if s == "-" {
        return Ok(None);
    }
    let mut parts = s.splitn(3, ':');
    let id = parts.next().filter(|i| !i.is_empty()).ok_or_else(|| anyhow!("--member {s:?}: no id"))?;
    let role = role_from_str(parts.next().ok_or_else(|| anyhow!("--member {s:?}: no role"))?)?;
    let attributes: Vec<String> =
        parts.next().map(|a| a.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    Spec::new(id, role, &attributes).map(Some).with_context(|| format!("--member {s:?}"))
}

impl Spec {
    /// A member's id, role and attributes (`role:<role>` first unless given).
    pub fn new(id: &str, role: Role, attributes: &[String]) -> Result<Self> {
        ensure!(!id.is_empty(), "no id");
        ensure!(
            id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "ids are up to 64 letters, digits, '-' or '_'"
        );
        ensure!(role != Role::Validator, "validators are nodes, not members");
        let mut attributes: Vec<String> = attributes.iter().filter(|a| !a.is_empty()).cloned().collect();
        let role_attr = format!("role:{}", role.as_str());
        if !attributes.contains(&role_attr) {
            attributes.insert(0, role_attr);
        }
        Ok(Self { id: id.into(), role, attributes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_specs_parse_or_say_why() {
        let s = parse_member("lab-9:research:dept:icu,clearance:3").unwrap().unwrap();
        assert_eq!((s.id.as_str(), s.role), ("lab-9", Role::ResearchInstitute));
        assert_eq!(s.attributes, ["role:research", "dept:icu", "clearance:3"]);
        assert!(parse_member("-").unwrap().is_none());
        for bad in ["", ":cpc", "x:validator", "x:wizard", "bad id:cpc", "x"] {
            assert!(parse_member(bad).is_err(), "{bad:?}");
        }
    }
}
