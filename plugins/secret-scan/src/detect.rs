//! Detection in one file's bytes, with gitleaks' semantics.
//!
//! For each file:
//!
//! 1. a global allowlist whose paths match skips the file;
//! 2. one Aho-Corasick pass (ASCII case-insensitive) finds which rule
//!    keywords occur; a rule runs when one of its keywords occurs or it
//!    has none;
//! 3. per rule: its allowlists' commit/path checks, its `path` (a
//!    path-only rule reports the file itself), then every regex match:
//!    the line containing `gitleaks:allow` is skipped, the secret is the
//!    `secretGroup` (or the first non-empty group), the entropy must
//!    exceed the rule's threshold, then the global allowlists and the
//!    rule's allowlists (in that order) may allow it;
//! 4. the file is decoded ([`crate::decode`]) and steps 2–3 run again on
//!    the decoded text, for the matches that touch decoded runs, up to
//!    `max_decode_depth` times;
//! 5. a finding of a rule whose id contains `generic` is dropped when a
//!    specific rule found a secret containing it on the same line, or (not
//!    in gitleaks, which reports both; [`Detector::gitleaks_dedup`] turns
//!    it off) on a line its multi-line match spans, or found a secret in
//!    decoded text encoded inside its match.
//!
//! Line and column numbers are 1-based; columns count bytes.

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind, StartKind, dfa::DFA};
use memchr::memmem;
use regex_automata::meta::Regex;
use regex_automata::{Input, Span};

use crate::anchor::{self, Reach};
use crate::config::{Allowlist, Condition, Config, RegexTarget, Rule};
use crate::decode::{self, Decoding};

/// The inline marker that allows a line.
pub const ALLOW_MARKER: &[u8] = b"gitleaks:allow";

/// A secret found in a file (the secret in clear: callers redact).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Rule id.
    pub rule: String,
    /// 1-based line of the match's start.
    pub line: usize,
    /// 1-based line of the match's end.
    pub end_line: usize,
    /// 1-based byte column of the match's start.
    pub column: usize,
    /// 1-based byte column of the match's last byte.
    pub end_column: usize,
    /// The match (newlines trimmed).
    pub matched: String,
    /// The secret.
    pub secret: String,
    /// Shannon entropy of the secret.
    pub entropy: f32,
    /// Found in decoded text: gitleaks' `decoded:KIND` and
    /// `decode-depth:N` tags (the location is the encoded text's).
    pub decoded: Vec<String>,
}

/// Where detection time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Reading files (and their metadata).
    pub read: std::time::Duration,
    /// The keyword prefilter.
    pub prefilter: std::time::Duration,
    /// Running the rules' regexes and checks.
    pub rules: std::time::Duration,
    /// Finding and decoding encoded text.
    pub decode: std::time::Duration,
}

/// A compiled configuration ready to scan.
pub struct Detector {
    config: Config,
    keywords: Option<DFA>,
    /// Per keyword (pattern id): the rules that list it.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules that run on every file.
    always: Vec<usize>,
    /// Keyword lengths (by pattern id).
    keyword_len: Vec<usize>,
    /// Keywords whose occurrences the rules' searches need.
    keyword_anchors: Vec<bool>,
    /// Per rule: where its matches can start.
    reach: Vec<Reach>,
    ignore_allow_marker: bool,
    max_decode_depth: usize,
    dedup_decoded: bool,
    allow_marker: memmem::Finder<'static>,
}

impl Detector {
    /// Builds the keyword automaton for `config`.
    pub fn new(config: Config) -> Detector {
        let keywords: Vec<String> = config.keywords.iter().cloned().collect();
        let mut keyword_rules = vec![Vec::new(); keywords.len()];
        let mut always = Vec::new();
        for (ri, rule) in config.rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(ri);
            }
            for k in &rule.keywords {
                if let Ok(ki) = keywords.binary_search(k) {
                    keyword_rules[ki].push(ri);
                }
            }
        }
        // A DFA stepped by hand (see `detect_timed`): every keyword
        // occurrence, overlapping ones included, at the cost of one table
        // look-up per byte.
        let automaton = (!keywords.is_empty()).then(|| {
            DFA::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Unanchored)
                .build(&keywords)
                .expect("keywords build an automaton")
        });
        let reach: Vec<Reach> = config.rules.iter().map(Reach::of).collect();
        let keyword_anchors = keyword_rules
            .iter()
            .map(|rules| rules.iter().any(|&ri| reach[ri].needs_occurrences()))
            .collect();
        Detector {
            keyword_len: keywords.iter().map(String::len).collect(),
            config,
            keywords: automaton,
            keyword_rules,
            always,
            keyword_anchors,
            reach,
            ignore_allow_marker: false,
            max_decode_depth: decode::DEFAULT_MAX_DEPTH,
            dedup_decoded: true,
            allow_marker: memmem::Finder::new(ALLOW_MARKER),
        }
    }

    /// Ignores `gitleaks:allow` markers (gitleaks' `--ignore-gitleaks-allow`).
    pub fn ignore_allow_marker(mut self, yes: bool) -> Detector {
        self.ignore_allow_marker = yes;
        self
    }

    /// Decodes and scans again up to `depth` times (gitleaks'
    /// `--max-decode-depth`; default 5, 0 turns decoding off).
    pub fn max_decode_depth(mut self, depth: usize) -> Detector {
        self.max_decode_depth = depth;
        self
    }

    /// Keeps a generic finding whose match holds the encoded text of a
    /// specific finding in decoded text, as gitleaks does (two findings
    /// for one secret: the encoded value, and what it decodes to).
    pub fn gitleaks_dedup(mut self) -> Detector {
        self.dedup_decoded = false;
        self
    }

    /// Scans every active rule's regex over the whole file, as gitleaks
    /// does, instead of searching only at keyword occurrences. The results
    /// are the same (the tests hold them to it); this is slower.
    pub fn without_anchoring(mut self) -> Detector {
        self.reach.iter_mut().for_each(|r| *r = Reach::Anywhere);
        self.keyword_anchors.iter_mut().for_each(|a| *a = false);
        self
    }

    /// Ids of the rules searched only at their keyword occurrences.
    pub fn anchored_rules(&self) -> Vec<&str> {
        self.rules_reaching(|r| r == Reach::AtKeyword)
    }

    /// Ids of the rules searched only near their keyword occurrences.
    pub fn near_keyword_rules(&self) -> Vec<&str> {
        self.rules_reaching(|r| matches!(r, Reach::NearKeyword { .. }))
    }

    fn rules_reaching(&self, pick: impl Fn(Reach) -> bool) -> Vec<&str> {
        self.config
            .rules
            .iter()
            .zip(&self.reach)
            .filter(|(_, r)| pick(**r))
            .map(|(r, _)| r.id.as_str())
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a global allowlist skips the whole file at `path`.
    pub fn path_allowed(&self, path: &str) -> bool {
        skips_file(
            &self.config.allowlists,
            &path_matches(&self.config.allowlists, path),
        )
    }

    /// The findings in `data`, the content of the file at `path` (the path
    /// rules and allowlists see).
    pub fn detect(&self, path: &str, data: &[u8]) -> Vec<Hit> {
        self.detect_timed(path, data, &mut Timings::default())
    }

    /// [`Detector::detect`], adding the time spent to `t`.
    pub fn detect_timed(&self, path: &str, data: &[u8], t: &mut Timings) -> Vec<Hit> {
        // Path checks of the global allowlists, once per file.
        let global_paths = path_matches(&self.config.allowlists, path);
        if skips_file(&self.config.allowlists, &global_paths) {
            return Vec::new();
        }
        let mut lines = Lines::new(data);
        let mut hits = Vec::new();
        let file = File {
            path,
            data,
            global_paths: &global_paths,
        };
        self.pass(&file, data, None, &mut lines, &mut hits, t);
        let mut decoding = Decoding::new();
        let mut text = std::borrow::Cow::Borrowed(data);
        for _ in 0..self.max_decode_depth {
            let t0 = std::time::Instant::now();
            let next = decoding.next(&text);
            t.decode += t0.elapsed();
            let Some(next) = next else { break };
            text = std::borrow::Cow::Owned(next);
            self.pass(&file, &text, Some(&decoding), &mut lines, &mut hits, t);
        }
        dedup_generic(hits, self.dedup_decoded)
    }

    /// One pass of the rules over `text`: the file's bytes, or (with
    /// `decoding`) its latest decoding.
    fn pass(
        &self,
        file: &File<'_>,
        text: &[u8],
        decoding: Option<&Decoding>,
        lines: &mut Lines<'_>,
        hits: &mut Vec<Hit>,
        t: &mut Timings,
    ) {
        let t0 = std::time::Instant::now();
        let mut active = vec![false; self.config.rules.len()];
        for &ri in &self.always {
            active[ri] = true;
        }
        let mut anchors = Vec::new();
        if let Some(dfa) = &self.keywords {
            self.activate(dfa, text, &mut active, &mut anchors);
        }
        let t1 = std::time::Instant::now();
        t.prefilter += t1 - t0;
        let ctx = FileCtx {
            file,
            text,
            decoding,
            anchors: &anchors,
        };
        for (ri, rule) in self.config.rules.iter().enumerate() {
            if active[ri] {
                self.detect_rule(ri, rule, &ctx, lines, hits);
            }
        }
        t.rules += t1.elapsed();
    }

    /// Marks the rules whose keywords occur in `data`, and collects
    /// `(keyword, start)` of every occurrence the rules' searches need.
    fn activate(
        &self,
        dfa: &DFA,
        data: &[u8],
        active: &mut [bool],
        anchors: &mut Vec<(usize, usize)>,
    ) {
        let mut seen = vec![false; self.keyword_rules.len()];
        // Without rules that need occurrences the scan may stop once
        // every keyword has been seen.
        let mut left = if self.keyword_anchors.iter().any(|&a| a) {
            usize::MAX
        } else {
            seen.len()
        };
        let Ok(mut sid) = dfa.start_state(Anchored::No) else {
            return;
        };
        let mut on_match = |sid, end: usize| {
            for i in 0..dfa.match_len(sid) {
                let ki = dfa.match_pattern(sid, i).as_usize();
                if self.keyword_anchors[ki] {
                    anchors.push((ki, end + 1 - self.keyword_len[ki]));
                }
                if !seen[ki] {
                    seen[ki] = true;
                    for &ri in &self.keyword_rules[ki] {
                        active[ri] = true;
                    }
                    left = left.saturating_sub(1);
                }
            }
            left == 0
        };
        // Eight bytes per iteration: fewer loop back-edges, which in the
        // sandbox each carry an interruption check.
        let (chunks, rest) = data.as_chunks::<8>();
        for (c, chunk) in chunks.iter().enumerate() {
            for (j, &b) in chunk.iter().enumerate() {
                sid = dfa.next_state(Anchored::No, sid, b);
                if dfa.is_special(sid) && dfa.is_match(sid) && on_match(sid, c * 8 + j) {
                    return;
                }
            }
        }
        let base = chunks.len() * 8;
        for (j, &b) in rest.iter().enumerate() {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) && on_match(sid, base + j) {
                return;
            }
        }
    }

    /// The rule's matches in `data`, leftmost-first and non-overlapping
    /// (what `find_iter` gives), searched only at or near the rule's
    /// keyword occurrences where its regex allows ([`crate::anchor`]).
    fn matches(&self, ri: usize, re: &Regex, ctx: &FileCtx<'_>) -> Vec<Span> {
        let reach = self.reach[ri];
        let mut starts: Vec<usize> = ctx
            .anchors
            .iter()
            .filter(|(ki, _)| reach.needs_occurrences() && self.keyword_rules[*ki].contains(&ri))
            .map(|&(_, start)| start)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        anchor::find(re, ctx.text, reach, &starts)
    }

    fn detect_rule(
        &self,
        ri: usize,
        rule: &Rule,
        ctx: &FileCtx<'_>,
        lines: &mut Lines<'_>,
        hits: &mut Vec<Hit>,
    ) {
        let (path, data, global_paths) = (ctx.file.path, ctx.file.data, ctx.file.global_paths);
        let rule_paths = path_matches(&rule.allowlists, path);
        if skips_file(&rule.allowlists, &rule_paths) {
            return;
        }
        if let Some(p) = &rule.path {
            let matches = p.is_match(path.as_bytes());
            if rule.regex.is_none() {
                // A path-only rule reports the file once, in the first pass.
                if matches && ctx.decoding.is_none() {
                    hits.push(Hit {
                        rule: rule.id.clone(),
                        line: 0,
                        end_line: 0,
                        column: 0,
                        end_column: 0,
                        matched: format!("file detected: {path}"),
                        secret: String::new(),
                        entropy: 0.0,
                        decoded: Vec::new(),
                    });
                }
                return;
            }
            if !matches {
                return;
            }
        }
        let Some(pattern) = &rule.regex else { return };
        let re = pattern.regex();
        let mut caps = re.create_captures();
        for m in self.matches(ri, re, ctx) {
            let (start, end) = (m.start, m.end);
            // In decoded text: only matches touching decoded runs (the
            // others were seen by an earlier pass), located at the encoded
            // text in the file; `line` allowlists see the decoded line.
            let overlap = ctx.decoding.map(|d| d.overlap(start, end));
            let (loc, decoded_line, decoded) = match &overlap {
                None => (lines.locate(start, end), None, Vec::new()),
                Some(o) if o.is_empty() => continue,
                Some(o) => {
                    let (s, e) = o.original(start, end);
                    (lines.locate(s, e), Some(o.line(ctx.text)), o.tags())
                }
            };
            let line_text = &data[loc.line_start..loc.line_end];
            if !self.ignore_allow_marker && self.allow_marker.find(line_text).is_some() {
                continue;
            }
            let matched = trim_newlines(&ctx.text[start..end]);
            let mut secret = matched;
            // The secret group comes from matching the pattern again on the
            // match alone, as gitleaks does.
            if pattern.captures_len() > 0 {
                re.search_captures(&Input::new(matched), &mut caps);
                if caps.is_match() {
                    let group = |g: usize| caps.get_group(g).map(|s| &matched[s.range()]);
                    if rule.secret_group > 0 {
                        secret = group(rule.secret_group).unwrap_or(b"");
                    } else if let Some(g) = (1..caps.group_len())
                        .filter_map(group)
                        .find(|g| !g.is_empty())
                    {
                        secret = g;
                    }
                }
            }
            let secret_str = String::from_utf8_lossy(secret);
            let entropy = shannon_entropy(&secret_str);
            if rule.entropy != 0.0 && entropy <= rule.entropy {
                continue;
            }
            let candidate = Candidate {
                secret,
                secret_str: &secret_str,
                matched,
                line: decoded_line.unwrap_or(line_text),
            };
            if finding_allowed(&self.config.allowlists, global_paths, &candidate)
                || finding_allowed(&rule.allowlists, &rule_paths, &candidate)
            {
                continue;
            }
            hits.push(Hit {
                rule: rule.id.clone(),
                line: loc.line,
                end_line: loc.end_line,
                column: loc.column,
                end_column: loc.end_column,
                matched: String::from_utf8_lossy(matched).into_owned(),
                secret: secret_str.into_owned(),
                entropy: entropy as f32,
                decoded,
            });
        }
    }
}

/// The file being scanned.
struct File<'a> {
    path: &'a str,
    data: &'a [u8],
    /// Whether each global allowlist's paths match the file.
    global_paths: &'a [bool],
}

/// What every rule sees of one pass over a file.
struct FileCtx<'a> {
    file: &'a File<'a>,
    /// The file's bytes or their decoding.
    text: &'a [u8],
    /// Where `text` came from, in a decoding pass.
    decoding: Option<&'a Decoding>,
    /// `(keyword, start)` of keyword occurrences the rules' searches need.
    anchors: &'a [(usize, usize)],
}

struct Candidate<'a> {
    secret: &'a [u8],
    secret_str: &'a str,
    matched: &'a [u8],
    line: &'a [u8],
}

/// Whether each allowlist's paths match `path`.
fn path_matches(allowlists: &[Allowlist], path: &str) -> Vec<bool> {
    allowlists.iter().map(|a| a.path_allowed(path)).collect()
}

/// gitleaks' check before looking at content: an allowlist whose paths
/// match (`paths[i]`) allows the whole file when it is OR, or AND with no
/// check but paths (a commit check never holds in a directory scan;
/// regexes and stopwords are left to the per-finding check).
fn skips_file(allowlists: &[Allowlist], paths: &[bool]) -> bool {
    allowlists.iter().zip(paths).any(|(a, &matched)| {
        matched
            && (a.condition == Condition::Or
                || (a.regexes.is_empty() && a.stopwords.is_empty() && a.commits.is_empty()))
    })
}

/// Whether an allowlist allows the candidate; `paths[i]` is whether
/// `allowlists[i]`'s paths match the file (computed once per file).
fn finding_allowed(allowlists: &[Allowlist], paths: &[bool], c: &Candidate<'_>) -> bool {
    allowlists.iter().zip(paths).any(|(a, &path)| {
        let target = match a.regex_target {
            RegexTarget::Secret => c.secret,
            RegexTarget::Match => c.matched,
            RegexTarget::Line => c.line,
        };
        let commit = a.commit_allowed("");
        match a.condition {
            // Cheapest checks first; all are pure.
            Condition::Or => {
                commit || path || a.contains_stopword(c.secret_str) || a.regex_allowed(target)
            }
            Condition::And => {
                let checks = [
                    (a.commits.is_empty(), commit),
                    (a.paths.is_empty(), path),
                    (a.regexes.is_empty(), a.regex_allowed(target)),
                    (a.stopwords.is_empty(), a.contains_stopword(c.secret_str)),
                ];
                checks.iter().any(|(absent, _)| !absent)
                    && checks.iter().all(|&(absent, ok)| absent || ok)
            }
        }
    })
}

/// Drops generic findings that a specific rule found on the same line
/// (`extended`: also those whose match holds the encoded text of a
/// specific finding, or on a line a specific multi-line match spans).
fn dedup_generic(hits: Vec<Hit>, extended: bool) -> Vec<Hit> {
    let keep: Vec<bool> = hits
        .iter()
        .map(|f| {
            if !f.rule.to_lowercase().contains("generic") {
                return true;
            }
            !hits.iter().any(|g| {
                // Beyond gitleaks: the encoded text of a finding in decoded
                // text inside the generic match, or a multi-line match
                // holding the generic one's line.
                let inside = extended
                    && !g.decoded.is_empty()
                    && g.end_line == f.end_line
                    && f.column <= g.column
                    && g.end_column <= f.end_column;
                let same_line =
                    g.line == f.line || (extended && (g.line..=g.end_line).contains(&f.line));
                same_line
                    && g.rule != f.rule
                    && (g.secret.contains(&f.secret) || inside)
                    && !g.rule.to_lowercase().contains("generic")
            })
        })
        .collect();
    hits.into_iter()
        .zip(keep)
        .filter_map(|(h, k)| k.then_some(h))
        .collect()
}

/// Shannon entropy in bits per character (characters counted as Unicode
/// scalar values, frequencies over the byte length, as gitleaks does).
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts: Vec<(char, u32)> = Vec::new();
    let mut ascii = [0u32; 128];
    for ch in s.chars() {
        if (ch as u32) < 128 {
            ascii[ch as usize] += 1;
        } else if let Some(e) = counts.iter_mut().find(|(c, _)| *c == ch) {
            e.1 += 1;
        } else {
            counts.push((ch, 1));
        }
    }
    let inv = 1.0 / s.len() as f64;
    ascii
        .iter()
        .copied()
        .chain(counts.iter().map(|(_, n)| *n))
        .filter(|&n| n > 0)
        .map(|n| {
            let f = n as f64 * inv;
            -f * f.log2()
        })
        .sum()
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b'\n').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b'\n').map_or(start, |e| e + 1);
    &b[start..end]
}

/// Where a match is.
struct Location {
    line: usize,
    end_line: usize,
    column: usize,
    end_column: usize,
    line_start: usize,
    line_end: usize,
}

/// Newline offsets of a file, computed on first use.
struct Lines<'a> {
    data: &'a [u8],
    newlines: Option<Vec<usize>>,
}

impl<'a> Lines<'a> {
    fn new(data: &'a [u8]) -> Self {
        Lines {
            data,
            newlines: None,
        }
    }

    fn locate(&mut self, start: usize, end: usize) -> Location {
        let data = self.data;
        let nl = self
            .newlines
            .get_or_insert_with(|| memchr::memchr_iter(b'\n', data).collect());
        // Line index of a byte offset: newlines strictly before it.
        let line_of = |off: usize| nl.partition_point(|&n| n < off);
        let li = line_of(start);
        let last = end.saturating_sub(1).max(start);
        let le = line_of(last);
        let line_start = if li == 0 { 0 } else { nl[li - 1] + 1 };
        let end_line_start = if le == 0 { 0 } else { nl[le - 1] + 1 };
        let line_end = nl.get(le).copied().unwrap_or(data.len());
        let line_end = if line_end > 0 && data.get(line_end - 1) == Some(&b'\r') {
            line_end - 1
        } else {
            line_end
        };
        Location {
            line: li + 1,
            end_line: le + 1,
            column: start - line_start + 1,
            end_column: last - end_line_start + 1,
            line_start,
            line_end: line_end.max(line_start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_matches_gitleaks() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("ab") - 1.0).abs() < 1e-9);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn locations_are_one_based() {
        let data = b"first\nsecond KEY here\r\nthird";
        let mut l = Lines::new(data);
        let s = 13;
        let loc = l.locate(s, s + 3);
        assert_eq!((loc.line, loc.column, loc.end_column), (2, 8, 10));
        assert_eq!(&data[loc.line_start..loc.line_end], b"second KEY here");
        let loc = l.locate(0, 5);
        assert_eq!((loc.line, loc.column, loc.end_column), (1, 1, 5));
        let loc = l.locate(23, 28);
        assert_eq!((loc.line, loc.end_line, loc.column), (3, 3, 1));
    }
}
