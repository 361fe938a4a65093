//! HL7 v2 for carerecord: parsing (2.3 to 2.5.1, v2.4 UK in particular), acknowledgements,
//! the MLLP framing codec and the mapping of ADT, ORU and MDM messages to FHIR R4.
//!
//! The crate is pure: it turns bytes into values and values into bytes. The MLLP listener,
//! identity matching and storage live with the ingest; `docs/integrators/hl7v2.md` is the
//! reference for senders.
//!
//! The parser is written here rather than taken from `hl7-parser`: carerecord must tell an
//! empty field from the HL7 null `""`, report every error with its segment index and field
//! number (an ACK's ERR segment names them), decode the full escape set including `\Xhh\`
//! in the message's own character set, and read MSH-18 from raw bytes before anything is
//! decoded. Those needs cover most of what a parser does, and HL7 v2's grammar is small.
#![forbid(unsafe_code)]

mod ack;
mod charset;
mod error;
mod escape;
pub mod map;
mod message;
pub mod mllp;
mod timestamp;

pub use ack::{AckCode, AckError, ack, nack_unparsed};
pub use charset::Charset;
pub use error::{HeaderHint, ParseError, ParseErrorKind};
pub use escape::escape;
pub use message::{Delimiters, Header, Message, Piece, Segment};

/// The HL7 versions this crate accepts (MSH-12).
pub const SUPPORTED_VERSIONS: &[&str] = &["2.3", "2.3.1", "2.4", "2.5", "2.5.1"];

/// Parses one message (without MLLP framing). Bytes are transcoded to UTF-8 by MSH-18 before
/// anything else; a message without MSH-18 must be UTF-8 (ASCII is a subset).
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    message::parse_with(bytes, Charset::Utf8)
}

/// Parses one message whose feed is known to use `default` when MSH-18 is absent (a feed
/// registered as ISO-8859-1, for example).
pub fn parse_with_default_charset(bytes: &[u8], default: Charset) -> Result<Message, ParseError> {
    message::parse_with(bytes, default)
}
