use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn instance_history_lists_versions_newest_first_including_the_deletion() {
    let app = spawn_app().await;
    let id = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let mut p = patient("9990000018", "Okafor-Reid", "Grace", "1938-04-02");
    p["id"] = json!(id);
    assert_eq!(app.put(&format!("Patient/{id}"), &p).await.status, 200);
    assert_eq!(app.delete(&format!("Patient/{id}")).await.status, 204);
    let r = app.get(&format!("Patient/{id}/_history")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "history");
    let entries = r.body["entry"].as_array().unwrap();
    let methods: Vec<&str> = entries
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["DELETE", "PUT", "POST"]);
    assert!(entries[0].get("resource").is_none());
    assert_eq!(entries[1]["resource"]["name"][0]["family"], "Okafor-Reid");
}

#[tokio::test]
async fn type_history_pages_with_count_and_filters_with_since() {
    let app = spawn_app().await;
    for n in ["9990000018", "9990000026", "9990000034"] {
        app.create(&patient(n, "Smith", "Ann", "1940-01-01")).await;
    }
    let all = app.search_all("Patient/_history?_count=2").await;
    assert_eq!(all.len(), 0, "history entries have no search mode");
    let mut url = app.url("Patient/_history?_count=2");
    let mut n = 0;
    loop {
        let r = app.get(&url).await;
        n += r.body["entry"].as_array().map_or(0, Vec::len);
        match next_link(&r.body) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(n, 3);
    let r = app
        .get("Patient/_history?_since=2999-01-01T00:00:00Z")
        .await;
    assert!(r.body["entry"].as_array().unwrap().is_empty());
    assert_eq!(app.get("Patient/nobody/_history").await.status, 404);
}
