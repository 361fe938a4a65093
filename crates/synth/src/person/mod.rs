//! One person's whole record as a transaction Bundle.
//!
//! This module holds the generator state ([`Gen`]), the JSON helpers and [`bundle`], which
//! decides who the person is and what happened to them; the resources are written by:
//!
//! - `demographics`: the Patient (and a merged duplicate);
//! - `gp`: allergies, repeat and acute medicines, immunisations and GP encounters;
//! - `care_plans`: alerts (Flags) and care plans;
//! - `results`: pathology reports over time;
//! - `discharge`: hospital stays and their discharge summaries.

use crate::date::{date, date_time, days_from_civil};
use crate::london::{Awkward, London, Org, PersonPlan, Recent};
use crate::refdata::{self, FAMILY, FEMALE_GIVEN, MALE_GIVEN, MEDS, Med, PROBLEMS};
use crate::rng::{Rng, mix};
use crate::{LOINC, RESIDENCY_TYPE_SYSTEM, SNOMED, SOURCE_ORGANISATION_TAG, SOURCE_SYSTEM_TAG};
use serde_json::{Map, Value, json};

mod care_plans;
mod demographics;
mod discharge;
mod gp;
mod results;

use care_plans::alerts_and_care_plans;
use demographics::patient;
use discharge::{Stay, admission};
use gp::{allergies, gp_encounters, gp_medicines, immunisations};
use results::labs_over_time;

/// Which organisation a resource came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Gp,
    Trust(usize),
    Lab,
    Home,
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)], "text": display})
}

fn reference(r: &str) -> Value {
    json!({"reference": r})
}

fn org_ref(o: &Org) -> Value {
    json!({"reference": o.reference(), "display": o.name})
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Narrative: paragraphs of plain text (escaped here).
fn narrative(paragraphs: &[String]) -> Value {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>", esc(p)))
        .collect();
    json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>")})
}

fn number(v: f64, decimals: usize) -> Value {
    let text = format!("{v:.decimals$}");
    match text.parse::<serde_json::Number>() {
        Ok(n) => Value::Number(n),
        Err(_) => json!(0),
    }
}

fn category(system: &str, code: &str, display: &str) -> Value {
    json!([concept(system, code, display)])
}

const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const COND_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// A medicine the GP prescribes on repeat.
#[derive(Clone, Copy)]
struct Repeat {
    med: Med,
    /// The GP MedicationRequest.
    started: i64,
}

struct Gen<'a> {
    l: &'a London,
    plan: &'a PersonPlan,
    rng: Rng,
    pid: String,
    patient: String,
    today: i64,
    entries: Vec<Value>,
    counters: Vec<(&'static str, u32)>,
    /// Resources each source contributed, for its Provenance.
    by_source: Vec<(Src, Vec<String>)>,
}

impl Gen<'_> {
    fn practice(&self) -> &Org {
        self.l
            .practices
            .get(self.plan.practice)
            .unwrap_or(&self.l.lab)
    }

    fn trust(&self, t: usize) -> &Org {
        self.l.trusts.get(t).unwrap_or(&self.l.lab)
    }

    fn home(&self) -> Option<&crate::london::Home> {
        self.plan.home.and_then(|h| self.l.homes.get(h))
    }

    fn org(&self, src: Src) -> &Org {
        match src {
            Src::Gp => self.practice(),
            Src::Trust(t) => self.trust(t),
            Src::Lab => &self.l.lab,
            Src::Home => self.home().map_or(&self.l.lab, |h| &h.org),
        }
    }

    fn meta(&self, src: Src, security: &[Value]) -> Value {
        let o = self.org(src);
        let (kind, display) = match src {
            Src::Gp => ("gp-clinical-system", "GP clinical system"),
            Src::Trust(_) => ("hospital-epr", "Hospital electronic patient record"),
            Src::Lab => ("pathology-lims", "Pathology laboratory information system"),
            Src::Home => match self.home() {
                Some(h) if !h.electronic => {
                    ("care-home-portal", "Care home portal (paper-based home)")
                }
                _ => (
                    "care-home-digital-record",
                    "Care home digital social care record",
                ),
            },
        };
        let mut m = json!({
            "source": format!("https://systems.carerecord.example/{kind}/{}", o.ods),
            "tag": [
                coding(SOURCE_ORGANISATION_TAG, &o.ods, &o.name),
                coding(SOURCE_SYSTEM_TAG, kind, display)
            ]
        });
        if !security.is_empty()
            && let Some(obj) = m.as_object_mut()
        {
            obj.insert("security".into(), Value::Array(security.to_vec()));
        }
        m
    }

    /// A fresh id for a resource: `<patient id>-<key><n>`.
    fn id(&mut self, key: &'static str) -> String {
        let n = match self.counters.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.counters.push((key, 1));
                1
            }
        };
        format!("{}-{key}{n}", self.pid)
    }

    /// Adds `body` (with `resourceType`) as `PUT [type]/[id]`; returns `Type/id`.
    fn push_as(&mut self, id: &str, src: Src, body: Value, security: &[Value]) -> String {
        let rt = body
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Basic")
            .to_owned();
        let mut res = Map::new();
        res.insert("resourceType".into(), json!(rt));
        res.insert("id".into(), json!(id));
        res.insert("meta".into(), self.meta(src, security));
        if let Value::Object(fields) = body {
            for (k, v) in fields {
                if k != "resourceType" {
                    res.insert(k, v);
                }
            }
        }
        let url = format!("{rt}/{id}");
        // Built by moving, not with `json!`, which would deep-copy the resource.
        let mut entry = Map::new();
        entry.insert("resource".into(), Value::Object(res));
        entry.insert("request".into(), json!({"method": "PUT", "url": url}));
        self.entries.push(Value::Object(entry));
        match self.by_source.iter_mut().find(|(s, _)| *s == src) {
            Some((_, v)) => v.push(url.clone()),
            None => self.by_source.push((src, vec![url.clone()])),
        }
        url
    }

    fn push(&mut self, key: &'static str, src: Src, body: Value) -> String {
        let id = self.id(key);
        self.push_as(&id, src, body, &[])
    }

    fn at(&mut self, day: i64) -> String {
        let minute = self.rng.range(8 * 60, 18 * 60);
        date_time(day, minute)
    }

    fn days_ago(&mut self, lo: i64, hi: i64) -> i64 {
        self.today - self.rng.range(lo, hi)
    }
}

/// Demographics chosen for the Patient and used in narratives.
struct Person {
    female: bool,
    given: &'static str,
    family: &'static str,
    birth: i64,
    age: i64,
}

pub(crate) fn bundle(l: &London, i: u32, plan: &PersonPlan) -> Value {
    let pid = London::patient_id(i);
    let mut g = Gen {
        l,
        plan,
        rng: Rng::new(mix(l.seed, u64::from(i).wrapping_add(0x5045_5253_4F4E))),
        patient: format!("Patient/{pid}"),
        pid,
        today: l.today,
        entries: Vec::new(),
        counters: Vec::new(),
        by_source: Vec::new(),
    };
    let awkward = plan.awkward;
    let resident = plan.home.is_some();

    // Who they are.
    let female = g.rng.chance(if resident { 0.68 } else { 0.52 });
    let given = g
        .rng
        .pick(if female { FEMALE_GIVEN } else { MALE_GIVEN }, "Alex");
    let middle = g
        .rng
        .pick(if female { FEMALE_GIVEN } else { MALE_GIVEN }, "Sam");
    let family = g.rng.pick(FAMILY, "Smith");
    let birth_year = if resident {
        g.rng.range(1925, 1950)
    } else if g.rng.chance(0.6) {
        g.rng.range(1935, 1960)
    } else {
        g.rng.range(1950, 1995)
    };
    let birth = days_from_civil(birth_year, 1, 1) + g.rng.range(0, 364);
    let p = Person {
        female,
        given,
        family,
        birth,
        age: (g.today - birth) / 365,
    };

    // Long-term conditions and the medicines that go with them.
    let mut problems: Vec<usize> = (0..PROBLEMS.len())
        .filter(|k| {
            PROBLEMS.get(*k).is_some_and(|pr| {
                let prev = if resident {
                    pr.in_home
                } else if p.age >= 65 {
                    pr.community * 1.5
                } else {
                    pr.community * 0.4
                };
                g.rng.chance(prev)
            })
        })
        .collect();
    problems.truncate(if resident { 6 } else { 4 });
    if resident && problems.len() < 2 {
        for k in [refdata::P_FALLS, refdata::P_DEMENTIA] {
            if !problems.contains(&k) {
                problems.push(k);
            }
        }
    }
    if awkward == Some(Awkward::MultiSource) && !problems.contains(&refdata::P_HEART_FAILURE) {
        problems.push(refdata::P_HEART_FAILURE);
    }
    let warfarin = problems.contains(&refdata::P_AF) && g.rng.chance(0.4);
    let mut meds: Vec<Med> = Vec::new();
    for k in &problems {
        for m in PROBLEMS.get(*k).map_or(&[][..], |pr| pr.meds) {
            let mut med = MEDS.get(*m).copied().unwrap_or(MEDS[0]);
            if *m == 8 && warfarin {
                med = MEDS.get(12).copied().unwrap_or(med);
            }
            if !meds.iter().any(|x| x.0 == med.0) {
                meds.push(med);
            }
        }
    }
    if resident || p.age >= 70 {
        for m in [0usize, 2, 11] {
            if meds.len() < 4
                && let Some(med) = MEDS.get(m)
                && !meds.iter().any(|x| x.0 == med.0)
            {
                meds.push(*med);
            }
        }
    }

    // Hospital admissions (planned now, written later).
    let n_adm = match awkward {
        Some(Awkward::TwoHospitals) => 2,
        Some(_) => 1 + usize::from(g.rng.chance(0.3)),
        None if resident => [0, 1, 1, 2, 3][g.rng.below(5)],
        None if p.age >= 65 => [0, 0, 1, 2][g.rng.below(4)],
        None => usize::from(g.rng.chance(0.15)),
    };
    let mut adm_days: Vec<i64> = (0..n_adm).map(|_| g.rng.range(14, 900)).collect();
    adm_days.sort_unstable_by(|a, b| b.cmp(a));
    adm_days.dedup_by(|a, b| (*b - *a).abs() < 30);
    let mut moved_in = g.days_ago(120, 1800);
    let came_from_hospital = resident && !adm_days.is_empty() && g.rng.chance(0.35);
    // A stay is over by yesterday: a finished stay never ends in the future.
    let mut admissions: Vec<(i64, i64)> = adm_days
        .iter()
        .map(|ago| {
            let start = g.today - ago;
            (start, (start + g.rng.range(2, 16)).min(g.today - 1))
        })
        .collect();
    // The last few days' news for the home (one of each per home): a stay that has not ended
    // (its end is today, and it is written as in progress), or one that just has.
    let recent = if resident { plan.recent } else { None };
    let recent_stay = match recent {
        Some(Recent::InHospital) => Some((g.today - g.rng.range(1, 5), g.today)),
        Some(Recent::JustDischarged) => {
            let end = g.today - g.rng.range(1, 3);
            Some((end - g.rng.range(3, 10), end))
        }
        None => None,
    };
    if let Some((start, end)) = recent_stay {
        // Nobody is admitted twice within a fortnight here.
        admissions.retain(|(_, e)| *e < start - 14);
        admissions.push((start, end));
    }
    if came_from_hospital && let Some((_, end)) = admissions.first() {
        moved_in = *end;
    }

    let patient_ref = g.patient.clone();
    patient(&mut g, &p, middle, &admissions, moved_in);

    if let Some(home) = g.home() {
        let (code, display) = if home.nursing {
            ("nursing", "Care home with nursing")
        } else {
            ("residential", "Residential care home")
        };
        let home_ref = org_ref(&home.org);
        let body = json!({
            "resourceType": "EpisodeOfCare",
            "status": "active",
            "type": [concept(RESIDENCY_TYPE_SYSTEM, code, display)],
            "patient": reference(&patient_ref),
            "managingOrganization": home_ref,
            "period": {"start": date(moved_in)}
        });
        g.push("eoc", Src::Home, body);
    }

    // GP record: problems, allergies, repeat and acute medicines.
    let mut condition_refs = Vec::new();
    for k in &problems {
        let Some(pr) = PROBLEMS.get(*k) else { continue };
        let onset = g.days_ago(200, 4000);
        let delay = g.rng.range(0, 20);
        let rec = g.at(onset + delay);
        let body = json!({
            "resourceType": "Condition",
            "clinicalStatus": concept(CLINICAL, "active", "Active"),
            "verificationStatus": concept(VERIFICATION, "confirmed", "Confirmed"),
            "category": category(COND_CATEGORY, "problem-list-item", "Problem List Item"),
            "code": concept(SNOMED, pr.code, pr.display),
            "subject": reference(&patient_ref),
            "onsetDateTime": date(onset),
            "recordedDate": rec,
            "recorder": org_ref(g.practice())
        });
        let r = g.push("cond", Src::Gp, body);
        condition_refs.push((r, pr.display));
    }
    let allergy_refs = allergies(&mut g);
    let repeats: Vec<Repeat> = meds
        .iter()
        .map(|m| Repeat {
            med: *m,
            started: 0,
        })
        .collect();
    let repeats = gp_medicines(&mut g, repeats);

    if awkward == Some(Awkward::Sensitive) {
        let onset = g.days_ago(5000, 12000);
        let at = g.at(onset);
        let body = json!({
            "resourceType": "Condition",
            "clinicalStatus": concept(CLINICAL, "resolved", "Resolved"),
            "verificationStatus": concept(VERIFICATION, "confirmed", "Confirmed"),
            "category": category(COND_CATEGORY, "problem-list-item", "Problem List Item"),
            "code": concept(SNOMED, "105629000", "Chlamydial infection"),
            "subject": reference(&patient_ref),
            "onsetDateTime": date(onset),
            "abatementDateTime": date(onset + 21),
            "recordedDate": at,
            "note": [{"text": "Seen in the sexual health (GUM) clinic; treated; partner notification done."}]
        });
        let id = g.id("cond");
        let security = [
            coding(
                ACT_CODE,
                "STD",
                "sexually transmitted disease information sensitivity",
            ),
            coding(
                "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                "R",
                "restricted",
            ),
        ];
        let t = g.plan.trust;
        g.push_as(&id, Src::Trust(t), body, &security);
    }
    if awkward == Some(Awkward::Objection) {
        let when = g.days_ago(30, 400);
        let at = g.at(when);
        let practice = org_ref(g.practice());
        let body = json!({
            "resourceType": "Consent",
            "text": narrative(&["Objected to sharing their record with other organisations through the shared care record (recorded by the GP practice).".to_owned()]),
            "status": "active",
            "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent"),
            "category": [
                concept(LOINC, "59284-0", "Patient Consent"),
                concept(SNOMED, "887031000000108", "Declined consent for sharing patient data with secondary care")
            ],
            "patient": reference(&patient_ref),
            "dateTime": at,
            "organization": [practice],
            "policyRule": concept(ACT_CODE, "OPTOUT", "opt-out"),
            "provision": {
                "type": "deny",
                "period": {"start": date(when)},
                "purpose": [coding(ACT_CODE, "TREAT", "treatment")]
            }
        });
        g.push("consent", Src::Gp, body);
    }

    // Alerts and care plans.
    let (alert_refs, legal_refs) =
        alerts_and_care_plans(&mut g, &p, &problems, moved_in, &condition_refs);

    // Immunisations.
    immunisations(&mut g, &p);
    // GP and community encounters.
    gp_encounters(&mut g, resident, &condition_refs);
    // Lab results over time.
    labs_over_time(&mut g, &problems, warfarin);

    // Hospital stays, with discharge summaries.
    let n = admissions.len();
    for (k, (start, end)) in admissions.iter().enumerate() {
        let trust = match (k, g.plan.second_trust) {
            (1, Some(t)) => t,
            _ => g.plan.trust,
        };
        let ctx = Stay {
            trust,
            start: *start,
            end: *end,
            latest: k + 1 == n,
            ongoing: k + 1 == n && recent == Some(Recent::InHospital),
            to_home: resident && *end >= moved_in,
            first_to_home: came_from_hospital && k == 0,
        };
        admission(
            &mut g,
            &p,
            &ctx,
            &repeats,
            &condition_refs,
            &allergy_refs,
            &alert_refs,
            &legal_refs,
        );
    }

    provenance(&mut g);
    let mut b = Map::new();
    b.insert("resourceType".into(), json!("Bundle"));
    b.insert("type".into(), json!("transaction"));
    b.insert("entry".into(), Value::Array(g.entries));
    Value::Object(b)
}

fn provenance(g: &mut Gen<'_>) {
    let recorded = date_time(g.today, 6 * 60);
    let sources = std::mem::take(&mut g.by_source);
    for (src, targets) in &sources {
        let who = org_ref(g.org(*src));
        let body = json!({
            "resourceType": "Provenance",
            "target": targets.iter().map(|t| reference(t)).collect::<Vec<_>>(),
            "recorded": recorded.clone(),
            "activity": concept("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE", "create"),
            "agent": [{
                "type": concept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", "Author"),
                "who": who
            }]
        });
        let id = g.id("prov");
        g.push_as(&id, *src, body, &[]);
    }
}
