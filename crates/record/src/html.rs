//! A small HTML writer. Markup comes only from `&'static str` literals in this crate; anything
//! from a record goes through [`Html::text`] (or [`Html::attr`]), which escapes it.

use std::fmt::Write as _;

#[derive(Debug, Default)]
pub(crate) struct Html {
    out: String,
}

/// Appends `s` to `out` with the five HTML-significant characters escaped (safe in text and in
/// double-quoted attribute values).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

impl Html {
    pub(crate) fn new() -> Html {
        Html {
            out: String::with_capacity(4096),
        }
    }

    /// Literal markup written by this crate.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    /// Text from a record, escaped.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        escape_into(&mut self.out, s);
        self
    }

    /// A count or other number (cannot carry markup).
    pub(crate) fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.out, "{n}");
        self
    }

    /// `name="value"` with the value escaped; `name` is a literal.
    pub(crate) fn attr(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value);
        self.out.push('"');
        self
    }

    /// `<tag class="…">text</tag>` in one call.
    pub(crate) fn el(&mut self, open: &'static str, text: &str, close: &'static str) -> &mut Self {
        self.raw(open).text(text).raw(close)
    }

    /// Already-escaped markup produced by another `Html` (or by [`escape`]).
    pub(crate) fn html(&mut self, other: &str) -> &mut Self {
        self.out.push_str(other);
        self
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}
