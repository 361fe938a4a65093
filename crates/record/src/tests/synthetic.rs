//! The whole crate over synthetic London: everyone renders.

use super::*;

/// Every person of a small synthetic London renders in every view, and the facts a nurse
/// looks for are there.
#[test]
fn synthetic_london_renders_everyone() {
    use carerecord_synth::{London, Options};
    let london = London::new(&Options {
        seed: 7,
        patients: 40,
        care_homes: 3,
        ..Options::default()
    });
    let orgs: HashMap<String, String> = london
        .organisations()
        .iter()
        .filter_map(|o| {
            let ods = o["identifier"]
                .as_array()?
                .iter()
                .find(|i| i["system"] == carerecord_synth::ODS_SYSTEM)?["value"]
                .as_str()?;
            Some((ods.to_owned(), o["name"].as_str()?.to_owned()))
        })
        .collect();
    assert!(!orgs.is_empty());
    let now = datetime!(2026-11-01 12:00 UTC);
    let (mut with_discharge, mut with_flags, mut with_trend) = (0, 0, 0);
    for i in 0..london.people() {
        let bundle = london.person_bundle(i);
        let resources: Vec<Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        let pid = London::patient_id(i);
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient" && r["id"] == pid.as_str())
            .unwrap()
            .clone();
        let full = RecordView::build(RecordInput {
            patient: &patient,
            resources: &resources,
            organisations: &orgs,
            feeds: &NO_FEEDS,
            now,
            view: View::Full,
            withheld: 0,
            sources_only: &[],
        });
        // The awkward "no NHS number" person has none to show.
        let nhs = patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["system"] == carerecord_synth::NHS_NUMBER_SYSTEM)
            .map(|i| i["value"].as_str().unwrap().to_owned());
        assert_eq!(
            full.header().nhs_number_formatted,
            nhs.map(|n| format!("{} {} {}", &n[..3], &n[3..6], &n[6..]))
        );
        assert_ne!(full.header().name, "Name not recorded");
        let html: HashMap<Section, String> = Section::all()
            .iter()
            .map(|s| (*s, full.render(*s)))
            .collect();
        for (s, h) in &html {
            assert!(!h.contains("<script"), "{s:?}");
            assert!(
                !h.contains("Source not recorded"),
                "{s:?} for {pid} lost a source"
            );
        }
        let has = |rt: &str| resources.iter().any(|r| r["resourceType"] == rt);
        if resources.iter().any(|r| r["resourceType"] == "Composition") {
            with_discharge += 1;
            assert!(html[&Section::Discharge].contains("Plan and requested actions"));
            assert!(html[&Section::Discharge].contains("Person completing record"));
            assert!(
                html[&Section::Summary].contains("Latest discharge: plan and medicine changes")
            );
            // The latest summary's first requested action is on the summary page.
            let latest = resources
                .iter()
                .filter(|r| r["resourceType"] == "Composition")
                .max_by_key(|r| r["date"].as_str().unwrap_or("").to_owned())
                .unwrap();
            let plan = latest["section"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["code"]["coding"][0]["code"] == "887201000000105")
                .unwrap();
            let first = crate::narrative::of(plan).into_iter().next().unwrap();
            assert!(
                html[&Section::Summary].contains(&crate::html::escape(&first)),
                "{pid}: {first}"
            );
        }
        let high = resources.iter().any(|r| {
            r["resourceType"] == "Observation" && r["interpretation"][0]["coding"][0]["code"] == "H"
        });
        if high {
            with_flags += 1;
            assert!(html[&Section::Results].contains("nhsuk-tag--orange\">High<"));
        }
        if html[&Section::Results].contains("<svg") {
            with_trend += 1;
        }
        // Every GP-held active problem names the practice as its source.
        if let Some(gp) = &full.header().gp
            && resources.iter().any(|r| {
                r["resourceType"] == "Condition"
                    && r["clinicalStatus"]["coding"][0]["code"] == "active"
            })
        {
            let from = format!("From {}", crate::html::escape(gp));
            assert!(html[&Section::Problems].contains(&from), "{pid}");
        }
        if has("AllergyIntolerance") {
            assert!(html[&Section::Summary].contains("Allergies and adverse reactions</h2><table"));
        }
        if has("Observation") {
            assert!(
                html[&Section::Results].contains("Pathology")
                    || !orgs.values().any(|n| n.contains("Pathology"))
            );
        }

        let restricted = RecordView::build(RecordInput {
            patient: &patient,
            resources: &resources,
            organisations: &orgs,
            feeds: &NO_FEEDS,
            now,
            view: View::Restricted,
            withheld: 2,
            sources_only: &[],
        });
        for s in Section::all() {
            let h = restricted.render(*s);
            assert!(!h.contains("cr-results"), "{s:?}");
            assert!(!h.contains("<svg"), "{s:?}");
        }
        let _ = badges(&resources, now);
    }
    assert!(with_discharge > 0 && with_flags > 0 && with_trend > 0);
}
