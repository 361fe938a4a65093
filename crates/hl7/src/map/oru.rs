//! ORU^R01: each OBR becomes a DiagnosticReport, each OBX an Observation, NTE notes.
//!
//! Structure: `MSH PID [PV1] { [ORC] OBR [NTE] { OBX [NTE] } }`. Observations are keyed on the
//! filler order number, the observation code and OBX-4 sub-id, so a corrected result (OBX-11
//! `C`) replaces the earlier one instead of adding a second.

use serde_json::{Map, Value, json};

use super::common::{Ctx, conditional, decimal, invalid, missing, obj, put, put_str, unknown_code};
use super::{Entry, EntryAction, Event, MapError, Mapped, PATIENT_PLACEHOLDER, person};
use crate::message::Segment;

const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const SECTION: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const UCUM: &str = "http://unitsofmeasure.org";

struct Group<'a> {
    orc: Option<&'a Segment>,
    obr: &'a Segment,
    notes: Vec<&'a Segment>,
    results: Vec<(&'a Segment, Vec<&'a Segment>)>,
}

fn groups<'a>(c: &Ctx<'a>) -> Result<Vec<Group<'a>>, MapError> {
    let mut out: Vec<Group<'a>> = Vec::new();
    let mut pending_orc = None;
    for seg in c.msg.all_segments() {
        match seg.id() {
            "ORC" => pending_orc = Some(seg),
            "OBR" => out.push(Group {
                orc: pending_orc.take(),
                obr: seg,
                notes: Vec::new(),
                results: Vec::new(),
            }),
            "OBX" => match out.last_mut() {
                Some(g) => g.results.push((seg, Vec::new())),
                None => {
                    return Err(MapError::OutOfSequence(super::Position {
                        segment: seg.id().to_owned(),
                        sequence: seg.sequence(),
                        field: None,
                        component: None,
                    }));
                }
            },
            // NTE before any OBR (notes on the patient) is not mapped.
            "NTE" => {
                if let Some(g) = out.last_mut() {
                    match g.results.last_mut() {
                        Some((_, notes)) => notes.push(seg),
                        None => g.notes.push(seg),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn note_text(notes: &[&Segment]) -> Option<String> {
    let lines: Vec<String> = notes
        .iter()
        .flat_map(|n| n.field(3).repetitions().filter_map(|r| r.text()))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn report_status(obr: &Segment) -> Result<&'static str, MapError> {
    Ok(match obr.text(25).as_deref() {
        None => "unknown",
        Some("O" | "I") => "registered",
        Some("S" | "A") => "partial",
        Some("P" | "R") => "preliminary",
        Some("F") => "final",
        Some("C") => "corrected",
        Some("M") => "amended",
        Some("X") => "cancelled",
        Some(_) => return Err(unknown_code(obr, 25, "0123")),
    })
}

fn result_status(obx: &Segment) -> Result<&'static str, MapError> {
    Ok(match obx.text(11).as_deref() {
        None => return Err(missing(obx, 11)),
        Some("F" | "U") => "final",
        Some("C") => "amended",
        Some("P" | "R" | "S") => "preliminary",
        Some("I") => "registered",
        Some("X" | "N") => "cancelled",
        Some("D" | "W") => "entered-in-error",
        Some(_) => return Err(unknown_code(obx, 11, "0085")),
    })
}

/// Lab units as sent → UCUM, for the handful that are commonly written differently; units
/// already valid in UCUM (`mmol/L`, `g/L`, `%` …) are recognised by the small list below.
fn ucum(unit: &str) -> Option<&str> {
    Some(match unit {
        "10^9/L" | "x10^9/L" | "x10*9/L" | "10*9/L" => "10*9/L",
        "10^12/L" | "x10^12/L" | "x10*12/L" | "10*12/L" => "10*12/L",
        "mmHg" => "mm[Hg]",
        "mL/min/1.73m2" | "ml/min/1.73m2" | "mL/min/{1.73_m2}" => "mL/min/{1.73_m2}",
        "mmol/L" | "umol/L" | "nmol/L" | "pmol/L" | "mmol/mol" | "g/L" | "g/dL" | "mg/L"
        | "ug/L" | "ng/L" | "ng/mL" | "U/L" | "IU/L" | "mU/L" | "mIU/L" | "fL" | "pg" | "%"
        | "s" | "L/L" | "kg" | "g" | "cm" | "m" | "Cel" | "/min" | "mL" | "mosm/kg" | "kPa" => unit,
        _ => return None,
    })
}

/// A Quantity from a decimal and OBX-6 (CE: identifier^text^coding system).
fn quantity(
    value: Value,
    units: Option<(Option<String>, Option<String>, Option<String>)>,
) -> Value {
    let mut q = Map::new();
    q.insert("value".into(), value);
    if let Some((code, text, system)) = units {
        let shown = text.clone().or_else(|| code.clone());
        put_str(&mut q, "unit", shown);
        let ucum_code = match (&system, &code) {
            (Some(s), Some(c)) if s.eq_ignore_ascii_case("UCUM") => Some(c.clone()),
            _ => code.as_deref().and_then(ucum).map(str::to_owned),
        };
        if let Some(u) = ucum_code {
            q.insert("system".into(), Value::String(UCUM.into()));
            q.insert("code".into(), Value::String(u));
        }
    }
    Value::Object(q)
}

type Units = Option<(Option<String>, Option<String>, Option<String>)>;

fn units(obx: &Segment) -> Units {
    let f = obx.field(6);
    let code = f.component(1).text();
    let text = f.component(2).text();
    let system = f.component(3).text();
    (code.is_some() || text.is_some()).then_some((code, text, system))
}

/// OBX-7 `3.5-5.0`, `<5`, `>2`, else text.
fn reference_range(obx: &Segment, units: &Units) -> Option<Value> {
    let text = obx.text(7)?;
    let q = |s: &str| decimal(s).map(|v| quantity(v, units.clone()));
    let t = text.trim();
    let mut r = Map::new();
    if let Some(rest) = t.strip_prefix("<=").or_else(|| t.strip_prefix('<')) {
        put(&mut r, "high", q(rest));
    } else if let Some(rest) = t.strip_prefix(">=").or_else(|| t.strip_prefix('>')) {
        put(&mut r, "low", q(rest));
    } else if let Some((l, h)) = t
        .char_indices()
        .skip(1)
        .find(|(_, ch)| *ch == '-')
        .and_then(|(i, _)| Some((q(&t[..i])?, q(&t[i + 1..])?)))
    {
        r.insert("low".into(), l);
        r.insert("high".into(), h);
    }
    r.insert("text".into(), Value::String(text));
    Some(Value::Array(vec![Value::Object(r)]))
}

fn interpretation(obx: &Segment) -> Option<Value> {
    let codes: Vec<Value> = obx
        .field(8)
        .repetitions()
        .filter_map(|r| r.component(1).text())
        .map(|code| {
            let display = match code.as_str() {
                "H" => Some("High"),
                "L" => Some("Low"),
                "HH" => Some("Critical high"),
                "LL" => Some("Critical low"),
                "A" => Some("Abnormal"),
                "AA" => Some("Critical abnormal"),
                "N" => Some("Normal"),
                _ => None,
            };
            match display {
                Some(d) => json!({"coding": [{"system": INTERPRETATION, "code": code, "display": d}]}),
                None => json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0078", "code": code}]}),
            }
        })
        .collect();
    (!codes.is_empty()).then_some(Value::Array(codes))
}

/// Puts the value[x] of an OBX by its type (OBX-2).
fn value(
    c: &Ctx<'_>,
    obx: &Segment,
    o: &mut Map<String, Value>,
    units: &Units,
) -> Result<(), MapError> {
    let f = obx.field(5);
    if !f.has_value() {
        return Ok(());
    }
    let vtype = obx.text(2).ok_or_else(|| missing(obx, 2))?;
    match vtype.as_str() {
        "NM" => {
            let text = f.repetition(1).text().unwrap_or_default();
            let v = decimal(&text).ok_or_else(|| invalid(obx, 5, "NM value is not a number"))?;
            o.insert("valueQuantity".into(), quantity(v, units.clone()));
        }
        "ST" | "TX" | "FT" => {
            let lines: Vec<String> = f.repetitions().filter_map(|r| r.text()).collect();
            if !lines.is_empty() {
                o.insert("valueString".into(), Value::String(lines.join("\n")));
            }
        }
        "CE" | "CWE" | "CNE" => {
            put(o, "valueCodeableConcept", c.concept(f.repetition(1)));
        }
        "SN" => {
            let r = f.repetition(1);
            let comparator = r.component(1).text();
            let n1 = r.component(2).text();
            let sep = r.component(3).text();
            let n2 = r.component(4).text();
            let num = |s: &Option<String>| -> Result<Value, MapError> {
                s.as_deref()
                    .and_then(decimal)
                    .ok_or_else(|| invalid(obx, 5, "SN value is not a structured numeric"))
            };
            match (sep.as_deref(), &n2) {
                (None, None) => {
                    let mut q = quantity(num(&n1)?, units.clone());
                    match comparator.as_deref() {
                        None | Some("=") => {}
                        Some(cmp @ ("<" | ">" | "<=" | ">=")) => {
                            if let Some(m) = q.as_object_mut() {
                                m.insert("comparator".into(), Value::String(cmp.into()));
                            }
                        }
                        Some(_) => {
                            return Err(invalid(obx, 5, "SN comparator is not one of < > <= >= ="));
                        }
                    }
                    o.insert("valueQuantity".into(), q);
                }
                (Some("-"), Some(_)) => {
                    o.insert(
                        "valueRange".into(),
                        obj([
                            ("low", quantity(num(&n1)?, units.clone())),
                            ("high", quantity(num(&n2)?, units.clone())),
                        ]),
                    );
                }
                (Some(":" | "/"), Some(_)) => {
                    o.insert(
                        "valueRatio".into(),
                        obj([
                            ("numerator", obj([("value", num(&n1)?)])),
                            ("denominator", obj([("value", num(&n2)?)])),
                        ]),
                    );
                }
                (Some("+"), None) => {
                    // Categorical "2+": FHIR has no numeric form for it.
                    let n =
                        n1.ok_or_else(|| invalid(obx, 5, "SN value is not a structured numeric"))?;
                    o.insert("valueString".into(), Value::String(format!("{n}+")));
                }
                _ => return Err(invalid(obx, 5, "SN value is not a structured numeric")),
            }
        }
        "DT" | "TS" | "DTM" => {
            put_str(o, "valueDateTime", c.date_time(obx, 5)?);
        }
        _ => {
            // Other types are kept as the text sent, never dropped.
            put_str(o, "valueString", f.repetition(1).text());
        }
    }
    Ok(())
}

/// What every Observation of one report shares, computed once per report.
struct Shared {
    system: String,
    category: Option<Value>,
    effective: Option<String>,
    issued: Option<String>,
    performer: Value,
}

fn observation(
    c: &Ctx<'_>,
    g: &Shared,
    filler: &str,
    obx: &Segment,
    notes: &[&Segment],
    seen: &mut std::collections::HashMap<String, u32>,
) -> Result<Entry, MapError> {
    let code = c.concept(obx.field(3)).ok_or_else(|| missing(obx, 3))?;
    let code_id = obx
        .field(3)
        .component(1)
        .text()
        .or_else(|| obx.text(1).map(|s| format!("seq{s}")))
        .unwrap_or_else(|| format!("seq{}", obx.sequence()));
    let sub_id = obx.text(4).unwrap_or_else(|| "1".into());
    let mut key_value = format!("{filler}:{code_id}:{sub_id}");
    // Labs often send several OBX with the same code and no sub-id (lines of a comment). Each
    // must stay its own Observation, so the n-th repeat of a key in a report gets `:n`; the
    // same layout resent or corrected gives the same keys.
    let n = seen.entry(key_value.clone()).or_insert(0);
    *n += 1;
    if *n > 1 {
        key_value = format!("{key_value}:{n}");
    }
    let system = g.system.clone();
    let status = result_status(obx)?;

    let mut o = c.resource("Observation");
    o.insert(
        "identifier".into(),
        json!([{"system": system, "value": key_value}]),
    );
    o.insert("status".into(), Value::String(status.into()));
    put(&mut o, "category", g.category.clone());
    o.insert("code".into(), code);
    o.insert("subject".into(), json!({"reference": PATIENT_PLACEHOLDER}));
    let effective = match c.date_time(obx, 14)? {
        Some(t) => Some(t),
        None => g.effective.clone(),
    };
    put_str(&mut o, "effectiveDateTime", effective);
    put_str(&mut o, "issued", g.issued.clone());
    o.insert("performer".into(), g.performer.clone());
    let units = units(obx);
    value(c, obx, &mut o, &units)?;
    if status == "cancelled" && !o.keys().any(|k| k.starts_with("value")) {
        o.insert(
            "dataAbsentReason".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}]}),
        );
    }
    put(&mut o, "interpretation", interpretation(obx));
    put(
        &mut o,
        "note",
        note_text(notes).map(|t| json!([{"text": t}])),
    );
    put(&mut o, "referenceRange", reference_range(obx, &units));
    Ok(Entry {
        resource: Value::Object(o),
        key: Some((system, key_value)),
        action: EntryAction::Upsert,
    })
}

pub(crate) fn map(c: &Ctx<'_>, event: Event) -> Result<Mapped, MapError> {
    let pid = c.required_segment("PID")?;
    let person = person::from_pid(c, pid, c.msg.segment("PD1"))?;
    let groups = groups(c)?;
    if groups.is_empty() {
        return Err(MapError::MissingSegment {
            segment: "OBR".into(),
        });
    }
    let mut entries = Vec::new();
    for g in &groups {
        let filler = g
            .obr
            .field(3)
            .component(1)
            .text()
            .or_else(|| g.orc.and_then(|o| o.field(3).component(1).text()))
            .ok_or_else(|| missing(g.obr, 3))?;
        let shared = Shared {
            system: c.system("observation"),
            category: c
                .table_concept(g.obr.field(24), SECTION)
                .map(|cc| Value::Array(vec![cc])),
            effective: c.date_time(g.obr, 7)?,
            issued: c.instant(g.obr, 22)?.or_else(|| c.message_instant()),
            performer: Value::Array(vec![c.sender_ref()]),
        };
        let mut results = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (obx, notes) in &g.results {
            let entry = observation(c, &shared, &filler, obx, notes, &mut seen)?;
            if let Some((system, value)) = &entry.key {
                results.push(json!({"reference": conditional("Observation", system, value)}));
            }
            entries.push(entry);
        }
        let system = c.system("filler-order-number");
        let mut r = c.resource("DiagnosticReport");
        let mut identifiers = vec![json!({"system": system, "value": filler})];
        if let Some(placer) = g.obr.field(2).component(1).text() {
            identifiers.push(json!({"system": c.system("placer-order-number"), "value": placer}));
        }
        r.insert("identifier".into(), Value::Array(identifiers));
        r.insert("status".into(), Value::String(report_status(g.obr)?.into()));
        put(&mut r, "category", shared.category);
        r.insert(
            "code".into(),
            c.concept(g.obr.field(4)).ok_or_else(|| missing(g.obr, 4))?,
        );
        r.insert("subject".into(), json!({"reference": PATIENT_PLACEHOLDER}));
        put_str(&mut r, "effectiveDateTime", shared.effective);
        put_str(&mut r, "issued", shared.issued);
        r.insert("performer".into(), shared.performer);
        if !results.is_empty() {
            r.insert("result".into(), Value::Array(results));
        }
        put_str(&mut r, "conclusion", note_text(&g.notes));
        entries.push(Entry {
            resource: Value::Object(r),
            key: Some((system, filler)),
            action: EntryAction::Upsert,
        });
    }
    Ok(Mapped {
        event,
        person,
        merge_from: None,
        entries,
        listed_in_full: Vec::new(),
    })
}
