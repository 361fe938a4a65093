//! The GP record: allergies, repeat and acute medicines, immunisations and encounters.

use super::{Gen, Person, Repeat, Src, coding, concept, org_ref, reference};
use crate::date::{date, days_from_civil};
use crate::refdata::{ACUTE_MEDS, ALLERGIES, VACCINES};
use crate::{DMD, SNOMED, UCUM};
use serde_json::json;

pub(super) fn allergies(g: &mut Gen<'_>) -> Vec<String> {
    let patient = g.patient.clone();
    let gp = org_ref(g.practice());
    let n = [0usize, 0, 1, 1, 2][g.rng.below(5)];
    if n == 0 {
        let day = g.days_ago(300, 5000);
        let body = json!({
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
            "code": concept(SNOMED, "716186003", "No known allergy"),
            "patient": reference(&patient),
            "recordedDate": date(day),
            "recorder": gp
        });
        return vec![g.push("allergy", Src::Gp, body)];
    }
    let first = g.rng.below(ALLERGIES.len());
    (0..n)
        .filter_map(|k| ALLERGIES.get((first + k) % ALLERGIES.len()))
        .map(|(code, display, cat, rcode, rdisplay)| {
            let day = g.days_ago(300, 9000);
            let severe = *rdisplay == "Anaphylaxis";
            let body = json!({
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
                "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [cat],
                "criticality": if severe { "high" } else { "low" },
                "code": concept(SNOMED, code, display),
                "patient": reference(&patient),
                "recordedDate": date(day),
                "recorder": gp.clone(),
                "reaction": [{
                    "manifestation": [concept(SNOMED, rcode, rdisplay)],
                    "severity": if severe { "severe" } else { "moderate" }
                }]
            });
            g.push("allergy", Src::Gp, body)
        })
        .collect()
}

pub(super) fn gp_medicines(g: &mut Gen<'_>, repeats: Vec<Repeat>) -> Vec<Repeat> {
    let patient = g.patient.clone();
    let gp = org_ref(g.practice());
    let mut out = Vec::new();
    for mut r in repeats {
        let (code, name, dose) = r.med;
        let issued = g.days_ago(3, 60);
        r.started = g.days_ago(200, 2500);
        let at = g.at(issued);
        let body = json!({
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "category": [concept("http://terminology.hl7.org/CodeSystem/medicationrequest-category", "community", "Community")],
            "medicationCodeableConcept": {"coding": [coding(DMD, code, name)], "text": name},
            "subject": reference(&patient),
            "authoredOn": at,
            "requester": gp.clone(),
            "courseOfTherapyType": concept("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "continuous", "Continuous long term therapy"),
            "dosageInstruction": [{"text": dose}],
            "dispenseRequest": {
                "validityPeriod": {"start": date(r.started)},
                "numberOfRepeatsAllowed": 5,
                "expectedSupplyDuration": {"value": 28, "unit": "days", "system": UCUM, "code": "d"}
            }
        });
        g.push("medreq", Src::Gp, body);
        out.push(r);
    }
    let acute = [0usize, 0, 1, 1, 2][g.rng.below(5)];
    for _ in 0..acute {
        let (code, name, dose) = g.rng.pick(ACUTE_MEDS, ACUTE_MEDS[0]);
        let day = g.days_ago(20, 700);
        let at = g.at(day);
        let body = json!({
            "resourceType": "MedicationRequest",
            "status": "completed",
            "intent": "order",
            "category": [concept("http://terminology.hl7.org/CodeSystem/medicationrequest-category", "community", "Community")],
            "medicationCodeableConcept": {"coding": [coding(DMD, code, name)], "text": name},
            "subject": reference(&patient),
            "authoredOn": at,
            "requester": gp.clone(),
            "courseOfTherapyType": concept("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "acute", "Short course (acute) therapy"),
            "dosageInstruction": [{"text": dose}]
        });
        g.push("medreq", Src::Gp, body);
    }
    out
}

pub(super) fn immunisations(g: &mut Gen<'_>, p: &Person) {
    let patient = g.patient.clone();
    let gp = org_ref(g.practice());
    let (y, _, _) = crate::date::civil_from_days(g.today);
    for (code, display, every) in VACCINES {
        if p.age < 65 && !(*every == 365 && g.rng.chance(0.4)) {
            continue;
        }
        let days: Vec<i64> = if *every == 0 {
            vec![days_from_civil(y - g.rng.range(2, 10), 10, 1) + g.rng.range(0, 60)]
        } else {
            (0..2)
                .map(|k| days_from_civil(y - k, 9, 20) + g.rng.range(0, 40))
                .filter(|d| *d < g.today)
                .collect()
        };
        for day in days {
            let at = g.at(day);
            let lot = format!("SYN{}", g.rng.range(10_000, 99_999));
            let body = json!({
                "resourceType": "Immunization",
                "status": "completed",
                "vaccineCode": concept(SNOMED, code, display),
                "patient": reference(&patient),
                "occurrenceDateTime": at,
                "recorded": at,
                "primarySource": true,
                "lotNumber": lot,
                "site": concept(SNOMED, "368208006", "Left upper arm structure"),
                "route": concept(SNOMED, "78421000", "Intramuscular route"),
                "performer": [{"actor": gp.clone()}]
            });
            g.push("imm", Src::Gp, body);
        }
    }
}

pub(super) fn gp_encounters(g: &mut Gen<'_>, resident: bool, conditions: &[(String, &str)]) {
    let patient = g.patient.clone();
    let gp = org_ref(g.practice());
    let n = g.rng.range(2, 5);
    for _ in 0..n {
        let day = g.days_ago(5, 700);
        let start = g.at(day);
        let (class, class_display, code, display) = if resident {
            g.rng.pick(
                &[
                    ("HH", "home health", "439708006", "Home visit"),
                    ("VR", "virtual", "185317003", "Telephone encounter"),
                ],
                ("HH", "home health", "439708006", "Home visit"),
            )
        } else {
            g.rng.pick(
                &[
                    ("AMB", "ambulatory", "185349003", "Encounter for check up"),
                    ("VR", "virtual", "185317003", "Telephone encounter"),
                ],
                ("AMB", "ambulatory", "185349003", "Encounter for check up"),
            )
        };
        let mut body = json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", class, class_display),
            "type": [concept(SNOMED, code, display)],
            "subject": reference(&patient),
            "period": {"start": start.clone(), "end": start},
            "serviceProvider": gp.clone()
        });
        if let Some((c, _)) = conditions.get(g.rng.below(conditions.len().max(1)))
            && let Some(o) = body.as_object_mut()
        {
            o.insert("reasonReference".into(), json!([reference(c)]));
        }
        g.push("enc", Src::Gp, body);
    }
    // Community nursing (run by the local trust).
    let visits = if resident {
        g.rng.range(0, 3)
    } else {
        i64::from(g.rng.chance(0.2))
    };
    let t = g.plan.trust;
    let trust = org_ref(g.trust(t));
    for _ in 0..visits {
        let day = g.days_ago(5, 400);
        let start = g.at(day);
        let reason = g.rng.pick(
            &[
                "Wound dressing",
                "Leg ulcer review",
                "Insulin administration",
                "Catheter care",
                "Pressure area assessment",
            ],
            "Wound dressing",
        );
        let body = json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HH", "home health"),
            "type": [concept(SNOMED, "439708006", "Home visit")],
            "serviceType": {"text": "District nursing"},
            "subject": reference(&patient),
            "period": {"start": start.clone(), "end": start},
            "reasonCode": [{"text": reason}],
            "serviceProvider": trust.clone()
        });
        g.push("enc", Src::Trust(t), body);
    }
}
