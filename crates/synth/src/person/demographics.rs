//! The Patient: demographics, identifiers, contacts, and a merged duplicate.

use super::{Gen, Person, Src, concept, org_ref, reference};
use crate::date::date;
use crate::london::{Awkward, Org, postcode};
use crate::refdata::{FEMALE_GIVEN, ICSS, MALE_GIVEN, STREETS};
use crate::{
    MRN_SYSTEM_PREFIX, NHS_NUMBER_SYSTEM, VERIFICATION_STATUS_EXTENSION,
    VERIFICATION_STATUS_SYSTEM, nhs_number,
};
use serde_json::{Value, json};

/// The Patient (and, for a merged record, the retired duplicate).
pub(super) fn patient(
    g: &mut Gen<'_>,
    p: &Person,
    middle: &str,
    admissions: &[(i64, i64)],
    moved_in: i64,
) {
    let awkward = g.plan.awkward;
    let mut identifiers = Vec::new();
    let nhs = nhs_number(g.pid.trim_start_matches("pat-").parse::<u32>().unwrap_or(0));
    let status = match awkward {
        Some(Awkward::Unverified) => Some(("02", "Number present but not traced")),
        Some(Awkward::NoNhsNumber) => None,
        _ => Some(if g.rng.chance(0.03) {
            g.rng.pick(
                &[
                    ("02", "Number present but not traced"),
                    ("03", "Trace required"),
                    ("04", "Trace attempted - No match or multiple match found"),
                ],
                ("03", "Trace required"),
            )
        } else {
            ("01", "Number present and verified")
        }),
    };
    if let Some((code, display)) = status {
        identifiers.push(json!({
            "extension": [{
                "url": VERIFICATION_STATUS_EXTENSION,
                "valueCodeableConcept": concept(VERIFICATION_STATUS_SYSTEM, code, display)
            }],
            "system": NHS_NUMBER_SYSTEM,
            "value": nhs
        }));
    }
    let mut trusts = Vec::new();
    if !admissions.is_empty() || awkward == Some(Awkward::NoNhsNumber) {
        trusts.push(g.plan.trust);
    }
    if let Some(t) = g.plan.second_trust {
        trusts.push(t);
    }
    for t in &trusts {
        let o = g.trust(*t).clone();
        let mrn = format!("{}{:07}", &o.ods, g.rng.range(1, 9_999_999));
        identifiers.push(mrn_identifier(&o, &mrn));
    }
    let resident = g.home().map(|h| h.org.clone());
    let address = match &resident {
        Some(home) => json!([{
            "use": "home",
            "type": "physical",
            "line": home.line.split(", ").collect::<Vec<_>>(),
            "city": "London",
            "district": home.borough,
            "postalCode": home.postcode,
            "country": "GB",
            "period": {"start": date(moved_in)}
        }]),
        None => {
            let ics = g.plan.ics;
            let borough = ICSS
                .get(ics)
                .and_then(|i| i.boroughs.get(g.plan.borough))
                .map_or(("Camden", &["NW1"][..]), |b| (b.0, b.1));
            let district = g.rng.pick(borough.1, "NW1");
            let pc = postcode(&mut g.rng, district);
            let line = format!(
                "{} {}",
                g.rng.range(1, 220),
                g.rng.pick(STREETS, "High Street")
            );
            json!([{
                "use": "home",
                "type": "both",
                "line": [line],
                "city": "London",
                "district": borough.0,
                "postalCode": pc,
                "country": "GB"
            }])
        }
    };
    let prefix = if p.female {
        g.rng.pick(&["Mrs", "Miss", "Ms"], "Mrs")
    } else {
        "Mr"
    };
    let kin_given = g
        .rng
        .pick(if p.female { MALE_GIVEN } else { FEMALE_GIVEN }, "Sam");
    let kin_rel = if p.female {
        g.rng.pick(&["son", "nephew", "husband"], "son")
    } else {
        g.rng.pick(&["daughter", "niece", "wife"], "daughter")
    };
    let phone = format!("020 7946 0{:03}", g.rng.range(0, 999));
    let kin_phone = format!("020 7946 0{:03}", g.rng.range(0, 999));
    let practice = org_ref(g.practice());
    let mut body = json!({
        "resourceType": "Patient",
        "identifier": identifiers,
        "active": true,
        "name": [{
            "use": "official",
            "family": p.family,
            "given": [p.given, middle],
            "prefix": [prefix]
        }],
        "telecom": [{"system": "phone", "value": phone, "use": if resident.is_some() { "work" } else { "home" }}],
        "gender": if p.female { "female" } else { "male" },
        "birthDate": date(p.birth),
        "address": address,
        "contact": [{
            "relationship": [concept("http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin")],
            "name": {"use": "usual", "family": p.family, "given": [kin_given], "text": format!("{kin_given} {} ({kin_rel})", p.family)},
            "telecom": [{"system": "phone", "value": kin_phone, "use": "mobile"}]
        }],
        "generalPractitioner": [practice],
        "communication": [{"language": concept("urn:ietf:bcp:47", "en-GB", "English (United Kingdom)"), "preferred": true}]
    });
    let pid = g.pid.clone();
    if awkward == Some(Awkward::Merged) {
        let old = format!("{pid}-old");
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "link".into(),
                json!([{"other": reference(&format!("Patient/{old}")), "type": "replaces"}]),
            );
        }
        g.push_as(&pid, Src::Gp, body, &[]);
        let t = g.plan.trust;
        let trust = g.trust(t).clone();
        let mrn = format!("{}{:07}", trust.ods, g.rng.range(1, 9_999_999));
        let dup = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": nhs},
                mrn_identifier(&trust, &mrn)
            ],
            "active": false,
            "name": [{"use": "official", "family": p.family, "given": [p.given]}],
            "gender": if p.female { "female" } else { "male" },
            "birthDate": date(p.birth),
            "link": [{"other": reference(&format!("Patient/{pid}")), "type": "replaced-by"}]
        });
        g.push_as(&old, Src::Trust(t), dup, &[]);
    } else {
        g.push_as(&pid, Src::Gp, body, &[]);
    }
}

pub(super) fn mrn_identifier(trust: &Org, mrn: &str) -> Value {
    json!({
        "use": "usual",
        "type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
        "system": format!("{MRN_SYSTEM_PREFIX}{}", trust.ods),
        "value": mrn,
        "assigner": org_ref(trust)
    })
}
