//! HL7 escape sequences: decoded when a value is read, encoded when carerecord writes one.

use crate::charset::Charset;
use crate::message::Delimiters;

/// Decodes the escape sequences of one leaf value (no delimiters left in it).
///
/// `\F\ \S\ \T\ \R\ \E\` become the delimiters, `\.br\` a line break, `\Xhh..\` the bytes in
/// the message's character set; formatting (`\H\ \N\ \.sp\ …`) and locally defined (`\Z..\`)
/// sequences are dropped. An unterminated or malformed sequence is kept as written: text is
/// never lost because a sender got an escape wrong.
pub(crate) fn decode(raw: &str, d: &Delimiters) -> String {
    let Some(esc) = d.escape else {
        return raw.to_owned();
    };
    if !raw.contains(esc) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let seq = &after[..end];
        if !expand(seq, d, &mut out) {
            // Not a sequence we know: keep it literally.
            out.push(esc);
            out.push_str(seq);
            out.push(esc);
        }
        rest = &after[end + esc.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Appends the expansion of `seq` (without its escape characters); false if unknown.
fn expand(seq: &str, d: &Delimiters, out: &mut String) -> bool {
    match seq {
        "F" => out.push(d.field),
        "S" => out.push(d.component),
        "T" => out.push(d.subcomponent),
        "R" => out.push(d.repetition),
        "E" => {
            if let Some(e) = d.escape {
                out.push(e);
            }
        }
        ".br" => out.push('\n'),
        "H" | "N" => {}
        _ if seq.starts_with('.') => {}
        _ if seq.starts_with('Z') || seq.starts_with('C') || seq.starts_with('M') => {}
        _ if seq.starts_with('X') => {
            let hex = &seq[1..];
            if hex.is_empty()
                || !hex.len().is_multiple_of(2)
                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return false;
            }
            let bytes: Vec<u8> = hex
                .as_bytes()
                .chunks(2)
                .filter_map(|p| std::str::from_utf8(p).ok())
                .filter_map(|p| u8::from_str_radix(p, 16).ok())
                .collect();
            out.push_str(&d.charset.decode_lossy(&bytes));
        }
        _ => return false,
    }
    true
}

/// Escapes `text` for use as one leaf value with the standard delimiters `|^~\&` (what
/// carerecord writes in ACKs). Line breaks become `\.br\`; other control characters are dropped.
pub fn escape(text: &str) -> String {
    escape_with(text, &Delimiters::standard(Charset::Utf8))
}

pub(crate) fn escape_with(text: &str, d: &Delimiters) -> String {
    let esc = d.escape.unwrap_or('\\');
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let code = if c == d.field {
            Some("F")
        } else if c == d.component {
            Some("S")
        } else if c == d.subcomponent {
            Some("T")
        } else if c == d.repetition {
            Some("R")
        } else if c == esc {
            Some("E")
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(esc);
                out.push_str(code);
                out.push(esc);
            }
            None if c == '\r' || c == '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(esc);
                out.push_str(".br");
                out.push(esc);
            }
            None if c.is_control() => {}
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Delimiters {
        Delimiters::standard(Charset::Utf8)
    }

    #[test]
    fn every_standard_escape_decodes_to_its_character() {
        assert_eq!(decode(r"a\F\b\S\c\T\d\R\e\E\f", &d()), "a|b^c&d~e\\f");
        assert_eq!(decode(r"line one\.br\line two", &d()), "line one\nline two");
    }

    #[test]
    fn hex_escape_decodes_in_the_message_charset() {
        assert_eq!(decode(r"caf\XC3A9\", &d()), "café");
        let latin = Delimiters::standard(Charset::Latin1);
        assert_eq!(decode(r"caf\XE9\", &latin), "café");
    }

    #[test]
    fn formatting_sequences_are_dropped_and_malformed_ones_kept() {
        assert_eq!(decode(r"\H\bold\N\", &d()), "bold");
        assert_eq!(decode(r"a\Q\b", &d()), r"a\Q\b");
        assert_eq!(
            decode(r"trailing \ backslash", &d()),
            r"trailing \ backslash"
        );
        assert_eq!(decode(r"\XZZ\", &d()), r"\XZZ\");
    }

    #[test]
    fn escape_then_decode_round_trips() {
        let text = "a|b^c&d~e\\f\nnext line";
        assert_eq!(decode(&escape(text), &d()), text);
        assert!(!escape(text).contains('|'));
    }
}
