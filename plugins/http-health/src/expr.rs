//! Arithmetic rules over named numbers: `errors / total > 0.01`,
//! `blocked / (allowed + blocked) >= 0.05`, `failures > 3 * avg(failures)`.
//!
//! Grammar: a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`) between two sums
//! of products of numbers, names, `avg(name)` and parenthesised
//! expressions. Division by zero yields no value (the rule is not met).

use std::collections::BTreeMap;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    left: Node,
    op: &'static str,
    right: Node,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Var(String),
    Avg(String),
    Bin(Box<Node>, char, Box<Node>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("rule {:?}: {what} at column {}", self.text, self.i + 1)
    }

    fn sum(&mut self) -> Result<Node, String> {
        let mut n = self.product()?;
        loop {
            self.ws();
            match self.s.get(self.i) {
                Some(&c @ (b'+' | b'-')) => {
                    self.i += 1;
                    let r = self.product()?;
                    n = Node::Bin(Box::new(n), c as char, Box::new(r));
                }
                _ => return Ok(n),
            }
        }
    }

    fn product(&mut self) -> Result<Node, String> {
        let mut n = self.atom()?;
        loop {
            self.ws();
            match self.s.get(self.i) {
                Some(&c @ (b'*' | b'/')) => {
                    self.i += 1;
                    let r = self.atom()?;
                    n = Node::Bin(Box::new(n), c as char, Box::new(r));
                }
                _ => return Ok(n),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn atom(&mut self) -> Result<Node, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'(') => {
                self.i += 1;
                let n = self.sum()?;
                self.ws();
                if self.s.get(self.i) != Some(&b')') {
                    return Err(self.err("expected )"));
                }
                self.i += 1;
                Ok(n)
            }
            Some(c) if c.is_ascii_digit() || *c == b'.' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.')
                {
                    self.i += 1;
                }
                let t = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                t.parse().map(Node::Num).map_err(|_| self.err("bad number"))
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let name = self.ident();
                self.ws();
                if name == "avg" && self.s.get(self.i) == Some(&b'(') {
                    self.i += 1;
                    self.ws();
                    let inner = self.ident();
                    self.ws();
                    if inner.is_empty() || self.s.get(self.i) != Some(&b')') {
                        return Err(self.err("avg() takes one name"));
                    }
                    self.i += 1;
                    return Ok(Node::Avg(inner));
                }
                Ok(Node::Var(name))
            }
            _ => Err(self.err("expected a number, a name or (")),
        }
    }
}

impl Rule {
    /// Parses a rule; errors name the rule and the column.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            text,
        };
        let left = p.sum()?;
        p.ws();
        let rest = &text[p.i..];
        let op = ["<=", ">=", "==", "!=", "<", ">"]
            .into_iter()
            .find(|o| rest.starts_with(o))
            .ok_or_else(|| p.err("expected a comparison (<, <=, >, >=, ==, !=)"))?;
        p.i += op.len();
        let right = p.sum()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("unexpected text"));
        }
        Ok(Rule {
            left,
            op,
            right,
            text: text.to_string(),
        })
    }

    /// Names the rule reads (for validation against the defined values).
    pub fn names(&self) -> Vec<String> {
        fn walk(n: &Node, out: &mut Vec<String>) {
            match n {
                Node::Var(v) | Node::Avg(v) => out.push(v.clone()),
                Node::Bin(a, _, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Node::Num(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.left, &mut out);
        walk(&self.right, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Evaluates with current values and averages; `None` when a value is
    /// missing or a division by zero happens. Returns (holds, left value).
    pub fn eval(
        &self,
        values: &BTreeMap<String, f64>,
        averages: &BTreeMap<String, f64>,
    ) -> Option<(bool, f64)> {
        fn val(n: &Node, v: &BTreeMap<String, f64>, a: &BTreeMap<String, f64>) -> Option<f64> {
            match n {
                Node::Num(x) => Some(*x),
                Node::Var(name) => v.get(name).copied(),
                Node::Avg(name) => a.get(name).copied(),
                Node::Bin(l, op, r) => {
                    let (l, r) = (val(l, v, a)?, val(r, v, a)?);
                    match op {
                        '+' => Some(l + r),
                        '-' => Some(l - r),
                        '*' => Some(l * r),
                        _ if r == 0.0 => None,
                        _ => Some(l / r),
                    }
                }
            }
        }
        let l = val(&self.left, values, averages)?;
        let r = val(&self.right, values, averages)?;
        let holds = match self.op {
            "<" => l < r,
            "<=" => l <= r,
            ">" => l > r,
            ">=" => l >= r,
            "==" => l == r,
            _ => l != r,
        };
        Some((holds, l))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn rules_evaluate() {
        let v = vals(&[
            ("errors", 3.0),
            ("total", 100.0),
            ("blocked", 6.0),
            ("allowed", 94.0),
        ]);
        let a = vals(&[("errors", 0.5)]);
        let r = Rule::parse("errors / total > 0.01").unwrap();
        assert_eq!(r.eval(&v, &a), Some((true, 0.03)));
        assert!(
            Rule::parse("blocked / (allowed + blocked) >= 0.05")
                .unwrap()
                .eval(&v, &a)
                .unwrap()
                .0
        );
        assert!(
            Rule::parse("errors > 3 * avg(errors)")
                .unwrap()
                .eval(&v, &a)
                .unwrap()
                .0
        );
        assert!(
            !Rule::parse("errors - 3 != 0")
                .unwrap()
                .eval(&v, &a)
                .unwrap()
                .0
        );
        assert_eq!(Rule::parse("errors / zero > 1").unwrap().eval(&v, &a), None);
        assert_eq!(
            Rule::parse("errors / (total - 100) > 1")
                .unwrap()
                .eval(&v, &a),
            None
        );
        assert_eq!(Rule::parse("a / b > 1").unwrap().names(), vec!["a", "b"]);
    }

    #[test]
    fn bad_rules_are_named() {
        for bad in [
            "errors / total",
            "errors >",
            "(a > 1",
            "a > 1 b",
            "avg() > 1",
        ] {
            let e = Rule::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_rule_or_an_error(s in "\\PC{0,60}") {
            let _ = Rule::parse(&s);
        }

        #[test]
        fn rule_like_text_is_a_rule_or_an_error(s in "[a-z0-9_ ().*/+<>=!-]{0,20}[\\PC]{0,4}[a-z0-9_ ().*/+<>=!-]{0,20}") {
            let _ = Rule::parse(&s);
        }
    }
}
