//! Go (RE2) regular expressions, as gitleaks writes them, on Rust's
//! `regex` crate.
//!
//! The two dialects agree on almost everything; [`translate`] rewrites the
//! rest so a pattern means what it means to Go:
//!
//! - `\d`, `\w`, `\s` and `\b` are ASCII in Go, Unicode-aware in Rust:
//!   they become explicit ASCII classes (and `(?-u:\b)`);
//! - a `{` that does not start a repetition (`{}`, `{,5}`, `x{a}`) is a
//!   literal in Go and an error in Rust: it is escaped;
//! - inside a class, `[` is a literal in Go but opens a nested class in
//!   Rust, and `&&`/`~~` are set operators in Rust only: they are escaped;
//! - `\Q...\E` quoting and octal escapes (`\101`) are spelled out.
//!
//! Patterns are parsed (cheap) when a config loads, so syntax errors and
//! capture-group counts are known up front, and compiled (costly) the first
//! time they are used: a rule whose keywords never occur is never compiled.

use std::sync::OnceLock;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_syntax::hir::{Capture, Class, Hir, HirKind, Repetition};

/// A pattern as written in the config, with its Rust translation.
pub struct Pattern {
    source: String,
    translated: String,
    captures: usize,
    /// The compiled regex, or why it did not compile.
    compiled: OnceLock<Result<Regex, String>>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl Clone for Pattern {
    fn clone(&self) -> Self {
        Pattern {
            source: self.source.clone(),
            translated: self.translated.clone(),
            captures: self.captures,
            compiled: self.compiled.clone(),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Largest compiled program per pattern (gitleaks' rules use bounded
/// repetitions up to `{1,1000}`).
const SIZE_LIMIT: usize = 64 << 20;

impl Pattern {
    /// Parses `source` (Go syntax); the error quotes the parser's message.
    pub fn new(source: &str) -> Result<Pattern, String> {
        let translated = translate(source);
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(&translated)
            .map_err(|e| {
                let msg = e.to_string();
                let last = msg.lines().last().unwrap_or(&msg).trim().to_string();
                format!("invalid regex {source:?}: {last}")
            })?;
        let captures = hir.properties().explicit_captures_len();
        Ok(Pattern {
            source: source.to_string(),
            translated,
            captures,
            compiled: OnceLock::new(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Number of capture groups (Go's `NumSubexp`).
    pub fn captures_len(&self) -> usize {
        self.captures
    }

    /// The compiled regex (compiled on first use). The parse in `new`
    /// accepted it, so only the size limit can fail here: such a pattern
    /// matches nothing, and [`Pattern::failure`] says why
    /// (`Config::compile_all` reports it when a config is validated; a run
    /// reports it with `Config::compile_failure`).
    pub fn regex(&self) -> &Regex {
        static NOTHING: OnceLock<Regex> = OnceLock::new();
        match self.compiled() {
            Ok(re) => re,
            Err(_) => NOTHING.get_or_init(|| Regex::new_many::<&str>(&[]).expect("empty regex")),
        }
    }

    /// Compiles now (once); the error names the pattern and the limit.
    pub fn compile(&self) -> Result<&Regex, String> {
        self.compiled().as_ref().map_err(String::clone)
    }

    fn compiled(&self) -> &Result<Regex, String> {
        self.compiled.get_or_init(|| {
            build(&self.translated)
                .map_err(|e| format!("regex {:?} does not compile: {e}", self.source))
        })
    }

    /// Why the pattern did not compile, once something tried it.
    pub fn failure(&self) -> Option<&str> {
        self.compiled.get()?.as_ref().err().map(String::as_str)
    }

    /// The translated pattern's syntax tree.
    pub fn hir(&self) -> regex_syntax::hir::Hir {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(&self.translated)
            .expect("parsed in Pattern::new")
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.regex().is_match(text)
    }
}

/// `hir` with every class whose ASCII members are one letter in both
/// cases (`(?i)k`: `k`, `K` and the Kelvin sign) written as that letter in
/// lower case: what ASCII case-insensitive comparisons see, without the
/// 2^n case variants of an n-letter word that literal extraction would
/// otherwise spell out. Non-ASCII case variants are dropped, as the
/// keyword prefilter does not see them either.
pub fn fold_ascii_case(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(class) => match ascii_letter(class) {
            Some(lower) => Hir::literal([lower]),
            None => hir.clone(),
        },
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(fold_ascii_case).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(fold_ascii_case).collect()),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(fold_ascii_case(&r.sub)),
            ..r.clone()
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(fold_ascii_case(&c.sub)),
            ..c.clone()
        }),
        _ => hir.clone(),
    }
}

/// The lower-case letter `class` stands for when its ASCII members are
/// exactly that letter's two cases.
fn ascii_letter(class: &Class) -> Option<u8> {
    let ascii: Vec<(u8, u8)> = match class {
        Class::Unicode(c) => c
            .ranges()
            .iter()
            .filter(|r| r.start().is_ascii())
            .map(|r| (r.start() as u8, r.end().min('\x7f') as u8))
            .collect(),
        Class::Bytes(c) => c
            .ranges()
            .iter()
            .filter(|r| r.start().is_ascii())
            .map(|r| (r.start(), r.end().min(0x7f)))
            .collect(),
    };
    match ascii[..] {
        [(a, a2), (b, b2)] if a == a2 && b == b2 => {
            (a.is_ascii_alphabetic() && a != b && a.eq_ignore_ascii_case(&b))
                .then(|| a.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Compiles a translated pattern the way `regex::bytes::Regex` would.
fn build(translated: &str) -> Result<Regex, String> {
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(SIZE_LIMIT))
                .utf8_empty(false),
        )
        .syntax(syntax::Config::new().utf8(false))
        .build(translated)
        .map_err(|e| e.to_string())
}

/// Joins patterns as gitleaks does for allowlists: `(?:a)|(?:b)`.
pub fn join_or(patterns: &[Pattern]) -> Option<Pattern> {
    if patterns.is_empty() {
        return None;
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{})", p.translated))
        .collect::<Vec<_>>()
        .join("|");
    Some(Pattern {
        source: patterns
            .iter()
            .map(|p| p.source.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        translated: joined,
        captures: 0,
        compiled: OnceLock::new(),
    })
}

const ASCII_WORD: &str = "0-9A-Za-z_";
const ASCII_SPACE: &str = r"\t\n\x0C\r ";

/// Rewrites a Go pattern into one Rust's `regex` reads the same way.
pub fn translate(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 16);
    let mut i = 0;
    // Inside a character class; `class_start` is the index of the first
    // member (where `]` is a literal).
    let mut in_class = false;
    let mut class_start = 0;
    // Whether the previous token can take a repetition.
    let mut can_repeat = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            i += 2;
            let class = |set: &str, negated: bool, in_class: bool| -> String {
                match (in_class, negated) {
                    (true, false) => set.to_string(),
                    (_, true) => format!("[^{set}]"),
                    (false, false) => format!("[{set}]"),
                }
            };
            match n {
                'd' => out.push_str(&class("0-9", false, in_class)),
                'D' => out.push_str(&class("0-9", true, in_class)),
                'w' => out.push_str(&class(ASCII_WORD, false, in_class)),
                'W' => out.push_str(&class(ASCII_WORD, true, in_class)),
                's' => out.push_str(&class(ASCII_SPACE, false, in_class)),
                'S' => out.push_str(&class(ASCII_SPACE, true, in_class)),
                'b' if !in_class => out.push_str(r"(?-u:\b)"),
                'B' if !in_class => out.push_str(r"(?-u:\B)"),
                'Q' => {
                    // Literal text up to \E (or the end).
                    while i < chars.len() {
                        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                            i += 2;
                            break;
                        }
                        push_literal(&mut out, chars[i], in_class);
                        i += 1;
                    }
                }
                '0'..='7' => {
                    // Octal: up to three digits (Go) → \x{..}.
                    let mut value = n.to_digit(8).unwrap_or(0);
                    let mut digits = 1;
                    while digits < 3 && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                        value = value * 8 + chars[i].to_digit(8).unwrap_or(0);
                        i += 1;
                        digits += 1;
                    }
                    out.push_str(&format!(r"\x{{{value:X}}}"));
                }
                'p' | 'P' | 'x' => {
                    out.push('\\');
                    out.push(n);
                    if chars.get(i) == Some(&'{') {
                        while i < chars.len() {
                            out.push(chars[i]);
                            i += 1;
                            if chars[i - 1] == '}' {
                                break;
                            }
                        }
                    } else if n == 'x' {
                        for _ in 0..2 {
                            if let Some(&h) = chars.get(i) {
                                out.push(h);
                                i += 1;
                            }
                        }
                    } else if let Some(&l) = chars.get(i) {
                        out.push(l);
                        i += 1;
                    }
                }
                n if n.is_ascii_alphanumeric() => {
                    out.push('\\');
                    out.push(n);
                }
                n => push_literal(&mut out, n, in_class),
            }
            can_repeat = !in_class;
            continue;
        }
        i += 1;
        if in_class {
            match c {
                ']' if i - 1 > class_start => {
                    in_class = false;
                    out.push(']');
                    can_repeat = true;
                }
                ']' => out.push_str(r"\]"),
                '[' if chars.get(i) == Some(&':') => {
                    // POSIX class [:alpha:], copied through ":]".
                    out.push('[');
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == ']' {
                            break;
                        }
                    }
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
            }
            '{' => {
                let end = repetition_end(&chars, i);
                match end {
                    Some(end) if can_repeat => {
                        out.extend(&chars[i - 1..end]);
                        i = end;
                    }
                    _ => {
                        out.push_str(r"\{");
                        can_repeat = true;
                    }
                }
            }
            '}' => {
                out.push_str(r"\}");
                can_repeat = true;
            }
            '(' | '|' => {
                out.push(c);
                can_repeat = false;
            }
            c => {
                out.push(c);
                can_repeat = !matches!(c, '^');
            }
        }
    }
    out
}

/// With `chars[start - 1] == '{'`: the index after the closing `}` when
/// `{n}`, `{n,}` or `{n,m}` follows.
fn repetition_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    if !digits(&mut i) {
        return None;
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (chars.get(i) == Some(&'}')).then_some(i + 1)
}

fn push_literal(out: &mut String, c: char, in_class: bool) {
    let meta = if in_class {
        matches!(c, '\\' | ']' | '[' | '^' | '-' | '&' | '~')
    } else {
        regex_syntax::is_meta_character(c)
    };
    if meta {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(go: &str, text: &str) -> Option<String> {
        Pattern::new(go)
            .unwrap()
            .regex()
            .find(text.as_bytes())
            .map(|m| text[m.range()].to_string())
    }

    #[test]
    fn case_folding_leaves_one_spelling_of_each_letter() {
        let folded = |go: &str| fold_ascii_case(&Pattern::new(go).unwrap().hir());
        // `k` also stands for the Kelvin sign; folded, the word is one literal.
        assert_eq!(folded("(?i)key_9"), Hir::literal(*b"key_9"));
        assert_eq!(folded("(?i)KEY"), Hir::literal(*b"key"));
        // Classes that are not one letter's two cases stay as they are.
        for go in ["[a-z]key", "[kx]", "[0-9]", "(?i)[a-c]"] {
            let hir = Pattern::new(go).unwrap().hir();
            assert_eq!(fold_ascii_case(&hir), hir, "{go}");
        }
        // Inside groups, repetitions and alternations too.
        assert_eq!(folded("(?i)(?:ab|(c)){2}"), folded("(?:ab|(c)){2}"));
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        assert_eq!(m(r"\d+", "٣٤5"), Some("5".into()));
        assert_eq!(m(r"\w+", "éab"), Some("ab".into()));
        assert_eq!(m(r"[\w.-]+", "é.a-b"), Some(".a-b".into()));
        assert_eq!(m(r"a\sb", "a\u{a0}b a b"), Some("a b".into()));
        assert_eq!(m(r"\bkey\b", "ékey"), Some("key".into()));
        assert_eq!(m(r"[^\d]+", "12ab"), Some("ab".into()));
    }

    #[test]
    fn go_literals_that_rust_rejects() {
        assert_eq!(m(r"a{", "xa{"), Some("a{".into()));
        assert_eq!(m(r"{}", "x{}"), Some("{}".into()));
        assert_eq!(m(r"x{,3}", "x{,3}"), Some("x{,3}".into()));
        assert_eq!(m(r"a{2}", "aaa"), Some("aa".into()));
        assert_eq!(m(r"a{1,}b", "aaab"), Some("aaab".into()));
        assert_eq!(m(r#"[\'\"a]+"#, "'\"a"), Some("'\"a".into()));
        assert_eq!(m(r"[[a]+", "[a"), Some("[a".into()));
        assert_eq!(m(r"[a&&b]+", "a&&b"), Some("a&&b".into()));
        assert_eq!(m(r"[]a]+", "]a"), Some("]a".into()));
        assert_eq!(m(r"\Qa.b\E", "axb a.b"), Some("a.b".into()));
        assert_eq!(m(r"\101", "A"), Some("A".into()));
        assert_eq!(m(r"[[:alpha:]]+", "ab1"), Some("ab".into()));
        assert_eq!(m(r"\x41\x{42}", "AB"), Some("AB".into()));
        assert_eq!(m(r"\/\-", "/-"), Some("/-".into()));
    }

    #[test]
    fn captures_and_errors() {
        assert_eq!(Pattern::new("(a)(?:b)(c)").unwrap().captures_len(), 2);
        let e = Pattern::new("a(b").unwrap_err();
        assert!(e.contains("a(b"), "{e}");
    }
}
