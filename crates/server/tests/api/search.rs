use serde_json::json;

use crate::helpers::*;

async fn residents(app: &TestApp) -> (String, String) {
    let a = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let mut p = patient("9990000026", "Zoë", "Amélie", "1941-07-19");
    p["name"][0]["family"] = json!("Bérénice");
    let b = app.create(&p).await;
    (a, b)
}

#[tokio::test]
async fn token_search_matches_system_and_code_forms() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    let r = app
        .get(&format!("Patient?identifier={NHS}|9990000018"))
        .await;
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let r = app.get("Patient?identifier=9990000018").await;
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let r = app.get(&format!("Patient?identifier={NHS}|")).await;
    assert_eq!(ids(&r.body).len(), 2);
    let r = app.get("Patient?identifier=|9990000018").await;
    assert!(ids(&r.body).is_empty(), "the identifier has a system");
    let r = app.get("Patient?gender:not=male").await;
    assert_eq!(ids(&r.body).len(), 2);
}

#[tokio::test]
async fn string_search_is_prefix_case_and_accent_insensitive_with_exact_and_contains() {
    let app = spawn_app().await;
    let (a, b) = residents(&app).await;
    assert_eq!(
        ids(&app.get("Patient?family=oka").await.body),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&app.get("Patient?family=berenice").await.body),
        vec![b.clone()]
    );
    assert!(ids(&app.get("Patient?family:exact=berenice").await.body).is_empty());
    assert_eq!(
        ids(&app.get("Patient?family:exact=Bérénice").await.body),
        vec![b.clone()]
    );
    assert_eq!(
        ids(&app.get("Patient?name:contains=kaf").await.body),
        vec![a.clone()]
    );
    assert_eq!(ids(&app.get("Patient?given=amelie").await.body), vec![b]);
}

#[tokio::test]
async fn date_search_honours_prefixes_and_precision() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    for (day, v) in [
        ("2026-09-15", "4.1"),
        ("2026-10-15", "4.9"),
        ("2026-11-15", "6.2"),
    ] {
        app.create(&observation(&a, "2823-3", v, "mmol/L", day))
            .await;
    }
    let n = |path: &str| {
        let app = &app;
        let path = path.to_owned();
        async move { ids(&app.get(&path).await.body).len() }
    };
    assert_eq!(n("Observation?date=2026-10").await, 1);
    assert_eq!(n("Observation?date=2026").await, 3);
    assert_eq!(n("Observation?date=ge2026-10-15").await, 2);
    assert_eq!(n("Observation?date=lt2026-10-15").await, 1);
    assert_eq!(n("Observation?date=gt2026-10-15").await, 1);
    assert_eq!(n("Observation?date=le2026-10").await, 2);
    assert_eq!(n("Observation?date=sa2026-09-30").await, 2);
    assert_eq!(n("Observation?date=eb2026-10-01").await, 1);
    assert_eq!(n("Observation?date=ne2026-10-15").await, 2);
    assert_eq!(
        n("Observation?date=ge2026-10-01&date=lt2026-11-01").await,
        1
    );
    assert_eq!(n("Patient?birthdate=1938").await, 1);
}

#[tokio::test]
async fn reference_search_takes_relative_bare_chained_and_identifier_forms() {
    let app = spawn_app().await;
    let (a, b) = residents(&app).await;
    let oa = app
        .create(&observation(&a, "2823-3", "4.1", "mmol/L", "2026-11-01"))
        .await;
    app.create(&observation(&b, "2823-3", "4.4", "mmol/L", "2026-11-01"))
        .await;
    assert_eq!(
        ids(&app
            .get(&format!("Observation?subject=Patient/{a}"))
            .await
            .body),
        vec![oa.clone()]
    );
    assert_eq!(
        ids(&app.get(&format!("Observation?patient={a}")).await.body),
        vec![oa.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("Observation?subject={}/Patient/{a}", app.base))
            .await
            .body),
        vec![oa.clone()]
    );
    let chained = format!("Observation?subject:Patient.identifier={NHS}|9990000018");
    assert_eq!(ids(&app.get(&chained).await.body), vec![oa.clone()]);
    let mut by_identifier = observation(&a, "718-7", "131", "g/L", "2026-11-02");
    by_identifier["subject"] = json!({"identifier": {"system": NHS, "value": "9990000018"}});
    let oi = app.create(&by_identifier).await;
    assert_eq!(
        ids(&app
            .get(&format!("Observation?subject:identifier={NHS}|9990000018"))
            .await
            .body),
        vec![oi]
    );
}

#[tokio::test]
async fn quantity_and_number_search_compare_values_with_units() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    app.create(&observation(&a, "2823-3", "4.1", "mmol/L", "2026-11-01"))
        .await;
    let high = app
        .create(&observation(&a, "2823-3", "6.2", "mmol/L", "2026-11-02"))
        .await;
    let r = app
        .get("Observation?value-quantity=gt5|http://unitsofmeasure.org|mmol/L")
        .await;
    assert_eq!(ids(&r.body), vec![high.clone()]);
    let r = app.get("Observation?value-quantity=6.2||mmol/L").await;
    assert_eq!(ids(&r.body), vec![high]);
    let r = app
        .get("Observation?value-quantity=gt5|http://unitsofmeasure.org|g/L")
        .await;
    assert!(ids(&r.body).is_empty());
}

#[tokio::test]
async fn id_last_updated_and_tag_are_searchable() {
    let app = spawn_app().await;
    let (a, b) = residents(&app).await;
    assert_eq!(
        ids(&app.get(&format!("Patient?_id={a}")).await.body),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&app.get("Patient?_lastUpdated=gt2000-01-01").await.body).len(),
        2
    );
    assert!(ids(&app.get("Patient?_lastUpdated=lt2000-01-01").await.body).is_empty());
    let mut tagged = patient("9990000034", "Nowak", "Jan", "1935-02-11");
    tagged["meta"] =
        json!({"tag": [{"system": "https://fhir.carerecord.example/source", "code": "ZXA01"}]});
    let t = app.create(&tagged).await;
    let r = app
        .get("Patient?_tag=https://fhir.carerecord.example/source|ZXA01")
        .await;
    assert_eq!(ids(&r.body), vec![t]);
    let _ = b;
}

#[tokio::test]
async fn sort_orders_by_several_keys_in_either_direction() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    let mut made = Vec::new();
    for (day, code) in [
        ("2026-09-15", "718-7"),
        ("2026-11-15", "2823-3"),
        ("2026-10-15", "2823-3"),
    ] {
        made.push(
            app.create(&observation(&a, code, "4.1", "mmol/L", day))
                .await,
        );
    }
    let asc = ids(&app.get("Observation?_sort=date").await.body);
    assert_eq!(asc, vec![made[0].clone(), made[2].clone(), made[1].clone()]);
    let desc = ids(&app.get("Observation?_sort=-date").await.body);
    assert_eq!(
        desc,
        vec![made[1].clone(), made[2].clone(), made[0].clone()]
    );
    let two = ids(&app.get("Observation?_sort=code,-date").await.body);
    assert_eq!(two, vec![made[1].clone(), made[2].clone(), made[0].clone()]);
}

#[tokio::test]
async fn paging_follows_next_links_and_sees_every_match_once() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    for i in 0..25 {
        app.create(&observation(
            &a,
            "2823-3",
            &format!("4.{i}"),
            "mmol/L",
            &format!("2026-10-{:02}", i + 1),
        ))
        .await;
    }
    let first = app.get("Observation?_count=10&_sort=date").await;
    assert_eq!(first.body["total"], 25);
    assert_eq!(ids(&first.body).len(), 10);
    // A resource created while paging does not make any page repeat another.
    app.create(&observation(&a, "2823-3", "9.9", "mmol/L", "2026-10-03"))
        .await;
    let mut seen = ids(&first.body);
    let mut next = next_link(&first.body);
    while let Some(url) = next {
        let r = app.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(ids(&r.body));
        next = next_link(&r.body);
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no resource twice");
    assert!(seen.len() >= 25);
}

#[tokio::test]
async fn summary_count_and_total_none_control_totals() {
    let app = spawn_app().await;
    residents(&app).await;
    let r = app.get("Patient?_summary=count").await;
    assert_eq!(r.body["total"], 2);
    assert!(r.body.get("entry").is_none());
    let r = app.get("Patient?_total=none").await;
    assert!(r.body.get("total").is_none());
    assert_eq!(ids(&r.body).len(), 2);
}

#[tokio::test]
async fn include_and_revinclude_bring_related_resources() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    let o = app
        .create(&observation(&a, "2823-3", "4.1", "mmol/L", "2026-11-01"))
        .await;
    let r = app.get("Observation?_include=Observation:subject").await;
    let included: Vec<&serde_json::Value> = r.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .collect();
    assert_eq!(included.len(), 1);
    assert_eq!(included[0]["resource"]["id"], a.as_str());
    let r = app
        .get(&format!("Patient?_id={a}&_revinclude=Observation:subject"))
        .await;
    let inc: Vec<String> = r.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inc, vec![o]);
}

#[tokio::test]
async fn post_search_takes_form_parameters() {
    let app = spawn_app().await;
    let (a, _) = residents(&app).await;
    let r = app
        .send(
            app.client
                .post(app.url("Patient/_search"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("identifier={NHS}|9990000018")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body), vec![a]);
}

#[tokio::test]
async fn token_text_missing_and_meta_parameters_are_searchable() {
    let app = spawn_app().await;
    let (a, b) = residents(&app).await;
    let mut o = observation(&a, "2823-3", "4.1", "mmol/L", "2026-11-01");
    o["code"]["text"] = json!("Serum potassium");
    o["meta"] = json!({
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation-Lab"],
        "source": "https://fhir.carerecord.example/source/ZX401",
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
    });
    let k = app.create(&o).await;
    let mut plain = observation(&b, "718-7", "131", "g/L", "2026-11-01");
    plain.as_object_mut().unwrap().remove("effectiveDateTime");
    let h = app.create(&plain).await;

    assert_eq!(
        ids(&app.get("Observation?code:text=serum pot").await.body),
        vec![k.clone()]
    );
    assert_eq!(
        ids(&app.get("Observation?date:missing=true").await.body),
        vec![h.clone()]
    );
    assert_eq!(
        ids(&app.get("Observation?date:missing=false").await.body),
        vec![k.clone()]
    );
    assert_eq!(
        ids(&app
            .get("Observation?_profile=https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation-Lab")
            .await
            .body),
        vec![k.clone()]
    );
    assert_eq!(
        ids(&app
            .get("Observation?_source=https://fhir.carerecord.example/source/ZX401")
            .await
            .body),
        vec![k.clone()]
    );
    assert_eq!(
        ids(&app
            .get("Observation?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R")
            .await
            .body),
        vec![k.clone()]
    );
    assert_eq!(
        ids(&app
            .get("Observation?_source:below=https://fhir.carerecord.example/source")
            .await
            .body),
        vec![k]
    );
}
