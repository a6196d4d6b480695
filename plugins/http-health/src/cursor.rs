//! The text cursor both expression parsers stand on ([`crate::predicate`]
//! for conditions, [`crate::promql`] for metric rules): the position,
//! whitespace, tokens, and errors that name the column.

/// A position in the text being parsed.
pub(crate) struct Cursor<'a> {
    /// The whole text.
    pub(crate) s: &'a str,
    /// Byte offset of the next character.
    pub(crate) i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, i: 0 }
    }

    /// The text not parsed yet.
    pub(crate) fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    /// Skips whitespace.
    pub(crate) fn ws(&mut self) {
        let r = self.rest();
        self.i += r.len() - r.trim_start().len();
    }

    /// An error at the current column (1-based, in characters).
    pub(crate) fn err(&self, what: &str) -> String {
        format!("{what} at column {}", self.s[..self.i].chars().count() + 1)
    }

    /// Consumes `tok` after whitespace, if it is next.
    pub(crate) fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    /// Whether the whole text was parsed (trailing whitespace allowed).
    pub(crate) fn done(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }
}

/// A parser over a [`Cursor`]: `struct P<'a>(Cursor<'a>)` reads and moves
/// the cursor as its own.
macro_rules! cursor_parser {
    ($name:ident) => {
        struct $name<'a>($crate::cursor::Cursor<'a>);

        impl<'a> std::ops::Deref for $name<'a> {
            type Target = $crate::cursor::Cursor<'a>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name<'_> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}
pub(crate) use cursor_parser;
