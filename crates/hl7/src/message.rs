//! The parsed message: segments of fields, each field split into repetitions, components and
//! subcomponents when read. Values stay escaped until asked for with [`Piece::text`].

use crate::SUPPORTED_VERSIONS;
use crate::charset::{self, Charset};
use crate::error::{HeaderHint, ParseError, ParseErrorKind};
use crate::escape;

/// The delimiters a message declares in MSH-1 and MSH-2, and its character set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    /// `None` when MSH-2 declares no escape character (then nothing is unescaped).
    pub escape: Option<char>,
    pub subcomponent: char,
    pub charset: Charset,
}

/// Stands in for a delimiter MSH-2 leaves out: a character no split will ever find (field
/// text has had control characters refused).
const ABSENT: char = '\u{0}';

impl Delimiters {
    /// `|^~\&`, what carerecord itself writes.
    pub fn standard(charset: Charset) -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: Some('\\'),
            subcomponent: '&',
            charset,
        }
    }

    /// MSH-2 as carerecord writes it.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::new();
        s.push(self.component);
        s.push(self.repetition);
        if let Some(e) = self.escape {
            s.push(e);
        }
        if self.subcomponent != ABSENT {
            s.push(self.subcomponent);
        }
        s
    }
}

/// A field, repetition, component or subcomponent as it stands in the message (escaped).
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    raw: &'a str,
    d: &'a Delimiters,
}

impl<'a> Piece<'a> {
    /// The escaped text, delimiters included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Nothing was sent: the sender says nothing about this value.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The HL7 null `""`: the sender says the value is now absent (delete it).
    pub fn is_null(&self) -> bool {
        self.raw == "\"\""
    }

    /// Neither empty nor null.
    pub fn has_value(&self) -> bool {
        !self.is_empty() && !self.is_null()
    }

    /// The decoded text (escapes resolved), or `None` when empty or null. Read it on leaves
    /// (components of simple types, subcomponents); on a composite it keeps the delimiters.
    pub fn text(&self) -> Option<String> {
        if !self.has_value() {
            return None;
        }
        let t = escape::decode(self.raw, self.d);
        let trimmed = t.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == t.len() {
            Some(t)
        } else {
            Some(trimmed.to_owned())
        }
    }

    fn split(&self, c: char) -> impl Iterator<Item = Piece<'a>> + use<'a> {
        let d = self.d;
        self.raw.split(c).map(move |raw| Piece { raw, d })
    }

    fn nth(&self, c: char, n: usize) -> Piece<'a> {
        let raw = n
            .checked_sub(1)
            .and_then(|i| self.raw.split(c).nth(i))
            .unwrap_or("");
        Piece { raw, d: self.d }
    }

    /// The repetitions of a field (one, possibly empty, when it does not repeat).
    pub fn repetitions(&self) -> impl Iterator<Item = Piece<'a>> + use<'a> {
        self.split(self.d.repetition)
    }

    /// Repetition `n` (from 1).
    pub fn repetition(&self, n: usize) -> Piece<'a> {
        self.nth(self.d.repetition, n)
    }

    /// The components of this piece (of its first repetition, if it is a whole field).
    pub fn components(&self) -> impl Iterator<Item = Piece<'a>> + use<'a> {
        let first = self.repetition(1);
        first.split(self.d.component)
    }

    /// Component `n` (from 1) of the first repetition.
    pub fn component(&self, n: usize) -> Piece<'a> {
        self.repetition(1).nth(self.d.component, n)
    }

    /// Subcomponent `n` (from 1) of this piece.
    pub fn sub(&self, n: usize) -> Piece<'a> {
        self.nth(self.d.subcomponent, n)
    }
}

/// One segment: its id and fields, numbered as HL7 numbers them (MSH-1 is the field separator).
#[derive(Debug, Clone)]
pub struct Segment {
    index: usize,
    sequence: u32,
    /// `fields[0]` is the segment id; `fields[n]` is field n.
    fields: Vec<String>,
    delimiters: std::sync::Arc<Delimiters>,
}

impl Segment {
    /// The three-character segment id.
    pub fn id(&self) -> &str {
        self.fields.first().map(String::as_str).unwrap_or("")
    }

    /// Position in the message, MSH being 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its number among the segments with the same id, from 1 (ERR-2.2).
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Field `n` (from 1); empty when the segment stops before it.
    pub fn field(&self, n: usize) -> Piece<'_> {
        let raw = if n == 0 {
            ""
        } else {
            self.fields.get(n).map(String::as_str).unwrap_or("")
        };
        Piece {
            raw,
            d: &self.delimiters,
        }
    }

    /// The decoded text of field `n`, component 1 (the common case for simple fields).
    pub fn text(&self, n: usize) -> Option<String> {
        self.field(n).component(1).sub(1).text()
    }

    /// The number of the last field present.
    pub fn field_count(&self) -> usize {
        self.fields.len().saturating_sub(1)
    }
}

/// MSH, read once when the message is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// MSH-3, first component.
    pub sending_application: String,
    /// MSH-4, first component (the sender's ODS code in UK feeds).
    pub sending_facility: String,
    /// MSH-5, first component.
    pub receiving_application: String,
    /// MSH-6, first component.
    pub receiving_facility: String,
    /// MSH-7 as sent.
    pub timestamp: Option<String>,
    /// MSH-9.1, e.g. `ADT`.
    pub message_code: String,
    /// MSH-9.2, e.g. `A01` (empty for messages that carry none, like some ACKs).
    pub trigger_event: String,
    /// MSH-9.3, e.g. `ADT_A01`.
    pub structure: Option<String>,
    /// MSH-10.
    pub control_id: String,
    /// MSH-11.1 (`P`, `T`, `D`).
    pub processing_id: String,
    /// MSH-12.1.
    pub version: String,
    /// MSH-18.1 as sent, when sent.
    pub charset: Option<String>,
}

/// A parsed HL7 v2 message.
#[derive(Debug, Clone)]
pub struct Message {
    header: Header,
    segments: Vec<Segment>,
    delimiters: std::sync::Arc<Delimiters>,
}

impl Message {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The segments with this id, in message order.
    pub fn segments<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id() == id)
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id() == id)
    }

    /// Every segment, in order (Z-segments included).
    pub fn all_segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }
}

fn delimiters_from(first_line: &str, default: Charset) -> Result<Delimiters, ParseError> {
    let bad = || ParseError::new(ParseErrorKind::BadEncodingCharacters).at(0, "MSH", Some(2));
    let mut chars = first_line.chars().skip(3);
    let field = chars.next().ok_or_else(bad)?;
    let enc: Vec<char> = chars.take_while(|c| *c != field).collect();
    if enc.len() < 2 || enc.len() > 5 {
        return Err(bad());
    }
    let mut all = vec![field];
    all.extend(enc.iter().take(4));
    for (i, c) in all.iter().enumerate() {
        if c.is_alphanumeric() || c.is_whitespace() || c.is_control() || all[..i].contains(c) {
            return Err(bad());
        }
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc.get(2).copied(),
        subcomponent: enc.get(3).copied().unwrap_or(ABSENT),
        charset: default,
    })
}

fn valid_segment_id(id: &str) -> bool {
    id.len() == 3
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

pub(crate) fn parse_with(bytes: &[u8], default: Charset) -> Result<Message, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| ParseError::new(ParseErrorKind::Empty))?;
    let bytes = &bytes[start..];
    if !bytes.starts_with(b"MSH") {
        return Err(ParseError::new(ParseErrorKind::NoMsh).at(0, "", None));
    }
    let hint = Box::new(hint_from_bytes(bytes));
    let with_hint = |mut e: ParseError| {
        e.hint = hint.clone();
        e
    };
    let (text, charset) =
        charset::transcode(bytes, default).map_err(|e| with_hint(e.at(0, "MSH", Some(18))))?;
    let mut lines = text.split(['\r', '\n']).filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .ok_or_else(|| with_hint(ParseError::new(ParseErrorKind::Empty)))?;
    let mut d = delimiters_from(first, charset).map_err(with_hint)?;
    d.charset = charset;
    let d = std::sync::Arc::new(d);

    let mut segments: Vec<Segment> = Vec::new();
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (index, line) in std::iter::once(first).chain(lines).enumerate() {
        if let Some(byte) = line
            .bytes()
            .find(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7F)
        {
            let id = line
                .get(..3)
                .filter(|id| valid_segment_id(id))
                .unwrap_or("");
            return Err(with_hint(
                ParseError::new(ParseErrorKind::ControlCharacter { byte }).at(index, id, None),
            ));
        }
        let mut fields: Vec<String> = line.split(d.field).map(str::to_owned).collect();
        let id = fields.first().cloned().unwrap_or_default();
        if !valid_segment_id(&id) {
            return Err(with_hint(
                ParseError::new(ParseErrorKind::BadSegmentId).at(index, "", None),
            ));
        }
        if index == 0 {
            // MSH-1 is the separator itself, so MSH-2 is the first split piece.
            fields.insert(1, d.field.to_string());
        }
        let sequence = {
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            *n
        };
        segments.push(Segment {
            index,
            sequence,
            fields,
            delimiters: d.clone(),
        });
    }
    let header = header_from(&segments[0]).map_err(with_hint)?;
    Ok(Message {
        header,
        segments,
        delimiters: d,
    })
}

fn header_from(msh: &Segment) -> Result<Header, ParseError> {
    let first = |n: usize| msh.field(n).component(1).sub(1).text();
    let required = |n: usize| {
        first(n).ok_or_else(|| {
            ParseError::new(ParseErrorKind::MissingField).at(0, "MSH", Some(n as u32))
        })
    };
    let message_code = required(9)?;
    let control_id = required(10)?;
    let version = required(12)?;
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(
            ParseError::new(ParseErrorKind::UnsupportedVersion(version)).at(0, "MSH", Some(12)),
        );
    }
    Ok(Header {
        sending_application: first(3).unwrap_or_default(),
        sending_facility: first(4).unwrap_or_default(),
        receiving_application: first(5).unwrap_or_default(),
        receiving_facility: first(6).unwrap_or_default(),
        timestamp: first(7),
        message_code,
        trigger_event: msh.field(9).component(2).text().unwrap_or_default(),
        structure: msh.field(9).component(3).text(),
        control_id,
        processing_id: first(11).unwrap_or_default(),
        version,
        charset: msh.field(18).repetition(1).component(1).text(),
    })
}

/// Reads what it can of MSH from raw bytes, for a negative acknowledgement of a message that
/// does not parse. Non-ASCII bytes are replaced: these values only address the reply.
fn hint_from_bytes(bytes: &[u8]) -> HeaderHint {
    let end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(bytes.len());
    let line = String::from_utf8_lossy(&bytes[..end]);
    let mut chars = line.chars().skip(3);
    let Some(sep) = chars.next() else {
        return HeaderHint::default();
    };
    let comp = chars.next().filter(|c| *c != sep).unwrap_or('^');
    let pieces: Vec<&str> = line.split(sep).collect();
    // pieces[k] is MSH-(k+1) for k >= 1
    let get = |n: usize| -> String {
        pieces
            .get(n - 1)
            .and_then(|f| f.split(comp).next())
            .map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    let trigger = pieces
        .get(8)
        .and_then(|f| f.split(comp).nth(1))
        .map(|s| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(8)
                .collect()
        })
        .unwrap_or_default();
    HeaderHint {
        sending_application: get(3),
        sending_facility: get(4),
        receiving_application: get(5),
        receiving_facility: get(6),
        trigger_event: trigger,
        control_id: get(10),
        processing_id: get(11),
        version: get(12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const ADT: &str = "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20261101120000||ADT^A01^ADT_A01|MSG0001|P|2.4\r\
        EVN|A01|20261101120000\r\
        PID|||9990000018^^^NHS^NH~M123456^^^ZRH01^MR||SMITH^JOHN^PAUL||19400101|M\r\
        ZU1|anything|at^all\r\
        PV1|1|I|WARD1^ROOM2^BED3||||||||||||||||V0001\r";

    #[test]
    fn msh_fields_are_numbered_as_hl7_numbers_them() -> Result<(), ParseError> {
        let m = parse(ADT.as_bytes())?;
        let h = m.header();
        assert_eq!(h.sending_application, "PAS");
        assert_eq!(h.sending_facility, "ZRH01");
        assert_eq!(h.message_code, "ADT");
        assert_eq!(h.trigger_event, "A01");
        assert_eq!(h.structure.as_deref(), Some("ADT_A01"));
        assert_eq!(h.control_id, "MSG0001");
        assert_eq!(h.version, "2.4");
        let msh = &m.all_segments()[0];
        assert_eq!(msh.field(1).raw(), "|");
        assert_eq!(msh.field(2).raw(), "^~\\&");
        Ok(())
    }

    #[test]
    fn repeats_components_and_subcomponents_split() -> Result<(), ParseError> {
        let m = parse(ADT.as_bytes())?;
        let pid = m
            .segment("PID")
            .ok_or(ParseError::new(ParseErrorKind::Empty))?;
        let ids: Vec<_> = pid
            .field(3)
            .repetitions()
            .map(|r| r.component(1).text())
            .collect();
        assert_eq!(ids, vec![Some("9990000018".into()), Some("M123456".into())]);
        assert_eq!(
            pid.field(3).repetition(2).component(4).text().as_deref(),
            Some("ZRH01")
        );
        assert_eq!(pid.field(5).component(2).text().as_deref(), Some("JOHN"));
        assert_eq!(m.segments("ZU1").count(), 1);
        assert_eq!(
            m.segment("PV1").and_then(|s| s.text(19)).as_deref(),
            Some("V0001")
        );
        Ok(())
    }

    #[test]
    fn empty_and_null_fields_are_told_apart() -> Result<(), ParseError> {
        let m = parse(b"MSH|^~\\&|A|B|C|D|||ADT^A31|1|P|2.4\rPID|||1||\"\"||\r")?;
        let pid = m
            .segment("PID")
            .ok_or(ParseError::new(ParseErrorKind::Empty))?;
        assert!(pid.field(5).is_null());
        assert!(!pid.field(5).is_empty());
        assert!(pid.field(7).is_empty());
        assert!(pid.field(40).is_empty());
        assert_eq!(pid.field(5).text(), None);
        Ok(())
    }

    #[test]
    fn encoding_characters_come_from_msh_2() -> Result<(), ParseError> {
        let m = parse(b"MSH#$*@%#A#B#C#D###ADT$A31#1#P#2.4\rPID###9990000018$$$NHS*X$$$Z#$@F@\r")?;
        let pid = m
            .segment("PID")
            .ok_or(ParseError::new(ParseErrorKind::Empty))?;
        assert_eq!(pid.field(3).repetition(2).text().as_deref(), Some("X$$$Z"));
        assert_eq!(pid.field(3).component(4).text().as_deref(), Some("NHS"));
        assert_eq!(pid.field(4).component(2).text().as_deref(), Some("#"));
        Ok(())
    }

    #[test]
    fn lf_and_crlf_separate_segments_too() -> Result<(), ParseError> {
        for sep in ["\n", "\r\n"] {
            let text = ADT.replace('\r', sep);
            let m = parse(text.as_bytes())?;
            assert_eq!(m.all_segments().len(), 5);
        }
        Ok(())
    }

    #[test]
    fn unsupported_version_is_an_error_at_msh_12() {
        let err = parse(b"MSH|^~\\&|A|B|C|D|||ADT^A01|X9|P|2.2\rPID|1\r").err();
        let err = err.map(|e| (e.kind, e.field, e.hint.control_id));
        assert_eq!(
            err,
            Some((
                ParseErrorKind::UnsupportedVersion("2.2".into()),
                Some(12),
                "X9".into()
            ))
        );
    }

    #[test]
    fn missing_control_id_names_msh_10() {
        let err = parse(b"MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.4\r").err();
        assert_eq!(
            err.map(|e| (e.kind, e.field)),
            Some((ParseErrorKind::MissingField, Some(10)))
        );
    }

    #[test]
    fn a_broken_segment_is_reported_by_position() {
        let err = parse(b"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.4\rEVN|A01\rP\r").err();
        assert_eq!(
            err.map(|e| (e.kind, e.segment_index)),
            Some((ParseErrorKind::BadSegmentId, Some(2)))
        );
    }

    #[test]
    fn latin1_without_msh18_is_refused_and_with_it_decoded() {
        let body = b"MSH|^~\\&|A|B|C|D|||ADT^A31|1|P|2.4\rPID|||1||M\xdcLLER^Z\xd6E\r";
        let err = parse(body).err().map(|e| e.kind);
        assert!(matches!(
            err,
            Some(ParseErrorKind::UndeclaredNonUtf8 { .. })
        ));
        let declared =
            b"MSH|^~\\&|A|B|C|D|||ADT^A31|1|P|2.4||||||8859/1\rPID|||1||M\xdcLLER^Z\xd6E\r";
        let m = parse(declared);
        let family = m.ok().and_then(|m| {
            m.segment("PID")
                .and_then(|p| p.field(5).component(1).text())
        });
        assert_eq!(family.as_deref(), Some("MÜLLER"));
        let m = crate::parse_with_default_charset(body, Charset::Latin1);
        assert!(m.is_ok());
    }

    #[test]
    fn ascii_declared_refuses_high_bytes() {
        let body = b"MSH|^~\\&|A|B|C|D|||ADT^A31|1|P|2.4||||||ASCII\rPID|||1||M\xdcLLER\r";
        let err = parse(body).err().map(|e| e.kind);
        assert!(matches!(
            err,
            Some(ParseErrorKind::InvalidForCharset { .. })
        ));
    }

    #[test]
    fn unknown_charset_is_refused() {
        let body = b"MSH|^~\\&|A|B|C|D|||ADT^A31|1|P|2.4||||||EBCDIC\r";
        let err = parse(body).err().map(|e| e.kind);
        assert_eq!(
            err,
            Some(ParseErrorKind::UnsupportedCharset("EBCDIC".into()))
        );
    }
}
