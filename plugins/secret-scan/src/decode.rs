//! Decoding between detection passes, with gitleaks' semantics.
//!
//! A file is scanned as it is, then decoded and scanned again, up to
//! `max_decode_depth` times (gitleaks' default: 5) or until nothing more
//! decodes. Each pass finds encoded runs in the previous pass' text:
//!
//! - **percent**: `(%XX)+`, every byte percent-encoded;
//! - **hex**: 32 or more hex digits, an even count, at least one digit;
//! - **base64**: 16 or more of `[A-Za-z0-9_/+-]` and up to three `=`,
//!   holding one of `0123456789+/-_`; standard alphabet with canonical
//!   padding, else URL-safe without padding (trailing bits ignored, as Go's
//!   decoders do);
//!
//! tried in that order at each position (leftmost-first). A run touching a
//! run of an earlier kind waits for the next pass. A run is replaced by
//! its decoding when that is printable ASCII (tab to `~`); the segments
//! remember where they came from, so a finding in decoded text points at
//! the encoded text of the file (the whole run, through every level) and
//! is tagged `decoded:KIND` and `decode-depth:N`.
//!
//! Ranges overlap when they touch (gitleaks' rule): a match ending where
//! a decoded run starts counts as inside it.

/// gitleaks' default `--max-decode-depth`.
pub const DEFAULT_MAX_DEPTH: usize = 5;

/// The encodings, in precedence order (earlier wins when runs touch).
const KINDS: [&str; 3] = ["percent", "hex", "base64"];
const PERCENT: u8 = 1;
const HEX: u8 = 2;
const BASE64: u8 = 4;

/// A byte range `[start, end)` of one pass' text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    fn contains(self, o: Span) -> bool {
        self.start <= o.start && o.end <= self.end
    }

    fn merge(self, o: Span) -> Span {
        Span::new(self.start.min(o.start), self.end.max(o.end))
    }

    fn is_unset(self) -> bool {
        self.end == 0
    }
}

/// One decoded run.
#[derive(Debug, Clone)]
struct Segment {
    /// Where it is in the file.
    original: Span,
    /// Where it was in the previous pass' text.
    encoded: Span,
    /// Where its decoding is in this pass' text.
    decoded: Span,
    /// Encodings, this one's and its predecessors' (bit set).
    kinds: u8,
    /// Passes it took.
    depth: usize,
}

/// The decoding passes over one file.
#[derive(Default)]
pub struct Decoding {
    /// Segments of each pass, in text order.
    passes: Vec<Vec<Segment>>,
}

/// The segments of the latest pass that a match touches.
pub struct Overlap<'a> {
    decoding: &'a Decoding,
    segments: &'a [Segment],
}

impl Decoding {
    /// A file's first decoding.
    pub fn new() -> Decoding {
        Decoding::default()
    }

    /// Decodes `text` (the latest pass' text): the next pass' text, or
    /// `None` when nothing in it decodes.
    pub fn next(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let runs = find_runs(text);
        let mut segments = Vec::new();
        let mut out = Vec::new();
        let mut copied = 0;
        let mut shift: isize = 0;
        let mut decoded = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let touches = |j: Option<usize>| {
                j.and_then(|j| runs.get(j)).is_some_and(|n: &Run| {
                    (n.span.end == run.span.start || run.span.end == n.span.start)
                        && precedence(n.kind) > precedence(run.kind)
                })
            };
            if touches(i.checked_sub(1)) || touches(Some(i + 1)) {
                continue;
            }
            let encoded = &text[run.span.start..run.span.end];
            if !decode_into(run.kind, encoded, &mut decoded) {
                continue;
            }
            let start = (run.span.start as isize + shift) as usize;
            let mut seg = Segment {
                original: Span::default(),
                encoded: run.span,
                decoded: Span::new(start, start + decoded.len()),
                kinds: run.kind,
                depth: 1,
            };
            shift += decoded.len() as isize - encoded.len() as isize;
            if out.is_empty() {
                out.reserve(text.len());
            }
            out.extend_from_slice(&text[copied..run.span.start]);
            out.extend_from_slice(&decoded);
            copied = run.span.end;
            match self.passes.last() {
                None => seg.original = seg.encoded,
                Some(prev) => {
                    seg.depth = 1 + prev.first().map_or(0, |p| p.depth);
                    for p in touching(prev, seg.encoded) {
                        seg.kinds |= p.kinds;
                        let o = self.to_original(self.passes.len() - 1, p, seg.encoded);
                        seg.original = if seg.original.is_unset() {
                            o
                        } else {
                            seg.original.merge(o)
                        };
                    }
                }
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            return None;
        }
        out.extend_from_slice(&text[copied..]);
        self.passes.push(segments);
        Some(out)
    }

    /// The latest pass' segments that the match `[start, end)` of its text
    /// touches; empty: the match is not in decoded text (an earlier pass
    /// saw it).
    pub fn overlap(&self, start: usize, end: usize) -> Overlap<'_> {
        let segments = self
            .passes
            .last()
            .map_or(&[][..], |p| touching(p, Span::new(start, end)));
        Overlap {
            decoding: self,
            segments,
        }
    }

    /// Maps `se`, a range of pass `pass`'s text that touches `s` (one of
    /// that pass' segments), to the file.
    fn to_original(&self, pass: usize, s: &Segment, se: Span) -> Span {
        if s.decoded.contains(se) {
            return s.original;
        }
        // What sticks out of the decoded run maps one to one onto the text
        // around the encoded run.
        let rel = Span::new(
            s.encoded.start - (s.decoded.start - se.start.min(s.decoded.start)),
            s.encoded.end + (se.end.max(s.decoded.end) - s.decoded.end),
        );
        let mut original = Span::default();
        if pass > 0 {
            for p in touching(&self.passes[pass - 1], rel) {
                let o = self.to_original(pass - 1, p, rel);
                original = if original.is_unset() {
                    o
                } else {
                    original.merge(o)
                };
            }
        }
        if original.is_unset() { rel } else { original }
    }
}

impl Overlap<'_> {
    /// Whether the match touches no decoded run.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The match's range in the file.
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        let pass = self.decoding.passes.len() - 1;
        let se = Span::new(start, end);
        let span = self
            .segments
            .iter()
            .map(|s| self.decoding.to_original(pass, s, se))
            .reduce(Span::merge)
            .unwrap_or(se);
        (span.start, span.end)
    }

    /// gitleaks' tags: `decoded:KIND` per encoding, then `decode-depth:N`.
    pub fn tags(&self) -> Vec<String> {
        let Some(first) = self.segments.first() else {
            return Vec::new();
        };
        let kinds = self.segments.iter().fold(0, |k, s| k | s.kinds);
        let mut tags: Vec<String> = KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| kinds & (1 << i) != 0)
            .map(|(_, k)| format!("decoded:{k}"))
            .collect();
        tags.push(format!("decode-depth:{}", first.depth));
        tags
    }

    /// The decoded text's line(s) holding the runs (what `line` allowlists
    /// see), from the newline before them (included, as gitleaks) to the
    /// newline after.
    pub fn line<'t>(&self, text: &'t [u8]) -> &'t [u8] {
        let Some(span) = self.segments.iter().map(|s| s.decoded).reduce(Span::merge) else {
            return text;
        };
        let start = memchr::memrchr(b'\n', &text[..=span.start.min(text.len() - 1)]).unwrap_or(0);
        let end = span.end.min(text.len());
        let end = memchr::memchr(b'\n', &text[end..]).map_or(text.len(), |i| end + i);
        &text[start..end]
    }
}

/// The segments (sorted, disjoint) that overlap `se`, touching included
/// (gitleaks' `overlaps`: `o.start <= s.end && o.end >= s.start`).
fn touching(segments: &[Segment], se: Span) -> &[Segment] {
    let first = segments.partition_point(|s| s.decoded.end < se.start);
    let last = first + segments[first..].partition_point(|s| s.decoded.start <= se.end);
    &segments[first..last]
}

/// An encoded run found in a pass' text.
struct Run {
    span: Span,
    kind: u8,
}

fn precedence(kind: u8) -> u8 {
    match kind {
        PERCENT => 3,
        HEX => 2,
        _ => 1,
    }
}

/// Byte classes for the scanner.
const HEXDIGIT: u8 = 1;
const B64: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_hexdigit() {
            t[b] |= HEXDIGIT;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'/' || c == b'+' || c == b'-' {
            t[b] |= B64;
        }
        b += 1;
    }
    t
};

/// The runs of `(?:%[0-9A-Fa-f]{2})+|[0-9A-Fa-f]{32,}|[\w/+-]{16,}={0,3}`
/// (Go's regexp: leftmost-first, ASCII `\w`), without a regex: every hex
/// digit is a base64 byte and `%` is neither, so a run of base64 bytes
/// shorter than 16 holds no match.
fn find_runs(text: &[u8]) -> Vec<Run> {
    let class = |i: usize| text.get(i).map_or(0, |&b| CLASS[b as usize]);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let mut e = i;
            while text.get(e) == Some(&b'%') && class(e + 1) & class(e + 2) & HEXDIGIT != 0 {
                e += 3;
            }
            if e > i {
                runs.push(Run {
                    span: Span::new(i, e),
                    kind: PERCENT,
                });
                i = e;
            } else {
                i += 1;
            }
            continue;
        }
        if class(i) & B64 == 0 {
            // On to the next byte that can start a run.
            i = scan_until(text, i + 1, |b| b == b'%' || CLASS[b as usize] & B64 != 0);
            continue;
        }
        let b64_end = scan_until(text, i, |b| CLASS[b as usize] & B64 == 0);
        let hex_end = if b64_end - i >= 32 {
            scan_until(&text[..b64_end], i, |b| CLASS[b as usize] & HEXDIGIT == 0)
        } else {
            i
        };
        if hex_end - i >= 32 {
            runs.push(Run {
                span: Span::new(i, hex_end),
                kind: HEX,
            });
            i = hex_end;
        } else if b64_end - i >= 16 {
            let pad = text[b64_end..]
                .iter()
                .take(3)
                .take_while(|&&b| b == b'=')
                .count();
            runs.push(Run {
                span: Span::new(i, b64_end + pad),
                kind: BASE64,
            });
            i = b64_end + pad;
        } else {
            i = b64_end;
        }
    }
    runs
}

/// The first index from `i` whose byte is `stop`, or the length. Eight
/// bytes per iteration: in the sandbox every loop back-edge carries an
/// interruption check.
fn scan_until(text: &[u8], mut i: usize, stop: impl Fn(u8) -> bool) -> usize {
    while let Some(chunk) = text.get(i..i + 8) {
        let chunk: &[u8; 8] = chunk.try_into().expect("eight bytes");
        for (j, &b) in chunk.iter().enumerate() {
            if stop(b) {
                return i + j;
            }
        }
        i += 8;
    }
    while i < text.len() && !stop(text[i]) {
        i += 1;
    }
    i
}

/// The run decoded, when it decodes to printable ASCII.
#[cfg(test)]
fn decode(kind: u8, run: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into(kind, run, &mut out).then_some(out)
}

/// Decodes `run` into `out` (cleared first); false, as soon as it is
/// known, when it does not decode to printable ASCII.
fn decode_into(kind: u8, run: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    match kind {
        PERCENT => push_printable(
            out,
            run.chunks_exact(3)
                .map(|c| nibble(c[1]) << 4 | nibble(c[2])),
        ),
        HEX => {
            run.len().is_multiple_of(2)
                && run.iter().any(u8::is_ascii_digit)
                && push_printable(
                    out,
                    run.chunks_exact(2)
                        .map(|c| nibble(c[0]) << 4 | nibble(c[1])),
                )
        }
        _ => {
            run.iter().any(|b| b"0123456789+/-_".contains(b))
                && (base64(run, &STD_VALUES, true, out) || base64(run, &URL_VALUES, false, out))
        }
    }
}

/// Appends the bytes while they are printable ASCII (tab to `~`, gitleaks'
/// "printable").
fn push_printable(out: &mut Vec<u8>, bytes: impl Iterator<Item = u8>) -> bool {
    for b in bytes {
        if !(0x09..0x7f).contains(&b) {
            return false;
        }
        out.push(b);
    }
    true
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Symbol values of an alphabet whose last two symbols are `c62`, `c63`
/// (255: not in it).
const fn values(c62: u8, c63: u8) -> [u8; 256] {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[c62 as usize] = 62;
    t[c63 as usize] = 63;
    t
}
const STD_VALUES: [u8; 256] = values(b'+', b'/');
const URL_VALUES: [u8; 256] = values(b'-', b'_');

/// Base64 into `out`, printable or false: padded (canonical `=`, as Go's
/// `StdEncoding`) or raw (no `=`, as `RawURLEncoding`); bits past the last
/// byte are ignored, as Go's decoders do.
fn base64(run: &[u8], values: &[u8; 256], padded: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    let body_len = run.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    let (body, pad) = run.split_at(body_len);
    let ok_len = match (padded, body.len() % 4, pad.len()) {
        (true, 0, 0) | (true, 2, 2) | (true, 3, 1) => true,
        (false, r, 0) => r != 1,
        _ => false,
    };
    if !ok_len {
        return false;
    }
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &b in chunk {
            let v = values[b as usize];
            if v == 255 {
                return false;
            }
            acc = acc << 6 | v as u32;
        }
        acc <<= 6 * (4 - chunk.len());
        let bytes = acc.to_be_bytes();
        if !push_printable(out, bytes[1..chunk.len()].iter().copied()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<(u8, &str)> {
        find_runs(text.as_bytes())
            .into_iter()
            .map(|r| (r.kind, &text[r.span.start..r.span.end]))
            .collect()
    }

    #[test]
    fn runs_are_found_leftmost_first() {
        assert_eq!(runs("a=%41%42%4 x"), vec![(PERCENT, "%41%42")]);
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(runs(hex), vec![(HEX, hex)]);
        // A hex run that goes on as base64: two touching runs.
        assert_eq!(
            runs(&format!("{hex}xyzxyzxyzxyzxyzxyz==")),
            vec![(HEX, hex), (BASE64, "xyzxyzxyzxyzxyzxyz==")]
        );
        assert_eq!(
            runs("short_identifier x"),
            vec![(BASE64, "short_identifier")]
        );
        assert_eq!(runs("short_identifie x"), vec![]);
        assert_eq!(
            runs("QUJDREVGR0hJSktMTU5P===="),
            vec![(BASE64, "QUJDREVGR0hJSktMTU5P===")]
        );
    }

    #[test]
    fn base64_follows_gos_decoders() {
        let d = |s: &str| decode(BASE64, s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            d("aGVsbG8gd29ybGQgMTIzNA==").as_deref(),
            Some("hello world 1234")
        );
        // Unpadded standard base64 decodes as raw URL base64.
        assert_eq!(
            d("aGVsbG8gd29ybGQgMTIzNA").as_deref(),
            Some("hello world 1234")
        );
        // Wrong padding fails both.
        assert_eq!(d("aGVsbG8gd29ybGQgMTIzNA="), None);
        // URL alphabet.
        assert_eq!(
            d("PDw_Pz4-Pj4_Pz8_Pz8_").as_deref(),
            Some("<<??>>>>???????")
        );
        // No digit nor + / - _: not tried.
        assert_eq!(d("abcdefghijklmnopqrst"), None);
        // Not printable.
        assert_eq!(d("AAECAwQFBgcICQoLDA0ODw=="), None);
    }

    #[test]
    fn hex_and_percent() {
        let d = |k, s: &str| decode(k, s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            d(HEX, "68656c6c6f20776f726c642031323334").as_deref(),
            Some("hello world 1234")
        );
        assert_eq!(d(HEX, "68656c6c6f20776f726c64203132333"), None);
        assert_eq!(d(PERCENT, "%68%69").as_deref(), Some("hi"));
        assert_eq!(d(PERCENT, "%00%69"), None);
    }

    #[test]
    fn nested_findings_map_to_the_outer_run() {
        // base64 of "token=%41%4B%49%41" ... nested percent in base64.
        let inner = "key: 4142434445464748494a4b4c4d4e4f50 end";
        let b64 = base64_encode(inner.as_bytes());
        let text = format!("line one\ndata: {b64} tail\n");
        let mut d = Decoding::new();
        let p1 = d.next(text.as_bytes()).unwrap();
        let p1s = String::from_utf8(p1.clone()).unwrap();
        assert_eq!(p1s, format!("line one\ndata: {inner} tail\n"));
        let p2 = d.next(&p1).unwrap();
        let p2s = String::from_utf8(p2).unwrap();
        assert_eq!(p2s, "line one\ndata: key: ABCDEFGHIJKLMNOP end tail\n");
        let at = p2s.find("ABCD").unwrap();
        let o = d.overlap(at, at + 16);
        assert_eq!(
            o.tags(),
            vec!["decoded:hex", "decoded:base64", "decode-depth:2"]
        );
        let (s, e) = o.original(at, at + 16);
        assert_eq!(&text[s..e], b64);
        // Text outside decoded runs is not in this pass.
        assert!(d.overlap(0, 4).is_empty());
        // A match sticking out of the run maps the rest one to one.
        let start = p2s.find("data").unwrap();
        let (s, e) = d.overlap(start, at + 16).original(start, at + 16);
        assert_eq!(&text[s..e], format!("data: {b64}"));
        assert_eq!(
            d.overlap(at, at + 16).line(p2s.as_bytes()),
            b"\ndata: key: ABCDEFGHIJKLMNOP end tail"
        );
    }

    fn base64_encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = c.len();
            let v = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= n {
                    s.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
