//! The authorisation matrix: every role × relationship × data category × interaction, checked
//! against an oracle written here in plain Rust from the policy's rules (not from its SQL).
//!
//! Population (all synthetic): four organisations — care homes A and B, GP practice G,
//! hospital H — and people whose relationships cover resident here / resident elsewhere /
//! registered / recent and old encounter / none / objection / break-glass (live, expired, and
//! with an objection) / finished residency. Each person has items in every category, including
//! a sensitive one, two discharge summaries, and an item written by care home A about a person
//! who is not in its care.

use std::collections::{BTreeMap, BTreeSet};

use carerecord_access::{
    Principal, PrincipalId, Role, Visibility,
    policy::{self, PolicySettings},
};
use carerecord_fhir::{ResourceType, VersionId};
use serde_json::{Value, json};

use super::{Store, lid, query};
use crate::model::{BreakGlassGrant, HistoryQuery, format_instant};
use crate::{StoreError, write};

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
/// "Now" for the whole test: 2026-11-25T12:00:00Z.
const NOW: i64 = 1_795_608_000_000_000;
const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";

const HOME_A: (&str, &str) = ("org-home-a", "HA1");
const HOME_B: (&str, &str) = ("org-home-b", "HB1");
const GP_G: (&str, &str) = ("org-gp-g", "GPG");
const HOSP_H: (&str, &str) = ("org-hosp-h", "HOSH");
const LAB: &str = "LAB1";

/// What the oracle knows about a person.
#[derive(Debug, Clone, Default)]
struct Person {
    id: &'static str,
    /// Org id of the home they live in (active residency).
    resident_of: Option<&'static str>,
    /// A finished residency, which is no relationship.
    former_resident_of: Option<&'static str>,
    registered_with: Option<&'static str>,
    /// Hospital encounter that ended this many days ago.
    encounter_days_ago: Option<i64>,
    objection: bool,
    /// Break-glass grants for the nurse at home A: `true` live, `false` expired.
    nurse_a_grant: Option<bool>,
}

/// What the oracle knows about an item.
#[derive(Debug, Clone)]
struct Item {
    rt: ResourceType,
    id: String,
    patient: Option<&'static str>,
    source: &'static str,
    sensitive: bool,
    latest_discharge: bool,
    body: Value,
}

struct Who {
    name: &'static str,
    principal: Principal,
}

fn people() -> Vec<Person> {
    let p = |id| Person {
        id,
        ..Person::default()
    };
    vec![
        Person {
            resident_of: Some(HOME_A.0),
            registered_with: Some(GP_G.0),
            ..p("p-here")
        },
        Person {
            resident_of: Some(HOME_B.0),
            registered_with: Some(GP_G.0),
            ..p("p-elsewhere")
        },
        Person {
            registered_with: Some(GP_G.0),
            ..p("p-registered")
        },
        p("p-none"),
        Person {
            encounter_days_ago: Some(10),
            ..p("p-enc-recent")
        },
        Person {
            encounter_days_ago: Some(60),
            ..p("p-enc-old")
        },
        Person {
            resident_of: Some(HOME_A.0),
            registered_with: Some(GP_G.0),
            objection: true,
            ..p("p-objection")
        },
        Person {
            nurse_a_grant: Some(true),
            ..p("p-glass")
        },
        Person {
            nurse_a_grant: Some(true),
            objection: true,
            ..p("p-glass-obj")
        },
        Person {
            nurse_a_grant: Some(false),
            ..p("p-glass-expired")
        },
        Person {
            former_resident_of: Some(HOME_A.0),
            ..p("p-former")
        },
    ]
}

fn ods_of(org: &str) -> &'static str {
    [HOME_A, HOME_B, GP_G, HOSP_H]
        .iter()
        .find(|(id, _)| *id == org)
        .map_or("??", |(_, ods)| ods)
}

fn meta(source: &str, sensitive: bool) -> Value {
    let mut m = json!({"tag": [{"system": SOURCE_TAG, "code": source}]});
    if sensitive {
        m["security"] = json!([
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "STD"},
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]);
    }
    m
}

fn subject(p: &str) -> Value {
    json!({"reference": format!("Patient/{p}")})
}

fn snomed(code: &str) -> Value {
    json!({"coding": [{"system": "http://snomed.info/sct", "code": code}]})
}

fn items(people: &[Person]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut add = |rt: ResourceType,
                   id: String,
                   patient: Option<&'static str>,
                   source: &'static str,
                   sensitive: bool,
                   latest: bool,
                   mut body: Value| {
        body["resourceType"] = json!(rt.as_str());
        body["id"] = json!(id);
        body["meta"] = meta(source, sensitive);
        out.push(Item {
            rt,
            id,
            patient,
            source,
            sensitive,
            latest_discharge: latest,
            body,
        });
    };
    // Directory entries, outside every compartment; one of them sensitive.
    add(
        ResourceType::Organization,
        "org-home-a".into(),
        None,
        "DIR",
        false,
        false,
        json!({"name": "Home A"}),
    );
    add(
        ResourceType::Location,
        "loc-clinic".into(),
        None,
        HOSP_H.1,
        true,
        false,
        json!({"name": "Clinic"}),
    );
    for p in people {
        let id = p.id;
        let mut patient =
            json!({"name": [{"family": "Matrix", "given": [id]}], "gender": "unknown"});
        if let Some(gp) = p.registered_with {
            patient["generalPractitioner"] = json!([{"reference": format!("Organization/{gp}")}]);
        }
        add(
            ResourceType::Patient,
            id.into(),
            Some(id),
            GP_G.1,
            false,
            false,
            patient,
        );
        let home = p.resident_of.or(p.former_resident_of);
        if let Some(h) = home {
            let status = if p.resident_of.is_some() {
                "active"
            } else {
                "finished"
            };
            add(
                ResourceType::EpisodeOfCare,
                format!("{id}-eoc"),
                Some(id),
                ods_of(h),
                false,
                false,
                json!({"status": status, "patient": subject(id),
                       "managingOrganization": {"reference": format!("Organization/{h}")},
                       "period": {"start": "2025-01-01"}}),
            );
        }
        if let Some(days) = p.encounter_days_ago {
            add(
                ResourceType::Encounter,
                format!("{id}-enc"),
                Some(id),
                HOSP_H.1,
                false,
                false,
                json!({"status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                       "subject": subject(id),
                       "serviceProvider": {"reference": format!("Organization/{}", HOSP_H.0)},
                       "period": {"start": format_instant(NOW - (days + 3) * DAY),
                                  "end": format_instant(NOW - days * DAY)}}),
            );
        }
        if p.objection {
            add(
                ResourceType::Consent,
                format!("{id}-consent"),
                Some(id),
                GP_G.1,
                false,
                false,
                json!({"status": "active",
                       "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                       "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                       "patient": subject(id),
                       "provision": {"type": "deny"}}),
            );
        }
        add(
            ResourceType::Condition,
            format!("{id}-problem"),
            Some(id),
            GP_G.1,
            false,
            false,
            json!({"subject": subject(id), "code": snomed("52448006")}),
        );
        add(
            ResourceType::Condition,
            format!("{id}-sensitive"),
            Some(id),
            HOSP_H.1,
            true,
            false,
            json!({"subject": subject(id), "code": snomed("8098009")}),
        );
        add(
            ResourceType::MedicationRequest,
            format!("{id}-med"),
            Some(id),
            GP_G.1,
            false,
            false,
            json!({"status": "active", "intent": "order", "subject": subject(id),
                   "medicationCodeableConcept": snomed("322236009")}),
        );
        add(
            ResourceType::Observation,
            format!("{id}-lab"),
            Some(id),
            LAB,
            false,
            false,
            json!({"status": "final", "subject": subject(id),
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                   "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}),
        );
        for (n, date, latest) in [(1, "2026-01-10", false), (2, "2026-06-20", true)] {
            add(
                ResourceType::Composition,
                format!("{id}-ds{n}"),
                Some(id),
                HOSP_H.1,
                false,
                latest,
                json!({"status": "final", "type": snomed("373942005"), "subject": subject(id),
                       "date": date, "author": [{"display": "Dr Test"}], "title": "Discharge summary"}),
            );
        }
        add(
            ResourceType::CarePlan,
            format!("{id}-plan"),
            Some(id),
            home.map_or(GP_G.1, ods_of),
            false,
            false,
            json!({"status": "active", "intent": "plan", "subject": subject(id)}),
        );
    }
    // Home A once wrote about someone now living elsewhere: it still sees what it wrote.
    add(
        ResourceType::CarePlan,
        "p-elsewhere-old-plan".into(),
        Some("p-elsewhere"),
        HOME_A.1,
        false,
        false,
        json!({"status": "completed", "intent": "plan", "subject": subject("p-elsewhere")}),
    );
    out
}

fn principal(name: &str, role: Role, org: (&str, &str)) -> Principal {
    Principal {
        id: if role.is_system() {
            PrincipalId::System(name.into())
        } else {
            PrincipalId::User(name.into())
        },
        name: name.into(),
        role,
        organisation_id: org.0.into(),
        organisation_ods: org.1.into(),
        training_valid_until: Some(NOW + 100 * DAY),
        smart: None,
    }
}

fn principals() -> Vec<Who> {
    let w = |name, principal| Who { name, principal };
    vec![
        w(
            "care worker at A",
            principal("cw-a", Role::CareWorker, HOME_A),
        ),
        w(
            "senior carer at B",
            principal("sc-b", Role::SeniorCarer, HOME_B),
        ),
        w(
            "nurse at A",
            principal("rn-a", Role::RegisteredNurse, HOME_A),
        ),
        w(
            "manager at B",
            principal("mgr-b", Role::CareHomeManager, HOME_B),
        ),
        w("GP at G", principal("gp-g", Role::Gp, GP_G)),
        w(
            "clinician at H",
            principal("dr-h", Role::HospitalClinician, HOSP_H),
        ),
        w("feed of H", principal("feed-h", Role::System, HOSP_H)),
        w(
            "service",
            principal("svc", Role::Service, ("org-programme", "PRG")),
        ),
    ]
}

/// The oracle: the policy's rules, written out plainly.
fn expected(who: &Principal, item: &Item, people: &[Person]) -> bool {
    if who.role == Role::Service {
        return true;
    }
    if who.role.view() == carerecord_access::View::Restricted {
        let allowed = matches!(
            item.rt,
            ResourceType::Patient
                | ResourceType::Condition
                | ResourceType::MedicationRequest
                | ResourceType::CarePlan
                | ResourceType::Composition
                | ResourceType::EpisodeOfCare
                | ResourceType::Organization
                | ResourceType::Location
        );
        if !allowed || (item.rt == ResourceType::Composition && !item.latest_discharge) {
            return false;
        }
    }
    if item.source == who.organisation_ods {
        return true;
    }
    if item.sensitive {
        return false;
    }
    let Some(pid) = item.patient else {
        return true;
    };
    let p = people.iter().find(|p| p.id == pid).expect("fixture person");
    if p.objection {
        return false;
    }
    let org = who.organisation_id.as_str();
    let in_care = p.resident_of == Some(org)
        || p.registered_with == Some(org)
        || (org == HOSP_H.0 && p.encounter_days_ago.is_some_and(|d| d <= 30));
    let glass = who.name == "rn-a" && p.nurse_a_grant == Some(true);
    in_care || glass
}

/// Would be visible but for being sensitive (what "N withheld" counts).
fn withheld(who: &Principal, item: &Item, people: &[Person]) -> bool {
    if !item.sensitive || expected(who, item, people) {
        return false;
    }
    let mut plain = item.clone();
    plain.sensitive = false;
    expected(who, &plain, people)
}

async fn load(store: &Store, people: &[Person], items: &[Item]) {
    let mut tx = store.begin().await.unwrap();
    for it in items {
        write::update(tx.as_mut(), it.rt, &lid(&it.id), it.body.clone(), None)
            .await
            .unwrap();
    }
    let nurse = principal("rn-a", Role::RegisteredNurse, HOME_A);
    for p in people {
        if let Some(live) = p.nurse_a_grant {
            let expires = if live { NOW + HOUR } else { NOW - HOUR };
            tx.put_break_glass(&BreakGlassGrant {
                grant_id: format!("bg-{}", p.id),
                principal_key: policy::principal_key(&nurse),
                org_id: HOME_A.0.into(),
                patient_id: p.id.into(),
                reason_code: "emergency".into(),
                reason_text: "synthetic test".into(),
                granted_at: expires - 4 * HOUR,
                expires_at: expires,
            })
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

fn vis_of(who: &Principal) -> Visibility {
    policy::visibility(who, NOW, &PolicySettings::default()).unwrap()
}

fn key(rt: ResourceType, id: &str) -> String {
    format!("{rt}/{id}")
}

/// Every principal reads and vreads every item: visible ones succeed, the rest are not found —
/// exactly like a resource that does not exist.
pub async fn authorisation_matrix_reads_and_history(store: Store) {
    let people = people();
    let items = items(&people);
    load(&store, &people, &items).await;
    let v1 = VersionId::FIRST;
    let mut checked = 0;
    for who in principals() {
        let vis = vis_of(&who.principal);
        for it in &items {
            let want = expected(&who.principal, it, &people);
            let id = lid(&it.id);
            let read = store.read(it.rt, &id, &vis).await;
            let vread = store.vread(it.rt, &id, v1, &vis).await;
            let hist = store
                .history(
                    Some(it.rt),
                    Some(&id),
                    &HistoryQuery {
                        count: 10,
                        ..HistoryQuery::default()
                    },
                    &vis,
                )
                .await
                .unwrap();
            let ctx = format!("{} → {}/{}", who.name, it.rt, it.id);
            assert_eq!(read.is_ok(), want, "read: {ctx}");
            assert_eq!(vread.is_ok(), want, "vread: {ctx}");
            if !want {
                assert!(matches!(read, Err(StoreError::NotFound)), "read: {ctx}");
                assert!(matches!(vread, Err(StoreError::NotFound)), "vread: {ctx}");
            }
            assert_eq!(hist.items.len(), usize::from(want), "history: {ctx}");
            assert_eq!(hist.total, Some(u64::from(want)), "history total: {ctx}");
            checked += 1;
        }
        // Type-level history shows exactly the visible items of each type.
        for rt in types(&items) {
            let mut got = BTreeSet::new();
            let mut cursor = None;
            loop {
                let page = store
                    .history(
                        Some(rt),
                        None,
                        &HistoryQuery {
                            count: 7,
                            cursor: cursor.clone(),
                            ..HistoryQuery::default()
                        },
                        &vis,
                    )
                    .await
                    .unwrap();
                got.extend(page.items.iter().map(|r| r.id.as_str().to_owned()));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let want: BTreeSet<String> = items
                .iter()
                .filter(|i| i.rt == rt && expected(&who.principal, i, &people))
                .map(|i| i.id.clone())
                .collect();
            assert_eq!(got, want, "type history {rt}: {}", who.name);
        }
    }
    assert!(checked > 500, "the matrix covers {checked} cases");
}

fn types(items: &[Item]) -> Vec<ResourceType> {
    let set: BTreeSet<&str> = items.iter().map(|i| i.rt.as_str()).collect();
    set.into_iter().filter_map(|s| s.parse().ok()).collect()
}

/// Searches — every type, paged in small pages, with `_total`, `_summary=count` and the
/// withheld count — return exactly the visible items.
pub async fn authorisation_matrix_searches_counts_and_paging(store: Store) {
    let people = people();
    let items = items(&people);
    load(&store, &people, &items).await;
    for who in principals() {
        let vis = vis_of(&who.principal);
        for rt in types(&items) {
            let want: BTreeSet<String> = items
                .iter()
                .filter(|i| i.rt == rt && expected(&who.principal, i, &people))
                .map(|i| i.id.clone())
                .collect();
            let want_withheld = items
                .iter()
                .filter(|i| i.rt == rt && withheld(&who.principal, i, &people))
                .count() as u64;
            let mut got = BTreeSet::new();
            let mut q = query(rt, &[("_total", "accurate")]);
            let mut first = true;
            loop {
                let out = store.search(&q, 4, &vis).await.unwrap();
                if first {
                    assert_eq!(
                        out.total,
                        Some(want.len() as u64),
                        "total {rt}: {}",
                        who.name
                    );
                    assert_eq!(out.withheld, want_withheld, "withheld {rt}: {}", who.name);
                    first = false;
                }
                for r in &out.matches {
                    assert!(got.insert(r.id.as_str().to_owned()), "repeated on paging");
                }
                match out.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, want, "search {rt}: {}", who.name);
            let count = store
                .search(&query(rt, &[("_summary", "count")]), 0, &vis)
                .await
                .unwrap();
            assert_eq!(
                count.total,
                Some(want.len() as u64),
                "count {rt}: {}",
                who.name
            );
            assert!(count.matches.is_empty());
        }
        // Patient-scoped searches of each person, with their totals and withheld counts.
        for p in &people {
            let reference = format!("Patient/{}", p.id);
            let out = store
                .search(
                    &query(
                        ResourceType::Condition,
                        &[("subject", &reference), ("_total", "accurate")],
                    ),
                    100,
                    &vis,
                )
                .await
                .unwrap();
            let got: BTreeSet<String> = out
                .matches
                .iter()
                .map(|r| r.id.as_str().to_owned())
                .collect();
            let want: BTreeSet<String> = items
                .iter()
                .filter(|i| {
                    i.rt == ResourceType::Condition
                        && i.patient == Some(p.id)
                        && expected(&who.principal, i, &people)
                })
                .map(|i| i.id.clone())
                .collect();
            assert_eq!(got, want, "Condition?subject={reference}: {}", who.name);
            assert_eq!(
                out.total,
                Some(want.len() as u64),
                "Condition?subject={reference} total: {}",
                who.name
            );
            let want_withheld = items
                .iter()
                .filter(|i| {
                    i.rt == ResourceType::Condition
                        && i.patient == Some(p.id)
                        && withheld(&who.principal, i, &people)
                })
                .count() as u64;
            assert_eq!(
                out.withheld, want_withheld,
                "Condition?subject={reference} withheld: {}",
                who.name
            );
        }
    }
}

/// `$everything`, `_include`, `_revinclude` and chains never reach past what is visible.
pub async fn authorisation_matrix_everything_includes_and_chains(store: Store) {
    let people = people();
    let items = items(&people);
    load(&store, &people, &items).await;
    for who in principals() {
        let vis = vis_of(&who.principal);
        let visible: BTreeMap<String, &Item> = items
            .iter()
            .filter(|i| expected(&who.principal, i, &people))
            .map(|i| (key(i.rt, &i.id), i))
            .collect();
        for p in &people {
            let mut got = BTreeSet::new();
            let mut cursor: Option<String> = None;
            let mut withheld_seen = None;
            loop {
                let page = store
                    .everything(&lid(p.id), None, &[], 5, cursor.as_deref(), &vis)
                    .await
                    .unwrap();
                if withheld_seen.is_none() {
                    withheld_seen = Some(page.withheld);
                }
                got.extend(
                    page.items
                        .iter()
                        .map(|r| key(r.resource_type, r.id.as_str())),
                );
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let want: BTreeSet<String> = items
                .iter()
                .filter(|i| i.patient == Some(p.id) && expected(&who.principal, i, &people))
                .map(|i| key(i.rt, &i.id))
                .collect();
            assert_eq!(got, want, "$everything {}: {}", p.id, who.name);
            let want_withheld = items
                .iter()
                .filter(|i| i.patient == Some(p.id) && withheld(&who.principal, i, &people))
                .count() as u64;
            assert_eq!(
                withheld_seen,
                Some(want_withheld),
                "$everything withheld {}: {}",
                p.id,
                who.name
            );
        }
        // _include: the subjects of visible medication requests, if visible themselves.
        if who.principal.role.view() != carerecord_access::View::None {
            let out = store
                .search(
                    &query(
                        ResourceType::MedicationRequest,
                        &[("_include", "MedicationRequest:subject")],
                    ),
                    200,
                    &vis,
                )
                .await
                .unwrap();
            for r in out.matches.iter().chain(&out.included) {
                let k = key(r.resource_type, r.id.as_str());
                assert!(
                    visible.contains_key(&k),
                    "include leaked {k} to {}",
                    who.name
                );
            }
            let want_included: BTreeSet<String> = out
                .matches
                .iter()
                .filter_map(|m| visible.get(&key(m.resource_type, m.id.as_str())))
                .filter_map(|i| i.patient)
                .map(|p| key(ResourceType::Patient, p))
                .filter(|k| visible.contains_key(k))
                .collect();
            let got_included: BTreeSet<String> = out
                .included
                .iter()
                .map(|r| key(r.resource_type, r.id.as_str()))
                .collect();
            assert_eq!(got_included, want_included, "_include: {}", who.name);

            // _revinclude: lab results of visible patients, if visible themselves.
            let out = store
                .search(
                    &query(
                        ResourceType::Patient,
                        &[("_revinclude", "Observation:subject")],
                    ),
                    200,
                    &vis,
                )
                .await
                .unwrap();
            let want_rev: BTreeSet<String> = items
                .iter()
                .filter(|i| i.rt == ResourceType::Observation)
                .filter(|i| visible.contains_key(&key(i.rt, &i.id)))
                .filter(|i| {
                    i.patient
                        .is_some_and(|p| visible.contains_key(&key(ResourceType::Patient, p)))
                })
                .map(|i| key(i.rt, &i.id))
                .collect();
            let got_rev: BTreeSet<String> = out
                .included
                .iter()
                .map(|r| key(r.resource_type, r.id.as_str()))
                .collect();
            assert_eq!(got_rev, want_rev, "_revinclude: {}", who.name);

            // A chain through the subject: only conditions whose patient is visible too.
            let out = store
                .search(
                    &query(
                        ResourceType::Condition,
                        &[("subject:Patient.family", "Matrix")],
                    ),
                    200,
                    &vis,
                )
                .await
                .unwrap();
            let want_chain: BTreeSet<String> = items
                .iter()
                .filter(|i| i.rt == ResourceType::Condition)
                .filter(|i| visible.contains_key(&key(i.rt, &i.id)))
                .filter(|i| {
                    i.patient
                        .is_some_and(|p| visible.contains_key(&key(ResourceType::Patient, p)))
                })
                .map(|i| i.id.clone())
                .collect();
            let got_chain: BTreeSet<String> = out
                .matches
                .iter()
                .map(|r| r.id.as_str().to_owned())
                .collect();
            assert_eq!(got_chain, want_chain, "chain: {}", who.name);
        }
    }
}

/// The matrix is not vacuous: each kind of relationship and rule decides at least one case
/// both ways (guards against an oracle and a policy that agree by both allowing nothing).
pub async fn authorisation_matrix_exercises_every_rule(store: Store) {
    let people = people();
    let items = items(&people);
    load(&store, &people, &items).await;
    let all = principals();
    let nurse_a = &all[2].principal;
    let care_worker_a = &all[0].principal;
    let hospital = &all[5].principal;
    let see = |who: &Principal, id: &str| {
        let it = items.iter().find(|i| i.id == id).unwrap();
        expected(who, it, &people)
    };
    // Relationship kinds.
    assert!(see(nurse_a, "p-here-lab"));
    assert!(!see(nurse_a, "p-elsewhere-lab"));
    assert!(!see(nurse_a, "p-former-lab"));
    assert!(see(hospital, "p-enc-recent-lab"));
    assert!(!see(hospital, "p-enc-old-lab"));
    // Break-glass: live, expired, and never over an objection.
    assert!(see(nurse_a, "p-glass-lab"));
    assert!(!see(nurse_a, "p-glass-expired-lab"));
    assert!(!see(nurse_a, "p-glass-obj-lab"));
    assert!(!see(care_worker_a, "p-glass-problem"));
    // Objection, but the source still sees its own.
    assert!(!see(nurse_a, "p-objection-lab"));
    assert!(see(nurse_a, "p-objection-plan"));
    // Sensitive: only the source.
    assert!(!see(nurse_a, "p-here-sensitive"));
    assert!(see(hospital, "p-here-sensitive"));
    // Restricted view.
    assert!(!see(care_worker_a, "p-here-lab"));
    assert!(!see(care_worker_a, "p-here-ds1"));
    assert!(see(care_worker_a, "p-here-ds2"));
    assert!(see(care_worker_a, "p-elsewhere-old-plan"));
    // And the store agrees on a sample of each.
    let id = lid("p-glass-obj-lab");
    assert!(matches!(
        store
            .read(ResourceType::Observation, &id, &vis_of(nurse_a))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .read(
                ResourceType::Observation,
                &lid("p-glass-lab"),
                &vis_of(nurse_a)
            )
            .await
            .is_ok()
    );
}

/// A search naming one person can match another person's rows (an Observation *of* p-here
/// *performed by* p-none has p-here's compartment): the answer asked about the named person
/// must not decide them. The nurse at A cares for p-here, not for p-none.
pub async fn a_search_about_one_person_still_judges_others_rows(store: Store) {
    let people = people();
    load(&store, &people, &items(&people)).await;
    let mut tx = store.begin().await.unwrap();
    for (id, of, by) in [
        ("obs-of-here", "p-here", "p-none"),
        ("obs-of-none", "p-none", "p-here"),
    ] {
        let body = json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": snomed("271649006"), "subject": subject(of), "performer": [subject(by)],
            "meta": meta(LAB, false)});
        write::update(tx.as_mut(), ResourceType::Observation, &lid(id), body, None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let vis = vis_of(&principal("rn-a", Role::RegisteredNurse, HOME_A));
    for (by, want) in [("p-none", Some("obs-of-here")), ("p-here", None)] {
        let reference = format!("Patient/{by}");
        let q = query(
            ResourceType::Observation,
            &[("performer", reference.as_str()), ("_total", "accurate")],
        );
        let out = store.search(&q, 10, &vis).await.unwrap();
        let got: Vec<&str> = out.matches.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "performer={by}");
        assert_eq!(out.total, Some(u64::from(want.is_some())), "performer={by}");
    }
}

fn unverified_patient(status: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "meta": meta(HOSP_H.1, false),
        "identifier": [{
            "extension": [{
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                    "code": status}]}
            }],
            "system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": super::nhs("9990000034")
        }],
        "name": [{"family": "Matrix", "given": ["Unverified"]}],
        "generalPractitioner": [{"reference": format!("Organization/{}", GP_G.0)}],
    })
}

/// A person whose NHS number the hospital sent as "present but not traced" is stored and shown
/// to the hospital, but to no other organisation — not even the GP practice they are registered
/// with, or a GP's own item about them — until a later version says the number is verified.
pub async fn an_unverified_nhs_number_keeps_the_person_with_each_items_source(store: Store) {
    let mut tx = store.begin().await.unwrap();
    write::update(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("p-unverified"),
        unverified_patient("02"),
        None,
    )
    .await
    .unwrap();
    for (id, source) in [("obs-unv-h", HOSP_H.1), ("obs-unv-g", GP_G.1)] {
        let body = json!({"resourceType": "Observation", "status": "final", "meta": meta(source, false),
            "code": snomed("271649006"), "subject": subject("p-unverified")});
        write::update(tx.as_mut(), ResourceType::Observation, &lid(id), body, None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let gp = vis_of(&principal("gp-g", Role::Gp, GP_G));
    let hospital = vis_of(&principal("dr-h", Role::HospitalClinician, HOSP_H));
    let readable = |vis: Visibility, rt: ResourceType, id: &'static str| {
        let store = store.clone();
        async move {
            match store.read(rt, &lid(id), &vis).await {
                Ok(_) => true,
                Err(StoreError::NotFound) => false,
                Err(e) => panic!("{rt}/{id}: {e}"),
            }
        }
    };
    assert!(readable(hospital.clone(), ResourceType::Patient, "p-unverified").await);
    assert!(readable(hospital.clone(), ResourceType::Observation, "obs-unv-h").await);
    assert!(!readable(hospital.clone(), ResourceType::Observation, "obs-unv-g").await);
    assert!(!readable(gp.clone(), ResourceType::Patient, "p-unverified").await);
    assert!(!readable(gp.clone(), ResourceType::Observation, "obs-unv-h").await);
    assert!(readable(gp.clone(), ResourceType::Observation, "obs-unv-g").await);

    // Traced and verified: the registration now shares the person with the practice.
    let mut tx = store.begin().await.unwrap();
    write::update(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("p-unverified"),
        unverified_patient("01"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(readable(gp.clone(), ResourceType::Patient, "p-unverified").await);
    assert!(readable(gp, ResourceType::Observation, "obs-unv-h").await);
}
