use super::*;
use carerecord_fhir::NhsNumber;
use carerecord_fhir::validate::validate;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .collect()
}

fn patients_of(bundle: &Value) -> Vec<&Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == "Patient")
        .collect()
}

fn small() -> London {
    London::new(&Options {
        seed: 7,
        patients: 60,
        care_homes: 6,
        ..Options::default()
    })
}

#[test]
fn every_resource_of_every_type_passes_the_project_validator() {
    let mut types = BTreeSet::new();
    for london in [small(), London::new(&Options::default())] {
        for org in london.organisations() {
            let issues = validate(&org);
            assert!(issues.is_empty(), "{}: {issues:?}", org["id"]);
            types.insert(org["resourceType"].as_str().unwrap_or("").to_owned());
        }
        for i in 0..london.people().min(60) {
            let b = london.person_bundle(i);
            let issues = validate(&b);
            assert!(issues.is_empty(), "bundle {i}: {issues:?}");
            for r in resources(&b) {
                let issues = validate(r);
                assert!(issues.is_empty(), "{}: {issues:?}", r["id"]);
                types.insert(r["resourceType"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    for t in [
        "Organization",
        "Location",
        "Patient",
        "EpisodeOfCare",
        "Encounter",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "DiagnosticReport",
        "Composition",
        "CarePlan",
        "Flag",
        "Immunization",
        "Consent",
        "Provenance",
    ] {
        assert!(types.contains(t), "{t} never generated");
    }
}

#[test]
fn entries_are_puts_with_deterministic_ids_and_references_resolve() {
    let london = London::new(&Options::default());
    let orgs: BTreeSet<String> = london
        .organisations()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["resourceType"].as_str().unwrap_or(""),
                o["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    for i in 0..40 {
        let b = london.person_bundle(i);
        assert_eq!(b["type"], "transaction");
        let mut urls = BTreeSet::new();
        for e in b["entry"].as_array().unwrap() {
            let r = &e["resource"];
            assert_eq!(e["request"]["method"], "PUT");
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(e["request"]["url"], url.as_str());
            assert!(urls.insert(url), "duplicate id in bundle {i}");
        }
        let text = b.to_string();
        for piece in text.split("\"reference\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or("");
            assert!(
                urls.contains(target) || orgs.contains(target),
                "{target} in bundle {i}"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_byte_identical_output_and_another_seed_differs() {
    let a = London::new(&Options::default());
    let b = London::new(&Options::default());
    let c = London::new(&Options {
        seed: 2,
        ..Options::default()
    });
    assert_eq!(
        serde_json::to_string(&a.organisations()).unwrap(),
        serde_json::to_string(&b.organisations()).unwrap()
    );
    for i in [0, 1, 17, 399] {
        let x = a.person_bundle(i).to_string();
        assert_eq!(x, b.person_bundle(i).to_string());
        assert_ne!(x, c.person_bundle(i).to_string());
    }
}

#[test]
fn a_person_is_the_same_whether_generated_first_or_after_others() {
    let a = London::new(&Options::default());
    let first = a.person_bundle(123).to_string();
    let b = London::new(&Options::default());
    for i in (0..200).rev() {
        let _ = b.person_bundle(i);
    }
    assert_eq!(first, b.person_bundle(123).to_string());
    assert_eq!(first, a.person_bundle(123).to_string());
}

#[test]
fn every_nhs_number_is_valid_and_in_the_999_test_range() {
    let london = London::new(&Options::default());
    let mut seen = BTreeSet::new();
    for i in 0..london.people() {
        for p in patients_of(&london.person_bundle(i)) {
            for id in p["identifier"].as_array().into_iter().flatten() {
                if id["system"] == NHS_NUMBER_SYSTEM {
                    let v = id["value"].as_str().unwrap();
                    assert!(v.starts_with("999"));
                    assert!(NhsNumber::parse(v).is_ok_and(|n| n.is_test_range()));
                    if p["active"] == true {
                        assert!(seen.insert(v.to_owned()), "NHS number reused");
                    }
                }
            }
        }
    }
    assert!(seen.len() > 390);
    for i in 0..20_000 {
        assert!(NhsNumber::parse(&nhs_number(i)).is_ok());
    }
}

#[test]
fn most_nhs_numbers_are_verified_and_some_are_not() {
    let london = London::new(&Options::default());
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..london.people() {
        let b = london.person_bundle(i);
        let p = patients_of(&b)[0];
        for id in p["identifier"].as_array().into_iter().flatten() {
            if id["system"] == NHS_NUMBER_SYSTEM {
                let ext = &id["extension"][0];
                assert_eq!(ext["url"], VERIFICATION_STATUS_EXTENSION);
                let code = ext["valueCodeableConcept"]["coding"][0]["code"]
                    .as_str()
                    .unwrap();
                *by_status.entry(code.to_owned()).or_default() += 1;
            }
        }
    }
    let verified = by_status.get("01").copied().unwrap_or(0);
    let others: usize = by_status
        .iter()
        .filter(|(k, _)| *k != "01")
        .map(|(_, v)| v)
        .sum();
    assert!(verified > 350 && others >= 1, "{by_status:?}");
}

fn bundle_of(london: &London, pid: &str) -> Value {
    let i: u32 = pid.trim_start_matches("pat-").parse().unwrap();
    london.person_bundle(i)
}

#[test]
fn each_awkward_case_exists_in_the_default_set() {
    let london = London::new(&Options::default());
    let cases = london.awkward_cases();
    assert_eq!(cases.len(), 7, "{cases:?}");
    let find = |word: &str| {
        cases
            .iter()
            .find(|(d, _)| d.contains(word))
            .map(|(_, id)| bundle_of(&london, id))
            .unwrap()
    };

    let b = find("two hospitals");
    let p = patients_of(&b)[0];
    let mrn_systems: BTreeSet<&str> = p["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|id| id["type"]["coding"][0]["code"] == "MR")
        .map(|id| id["system"].as_str().unwrap())
        .collect();
    assert_eq!(mrn_systems.len(), 2);
    assert!(mrn_systems.iter().all(|s| s.starts_with(MRN_SYSTEM_PREFIX)));

    let b = find("no NHS number");
    assert!(
        !patients_of(&b)[0]["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id["system"] == NHS_NUMBER_SYSTEM)
    );

    let b = find("not verified");
    let ids = patients_of(&b)[0]["identifier"].as_array().unwrap().clone();
    let nhs = ids
        .iter()
        .find(|id| id["system"] == NHS_NUMBER_SYSTEM)
        .unwrap();
    let code = nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
        .as_str()
        .unwrap();
    assert!(code == "02" || code == "03");

    let b = find("merged");
    let pats = patients_of(&b);
    assert_eq!(pats.len(), 2);
    let (survivor, old) = (pats[0], pats[1]);
    assert_eq!(old["active"], false);
    assert_eq!(old["link"][0]["type"], "replaced-by");
    assert_eq!(
        old["link"][0]["other"]["reference"],
        format!("Patient/{}", survivor["id"].as_str().unwrap()).as_str()
    );

    let b = find("objected");
    let consent = resources(&b)
        .into_iter()
        .find(|r| r["resourceType"] == "Consent")
        .unwrap();
    assert_eq!(consent["provision"]["type"], "deny");

    let b = find("sensitive");
    let sensitive = resources(&b)
        .into_iter()
        .find(|r| {
            r["meta"]["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|c| c["code"] == "STD"))
        })
        .unwrap();
    assert_eq!(sensitive["resourceType"], "Condition");
    assert!(
        sensitive["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "R")
    );

    let b = find("several sources");
    let codes = |rt: &str| -> BTreeSet<String> {
        resources(&b)
            .into_iter()
            .filter(|r| r["resourceType"] == rt)
            .map(|r| {
                r["medicationCodeableConcept"]["coding"][0]["code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert!(
        codes("MedicationRequest")
            .intersection(&codes("MedicationStatement"))
            .next()
            .is_some()
    );
}

#[test]
fn every_resource_names_its_source_system_and_originating_ods_code() {
    let london = small();
    let all: Vec<Value> = london
        .organisations()
        .into_iter()
        .chain((0..london.people()).flat_map(|i| {
            resources(&london.person_bundle(i))
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        }))
        .collect();
    for r in &all {
        assert!(
            r["meta"]["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("https://"))
        );
        let tags = r["meta"]["tag"].as_array().unwrap();
        let ods = tags
            .iter()
            .find(|t| t["system"] == SOURCE_ORGANISATION_TAG)
            .unwrap();
        assert!(ods["code"].as_str().unwrap().starts_with('Z'));
    }
}

#[test]
fn residents_live_in_a_care_home_and_discharge_summaries_have_the_prsb_headings() {
    let london = London::new(&Options::default());
    let mut residents = 0;
    let mut summaries = 0;
    let mut to_home = 0;
    for i in 0..london.people() {
        let b = london.person_bundle(i);
        let rs = resources(&b);
        if let Some(eoc) = rs.iter().find(|r| r["resourceType"] == "EpisodeOfCare") {
            residents += 1;
            assert_eq!(eoc["status"], "active");
            assert!(
                eoc["managingOrganization"]["reference"]
                    .as_str()
                    .unwrap()
                    .starts_with("Organization/org-zc")
            );
        }
        for c in rs.iter().filter(|r| r["resourceType"] == "Composition") {
            summaries += 1;
            assert_eq!(c["type"]["coding"][0]["code"], "373942005");
            let codes: Vec<&str> = c["section"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["code"]["coding"][0]["code"].as_str().unwrap())
                .collect();
            for h in [
                "887201000000105",
                "933361000000108",
                "886921000000105",
                "887161000000102",
            ] {
                assert!(codes.contains(&h));
            }
            for s in c["section"].as_array().unwrap() {
                assert!(s["text"]["div"].as_str().unwrap().starts_with("<div xmlns"));
            }
        }
        to_home += rs
            .iter()
            .filter(|r| r["resourceType"] == "Encounter")
            .filter(|r| {
                let code = r["hospitalization"]["dischargeDisposition"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or("");
                code == "306691003" || code == "306694006"
            })
            .count();
    }
    assert!(residents > 150 && residents < 350, "{residents}");
    assert!(summaries > 100, "{summaries}");
    assert!(to_home > 20, "{to_home}");
}

#[test]
fn organisations_cover_the_five_icss_and_both_kinds_of_care_home() {
    let london = London::new(&Options::default());
    let orgs = london.organisations();
    let kinds: Vec<&str> = orgs
        .iter()
        .filter_map(|o| o["type"][0]["coding"][0]["code"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "ics").count(), 5);
    let homes: Vec<&Value> = orgs
        .iter()
        .filter(|o| {
            o["type"][0]["coding"][0]["code"]
                .as_str()
                .is_some_and(|k| k.starts_with("care-home"))
        })
        .collect();
    assert_eq!(homes.len(), 12);
    let systems: BTreeSet<&str> = homes
        .iter()
        .map(|h| h["extension"][1]["valueCoding"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(systems.len(), 2);
    for h in homes {
        assert!(h["extension"][0]["valueInteger"].as_u64().unwrap() > 0);
        assert!(
            h["partOf"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("Organization/org-zq")
        );
        assert!(h["address"][0]["district"].is_string());
    }
}

#[test]
fn two_thousand_people_generate() {
    let london = London::new(&Options {
        seed: 99,
        patients: 2_000,
        care_homes: 40,
        ..Options::default()
    });
    let mut n = 0usize;
    for i in 0..london.people() {
        n += london.person_bundle(i)["entry"]
            .as_array()
            .map_or(0, Vec::len);
    }
    assert!(n > 2_000 * 20);
}

#[test]
fn out_of_range_people_are_empty_bundles() {
    let london = small();
    assert_eq!(london.person_bundle(10_000)["type"], "transaction");
    let tiny = London::new(&Options {
        seed: 1,
        patients: 0,
        care_homes: 0,
        ..Options::default()
    });
    assert_eq!(tiny.people(), 0);
    assert!(tiny.awkward_cases().is_empty());
    assert!(tiny.organisations().len() >= 5);
}

#[test]
fn the_timeline_runs_back_from_the_date_asked_for_and_stays_deterministic() {
    let as_of: AsOf = "2027-03-15".parse().unwrap();
    let opts = Options {
        as_of,
        ..Options::default()
    };
    let a = London::new(&opts).person_bundle(3).to_string();
    assert_eq!(a, London::new(&opts).person_bundle(3).to_string());
    let default = London::new(&Options::default())
        .person_bundle(3)
        .to_string();
    assert_ne!(a, default);
    // Nothing is dated after the day asked for (plus the hours of that day).
    let latest = |text: &str| {
        text.split('"')
            .filter(|s| s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
            .filter(|s| s[..4].bytes().all(|b| b.is_ascii_digit()))
            .map(|s| s[..10].to_owned())
            .max()
            .unwrap()
    };
    assert!(latest(&a).as_str() <= "2027-03-15", "{}", latest(&a));
    assert!(latest(&a).as_str() > "2027-01-01", "{}", latest(&a));
    assert!(latest(&default).as_str() <= "2026-11-01");
}

#[test]
fn as_of_dates_are_parsed_strictly() {
    assert_eq!(AsOf::default().to_string(), "2026-11-01");
    assert_eq!("2024-02-29".parse::<AsOf>().unwrap().ymd(), (2024, 2, 29));
    for bad in [
        "2023-02-29",
        "2026-13-01",
        "2026-1-01",
        "26-01-01",
        "2026-01-01x",
        "",
        "2026-00-10",
        "+026-01-01",
    ] {
        assert!(bad.parse::<AsOf>().is_err(), "{bad}");
    }
    assert_eq!(AsOf::new(2026, 12, 2).unwrap().to_string(), "2026-12-02");
    assert!(AsOf::new(2026, 4, 31).is_none());
}

/// Days since the epoch of a FHIR date or dateTime's date part.
fn day_of(s: &str) -> i64 {
    let d = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok()).unwrap();
    date::days_from_civil(d(0, 4), d(5, 7), d(8, 10))
}

#[test]
fn every_home_has_a_resident_in_hospital_now_and_one_just_discharged_and_no_stay_ends_in_the_future()
 {
    let london = small();
    let today = london.today;
    // home organisation → (in hospital now, discharged in the last three days with a summary)
    let mut homes: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for i in 0..london.people() {
        let b = london.person_bundle(i);
        let rs = resources(&b);
        let Some(home) = rs
            .iter()
            .find(|r| r["resourceType"] == "EpisodeOfCare")
            .and_then(|e| e["managingOrganization"]["reference"].as_str())
        else {
            continue;
        };
        let seen = homes.entry(home.to_owned()).or_default();
        for e in rs.iter().filter(|r| r["resourceType"] == "Encounter") {
            if e["class"]["code"] != "IMP" {
                continue;
            }
            match e["period"]["end"].as_str() {
                None => {
                    assert_eq!(e["status"], "in-progress", "{e}");
                    assert!(e["hospitalization"].get("dischargeDisposition").is_none());
                    let start = day_of(e["period"]["start"].as_str().unwrap());
                    assert!((today - 5..today).contains(&start), "{e}");
                    seen.0 = true;
                }
                Some(end) => {
                    assert_eq!(e["status"], "finished", "{e}");
                    let end = day_of(end);
                    assert!(end < today, "a finished stay ends by yesterday: {e}");
                    let id = format!("Encounter/{}", e["id"].as_str().unwrap());
                    let summarised = rs.iter().any(|r| {
                        r["resourceType"] == "Composition" && r["encounter"]["reference"] == id
                    });
                    if end >= today - 3 && summarised {
                        seen.1 = true;
                    }
                }
            }
        }
    }
    assert!(!homes.is_empty());
    for (home, (in_hospital, discharged)) in &homes {
        assert!(in_hospital, "{home} has nobody in hospital now");
        assert!(discharged, "{home} has nobody just discharged");
    }
}
