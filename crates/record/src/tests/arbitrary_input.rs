//! Property tests: any input renders without panicking.

use super::*;
use proptest::prelude::*;

const TYPES: [&str; 14] = [
    "Observation",
    "DiagnosticReport",
    "Composition",
    "DocumentReference",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
    "Condition",
    "AllergyIntolerance",
    "CarePlan",
    "Encounter",
    "Flag",
    "Procedure",
    "Immunization",
];
const KEYS: [&str; 24] = [
    "status",
    "code",
    "category",
    "interpretation",
    "valueQuantity",
    "value",
    "referenceRange",
    "low",
    "high",
    "effectiveDateTime",
    "period",
    "start",
    "end",
    "section",
    "entry",
    "reference",
    "text",
    "div",
    "coding",
    "display",
    "meta",
    "tag",
    "medicationReference",
    "extension",
];

/// JSON built from the keys FHIR resources use, so the readers meet odd shapes of the
/// fields they look for.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[-0-9T:Z<>&a-z/ ]{0,24}".prop_map(Value::String),
        Just(json!("2026-11-30T10:00:00Z")),
        Just(json!("Observation/o1")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6).prop_map(
                |kv| { Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }
            ),
        ]
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(TYPES.to_vec()),
        "[a-z0-9]{1,3}",
        json(),
    )
        .prop_map(|(rt, id, body)| {
            let mut o = match body {
                Value::Object(o) => o,
                other => [("value".to_owned(), other)].into_iter().collect(),
            };
            o.insert("resourceType".into(), json!(rt));
            o.insert("id".into(), json!(id));
            Value::Object(o)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_shape_of_input_renders_without_panicking(resources in prop::collection::vec(resource(), 0..12), patient in json()) {
        let o = orgs();
        for view in [View::Full, View::Restricted] {
            let v = RecordView::build(RecordInput {
                patient: &patient,
                resources: &resources,
                organisations: &o,
                feeds: &NO_FEEDS,
                now: NOW,
                view,
                withheld: 0,
                sources_only: &[],
            });
            for s in Section::all() {
                let html = v.render(*s);
                prop_assert!(!html.contains("<script"));
            }
        }
        let _ = badges(&resources, NOW);
    }
}
