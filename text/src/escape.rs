//! Text that came from a plugin, made safe for where it lands: a log
//! line or a terminal. Control characters (C0, DEL, C1) and the Unicode
//! bidirectional overrides are written as escapes (`\n`, `\r`, `\t`,
//! `\u{1b}`), so a plugin cannot forge a log line, move the cursor,
//! rewrite what is already on screen, or reorder text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character that must not reach a log or a terminal as is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character escaped; borrowed when there is none.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            escape("done\n2026-12-01T00:00:00Z INFO forged"),
            "done\\n2026-12-01T00:00:00Z INFO forged"
        );
        assert_eq!(
            escape("\r\u{1b}[2KOK: all good"),
            "\\r\\u{1b}[2KOK: all good"
        );
        assert_eq!(escape("a\0b\u{7f}\u{9b}"), "a\\u{0}b\\u{7f}\\u{9b}");
        assert_eq!(escape("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(escape("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_unsafe_characters(s in "\\PC{0,40}|[\\x00-\\x1f\\x7f-\\u{9f}a-z]{0,40}") {
            proptest::prop_assert!(!escape(&s).chars().any(is_unsafe));
        }
    }
}
