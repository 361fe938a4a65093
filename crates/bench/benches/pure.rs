//! The pure, per-resource work of a write and of a search: index extraction, structural
//! validation, and search-query parsing. Small and fast: `cargo bench -p carerecord-bench --bench pure`.

use std::hint::black_box;
use std::time::Duration;

use carerecord_bench::data;
use carerecord_bench::inprocess::{self, Entry};
use carerecord_fhir::ResourceType;
use carerecord_fhir::validate::validate;
use carerecord_search::index::extract;
use carerecord_search::query::{Handling, parse};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BASE: &str = "http://127.0.0.1:8080/fhir";

/// The first person of a seed-42 London whose record has every type in [`TYPES`] (a resident
/// with lab results and a hospital stay).
fn entries() -> Vec<Entry> {
    let london = data::london(42, 400);
    let mut first = Vec::new();
    for i in 0..london.people() {
        let entries = inprocess::entries(&london.person_bundle(i)).unwrap_or_default();
        if TYPES.iter().all(|rt| of_type(&entries, *rt).is_some()) {
            return entries;
        }
        if first.is_empty() {
            first = entries;
        }
    }
    first
}

fn of_type(entries: &[Entry], rt: ResourceType) -> Option<&Entry> {
    entries.iter().find(|e| e.resource_type == rt)
}

const TYPES: &[ResourceType] = &[
    ResourceType::Patient,
    ResourceType::Observation,
    ResourceType::DiagnosticReport,
    ResourceType::MedicationRequest,
    ResourceType::Composition,
];

fn index_extraction(c: &mut Criterion) {
    let entries = entries();
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("record", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(extract(e.resource_type, black_box(&e.body)));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    for rt in TYPES {
        if let Some(e) = of_type(&entries, *rt) {
            g.bench_function(rt.as_str(), |b| {
                b.iter(|| black_box(extract(e.resource_type, black_box(&e.body))))
            });
        }
    }
    g.finish();
}

fn validation(c: &mut Criterion) {
    let entries = entries();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("record", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(validate(black_box(&e.body)));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    for rt in TYPES {
        if let Some(e) = of_type(&entries, *rt) {
            g.bench_function(rt.as_str(), |b| {
                b.iter(|| black_box(validate(black_box(&e.body))))
            });
        }
    }
    g.finish();
}

fn pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A named search: resource type and query pairs.
type Search = (&'static str, ResourceType, Vec<(String, String)>);

fn query_parsing(c: &mut Criterion) {
    let id = "pat-000001";
    let searches: Vec<Search> = vec![
        (
            "observation_code_sorted",
            ResourceType::Observation,
            pairs(&format!(
                "subject=Patient/{id}&code=http://loinc.org|2951-2&_sort=-date&_count=20"
            )),
        ),
        (
            "observation_category_date",
            ResourceType::Observation,
            pairs(&format!(
                "patient={id}&category=laboratory&date=ge2025-11-01&_sort=-date"
            )),
        ),
        (
            "condition_active",
            ResourceType::Condition,
            pairs(&format!("patient={id}&clinical-status=active")),
        ),
        (
            "medicationrequest_active",
            ResourceType::MedicationRequest,
            pairs(&format!("subject=Patient/{id}&status=active&_count=50")),
        ),
        (
            "diagnosticreport_include",
            ResourceType::DiagnosticReport,
            pairs(&format!(
                "subject=Patient/{id}&_include=DiagnosticReport:result&_sort=-date"
            )),
        ),
        (
            "patient_by_nhs_number",
            ResourceType::Patient,
            pairs("identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"),
        ),
        (
            "observation_chained_nhs_number",
            ResourceType::Observation,
            pairs(
                "subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018&date=ge2026-10&_sort=-date&_count=20",
            ),
        ),
    ];
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, rt, p) in &searches {
        // Every benchmarked query must be valid: a parse error would measure the error path.
        if parse(*rt, p, Handling::Strict, BASE).is_err() {
            eprintln!("skipping {name}: it does not parse");
            continue;
        }
        g.bench_function(*name, |b| {
            b.iter(|| black_box(parse(*rt, black_box(p), Handling::Strict, BASE)))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = index_extraction, validation, query_parsing
}
criterion_main!(benches);
