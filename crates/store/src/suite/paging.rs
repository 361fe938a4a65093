//! Sorting, paging and totals.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;

use crate::StoreError;

use super::{Store, create, ids, observation, patient, query, sorted, strs};

async fn dated_observations(store: &Store) {
    create(
        store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let o = ResourceType::Observation;
    create(
        store,
        o,
        "obs-c",
        observation("pat-jane", "8867-4", 70.0, "/min", "2024-03-01T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-a",
        observation("pat-jane", "8867-4", 80.0, "/min", "2024-01-15T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-d",
        observation("pat-jane", "29463-7", 64.0, "kg", "2024-03-01T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-b",
        observation("pat-jane", "29463-7", 65.0, "kg", "2024-02-20T08:00:00Z"),
    )
    .await;
    // No effective date: sorts last either way.
    let mut undated = observation("pat-jane", "8867-4", 60.0, "/min", "2024-01-01");
    undated.as_object_mut().unwrap().remove("effectiveDateTime");
    create(store, o, "obs-e", undated).await;
}

pub async fn sort_by_date_ascending_and_descending(store: Store) {
    dated_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        ids(&store, o, &[("_sort", "date")]).await,
        strs(&["obs-a", "obs-b", "obs-c", "obs-d", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-date")]).await,
        strs(&["obs-c", "obs-d", "obs-b", "obs-a", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-_id")]).await,
        strs(&["obs-e", "obs-d", "obs-c", "obs-b", "obs-a"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "_lastUpdated")]).await,
        strs(&["obs-c", "obs-a", "obs-d", "obs-b", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-_lastUpdated")]).await,
        strs(&["obs-e", "obs-b", "obs-d", "obs-a", "obs-c"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "value-quantity")]).await,
        strs(&["obs-e", "obs-d", "obs-b", "obs-c", "obs-a"])
    );
    assert_eq!(
        ids(&store, o, &[("code", "8867-4"), ("_sort", "-date")]).await,
        strs(&["obs-c", "obs-a", "obs-e"])
    );
}

pub async fn sort_by_multiple_keys(store: Store) {
    dated_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        ids(&store, o, &[("_sort", "-date,-_id")]).await,
        strs(&["obs-d", "obs-c", "obs-b", "obs-a", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "code,date")]).await,
        strs(&["obs-b", "obs-d", "obs-a", "obs-c", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "code,-date")]).await,
        strs(&["obs-d", "obs-b", "obs-c", "obs-a", "obs-e"])
    );
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-2",
        patient("9990000026", "Smith", "Adam", "1960-01-01", "male"),
    )
    .await;
    create(
        &store,
        p,
        "pat-3",
        patient("9990000034", "Jones", "Zed", "1960-01-01", "male"),
    )
    .await;
    assert_eq!(
        ids(&store, p, &[("_sort", "family,given")]).await,
        strs(&["pat-3", "pat-2", "pat-jane"])
    );
    assert_eq!(
        ids(&store, p, &[("_sort", "birthdate,-family")]).await,
        strs(&["pat-2", "pat-3", "pat-jane"])
    );
}

/// Pages through a search, returning ids in order and the number of pages.
async fn page_through(
    store: &Store,
    rt: ResourceType,
    pairs: &[(&str, &str)],
    size: u32,
) -> (Vec<String>, usize) {
    let mut q = query(rt, pairs);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let out = store.search(&q, size, &Visibility::All).await.unwrap();
        pages += 1;
        assert!(out.matches.len() <= size as usize);
        seen.extend(out.matches.iter().map(|r| r.id.as_str().to_owned()));
        match out.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (seen, pages)
}

async fn many_observations(store: &Store, n: usize) -> Vec<String> {
    create(
        store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("obs-{i:02}");
        // Dates repeat (every third shares a day) so sort ties are broken by id.
        let day = 1 + (i % 9);
        create(
            store,
            ResourceType::Observation,
            &id,
            observation(
                "pat-jane",
                "8867-4",
                60.0 + i as f64,
                "/min",
                &format!("2024-04-{day:02}T10:00:00Z"),
            ),
        )
        .await;
        ids.push(id);
    }
    ids
}

pub async fn keyset_paging_visits_every_match_once_in_order(store: Store) {
    let all = many_observations(&store, 25).await;
    let (seen, pages) =
        page_through(&store, ResourceType::Observation, &[("code", "8867-4")], 10).await;
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "every match once, in id order");
    // An exact multiple of the page size ends without an empty page.
    let (seen, pages) = page_through(
        &store,
        ResourceType::Observation,
        &[("_id:not", "obs-00,obs-01,obs-02,obs-03,obs-04")],
        10,
    )
    .await;
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 20);
}

pub async fn keyset_paging_with_a_sort_visits_every_match_once(store: Store) {
    many_observations(&store, 25).await;
    let mut expected = ids(&store, ResourceType::Observation, &[("_sort", "-date")]).await;
    assert_eq!(expected.len(), 25);
    let (seen, _) =
        page_through(&store, ResourceType::Observation, &[("_sort", "-date")], 10).await;
    assert_eq!(seen, expected);
    let (seen, _) = page_through(
        &store,
        ResourceType::Observation,
        &[("_sort", "date,-value-quantity")],
        4,
    )
    .await;
    expected.sort();
    assert_eq!(sorted(seen.clone()), expected);
    assert_eq!(
        seen,
        ids(
            &store,
            ResourceType::Observation,
            &[("_sort", "date,-value-quantity")]
        )
        .await
    );
    let (seen, _) = page_through(
        &store,
        ResourceType::Observation,
        &[("_sort", "-_lastUpdated")],
        7,
    )
    .await;
    assert_eq!(sorted(seen), expected);
}

pub async fn keyset_paging_by_a_decimal_is_exact_beyond_fifteen_digits(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let o = ResourceType::Observation;
    // 0.30000000000000004 and 0.3 differ only in the 17th significant digit.
    let values = [
        ("obs-a", "0.30000000000000004"),
        ("obs-b", "0.3"),
        ("obs-c", "0.1"),
        ("obs-d", "0.30000000000000004"),
    ];
    for (id, v) in values {
        let mut body = observation("pat-jane", "8867-4", 0.0, "mmol/L", "2024-05-01");
        body["valueQuantity"]["value"] = serde_json::from_str(v).unwrap();
        create(&store, o, id, body).await;
    }
    let expected = strs(&["obs-c", "obs-b", "obs-a", "obs-d"]);
    assert_eq!(
        ids(&store, o, &[("_sort", "value-quantity")]).await,
        expected
    );
    let (seen, pages) = page_through(&store, o, &[("_sort", "value-quantity")], 1).await;
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);
    let (seen, _) = page_through(&store, o, &[("_sort", "-value-quantity")], 1).await;
    assert_eq!(seen, strs(&["obs-a", "obs-d", "obs-b", "obs-c"]));
}

pub async fn paging_does_not_duplicate_when_a_resource_is_created_mid_way(store: Store) {
    let all = many_observations(&store, 25).await;
    let mut q = query(ResourceType::Observation, &[("code", "8867-4")]);
    let first = store.search(&q, 10, &Visibility::All).await.unwrap();
    let mut seen: Vec<String> = first
        .matches
        .iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    // One sorting before the cursor (not seen), one after (seen once).
    create(
        &store,
        ResourceType::Observation,
        "obs-00a",
        observation("pat-jane", "8867-4", 50.0, "/min", "2024-04-01"),
    )
    .await;
    create(
        &store,
        ResourceType::Observation,
        "obs-99",
        observation("pat-jane", "8867-4", 50.0, "/min", "2024-04-01"),
    )
    .await;
    q.cursor = first.next_cursor;
    while q.cursor.is_some() {
        let out = store.search(&q, 10, &Visibility::All).await.unwrap();
        seen.extend(out.matches.iter().map(|r| r.id.as_str().to_owned()));
        q.cursor = out.next_cursor;
    }
    let mut expected = all;
    expected.push("obs-99".to_owned());
    assert_eq!(seen, expected);
}

pub async fn an_invalid_cursor_is_rejected(store: Store) {
    many_observations(&store, 3).await;
    let mut q = query(ResourceType::Observation, &[]);
    q.cursor = Some("not-a-cursor".to_owned());
    assert!(matches!(
        store.search(&q, 10, &Visibility::All).await,
        Err(StoreError::InvalidCursor)
    ));
    // A cursor from a search with another sort.
    let sorted_q = query(ResourceType::Observation, &[("_sort", "date")]);
    let c = store
        .search(&sorted_q, 1, &Visibility::All)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    q.cursor = Some(c);
    assert!(matches!(
        store.search(&q, 10, &Visibility::All).await,
        Err(StoreError::InvalidCursor)
    ));
}

pub async fn total_counts_every_match_not_just_the_page(store: Store) {
    many_observations(&store, 25).await;
    let q = query(
        ResourceType::Observation,
        &[("code", "8867-4"), ("_total", "accurate")],
    );
    let out = store.search(&q, 10, &Visibility::All).await.unwrap();
    assert_eq!(out.matches.len(), 10);
    assert_eq!(out.total, Some(25));
    let out = store
        .search(
            &query(ResourceType::Observation, &[("date", "2024-04-01")]),
            10,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(out.total, Some(3));
    let out = store
        .search(
            &query(ResourceType::Observation, &[("_total", "none")]),
            10,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(out.total, None);
    // _summary=count style: no page at all, just the total.
    let out = store
        .search(
            &query(ResourceType::Observation, &[("_total", "estimate")]),
            0,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert!(out.matches.is_empty());
    assert_eq!(out.total, Some(25));
    assert_eq!(
        store
            .search(
                &query(ResourceType::Patient, &[("family", "nobody")]),
                10,
                &Visibility::All
            )
            .await
            .unwrap()
            .total,
        Some(0)
    );
}
