//! Access policies over certified attributes: `role:research and (dept:cardiology or
//! dept:oncology)`.
//!
//! Grammar (our own, parsed before anything reaches the ABE library):
//!
//! ```text
//! policy := or
//! or     := and ( ("or" | "OR") and )*
//! and    := atom ( ("and" | "AND") atom )*
//! atom   := attribute | "\"" attribute "\"" | "(" or ")"
//! ```
//!
//! `and` binds tighter than `or`. Attributes are identifiers (`a-z 0-9 . _ : -`).
//! Parsing is bounded (length, leaves, nesting), and the result is normalised to a
//! **binary** tree: flat n-ary AND/OR chains are rebalanced into nested two-input gates,
//! because rabe's AC17 panics on a flat gate of more than two inputs. The canonical text of
//! a policy (`("a" and ("b" or "c"))`) is what the ABE scheme sees and what is hashed.

use crate::encoding::check_ident;
use crate::error::CryptoError;

/// Longest accepted policy text.
pub const POLICY_TEXT_LEN_MAX: usize = 4096;
/// Most attribute leaves in one policy.
pub const POLICY_LEAVES_MAX: usize = 64;
/// Deepest parenthesis nesting accepted while parsing.
pub const POLICY_NESTING_MAX: usize = 16;

/// A normalised access policy: a binary tree of AND/OR gates over attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Policy {
    Attr(String),
    And(Box<Policy>, Box<Policy>),
    Or(Box<Policy>, Box<Policy>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    And,
    Or,
}

/// Parse tree before normalisation.
enum Node {
    Attr(String),
    Gate(Gate, Vec<Node>),
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Attr(String),
}

fn err(msg: impl Into<String>) -> CryptoError {
    CryptoError::Abe(format!("invalid policy: {}", msg.into()))
}

fn tokenize(text: &str) -> Result<Vec<Token>, CryptoError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        match c {
            c if c.is_ascii_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, ch)) => word.push(ch),
                        None => return Err(err(format!("unterminated quote at byte {pos}"))),
                    }
                }
                check_ident("policy attribute", &word)?;
                tokens.push(Token::Attr(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, ch)) = chars.peek() {
                    if ch.is_ascii_whitespace() || matches!(ch, '(' | ')' | '"') {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
                tokens.push(match word.as_str() {
                    "and" | "AND" => Token::And,
                    "or" | "OR" => Token::Or,
                    _ => {
                        check_ident("policy attribute", &word)?;
                        Token::Attr(word)
                    }
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    leaves: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn gate(&mut self, gate: Gate, depth: usize) -> Result<Node, CryptoError> {
        let (op, sub) = match gate {
            Gate::Or => (Token::Or, Gate::And),
            Gate::And => (Token::And, Gate::Or),
        };
        let parse_child = |p: &mut Self| if gate == Gate::Or { p.gate(sub, depth) } else { p.atom(depth) };
        let mut children = vec![parse_child(self)?];
        while self.peek() == Some(&op) {
            self.pos += 1;
            children.push(parse_child(self)?);
        }
        Ok(if children.len() == 1 { children.pop().expect("one child") } else { Node::Gate(gate, children) })
    }

    fn atom(&mut self, depth: usize) -> Result<Node, CryptoError> {
        match self.tokens.get(self.pos) {
            Some(Token::Attr(a)) => {
                let a = a.clone();
                self.pos += 1;
                self.leaves += 1;
                if self.leaves > POLICY_LEAVES_MAX {
                    return Err(err(format!("more than {POLICY_LEAVES_MAX} attributes")));
                }
                Ok(Node::Attr(a))
            }
            Some(Token::Open) => {
                if depth >= POLICY_NESTING_MAX {
                    return Err(err(format!("parentheses nested deeper than {POLICY_NESTING_MAX}")));
                }
                self.pos += 1;
                let inner = self.gate(Gate::Or, depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(err("missing ')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(t) => Err(err(format!("unexpected {t:?} at token {}", self.pos))),
            None => Err(err("unexpected end of policy")),
        }
    }
}

/// Flattens nested gates of the same kind, then rebuilds them as a balanced binary tree.
fn normalise(node: Node) -> Policy {
    match node {
        Node::Attr(a) => Policy::Attr(a),
        Node::Gate(gate, children) => {
            let mut flat = Vec::new();
            flatten(gate, children, &mut flat);
            balanced(gate, flat)
        }
    }
}

fn flatten(gate: Gate, children: Vec<Node>, out: &mut Vec<Policy>) {
    for child in children {
        match child {
            Node::Gate(g, grand) if g == gate => flatten(gate, grand, out),
            other => out.push(normalise(other)),
        }
    }
}

fn balanced(gate: Gate, mut items: Vec<Policy>) -> Policy {
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    let right = items.split_off(items.len() / 2);
    let (l, r) = (Box::new(balanced(gate, items)), Box::new(balanced(gate, right)));
    match gate {
        Gate::And => Policy::And(l, r),
        Gate::Or => Policy::Or(l, r),
    }
}

impl Policy {
    /// Parses and normalises a policy text.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        if text.len() > POLICY_TEXT_LEN_MAX {
            return Err(err(format!("longer than {POLICY_TEXT_LEN_MAX} bytes")));
        }
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, pos: 0, leaves: 0 };
        let node = p.gate(Gate::Or, 0)?;
        if p.pos != p.tokens.len() {
            return Err(err(format!("unexpected {:?} at token {}", p.tokens[p.pos], p.pos)));
        }
        let policy = normalise(node);
        // The canonical text is what a ciphertext carries and its decoder parses again, so
        // it must fit the same bounds as the text it came from: quoting, parenthesising and
        // rebalancing flat chains make it longer and nest it deeper.
        let len = policy.canonical().len();
        if len > POLICY_TEXT_LEN_MAX {
            return Err(err(format!("its canonical form is {len} bytes, longer than {POLICY_TEXT_LEN_MAX}")));
        }
        let depth = policy.gate_depth();
        if depth > POLICY_NESTING_MAX {
            return Err(err(format!(
                "its canonical form nests {depth} binary gates, deeper than {POLICY_NESTING_MAX} (use fewer levels \
                 of parentheses or shorter chains)"
            )));
        }
        Ok(policy)
    }

    /// Gates on the longest path from the root: the parenthesis nesting of the canonical text.
    fn gate_depth(&self) -> usize {
        match self {
            Policy::Attr(_) => 0,
            Policy::And(l, r) | Policy::Or(l, r) => 1 + l.gate_depth().max(r.gate_depth()),
        }
    }

    /// The canonical text: every attribute quoted, every gate parenthesised, binary.
    pub fn canonical(&self) -> String {
        match self {
            Policy::Attr(a) => format!("\"{a}\""),
            Policy::And(l, r) => format!("({} and {})", l.canonical(), r.canonical()),
            Policy::Or(l, r) => format!("({} or {})", l.canonical(), r.canonical()),
        }
    }

    /// Attribute leaves, left to right.
    pub fn leaves(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Policy::Attr(a) => out.push(a),
            Policy::And(l, r) | Policy::Or(l, r) => {
                l.collect(out);
                r.collect(out);
            }
        }
    }

    /// Whether a set of attributes satisfies the policy.
    pub fn is_satisfied_by(&self, attrs: &[&str]) -> bool {
        match self {
            Policy::Attr(a) => attrs.contains(&a.as_str()),
            Policy::And(l, r) => l.is_satisfied_by(attrs) && r.is_satisfied_by(attrs),
            Policy::Or(l, r) => l.is_satisfied_by(attrs) || r.is_satisfied_by(attrs),
        }
    }

    /// Policy hash `SHA-256(DST ‖ canonical text)`, as pinned in dataset registrations.
    pub fn hash(&self) -> [u8; 32] {
        crate::hash::digest("abe-policy", &crate::hash::Transcript::new().part(self.canonical().as_bytes()))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_normalisation() {
        let p = Policy::parse("role:research and (dept:cardiology or dept:oncology)").unwrap();
        assert_eq!(p.canonical(), r#"("role:research" and ("dept:cardiology" or "dept:oncology"))"#);
        let p = Policy::parse("a or b and c").unwrap();
        assert_eq!(p.canonical(), r#"("a" or ("b" and "c"))"#);
        // A flat chain of five becomes a balanced binary tree.
        let p = Policy::parse("a and b and c and d and e").unwrap();
        assert_eq!(p.canonical(), r#"(("a" and "b") and ("c" and ("d" and "e")))"#);
        // Re-parsing the canonical text is a fixed point.
        assert_eq!(Policy::parse(&p.canonical()).unwrap(), p);
        assert_eq!(Policy::parse("\"x\"").unwrap(), Policy::Attr("x".into()));
    }

    #[test]
    fn evaluation() {
        let p = Policy::parse("role:research and (dept:cardiology or dept:oncology)").unwrap();
        assert!(p.is_satisfied_by(&["role:research", "dept:oncology"]));
        assert!(!p.is_satisfied_by(&["role:research"]));
        assert!(!p.is_satisfied_by(&["dept:oncology", "dept:cardiology"]));
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        for bad in [
            "",
            "and",
            "a and",
            "(a",
            "a)",
            "a b",
            "\"a",
            "A",
            "a or (b and)",
            "a & b",
            "(((((((((((((((((a)))))))))))))))))",
            "a\u{0}b",
        ] {
            let e = Policy::parse(bad).unwrap_err();
            assert!(e.to_string().contains("policy"), "{bad:?}: {e}");
        }
        let many = (0..=POLICY_LEAVES_MAX).map(|i| format!("a{i}")).collect::<Vec<_>>().join(" or ");
        assert!(Policy::parse(&many).is_err());
        assert!(Policy::parse(&"a ".repeat(POLICY_TEXT_LEN_MAX)).is_err());
    }

    /// Found with the `abe_policy` fuzz target's check that an accepted policy's canonical text
    /// parses back: a text within the bounds whose canonical form exceeds them (longer once
    /// quoted and parenthesised, or nested deeper once flat chains are made binary) was
    /// accepted, and ciphertexts under it, which carry the canonical text, failed to decode.
    #[test]
    fn every_accepted_policy_has_a_canonical_text_that_parses_back() {
        // 64 leaves of 60 bytes under one OR: 4092 bytes as written, 4346 canonical.
        let long =
            (0..POLICY_LEAVES_MAX).map(|i| format!("n{i:02}{}", "x".repeat(57))).collect::<Vec<_>>().join(" or ");
        assert!(long.len() <= POLICY_TEXT_LEN_MAX);
        let e = Policy::parse(&long).unwrap_err();
        assert!(e.to_string().contains("canonical form"), "{e}");
        // 15 levels of parentheses, each a chain of three: about twice as many binary gates.
        let mut deep = "a or b or c".to_string();
        for k in 0..15 {
            let g = if k % 2 == 0 { "and" } else { "or" };
            deep = format!("({deep}) {g} x{k} {g} y{k}");
        }
        let e = Policy::parse(&deep).unwrap_err();
        assert!(e.to_string().contains("nests"), "{e}");
        // The fuzzer's own input: two levels of parentheses around long AND chains.
        let found = concat!(
            "a666666666666 and (c or d) and 6663 and (c or d) and 666333 and 366666666666 and (c or d) ",
            "and 66636666666666 and (c or d) and 666333 and 3 and (66666666666 and (c or d) and 7429 ",
            "and (c or d) and 666333 and 366333333333 and (c or d) and 6663666666666 and (c666333 and ",
            "3 and (66666666666 and (c or d) and 7429 and (c or d) and 666333 and 366333333333 and (c ",
            "or d) and 6663666666666 and (c or d) and 6663c or d)  or d) and 6663c or d)",
        );
        let e = Policy::parse(found).unwrap_err();
        assert!(e.to_string().contains("nests"), "{e}");
        // At the bounds, the canonical text parses back to the same policy: 16 alternating
        // gates (as written and canonical) and 64 leaves.
        let mut chain = "a0".to_string();
        for i in 1..=POLICY_NESTING_MAX {
            chain = format!("a{i} {} ({chain})", if i % 2 == 0 { "and" } else { "or" });
        }
        assert_eq!(Policy::parse(&chain).unwrap().gate_depth(), POLICY_NESTING_MAX);
        let wide = (0..POLICY_LEAVES_MAX).map(|i| format!("a{i}")).collect::<Vec<_>>().join(" or ");
        for text in [chain, wide] {
            let p = Policy::parse(&text).unwrap();
            assert_eq!(Policy::parse(&p.canonical()).unwrap(), p, "{text}");
        }
    }
}
