//! The small grammars that Warden's host and its plugins must agree on,
//! defined once so that a config value means the same on both sides of
//! the sandbox:
//!
//! - [`units`]: durations (`500ms`, `10s`, `1.5m`, `2h`, `1d`) and sizes
//!   (`64MiB`, `10MB`, `4096`), parsed without panics or silent
//!   truncation, and printed back the way configs write them;
//! - [`template`]: `${env:NAME}` (and, where a caller enables them,
//!   `{{capture}}`) placeholders, expanded in one pass;
//! - [`escape`]: control characters out of text a plugin wrote, before it
//!   reaches a log line or a terminal;
//! - [`redact`]: secrets out of URLs and free text before they are shown;
//!   [`truncate`]: text bounded to a byte length on a character boundary.
//!
//! No dependencies, no I/O: the crate builds for the host and for
//! `wasm32-wasip2` alike.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(warden_text::units::parse_duration("1.5m"), Ok(Duration::from_secs(90)));
//! assert_eq!(warden_text::units::parse_size("64MiB"), Ok(64 << 20));
//! assert_eq!(
//!     warden_text::redact::url("https://rpc.example.com/?api-key=abc"),
//!     "https://rpc.example.com/?api-key=***"
//! );
//! let url = warden_text::template::expand_env("https://x/?k=${env:KEY}", |n| {
//!     (n == "KEY").then(|| "s3cret".to_string())
//! });
//! assert_eq!(url.as_deref(), Ok("https://x/?k=s3cret"));
//! ```

pub mod escape;
pub mod redact;
pub mod template;
pub mod units;

/// `s` cut to at most `max` bytes (on a character boundary), marked with
/// an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(super::truncate("short", 10), "short");
        assert_eq!(super::truncate("héllo", 2), "h…");
    }
}
