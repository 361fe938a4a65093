//! Classification of the generated demo population: the awkward cases the README lists are
//! classified as the policy needs (an objection, a sensitive item), and every kind of care
//! relationship occurs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use carerecord_access::{Classifier, RelationshipKind};
use carerecord_fhir::ResourceType;
use serde_json::Value;

#[test]
fn the_demo_population_classifies_as_the_policy_needs() {
    let london = carerecord_synth::London::new(&carerecord_synth::Options::default());
    let c = Classifier::current();
    let mut objections = Vec::new();
    let mut sensitive = Vec::new();
    let mut kinds: HashMap<RelationshipKind, usize> = HashMap::new();
    let mut unsourced = 0;
    for i in 0..london.people() {
        let bundle = london.person_bundle(i);
        for e in bundle["entry"].as_array().unwrap() {
            let r = &e["resource"];
            let rt: ResourceType = r["resourceType"].as_str().unwrap().parse().unwrap();
            let id = r["id"].as_str().unwrap();
            let patient = if rt == ResourceType::Patient {
                Some(id.to_owned())
            } else {
                carerecord_search::registry::patient_compartment(rt, id, r)
            };
            let class = c.classify(rt, r, patient.as_deref());
            if class.source_ods.is_none() {
                unsourced += 1;
            }
            if class.objection {
                objections.push(patient.clone().unwrap());
            }
            if class.sensitive {
                sensitive.push(patient.clone().unwrap());
            }
            for rel in &class.relationships {
                *kinds.entry(rel.kind).or_default() += 1;
            }
        }
    }
    assert_eq!(unsourced, 0, "every generated resource names its source");
    assert_eq!(objections, vec!["pat-000007".to_owned()]);
    assert!(
        sensitive.contains(&"pat-000008".to_owned()),
        "{sensitive:?}"
    );
    for k in [
        RelationshipKind::Residency,
        RelationshipKind::Registration,
        RelationshipKind::Encounter,
    ] {
        assert!(
            kinds.get(&k).copied().unwrap_or(0) > 0,
            "no {k:?} in {kinds:?}"
        );
    }
}

fn classify(v: Value) -> carerecord_access::Classification {
    let rt: ResourceType = v["resourceType"].as_str().unwrap().parse().unwrap();
    Classifier::current().classify(rt, &v, Some("p1"))
}

#[test]
fn relationships_follow_status_and_period() {
    let eoc = |status: &str| {
        serde_json::json!({"resourceType": "EpisodeOfCare", "status": status,
            "patient": {"reference": "Patient/p1"},
            "managingOrganization": {"reference": "Organization/org-home"},
            "period": {"start": "2025-01-01", "end": "2026-03-01"}})
    };
    let active = classify(eoc("active"));
    assert_eq!(active.relationships.len(), 1);
    assert_eq!(active.relationships[0].org_id, "org-home");
    assert!(active.relationships[0].ends.is_some());
    assert!(classify(eoc("finished")).relationships.is_empty());
    let cancelled = serde_json::json!({"resourceType": "Encounter", "status": "cancelled",
        "serviceProvider": {"reference": "Organization/h"}});
    assert!(classify(cancelled).relationships.is_empty());
}

#[test]
fn dissent_codes_object_but_opt_outs_do_not() {
    let obs = |code: &str| {
        serde_json::json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://read.info/readv2", "code": code}]}})
    };
    assert!(classify(obs("9Nd1")).objection);
    assert!(classify(obs("93C1")).objection);
    // The type-1 opt-out is for research and planning, not direct care.
    assert!(!classify(obs("9Nu0")).objection);
    let permit = serde_json::json!({"resourceType": "Consent", "status": "active",
        "provision": {"type": "permit"}});
    assert!(!classify(permit).objection);
}

#[test]
fn sensitive_by_label_code_or_confidentiality() {
    let c = classify(serde_json::json!({"resourceType": "Condition",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}}));
    assert!(c.sensitive);
    let c = classify(serde_json::json!({"resourceType": "Composition", "confidentiality": "R"}));
    assert!(c.sensitive);
    let c = classify(serde_json::json!({"resourceType": "Observation",
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}}));
    assert!(c.sensitive);
    let c = classify(serde_json::json!({"resourceType": "Condition",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "52448006"}]}}));
    assert!(!c.sensitive);
}
