//! `_include` and `_revinclude`.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use serde_json::json;

use super::{Store, create, delete, keys, observation, patient, query, sorted, strs, two_patients};

pub async fn include_and_revinclude_pull_in_related_resources(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    let out = store
        .search(
            &query(
                o,
                &[("code", "8867-4"), ("_include", "Observation:subject")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.matches)),
        strs(&["Observation/obs-jane-hr", "Observation/obs-john-hr"])
    );
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Patient/pat-jane", "Patient/pat-john"])
    );
    assert_eq!(out.total, Some(2), "included resources are not counted");

    // Target type filter.
    let out = store
        .search(
            &query(
                o,
                &[
                    ("_id", "obs-jane-hr"),
                    ("_include", "Observation:subject:Location"),
                ],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert!(out.included.is_empty());
    // A resource included twice appears once.
    let out = store
        .search(
            &query(
                o,
                &[("subject", "pat-jane"), ("_include", "Observation:subject")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));

    let out = store
        .search(
            &query(
                ResourceType::Patient,
                &[
                    ("_id", "pat-jane"),
                    ("_revinclude", "Observation:subject"),
                    ("_revinclude", "Condition:subject"),
                ],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.matches), strs(&["Patient/pat-jane"]));
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&[
            "Condition/cond-jane-asthma",
            "Observation/obs-jane-hr",
            "Observation/obs-jane-wt"
        ])
    );

    // Deleted resources are not included.
    delete(&store, ResourceType::Patient, "pat-john").await;
    delete(&store, ResourceType::Observation, "obs-jane-wt").await;
    let out = store
        .search(
            &query(
                o,
                &[("code", "8867-4"), ("_include", "Observation:subject")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));
    let out = store
        .search(
            &query(
                ResourceType::Patient,
                &[("_id", "pat-jane"), ("_revinclude", "Observation:subject")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Observation/obs-jane-hr"]));
}

pub async fn include_iterate_follows_one_more_level(store: Store) {
    create(&store, ResourceType::Organization, "org-practice", json!({
        "resourceType": "Organization", "name": "Leeds Road Surgery",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B86001"}],
    })).await;
    let mut jane = patient("9990000018", "Smith", "Jane", "1984-03-12", "female");
    jane["managingOrganization"] = json!({"reference": "Organization/org-practice"});
    create(&store, ResourceType::Patient, "pat-jane", jane).await;
    create(
        &store,
        ResourceType::Observation,
        "obs-1",
        observation("pat-jane", "8867-4", 72.0, "/min", "2024-05-01"),
    )
    .await;

    let out = store
        .search(
            &query(
                ResourceType::Observation,
                &[
                    ("_include", "Observation:subject"),
                    ("_include:iterate", "Patient:organization"),
                ],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Organization/org-practice", "Patient/pat-jane"])
    );
    // Without the iterating include the second hop is not taken.
    let out = store
        .search(
            &query(
                ResourceType::Observation,
                &[("_include", "Observation:subject")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));
    // Revinclude iterating: Organization ← Patient ← Observation.
    let out = store
        .search(
            &query(
                ResourceType::Organization,
                &[
                    ("_revinclude", "Patient:organization"),
                    ("_revinclude:iterate", "Observation:subject"),
                ],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Observation/obs-1", "Patient/pat-jane"])
    );
}
