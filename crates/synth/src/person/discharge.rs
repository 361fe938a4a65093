//! Hospital stays: the Encounter, diagnoses, medicine changes and the discharge summary.

use super::results::{lab_report, levels};
use super::{
    ACT_CODE, CLINICAL, COND_CATEGORY, Gen, Person, Repeat, Src, VERIFICATION, category, coding,
    concept, narrative, org_ref, reference,
};
use crate::date::date;
use crate::refdata::{self, ACUTE_MEDS, ADMISSIONS, DOCTOR_NAMES, Med, heading};
use crate::{DMD, LOINC, MEDICATION_CHANGE_EXTENSION, SNOMED};
use serde_json::{Value, json};

pub(super) struct Stay {
    pub(super) trust: usize,
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) latest: bool,
    /// Still in hospital: the Encounter is in progress (no end, no discharge), the diagnosis
    /// active, and there is no discharge summary yet; `end` is unused.
    pub(super) ongoing: bool,
    pub(super) to_home: bool,
    pub(super) first_to_home: bool,
}

fn section(h: (&str, &str), text: Vec<String>, entries: &[String]) -> Value {
    let mut s = json!({
        "title": h.1,
        "code": concept(SNOMED, h.0, h.1),
        "text": narrative(&text)
    });
    if !entries.is_empty()
        && let Some(o) = s.as_object_mut()
    {
        o.insert(
            "entry".into(),
            Value::Array(entries.iter().map(|e| reference(e)).collect()),
        );
    }
    s
}

#[allow(clippy::too_many_arguments)]
pub(super) fn admission(
    g: &mut Gen<'_>,
    p: &Person,
    s: &Stay,
    repeats: &[Repeat],
    conditions: &[(String, &str)],
    allergies: &[String],
    alerts: &[String],
    legal: &[String],
) {
    let patient = g.patient.clone();
    let trust = g.trust(s.trust).clone();
    let trust_ref = org_ref(&trust);
    let site = refdata::TRUSTS
        .get(s.trust)
        .map_or("the hospital", |t| t.4)
        .to_owned();
    let reason = ADMISSIONS
        .get(g.rng.below(ADMISSIONS.len()))
        .unwrap_or(&ADMISSIONS[0]);
    let enc_id = g.id("enc");
    let enc_ref = format!("Encounter/{enc_id}");
    let diag_id = g.id("cond");
    let diag_ref = format!("Condition/{diag_id}");
    let home = g.home().map(|h| (h.org.clone(), h.nursing));
    let (dd_code, dd_display, dd_text) = match &home {
        Some((o, true)) if s.to_home => (
            "306694006",
            "Discharge to nursing home",
            format!("Discharged to {}", o.name),
        ),
        Some((o, false)) if s.to_home => (
            "306691003",
            "Discharge to residential home",
            format!("Discharged to {}", o.name),
        ),
        _ => (
            "306689006",
            "Discharge to home",
            "Discharged to usual place of residence".to_owned(),
        ),
    };
    let admitted = g.at(s.start);
    let discharged = g.at(s.end);
    let mut body = json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": coding(ACT_CODE, "IMP", "inpatient encounter"),
        "type": [concept(SNOMED, "32485007", "Hospital admission")],
        "subject": reference(&patient),
        "period": {"start": admitted.clone(), "end": discharged.clone()},
        "reasonCode": [concept(SNOMED, reason.code, reason.display)],
        "diagnosis": [{"condition": reference(&diag_ref), "rank": 1}],
        "hospitalization": {
            "admitSource": concept(SNOMED, "715537000", "Admission via emergency department"),
            "dischargeDisposition": {"coding": [coding(SNOMED, dd_code, dd_display)], "text": dd_text}
        },
        "serviceProvider": trust_ref.clone()
    });
    if s.ongoing {
        body["status"] = json!("in-progress");
        body["period"] = json!({"start": admitted.clone()});
        if let Some(h) = body["hospitalization"].as_object_mut() {
            h.remove("dischargeDisposition");
        }
    }
    g.push_as(&enc_id, Src::Trust(s.trust), body, &[]);
    let mut body = json!({
        "resourceType": "Condition",
        "clinicalStatus": concept(CLINICAL, "resolved", "Resolved"),
        "verificationStatus": concept(VERIFICATION, "confirmed", "Confirmed"),
        "category": category(COND_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis"),
        "code": concept(SNOMED, reason.code, reason.display),
        "subject": reference(&patient),
        "encounter": reference(&enc_ref),
        "onsetDateTime": date(s.start),
        "abatementDateTime": date(s.end),
        "recordedDate": admitted.clone(),
        "recorder": trust_ref.clone()
    });
    if s.ongoing {
        body["clinicalStatus"] = concept(CLINICAL, "active", "Active");
        if let Some(o) = body.as_object_mut() {
            o.remove("abatementDateTime");
        }
    }
    g.push_as(&diag_id, Src::Trust(s.trust), body, &[]);

    // Investigations.
    let mut investigations = Vec::new();
    let ue = levels(g, refdata::UE, &[]);
    investigations.push(lab_report(
        g,
        refdata::PANEL_UE,
        &ue,
        s.start,
        Some(&enc_ref),
    ));
    let fbc = levels(g, refdata::FBC, &[]);
    investigations.push(lab_report(
        g,
        refdata::PANEL_FBC,
        &fbc,
        s.start,
        Some(&enc_ref),
    ));
    let mut imaging_text = None;
    if let Some((code, display, conclusion, ccode, cdisplay)) = reason.imaging {
        let at = g.at(s.start);
        let body = json!({
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")],
            "code": concept(LOINC, code, display),
            "subject": reference(&patient),
            "encounter": reference(&enc_ref),
            "effectiveDateTime": at.clone(),
            "issued": at,
            "performer": [trust_ref.clone()],
            "conclusion": conclusion,
            "conclusionCode": [concept(SNOMED, ccode, cdisplay)]
        });
        investigations.push(g.push("report", Src::Trust(s.trust), body));
        imaging_text = Some(format!("{display}: {conclusion}"));
    }

    // Still in hospital: no discharge yet, so no medicines on discharge and no summary.
    if s.ongoing {
        return;
    }

    // Medicines on discharge: the GP's repeats, with changes.
    let mut med_refs = Vec::new();
    let mut changes = Vec::new();
    let stopped_k = (repeats.len() >= 4).then(|| g.rng.below(repeats.len()));
    let changed_k = (repeats.len() >= 2)
        .then(|| g.rng.below(repeats.len()))
        .filter(|k| Some(*k) != stopped_k);
    let recorded = discharged.clone();
    let statement = |g: &mut Gen<'_>,
                     med: Med,
                     change: &str,
                     status: &str,
                     dose: String,
                     note: Option<String>| {
        let (code, name, _) = med;
        let mut body = json!({
            "resourceType": "MedicationStatement",
            "extension": [{"url": MEDICATION_CHANGE_EXTENSION, "valueCode": change}],
            "status": status,
            "category": concept("http://terminology.hl7.org/CodeSystem/medication-statement-category", "inpatient", "Inpatient"),
            "medicationCodeableConcept": {"coding": [coding(DMD, code, name)], "text": name},
            "subject": reference(&patient),
            "context": reference(&enc_ref),
            "effectivePeriod": {"start": date(s.end)},
            "dateAsserted": recorded.clone(),
            "informationSource": trust_ref.clone(),
            "dosage": [{"text": dose}]
        });
        if let Some(o) = body.as_object_mut() {
            if let Some(n) = &note {
                o.insert("note".into(), json!([{"text": n}]));
            }
            if status == "stopped" {
                o.insert(
                    "statusReason".into(),
                    json!([{"text": note.clone().unwrap_or_default()}]),
                );
            }
        }
        g.push("medstmt", Src::Trust(s.trust), body)
    };
    for (k, r) in repeats.iter().enumerate() {
        let (_, name, dose) = r.med;
        let (change, status, new_dose, note) = if Some(k) == stopped_k {
            (
                "stopped",
                "stopped",
                dose.to_owned(),
                Some(format!(
                    "{name} stopped: postural hypotension and falls risk; GP to review."
                )),
            )
        } else if Some(k) == changed_k {
            (
                "changed",
                "active",
                format!("{dose} (dose halved on discharge)"),
                Some(format!(
                    "{name}: dose reduced during admission; continue reduced dose."
                )),
            )
        } else {
            ("unchanged", "active", dose.to_owned(), None)
        };
        changes.push(match change {
            "unchanged" => format!("{name}: continue, unchanged."),
            _ => note.clone().unwrap_or_default(),
        });
        med_refs.push(statement(g, r.med, change, status, new_dose, note));
    }
    if let Some(m) = reason.started.and_then(|k| ACUTE_MEDS.get(k)) {
        let (_, name, dose) = *m;
        let note = format!("{name} started in hospital; complete the course.");
        changes.insert(0, format!("STARTED {note}"));
        med_refs.push(statement(
            g,
            *m,
            "started",
            "active",
            dose.to_owned(),
            Some(note),
        ));
    }

    // The plan, with actions for the care home, the GP and the family.
    let mut home_actions: Vec<String> = Vec::new();
    if let Some((o, _)) = &home
        && s.to_home
    {
        home_actions.push(format!(
            "{}: encourage oral fluids (1.5 litres a day) and keep a fluid chart for 7 days.",
            o.name
        ));
        match reason.code {
            "217082002" | "5913000" => home_actions.push(format!("{}: falls precautions; walking frame at all times; physiotherapy exercises twice a day.", o.name)),
            "267036007" => home_actions.push(format!("{}: weigh daily; tell the GP if weight rises by more than 2 kg in 3 days.", o.name)),
            "2776000" => home_actions.push(format!("{}: watch for new or worsening confusion and tell the GP the same day.", o.name)),
            _ => home_actions.push(format!("{}: give the antibiotic course as prescribed; watch for fever or new confusion.", o.name)),
        }
    }
    let gp_actions = vec![
        "GP: review the medicine changes on this summary within 7 days.".to_owned(),
        "GP: repeat U&E in 1 to 2 weeks.".to_owned(),
    ];
    let family_action = format!(
        "Patient and family: {} informed of discharge arrangements.",
        p.family
    );
    let plan_id = g.id("careplan");
    let plan_ref = format!("CarePlan/{plan_id}");
    let mut activities: Vec<Value> = Vec::new();
    let performer_home = home.as_ref().filter(|_| s.to_home).map(|(o, _)| org_ref(o));
    for a in &home_actions {
        let mut d =
            json!({"status": if s.latest { "not-started" } else { "completed" }, "description": a});
        if let (Some(pf), Some(o)) = (&performer_home, d.as_object_mut()) {
            o.insert("performer".into(), json!([pf]));
        }
        activities.push(json!({"detail": d}));
    }
    let gp_ref = org_ref(g.practice());
    for a in &gp_actions {
        activities.push(json!({"detail": {"status": if s.latest { "not-started" } else { "completed" }, "description": a, "performer": [gp_ref.clone()]}}));
    }
    let all_actions: Vec<String> = home_actions
        .iter()
        .chain(gp_actions.iter())
        .cloned()
        .chain(std::iter::once(family_action.clone()))
        .collect();
    let active = s.latest && g.today - s.end < 90;
    let body = json!({
        "resourceType": "CarePlan",
        "text": narrative(&all_actions),
        "status": if active { "active" } else { "completed" },
        "intent": "plan",
        "category": [concept(SNOMED, "736372004", "Discharge care plan")],
        "title": "Plan and requested actions on discharge",
        "subject": reference(&patient),
        "encounter": reference(&enc_ref),
        "period": {"start": date(s.end)},
        "created": recorded.clone(),
        "author": trust_ref.clone(),
        "addresses": [reference(&diag_ref)],
        "activity": activities
    });
    g.push_as(&plan_id, Src::Trust(s.trust), body, &[]);

    // The discharge summary.
    let doctor = g.rng.pick(DOCTOR_NAMES, "Dr A Smith");
    let practice = g.practice().clone();
    let los = s.end - s.start;
    let where_lives = match &home {
        Some((o, nursing)) if s.to_home => format!(
            "Lives at {} ({}), {}.",
            o.name,
            if *nursing {
                "care home with nursing"
            } else {
                "residential care home"
            },
            o.borough
        ),
        _ => "Lives in their own home in the community.".to_owned(),
    };
    let mut diagnoses = vec![diag_ref.clone()];
    diagnoses.extend(conditions.iter().map(|(r, _)| r.clone()));
    let comorbid: Vec<&str> = conditions.iter().map(|(_, d)| *d).collect();
    let sections = vec![
        section(
            heading::GP_PRACTICE,
            vec![format!("{} ({})", practice.name, practice.ods)],
            &[practice.reference()],
        ),
        section(
            heading::DEMOGRAPHICS,
            vec![format!("{} {}, born {}.", p.given, p.family, date(p.birth))],
            std::slice::from_ref(&patient),
        ),
        section(
            heading::ADMISSION,
            vec![format!(
                "Emergency admission to {site} on {}.",
                date(s.start)
            )],
            std::slice::from_ref(&enc_ref),
        ),
        section(
            heading::DISCHARGE,
            vec![format!(
                "Discharged on {} after {los} days. {dd_text}.",
                date(s.end)
            )],
            std::slice::from_ref(&enc_ref),
        ),
        section(
            heading::PRESENTING,
            vec![format!("Presented with {}.", reason.display.to_lowercase())],
            &[],
        ),
        section(
            heading::DIAGNOSES,
            vec![format!(
                "Primary: {}. Comorbidities: {}.",
                reason.display,
                if comorbid.is_empty() {
                    "none recorded".to_owned()
                } else {
                    comorbid.join(", ")
                }
            )],
            &diagnoses,
        ),
        section(
            heading::PROCEDURES,
            vec!["No procedures during this admission.".to_owned()],
            &[],
        ),
        section(
            heading::CLINICAL_SUMMARY,
            vec![format!(
                "Admitted with {}; treated on the ward and improved. Mobilising with assistance at discharge; eating and drinking.",
                reason.display.to_lowercase()
            )],
            &[],
        ),
        section(
            heading::INVESTIGATIONS,
            {
                let mut t = vec!["Bloods on admission: U&E and FBC (see results).".to_owned()];
                t.extend(imaging_text);
                t
            },
            &investigations,
        ),
        section(
            heading::MEDICATIONS,
            if changes.is_empty() {
                vec!["No regular medicines.".to_owned()]
            } else {
                changes
            },
            &med_refs,
        ),
        section(
            heading::ALLERGIES,
            vec!["As recorded by the GP (see entries).".to_owned()],
            allergies,
        ),
        section(
            heading::SAFETY_ALERTS,
            vec![if alerts.is_empty() {
                "None.".to_owned()
            } else {
                "See alerts (falls risk, resuscitation status).".to_owned()
            }],
            alerts,
        ),
        section(
            heading::LEGAL,
            vec![if legal.is_empty() {
                "No DNACPR decision or lasting power of attorney recorded.".to_owned()
            } else {
                "ReSPECT / advance care plan in place (see entries).".to_owned()
            }],
            legal,
        ),
        section(heading::SOCIAL, vec![where_lives], &[]),
        section(heading::PLAN, all_actions, std::slice::from_ref(&plan_ref)),
        section(
            heading::INFORMATION_GIVEN,
            vec![format!(
                "Diagnosis and medicine changes explained to the patient and their family{}.",
                if s.first_to_home {
                    "; care home placement discussed and agreed"
                } else {
                    ""
                }
            )],
            &[],
        ),
        section(
            heading::PERSON_COMPLETING,
            vec![format!("{doctor}, {site}, {}.", date(s.end))],
            &[],
        ),
    ];
    let body = json!({
        "resourceType": "Composition",
        "status": "final",
        "type": concept(SNOMED, "373942005", "Discharge summary"),
        "subject": reference(&patient),
        "encounter": reference(&enc_ref),
        "date": recorded,
        "author": [trust_ref.clone()],
        "title": "Discharge summary",
        "confidentiality": "N",
        "custodian": trust_ref,
        "section": sections
    });
    g.push("doc", Src::Trust(s.trust), body);
}
