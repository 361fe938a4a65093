//! ADT events: the person (PID/PD1), the encounter (PV1/PV2), merges (MRG), and the
//! allergies (AL1), diagnoses (DG1) and contacts (NK1) of the events whose structure has them.

use serde_json::{Map, Value, json};

use super::common::{Ctx, ODS_SYSTEM, missing, obj, put, put_str};
use super::{
    Entry, EntryAction, Event, MapError, Mapped, PATIENT_PLACEHOLDER, allergy, diagnosis, kin,
    person,
};
use crate::message::{Piece, Segment};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

pub(crate) fn map(c: &Ctx<'_>, event: Event) -> Result<Mapped, MapError> {
    let pid = c.required_segment("PID")?;
    let person = person::from_pid(c, pid, c.msg.segment("PD1"))?;
    let mut mapped = Mapped {
        event,
        person,
        merge_from: None,
        entries: Vec::new(),
        listed_in_full: Vec::new(),
    };
    match event {
        Event::AdtA28 | Event::AdtA31 => {}
        Event::AdtA40 => {
            let mrg = c.required_segment("MRG")?;
            mapped.merge_from = Some(person::from_mrg(c, mrg)?);
        }
        Event::AdtA08 => {
            // An update may carry no visit (a demographics change): then there is no encounter.
            if let Some(pv1) = c.msg.segment("PV1").filter(|p| p.field(19).has_value()) {
                mapped.entries.push(encounter(c, event, pv1)?);
            }
        }
        _ => {
            let pv1 = c.required_segment("PV1")?;
            mapped.entries.push(encounter(c, event, pv1)?);
        }
    }
    // DG1 belongs to the visit: only events that upsert it (not A02, whose structure has no
    // DG1, nor the cancellations, whose visit may never have been stored).
    if matches!(
        event,
        Event::AdtA01 | Event::AdtA03 | Event::AdtA04 | Event::AdtA05 | Event::AdtA08
    ) && let Some(visit) = c.msg.segment("PV1").and_then(|p| p.text(19))
    {
        mapped.entries.extend(diagnosis::diagnoses(c, &visit)?);
    }
    // AL1 and NK1 belong to the person: the events whose structure (ADT_A01, ADT_A05) has them.
    if matches!(
        event,
        Event::AdtA01
            | Event::AdtA04
            | Event::AdtA05
            | Event::AdtA08
            | Event::AdtA13
            | Event::AdtA28
            | Event::AdtA31
    ) {
        mapped.entries.extend(allergy::allergies(c)?);
        let contacts = kin::contacts(c)?;
        // A message naming nobody in NK1 says nothing about the contacts (many feeds leave
        // NK1 out altogether); one naming some lists them all.
        if !contacts.is_empty() {
            mapped
                .listed_in_full
                .push(("RelatedPerson".to_owned(), c.system("related-person")));
        }
        mapped.entries.extend(contacts);
    }
    Ok(mapped)
}

/// PV1-2 (table 0004) as an Encounter.class coding.
fn class(pv1: &Segment) -> Result<Value, MapError> {
    let code = pv1.text(2).ok_or_else(|| missing(pv1, 2))?;
    let v3 = match code.as_str() {
        "I" | "B" => Some(("IMP", "inpatient encounter")),
        "O" | "R" => Some(("AMB", "ambulatory")),
        "E" => Some(("EMER", "emergency")),
        "P" => Some(("PRENC", "pre-admission")),
        _ => None,
    };
    Ok(match v3 {
        Some((code, display)) => json!({"system": ACT_CODE, "code": code, "display": display}),
        // Any other class is kept in the sender's own table rather than guessed.
        None => json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": code}),
    })
}

/// A PL (point of care^room^bed^…) as an Encounter.location.location reference.
fn location_ref(c: &Ctx<'_>, pl: Piece<'_>) -> Option<Value> {
    let parts: Vec<String> = (1..=3)
        .filter_map(|i| pl.component(i).sub(1).text())
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(json!({
        "identifier": {"system": c.system("location"), "value": parts.join("^")},
        "display": parts.join(", "),
    }))
}

/// A discharge destination (PV1-37.1): an ODS code (a care home, another trust) becomes an
/// identifier reference; anything else (a local code such as `HOME`) stays a display.
fn destination(text: &str) -> Value {
    let ods_like = (3..=10).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_digit());
    if ods_like {
        json!({"type": "Location", "identifier": {"system": ODS_SYSTEM, "value": text}, "display": text})
    } else {
        json!({"display": text})
    }
}

/// PV1-7 attending, PV1-8 referring, PV1-9 consulting and PV1-17 admitting doctors (XCN,
/// repeating) as participants typed in v3 ParticipationType.
fn participants(c: &Ctx<'_>, pv1: &Segment) -> Option<Value> {
    let mut out = Vec::new();
    for (field, code, display) in [
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (9, "CON", "consultant"),
        (17, "ADM", "admitter"),
    ] {
        for xcn in pv1.field(field).repetitions() {
            if let Some(individual) = c.practitioner(xcn, false) {
                out.push(obj([
                    (
                        "type",
                        json!([{"coding": [{"system": PARTICIPATION, "code": code, "display": display}]}]),
                    ),
                    ("individual", individual),
                ]));
            }
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// The encounter a PV1 describes, as this event leaves it.
fn encounter(c: &Ctx<'_>, event: Event, pv1: &Segment) -> Result<Entry, MapError> {
    let visit = pv1.text(19).ok_or_else(|| missing(pv1, 19))?;
    let class = class(pv1)?;
    let evn = c.msg.segment("EVN");
    // When the event happened: EVN-6 (occurred), EVN-2 (recorded), then MSH-7.
    let event_time = match evn {
        Some(e) => match c.date_time(e, 6)? {
            Some(t) => Some(t),
            None => c.date_time(e, 2)?,
        },
        None => None,
    }
    .or_else(|| c.message_time());
    let admitted = c.date_time(pv1, 44)?;
    let discharged = c.date_time(pv1, 45)?;

    let (status, action) = match event {
        Event::AdtA05 => ("planned", EntryAction::Upsert),
        Event::AdtA01 | Event::AdtA02 | Event::AdtA04 => ("in-progress", EntryAction::Upsert),
        Event::AdtA03 => ("finished", EntryAction::Upsert),
        Event::AdtA11 => ("cancelled", EntryAction::Cancel),
        Event::AdtA12 | Event::AdtA13 => ("in-progress", EntryAction::Cancel),
        _ => {
            if discharged.is_some() {
                ("finished", EntryAction::Upsert)
            } else if admitted.is_some() {
                ("in-progress", EntryAction::Upsert)
            } else {
                ("planned", EntryAction::Upsert)
            }
        }
    };
    let start = match status {
        "in-progress" | "finished" => admitted.clone().or_else(|| {
            // An admission or registration without PV1-44 started when the event happened.
            matches!(event, Event::AdtA01 | Event::AdtA04)
                .then(|| event_time.clone())
                .flatten()
        }),
        _ => admitted.clone(),
    };
    let end = match (status, event) {
        ("finished", Event::AdtA03) => discharged.clone().or_else(|| event_time.clone()),
        ("finished", _) => discharged.clone(),
        _ => None,
    };

    let system = c.system("visit-number");
    let mut e = c.resource("Encounter");
    e.insert(
        "identifier".into(),
        json!([{"system": system, "value": visit}]),
    );
    e.insert("status".into(), Value::String(status.into()));

    // The statuses this message evidences, with their periods; the ingest may merge them with
    // the history already stored.
    let mut history = Vec::new();
    match status {
        "planned" | "cancelled" => {
            if let Some(t) = &event_time {
                history.push(json!({"status": status, "period": {"start": t}}));
            }
        }
        _ => {
            if let Some(s) = &start {
                let mut period = json!({"start": s});
                if let (Some(en), Some(o)) = (&end, period.as_object_mut()) {
                    o.insert("end".into(), Value::String(en.clone()));
                }
                history.push(obj([
                    ("status", Value::String("in-progress".into())),
                    ("period", period),
                ]));
            }
        }
    }
    if !history.is_empty() {
        e.insert("statusHistory".into(), Value::Array(history));
    }
    e.insert("class".into(), class);
    e.insert("subject".into(), json!({"reference": PATIENT_PLACEHOLDER}));
    put(&mut e, "participant", participants(c, pv1));
    if start.is_some() || end.is_some() {
        let mut period = Map::new();
        put_str(&mut period, "start", start);
        put_str(&mut period, "end", end);
        e.insert("period".into(), Value::Object(period));
    }

    // PV2-3 admit reason.
    put(
        &mut e,
        "reasonCode",
        c.msg
            .segment("PV2")
            .and_then(|pv2| c.concept(pv2.field(3)))
            .map(|r| Value::Array(vec![r])),
    );

    let mut hospitalization = Map::new();
    put(
        &mut hospitalization,
        "admitSource",
        c.table_concept(
            pv1.field(14),
            "http://terminology.hl7.org/CodeSystem/v2-0023",
        ),
    );
    if status == "finished" {
        put(
            &mut hospitalization,
            "dischargeDisposition",
            c.table_concept(
                pv1.field(36),
                "http://terminology.hl7.org/CodeSystem/v2-0112",
            ),
        );
        put(
            &mut hospitalization,
            "destination",
            pv1.field(37).component(1).text().map(|t| destination(&t)),
        );
    }
    if !hospitalization.is_empty() {
        e.insert("hospitalization".into(), Value::Object(hospitalization));
    }

    let mut locations = Vec::new();
    if let Some(current) = location_ref(c, pv1.field(3)) {
        let loc_status = match status {
            "planned" => "planned",
            "finished" | "cancelled" => "completed",
            _ => "active",
        };
        locations.push(obj([
            ("location", current),
            ("status", Value::String(loc_status.into())),
        ]));
    }
    if event == Event::AdtA02
        && let Some(prior) = location_ref(c, pv1.field(6))
    {
        let mut l = obj([
            ("location", prior),
            ("status", Value::String("completed".into())),
        ]);
        if let (Some(t), Some(o)) = (&event_time, l.as_object_mut()) {
            o.insert("period".into(), json!({"end": t}));
        }
        locations.push(l);
    }
    if !locations.is_empty() {
        e.insert("location".into(), Value::Array(locations));
    }
    e.insert("serviceProvider".into(), c.sender_ref());

    Ok(Entry {
        resource: Value::Object(e),
        key: Some((system, visit)),
        action,
    })
}
