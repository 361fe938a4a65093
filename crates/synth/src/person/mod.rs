//! One person's whole record as a transaction Bundle.

use crate::date::{anchor, date, date_time, days_from_civil};
use crate::london::{Awkward, London, Org, PersonPlan, postcode};
use crate::refdata::{
    self, ACUTE_MEDS, ADMISSIONS, ALLERGIES, Analyte, DOCTOR_NAMES, FAMILY, FEMALE_GIVEN, ICSS,
    MALE_GIVEN, MEDS, Med, PROBLEMS, STREETS, VACCINES, heading,
};
use crate::rng::{Rng, mix};
use crate::{
    DMD, LOINC, MEDICATION_CHANGE_EXTENSION, MRN_SYSTEM_PREFIX, NHS_NUMBER_SYSTEM,
    RESIDENCY_TYPE_SYSTEM, SNOMED, SOURCE_ORGANISATION_TAG, SOURCE_SYSTEM_TAG, UCUM,
    VERIFICATION_STATUS_EXTENSION, VERIFICATION_STATUS_SYSTEM, nhs_number,
};
use serde_json::{Map, Value, json};

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
        today: anchor(),
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
    let admissions: Vec<(i64, i64)> = adm_days
        .iter()
        .map(|ago| {
            let start = g.today - ago;
            (start, start + g.rng.range(2, 16))
        })
        .collect();
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
    let mut alert_refs = Vec::new();
    let mut legal_refs = Vec::new();
    let home_src = match g.home() {
        Some(h) if h.electronic => Src::Home,
        _ => Src::Gp,
    };
    if problems.contains(&refdata::P_FALLS) {
        let start = g.days_ago(30, 700);
        let author = org_ref(g.org(home_src));
        let body = json!({
            "resourceType": "Flag",
            "status": "active",
            "category": category("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety"),
            "code": concept(SNOMED, "129839007", "At risk for falls"),
            "subject": reference(&patient_ref),
            "period": {"start": date(start)},
            "author": author
        });
        alert_refs.push(g.push("flag", home_src, body));
    }
    if resident || p.age >= 80 {
        let respect = g.rng.chance(if resident { 0.65 } else { 0.15 });
        if respect {
            let start = g.days_ago(20, 900);
            let dnacpr = g.rng.chance(0.7);
            let cpr = if dnacpr {
                "CPR is not recommended (DNACPR); a DNACPR form is in place."
            } else {
                "CPR attempts recommended."
            };
            let focus = g.rng.pick(
                &[
                    "Prioritise comfort; hospital admission only if comfort cannot be achieved at the care home.",
                    "Balance of life-sustaining treatment and comfort: ward-based treatment, not intensive care.",
                    "Prioritise sustaining life: all appropriate treatment including hospital admission.",
                ],
                "Prioritise comfort.",
            );
            let gp = org_ref(g.practice());
            let body = json!({
                "resourceType": "CarePlan",
                "text": narrative(&[format!("ReSPECT plan. {focus} {cpr}")]),
                "status": "active",
                "intent": "plan",
                "category": [concept(SNOMED, "1382601000000107", "ReSPECT (Recommended Summary Plan for Emergency Care and Treatment)")],
                "title": "ReSPECT plan",
                "description": format!("{focus} {cpr}"),
                "subject": reference(&patient_ref),
                "period": {"start": date(start)},
                "created": date(start),
                "author": gp
            });
            legal_refs.push(g.push("careplan", Src::Gp, body));
            if dnacpr {
                let author = org_ref(g.practice());
                let body = json!({
                    "resourceType": "Flag",
                    "status": "active",
                    "category": category("http://terminology.hl7.org/CodeSystem/flag-category", "advance-directive", "Advance Directive"),
                    "code": concept(SNOMED, "304253006", "Not for resuscitation"),
                    "subject": reference(&patient_ref),
                    "period": {"start": date(start)},
                    "author": author
                });
                let r = g.push("flag", Src::Gp, body);
                alert_refs.push(r.clone());
                legal_refs.push(r);
            }
        }
        if g.rng.chance(if resident { 0.3 } else { 0.05 }) {
            let start = g.days_ago(20, 900);
            let eol = resident && g.rng.chance(0.15);
            let (code, display, title, desc) = if eol {
                (
                    "861421000000109",
                    "End of life care coordination summary",
                    "End of life care coordination summary",
                    "Preferred place of death: the care home. Anticipatory medicines prescribed and in the home. Family to be called at any time.",
                )
            } else {
                (
                    "736366004",
                    "Advance care plan",
                    "Advance care plan",
                    "Wishes to stay at the care home if unwell; daughter holds lasting power of attorney for health and welfare; likes music and the garden.",
                )
            };
            let gp = org_ref(g.practice());
            let body = json!({
                "resourceType": "CarePlan",
                "text": narrative(&[desc.to_owned()]),
                "status": "active",
                "intent": "plan",
                "category": [concept(SNOMED, code, display)],
                "title": title,
                "description": desc,
                "subject": reference(&patient_ref),
                "period": {"start": date(start)},
                "created": date(start),
                "author": gp
            });
            legal_refs.push(g.push("careplan", Src::Gp, body));
        }
    }
    if let Some(home) = g.home()
        && home.electronic
    {
        let start = moved_in + 2;
        let author = org_ref(&home.org);
        let mut activities = vec![
            "Support with washing and dressing each morning",
            "Food and fluid chart; weigh monthly (MUST score)",
        ];
        if problems.contains(&refdata::P_FALLS) {
            activities.push("Walking frame within reach; sensor mat at night; hourly checks");
        }
        if problems.contains(&refdata::P_DEMENTIA) {
            activities.push("Reassure and re-orientate; life story book in room");
        }
        if home.nursing {
            activities.push("Reposition every four hours; pressure area care");
        }
        let body = json!({
            "resourceType": "CarePlan",
            "text": narrative(&activities.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()),
            "status": "active",
            "intent": "plan",
            "category": [concept(SNOMED, "734163000", "Care plan")],
            "title": "Personal care and support plan",
            "subject": reference(&patient_ref),
            "period": {"start": date(start)},
            "created": date(start),
            "author": author,
            "addresses": condition_refs.iter().map(|(r, _)| reference(r)).collect::<Vec<_>>(),
            "activity": activities.iter().map(|a| json!({"detail": {"status": "in-progress", "description": a}})).collect::<Vec<_>>()
        });
        g.push("careplan", Src::Home, body);
    }

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

/// The Patient (and, for a merged record, the retired duplicate).
fn patient(g: &mut Gen<'_>, p: &Person, middle: &str, admissions: &[(i64, i64)], moved_in: i64) {
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

fn mrn_identifier(trust: &Org, mrn: &str) -> Value {
    json!({
        "use": "usual",
        "type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
        "system": format!("{MRN_SYSTEM_PREFIX}{}", trust.ods),
        "value": mrn,
        "assigner": org_ref(trust)
    })
}

fn allergies(g: &mut Gen<'_>) -> Vec<String> {
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

fn gp_medicines(g: &mut Gen<'_>, repeats: Vec<Repeat>) -> Vec<Repeat> {
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

fn immunisations(g: &mut Gen<'_>, p: &Person) {
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

fn gp_encounters(g: &mut Gen<'_>, resident: bool, conditions: &[(String, &str)]) {
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

/// A person-specific level for an analyte (so results over time look like one person's).
fn baseline(rng: &mut Rng, an: &Analyte, problems: &[usize]) -> f64 {
    let mut mean = an.mean;
    if problems.contains(&refdata::P_CKD) {
        match an.loinc {
            "14682-9" => mean = 150.0,
            "62238-1" => mean = 38.0,
            "22664-7" => mean = 10.5,
            _ => {}
        }
    }
    if an.loinc == "59261-8" && problems.contains(&refdata::P_DIABETES) {
        mean = 60.0;
    }
    rng.normal(mean, an.sd * 0.6)
}

/// A DiagnosticReport with one Observation per analyte; returns the report's reference.
fn lab_report(
    g: &mut Gen<'_>,
    panel: (&str, &str, &[Analyte]),
    levels: &[f64],
    day: i64,
    encounter: Option<&str>,
) -> String {
    let (code, display, analytes) = panel;
    let patient = g.patient.clone();
    let lab = org_ref(&g.l.lab);
    let collected = g.at(day);
    let issued = date_time(day, 20 * 60 + g.rng.range(0, 180));
    let mut results = Vec::new();
    for (an, level) in analytes.iter().zip(levels) {
        let floor = an.mean / 8.0;
        let v = g.rng.normal(*level, an.sd * 0.45).max(floor);
        let value = number(v, an.decimals);
        let rounded: f64 = format!("{v:.prec$}", prec = an.decimals)
            .parse()
            .unwrap_or(v);
        let (ic, idisplay) = match (an.low, an.high) {
            (Some(lo), _) if rounded < lo => ("L", "Low"),
            (_, Some(hi)) if rounded > hi => ("H", "High"),
            _ => ("N", "Normal"),
        };
        let q = |x: f64| json!({"value": number(x, an.decimals), "unit": an.unit, "system": UCUM, "code": an.unit});
        let mut range = Map::new();
        if let Some(lo) = an.low {
            range.insert("low".into(), q(lo));
        }
        if let Some(hi) = an.high {
            range.insert("high".into(), q(hi));
        }
        if an.loinc == "6301-6" {
            range.insert("text".into(), json!("Target range for warfarin (AF)"));
        }
        let mut obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
            "code": concept(LOINC, an.loinc, an.display),
            "subject": reference(&patient),
            "effectiveDateTime": collected.clone(),
            "issued": issued.clone(),
            "performer": [lab.clone()],
            "valueQuantity": {"value": value, "unit": an.unit, "system": UCUM, "code": an.unit},
            "interpretation": [concept(INTERPRETATION, ic, idisplay)],
            "referenceRange": [Value::Object(range)]
        });
        if let (Some(e), Some(o)) = (encounter, obs.as_object_mut()) {
            o.insert("encounter".into(), reference(e));
        }
        results.push(reference(&g.push("obs", Src::Lab, obs)));
    }
    let mut dr = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
        "code": concept(LOINC, code, display),
        "subject": reference(&patient),
        "effectiveDateTime": collected,
        "issued": issued,
        "performer": [lab],
        "result": results
    });
    if let (Some(e), Some(o)) = (encounter, dr.as_object_mut()) {
        o.insert("encounter".into(), reference(e));
    }
    g.push("report", Src::Lab, dr)
}

fn levels(g: &mut Gen<'_>, analytes: &[Analyte], problems: &[usize]) -> Vec<f64> {
    analytes
        .iter()
        .map(|a| baseline(&mut g.rng, a, problems))
        .collect()
}

fn labs_over_time(g: &mut Gen<'_>, problems: &[usize], warfarin: bool) {
    let ue = levels(g, refdata::UE, problems);
    let fbc = levels(g, refdata::FBC, problems);
    let monitored = g.plan.home.is_some()
        || problems.iter().any(|p| {
            [
                refdata::P_CKD,
                refdata::P_DIABETES,
                refdata::P_HEART_FAILURE,
            ]
            .contains(p)
        });
    let n_ue = if monitored {
        g.rng.range(3, 6)
    } else {
        i64::from(g.rng.chance(0.5))
    };
    for k in 0..n_ue {
        let day = g.today - 20 - k * g.rng.range(100, 170);
        lab_report(g, refdata::PANEL_UE, &ue, day, None);
    }
    let n_fbc = if monitored {
        g.rng.range(1, 3)
    } else {
        i64::from(g.rng.chance(0.5))
    };
    for k in 0..n_fbc {
        let day = g.today - 25 - k * g.rng.range(150, 300);
        lab_report(g, refdata::PANEL_FBC, &fbc, day, None);
    }
    if problems.contains(&refdata::P_DIABETES) {
        let a1c = levels(g, refdata::HBA1C, problems);
        for k in 0..g.rng.range(3, 4) {
            let day = g.today - 30 - k * g.rng.range(170, 200);
            lab_report(g, refdata::PANEL_HBA1C, &a1c, day, None);
        }
    }
    if warfarin {
        let inr = levels(g, refdata::INR, problems);
        for k in 0..g.rng.range(4, 6) {
            let day = g.today - 7 - k * g.rng.range(28, 42);
            lab_report(g, refdata::PANEL_INR, &inr, day, None);
        }
    }
}

struct Stay {
    trust: usize,
    start: i64,
    end: i64,
    latest: bool,
    to_home: bool,
    first_to_home: bool,
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
fn admission(
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
    let body = json!({
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
    g.push_as(&enc_id, Src::Trust(s.trust), body, &[]);
    let body = json!({
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
