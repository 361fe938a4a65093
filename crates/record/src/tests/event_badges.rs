//! My residents' event badges: what changed lately, on hand-written and demo data.

use super::*;

#[test]
fn badges_say_what_changed_lately() {
    let b = badges(&record(), NOW);
    let kinds: Vec<BadgeKind> = b.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec![BadgeKind::Discharged]);
    assert_eq!(b[0].text, "Discharged 28 Nov — new discharge summary");
    assert_eq!(b[0].when, Some(datetime!(2026-11-28 11:00 UTC)));

    let mut r = record();
    r.push(potassium("obs-9", "2026-12-01T08:00:00Z", "4.0", Some("N")));
    r.push(json!({
        "resourceType": "Encounter", "status": "in-progress",
        "class": {"code": "IMP"}, "period": {"start": "2026-12-01T22:00:00Z"}
    }));
    let b = badges(&r, NOW);
    let kinds: Vec<BadgeKind> = b.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec![BadgeKind::InHospital, BadgeKind::NewResults]);
    assert_eq!(b[0].text, "In hospital since 1 Dec");

    // A plan loaded today but written long ago is not news; a second version is.
    let mut r = record();
    r.retain(|x| x["resourceType"] != "CarePlan");
    let mut plan = res(
        "cp-9",
        HOME,
        FRESH,
        json!({
            "resourceType": "CarePlan", "status": "active", "created": "2025-01-01"
        }),
    );
    plan["meta"]["versionId"] = json!("1");
    r.push(plan.clone());
    let plan_updated = |r: &[Value]| {
        badges(r, NOW)
            .iter()
            .any(|b| b.kind == BadgeKind::CarePlanUpdated)
    };
    assert!(!plan_updated(&r));
    plan["meta"]["versionId"] = json!("2");
    assert!(
        plan_updated(&[plan.clone()]),
        "no earlier version to compare with"
    );
    r.push(plan);
    assert!(
        !plan_updated(&r),
        "the same plan sent again (a new version, the same content) is not a change"
    );
    let last = r.len() - 1;
    r[last]["activity"] =
        json!([{"detail": {"status": "in-progress", "description": "Turn every two hours"}}]);
    assert!(plan_updated(&r), "a new version with new content is");

    // A month later nothing is news.
    assert!(badges(&record(), datetime!(2027-01-10 09:00 UTC)).is_empty());
}

/// The demo's synthetic London, loaded "today" (every resource's first version arrived at
/// `now`, as `carerecord demo` writes it), where every tenth resident's home then changed a
/// care plan (a second version today): only they have "care plan updated" — not everyone
/// whose plans were just loaded.
#[test]
fn on_demo_data_only_residents_whose_plan_changed_have_care_plan_updated() {
    use carerecord_synth::{London, Options};
    let london = London::new(&Options::default());
    // The generator's own "today", half a day on.
    let now = datetime!(2026-11-01 12:00 UTC);
    let loaded = "2026-11-01T11:00:00Z";
    let (mut residents, mut changed, mut updated, mut lately) = (0, 0, 0, 0);
    for i in 0..london.people() {
        let mut resources: Vec<Value> = london.person_bundle(i)["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        if !resources
            .iter()
            .any(|r| r["resourceType"] == "EpisodeOfCare")
        {
            continue;
        }
        residents += 1;
        for r in &mut resources {
            r["meta"]["versionId"] = json!("1");
            r["meta"]["lastUpdated"] = json!(loaded);
        }
        let change = residents % 10 == 0;
        if change
            && let Some(plan) = resources
                .iter_mut()
                .find(|r| r["resourceType"] == "CarePlan")
        {
            plan["meta"]["versionId"] = json!("2");
            changed += 1;
        }
        let has = badges(&resources, now)
            .iter()
            .any(|b| b.kind == BadgeKind::CarePlanUpdated);
        // A plan the home wrote (reviewed) in the last week is news too; one loaded today
        // but written earlier is not.
        let written_lately = resources.iter().any(|r| {
            r["resourceType"] == "CarePlan"
                && r["created"]
                    .as_str()
                    .is_some_and(|c| c.get(..10).is_some_and(|d| d >= "2026-10-26"))
        });
        let changed_here = change && resources.iter().any(|r| r["meta"]["versionId"] == "2");
        assert_eq!(has, changed_here || written_lately, "resident {i}");
        updated += usize::from(has && !written_lately);
        lately += usize::from(written_lately);
    }
    assert!(residents > 50, "{residents}");
    assert!(changed > 0);
    assert!(lately < residents / 2, "{lately} of {residents}");
    assert!(updated <= changed, "{updated} of {residents} residents");
}

/// The demo anchors the synthetic timeline to the day it runs (`carerecord demo` passes
/// today's date as the generator's "as of" date): loaded that day and viewed at noon, its
/// London has residents with each kind of badge the generator makes — recent discharges,
/// new results and care plans written in the last week — and most residents have none.
#[test]
fn the_demo_anchored_to_a_day_has_each_badge_kind_on_that_day() {
    use carerecord_synth::{AsOf, London, Options};
    for day in ["2026-12-02", "2027-06-30"] {
        let as_of: AsOf = day.parse().unwrap();
        let london = London::new(&Options {
            as_of,
            ..Options::default()
        });
        let now = crate::dates::parse(&format!("{day}T12:00:00Z")).unwrap();
        let loaded = format!("{day}T07:00:00Z");
        let mut kinds: HashMap<&'static str, usize> = HashMap::new();
        let mut residents = 0;
        for i in 0..london.people() {
            let mut resources: Vec<Value> = london.person_bundle(i)["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone())
                .collect();
            if !resources
                .iter()
                .any(|r| r["resourceType"] == "EpisodeOfCare")
            {
                continue;
            }
            residents += 1;
            for r in &mut resources {
                r["meta"]["versionId"] = json!("1");
                r["meta"]["lastUpdated"] = json!(loaded);
            }
            for b in badges(&resources, now) {
                *kinds
                    .entry(match b.kind {
                        BadgeKind::InHospital => "in hospital",
                        BadgeKind::Discharged => "discharged",
                        BadgeKind::NewResults => "new results",
                        BadgeKind::CarePlanUpdated => "care plan updated",
                    })
                    .or_default() += 1;
            }
        }
        for kind in ["discharged", "new results", "care plan updated"] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) > 0,
                "{day}: no {kind} in {kinds:?}"
            );
        }
        let badged: usize = kinds.values().sum();
        assert!(badged < residents, "{day}: {kinds:?} of {residents}");
    }
}
