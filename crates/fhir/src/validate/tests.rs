use super::*;
use crate::outcome::IssueCode;
use serde_json::json;

fn issues(v: &Value) -> Vec<(IssueCode, String)> {
    validate(v)
        .into_iter()
        .map(|i| (i.code, i.expression.join(",")))
        .collect()
}

fn assert_valid(v: &Value) {
    let found = validate(v);
    assert!(found.is_empty(), "{found:#?}");
}

/// Asserts exactly one issue, with `code` at `expression`; returns its diagnostics.
fn assert_one(v: &Value, code: IssueCode, expression: &str) -> String {
    let found = validate(v);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, code, "{found:#?}");
    assert_eq!(
        found[0].expression,
        vec![expression.to_owned()],
        "{found:#?}"
    );
    found[0].diagnostics.clone()
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "1", "lastUpdated": "2024-05-01T09:30:00Z"},
        "text": {
            "status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Synthetic test patient</div>"
        },
        "identifier": [{
            "extension": [{
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                    "code": "01",
                    "display": "Number present and verified"
                }]}
            }],
            "system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": "9990000018"
        }],
        "active": true,
        "name": [{"use": "official", "family": "Testpatient", "given": ["Alex", "Jo"], "prefix": ["Mx"]}],
        "telecom": [{"system": "phone", "value": "01632 960000", "use": "home"}],
        "gender": "unknown",
        "birthDate": "1980-02-29",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1980-02-29T04:15:00+00:00"
        }]},
        "address": [{
            "use": "home",
            "line": ["1 Test Street"],
            "city": "Leeds",
            "postalCode": "LS1 4AP",
            "country": "GB",
            "period": {"start": "2010-01-01"}
        }],
        "generalPractitioner": [{
            "type": "Organization",
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y12345"}
        }],
        "managingOrganization": {"reference": "Organization/ods-Y12345", "display": "Test Surgery"}
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "obs-hba1c",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"
        }]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1107481000000106", "display": "HbA1c level"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2024-04-30T08:45:00+01:00",
        "issued": "2024-04-30T12:00:00.000+01:00",
        "performer": [{"reference": "Organization/ods-RR8"}],
        "valueQuantity": {"value": 53.5, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
        "interpretation": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "H"
        }]}],
        "referenceRange": [{
            "low": {"value": 20, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
            "high": {"value": 41, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
            "text": "20-41 mmol/mol"
        }],
        "note": [{"text": "Synthetic result."}]
    })
}

fn composition() -> Value {
    json!({
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005", "display": "Discharge summary"}]},
        "subject": {"reference": "urn:uuid:9d6a7b2c-1f0e-4c3b-8a2d-0e1f2a3b4c5d"},
        "date": "2024-05-01T10:00:00Z",
        "author": [{"reference": "Practitioner/doc-1"}],
        "title": "Discharge summary",
        "section": [
            {
                "title": "Allergies",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "886921000000105"}]},
                "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">No known allergies</div>"},
                "emptyReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "nilknown"}]}
            },
            {
                "title": "Medications",
                "entry": [{"reference": "MedicationStatement/ms-1"}],
                "section": [{"title": "Stopped", "entry": [{"reference": "#ms-old"}]}]
            }
        ]
    })
}

fn transaction() -> Value {
    let mut obs = observation();
    obs["subject"] = json!({"reference": "urn:uuid:9d6a7b2c-1f0e-4c3b-8a2d-0e1f2a3b4c5d"});
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:9d6a7b2c-1f0e-4c3b-8a2d-0e1f2a3b4c5d",
                "resource": patient(),
                "request": {"method": "PUT", "url": "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"}
            },
            {
                "fullUrl": "urn:uuid:0b7c1e4a-3d2f-4a5b-9c8d-7e6f5a4b3c2d",
                "resource": obs,
                "request": {"method": "POST", "url": "Observation"}
            },
            {"request": {"method": "DELETE", "url": "Flag/old-flag"}}
        ]
    })
}

#[test]
fn realistic_resources_are_valid() {
    assert_valid(&patient());
    assert_valid(&observation());
    assert_valid(&composition());
    assert_valid(&transaction());
    assert_valid(&json!({
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "39732311000001104"}]},
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2024-05-01",
        "dosageInstruction": [{
            "text": "One tablet twice a day",
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]
        }]
    }));
    assert_valid(&json!({
        "resourceType": "Binary",
        "contentType": "text/plain",
        "data": "SGVsbG8sIHdvcmxkIQ=="
    }));
}

#[test]
fn primitive_extensions_and_null_placeholders_are_allowed() {
    let mut p = patient();
    p["name"][0]["given"] = json!(["Alex", null]);
    p["name"][0]["_given"] =
        json!([null, {"extension": [{"url": "http://example.org/x", "valueString": "Jo"}]}]);
    p["_gender"] = json!({"id": "g1"});
    assert_valid(&p);
    // The value may be absent entirely when an extension explains why.
    let mut o = observation();
    o.as_object_mut().unwrap().remove("status");
    o["_status"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]});
    assert_valid(&o);
}

#[test]
fn resource_type_is_required_and_must_be_supported() {
    let d = assert_one(
        &json!({"resourceType": "Questionnaire", "status": "draft"}),
        IssueCode::Invalid,
        "resourceType",
    );
    assert!(d.contains("Questionnaire"));
    assert_eq!(
        issues(&json!({"id": "x"})),
        vec![(IssueCode::Required, String::new())]
    );
    assert_eq!(validate(&json!([1]))[0].code, IssueCode::Structure);
    assert_one(
        &json!({"resourceType": 7}),
        IssueCode::Structure,
        "resourceType",
    );
}

#[test]
fn unknown_elements_are_structure_errors() {
    let mut p = patient();
    p["nickname"] = json!("Al");
    p["name"][0]["middle"] = json!("Q");
    p["_foo"] = json!({"id": "x"});
    p["_name"] = json!([{"id": "x"}]);
    assert_eq!(
        issues(&p),
        vec![
            (IssueCode::Structure, "Patient.name[0].middle".to_owned()),
            (IssueCode::Structure, "Patient.nickname".to_owned()),
            (IssueCode::Structure, "Patient._foo".to_owned()),
            (IssueCode::Structure, "Patient._name".to_owned()),
        ]
    );
    // value[x] must carry its type suffix.
    let mut o = observation();
    o["value"] = json!(1);
    assert_one(&o, IssueCode::Structure, "Observation.value");
    // resourceType is only allowed on resources.
    let mut o = observation();
    o["code"]["resourceType"] = json!("CodeableConcept");
    assert_one(&o, IssueCode::Structure, "Observation.code.resourceType");
}

#[test]
fn required_elements_are_reported_at_their_path() {
    let mut o = observation();
    o.as_object_mut().unwrap().remove("status");
    o.as_object_mut().unwrap().remove("code");
    assert_eq!(
        issues(&o),
        vec![
            (IssueCode::Required, "Observation.code".to_owned()),
            (IssueCode::Required, "Observation.status".to_owned()),
        ]
    );
    let mut o = observation();
    o["referenceRange"][0]["low"] = json!({"unit": "mmol/mol"});
    assert_valid(&o);
    o["extension"] = json!([{"valueString": "no url"}]);
    let d = assert_one(&o, IssueCode::Required, "Observation.extension[0].url");
    assert!(d.contains("'url'"));
    // A required choice element is satisfied by any of its types, and reported once.
    let mr = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}});
    let d = assert_one(&mr, IssueCode::Required, "MedicationRequest.medication");
    assert!(d.contains("medication[x]"));
    // Bundle.type
    assert_one(
        &json!({"resourceType": "Bundle"}),
        IssueCode::Required,
        "Bundle.type",
    );
}

#[test]
fn paths_name_each_element_after_valid_siblings_at_every_depth() {
    // Issues deep in one branch, then in a later sibling, then back at the top: a path left
    // over from an earlier element, or an index from an earlier item, would show here.
    let mut p = patient();
    p["identifier"] = json!([
        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"},
        {"system": "https://fhir.nhs.uk/Id/local", "value": 42}
    ]);
    p["name"] = json!([
        {"family": "Testpatient", "given": ["Alex", "Jo"]},
        {"family": "Other", "given": "Jo", "period": {"start": "2001-13"}}
    ]);
    p["contact"] = json!([{
        "name": {"family": "Contact", "given": ["Sam"]},
        "telecom": [
            {"system": "phone", "value": "01632 960001"},
            {"system": "email", "value": "contact@example.org"},
            {"system": " phone", "value": "01632 960002"}
        ],
        "extension": [
            {"url": "http://example.org/a", "valueString": "fine"},
            {"valueString": "no url"}
        ]
    }]);
    p["deceasedBoolean"] = json!("no");
    assert_eq!(
        issues(&p),
        vec![
            (IssueCode::Value, "Patient.identifier[1].value".to_owned()),
            (IssueCode::Structure, "Patient.name[1].given".to_owned()),
            (IssueCode::Value, "Patient.name[1].period.start".to_owned()),
            (
                IssueCode::Value,
                "Patient.contact[0].telecom[2].system".to_owned()
            ),
            (
                IssueCode::Required,
                "Patient.contact[0].extension[1].url".to_owned()
            ),
            (IssueCode::Value, "Patient.deceasedBoolean".to_owned()),
        ]
    );
}

#[test]
fn arrays_and_single_values_must_match_cardinality() {
    let mut p = patient();
    p["gender"] = json!(["female"]);
    p["name"] = json!({"family": "Testpatient"});
    p["name"] = json!({"family": "Testpatient"});
    p["address"][0]["line"] = json!("1 Test Street");
    assert_eq!(
        issues(&p),
        vec![
            (IssueCode::Structure, "Patient.name".to_owned()),
            (IssueCode::Structure, "Patient.gender".to_owned()),
            (IssueCode::Structure, "Patient.address[0].line".to_owned()),
        ]
    );
}

#[test]
fn empty_objects_arrays_and_strings_are_errors() {
    let mut p = patient();
    p["telecom"] = json!([]);
    p["maritalStatus"] = json!({});
    p["name"][0]["family"] = json!("");
    p["name"][0]["given"] = json!(["Alex", ""]);
    assert_eq!(
        issues(&p),
        vec![
            (IssueCode::Value, "Patient.name[0].family".to_owned()),
            (IssueCode::Value, "Patient.name[0].given[1]".to_owned()),
            (IssueCode::Structure, "Patient.telecom".to_owned()),
            (IssueCode::Structure, "Patient.maritalStatus".to_owned()),
        ]
    );
    assert_eq!(
        issues(&json!({"resourceType": "Flag"})),
        vec![
            (IssueCode::Required, "Flag.code".to_owned()),
            (IssueCode::Required, "Flag.status".to_owned()),
            (IssueCode::Required, "Flag.subject".to_owned()),
        ]
    );
}

#[test]
fn objects_and_primitives_must_not_be_swapped() {
    let mut p = patient();
    p["gender"] = json!({"code": "female"});
    p["maritalStatus"] = json!("M");
    p["name"][0]["given"] = json!([null]);
    assert_eq!(
        issues(&p),
        vec![
            (IssueCode::Structure, "Patient.name[0].given[0]".to_owned()),
            (IssueCode::Structure, "Patient.gender".to_owned()),
            (IssueCode::Structure, "Patient.maritalStatus".to_owned()),
        ]
    );
}

#[test]
fn primitive_formats_are_value_errors() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/birthDate", json!("01/02/1980"), "Patient.birthDate"),
        (
            "/birthDate",
            json!("1980-02-30T10:00:00Z"),
            "Patient.birthDate",
        ),
        (
            "/meta/lastUpdated",
            json!("2024-05-01T09:30:00"),
            "Patient.meta.lastUpdated",
        ),
        (
            "/meta/lastUpdated",
            json!("2024-05-01"),
            "Patient.meta.lastUpdated",
        ),
        ("/active", json!("true"), "Patient.active"),
        ("/gender", json!(" female"), "Patient.gender"),
        ("/id", json!("pat_1"), "Patient.id"),
        (
            "/managingOrganization/reference",
            json!(7),
            "Patient.managingOrganization.reference",
        ),
        (
            "/identifier/0/system",
            json!("https://fhir.nhs.uk/Id/nhs number"),
            "Patient.identifier[0].system",
        ),
        (
            "/address/0/period/start",
            json!("2010-01-01T10:00"),
            "Patient.address[0].period.start",
        ),
        (
            "/multipleBirthInteger",
            json!(1.5),
            "Patient.multipleBirthInteger",
        ),
        (
            "/multipleBirthInteger",
            json!("2"),
            "Patient.multipleBirthInteger",
        ),
    ];
    for (pointer, bad, expression) in cases {
        let mut p = patient();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        p.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), bad.clone());
        let found = validate(&p);
        assert_eq!(found.len(), 1, "{pointer} = {bad}: {found:#?}");
        assert_eq!(found[0].code, IssueCode::Value, "{pointer} = {bad}");
        assert_eq!(
            found[0].expression,
            vec![expression.to_owned()],
            "{pointer} = {bad}"
        );
        if let Value::String(s) = &bad
            && s.len() > 5
        {
            assert!(
                !found[0].diagnostics.contains(s.as_str()),
                "value echoed: {}",
                found[0].diagnostics
            );
        }
    }
    let mut o = observation();
    o["valueQuantity"]["value"] = json!("53.5");
    assert_one(&o, IssueCode::Value, "Observation.valueQuantity.value");
    let mut b =
        json!({"resourceType": "Binary", "contentType": "text/plain", "data": "not base64!"});
    assert_one(&b, IssueCode::Value, "Binary.data");
    b["data"] = json!("SGVsbG8=");
    assert_valid(&b);
    let mut i = json!({
        "resourceType": "Immunization", "status": "completed",
        "vaccineCode": {"text": "Flu"}, "patient": {"reference": "Patient/p"},
        "occurrenceDateTime": "2023-10-01", "protocolApplied": [{"doseNumberPositiveInt": 0}]
    });
    assert_one(
        &i,
        IssueCode::Value,
        "Immunization.protocolApplied[0].doseNumberPositiveInt",
    );
    i["protocolApplied"][0]["doseNumberPositiveInt"] = json!(1);
    assert_valid(&i);
}

#[test]
fn reference_forms() {
    for good in [
        "Patient/pat-1",
        "Patient/pat-1/_history/3",
        "https://example.org/fhir/Patient/pat-1",
        "urn:uuid:9d6a7b2c-1f0e-4c3b-8a2d-0e1f2a3b4c5d",
        "urn:oid:2.16.840.1.113883.2.1",
        "#contained-1",
        "ServiceRequest/sr-1",
        "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
    ] {
        let mut o = observation();
        o["subject"]["reference"] = json!(good);
        assert_valid(&o);
    }
    for bad in [
        "Patient/",
        "Patient/pat 1",
        "patient/pat-1",
        "Patient/pat-1/_history",
        "Patient/pat_1",
        "urn:uuid:not-a-uuid",
        "#bad id",
        "pat-1",
    ] {
        let mut o = observation();
        o["subject"]["reference"] = json!(bad);
        let d = assert_one(&o, IssueCode::Value, "Observation.subject.reference");
        assert!(!d.contains(bad));
    }
}

#[test]
fn nhs_numbers_must_pass_modulus_11_and_are_never_echoed() {
    let mut p = patient();
    p["identifier"][0]["value"] = json!("9990000017");
    let d = assert_one(&p, IssueCode::BusinessRule, "Patient.identifier[0].value");
    assert!(d.contains("check digit"));
    assert!(!d.contains("999"));
    p["identifier"][0]["value"] = json!("999 000 0018");
    assert_valid(&p);
    p["identifier"][0]["value"] = json!("12345");
    assert!(
        assert_one(&p, IssueCode::BusinessRule, "Patient.identifier[0].value")
            .contains("10 digits")
    );
    p["identifier"][0]["value"] = json!("0000000000");
    assert!(
        !assert_one(&p, IssueCode::BusinessRule, "Patient.identifier[0].value").contains("0000")
    );
    p["identifier"][0].as_object_mut().unwrap().remove("value");
    assert_one(&p, IssueCode::Required, "Patient.identifier[0].value");
    // Other systems are not checked.
    p["identifier"][0] = json!({"system": "https://fhir.nhs.uk/Id/local", "value": "123"});
    assert_valid(&p);
    // NHS numbers are checked wherever an Identifier appears.
    let mut o = observation();
    o["subject"] = json!({"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000017"}});
    assert_one(
        &o,
        IssueCode::BusinessRule,
        "Observation.subject.identifier.value",
    );
}

#[test]
fn contained_resources_are_validated_recursively() {
    let mut mr = json!({
        "resourceType": "MedicationRequest",
        "contained": [{
            "resourceType": "Medication",
            "id": "med-1",
            "code": {"text": "Paracetamol 500mg tablets"},
            "form": {"text": "tablet"}
        }],
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "#med-1"},
        "subject": {"reference": "Patient/p"}
    });
    assert_valid(&mr);
    mr["contained"][0]["strength"] = json!("500mg");
    assert_one(
        &mr,
        IssueCode::Structure,
        "MedicationRequest.contained[0].strength",
    );
    mr["contained"][0] = json!({"resourceType": "Substance", "id": "s1", "code": {"text": "x"}});
    assert_one(
        &mr,
        IssueCode::Invalid,
        "MedicationRequest.contained[0].resourceType",
    );
    mr["contained"][0] = json!({"id": "s1"});
    assert_one(&mr, IssueCode::Required, "MedicationRequest.contained[0]");
}

#[test]
fn bundle_entries_are_validated_recursively() {
    let mut b = transaction();
    b["entry"][1]["resource"]["status"] = json!("FINAL ");
    b["entry"][0]["resource"]["identifier"][0]["value"] = json!("9990000017");
    b["entry"][1]["request"]["method"] = json!(["POST"]);
    assert_eq!(
        issues(&b),
        vec![
            (
                IssueCode::BusinessRule,
                "Bundle.entry[0].resource.identifier[0].value".to_owned()
            ),
            (
                IssueCode::Value,
                "Bundle.entry[1].resource.status".to_owned()
            ),
            (
                IssueCode::Structure,
                "Bundle.entry[1].request.method".to_owned()
            ),
        ]
    );
    let mut b = transaction();
    b["entry"][1]["resource"] = json!({"resourceType": "ServiceRequest", "status": "active"});
    assert_one(
        &b,
        IssueCode::Invalid,
        "Bundle.entry[1].resource.resourceType",
    );
    // Bundle.entry.link is defined by a contentReference to Bundle.link.
    let mut b = transaction();
    b["entry"][0]["link"] =
        json!([{"relation": "alternate", "url": "https://example.org/Patient/1"}]);
    assert_valid(&b);
    b["entry"][0]["link"][0]
        .as_object_mut()
        .unwrap()
        .remove("url");
    assert_one(&b, IssueCode::Required, "Bundle.entry[0].link[0].url");
}

#[test]
fn extensions_are_validated_anywhere() {
    let mut p = patient();
    p["name"][0]["extension"] = json!([{"url": "http://example.org/e", "valueBoolean": "yes"}]);
    p["modifierExtension"] = json!([{"url": "http://example.org/m", "extension": [{"url": "a", "valueInteger": 1}], "colour": "red"}]);
    assert_eq!(
        issues(&p),
        vec![
            (
                IssueCode::Value,
                "Patient.name[0].extension[0].valueBoolean".to_owned()
            ),
            (
                IssueCode::Structure,
                "Patient.modifierExtension[0].colour".to_owned()
            ),
        ]
    );
}

#[test]
fn issues_are_capped() {
    let mut p = patient();
    let obj = p.as_object_mut().unwrap();
    for n in 0..250 {
        obj.insert(format!("bogus{n}"), json!(1));
    }
    let found = validate(&p);
    assert_eq!(found.len(), MAX_ISSUES);
    assert_eq!(found[MAX_ISSUES - 1].code, IssueCode::TooCostly);
}

#[test]
fn a_choice_element_takes_one_type() {
    let mut o = observation();
    o["valueString"] = json!("high");
    o["_valueBoolean"] = json!({"id": "b"});
    let d = assert_one(&o, IssueCode::Structure, "Observation.value");
    assert!(d.contains("value[x]"));
    let mut o = observation();
    o["_valueQuantity"] = json!({"id": "q"});
    // `_valueQuantity` is not allowed (Quantity is not primitive), but it is not a second type.
    assert_one(&o, IssueCode::Structure, "Observation._valueQuantity");
}

#[test]
fn deep_nesting_is_bounded() {
    let mut ext = json!({"url": "http://example.org/leaf", "valueString": "x"});
    for _ in 0..150 {
        ext = json!({"url": "http://example.org/n", "extension": [ext]});
    }
    let mut p = patient();
    p["extension"] = json!([ext]);
    let found = validate(&p);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, IssueCode::Structure);
}
