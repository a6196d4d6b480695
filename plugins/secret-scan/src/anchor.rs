//! Where a rule's matches can start, proved from its regex, and the
//! searches that use it: the same matches as `find_iter` over the whole
//! file, found by looking only near the rule's keyword occurrences (which
//! the keyword prefilter has located already).
//!
//! - [`Reach::AtKeyword`]: every match starts with one of the rule's
//!   keywords; an anchored search at each occurrence finds them all.
//! - [`Reach::NearKeyword`]: every match holds a keyword at most `lead`
//!   bytes after its start and is at most `longest` bytes long (gitleaks'
//!   `[\w.-]{0,50}?(?:lob)...` shape, 98 of its 222 rules); searching the
//!   spans that reach from `lead` bytes before each occurrence to
//!   `longest` bytes after it finds them all. Both bounds are taken from
//!   the regex as written, in bytes, so a case-insensitive letter counts 3
//!   (the Kelvin sign): wider than needed, never narrower.
//! - [`Reach::Anywhere`]: the whole file is searched.
//!
//! The proofs read the regex's prefix literals, case folded
//! ([`crate::pattern::fold_ascii_case`]) and only as long as the longest
//! keyword; a class of more than a few bytes where a keyword should be
//! ends a proof (the rule is then searched more widely: slower, never
//! wrong). Unicode case variants of ASCII letters (the Kelvin sign for
//! `k`, the long s for `s`) are not keyword occurrences, as for the
//! prefilter itself.

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, Span};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};

use crate::config::Rule;
use crate::pattern::fold_ascii_case;

/// Longest lead before a keyword that [`Reach::NearKeyword`] accepts:
/// past it the spans searched approach the whole file.
const MAX_LEAD: usize = 256;
/// Longest match that [`Reach::NearKeyword`] accepts.
const MAX_LONGEST: usize = 4096;

/// Where a rule's matches can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Anywhere: the whole file is searched.
    Anywhere,
    /// At one of the rule's keywords.
    AtKeyword,
    /// At most `lead` bytes before one of its keywords, and a match is at
    /// most `longest` bytes long.
    NearKeyword {
        /// Bytes a match may have before its keyword.
        lead: usize,
        /// Bytes a match may have in all.
        longest: usize,
    },
}

impl Reach {
    /// What the rule's regex proves (gitleaks' 222 rules: 13 ms natively).
    pub fn of(rule: &Rule) -> Reach {
        let Some(re) = &rule.regex else {
            return Reach::Anywhere;
        };
        if rule.keywords.is_empty() {
            return Reach::Anywhere;
        }
        // Keywords are compared case folded; lengths are the regex's as
        // written (folding writes the 3-byte Kelvin sign's class as `k`).
        let hir = re.hir();
        if starts_with_keyword(&fold_ascii_case(&hir), &rule.keywords) {
            return Reach::AtKeyword;
        }
        let props = hir.properties();
        let (Some(longest), Some(1..)) = (props.maximum_len(), props.minimum_len()) else {
            return Reach::Anywhere;
        };
        if longest > MAX_LONGEST {
            return Reach::Anywhere;
        }
        let HirKind::Concat(parts) = hir.kind() else {
            return Reach::Anywhere;
        };
        let mut lead = 0;
        for (i, part) in parts.iter().enumerate().take(parts.len() - 1) {
            match part.properties().maximum_len() {
                Some(n) if lead + n <= MAX_LEAD => lead += n,
                _ => return Reach::Anywhere,
            }
            let rest = fold_ascii_case(&Hir::concat(parts[i + 1..].to_vec()));
            if starts_with_keyword(&rest, &rule.keywords) {
                return Reach::NearKeyword { lead, longest };
            }
        }
        Reach::Anywhere
    }

    /// Whether the search needs the rule's keyword occurrences.
    pub fn needs_occurrences(self) -> bool {
        self != Reach::Anywhere
    }
}

/// Whether every match of `hir` (case folded) starts with one of
/// `keywords`, ASCII case-insensitively.
fn starts_with_keyword(hir: &Hir, keywords: &[String]) -> bool {
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(8)
        .limit_repeat(16)
        // Only the first bytes are compared with the keywords.
        .limit_literal_len(keywords.iter().map(String::len).max().unwrap_or(0).max(1))
        .limit_total(20_000);
    let seq = extractor.extract(hir);
    let Some(literals) = seq.literals() else {
        return false;
    };
    let mut ascii = 0;
    for lit in literals {
        let bytes = lit.as_bytes();
        if !bytes.is_ascii() {
            continue;
        }
        ascii += 1;
        let starts = keywords
            .iter()
            .any(|k| bytes.len() >= k.len() && bytes[..k.len()].eq_ignore_ascii_case(k.as_bytes()));
        if !starts {
            return false;
        }
    }
    ascii > 0
}

/// The leftmost-first, non-overlapping matches of `re` in `text` (what
/// `find_iter` gives) for a rule of `reach`, given the sorted starts of
/// its keyword occurrences.
pub fn find(re: &Regex, text: &[u8], reach: Reach, starts: &[usize]) -> Vec<Span> {
    match reach {
        Reach::Anywhere => re.find_iter(text).map(|m| m.span()).collect(),
        Reach::AtKeyword => at_keywords(re, text, starts),
        Reach::NearKeyword { lead, longest } => near_keywords(re, text, starts, lead, longest),
    }
}

/// An anchored search at each occurrence.
fn at_keywords(re: &Regex, text: &[u8], starts: &[usize]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut next = 0;
    for &start in starts {
        if start < next {
            continue;
        }
        let input = Input::new(text)
            .span(start..text.len())
            .anchored(Anchored::Yes);
        if let Some(m) = re.search(&input) {
            next = m.end().max(m.start() + 1);
            out.push(m.span());
        }
    }
    out
}

/// Matches start only in `[p - lead, p]` for an occurrence at `p`, so in
/// the union of those windows; one that starts in a window `[a, b]` ends
/// by `b + longest`. Each merged window is searched (look-arounds still
/// see the whole text) for the leftmost match starting in it, again from
/// that match's end, until none starts in it: exactly the whole file's
/// matches, as none can start between windows. Matches are never empty
/// ([`Reach::of`]).
fn near_keywords(
    re: &Regex,
    text: &[u8],
    starts: &[usize],
    lead: usize,
    longest: usize,
) -> Vec<Span> {
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for &p in starts {
        let a = p.saturating_sub(lead);
        match windows.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(p),
            _ => windows.push((a, p)),
        }
    }
    let mut out = Vec::new();
    let mut next = 0;
    for (a, b) in windows {
        let mut from = a.max(next);
        while from <= b {
            let end = text.len().min(b + longest);
            let input = Input::new(text).span(from..end);
            match re.search(&input) {
                Some(m) if m.start() <= b => {
                    next = m.end().max(m.start() + 1);
                    from = next;
                    out.push(m.span());
                }
                _ => break,
            }
        }
    }
    out
}
