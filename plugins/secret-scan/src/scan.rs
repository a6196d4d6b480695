//! Walking the granted directories: which files are read, the
//! incremental cache, redaction, fingerprints and `.gitleaksignore`.
//!
//! - `.git` directories are skipped; symlinks are not followed unless
//!   asked (then each directory is walked once, however many links lead
//!   to it, and at most [`MAX_DEPTH`] levels deep);
//! - the listing goes past entries it cannot give (a name that is not
//!   UTF-8): those, files over the size limit, FIFOs, sockets and devices
//!   are counted and named in [`Stats::skipped`], unreadable entries in
//!   [`Stats::errors`]; binary files (a NUL byte in the first 8000 bytes,
//!   as git decides) are counted and skipped;
//! - rules and allowlists see the path relative to the scanned root
//!   (`src/app.py`, as `gitleaks dir .` shows it); findings carry the host
//!   path;
//! - a file whose size and modification time are those of the previous
//!   scan (same rules, same options) is not read again: its findings come
//!   from the cache;
//! - secrets are redacted before anything leaves the detector: the cache,
//!   the report and the fingerprints never hold a secret in clear unless
//!   the check asks for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use warden_plugin_sdk::fs::Kind;

use crate::detect::{Detector, Hit, Timings};
use crate::pattern::Pattern;

/// Deepest directory level walked.
pub const MAX_DEPTH: usize = 64;
/// Bytes inspected to decide that a file is binary.
pub const BINARY_PROBE: usize = 8000;
/// The ignore file read in each scanned root.
pub const IGNORE_FILE: &str = ".gitleaksignore";

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directories or files (host paths).
    pub roots: Vec<PathBuf>,
    /// Larger files are skipped.
    pub max_file_size: u64,
    /// Follow symbolic links.
    pub follow_symlinks: bool,
    /// Paths (relative to the root) matching one of these are skipped.
    pub exclude: Vec<Pattern>,
    /// Percent of each secret hidden (gitleaks' `--redact`); 0 shows it.
    pub redact: u8,
    /// Build the cache for the next scan (incremental scans).
    pub cache: bool,
    /// Honour `.gitleaksignore` in each root.
    pub ignore_file: bool,
    /// Scan only this share of the files: (index, count) of a sharded run
    /// (see [`Shard`]); `None` scans them all.
    pub shard: Option<Shard>,
}

/// One share of a sharded scan. Every share walks every directory in the
/// same order (so each sees the same files) and share 0 alone reports
/// what is wrong with the directories themselves. A file is the share's
/// that claims it first (the agent's `host.claim`: shares take the next
/// file no other has taken, so a slow file does not hold the others
/// back); without a claimer, the files whose host path hashes to `index`
/// modulo `count`.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Which share, from 0.
    pub index: u32,
    /// How many shares.
    pub count: u32,
    /// Claims files for this share.
    pub claimer: Option<warden_plugin_sdk::Claimer>,
}

impl Shard {
    /// A share that takes every file when `index` is 0 and none
    /// otherwise (a share of one: `hash % 1` is 0).
    pub fn all_or_nothing(index: u32) -> Shard {
        Shard {
            index,
            count: 1,
            claimer: None,
        }
    }

    /// Whether the file (or entry) at `path` is this share's; ask once
    /// per entry (a claim is granted once).
    pub fn owns(&self, path: &Path) -> bool {
        if let Some(c) = &self.claimer {
            return c.claim(&path.to_string_lossy());
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in path.as_os_str().as_encoded_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count.max(1)) == u64::from(self.index)
    }
}

impl Settings {
    /// A full scan of `roots` (no cache), files up to `max_file_size`,
    /// secrets fully redacted, `.gitleaksignore` honoured, links not
    /// followed, nothing excluded.
    pub fn new(roots: Vec<PathBuf>, max_file_size: u64) -> Settings {
        Settings {
            roots,
            max_file_size,
            follow_symlinks: false,
            exclude: Vec::new(),
            redact: 100,
            cache: false,
            ignore_file: true,
            shard: None,
        }
    }

    /// Whether the file at `path` is this scan's to read.
    fn owns(&self, path: &Path) -> bool {
        self.shard.as_ref().is_none_or(|s| s.owns(path))
    }

    /// Whether this scan reports problems with directories (every scan
    /// but shards other than the first).
    fn reports_dirs(&self) -> bool {
        self.shard.as_ref().is_none_or(|s| s.index == 0)
    }
}

/// A finding as reported: the secret redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    /// Rule id.
    pub rule: String,
    /// Host path of the file.
    pub file: String,
    /// Path relative to the scanned root.
    pub rel: String,
    /// 1-based lines and byte columns (0 for path-only rules).
    pub line: usize,
    /// Last line of the match.
    pub end_line: usize,
    /// First column.
    pub column: usize,
    /// Last column.
    pub end_column: usize,
    /// The match, redacted.
    pub matched: String,
    /// The secret, redacted.
    pub secret: String,
    /// Shannon entropy of the secret.
    pub entropy: f32,
    /// Content fingerprint: rule, file and secret (not the line), so it
    /// survives the secret moving within the file.
    pub fingerprint: String,
    /// Found in decoded text: `decoded:KIND` and `decode-depth:N`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decoded: Vec<String>,
    /// With verification on: `verified`, `unverified` or `unknown`, and
    /// why when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<(String, String)>,
}

impl Found {
    /// gitleaks' fingerprint of a directory scan: `file:rule:line`.
    pub fn gitleaks_fingerprint(&self) -> String {
        format!("{}:{}:{}", self.file, self.rule, self.line)
    }

    fn from_hit(
        hit: Hit,
        file: &str,
        rel: &str,
        redact: u8,
        verified: Option<(String, String)>,
    ) -> Found {
        let fingerprint = content_fingerprint(&hit.rule, file, &hit.secret);
        let (matched, secret) = redact_hit(&hit.matched, &hit.secret, redact);
        Found {
            rule: hit.rule,
            file: file.to_string(),
            rel: rel.to_string(),
            line: hit.line,
            end_line: hit.end_line,
            column: hit.column,
            end_column: hit.end_column,
            matched,
            secret,
            entropy: hit.entropy,
            fingerprint,
            decoded: hit.decoded,
            verified,
        }
    }
}

/// sha256 over rule, file and secret; 32 hex digits.
pub fn content_fingerprint(rule: &str, file: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    for part in [rule, file, secret] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// gitleaks' masking: keep the first `100 - percent`% of the secret
/// (rounded half to even) and append `...`; 100 gives `REDACTED`.
pub fn mask(secret: &str, percent: u8) -> String {
    if percent == 0 || secret.is_empty() {
        return secret.to_string();
    }
    if percent >= 100 {
        return "REDACTED".into();
    }
    let len = secret.len() as f64;
    let keep = (len * f64::from(100 - percent) / 100.0).round_ties_even() as usize;
    let mut end = keep.min(secret.len());
    while !secret.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &secret[..end])
}

fn redact_hit(matched: &str, secret: &str, percent: u8) -> (String, String) {
    if percent == 0 || secret.is_empty() {
        return (matched.to_string(), secret.to_string());
    }
    let masked = mask(secret, percent);
    (matched.replace(secret, &masked), masked)
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Files read and scanned.
    pub scanned: u64,
    /// Files not read because they had not changed.
    pub unchanged: u64,
    /// Binary files skipped.
    pub binary: u64,
    /// Files over the size limit skipped.
    pub too_large: u64,
    /// Symbolic links not followed.
    pub symlinks: u64,
    /// Files skipped by `exclude` or a global path allowlist.
    pub excluded: u64,
    /// Bytes read and scanned.
    pub bytes: u64,
    /// Files or directories that could not be read (path: error); the
    /// first [`MAX_LISTED`], the rest counted in `errors_unlisted`.
    pub errors: Vec<String>,
    /// Unreadable entries past the first [`MAX_LISTED`].
    #[serde(default)]
    pub errors_unlisted: u64,
    /// Entries not scanned that could hold secrets: names that are not
    /// UTF-8 (no plugin can open them), files over the size limit, FIFOs,
    /// sockets and devices (path: why). Counted in `too_large` too when
    /// for size. The first [`MAX_LISTED`], the rest counted in
    /// `skipped_unlisted`.
    pub skipped: Vec<String>,
    /// Skipped entries past the first [`MAX_LISTED`].
    #[serde(default)]
    pub skipped_unlisted: u64,
    /// Directories reached again through symbolic links, walked once.
    pub loops: u64,
    /// Where the time went.
    #[serde(skip)]
    pub timings: Timings,
}

/// How many unreadable and how many skipped entries a scan names; the
/// rest are counted (a tree of a million unreadable files must not fill
/// the plugin's memory with their names).
pub const MAX_LISTED: usize = 100;

impl Stats {
    /// Records an entry that could not be read.
    pub fn error(&mut self, what: String) {
        if self.errors.len() < MAX_LISTED {
            self.errors.push(what);
        } else {
            self.errors_unlisted += 1;
        }
    }

    /// Records an entry that could hold secrets but was not scanned.
    pub fn skip(&mut self, what: String) {
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(what);
        } else {
            self.skipped_unlisted += 1;
        }
    }

    /// Entries that could not be read, listed or not.
    pub fn error_count(&self) -> u64 {
        self.errors.len() as u64 + self.errors_unlisted
    }

    /// Entries skipped, listed or not.
    pub fn skipped_count(&self) -> u64 {
        self.skipped.len() as u64 + self.skipped_unlisted
    }

    /// Adds another share's stats to these (a sharded scan's merge).
    pub fn add(&mut self, other: Stats) {
        self.scanned += other.scanned;
        self.unchanged += other.unchanged;
        self.binary += other.binary;
        self.too_large += other.too_large;
        self.symlinks += other.symlinks;
        self.excluded += other.excluded;
        self.bytes += other.bytes;
        self.loops += other.loops;
        self.errors_unlisted += other.errors_unlisted;
        self.skipped_unlisted += other.skipped_unlisted;
        for e in other.errors {
            self.error(e);
        }
        for e in other.skipped {
            self.skip(e);
        }
        self.timings.read += other.timings.read;
        self.timings.prefilter += other.timings.prefilter;
        self.timings.rules += other.timings.rules;
        self.timings.decode += other.timings.decode;
    }
}

/// Per-file results of earlier scans.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cache {
    /// Hash of everything that changes results (rules, options).
    pub key: String,
    /// Host path → what it was and what was found.
    pub files: BTreeMap<String, CachedFile>,
}

/// One file in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedFile {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: u128,
    /// Its findings (redacted).
    pub found: Vec<Found>,
}

struct Walker<'a> {
    /// Directories walked, by identity (with `follow_symlinks`).
    visited: BTreeSet<(u64, u64)>,
    detector: &'a Detector,
    settings: &'a Settings,
    previous: Option<&'a Cache>,
    next: Cache,
    stats: Stats,
    found: Vec<Found>,
    /// One read buffer for every file.
    buf: Vec<u8>,
    /// `.gitleaksignore` entries (their findings are not verified).
    ignored: BTreeSet<String>,
    verify: Option<Verify<'a>>,
}

/// Called with each new finding's secret in clear, before redaction:
/// `(verdict, reason)`.
pub type Verify<'a> = &'a mut dyn FnMut(&Hit) -> (String, String);

/// Scans `settings.roots`; `previous` (when its key is `cache_key`) spares
/// unchanged files. Returns the findings, what was done and the cache for
/// the next scan.
pub fn scan(
    detector: &Detector,
    settings: &Settings,
    previous: Option<&Cache>,
    cache_key: &str,
) -> (Vec<Found>, Stats, Cache) {
    scan_verifying(detector, settings, previous, cache_key, None)
}

/// [`scan`], asking `verify` about each finding in a file read this run
/// (unless `.gitleaksignore` lists it); cached files keep their verdicts.
pub fn scan_verifying<'a>(
    detector: &'a Detector,
    settings: &'a Settings,
    previous: Option<&'a Cache>,
    cache_key: &str,
    verify: Option<Verify<'a>>,
) -> (Vec<Found>, Stats, Cache) {
    let ignored = if settings.ignore_file {
        ignore_entries(&settings.roots)
    } else {
        BTreeSet::new()
    };
    let mut w = Walker {
        visited: BTreeSet::new(),
        detector,
        settings,
        previous: previous.filter(|c| c.key == cache_key),
        next: Cache {
            key: cache_key.to_string(),
            files: BTreeMap::new(),
        },
        stats: Stats::default(),
        found: Vec::new(),
        buf: Vec::new(),
        ignored,
        verify,
    };
    for root in &settings.roots {
        match std::fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => w.dir(root, root, 0),
            Ok(_) if !settings.owns(root) => {}
            Ok(_) => {
                let rel = root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                w.file(root, &rel);
            }
            Err(e) if settings.reports_dirs() => w.stats.error(format!("{}: {e}", root.display())),
            Err(_) => {}
        }
    }
    let Walker {
        mut found,
        stats,
        next,
        ignored,
        ..
    } = w;
    found.retain(|f| !listed(&ignored, &f.file, &f.rel, &f.rule, f.line));
    found.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.rule).cmp(&(&b.file, b.line, b.column, &b.rule))
    });
    (found, stats, next)
}

/// The fingerprints listed in each root's `.gitleaksignore`.
/// Whether `.gitleaksignore` lists a finding (by host path or by path
/// relative to the scanned directory).
fn listed(ignored: &BTreeSet<String>, file: &str, rel: &str, rule: &str, line: usize) -> bool {
    !ignored.is_empty()
        && (ignored.contains(&format!("{file}:{rule}:{line}"))
            || ignored.contains(&format!("{rel}:{rule}:{line}")))
}

fn ignore_entries(roots: &[PathBuf]) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for root in roots {
        let Ok(text) = std::fs::read_to_string(root.join(IGNORE_FILE)) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                set.insert(line.to_string());
            }
        }
    }
    set
}

impl Walker<'_> {
    fn dir(&mut self, root: &Path, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            if self.settings.reports_dirs() {
                self.stats
                    .error(format!("{}: deeper than {MAX_DEPTH} levels", dir.display()));
            }
            return;
        }
        // Each directory once, however many links lead to it.
        if self.settings.follow_symlinks {
            match warden_plugin_sdk::fs::identity(dir) {
                Ok(id) if !self.visited.insert(id) => {
                    if self.settings.reports_dirs() {
                        self.stats.loops += 1;
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if self.settings.reports_dirs() {
                        self.stats.error(format!("{}: {e}", dir.display()));
                    }
                    return;
                }
            }
        }
        // The whole listing, past names it cannot give (std's read_dir
        // stops at the first); each entry's type comes with it.
        let listing = match warden_plugin_sdk::fs::list(dir) {
            Ok(l) => l,
            Err(e) => {
                if self.settings.reports_dirs() {
                    self.stats.error(format!("{}: {e}", dir.display()));
                }
                return;
            }
        };
        if listing.unnamed > 0 && self.settings.reports_dirs() {
            self.stats.skip(format!(
                "{}: {} entr{} whose names are not UTF-8",
                dir.display(),
                listing.unnamed,
                if listing.unnamed == 1 { "y" } else { "ies" }
            ));
        }
        for e in listing
            .errors
            .iter()
            .filter(|_| self.settings.reports_dirs())
        {
            self.stats.error(format!(
                "{}: an entry could not be listed ({e})",
                dir.display()
            ));
        }
        let mut names: Vec<(PathBuf, Kind)> = listing
            .entries
            .into_iter()
            .map(|e| (dir.join(e.name), e.kind))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, kind) in names {
            // A share walks every directory but reads (and reports) only
            // its own files and entries.
            let owns = self.settings.owns(&path);
            let kind = if kind == Kind::Symlink {
                if !self.settings.follow_symlinks {
                    self.stats.symlinks += u64::from(owns);
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => Kind::Dir,
                    Ok(m) if m.is_file() => Kind::File,
                    Ok(_) => Kind::Special,
                    Err(e) => {
                        if owns {
                            self.stats.error(format!("{}: {e}", path.display()));
                        }
                        continue;
                    }
                }
            } else {
                kind
            };
            if kind != Kind::Dir && !owns {
                continue;
            }
            let rel = rel_path(root, &path);
            match kind {
                Kind::Dir => {
                    if path.file_name().is_some_and(|n| n == ".git") {
                        continue;
                    }
                    self.dir(root, &path, depth + 1);
                }
                Kind::File | Kind::Unknown => self.file(&path, &rel),
                Kind::Special => self.stats.skip(format!(
                    "{}: a FIFO, socket or device, not read",
                    path.display()
                )),
                Kind::Symlink => {}
            }
        }
    }

    fn file(&mut self, path: &Path, rel: &str) {
        if self
            .settings
            .exclude
            .iter()
            .any(|p| p.is_match(rel.as_bytes()))
            || self.detector.path_allowed(rel)
        {
            self.stats.excluded += 1;
            return;
        }
        let t0 = std::time::Instant::now();
        // With a cache, most files are unchanged: one stat by path decides.
        // Without, open first and stat the open file (fewer calls across
        // the sandbox boundary).
        let (meta, mut file) = if self.previous.is_some() {
            (std::fs::metadata(path), None)
        } else {
            match std::fs::File::open(path) {
                Ok(f) => (f.metadata(), Some(f)),
                Err(e) => (Err(e), None),
            }
        };
        let meta = match meta {
            Ok(m) => m,
            // The sandbox refuses to open what is not a regular file or a
            // directory (a FIFO could block the run).
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.stats.skip(format!(
                    "{}: a FIFO, socket or device, not read",
                    path.display()
                ));
                return;
            }
            Err(e) => {
                self.stats.error(format!("{}: {e}", path.display()));
                return;
            }
        };
        if meta.len() > self.settings.max_file_size {
            self.stats.too_large += 1;
            self.stats.skip(format!(
                "{}: {} bytes, over max_file_size ({})",
                path.display(),
                meta.len(),
                self.settings.max_file_size
            ));
            return;
        }
        let host = path.to_string_lossy().into_owned();
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        if let Some(prev) = self.previous.and_then(|c| c.files.get(&host))
            && prev.size == meta.len()
            && prev.mtime_ns == mtime_ns
            && mtime_ns != 0
        {
            self.stats.unchanged += 1;
            self.found.extend(prev.found.iter().cloned());
            self.next.files.insert(host, prev.clone());
            return;
        }
        let opened = match file.take() {
            Some(f) => Ok(f),
            None => std::fs::File::open(path),
        };
        let mut data = std::mem::take(&mut self.buf);
        if let Err(e) = opened.and_then(|f| read_all(f, meta.len(), &mut data)) {
            self.stats.error(format!("{}: {e}", path.display()));
            self.buf = data;
            return;
        }
        self.stats.timings.read += t0.elapsed();
        self.scan_data(&host, rel, mtime_ns, &data);
        self.buf = data;
    }

    fn scan_data(&mut self, host: &str, rel: &str, mtime_ns: u128, data: &[u8]) {
        if data[..data.len().min(BINARY_PROBE)].contains(&0) {
            self.stats.binary += 1;
            return;
        }
        self.stats.scanned += 1;
        self.stats.bytes += data.len() as u64;
        let hits = self
            .detector
            .detect_timed(rel, data, &mut self.stats.timings);
        let mut found = Vec::with_capacity(hits.len());
        for h in hits {
            let listed = listed(&self.ignored, host, rel, &h.rule, h.line);
            let verified = match &mut self.verify {
                Some(v) if !listed => Some(v(&h)),
                _ => None,
            };
            found.push(Found::from_hit(
                h,
                host,
                rel,
                self.settings.redact,
                verified,
            ));
        }
        if !self.settings.cache {
            self.found.extend(found);
            return;
        }
        self.found.extend(found.iter().cloned());
        self.next.files.insert(
            host.to_string(),
            CachedFile {
                size: data.len() as u64,
                mtime_ns,
                found,
            },
        );
    }
}

/// Reads an open file of about `size` bytes with as few calls as
/// possible (each crosses the sandbox boundary): normally one read that
/// fills the buffer and one that sees the end.
fn read_all(mut f: std::fs::File, size: u64, data: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    data.clear();
    data.resize(size as usize + 1, 0);
    let mut filled = 0;
    loop {
        match f.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == data.len() {
                    // It grew since the stat: read the rest the usual way.
                    f.read_to_end(data)?;
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    Ok(())
}

fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_follows_gitleaks() {
        assert_eq!(mask("abcdefghij", 100), "REDACTED");
        assert_eq!(mask("abcdefghij", 0), "abcdefghij");
        assert_eq!(mask("abcdefghij", 80), "ab...");
        assert_eq!(mask("abcdefghij", 75), "ab...");
        assert_eq!(mask("abcdefghijkl", 75), "abc...");
        let (m, s) = redact_hit("key = \"abcdefghij\"", "abcdefghij", 80);
        assert_eq!((m.as_str(), s.as_str()), ("key = \"ab...\"", "ab..."));
    }

    #[test]
    fn fingerprint_ignores_the_line() {
        let a = content_fingerprint("r", "/f", "s3cr3t");
        assert_eq!(a, content_fingerprint("r", "/f", "s3cr3t"));
        assert_ne!(a, content_fingerprint("r", "/g", "s3cr3t"));
        assert_ne!(a, content_fingerprint("q", "/f", "s3cr3t"));
    }
}
