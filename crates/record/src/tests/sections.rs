//! What each section of the record shows, and how it says what it cannot show.

use super::*;
use crate::Unparsed;

#[test]
fn header_reads_like_the_wristband() {
    let v = view(&record(), View::Full, 0);
    let h = v.header();
    assert_eq!(h.name, "Mrs Edith Testperson");
    assert_eq!(h.born.as_deref(), Some("3 March 1938"));
    assert_eq!(h.age, Some(88));
    assert_eq!(h.nhs_number_formatted.as_deref(), Some("999 000 0018"));
    assert_eq!(h.gender.as_deref(), Some("Female"));
    assert_eq!(h.gp.as_deref(), Some("Zephyr Road Surgery"));
    assert_eq!(h.room.as_deref(), Some("Room 12"));
    assert_eq!(h.alerts, 1, "the inactive flag is not counted");
}

#[test]
fn summary_shows_dnacpr_allergy_reaction_problems_medicines_and_the_discharge_plan() {
    let s = view(&record(), View::Full, 0).render(Section::Summary);
    assert!(s.contains("nhsuk-warning-callout"));
    assert!(s.contains("Not for resuscitation"));
    assert!(s.contains(">DNACPR<"));
    assert!(s.contains("ReSPECT plan"));
    assert!(!s.contains("Old inactive flag"));
    assert!(s.contains("Penicillin allergy"));
    assert!(s.contains("Anaphylaxis"));
    assert!(s.contains("Severe"));
    assert!(s.contains("High risk"));
    assert!(s.contains("Atrial fibrillation"));
    assert!(
        !s.contains("Urinary tract infection</dt>"),
        "resolved problems are not active"
    );
    assert!(s.contains("Bisoprolol 2.5mg tablets"));
    // The latest summary's plan, not the older one's.
    assert!(s.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(!s.contains("Older plan"));
    assert!(s.contains(">Stopped<"));
    assert!(s.contains("Stopped: low blood pressure."));
    // Sources are named from the directory.
    assert!(s.contains("From Zephyr Road Surgery, 1 May 2026"));
    assert!(s.contains("Recent abnormal results"));
    assert!(s.contains("Critically high"));
}

#[test]
fn results_are_grouped_by_test_newest_first_with_flags_in_words_and_a_trend() {
    let s = view(&record(), View::Full, 0).render(Section::Results);
    assert_eq!(
        s.matches("<h3 class=\"nhsuk-heading-s\">Potassium</h3>")
            .count(),
        1
    );
    let table = &s[s.find("<table").unwrap()..];
    let newest = table.find("20 Nov 2026").unwrap();
    let middle = table.find("1 Sep 2026").unwrap();
    let oldest = table.find("1 Jun 2026").unwrap();
    assert!(newest < middle && middle < oldest);
    // The decimal's text as sent, the unit, the range.
    assert!(s.contains("6.80 mmol/L"));
    assert!(s.contains("3.5 to 5.3 mmol/L"));
    assert!(s.contains("nhsuk-tag--red\">Critically high<"));
    // No interpretation sent: worked out from the range.
    assert!(s.contains("nhsuk-tag--orange\">High<"));
    assert!(s.contains("From Zed Pathology"));
    assert!(s.contains("<svg"));
    assert!(s.contains("role=\"img\""));
    assert_eq!(s.matches("cr-trend__point--abnormal").count(), 2);
}

#[test]
fn reports_show_imaging_not_lab_panels() {
    let mut r = record();
    r.push(res("rep-2", LAB, FRESH, json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
        "code": concept("http://loinc.org", "24326-1", "Electrolytes panel")
    })));
    let s = view(&r, View::Full, 0).render(Section::Reports);
    assert!(s.contains("Chest X-ray"));
    assert!(s.contains("No consolidation."));
    assert!(s.contains("Zenith General Hospital"));
    assert!(!s.contains("Electrolytes panel"));
}

#[test]
fn discharge_summaries_follow_prsb_order_newest_first_with_letters() {
    let s = view(&record(), View::Full, 0).render(Section::Discharge);
    let gp = s.find(">GP practice<").unwrap();
    let investigations = s.find(">Investigation results<").unwrap();
    let meds = s.find(">Medications and medical devices<").unwrap();
    let plan = s.find(">Plan and requested actions<").unwrap();
    assert!(gp < investigations && investigations < meds && meds < plan);
    assert!(s.find("28 Nov 2026").unwrap() < s.find("1 Feb 2025").unwrap());
    assert!(s.contains("Cardiology clinic letter"));
    assert!(s.contains("href=\"/residents/pat-1/documents/dr-1\""));
    assert!(s.contains("View letter (PDF)"));

    // A malformed id never becomes a link.
    let mut r = record();
    r.push(res(
        "../../admin",
        TRUST,
        FRESH,
        json!({
            "resourceType": "DocumentReference", "status": "current", "description": "Odd letter",
            "content": [{"attachment": {"contentType": "application/pdf"}}]
        }),
    ));
    let s = view(&r, View::Full, 0).render(Section::Discharge);
    assert!(s.contains("Odd letter"));
    assert!(!s.contains("documents/.."));
}

#[test]
fn medicines_are_one_list_across_gp_and_hospital_with_discharge_changes() {
    let mut r = record();
    let mut codeine = med_statement(
        "ms-0",
        "322696007",
        "Codeine 30mg tablets",
        "active",
        "started",
        "Complete the course.",
    );
    codeine["dateAsserted"] = json!("2025-02-01T12:00:00Z");
    r.push(codeine);
    let s = view(&r, View::Full, 0).render(Section::Medicines);
    assert!(s.contains("Changes at the last discharge"));
    assert!(s.contains("Dose halved; continue."));
    let current = s.find("Current medicines</h2>").unwrap();
    let past = s.find("Stopped and past medicines</h2>").unwrap();
    // One row per medicine, naming both sources.
    assert_eq!(
        s.matches("<strong>Bisoprolol 2.5mg tablets</strong>")
            .count(),
        2
    ); // changes list + table
    let biso = s
        .rfind("<strong>Bisoprolol 2.5mg tablets</strong>")
        .unwrap();
    let furo = s.rfind("<strong>Furosemide 40mg tablets</strong>").unwrap();
    assert!(current < biso && biso < past, "bisoprolol is current");
    assert!(
        furo > past,
        "furosemide was stopped at discharge, which is newer than the GP repeat"
    );
    let codeine = s.find("<strong>Codeine 30mg tablets</strong>").unwrap();
    assert!(
        codeine > past,
        "started at an earlier stay and not on the latest discharge list"
    );
    assert!(s[codeine..].contains("(from an earlier hospital stay)"));
    let row = &s[biso..s[biso..].find("</tr>").unwrap() + biso];
    assert!(row.contains("Zephyr Road Surgery: Repeat prescription"));
    assert!(row.contains("Zenith General Hospital"));
    assert!(
        row.contains("Half a tablet each morning"),
        "the newest dose wins"
    );
}

#[test]
fn a_medicine_named_by_a_contained_or_referenced_medication_is_named() {
    let mut r = record();
    r.push(res("mr-9", GP, FRESH, json!({
        "resourceType": "MedicationRequest", "status": "active",
        "contained": [{"resourceType": "Medication", "id": "m", "code": concept("https://dmd.nhs.uk", "39720311000001101", "Sertraline 50mg tablets")}],
        "medicationReference": {"reference": "#m"},
        "authoredOn": "2026-10-01"
    })));
    r.push(res(
        "med-1",
        GP,
        FRESH,
        json!({
            "resourceType": "Medication",
            "code": concept("https://dmd.nhs.uk", "42206511000001102", "Amlodipine 5mg tablets")
        }),
    ));
    r.push(res(
        "mr-10",
        GP,
        FRESH,
        json!({
            "resourceType": "MedicationRequest", "status": "active",
            "medicationReference": {"reference": "Medication/med-1"},
            "authoredOn": "2026-10-01"
        }),
    ));
    let s = view(&r, View::Full, 0).render(Section::Medicines);
    assert!(s.contains("<strong>Sertraline 50mg tablets</strong>"));
    assert!(s.contains("<strong>Amlodipine 5mg tablets</strong>"));
}

#[test]
fn problems_care_plans_and_encounters() {
    let v = view(&record(), View::Full, 0);
    let p = v.render(Section::Problems);
    assert!(p.find("Atrial fibrillation").unwrap() < p.find("Past and resolved problems").unwrap());
    assert!(
        p.find("Urinary tract infection").unwrap() > p.find("Past and resolved problems").unwrap()
    );
    let c = v.render(Section::CarePlans);
    assert!(c.find("ReSPECT plan").unwrap() < c.find("Personal care and support plan").unwrap());
    assert!(c.contains("Sensor mat at night"));
    assert!(c.contains("From 5 Jan 2026"));
    let e = v.render(Section::Encounters);
    assert!(e.contains("20 Nov 2026 to 28 Nov 2026: Hospital admission"));
    assert!(e.contains("Discharged to Zinnia House Care Home"));
}

#[test]
fn text_from_records_is_escaped() {
    let mut r = record();
    r.push(res(
        "cp-3",
        HOME,
        FRESH,
        json!({
            "resourceType": "CarePlan", "status": "active",
            "title": "<script>alert(1)</script>",
            "description": "Likes <b>tea</b> & \"biscuits\"",
            "text": {"status": "generated", "div": "<div><script>steal()</script><p>x</p></div>"}
        }),
    ));
    let v = view(&r, View::Full, 0);
    for s in Section::all() {
        let html = v.render(*s);
        assert!(!html.contains("<script"), "{s:?} let a script through");
        assert!(!html.contains("steal()"), "{s:?} kept script content");
        assert!(!html.contains("<b>tea"), "{s:?} let markup through");
    }
    let c = v.render(Section::CarePlans);
    assert!(c.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(c.contains("Likes &lt;b&gt;tea&lt;/b&gt; &amp; &quot;biscuits&quot;"));
}

#[test]
fn restricted_view_never_renders_an_observation_value() {
    let v = view(&record(), View::Restricted, 0);
    for s in Section::all() {
        let html = v.render(*s);
        for value in ["6.80", "5.9", "4.2", "987.65", "mmol/L"] {
            assert!(!html.contains(value), "{s:?} shows a result value {value}");
        }
    }
    let summary = v.render(Section::Summary);
    assert!(summary.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(summary.contains("Penicillin allergy"));
    assert!(!summary.contains("Recent abnormal results"));
    let discharge = v.render(Section::Discharge);
    assert!(discharge.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(!discharge.contains("Older plan"), "only the latest summary");
    assert!(!discharge.contains("Investigation results"));
    assert!(!discharge.contains("Cardiology clinic letter"));
}

#[test]
fn unavailable_sections_say_why_and_nothing_else() {
    let v = view(&record(), View::Restricted, 3);
    for s in [
        Section::Results,
        Section::Reports,
        Section::Problems,
        Section::Encounters,
    ] {
        assert!(!s.available_to(View::Restricted));
        let html = v.render(s);
        assert!(html.contains(s.unavailable_reason().split('.').next().unwrap()));
        assert!(!html.contains("From "), "{s:?} shows an item");
        assert!(!html.contains("withheld"));
    }
    for s in [
        Section::Summary,
        Section::Discharge,
        Section::Medicines,
        Section::CarePlans,
    ] {
        assert!(s.available_to(View::Restricted));
        assert!(v.render(s).contains("3 items withheld by their source"));
    }
    let none = view(&record(), View::None, 0);
    for s in Section::all() {
        assert!(!s.available_to(View::None));
        assert!(!none.render(*s).contains("Penicillin"));
    }
}

#[test]
fn one_withheld_item_is_singular_and_none_says_nothing() {
    assert!(
        view(&record(), View::Full, 1)
            .render(Section::Results)
            .contains("1 item withheld by their source.")
    );
    assert!(
        !view(&record(), View::Full, 0)
            .render(Section::Results)
            .contains("withheld")
    );
}

#[test]
fn a_source_silent_for_longer_than_its_lag_is_marked() {
    let mut r = record();
    // The GP's last extract arrived three days ago.
    for v in r.iter_mut() {
        if v["meta"]["tag"][0]["code"] == GP {
            v["meta"]["lastUpdated"] = json!("2026-11-29T06:00:00Z");
        }
    }
    let s = view(&r, View::Full, 0).render(Section::Summary);
    let allergy = s.find("Penicillin allergy").unwrap();
    let row_end = allergy + s[allergy..].find("</tr>").unwrap();
    assert!(
        s[allergy..row_end]
            .contains("May be out of date: nothing new from this source since 29 Nov 2026")
    );
    // The lab sent this morning: not marked.
    let r = view(&r, View::Full, 0).render(Section::Results);
    assert!(!r.contains("May be out of date"));
}

#[test]
fn a_source_with_a_feed_is_judged_by_its_feed_not_by_this_persons_items() {
    let mut r = record();
    // Nothing about this person from the GP for three days, but the GP's feed delivered a
    // message an hour ago: its items are as fresh as the feed.
    for v in r.iter_mut() {
        if v["meta"]["tag"][0]["code"] == GP {
            v["meta"]["lastUpdated"] = json!("2026-11-29T06:00:00Z");
        }
    }
    // The lab sent this person's results this morning, yet its feed has been silent since:
    // impossible for one feed, so the feed's time is what counts — here a quiet one.
    let feeds: HashMap<String, OffsetDateTime> = [
        (GP.to_owned(), datetime!(2026-12-02 08:00 UTC)),
        (LAB.to_owned(), datetime!(2026-11-30 06:00 UTC)),
    ]
    .into_iter()
    .collect();
    let p = patient();
    let o = orgs();
    let v = RecordView::build(RecordInput {
        patient: &p,
        resources: &r,
        organisations: &o,
        feeds: &feeds,
        now: NOW,
        view: View::Full,
        withheld: 0,
        sources_only: &[],
    });
    let s = v.render(Section::Summary);
    let allergy = s.find("Penicillin allergy").unwrap();
    let row_end = allergy + s[allergy..].find("</tr>").unwrap();
    assert!(!s[allergy..row_end].contains("May be out of date"));
    let results = v.render(Section::Results);
    assert!(results.contains("May be out of date: its feed has sent nothing since 30 Nov 2026"));
    // The summary says when each source last sent anything, and how that is known.
    let sources = &s[s.find("Where this record comes from").unwrap()..];
    assert!(sources.contains(
        "Zephyr Road Surgery</td><td class=\"nhsuk-table__cell\">2 Dec 2026, 08:00 (last message on its feed)"
    ));
    assert!(sources.contains("Zenith General Hospital</td>"));
    assert!(sources.contains("(newest item for this person)"));
}

#[test]
fn build_for_renders_only_the_sections_asked_for() {
    let p = patient();
    let o = orgs();
    let r = record();
    let input = || RecordInput {
        patient: &p,
        resources: &r,
        organisations: &o,
        feeds: &NO_FEEDS,
        now: NOW,
        view: View::Full,
        withheld: 0,
        sources_only: &[],
    };
    let one = RecordView::build_for(input(), &[Section::Medicines]);
    let all = RecordView::build(input());
    assert_eq!(
        one.render(Section::Medicines),
        all.render(Section::Medicines)
    );
    assert!(one.render(Section::Results).is_empty());
    assert!(!all.render(Section::Results).is_empty());
    assert_eq!(one.header(), all.header());
}

#[test]
fn sections_and_slugs_round_trip() {
    for s in Section::all() {
        assert_eq!(Section::from_slug(s.slug()), Some(*s));
        assert!(!s.title().is_empty());
        assert!(s.available_to(View::Full));
    }
    assert_eq!(Section::from_slug("nope"), None);
}

#[test]
fn odd_and_empty_input_renders_without_panicking() {
    let odd = vec![
        json!({}),
        json!(null),
        json!([1, 2]),
        json!({"resourceType": "Observation", "code": "not a concept", "valueQuantity": {"value": "x"}, "referenceRange": "?", "effectiveDateTime": 7}),
        json!({"resourceType": "Observation", "code": {"coding": "x"}, "interpretation": {"text": "Weird"}, "valueQuantity": {"value": 1e308}}),
        json!({"resourceType": "Composition", "type": {"text": "Discharge summary"}, "section": [{"section": [{"section": [{"section": [{"text": {"div": "<p>deep"}}]}]}]}]}),
        json!({"resourceType": "MedicationStatement", "medicationReference": {"reference": "Medication/missing"}}),
        json!({"resourceType": "Encounter", "period": {"start": "not a date"}, "hospitalization": 3}),
        json!({"resourceType": "CarePlan", "activity": [{}, {"detail": 5}]}),
        json!({"resourceType": "Patient"}),
    ];
    let p = json!({"resourceType": "Patient", "name": "nobody", "birthDate": "19xx"});
    let o = HashMap::new();
    for view in [View::Full, View::Restricted, View::None] {
        for resources in [&odd[..], &[][..]] {
            let v = RecordView::build(RecordInput {
                patient: &p,
                resources,
                organisations: &o,
                feeds: &NO_FEEDS,
                now: NOW,
                view,
                withheld: 0,
                sources_only: &[],
            });
            assert_eq!(v.header().name, "Name not recorded");
            for s in Section::all() {
                let _ = v.render(*s);
            }
        }
    }
    let _ = badges(&odd, NOW);
}

#[test]
fn results_left_unparsed_still_count_in_how_many_there_are() {
    let p = patient();
    let o = orgs();
    let r: Vec<Value> = (0..25)
        .map(|k| {
            potassium(
                &format!("k{k}"),
                &format!("2026-10-{:02}T09:00:00Z", k + 1),
                "4.1",
                None,
            )
        })
        .collect();
    // Ten older potassium results the caller read only for their source, test and status
    // (three alone, seven as one that stands for seven), and two cancelled (never counted).
    let alike = |status: &str| {
        json!({"resourceType": "Observation", "status": status,
            "code": r[0]["code"].clone(), "meta": r[0]["meta"].clone()})
    };
    let mut older: Vec<Unparsed> = (0..3)
        .map(|_| Unparsed {
            value: alike("final"),
            count: 1,
        })
        .collect();
    older.push(Unparsed {
        value: alike("final"),
        count: 7,
    });
    older.push(Unparsed {
        value: alike("cancelled"),
        count: 2,
    });
    let input = |sources_only| RecordInput {
        patient: &p,
        resources: &r,
        organisations: &o,
        feeds: &NO_FEEDS,
        now: NOW,
        view: View::Full,
        withheld: 0,
        sources_only,
    };
    let all_parsed = RecordView::build(input(&[])).render(Section::Results);
    assert!(
        all_parsed.contains("20 most recent of 25 results"),
        "{all_parsed}"
    );
    let some_unparsed = RecordView::build(input(&older)).render(Section::Results);
    assert!(
        some_unparsed.contains("20 most recent of 35 results"),
        "{some_unparsed}"
    );
}
