//! The data set: a synthetic London from `carerecord-synth`, and what the benchmarks need to know
//! about it (the organisations as transaction Bundles, and each person's Patient id and LOINC
//! codes).

use carerecord_synth::{LOINC, London, Options};
use serde_json::{Value, json};

/// Organisations per transaction Bundle when loading them.
pub const ORGANISATIONS_PER_BUNDLE: usize = 500;

/// A London planned for `patients` people, with one care home per 50 people (at least two, so
/// both an electronic and a paper-based home exist).
pub fn london(seed: u64, patients: u32) -> London {
    London::new(&Options {
        seed,
        patients,
        care_homes: (patients / 50).max(2),
        ..Options::default()
    })
}

/// The organisations (and care home Locations) as `transaction` Bundles of `PUT [type]/[id]`
/// entries, at most [`ORGANISATIONS_PER_BUNDLE`] each, in the generator's order (ICSs first, so
/// `partOf` targets come before the organisations that name them). They must be loaded before
/// any person: people's records reference them.
pub fn organisation_bundles(london: &London) -> Vec<Value> {
    let orgs = london.organisations();
    orgs.chunks(ORGANISATIONS_PER_BUNDLE)
        .map(|chunk| {
            let entry: Vec<Value> = chunk
                .iter()
                .map(|r| {
                    let rt = r["resourceType"].as_str().unwrap_or_default();
                    let id = r["id"].as_str().unwrap_or_default();
                    json!({
                        "resource": r,
                        "request": {"method": "PUT", "url": format!("{rt}/{id}")}
                    })
                })
                .collect();
            json!({"resourceType": "Bundle", "type": "transaction", "entry": entry})
        })
        .collect()
}

/// The number of entries (resources) in a Bundle.
pub fn resource_count(bundle: &Value) -> usize {
    bundle["entry"].as_array().map_or(0, Vec::len)
}

/// What the latency phases need to know about one imported person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The id of the person's Patient (the first Patient entry of their Bundle; a merged
    /// record's retired duplicate comes after it).
    pub patient_id: String,
    /// The distinct LOINC codes of the person's Observations (lab results), in Bundle order.
    /// Empty for people with no lab results.
    pub loinc: Vec<String>,
}

impl Person {
    /// Reads a person's Bundle from [`London::person_bundle`]; `None` if it has no Patient.
    pub fn of(bundle: &Value) -> Option<Person> {
        let resources = || {
            bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| &e["resource"])
        };
        let patient_id = resources()
            .find(|r| r["resourceType"] == "Patient")
            .and_then(|r| r["id"].as_str())?
            .to_owned();
        let subject = format!("Patient/{patient_id}");
        let mut loinc: Vec<String> = Vec::new();
        for r in resources() {
            if r["resourceType"] != "Observation" || r["subject"]["reference"] != subject.as_str() {
                continue;
            }
            for c in r["code"]["coding"].as_array().into_iter().flatten() {
                if c["system"] == LOINC
                    && let Some(code) = c["code"].as_str()
                    && !loinc.iter().any(|x| x == code)
                {
                    loinc.push(code.to_owned());
                }
            }
        }
        Some(Person { patient_id, loinc })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn people_have_their_patient_id_and_lab_codes() {
        let l = london(1, 200);
        let mut with_labs = 0;
        for i in 0..l.people() {
            let p = Person::of(&l.person_bundle(i)).expect("a Patient");
            assert_eq!(p.patient_id, London::patient_id(i));
            if !p.loinc.is_empty() {
                with_labs += 1;
            }
        }
        // Residents are monitored: most people have lab results.
        assert!(with_labs > 100, "{with_labs} of 200 have lab results");
    }

    #[test]
    fn organisation_bundles_hold_every_organisation_as_a_put() {
        let l = london(1, 20_000);
        let bundles = organisation_bundles(&l);
        let n: usize = bundles.iter().map(resource_count).sum();
        assert_eq!(n, l.organisations().len());
        assert!(bundles.len() > 1);
        for b in &bundles {
            assert_eq!(b["type"], "transaction");
            assert!(resource_count(b) <= ORGANISATIONS_PER_BUNDLE);
            for e in b["entry"].as_array().unwrap() {
                assert_eq!(e["request"]["method"], "PUT");
                let url = e["request"]["url"].as_str().unwrap();
                assert_eq!(
                    url,
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                );
            }
        }
    }
}
