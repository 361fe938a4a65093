//! The few facts of a Patient resource that lists and search results show (the record page
//! itself uses the record crate's header).

use carerecord_fhir::NhsNumber;
use serde_json::Value;

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// The name to show: the official (or first) name, given names then family name.
pub fn name(patient: &Value) -> String {
    let names = patient["name"].as_array().cloned().unwrap_or_default();
    let chosen = names
        .iter()
        .find(|n| n["use"] == "official")
        .or_else(|| names.first());
    let Some(n) = chosen else {
        return "Name not recorded".to_owned();
    };
    if let Some(text) = n["text"].as_str() {
        return text.to_owned();
    }
    let mut parts: Vec<&str> = n["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(f) = n["family"].as_str() {
        parts.push(f);
    }
    if parts.is_empty() {
        "Name not recorded".to_owned()
    } else {
        parts.join(" ")
    }
}

/// The NHS number as `999 123 4567`, when the Patient carries a valid one.
pub fn nhs_number(patient: &Value) -> Option<String> {
    patient["identifier"]
        .as_array()?
        .iter()
        .filter(|i| i["system"] == NHS_NUMBER_SYSTEM)
        .find_map(|i| NhsNumber::parse(i["value"].as_str()?).ok())
        .map(|n| n.formatted())
}

/// The date of birth as `2 March 1941`, or as recorded when it is only partial.
pub fn born(patient: &Value) -> Option<String> {
    let raw = patient["birthDate"].as_str()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let out = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    Some(
        time::Date::parse(raw, &format)
            .ok()
            .and_then(|d| d.format(&out).ok())
            .unwrap_or_else(|| raw.to_owned()),
    )
}

/// The registered GP practice, as the Patient names it.
pub fn gp(patient: &Value) -> Option<String> {
    let gps = patient["generalPractitioner"].as_array()?;
    // The practice first (HL7 PD1-3); a named GP (PD1-4) only when no practice has a name.
    let is_doctor = |g: &&Value| {
        g["type"] == "Practitioner"
            || g["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Practitioner"))
    };
    gps.iter()
        .filter(|g| !is_doctor(g))
        .chain(gps.iter().filter(is_doctor))
        .find_map(|g| g["display"].as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patient_reads_as_people_expect() {
        let p = json!({"name": [{"use": "maiden", "family": "Old"}, {"use": "official", "given": ["Ada", "May"], "family": "Test"}],
                       "birthDate": "1941-03-02",
                       "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}],
                       "generalPractitioner": [{"reference": "Organization/x", "display": "Zed Practice"}]});
        assert_eq!(name(&p), "Ada May Test");
        assert_eq!(born(&p).as_deref(), Some("2 March 1941"));
        assert_eq!(nhs_number(&p).as_deref(), Some("999 000 0018"));
        assert_eq!(gp(&p).as_deref(), Some("Zed Practice"));
        let doctor_first = json!({"generalPractitioner": [
            {"type": "Practitioner", "identifier": {"value": "G1234567"}, "display": "Dr Who"},
            {"reference": "Organization/x", "display": "Zed Practice"}]});
        assert_eq!(gp(&doctor_first).as_deref(), Some("Zed Practice"));
        let doctor_only =
            json!({"generalPractitioner": [{"type": "Practitioner", "display": "Dr Who"}]});
        assert_eq!(gp(&doctor_only).as_deref(), Some("Dr Who"));
        let empty = json!({"birthDate": "1941"});
        assert_eq!(name(&empty), "Name not recorded");
        assert_eq!(born(&empty).as_deref(), Some("1941"));
        assert_eq!(nhs_number(&empty), None);
    }
}
