//! MSH-18 character sets: read from the raw bytes, then the whole message is transcoded to
//! UTF-8 before it is split, so every later step works on `str`.

use std::borrow::Cow;

use encoding_rs::Encoding;

use crate::error::{ParseError, ParseErrorKind};

/// The character sets carerecord accepts in MSH-18 (HL7 table 0211).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `ASCII`: bytes above 0x7F are an error.
    Ascii,
    /// `8859/1` (Latin-1).
    Latin1,
    /// `8859/15` (Latin-9, with €).
    Latin9,
    /// `UNICODE UTF-8`.
    Utf8,
}

impl Charset {
    /// Reads an MSH-18 value (table 0211); `None` for one carerecord does not support.
    pub fn from_hl7(code: &str) -> Option<Charset> {
        match code.trim().to_ascii_uppercase().as_str() {
            "ASCII" => Some(Charset::Ascii),
            "8859/1" => Some(Charset::Latin1),
            "8859/15" => Some(Charset::Latin9),
            "UNICODE UTF-8" | "UTF-8" => Some(Charset::Utf8),
            _ => None,
        }
    }

    /// The table 0211 code.
    pub fn hl7_code(self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Latin1 => "8859/1",
            Charset::Latin9 => "8859/15",
            Charset::Utf8 => "UNICODE UTF-8",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            // encoding_rs follows the WHATWG Encoding Standard, where the ISO-8859-1 label
            // means windows-1252. That is a superset for the printable range; 0x80-0x9F are
            // C1 controls in true Latin-1, never text in a real message, so reading them as
            // windows-1252 punctuation loses nothing a sender meant.
            Charset::Latin1 => encoding_rs::WINDOWS_1252,
            Charset::Latin9 => encoding_rs::ISO_8859_15,
            Charset::Ascii | Charset::Utf8 => encoding_rs::UTF_8,
        }
    }

    /// Decodes `bytes` (bytes of a `\Xhh\` escape, or a whole message).
    pub(crate) fn decode_lossy(self, bytes: &[u8]) -> String {
        self.encoding()
            .decode_without_bom_handling(bytes)
            .0
            .into_owned()
    }
}

/// Reads MSH-18 (first repetition, first component) from the raw first segment. The field
/// separator is the byte after `MSH`; MSH-18 is the 17th separator-delimited piece after it.
fn declared(bytes: &[u8]) -> Option<&[u8]> {
    let sep = *bytes.get(3)?;
    let end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(bytes.len());
    let first = &bytes[..end];
    // pieces: [0]="MSH", [1]=MSH-2, [n]=MSH-(n+1)
    let msh18 = first.split(|b| *b == sep).nth(17)?;
    let rep = bytes.get(5).copied();
    let comp = bytes.get(4).copied();
    let v = msh18
        .split(|b| Some(*b) == rep)
        .next()?
        .split(|b| Some(*b) == comp)
        .next()?;
    let v = v.trim_ascii();
    (!v.is_empty()).then_some(v)
}

/// Transcodes a message to UTF-8 by MSH-18, or by `default` when MSH-18 is absent.
pub(crate) fn transcode(
    bytes: &[u8],
    default: Charset,
) -> Result<(Cow<'_, str>, Charset), ParseError> {
    let charset = match declared(bytes) {
        Some(code) => {
            let code = String::from_utf8_lossy(code);
            Charset::from_hl7(&code).ok_or_else(|| {
                ParseError::new(ParseErrorKind::UnsupportedCharset(code.into_owned()))
            })?
        }
        None => default,
    };
    let declared_explicitly = declared(bytes).is_some();
    match charset {
        Charset::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(offset) => Err(ParseError::new(ParseErrorKind::InvalidForCharset {
                charset: charset.hl7_code().to_owned(),
                offset,
            })),
            None => Ok((Cow::Borrowed(ascii_str(bytes)), charset)),
        },
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok((Cow::Borrowed(s), charset)),
            Err(e) => {
                let offset = e.valid_up_to();
                Err(ParseError::new(if declared_explicitly {
                    ParseErrorKind::InvalidForCharset {
                        charset: charset.hl7_code().to_owned(),
                        offset,
                    }
                } else {
                    ParseErrorKind::UndeclaredNonUtf8 { offset }
                }))
            }
        },
        Charset::Latin1 | Charset::Latin9 => {
            // Single-byte sets map every byte, so decoding cannot fail.
            let (text, _) = charset.encoding().decode_without_bom_handling(bytes);
            Ok((text, charset))
        }
    }
}

fn ascii_str(bytes: &[u8]) -> &str {
    // Only called after checking every byte is ASCII, which is valid UTF-8.
    std::str::from_utf8(bytes).unwrap_or_default()
}
