//! A dataset's access policy, stated once by its owner and enforced twice: by CP-ABE over
//! the dataset's index, and by the policy proof (zero knowledge over the credential tree).
//!
//! DESIGN.md has the owner write the two forms separately (a CP-ABE policy text and a
//! DNF for the circuit), which nothing checked against each other: a dataset whose index
//! opened for one group and whose proof admitted another was accepted. Here the owner
//! writes one statement; both forms are compiled from it, by the owner's node and again by
//! the `abe` contract, which refuses a registration whose index is encrypted under
//! another CP-ABE policy or whose zero-knowledge policy hash is not the statement's.
//!
//! Statement grammar (bounded: [`STATEMENT_LEN_MAX`] bytes, [`ATOMS_MAX`] atoms,
//! [`NESTING_MAX`] levels of parentheses):
//!
//! ```text
//! policy := or
//! or     := and ( "or" and )*
//! and    := atom ( "and" atom )*
//! atom   := "(" or ")" | key ":" value | key ">=" n | key "<=" n
//! ```
//!
//! Keys are the credential schema's ([`SCHEMA`]): `role`, `dept`, `institution`,
//! `country` (categorical: `key:value` holds when the member is certified with exactly
//! that attribute) and `clearance`, `training_until` (numeric, with a bit width:
//! `key:n`, `key>=n`, `key<=n`; `training_until` is the UNIX day until which the member's
//! ethics training is valid). Each key holds one value per member ([`check_attributes`]
//! refuses a certificate that names one twice), so the two forms agree on every member:
//! for every valid attribute set, the CP-ABE policy holds for the member's CP-ABE key
//! attributes ([`abe_key_attributes`]) exactly when the DNF holds for its credential vector
//! ([`credential_vector`]); `the_two_forms_agree_on_every_member` checks it.
//!
//! The two forms:
//! - **CP-ABE**: a categorical atom is the attribute itself. A numeric comparison is
//!   written over the bits of the value, the "bag of bits" of Bethencourt, Sahai and
//!   Waters ("Ciphertext-Policy Attribute-Based Encryption", IEEE S&P 2007, §4.3): a
//!   member's key holds `key.b<i>:<bit>` for every bit `i` of its value (0 when it has
//!   none), and `key >= c` becomes, from the lowest bit up, `b_i:1 and rest` where `c`'s
//!   bit is 1 and `b_i:1 or rest` where it is 0 (`<=` alike with `b_i:0`). At most one
//!   leaf per bit, so a comparison costs at most the key's width in leaves.
//! - **Zero knowledge**: the statement distributed into disjunctive normal form, at most
//!   4 clauses of 4 predicates (the policy circuit's shape, [`CLAUSES`],
//!   [`PREDICATES_PER_CLAUSE`]); a categorical atom is an equality with the value's code
//!   ([`categorical`]), a numeric one the comparison itself.
//!
//! What neither form can express is refused with the reason: a comparison that always
//! holds (`clearance>=0`; CP-ABE has no "true"), a constant beyond the key's width, a
//! statement whose DNF exceeds the circuit's shape, an attribute the CP-ABE form would
//! name twice (AC17 in rabe matches key rows to ciphertext rows by name; write
//! `role:research and (dept:a or dept:b)`, not the two clauses apart; a numeric key may be
//! bounded once from each side, `clearance>=2 and clearance<=5`).

use std::collections::BTreeSet;
use std::fmt;

use dualchain_crypto::abe::Policy;
use dualchain_crypto::cert::AttributeSet;
use dualchain_prover::policy::{
    categorical, schema, Op, PolicyDnf, Predicate, ATTRIBUTES, CLAUSES, PREDICATES_PER_CLAUSE,
};

/// Longest statement text.
pub const STATEMENT_LEN_MAX: usize = 2048;
/// Most atoms in one statement.
pub const ATOMS_MAX: usize = 32;
/// Deepest parenthesis nesting.
pub const NESTING_MAX: usize = 8;

/// Why a statement or an attribute set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access policy: {0}")]
pub struct PolicyError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(msg.into()))
}

/// How a schema key's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Compared for equality through its code ([`categorical`]).
    Categorical,
    /// An unsigned number below `2^bits`.
    Numeric { bits: u32 },
}

/// A key of the credential schema: its name in certificates and statements, and its slot
/// in the credential vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub slot: u8,
    pub kind: Kind,
}

/// The keys a statement may name.
pub const SCHEMA: [Key; 6] = [
    Key { name: "role", slot: schema::ROLE, kind: Kind::Categorical },
    Key { name: "dept", slot: schema::DEPARTMENT, kind: Kind::Categorical },
    Key { name: "institution", slot: schema::INSTITUTION, kind: Kind::Categorical },
    Key { name: "country", slot: schema::COUNTRY, kind: Kind::Categorical },
    Key { name: "clearance", slot: schema::CLEARANCE, kind: Kind::Numeric { bits: 8 } },
    Key { name: "training_until", slot: schema::TRAINING_VALID_UNTIL, kind: Kind::Numeric { bits: 16 } },
];

fn key_named(name: &str) -> Option<usize> {
    SCHEMA.iter().position(|k| k.name == name)
}

fn schema_names() -> String {
    SCHEMA.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// A comparison of a numeric key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cmp {
    Eq,
    Ge,
    Le,
}

/// One condition on one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Atom {
    /// `key:value` of a categorical key.
    Is { key: usize, value: String },
    /// `key:n`, `key>=n` or `key<=n` of a numeric key.
    Number { key: usize, cmp: Cmp, n: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Atom(Atom),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    expr: Expr,
}

/// Both forms of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forms {
    /// What the index is encrypted under.
    pub abe: Policy,
    /// What the policy proof shows (its hash is the proof's public input).
    pub dnf: PolicyDnf,
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Is { key, value } => write!(f, "{}:{value}", SCHEMA[*key].name),
            Atom::Number { key, cmp, n } => {
                let op = match cmp {
                    Cmp::Eq => ":",
                    Cmp::Ge => ">=",
                    Cmp::Le => "<=",
                };
                write!(f, "{}{op}{n}", SCHEMA[*key].name)
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (children, word) = match self {
            Expr::Atom(a) => return a.fmt(f),
            Expr::And(c) => (c, " and "),
            Expr::Or(c) => (c, " or "),
        };
        for (i, c) in children.iter().enumerate() {
            if i > 0 {
                f.write_str(word)?;
            }
            match c {
                Expr::Atom(a) => a.fmt(f)?,
                gate => write!(f, "({gate})")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for AccessPolicy {
    /// The canonical text: what the chain records, and a fixed point of parsing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

fn parse_atom(word: &str) -> Result<Atom, PolicyError> {
    let (name, cmp, rest) = if let Some((k, v)) = word.split_once(">=") {
        (k, Cmp::Ge, v)
    } else if let Some((k, v)) = word.split_once("<=") {
        (k, Cmp::Le, v)
    } else if let Some((k, v)) = word.split_once(':') {
        (k, Cmp::Eq, v)
    } else {
        return fail(format!("{word:?} is neither key:value nor a comparison (key>=n, key<=n)"));
    };
    let Some(key) = key_named(name) else {
        return fail(format!("{name:?} is not a credential key (one of {})", schema_names()));
    };
    match SCHEMA[key].kind {
        Kind::Categorical => {
            if cmp != Cmp::Eq {
                return fail(format!("{name} is categorical: write {name}:value"));
            }
            if let Err(e) = dualchain_crypto::encoding::check_ident("policy attribute", word) {
                return fail(format!("{word:?}: {e}"));
            }
            Ok(Atom::Is { key, value: rest.to_owned() })
        }
        Kind::Numeric { bits } => {
            let n: u64 = match rest.parse() {
                Ok(n) if rest.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return fail(format!("{word:?}: {name} compares with a decimal number")),
            };
            let max = (1u64 << bits) - 1;
            if n > max {
                return fail(format!("{word:?}: {name} holds {bits}-bit values (at most {max})"));
            }
            if (cmp == Cmp::Ge && n == 0) || (cmp == Cmp::Le && n == max) {
                return fail(format!("{word:?} holds for every member; leave it out"));
            }
            Ok(Atom::Number { key, cmp, n })
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Word(String),
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(match word.as_str() {
                "and" | "AND" => Token::And,
                "or" | "OR" => Token::Or,
                _ => Token::Word(word.clone()),
            });
            word.clear();
        }
    };
    for c in text.chars() {
        match c {
            '(' | ')' => {
                flush(&mut word, &mut out);
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    atoms: usize,
}

impl Parser {
    /// `or` when `disjunction`, else `and`.
    fn gate(&mut self, disjunction: bool, depth: usize) -> Result<Expr, PolicyError> {
        let op = if disjunction { Token::Or } else { Token::And };
        let mut children = Vec::new();
        loop {
            let child = if disjunction { self.gate(false, depth)? } else { self.atom(depth)? };
            // Flattened: `a and (b and c)` is the gate `a and b and c`.
            match (child, disjunction) {
                (Expr::Or(grand), true) | (Expr::And(grand), false) => children.extend(grand),
                (child, _) => children.push(child),
            }
            if self.tokens.get(self.pos) != Some(&op) {
                break;
            }
            self.pos += 1;
        }
        Ok(match children.len() {
            1 => children.pop().expect("one child"),
            _ if disjunction => Expr::Or(children),
            _ => Expr::And(children),
        })
    }

    fn atom(&mut self, depth: usize) -> Result<Expr, PolicyError> {
        let at = self.pos;
        self.pos += 1;
        match self.tokens.get(at) {
            Some(Token::Word(w)) => {
                self.atoms += 1;
                if self.atoms > ATOMS_MAX {
                    return fail(format!("more than {ATOMS_MAX} conditions"));
                }
                Ok(Expr::Atom(parse_atom(w)?))
            }
            Some(Token::Open) => {
                if depth >= NESTING_MAX {
                    return fail(format!("parentheses nested deeper than {NESTING_MAX}"));
                }
                let inner = self.gate(true, depth + 1)?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return fail("missing ')'");
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(t) => fail(format!("unexpected {t:?} at token {at}")),
            None => fail("unexpected end of policy"),
        }
    }
}

impl AccessPolicy {
    /// Parses a statement (`role:research and (dept:icu or dept:cardiology) and clearance>=3`).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > STATEMENT_LEN_MAX {
            return fail(format!("longer than {STATEMENT_LEN_MAX} bytes"));
        }
        let mut p = Parser { tokens: tokenize(text), pos: 0, atoms: 0 };
        let expr = p.gate(true, 0)?;
        if p.pos != p.tokens.len() {
            return fail(format!("unexpected {:?} at token {}", p.tokens[p.pos], p.pos));
        }
        // The canonical text parenthesises every gate below the top one, also where the
        // statement relied on `and` binding tighter than `or`: it must parse too.
        let depth = canonical_nesting(&expr);
        if depth > NESTING_MAX {
            return fail(format!(
                "parentheses nested deeper than {NESTING_MAX} once written out ({depth} levels: `and` inside `or` \
                 counts as a level)"
            ));
        }
        Ok(Self { expr })
    }

    /// Both forms, or why the statement has none.
    pub fn compile(&self) -> Result<Forms, PolicyError> {
        let abe_text = abe_text(&self.expr);
        let abe = Policy::parse(&abe_text).map_err(|e| PolicyError(format!("its CP-ABE form: {e}")))?;
        let mut seen = BTreeSet::new();
        if let Some(dup) = abe.leaves().into_iter().find(|l| !seen.insert(*l)) {
            return fail(format!(
                "its CP-ABE form names {dup} twice, which AC17 cannot decrypt: name each attribute once \
                 (role:research and (dept:a or dept:b)) and bound each numeric key at most once from each side"
            ));
        }
        let clauses = dnf(&self.expr)?;
        let dnf = PolicyDnf::new(clauses.iter().map(|c| c.iter().map(predicate).collect()).collect())
            .map_err(|e| PolicyError(format!("its zero-knowledge form: {e}")))?;
        Ok(Forms { abe, dnf })
    }
}

/// The levels of parentheses of `e`'s canonical text: one per gate below the top one.
fn canonical_nesting(e: &Expr) -> usize {
    fn gates(e: &Expr) -> usize {
        match e {
            Expr::Atom(_) => 0,
            Expr::And(c) | Expr::Or(c) => 1 + c.iter().map(gates).max().unwrap_or(0),
        }
    }
    gates(e).saturating_sub(1)
}

fn bit_attribute(name: &str, i: u32, bit: u64) -> String {
    format!("{name}.b{i}:{bit}")
}

fn is_bit_attribute(attribute: &str) -> bool {
    SCHEMA.iter().any(|k| matches!(k.kind, Kind::Numeric { .. }) && attribute.starts_with(&format!("{}.b", k.name)))
}

/// `key cmp c` over the bits of the key's value (BSW07 §4.3), lowest bit first.
fn bits_text(key: &Key, cmp: Cmp, c: u64) -> String {
    let Kind::Numeric { bits } = key.kind else { unreachable!("numeric atoms name numeric keys") };
    let mut acc: Option<String> = None;
    for i in 0..bits {
        let ci = (c >> i) & 1;
        // The literal of this bit, and whether it joins the lower bits' condition with "and"
        // (where the bit decides alone, "or" with a condition that always holds is dropped).
        let (lit, joins_and) = match cmp {
            Cmp::Eq => (bit_attribute(key.name, i, ci), true),
            Cmp::Ge => (bit_attribute(key.name, i, 1), ci == 1),
            Cmp::Le => (bit_attribute(key.name, i, 0), ci == 0),
        };
        acc = match (acc, joins_and) {
            (None, true) => Some(lit),
            (Some(rest), true) => Some(format!("({lit} and {rest})")),
            (None, false) => None,
            (Some(rest), false) => Some(format!("({lit} or {rest})")),
        };
    }
    acc.expect("comparisons that always hold are refused when parsed")
}

fn abe_text(e: &Expr) -> String {
    match e {
        Expr::Atom(Atom::Is { key, value }) => format!("{}:{value}", SCHEMA[*key].name),
        Expr::Atom(Atom::Number { key, cmp, n }) => bits_text(&SCHEMA[*key], *cmp, *n),
        Expr::And(c) => format!("({})", c.iter().map(abe_text).collect::<Vec<_>>().join(" and ")),
        Expr::Or(c) => format!("({})", c.iter().map(abe_text).collect::<Vec<_>>().join(" or ")),
    }
}

/// The statement in disjunctive normal form, within the circuit's shape.
fn dnf(e: &Expr) -> Result<Vec<BTreeSet<Atom>>, PolicyError> {
    let too_many = || {
        PolicyError(format!(
            "its zero-knowledge form needs more than {CLAUSES} alternatives, or more than \
             {PREDICATES_PER_CLAUSE} conditions in one: beyond the policy circuit's shape"
        ))
    };
    let clauses: Vec<BTreeSet<Atom>> = match e {
        Expr::Atom(a) => vec![BTreeSet::from([a.clone()])],
        Expr::Or(children) => {
            let mut out = Vec::new();
            for c in children {
                out.extend(dnf(c)?);
                if out.len() > CLAUSES {
                    return Err(too_many());
                }
            }
            out
        }
        Expr::And(children) => {
            let mut out = vec![BTreeSet::new()];
            for c in children {
                let right = dnf(c)?;
                if out.len() * right.len() > CLAUSES {
                    return Err(too_many());
                }
                out = out.iter().flat_map(|l| right.iter().map(move |r| l.union(r).cloned().collect())).collect();
            }
            out
        }
    };
    let mut unique = Vec::with_capacity(clauses.len());
    for c in clauses {
        if c.len() > PREDICATES_PER_CLAUSE {
            return Err(too_many());
        }
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    Ok(unique)
}

fn predicate(a: &Atom) -> Predicate {
    match a {
        Atom::Is { key, value } => Predicate { attribute: SCHEMA[*key].slot, op: Op::Eq, constant: categorical(value) },
        Atom::Number { key, cmp, n } => Predicate {
            attribute: SCHEMA[*key].slot,
            op: match cmp {
                Cmp::Eq => Op::Eq,
                Cmp::Ge => Op::Ge,
                Cmp::Le => Op::Le,
            },
            constant: *n,
        },
    }
}

/// The value of each schema key in a member's attributes, refusing what the two forms
/// would read differently: a key named twice, a number that is not one, or one beyond its
/// key's width, and attributes of the reserved bit form.
fn schema_values(attributes: &AttributeSet) -> Result<[Option<&str>; SCHEMA.len()], PolicyError> {
    let mut values = [None; SCHEMA.len()];
    for a in attributes.iter() {
        if is_bit_attribute(a) {
            return fail(format!("{a} is of the form reserved for the bits of numeric keys"));
        }
        let Some((name, value)) = a.split_once(':') else { continue };
        let Some(key) = key_named(name) else { continue };
        if let Some(first) = values[key] {
            return fail(format!("{name} is certified twice ({name}:{first} and {a}); a member holds one {name}"));
        }
        if let Kind::Numeric { bits } = SCHEMA[key].kind {
            match value.parse::<u64>() {
                Ok(n) if n >> bits == 0 && value.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return fail(format!("{a}: {name} is a number below 2^{bits}")),
            }
        }
        values[key] = Some(value);
    }
    Ok(values)
}

/// Checks that a member's certified attributes read the same in both forms (see
/// [`schema_values`]); certificate issuing and the KGC call it.
pub fn check_attributes(attributes: &AttributeSet) -> Result<(), PolicyError> {
    schema_values(attributes).map(|_| ())
}

fn numeric(value: Option<&str>) -> u64 {
    value.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The credential vector the policy circuit takes, from certified attributes. An absent
/// categorical key reads 0 (no code), an absent numeric key 0.
pub fn credential_vector(attributes: &AttributeSet) -> [u64; ATTRIBUTES] {
    let mut v = [0u64; ATTRIBUTES];
    // The first value of each key where a set is invalid; issuing refuses such sets.
    let mut seen = [false; SCHEMA.len()];
    for a in attributes.iter() {
        let Some((name, value)) = a.split_once(':') else { continue };
        let Some(key) = key_named(name) else { continue };
        if std::mem::replace(&mut seen[key], true) {
            continue;
        }
        v[SCHEMA[key].slot as usize] = match SCHEMA[key].kind {
            Kind::Categorical => categorical(value),
            Kind::Numeric { .. } => numeric(Some(value)),
        };
    }
    v
}

/// The attributes a member's CP-ABE key is issued over: its certified attributes and the
/// bits of each numeric key (of 0 where it has none).
pub fn abe_key_attributes(attributes: &AttributeSet) -> Result<AttributeSet, PolicyError> {
    let values = schema_values(attributes)?;
    let mut out: Vec<String> = attributes.iter().map(str::to_owned).collect();
    for (key, value) in SCHEMA.iter().zip(values) {
        if let Kind::Numeric { bits } = key.kind {
            let n = numeric(value);
            out.extend((0..bits).map(|i| bit_attribute(key.name, i, (n >> i) & 1)));
        }
    }
    AttributeSet::new(out).map_err(|e| PolicyError(format!("the CP-ABE key's attributes: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn attrs(list: &[&str]) -> AttributeSet {
        AttributeSet::new(list.iter().copied()).unwrap()
    }

    /// Both forms' verdicts on a member.
    fn verdicts(forms: &Forms, member: &AttributeSet) -> (bool, bool) {
        let keyed = abe_key_attributes(member).unwrap();
        let list: Vec<&str> = keyed.iter().collect();
        (forms.abe.is_satisfied_by(&list), forms.dnf.is_satisfied_by(&credential_vector(member)))
    }

    #[test]
    fn a_statement_compiles_to_a_cp_abe_policy_and_a_dnf() {
        let p = AccessPolicy::parse("role:research and (dept:icu or dept:cardiology) and clearance>=3").unwrap();
        assert_eq!(p.to_string(), "role:research and (dept:icu or dept:cardiology) and clearance>=3");
        assert_eq!(AccessPolicy::parse(&p.to_string()).unwrap(), p, "the canonical text parses back");
        let forms = p.compile().unwrap();
        assert_eq!(forms.dnf.clauses().len(), 2);
        assert!(forms.dnf.clauses().iter().all(|c| c.len() == 3));
        // clearance >= 3 = 0b11: bits 0 and 1 set, every higher bit may lift it.
        let leaves = forms.abe.leaves();
        assert!(leaves.contains(&"clearance.b0:1") && leaves.contains(&"clearance.b7:1"), "{leaves:?}");
        for (member, want) in [
            (attrs(&["role:research", "dept:icu", "clearance:3"]), true),
            (attrs(&["role:research", "dept:cardiology", "clearance:200"]), true),
            (attrs(&["role:research", "dept:icu", "clearance:2"]), false),
            (attrs(&["role:research", "dept:icu"]), false),
            (attrs(&["role:clinician", "dept:icu", "clearance:9"]), false),
            (attrs(&["role:research", "dept:oncology", "clearance:9"]), false),
        ] {
            assert_eq!(verdicts(&forms, &member), (want, want), "{member:?}");
        }
    }

    /// The canonical text parenthesises `and` inside `or`, which a statement may leave to
    /// precedence: a statement whose written-out form nests deeper than the limit is
    /// refused, so every accepted statement's canonical text parses back (found by
    /// fuzzing `access_policy`).
    #[test]
    fn an_accepted_statement_stays_within_the_nesting_limit_once_written_out() {
        // `a or b and (…)` is one level of parentheses typed and two written out:
        // `a or (b and (…))`.
        let typed = |levels: usize| {
            let mut s = "role:r".to_string();
            for i in 0..levels {
                s = format!("role:r{i} or dept:d{i} and ({s})");
            }
            s
        };
        assert_eq!(
            AccessPolicy::parse(&typed(2)).unwrap().to_string(),
            "role:r1 or (dept:d1 and (role:r0 or (dept:d0 and role:r)))"
        );
        for levels in 1..=NESTING_MAX {
            match AccessPolicy::parse(&typed(levels)) {
                Ok(p) => {
                    let canonical = p.to_string();
                    assert_eq!(AccessPolicy::parse(&canonical).unwrap(), p, "{canonical}");
                }
                Err(e) => assert!(e.to_string().contains("once written out"), "{levels}: {e}"),
            }
        }
        assert!(AccessPolicy::parse(&typed(NESTING_MAX)).is_err(), "the deepest typed form nests deeper written out");
        let fuzzed = "(role:resrocearch and ((dept:rogylecearch and ((dept:rsrocearch and ((dept:roept:rsrocearch \
            and ((dept:rogylecearch and dept:rogy)or dept:icq or dept:a)) or (dept:gylecearch and dept:rogy) or \
            dept:icq or dept:a)) or dept:icu or dept:anetogy)) or dept:icq or dept:a)) or dept:icu)";
        if let Ok(p) = AccessPolicy::parse(fuzzed) {
            assert!(AccessPolicy::parse(&p.to_string()).is_ok(), "{p}");
        }
    }

    #[test]
    fn every_comparison_of_an_eight_bit_key_agrees_with_arithmetic() {
        for cmp in [Cmp::Eq, Cmp::Ge, Cmp::Le] {
            for c in 0..256u64 {
                let p = match AccessPolicy::parse(&format!("role:r and {}", Atom::Number { key: 4, cmp, n: c })) {
                    Ok(p) => p,
                    Err(e) => {
                        assert!((cmp == Cmp::Ge && c == 0) || (cmp == Cmp::Le && c == 255), "{cmp:?} {c}: {e}");
                        continue;
                    }
                };
                let forms = p.compile().unwrap();
                for v in 0..256u64 {
                    let want = match cmp {
                        Cmp::Eq => v == c,
                        Cmp::Ge => v >= c,
                        Cmp::Le => v <= c,
                    };
                    let member = attrs(&["role:r", &format!("clearance:{v}")]);
                    assert_eq!(verdicts(&forms, &member), (want, want), "clearance {v} {cmp:?} {c}");
                }
            }
        }
    }

    /// Random statements over a small universe, and random members: the CP-ABE form and
    /// the DNF agree on every one.
    #[test]
    fn the_two_forms_agree_on_every_member() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(17);
        let atom = |rng: &mut rand_chacha::ChaCha20Rng, used: &mut Vec<String>| loop {
            let a = match rng.gen_range(0..6) {
                0 => format!("role:{}", ["research", "clinician"][rng.gen_range(0..2)]),
                1 => format!("dept:{}", ["icu", "cardiology", "oncology"][rng.gen_range(0..3)]),
                2 => format!("country:{}", ["de", "fr"][rng.gen_range(0..2)]),
                3 => format!("clearance{}{}", [">=", "<=", ":"][rng.gen_range(0..3)], rng.gen_range(1..8)),
                4 => format!("training_until>={}", rng.gen_range(20_000..20_010)),
                _ => format!("institution:{}", ["a", "b"][rng.gen_range(0..2)]),
            };
            let key = a.split([':', '>', '<']).next().unwrap().to_owned();
            let numeric = key == "clearance" || key == "training_until";
            let clash = used.contains(&a) || (numeric && used.iter().any(|u| u.starts_with(&key)));
            if !clash {
                used.push(a.clone());
                return a;
            }
        };
        let mut compiled = 0;
        for _ in 0..400 {
            let mut used = Vec::new();
            let text = match rng.gen_range(0..3) {
                0 => format!(
                    "{} and ({} or {})",
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used)
                ),
                1 => format!(
                    "({} or {}) and ({} or {})",
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used)
                ),
                _ => format!(
                    "{} or ({} and {})",
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used),
                    atom(&mut rng, &mut used)
                ),
            };
            let Ok(forms) = AccessPolicy::parse(&text).unwrap().compile() else { continue };
            compiled += 1;
            for _ in 0..40 {
                let mut member = vec![];
                if rng.gen_bool(0.8) {
                    member.push(format!("role:{}", ["research", "clinician"][rng.gen_range(0..2)]));
                }
                if rng.gen_bool(0.8) {
                    member.push(format!("dept:{}", ["icu", "cardiology", "oncology"][rng.gen_range(0..3)]));
                }
                if rng.gen_bool(0.5) {
                    member.push(format!("country:{}", ["de", "fr"][rng.gen_range(0..2)]));
                }
                if rng.gen_bool(0.7) {
                    member.push(format!("clearance:{}", rng.gen_range(0..10)));
                }
                if rng.gen_bool(0.7) {
                    member.push(format!("training_until:{}", rng.gen_range(19_995..20_015)));
                }
                member.push(format!("institution:{}", ["a", "b"][rng.gen_range(0..2)]));
                let member = AttributeSet::new(member).unwrap();
                let (abe, zk) = verdicts(&forms, &member);
                assert_eq!(abe, zk, "{text} on {member:?}");
            }
        }
        assert!(compiled > 300, "only {compiled} of 400 statements compiled");
    }

    #[test]
    fn what_neither_form_can_express_is_refused_with_the_reason() {
        for (text, why) in [
            ("role:research and clearance>=0", "holds for every member"),
            ("clearance<=255", "holds for every member"),
            ("clearance>=256", "8-bit values"),
            ("clearance>=three", "decimal number"),
            ("role>=3", "categorical"),
            ("salary:high", "not a credential key"),
            ("role:research and", "unexpected end"),
            ("(role:research", "missing ')'"),
            ("role:research dept:icu", "unexpected"),
            ("role:Research", "not allowed"),
            ("(role:research and dept:icu) or (role:research and dept:cardiology)", "names role:research twice"),
            ("clearance>=2 and clearance>=5", "twice"),
            ("(dept:a or dept:b) and (country:x or country:y) and (role:p or role:q)", "beyond the policy circuit"),
            ("role:a and dept:b and country:c and institution:d and clearance>=1", "beyond the policy circuit"),
        ] {
            let err = AccessPolicy::parse(text).and_then(|p| p.compile()).expect_err(text);
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
        let deep = format!("{}role:r{}", "(".repeat(NESTING_MAX + 1), ")".repeat(NESTING_MAX + 1));
        assert!(AccessPolicy::parse(&deep).unwrap_err().to_string().contains("nested"));
        let long = vec!["role:r"; ATOMS_MAX + 1].join(" or ");
        assert!(AccessPolicy::parse(&long).unwrap_err().to_string().contains("conditions"));
    }

    #[test]
    fn attribute_sets_the_forms_would_read_differently_are_refused() {
        for (set, why) in [
            (attrs(&["role:research", "role:clinician"]), "certified twice"),
            (attrs(&["clearance:x"]), "number below"),
            (attrs(&["clearance:256"]), "number below"),
            (attrs(&["clearance.b0:1"]), "reserved"),
        ] {
            let err = check_attributes(&set).unwrap_err();
            assert!(err.to_string().contains(why), "{set:?}: {err}");
            assert!(abe_key_attributes(&set).is_err());
        }
        let ok = attrs(&["role:research", "dept:icu", "clearance:3", "training_until:20500", "badge:7"]);
        check_attributes(&ok).unwrap();
        let keyed = abe_key_attributes(&ok).unwrap();
        assert_eq!(keyed.len(), ok.len() + 8 + 16);
    }
}
