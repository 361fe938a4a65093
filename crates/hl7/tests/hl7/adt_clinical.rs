//! What ADT carries beyond the person and the visit: allergies (AL1), diagnoses (DG1),
//! contacts (NK1), the GP (PD1-4), the doctors of the visit (PV1-7/8/9/17), the admit reason
//! (PV2-3) and the external patient id (PID-2).

use carerecord_hl7::map::{
    Entry, EntryAction, MapError, Mapped, PATIENT_KEY, PATIENT_PLACEHOLDER, map,
};
use serde_json::Value;

use crate::{assert_provenance, at, ctx, map_fixture, s};

const FIXTURE: &str = "adt_a01_allergies_diagnoses_kin.hl7";
const ALLERGY: &str = "https://fhir.carerecord.example/Id/ZRH01/allergy";
const DIAGNOSIS: &str = "https://fhir.carerecord.example/Id/ZRH01/diagnosis";
const RELATED: &str = "https://fhir.carerecord.example/Id/ZRH01/related-person";
const VISITS: &str = "https://fhir.carerecord.example/Id/ZRH01/visit-number";
const GMC: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
const GMP: &str = "https://fhir.hl7.org.uk/Id/gmp-number";
const SNOMED: &str = "http://snomed.info/sct";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";

fn of_type<'a>(m: &'a Mapped, rt: &str) -> Vec<&'a Entry> {
    m.entries
        .iter()
        .filter(|e| e.resource["resourceType"] == rt)
        .collect()
}

fn keys(m: &Mapped, rt: &str) -> Vec<String> {
    of_type(m, rt)
        .iter()
        .map(|e| e.key.clone().expect("keyed").1)
        .collect()
}

fn map_text(text: &str) -> Result<Mapped, MapError> {
    let msg = carerecord_hl7::parse(text.replace('\n', "\r").as_bytes()).expect("parses");
    map(&msg, &ctx("ZRH01"))
}

/// Every entry is upserted by the identifier it carries, so a later lookup finds it again.
fn assert_keyed_by_own_identifier(e: &Entry) {
    let (system, value) = e.key.clone().expect("keyed");
    assert_eq!(e.action, EntryAction::Upsert);
    assert_eq!(s(&e.resource, "/identifier/0/system"), system);
    assert_eq!(s(&e.resource, "/identifier/0/value"), value);
    assert_provenance(
        &e.resource,
        "ZRH01",
        "PAS",
        "ZRH01",
        e.resource["meta"]["source"]
            .as_str()
            .and_then(|src| src.rsplit('#').next())
            .expect("control id"),
    );
}

#[test]
fn entries_come_after_the_encounter_and_are_keyed_by_their_identifier() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let types: Vec<&str> = m
        .entries
        .iter()
        .map(|e| e.resource["resourceType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "Encounter",
            "Condition",
            "Condition",
            "Condition",
            "Condition",
            "AllergyIntolerance",
            "AllergyIntolerance",
            "AllergyIntolerance",
            "AllergyIntolerance",
            "RelatedPerson",
            "RelatedPerson",
        ]
    );
    for e in &m.entries[1..] {
        assert_keyed_by_own_identifier(e);
        assert_eq!(
            s(&e.resource, "/meta/source"),
            "urn:hl7v2:PAS@ZRH01#ZRH01-0101"
        );
    }
}

#[test]
fn allergies_become_allergy_intolerances_one_per_allergen() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let a = of_type(&m, "AllergyIntolerance");
    // AL1-4 repeats AL1-1's allergen (SNOMED named differently) and AL1-5 is empty.
    assert_eq!(a.len(), 4);
    assert_eq!(
        keys(&m, "AllergyIntolerance"),
        [
            format!("{{patient}}|{SNOMED}|91936005"),
            "{patient}|https://fhir.carerecord.example/CodeSystem/ZRH01/local|PEANUT".to_owned(),
            "{patient}|text|HOUSE DUST".to_owned(),
            "{patient}|https://fhir.carerecord.example/CodeSystem/ZRH01/local|ASPIRIN".to_owned(),
        ]
    );
    assert!(a.iter().all(|e| e.key.as_ref().expect("key").0 == ALLERGY));

    let drug = &a[0].resource;
    assert_eq!(s(drug, "/patient/reference"), PATIENT_PLACEHOLDER);
    assert_eq!(s(drug, "/clinicalStatus/coding/0/code"), "active");
    assert_eq!(
        s(drug, "/clinicalStatus/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
    );
    assert_eq!(s(drug, "/verificationStatus/coding/0/code"), "confirmed");
    assert_eq!(s(drug, "/type"), "allergy");
    assert_eq!(at(drug, "/category"), &serde_json::json!(["medication"]));
    assert_eq!(s(drug, "/code/coding/0/system"), SNOMED);
    assert_eq!(s(drug, "/code/coding/0/code"), "91936005");
    assert_eq!(s(drug, "/code/text"), "Allergy to penicillin");
    assert_eq!(s(drug, "/recordedDate"), "2020-03-15");
    assert!(drug.get("onsetDateTime").is_none());
    assert_eq!(s(drug, "/reaction/0/severity"), "severe");
    assert_eq!(s(drug, "/reaction/0/manifestation/0/text"), "Rash");
    assert_eq!(s(drug, "/reaction/0/manifestation/1/text"), "Wheeze");
    // The first of two AL1 for one allergen is kept: not the later MI / Itch.
    assert_eq!(at(drug, "/reaction").as_array().map(Vec::len), Some(1));

    let food = &a[1].resource;
    assert_eq!(at(food, "/category"), &serde_json::json!(["food"]));
    assert_eq!(s(food, "/reaction/0/severity"), "moderate");

    // Severity without a reaction has nowhere to go; the allergen is text only.
    let dust = &a[2].resource;
    assert_eq!(at(dust, "/category"), &serde_json::json!(["environment"]));
    assert!(dust.get("reaction").is_none());
    assert!(dust.pointer("/code/coding").is_none());
    assert_eq!(s(dust, "/code/text"), "House dust");

    // MC (contraindication) says neither category nor type; U gives no severity.
    let mc = &a[3].resource;
    assert!(mc.get("category").is_none() && mc.get("type").is_none());
    assert_eq!(s(mc, "/reaction/0/manifestation/0/text"), "Nausea");
    assert!(mc.pointer("/reaction/0/severity").is_none());
}

#[test]
fn empty_al1_segments_and_fields_give_nothing_or_a_bare_allergy() {
    let m = map_fixture("adt_a28_empty_al1.hl7", "ZRH01");
    // AL1 1-3 name no allergen (the third is the HL7 null), AL1-5 has a reaction but no
    // allergen; the NK1 names nobody.
    let a = of_type(&m, "AllergyIntolerance");
    assert_eq!(a.len(), 1, "{:#?}", m.entries);
    assert!(of_type(&m, "RelatedPerson").is_empty());
    // Naming nobody, it says nothing about who the contacts are.
    assert!(m.listed_in_full.is_empty());
    let latex = &a[0].resource;
    // No local identifier: the key still names the person by carerecord's id, for the ingest.
    assert_eq!(
        a[0].key.as_ref().map(|k| k.1.as_str()),
        Some("{patient}|https://fhir.carerecord.example/CodeSystem/ZRH01/local|LATEX")
    );
    assert_eq!(s(latex, "/code/coding/0/code"), "LATEX");
    for absent in ["type", "category", "reaction", "recordedDate"] {
        assert!(latex.get(absent).is_none(), "{absent} in {latex:#}");
    }
    assert_eq!(s(latex, "/clinicalStatus/coding/0/code"), "active");
}

const BASE: &str = "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31^ADT_A05|C1|P|2.4
EVN|A31|20260801100000
PID|1||9990000018^^^NHS^NH~RX1234567^^^ZRH01^MR||TESTPERSON^ALICE||19380412|F
";

#[test]
fn a_resend_in_another_order_gives_the_same_keys_and_another_person_other_keys() {
    let one = format!(
        "{BASE}NK1|1|ONE^ANN|SPO\nNK1|2|TWO^BEN|CHD\nAL1|1|DA|A1^Aone^LOCAL\nAL1|2|FA|B2^Btwo^LOCAL\n"
    );
    let swapped = format!(
        "{BASE}NK1|1|TWO^BEN|CHD\nNK1|2|ONE^ANN|SPO\nAL1|1|FA|B2^Btwo^LOCAL\nAL1|2|DA|A1^Aone^LOCAL\n"
    );
    let a = map_text(&one).expect("maps");
    let b = map_text(&swapped).expect("maps");
    for rt in ["AllergyIntolerance", "RelatedPerson"] {
        let mut ka = keys(&a, rt);
        let mut kb = keys(&b, rt);
        assert_eq!(ka.len(), 2);
        assert_ne!(ka, kb, "{rt}: the order differs");
        ka.sort();
        kb.sort();
        assert_eq!(ka, kb, "{rt}: the same set of keys");
    }
    // The person is named by carerecord's id, which the ingest fills in once it has matched
    // them (keys are looked up across every patient): not by the message's identifiers, which
    // may change between messages about the same person.
    let with_nhs_only = map_text(&one.replace("~RX1234567^^^ZRH01^MR", "")).expect("maps");
    for rt in ["AllergyIntolerance", "RelatedPerson"] {
        assert_eq!(keys(&with_nhs_only, rt), keys(&a, rt), "{rt}");
        assert!(keys(&a, rt).iter().all(|k| k.starts_with(PATIENT_KEY)));
    }
    // Contacts are listed in full (the ingest retires the others); allergies are not.
    assert_eq!(
        a.listed_in_full,
        [("RelatedPerson".to_owned(), RELATED.to_owned())]
    );
}

#[test]
fn diagnoses_become_encounter_conditions_of_the_visit() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let c = of_type(&m, "Condition");
    assert_eq!(
        keys(&m, "Condition"),
        [
            format!("V2026-0101|{ICD10}|I10"),
            format!("V2026-0101|{ICD10}|S72.0"),
            "V2026-0101|text|CONFUSION".to_owned(),
            format!("V2026-0101|{ICD10}|J18.9"),
        ]
    );
    assert!(
        c.iter()
            .all(|e| e.key.as_ref().expect("key").0 == DIAGNOSIS)
    );

    let working = &c[0].resource;
    assert_eq!(s(working, "/subject/reference"), PATIENT_PLACEHOLDER);
    assert_eq!(
        s(working, "/encounter/reference"),
        format!("Encounter?identifier={VISITS}|V2026-0101")
    );
    assert_eq!(s(working, "/encounter/identifier/value"), "V2026-0101");
    assert_eq!(
        s(working, "/category/0/coding/0/code"),
        "encounter-diagnosis"
    );
    assert_eq!(
        s(working, "/category/0/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/condition-category"
    );
    assert_eq!(s(working, "/code/coding/0/system"), ICD10);
    assert_eq!(s(working, "/code/coding/0/code"), "I10");
    // The first DG1 for I10 (W) wins over the later F.
    assert_eq!(
        s(working, "/verificationStatus/coding/0/code"),
        "provisional"
    );
    assert_eq!(s(working, "/recordedDate"), "2026-08-01T09:45:00+01:00");
    assert!(working.get("onsetDateTime").is_none());
    assert!(working.get("clinicalStatus").is_none());
    assert_eq!(s(working, "/asserter/identifier/system"), GMC);
    assert_eq!(s(working, "/asserter/identifier/value"), "1234567");

    assert_eq!(
        s(&c[1].resource, "/verificationStatus/coding/0/code"),
        "provisional"
    );
    assert_eq!(s(&c[2].resource, "/code/text"), "Confusion");
    assert!(c[2].resource.pointer("/code/coding").is_none());
    assert_eq!(s(&c[2].resource, "/recordedDate"), "2026-08-01");
    assert_eq!(
        s(&c[3].resource, "/verificationStatus/coding/0/code"),
        "confirmed"
    );
}

#[test]
fn diagnoses_follow_the_visit_and_not_a_cancellation_or_a_person_event() {
    let dg1 = "DG1|1||I10^Essential hypertension^I10||20260801|F\n";
    let pv1 = "PV1|1|I|||||||||||||||||V9\n";
    let discharge = format!(
        "{}{pv1}{dg1}",
        BASE.replace("ADT^A31^ADT_A05", "ADT^A03^ADT_A03")
    );
    let m = map_text(&discharge).expect("maps");
    assert_eq!(keys(&m, "Condition"), [format!("V9|{ICD10}|I10")]);

    for event in ["ADT^A11^ADT_A09", "ADT^A02^ADT_A02", "ADT^A31^ADT_A05"] {
        let text = format!("{}{pv1}{dg1}", BASE.replace("ADT^A31^ADT_A05", event));
        let m = map_text(&text).expect("maps");
        assert!(of_type(&m, "Condition").is_empty(), "{event}");
    }
    // A transfer does not carry AL1 or NK1 either.
    let text = format!(
        "{}{pv1}NK1|1|ONE^ANN|SPO\nAL1|1|DA|A1^Aone^LOCAL\n",
        BASE.replace("ADT^A31^ADT_A05", "ADT^A02^ADT_A02")
    );
    assert_eq!(map_text(&text).expect("maps").entries.len(), 1);
}

#[test]
fn next_of_kin_become_related_persons() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let r = of_type(&m, "RelatedPerson");
    // NK1-3 names nobody, NK1-4 repeats NK1-1 in other letter case.
    assert_eq!(
        keys(&m, "RelatedPerson"),
        [
            "{patient}|SAMPLE DAVID|http://terminology.hl7.org/CodeSystem/v2-0063|SPO",
            "{patient}|SAMPLE EMMA|http://terminology.hl7.org/CodeSystem/v2-0063|CHD",
        ]
    );
    assert!(r.iter().all(|e| e.key.as_ref().expect("key").0 == RELATED));
    let spouse = &r[0].resource;
    assert_eq!(s(spouse, "/patient/reference"), PATIENT_PLACEHOLDER);
    assert_eq!(s(spouse, "/name/0/family"), "SAMPLE");
    assert_eq!(s(spouse, "/name/0/given/0"), "DAVID");
    assert_eq!(
        s(spouse, "/relationship/0/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/v2-0063"
    );
    assert_eq!(s(spouse, "/relationship/0/coding/0/code"), "SPO");
    assert_eq!(s(spouse, "/relationship/0/text"), "Spouse");
    assert_eq!(
        s(spouse, "/relationship/1/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/v2-0131"
    );
    assert_eq!(s(spouse, "/relationship/1/coding/0/code"), "N");
    assert_eq!(s(spouse, "/address/0/postalCode"), "E2 9ZZ");
    assert_eq!(s(spouse, "/telecom/0/value"), "020 7946 0101");
    assert_eq!(s(spouse, "/telecom/0/use"), "home");
    assert_eq!(s(spouse, "/telecom/1/value"), "020 7946 0102");
    assert_eq!(s(spouse, "/telecom/1/use"), "work");

    let child = &r[1].resource;
    assert_eq!(s(child, "/name/0/prefix/0"), "MS");
    assert_eq!(s(child, "/relationship/1/coding/0/code"), "C");
    assert_eq!(s(child, "/period/start"), "2020-01-01");
    assert!(child.get("address").is_none());
}

#[test]
fn the_gp_is_the_practice_then_the_practitioners_by_national_code() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let gp = at(&m.person.patient, "/generalPractitioner");
    assert_eq!(gp.as_array().map(Vec::len), Some(3));
    assert_eq!(s(gp, "/0/identifier/value"), "ZGP02");
    assert_eq!(s(gp, "/1/type"), "Practitioner");
    assert_eq!(s(gp, "/1/identifier/system"), GMP);
    assert_eq!(s(gp, "/1/identifier/value"), "G9999998");
    assert_eq!(
        s(gp, "/1/reference"),
        format!("Practitioner?identifier={GMP}|G9999998")
    );
    assert_eq!(s(gp, "/1/display"), "DR JANE GPNAME");
    // XCN-9 GMC names the register.
    assert_eq!(s(gp, "/2/identifier/system"), GMC);
    assert_eq!(s(gp, "/2/identifier/value"), "4444444");

    // The existing admission's PD1-4 is a GMP code too.
    let m = map_fixture("adt_a01_admit.hl7", "ZRH01");
    assert_eq!(
        s(
            &m.person.patient,
            "/generalPractitioner/1/identifier/system"
        ),
        GMP
    );
}

#[test]
fn the_doctors_of_the_visit_are_its_participants_and_pv2_3_its_reason() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let e = &m.entries[0].resource;
    let p = at(e, "/participant").as_array().expect("participants");
    let typed: Vec<(&str, Option<&str>, Option<&str>)> = p
        .iter()
        .map(|x| {
            (
                x.pointer("/type/0/coding/0/code")
                    .and_then(Value::as_str)
                    .expect("type"),
                x.pointer("/individual/identifier/system")
                    .and_then(Value::as_str),
                x.pointer("/individual/identifier/value")
                    .and_then(Value::as_str),
            )
        })
        .collect();
    let local = "https://fhir.carerecord.example/Id/ZRH01/practitioner";
    assert_eq!(
        typed,
        [
            ("ATND", Some(GMC), Some("1234567")),
            ("REF", Some(local), Some("R1234")),
            ("CON", Some(local), Some("C7654321")),
            ("CON", Some(local), Some("C7654322")),
            // PV1-17 with a name and no id.
            ("ADM", None, None),
        ]
    );
    assert_eq!(
        s(&p[0], "/type/0/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    );
    assert_eq!(s(&p[0], "/individual/display"), "DR ANNE ATTENDING");
    assert_eq!(
        s(&p[0], "/individual/reference"),
        format!("Practitioner?identifier={GMC}|1234567")
    );
    assert_eq!(s(&p[4], "/individual/display"), "ALEX ADMITTING");
    assert!(p[4].pointer("/individual/reference").is_none());

    assert_eq!(s(e, "/reasonCode/0/coding/0/system"), SNOMED);
    assert_eq!(s(e, "/reasonCode/0/coding/0/code"), "1912002");
    assert_eq!(s(e, "/reasonCode/0/text"), "Fall");
}

#[test]
fn pid_2_is_one_more_identifier() {
    let m = map_fixture(FIXTURE, "ZRH01");
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000034"));
    assert_eq!(
        m.person.local_ids,
        vec![
            ("ZRH01".to_owned(), "RX3333333".to_owned()),
            ("ZRH01OLD".to_owned(), "OLD5555".to_owned()),
        ]
    );
    assert_eq!(
        s(&m.person.patient, "/identifier/2/system"),
        "https://fhir.carerecord.example/Id/ZRH01OLD/patient-id"
    );
    assert_eq!(s(&m.person.patient, "/identifier/2/value"), "OLD5555");

    // An older feed's NHS number in PID-2 alone.
    let only_pid2 = "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31|C2|P|2.4
EVN|A31|20260801100000
PID|1|9990000018^^^NHS|||||19380412|F
";
    let m = map_text(only_pid2).expect("maps");
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000018"));
    assert!(m.person.local_ids.is_empty());

    // Checked like PID-3, and the error names PID-2.
    let err = map_text(&only_pid2.replace("9990000018", "9990000019")).expect_err("invalid");
    assert_eq!(err.to_ack_error().field, Some(2));
    let err = map_text(&BASE.replace("PID|1|", "PID|1|9990000034^^^NHS")).expect_err("two");
    assert_eq!(err.to_ack_error().segment, "PID");
}
