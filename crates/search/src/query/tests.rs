#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use super::*;
use crate::datetime::DateRange;
use carerecord_fhir::Severity;
use proptest::prelude::*;

const BASE: &str = "https://cr.example.nhs.uk/fhir";

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}
fn ok(rt: ResourceType, p: &[(&str, &str)]) -> SearchQuery {
    parse(rt, &pairs(p), Handling::Strict, BASE).unwrap_or_else(|e| panic!("{e:?}"))
}
fn err(rt: ResourceType, p: &[(&str, &str)]) -> Vec<Issue> {
    parse(rt, &pairs(p), Handling::Lenient, BASE).expect_err("should fail")
}

#[test]
fn token_forms_give_the_right_systems() {
    let q = ok(
        ResourceType::Patient,
        &[(
            "identifier",
            "https://fhir.nhs.uk/Id/nhs-number|9990000018,|x,abc,http://s|",
        )],
    );
    let Criterion::Token { values, negate, .. } = &q.criteria[0] else {
        panic!()
    };
    assert!(!negate);
    assert_eq!(
        values,
        &vec![
            TokenValue {
                system: TokenSystem::Is("https://fhir.nhs.uk/Id/nhs-number".into()),
                code: Some("9990000018".into())
            },
            TokenValue {
                system: TokenSystem::None,
                code: Some("x".into())
            },
            TokenValue {
                system: TokenSystem::Any,
                code: Some("abc".into())
            },
            TokenValue {
                system: TokenSystem::Is("http://s".into()),
                code: None
            },
        ]
    );
}

#[test]
fn escaped_commas_and_pipes_stay_in_the_value() {
    let q = ok(
        ResourceType::Patient,
        &[("family", "a\\,b,c"), ("identifier", "s\\|x|1")],
    );
    assert_eq!(
        q.criteria[0],
        Criterion::String {
            param: "family".into(),
            mode: StringMode::StartsWith,
            values: vec!["a,b".into(), "c".into()]
        }
    );
    let Criterion::Token { values, .. } = &q.criteria[1] else {
        panic!()
    };
    assert_eq!(values[0].system, TokenSystem::Is("s|x".into()));
}

#[test]
fn an_escaped_value_is_read_back_whole() {
    for raw in [
        "plain",
        "a,b",
        "x|y",
        "$1",
        "back\\slash",
        "all ,|$\\ of them",
    ] {
        let token = format!(
            "{}|{}",
            escape_value("https://x.example/id|sys"),
            escape_value(raw)
        );
        let q = ok(ResourceType::Patient, &[("identifier", token.as_str())]);
        let Criterion::Token { values, .. } = &q.criteria[0] else {
            panic!()
        };
        assert_eq!(values.len(), 1, "{raw}");
        assert_eq!(
            values[0].system,
            TokenSystem::Is("https://x.example/id|sys".into())
        );
        assert_eq!(values[0].code.as_deref(), Some(raw));
    }
}

#[test]
fn token_modifiers_not_text_and_missing() {
    let q = ok(
        ResourceType::Observation,
        &[
            ("code:not", "1"),
            ("code:text", "Blood Préssure"),
            ("code:missing", "true"),
        ],
    );
    assert!(matches!(
        &q.criteria[0],
        Criterion::Token { negate: true, .. }
    ));
    assert_eq!(
        q.criteria[1],
        Criterion::TokenText {
            param: "code".into(),
            values: vec!["blood pressure".into()]
        }
    );
    assert_eq!(
        q.criteria[2],
        Criterion::Missing {
            param: "code".into(),
            missing: true
        }
    );
    assert!(!err(ResourceType::Observation, &[("code:missing", "yes")]).is_empty());
}

#[test]
fn string_modifiers_choose_the_mode_and_normalization() {
    let q = ok(
        ResourceType::Patient,
        &[
            ("name", "Zoë"),
            ("name:exact", "Zoë"),
            ("name:contains", "OË"),
        ],
    );
    let modes: Vec<_> = q
        .criteria
        .iter()
        .map(|c| match c {
            Criterion::String { mode, values, .. } => (*mode, values[0].clone()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            (StringMode::StartsWith, "zoe".into()),
            (StringMode::Exact, "Zoë".into()),
            (StringMode::Contains, "oe".into())
        ]
    );
}

#[test]
fn dates_take_prefixes_and_precision_ranges() {
    let q = ok(
        ResourceType::Observation,
        &[
            ("date", "ge2024-03,lt2024-04-01T10:00Z"),
            ("_lastUpdated", "gt2024"),
        ],
    );
    let Criterion::Date { values, .. } = &q.criteria[0] else {
        panic!()
    };
    let march = DateRange::parse("2024-03").unwrap();
    assert_eq!(
        values[0],
        DateValue {
            prefix: Prefix::Ge,
            low: march.low,
            high: march.high
        }
    );
    assert_eq!(values[1].prefix, Prefix::Lt);
    assert!(matches!(&q.criteria[1], Criterion::Date { param, .. } if param == "_lastUpdated"));
    let e = err(
        ResourceType::Observation,
        &[("date", "2024-13"), ("date", "xx2024")],
    );
    assert_eq!(e.len(), 2);
    assert!(
        e.iter()
            .all(|i| i.code == IssueCode::Value && i.diagnostics.contains("date"))
    );
}

#[test]
fn quantities_parse_number_system_and_code() {
    let q = ok(
        ResourceType::Observation,
        &[(
            "value-quantity",
            "gt5.4|http://unitsofmeasure.org|mg,100||mmHg,7",
        )],
    );
    let Criterion::Quantity { values, .. } = &q.criteria[0] else {
        panic!()
    };
    assert_eq!(values[0].prefix, Prefix::Gt);
    assert!((values[0].low - 5.35).abs() < 1e-9);
    assert_eq!(
        values[0].system.as_deref(),
        Some("http://unitsofmeasure.org")
    );
    assert_eq!(
        (values[1].system.as_deref(), values[1].code.as_deref()),
        (None, Some("mmHg"))
    );
    assert_eq!((values[2].low, values[2].high), (6.5, 7.5));
    assert!(!err(ResourceType::Observation, &[("value-quantity", "5|mg")]).is_empty());
}

#[test]
fn reference_values_become_local_or_url() {
    let q = ok(
        ResourceType::Observation,
        &[(
            "subject",
            "Patient/1,https://cr.example.nhs.uk/fhir/Patient/2/_history/3,https://other.org/fhir/Patient/3,Patient/4/_history/1",
        )],
    );
    let Criterion::Reference { values, .. } = &q.criteria[0] else {
        panic!()
    };
    let local = |id: &str| ReferenceValue::Local {
        target_type: Some(ResourceType::Patient),
        id: id.into(),
    };
    assert_eq!(
        values,
        &vec![
            local("1"),
            local("2"),
            ReferenceValue::Url("https://other.org/fhir/Patient/3".into()),
            local("4")
        ]
    );
}

#[test]
fn bare_reference_ids_take_the_type_from_modifier_or_single_supported_target() {
    let q = ok(
        ResourceType::Observation,
        &[
            ("patient", "123"),
            ("subject:Patient", "9"),
            ("subject", "5"),
        ],
    );
    let get = |i: usize| match &q.criteria[i] {
        Criterion::Reference { values, .. } => values[0].clone(),
        _ => panic!(),
    };
    assert_eq!(
        get(0),
        ReferenceValue::Local {
            target_type: Some(ResourceType::Patient),
            id: "123".into()
        }
    );
    assert_eq!(
        get(1),
        ReferenceValue::Local {
            target_type: Some(ResourceType::Patient),
            id: "9".into()
        }
    );
    assert!(matches!(
        get(2),
        ReferenceValue::Local {
            target_type: None,
            ..
        }
    ));
    assert!(
        !err(
            ResourceType::Observation,
            &[("subject:Patient", "Practitioner/1")]
        )
        .is_empty()
    );
    assert!(!err(ResourceType::Observation, &[("subject", "Group/1")]).is_empty());
}

#[test]
fn reference_identifier_modifier_gives_token_values() {
    let q = ok(
        ResourceType::Observation,
        &[(
            "subject:identifier",
            "https://fhir.nhs.uk/Id/nhs-number|9990000018",
        )],
    );
    assert!(
        matches!(&q.criteria[0], Criterion::ReferenceIdentifier { param, values } if param == "subject" && values.len() == 1)
    );
}

#[test]
fn chains_parse_the_inner_criterion_against_the_target_type() {
    let q = ok(
        ResourceType::Observation,
        &[
            (
                "subject:Patient.identifier",
                "https://fhir.nhs.uk/Id/nhs-number|9990000018",
            ),
            ("patient.name", "smith"),
        ],
    );
    let Criterion::Chain {
        param,
        target_type,
        inner,
    } = &q.criteria[0]
    else {
        panic!()
    };
    assert_eq!(
        (param.as_str(), *target_type),
        ("subject", ResourceType::Patient)
    );
    assert!(matches!(inner.as_ref(), Criterion::Token { param, .. } if param == "identifier"));
    assert!(matches!(
        &q.criteria[1],
        Criterion::Chain {
            target_type: ResourceType::Patient,
            ..
        }
    ));
    let ambiguous = err(ResourceType::Observation, &[("subject.name", "x")]);
    assert!(ambiguous[0].diagnostics.contains("several types"));
    assert!(!err(ResourceType::Observation, &[("code.name", "x")]).is_empty());
    let deep = parse(
        ResourceType::Observation,
        &pairs(&[("patient.organization.name", "x")]),
        Handling::Strict,
        BASE,
    );
    assert!(deep.is_err());
}

#[test]
fn id_numbers_and_uris_are_parsed() {
    let q = ok(
        ResourceType::Patient,
        &[
            ("_id", "a,b"),
            ("_id:not", "c"),
            (
                "_profile:below",
                "https://fhir.hl7.org.uk/StructureDefinition",
            ),
        ],
    );
    assert_eq!(
        q.criteria[0],
        Criterion::Id {
            values: vec!["a".into(), "b".into()],
            negate: false
        }
    );
    assert_eq!(
        q.criteria[1],
        Criterion::Id {
            values: vec!["c".into()],
            negate: true
        }
    );
    assert!(matches!(
        &q.criteria[2],
        Criterion::Uri {
            mode: UriMode::Below,
            ..
        }
    ));
    assert!(!err(ResourceType::Patient, &[("_id", "bad id!")]).is_empty());
}

#[test]
fn result_parameters_are_parsed_and_validated() {
    let q = ok(
        ResourceType::Observation,
        &[
            ("_count", "20"),
            ("_sort", "-date,_id,code"),
            ("_include", "Observation:subject:Patient"),
            ("_include:iterate", "Patient:general-practitioner"),
            ("_revinclude", "Provenance:target"),
            ("_include", "*"),
            ("_summary", "count"),
            ("_elements", "id, code"),
            ("_total", "none"),
            ("_cursor", "abc=="),
            ("_format", "json"),
            ("_pretty", "true"),
        ],
    );
    assert_eq!(q.count, Some(20));
    assert_eq!(
        q.sort[0],
        SortKey {
            param: "date".into(),
            descending: true
        }
    );
    assert_eq!(q.sort.len(), 3);
    assert_eq!(
        q.include[0],
        Include {
            source_type: ResourceType::Observation,
            param: "subject".into(),
            target_type: Some(ResourceType::Patient),
            iterate: false
        }
    );
    assert!(q.include[1].iterate);
    assert_eq!(q.include[2].param, "*");
    assert_eq!(q.revinclude[0].source_type, ResourceType::Provenance);
    assert_eq!(q.summary, Some(Summary::Count));
    assert_eq!(q.elements, Some(vec!["id".into(), "code".into()]));
    assert_eq!(q.total, Total::None);
    assert_eq!(q.cursor.as_deref(), Some("abc=="));
    assert!(q.ignored.is_empty());
}

#[test]
fn every_malformed_value_is_reported_not_just_the_first() {
    let e = err(
        ResourceType::Observation,
        &[
            ("_count", "-1"),
            ("_summary", "maybe"),
            ("_total", "all"),
            ("_include", "Observation:code"),
            ("_include", "Nope:subject"),
            ("value-quantity", "abc"),
            ("code", "a|b|c"),
            ("code", "|"),
        ],
    );
    assert_eq!(e.len(), 8, "{e:#?}");
    assert!(e.iter().all(|i| i.severity == Severity::Error));
}

#[test]
fn unknown_parameters_and_modifiers_are_ignored_when_lenient_and_errors_when_strict() {
    let p = pairs(&[
        ("foo", "1"),
        ("code:below", "x"),
        ("Code", "y"),
        ("_has:Observation:patient:code", "1"),
    ]);
    let q = parse(ResourceType::Observation, &p, Handling::Lenient, BASE).unwrap();
    assert_eq!(q.ignored.len(), 4);
    assert!(
        q.ignored
            .iter()
            .all(|i| i.severity == Severity::Warning && i.code == IssueCode::NotSupported)
    );
    assert!(q.criteria.is_empty());
    let e = parse(ResourceType::Observation, &p, Handling::Strict, BASE).unwrap_err();
    assert_eq!(e.len(), 4);
}

proptest! {
    #[test]
    fn parse_never_panics(name in "\\PC{0,30}", value in "\\PC{0,40}") {
        for handling in [Handling::Strict, Handling::Lenient] {
            let _ = parse(ResourceType::Observation, &[(name.clone(), value.clone())], handling, BASE);
        }
    }

    #[test]
    fn parse_never_panics_on_known_names(
        name in prop::sample::select(vec![
            "code", "subject", "date", "value-quantity", "patient.name", "subject:Patient.identifier",
            "_sort", "_include", "_count", "_id", "code:text", "combo-code-value-quantity", "status:missing",
            "_lastUpdated", "_elements", "subject:identifier",
        ]),
        value in "[a-zA-Z0-9|,\\\\:/._\\-]{0,30}",
    ) {
        let _ = parse(ResourceType::Observation, &[(name.to_owned(), value)], Handling::Strict, BASE);
    }

    #[test]
    fn system_and_code_tokens_round_trip(system in "[a-z:/.]{1,20}", code in "[A-Za-z0-9]{1,10}") {
        let q = parse(ResourceType::Observation, &[("code".to_owned(), format!("{system}|{code}"))], Handling::Strict, BASE);
        let Ok(q) = q else { return Err(TestCaseError::fail("should parse")) };
        prop_assert_eq!(
            &q.criteria[0],
            &Criterion::Token {
                param: "code".into(),
                values: vec![TokenValue { system: TokenSystem::Is(system), code: Some(code) }],
                negate: false,
            }
        );
    }
}
