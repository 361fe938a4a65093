//! PID (and PD1, MRG) to an [`IncomingPerson`] and its FHIR Patient.

use carerecord_fhir::{NHS_NUMBER_SYSTEM, NhsNumber};
use serde_json::{Map, Value, json};

use super::common::{Ctx, invalid, missing, pos, put, put_str, unknown_code};
use super::{IncomingPerson, MapError};
use crate::message::{Piece, Segment};

const VERIFICATION_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";

fn verification_display(code: &str) -> &'static str {
    match code {
        "01" => "Number present and verified",
        "02" => "Number present but not traced",
        "03" => "Trace required",
        "04" => "Trace attempted - No match or multiple match found",
        "05" => "Trace needs to be resolved - (NHS number or patient detail conflict)",
        "06" => "Trace in progress",
        "07" => "Number not present and trace not required",
        _ => "Trace postponed (baby under six weeks old)",
    }
}

/// Identifiers of CX lists (PID-3 and PID-2, MRG-1): the NHS number and the local ones.
struct Ids {
    nhs: Option<NhsNumber>,
    local: Vec<(String, String)>,
}

fn identifiers(c: &Ctx<'_>, seg: &Segment, fields: &[usize]) -> Result<Ids, MapError> {
    let mut ids = Ids {
        nhs: None,
        local: Vec::new(),
    };
    for (field, rep) in fields
        .iter()
        .flat_map(|f| seg.field(*f).repetitions().map(move |r| (*f, r)))
    {
        let Some(value) = rep.component(1).text() else {
            continue;
        };
        let authority = rep
            .component(4)
            .sub(1)
            .text()
            .or_else(|| rep.component(4).sub(2).text());
        let type_code = rep.component(5).text();
        let is_nhs = authority
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("NHS"))
            || type_code.as_deref() == Some("NH");
        if is_nhs {
            let nhs = NhsNumber::parse(&value).map_err(|reason| MapError::InvalidNhsNumber {
                at: pos(seg, field, Some(1)),
                reason,
            })?;
            match &ids.nhs {
                Some(existing) if *existing != nhs => {
                    return Err(invalid(seg, field, "two different NHS numbers"));
                }
                _ => ids.nhs = Some(nhs),
            }
        } else {
            let authority = authority.unwrap_or_else(|| c.ods().to_owned());
            if !ids
                .local
                .iter()
                .any(|(a, v)| *a == authority && *v == value)
            {
                ids.local.push((authority, value));
            }
        }
    }
    Ok(ids)
}

fn name_use(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "L" => Some("official"),
        "D" => Some("usual"),
        "M" | "B" => Some("maiden"),
        "N" => Some("nickname"),
        "A" | "S" => Some("anonymous"),
        "T" => Some("temp"),
        _ => None,
    }
}

pub(crate) fn human_names(field: Piece<'_>) -> Vec<Value> {
    field
        .repetitions()
        .filter_map(|rep| {
            let mut n = Map::new();
            let family = rep.component(1).sub(1).text();
            let mut given: Vec<Value> = Vec::new();
            for c in [2, 3] {
                if let Some(g) = rep.component(c).text() {
                    given.extend(g.split_whitespace().map(|s| Value::String(s.to_owned())));
                }
            }
            if family.is_none() && given.is_empty() {
                return None;
            }
            put_str(
                &mut n,
                "use",
                name_use(rep.component(7).text().as_deref()).map(str::to_owned),
            );
            put_str(&mut n, "family", family);
            if !given.is_empty() {
                n.insert("given".into(), Value::Array(given));
            }
            put(
                &mut n,
                "prefix",
                rep.component(5).text().map(|p| json!([p])),
            );
            put(
                &mut n,
                "suffix",
                rep.component(4).text().map(|s| json!([s])),
            );
            Some(Value::Object(n))
        })
        .collect()
}

fn gender(seg: &Segment) -> Result<Option<String>, MapError> {
    let Some(code) = seg.text(8) else {
        return Ok(None);
    };
    Ok(Some(
        match code.to_ascii_uppercase().as_str() {
            "M" => "male",
            "F" => "female",
            "O" | "A" => "other",
            "U" | "N" => "unknown",
            _ => return Err(unknown_code(seg, 8, "0001")),
        }
        .to_owned(),
    ))
}

pub(crate) fn addresses(field: Piece<'_>) -> Vec<Value> {
    field
        .repetitions()
        .filter_map(|rep| {
            let mut a = Map::new();
            let lines: Vec<Value> = [1, 2]
                .iter()
                .filter_map(|c| rep.component(*c).sub(1).text())
                .map(Value::String)
                .collect();
            if !lines.is_empty() {
                a.insert("line".into(), Value::Array(lines));
            }
            put_str(&mut a, "city", rep.component(3).text());
            put_str(&mut a, "district", rep.component(4).text());
            put_str(
                &mut a,
                "postalCode",
                rep.component(5).text().map(|p| p.to_ascii_uppercase()),
            );
            put_str(&mut a, "country", rep.component(6).text());
            put_str(
                &mut a,
                "use",
                match rep.component(7).text().as_deref() {
                    Some("H") => Some("home".into()),
                    Some("B" | "O") => Some("work".into()),
                    Some("C") => Some("temp".into()),
                    _ => None,
                },
            );
            (!a.is_empty()).then_some(Value::Object(a))
        })
        .collect()
}

/// Phones and e-mail addresses from XTN fields, each with its `use`.
pub(crate) fn telecoms(seg: &Segment, fields: &[(usize, &str)]) -> Vec<Value> {
    let mut out = Vec::new();
    for &(field, use_) in fields {
        for rep in seg.field(field).repetitions() {
            let email = rep.component(4).text();
            let number = rep.component(1).text().or_else(|| rep.component(12).text());
            match (rep.component(3).text().as_deref(), email, number) {
                (Some("Internet" | "X.400"), Some(e), _) => {
                    out.push(json!({"system": "email", "value": e, "use": use_}))
                }
                (_, _, Some(n)) => out.push(json!({"system": "phone", "value": n, "use": use_})),
                _ => {}
            }
        }
    }
    out
}

/// The PID-32 verification status (`NSTS01` or `01`).
fn verification(seg: &Segment) -> Result<Option<String>, MapError> {
    for rep in seg.field(32).repetitions() {
        let Some(code) = rep.component(1).text() else {
            continue;
        };
        let short = code.strip_prefix("NSTS").unwrap_or(&code);
        if short.len() == 2 && ("01"..="08").contains(&short) {
            return Ok(Some(short.to_owned()));
        }
        if code.starts_with("NSTS") || code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown_code(seg, 32, "0445"));
        }
        // Other reliability codes (AL, UD, …) say nothing about the NHS number.
    }
    Ok(None)
}

/// The GP practice from PD1-3 (XON): ODS code in XON-10 (2.5) or XON-3 (2.3/2.4).
fn practice(pd1: &Segment) -> Option<Value> {
    let f = pd1.field(3);
    let code = f.component(10).text().or_else(|| f.component(3).text())?;
    let name = f.component(1).text();
    let mut r = super::common::org_ref(&code, name);
    if let Some(o) = r.as_object_mut() {
        o.insert("type".into(), Value::String("Organization".into()));
    }
    Some(r)
}

/// Builds the person from PID (and PD1 when present).
pub(crate) fn from_pid(
    c: &Ctx<'_>,
    pid: &Segment,
    pd1: Option<&Segment>,
) -> Result<IncomingPerson, MapError> {
    // PID-2 (patient ID, external) is deprecated since 2.3.1 but older UK feeds still send
    // it: it is read as one more PID-3 repetition.
    let ids = identifiers(c, pid, &[3, 2])?;
    if ids.nhs.is_none() && ids.local.is_empty() {
        return Err(missing(pid, 3));
    }
    let nhs_verification = verification(pid)?;
    let names = human_names(pid.field(5));
    let birth_date = c.date(pid, 7)?;
    let gender = gender(pid)?;
    let address = addresses(pid.field(11));

    let mut p = c.resource("Patient");
    let mut identifier = Vec::new();
    if let Some(nhs) = &ids.nhs {
        let mut id = json!({"system": NHS_NUMBER_SYSTEM, "value": nhs.as_str()});
        if let (Some(code), Some(o)) = (&nhs_verification, id.as_object_mut()) {
            o.insert(
                "extension".into(),
                json!([{
                    "url": VERIFICATION_EXT,
                    "valueCodeableConcept": {"coding": [{
                        "system": VERIFICATION_SYSTEM,
                        "code": code,
                        "display": verification_display(code),
                    }]},
                }]),
            );
        }
        identifier.push(id);
    }
    for (authority, value) in &ids.local {
        identifier.push(json!({
            "system": super::common::identifier_system(authority, "patient-id"),
            "value": value,
        }));
    }
    p.insert("identifier".into(), Value::Array(identifier));
    p.insert("active".into(), Value::Bool(true));
    if !names.is_empty() {
        p.insert("name".into(), Value::Array(names.clone()));
    }
    let telecom = telecoms(pid, &[(13, "home"), (14, "work")]);
    if !telecom.is_empty() {
        p.insert("telecom".into(), Value::Array(telecom));
    }
    put_str(&mut p, "gender", gender.clone());
    put_str(&mut p, "birthDate", birth_date.clone());
    if let Some(death) = c.date_time(pid, 29)? {
        p.insert("deceasedDateTime".into(), Value::String(death));
    } else if pid.text(30).as_deref() == Some("Y") {
        p.insert("deceasedBoolean".into(), Value::Bool(true));
    }
    if !address.is_empty() {
        p.insert("address".into(), Value::Array(address.clone()));
    }
    // PD1-3 the practice, then PD1-4 (repeats) the GP.
    let mut gps: Vec<Value> = pd1.and_then(practice).into_iter().collect();
    if let Some(pd1) = pd1 {
        gps.extend(
            pd1.field(4)
                .repetitions()
                .filter_map(|xcn| c.practitioner(xcn, true)),
        );
    }
    if !gps.is_empty() {
        p.insert("generalPractitioner".into(), Value::Array(gps));
    }

    // The matching fields come from the first (or the official) name and first address.
    let main_name = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first());
    Ok(IncomingPerson {
        nhs_number: ids.nhs.map(|n| n.as_str().to_owned()),
        nhs_verification,
        local_ids: ids.local,
        family: main_name
            .and_then(|n| n.get("family"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        given: main_name
            .and_then(|n| n.get("given"))
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        birth_date,
        gender,
        postcode: address
            .iter()
            .find_map(|a| a.get("postalCode").and_then(Value::as_str))
            .map(str::to_owned),
        patient: Value::Object(p),
    })
}

/// The person merged away in an A40, from MRG-1 (identifiers) and MRG-7 (name).
pub(crate) fn from_mrg(c: &Ctx<'_>, mrg: &Segment) -> Result<IncomingPerson, MapError> {
    let ids = identifiers(c, mrg, &[1])?;
    if ids.nhs.is_none() && ids.local.is_empty() {
        return Err(missing(mrg, 1));
    }
    let names = human_names(mrg.field(7));
    let mut p = c.resource("Patient");
    let mut identifier = Vec::new();
    if let Some(nhs) = &ids.nhs {
        identifier.push(json!({"system": NHS_NUMBER_SYSTEM, "value": nhs.as_str()}));
    }
    for (authority, value) in &ids.local {
        identifier.push(json!({
            "system": super::common::identifier_system(authority, "patient-id"),
            "value": value,
        }));
    }
    p.insert("identifier".into(), Value::Array(identifier));
    if !names.is_empty() {
        p.insert("name".into(), Value::Array(names.clone()));
    }
    let first = names.first();
    Ok(IncomingPerson {
        nhs_number: ids.nhs.map(|n| n.as_str().to_owned()),
        nhs_verification: None,
        local_ids: ids.local,
        family: first
            .and_then(|n| n.get("family"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        given: first
            .and_then(|n| n.get("given"))
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        birth_date: None,
        gender: None,
        postcode: None,
        patient: Value::Object(p),
    })
}
