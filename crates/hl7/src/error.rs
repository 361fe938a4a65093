//! Why a message could not be parsed, and where.

use std::fmt;

/// What went wrong. Messages never quote the message's content (it may be clinical or
/// personal), only positions, lengths and declared settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("the message is empty")]
    Empty,
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    #[error("MSH-1/MSH-2 do not hold a usable field separator and encoding characters")]
    BadEncodingCharacters,
    #[error(
        "character set {0:?} in MSH-18 is not supported (ASCII, 8859/1, 8859/15, UNICODE UTF-8)"
    )]
    UnsupportedCharset(String),
    #[error("byte {offset} is not valid in the declared character set {charset}")]
    InvalidForCharset { charset: String, offset: usize },
    #[error(
        "byte {offset} is not UTF-8 and MSH-18 declares no character set (declare 8859/1 or send UTF-8)"
    )]
    UndeclaredNonUtf8 { offset: usize },
    #[error("control character 0x{byte:02X} inside the message (a framing byte or binary data)")]
    ControlCharacter { byte: u8 },
    #[error("segment id is not three upper-case letters or digits")]
    BadSegmentId,
    #[error("required field is empty")]
    MissingField,
    #[error("version {0:?} in MSH-12 is not supported (2.3, 2.3.1, 2.4, 2.5, 2.5.1)")]
    UnsupportedVersion(String),
}

/// The best-effort reading of MSH fields of a message that failed to parse, so a negative
/// acknowledgement can still be addressed and echo MSH-10.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderHint {
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub trigger_event: String,
    pub control_id: String,
    pub processing_id: String,
    pub version: String,
}

/// A message that could not be parsed: what and where (segment index from 0, segment id, field
/// number), plus what could be read of its MSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    /// Position of the segment in the message, MSH being 0.
    pub segment_index: Option<usize>,
    pub segment_id: Option<String>,
    pub field: Option<u32>,
    /// Boxed: it is rarely read and would make every `Result` carrying the error large.
    pub hint: Box<HeaderHint>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind) -> Self {
        ParseError {
            kind,
            segment_index: None,
            segment_id: None,
            field: None,
            hint: Box::default(),
        }
    }

    pub(crate) fn at(mut self, index: usize, id: &str, field: Option<u32>) -> Self {
        self.segment_index = Some(index);
        self.segment_id = Some(id.to_owned());
        self.field = field;
        self
    }

    /// The HL7 table 0357 error code for this error.
    pub fn hl7_error_code(&self) -> &'static str {
        match self.kind {
            ParseErrorKind::MissingField => "101",
            ParseErrorKind::UnsupportedVersion(_) => "203",
            ParseErrorKind::NoMsh | ParseErrorKind::BadSegmentId => "100",
            _ => "102",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.segment_id, self.segment_index, self.field) {
            (Some(id), Some(i), Some(n)) => {
                write!(f, "{id}-{n} (segment {}): {}", i + 1, self.kind)
            }
            (Some(id), Some(i), None) => write!(f, "{id} (segment {}): {}", i + 1, self.kind),
            (None, Some(i), _) => write!(f, "segment {}: {}", i + 1, self.kind),
            _ => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ParseError {}
