//! Search by parameter type: token, string and date.

use carerecord_fhir::ResourceType;
use serde_json::json;

use super::{NHS, Store, create, encounter, id_set, ids, observation, patient, strs, two_patients};

pub async fn search_by_token_matches_every_system_and_code_form(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Observation,
        "obs-local",
        json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"code": "8867-4"}]},
            "subject": {"reference": "Patient/pat-jane"},
        }),
    )
    .await;
    let obs = ResourceType::Observation;
    assert_eq!(
        id_set(&store, obs, &[("code", "http://loinc.org|8867-4")]).await,
        strs(&["obs-jane-hr", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "8867-4")]).await,
        strs(&["obs-jane-hr", "obs-john-hr", "obs-local"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "|8867-4")]).await,
        strs(&["obs-local"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "http://loinc.org|")]).await,
        strs(&["obs-jane-hr", "obs-jane-wt", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "http://snomed.info/sct|8867-4")]).await,
        Vec::<String>::new()
    );
    // A comma is OR; repeated parameters are AND.
    assert_eq!(
        id_set(
            &store,
            obs,
            &[("code", "http://loinc.org|29463-7,http://loinc.org|8867-4")]
        )
        .await,
        strs(&["obs-jane-hr", "obs-jane-wt", "obs-john-hr"])
    );
    assert_eq!(
        id_set(
            &store,
            obs,
            &[("code", "8867-4"), ("subject", "Patient/pat-john")]
        )
        .await,
        strs(&["obs-john-hr"])
    );
    // Identifiers and plain codes are tokens too.
    let nhs_jane = format!("{NHS}|9990000018");
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("identifier", &nhs_jane)]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("gender", "male")]).await,
        strs(&["pat-john"])
    );
    assert_eq!(
        ids(
            &store,
            ResourceType::Condition,
            &[("code", "http://snomed.info/sct|195967001")]
        )
        .await,
        strs(&["cond-jane-asthma"])
    );
}

/// `:text` finds a concept by its text whether or not a coding displays the same words (its
/// own row is then left out of the index) and by a coding's display.
pub async fn search_by_token_text_matches_concept_text_and_display(store: Store) {
    let obs = ResourceType::Observation;
    let concept = |text: &str, display: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3",
                                    "display": display}],
                        "text": text}})
    };
    create(
        &store,
        obs,
        "obs-same",
        concept("Serum potassium", "SERUM POTASSIUM"),
    )
    .await;
    create(
        &store,
        obs,
        "obs-other",
        concept("Potassium level", "Potassium [Moles/volume]"),
    )
    .await;
    create(
        &store,
        obs,
        "obs-text",
        json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "Serum potassium (free text)"}}),
    )
    .await;
    assert_eq!(
        id_set(&store, obs, &[("code:text", "serum pot")]).await,
        strs(&["obs-same", "obs-text"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code:text", "potassium l")]).await,
        strs(&["obs-other"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code:text", "potassium [m")]).await,
        strs(&["obs-other"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code:not", "http://loinc.org|2823-3")]).await,
        strs(&["obs-text"])
    );
}

pub async fn search_by_token_not_excludes_matching_resources(store: Store) {
    two_patients(&store).await;
    create(&store, ResourceType::Observation, "obs-nocode", json!({"resourceType": "Observation", "status": "final", "code": {"text": "free text only"}})).await;
    let obs = ResourceType::Observation;
    assert_eq!(
        id_set(&store, obs, &[("code:not", "http://loinc.org|8867-4")]).await,
        strs(&["obs-jane-wt", "obs-nocode"])
    );
    assert_eq!(
        id_set(&store, ResourceType::Patient, &[("gender:not", "female")]).await,
        strs(&["pat-john"])
    );
}

pub async fn search_by_string_is_prefix_accent_and_case_insensitive(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Patient,
        "pat-zoe",
        patient("9990000042", "Brontë", "Zoë", "2001-07-30", "female"),
    )
    .await;
    let p = ResourceType::Patient;
    assert_eq!(
        ids(&store, p, &[("family", "smi")]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        ids(&store, p, &[("family", "SMITH")]).await,
        strs(&["pat-jane"])
    );
    assert!(
        ids(&store, p, &[("family", "mith")]).await.is_empty(),
        "default string search is starts-with"
    );
    assert_eq!(
        ids(&store, p, &[("given", "zoe")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("family", "bronte")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("name", "jane")]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        id_set(&store, p, &[("address-city", "leeds")]).await,
        strs(&["pat-jane", "pat-john", "pat-zoe"])
    );
    assert_eq!(
        id_set(&store, p, &[("family", "smith,jones")]).await,
        strs(&["pat-jane", "pat-john"])
    );
}

pub async fn search_by_string_exact_and_contains(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Patient,
        "pat-zoe",
        patient("9990000042", "Brontë", "Zoë", "2001-07-30", "female"),
    )
    .await;
    create(
        &store,
        ResourceType::Patient,
        "pat-pct",
        patient("9990000050", "Per%cent_Name", "Al", "1970-01-01", "male"),
    )
    .await;
    let p = ResourceType::Patient;
    assert_eq!(
        ids(&store, p, &[("family:exact", "Brontë")]).await,
        strs(&["pat-zoe"])
    );
    assert!(
        ids(&store, p, &[("family:exact", "Bronte")])
            .await
            .is_empty()
    );
    assert!(
        ids(&store, p, &[("family:exact", "brontë")])
            .await
            .is_empty()
    );
    assert!(
        ids(&store, p, &[("family:exact", "Bront")])
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "ONT")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "mit")]).await,
        strs(&["pat-jane"])
    );
    // LIKE wildcards in the value are literal.
    assert_eq!(
        ids(&store, p, &[("family:contains", "%c")]).await,
        strs(&["pat-pct"])
    );
    assert!(
        ids(&store, p, &[("family:contains", "r_c")])
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "t_n")]).await,
        strs(&["pat-pct"])
    );
}

pub async fn search_by_date_honours_prefixes_on_partial_dates(store: Store) {
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-1984",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    create(
        &store,
        p,
        "pat-1950",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;
    create(
        &store,
        p,
        "pat-1984b",
        patient("9990000034", "Patel", "Priya", "1984-12-31", "female"),
    )
    .await;
    create(
        &store,
        p,
        "pat-2001",
        patient("9990000042", "Brontë", "Zoë", "2001-07", "female"),
    )
    .await;

    assert_eq!(
        id_set(&store, p, &[("birthdate", "1984")]).await,
        strs(&["pat-1984", "pat-1984b"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "eq1984-03")]).await,
        strs(&["pat-1984"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "1984-03-12")]).await,
        strs(&["pat-1984"])
    );
    assert!(
        id_set(&store, p, &[("birthdate", "1984-03-13")])
            .await
            .is_empty()
    );
    // A month-precision birthDate is not within a single day.
    assert!(
        id_set(&store, p, &[("birthdate", "2001-07-15")])
            .await
            .is_empty()
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "2001-07")]).await,
        strs(&["pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "lt1984-03-12")]).await,
        strs(&["pat-1950"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "le1984-03-12")]).await,
        strs(&["pat-1950", "pat-1984"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "gt1984-03-12")]).await,
        strs(&["pat-1984b", "pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "ge1984-03-12")]).await,
        strs(&["pat-1984", "pat-1984b", "pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "sa1984")]).await,
        strs(&["pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "eb1984")]).await,
        strs(&["pat-1950"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "ne1984")]).await,
        strs(&["pat-1950", "pat-2001"])
    );
    // A range as two criteria.
    assert_eq!(
        id_set(
            &store,
            p,
            &[("birthdate", "ge1980"), ("birthdate", "lt1990")]
        )
        .await,
        strs(&["pat-1984", "pat-1984b"])
    );
    // dateTime with a time zone.
    two_patients_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        id_set(&store, o, &[("date", "2024-05-01")]).await,
        strs(&["obs-a", "obs-b"])
    );
    assert_eq!(
        id_set(&store, o, &[("date", "gt2024-05-01T09:32:00Z")]).await,
        strs(&["obs-b"])
    );
    assert_eq!(
        id_set(&store, o, &[("date", "lt2024-05-01T10:32:00+01:00")]).await,
        strs(&["obs-a", "obs-c"])
    );
}

async fn two_patients_observations(store: &Store) {
    let o = ResourceType::Observation;
    create(
        store,
        o,
        "obs-a",
        observation("pat-1984", "8867-4", 72.0, "/min", "2024-05-01T09:30:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-b",
        observation("pat-1984", "8867-4", 75.0, "/min", "2024-05-01T09:35:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-c",
        observation("pat-1950", "8867-4", 88.0, "/min", "2023-12-24T18:00:00Z"),
    )
    .await;
}

pub async fn search_by_date_compares_periods(store: Store) {
    let e = ResourceType::Encounter;
    create(
        &store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    // A clinic appointment, an inpatient stay over a month boundary, an open (ongoing) stay.
    create(
        &store,
        e,
        "enc-clinic",
        encounter(
            "pat-jane",
            "2024-05-01T09:00:00Z",
            Some("2024-05-01T09:20:00Z"),
        ),
    )
    .await;
    create(
        &store,
        e,
        "enc-stay",
        encounter(
            "pat-jane",
            "2024-05-28T14:00:00Z",
            Some("2024-06-03T11:00:00Z"),
        ),
    )
    .await;
    create(
        &store,
        e,
        "enc-open",
        encounter("pat-jane", "2024-06-10T08:00:00Z", None),
    )
    .await;

    assert_eq!(
        id_set(&store, e, &[("date", "2024-05-01")]).await,
        strs(&["enc-clinic"])
    );
    // The stay is not within May, nor within June.
    assert_eq!(
        id_set(&store, e, &[("date", "2024-05")]).await,
        strs(&["enc-clinic"])
    );
    assert!(id_set(&store, e, &[("date", "2024-06")]).await.is_empty());
    assert_eq!(
        id_set(&store, e, &[("date", "2024")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    // Overlap: some part after / before.
    assert_eq!(
        id_set(&store, e, &[("date", "gt2024-06-01")]).await,
        strs(&["enc-open", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "ge2024-06-03")]).await,
        strs(&["enc-open", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "lt2024-06-01")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "le2024-05-28")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    // Entirely after / before.
    assert_eq!(
        id_set(&store, e, &[("date", "sa2024-06-01")]).await,
        strs(&["enc-open"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "eb2024-06-01")]).await,
        strs(&["enc-clinic"])
    );
    // The open-ended stay extends into the far future.
    assert_eq!(
        id_set(&store, e, &[("date", "gt2090-01-01")]).await,
        strs(&["enc-open"])
    );
}
