//! MDM^T02 (original document with content): TXA + OBX → DocumentReference.
//!
//! The content is embedded in `DocumentReference.content.attachment.data` (base64) rather than
//! a separate Binary: a Binary has no identifier to upsert by, so a resent or corrected
//! document would leave orphans, and one resource keeps the document and its metadata in the
//! same version. Text (TX/FT/ST) becomes a `text/plain` attachment, each ED (e.g. a base64 PDF)
//! an attachment of its own type.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::common::{Ctx, conditional, invalid, missing, obj, put, put_str, unknown_code};
use super::{Entry, EntryAction, Event, MapError, Mapped, PATIENT_PLACEHOLDER, person};
use crate::message::Segment;

fn status(txa: &Segment) -> Result<&'static str, MapError> {
    Ok(match txa.text(19).as_deref() {
        None | Some("AV" | "UN") => "current",
        Some("OB") => "superseded",
        Some("CA") => "entered-in-error",
        Some(_) => return Err(unknown_code(txa, 19, "0275")),
    })
}

fn doc_status(txa: &Segment) -> Result<Option<&'static str>, MapError> {
    Ok(match txa.text(17).as_deref() {
        None => None,
        Some("AU" | "LA") => Some("final"),
        Some("DI" | "DO" | "IN" | "IP" | "PA") => Some("preliminary"),
        Some(_) => return Err(unknown_code(txa, 17, "0271")),
    })
}

fn media_type(kind: Option<&str>, subtype: Option<&str>) -> String {
    let sub = subtype.unwrap_or_default().to_ascii_uppercase();
    match sub.as_str() {
        "PDF" => "application/pdf",
        "HTML" => "text/html",
        "RTF" => "application/rtf",
        "XML" => "text/xml",
        "JPEG" | "JPG" => "image/jpeg",
        "PNG" => "image/png",
        "TIFF" => "image/tiff",
        "PLAIN" | "TXT" => "text/plain",
        _ if sub.contains('/') => return subtype.unwrap_or_default().to_ascii_lowercase(),
        _ if kind.is_some_and(|k| k.eq_ignore_ascii_case("TEXT")) => "text/plain",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// The bytes of an ED value (OBX-5: source^type^subtype^encoding^data).
fn ed_bytes(obx: &Segment) -> Result<(String, Vec<u8>), MapError> {
    let r = obx.field(5).repetition(1);
    let content_type = media_type(
        r.component(2).text().as_deref(),
        r.component(3).text().as_deref(),
    );
    let data = r.component(5).text().ok_or_else(|| missing(obx, 5))?;
    let encoding = r.component(4).text().unwrap_or_else(|| "Base64".into());
    let bytes = match encoding.to_ascii_uppercase().as_str() {
        "BASE64" => {
            let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| invalid(obx, 5, "ED data is not valid base64"))?
        }
        "HEX" => {
            let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if !compact.len().is_multiple_of(2) {
                return Err(invalid(obx, 5, "ED data is not valid hex"));
            }
            compact
                .chunks(2)
                .map(|p| {
                    std::str::from_utf8(p)
                        .ok()
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                        .ok_or_else(|| invalid(obx, 5, "ED data is not valid hex"))
                })
                .collect::<Result<Vec<u8>, MapError>>()?
        }
        "A" | "ASCII" => data.into_bytes(),
        _ => return Err(unknown_code(obx, 5, "0299")),
    };
    Ok((content_type, bytes))
}

fn attachment(
    content_type: &str,
    bytes: &[u8],
    title: Option<&str>,
    creation: Option<&str>,
) -> Value {
    let mut a = Map::new();
    a.insert("contentType".into(), Value::String(content_type.into()));
    a.insert("data".into(), Value::String(STANDARD.encode(bytes)));
    a.insert("size".into(), json!(bytes.len()));
    put_str(&mut a, "title", title.map(str::to_owned));
    put_str(&mut a, "creation", creation.map(str::to_owned));
    obj([("attachment", Value::Object(a))])
}

pub(crate) fn map(c: &Ctx<'_>, event: Event) -> Result<Mapped, MapError> {
    let pid = c.required_segment("PID")?;
    let person = person::from_pid(c, pid, c.msg.segment("PD1"))?;
    let txa = c.required_segment("TXA")?;
    let number = txa
        .field(12)
        .component(1)
        .text()
        .ok_or_else(|| missing(txa, 12))?;
    let obxs: Vec<&Segment> = c.msg.segments("OBX").collect();
    if obxs.is_empty() {
        return Err(MapError::MissingSegment {
            segment: "OBX".into(),
        });
    }
    let doc_type = c.concept(txa.field(2));
    let title = doc_type
        .as_ref()
        .and_then(|t| t.get("text").or_else(|| t.pointer("/coding/0/code")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let creation = match c.date_time(txa, 6)? {
        Some(t) => Some(t),
        None => c.date_time(txa, 4)?,
    };

    let mut content = Vec::new();
    let mut text_lines: Vec<String> = Vec::new();
    for obx in &obxs {
        match obx.text(2).as_deref() {
            Some("ED") => {
                let (ct, bytes) = ed_bytes(obx)?;
                content.push(attachment(
                    &ct,
                    &bytes,
                    title.as_deref(),
                    creation.as_deref(),
                ));
            }
            Some("TX" | "FT" | "ST") => {
                text_lines.extend(
                    obx.field(5)
                        .repetitions()
                        .map(|r| r.text().unwrap_or_default()),
                );
            }
            Some(_) => return Err(unknown_code(obx, 2, "0125")),
            None => return Err(missing(obx, 2)),
        }
    }
    if !text_lines.is_empty() {
        let text = text_lines.join("\n");
        content.insert(
            0,
            attachment(
                "text/plain; charset=utf-8",
                text.as_bytes(),
                title.as_deref(),
                creation.as_deref(),
            ),
        );
    }
    if content.is_empty() {
        return Err(missing(obxs[0], 5));
    }

    let system = c.system("document-number");
    let mut d = c.resource("DocumentReference");
    d.insert(
        "masterIdentifier".into(),
        json!({"system": system, "value": number}),
    );
    d.insert(
        "identifier".into(),
        json!([{"system": system, "value": number}]),
    );
    d.insert("status".into(), Value::String(status(txa)?.into()));
    put_str(&mut d, "docStatus", doc_status(txa)?.map(str::to_owned));
    put(&mut d, "type", doc_type);
    d.insert("subject".into(), json!({"reference": PATIENT_PLACEHOLDER}));
    let date = match c.instant(txa, 4)? {
        Some(t) => Some(t),
        None => c.instant(txa, 6)?,
    }
    .or_else(|| c.message_instant())
    .or_else(|| c.received_instant());
    put_str(&mut d, "date", date);
    d.insert("author".into(), Value::Array(vec![c.sender_ref()]));
    d.insert("custodian".into(), c.sender_ref());
    d.insert("content".into(), Value::Array(content));
    if let Some(visit) = c.msg.segment("PV1").and_then(|p| p.text(19)) {
        let enc_system = c.system("visit-number");
        d.insert(
            "context".into(),
            json!({"encounter": [{
                "reference": conditional("Encounter", &enc_system, &visit),
                "identifier": {"system": enc_system, "value": visit},
            }]}),
        );
    }
    Ok(Mapped {
        event,
        person,
        merge_from: None,
        entries: vec![Entry {
            resource: Value::Object(d),
            key: Some((system, number)),
            action: EntryAction::Upsert,
        }],
        listed_in_full: Vec::new(),
    })
}
